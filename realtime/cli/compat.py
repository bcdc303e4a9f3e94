"""``rtv faces recognize`` and ``rtv faces detect``: face_recognition's two command lines (``face_recognition``,
``face_detection``) with the same arguments and output lines, on :mod:`realtime.compat.face_recognition`."""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

from realtime.cli.args import command_group, float_range, int_range

# face_recognition's own choice: the files of a folder whose names end in these (any case).
COMMAND_SUFFIXES = (".jpg", ".jpeg", ".png")
RECOGNIZE_MAX_SIDE = 1600  # face_recognition shrinks larger unknown images to this before looking


def image_files_in_folder(folder: str) -> list[str]:
    """``folder/name`` for each .jpg/.jpeg/.png file in ``folder``, sorted by name."""
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if Path(name).suffix.lower() in COMMAND_SUFFIXES and os.path.isfile(os.path.join(folder, name))]


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "t", "yes", "y", "on"):
        return True
    if value in ("0", "false", "f", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def _workers(cpus: int) -> int:
    return (os.cpu_count() or 1) if cpus == -1 else cpus


def _each(files: list[str], work: Callable[[str], list[str]], cpus: int) -> Iterator[list[str]]:
    """``work(file)`` for each file, in order; ``cpus`` files at once."""
    if _workers(cpus) <= 1 or len(files) <= 1:
        yield from map(work, files)
        return
    with ThreadPoolExecutor(max_workers=_workers(cpus)) as pool:
        yield from pool.map(work, files)


def _configure(args: argparse.Namespace):
    from realtime.cli.args import load_from_args
    from realtime.compat import face_recognition

    face_recognition.configure(load_from_args(args))
    return face_recognition


def scan_known_people(folder: str, fr) -> tuple[list[str], list]:
    """Names (file name without suffix) and the first face's encoding of each image in ``folder``; warnings for
    images with no face or several (on stderr)."""
    from realtime.errors import SourceError

    if not os.path.isdir(folder):
        raise SourceError(f"known people folder not found: {folder}")
    names, encodings = [], []
    for file in image_files_in_folder(folder):
        found = fr.face_encodings(fr.load_image_file(file))
        if len(found) > 1:
            print(f"WARNING: More than one face found in {file}. Only considering the first face.", file=sys.stderr)
        if not found:
            print(f"WARNING: No faces found in {file}. Ignoring file.", file=sys.stderr)
        else:
            names.append(os.path.splitext(os.path.basename(file))[0])
            encodings.append(found[0])
    return names, encodings


def _shrink(image):
    """face_recognition's thumbnail of an unknown image larger than 1600 px (aspect kept)."""
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= RECOGNIZE_MAX_SIDE:
        return image
    f = RECOGNIZE_MAX_SIDE / max(h, w)
    size = (RECOGNIZE_MAX_SIDE, max(round(h * f), 1)) if w >= h else (max(round(w * f), 1), RECOGNIZE_MAX_SIDE)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _line(file: str, name: str, distance, show: bool) -> str:
    return f"{file},{name},{distance}" if show else f"{file},{name}"


def recognize_lines(file: str, names: list[str], known: list, fr, tolerance: float, show_distance: bool) -> list[str]:
    """face_recognition's output lines for one unknown image."""
    encodings = fr.face_encodings(_shrink(fr.load_image_file(file)))
    lines = []
    for encoding in encodings:
        distances = fr.face_distance(known, encoding)
        matches = list(distances <= tolerance)
        if True in matches:
            lines += [_line(file, name, float(d), show_distance)
                      for match, name, d in zip(matches, names, distances) if match]
        else:
            lines.append(_line(file, "unknown_person", None, show_distance))
    if not encodings:
        lines.append(_line(file, "no_persons_found", None, show_distance))
    return lines


def cmd_recognize(args: argparse.Namespace) -> int:
    fr = _configure(args)
    names, known = scan_known_people(args.known_people_folder, fr)
    target = args.image_to_check
    files = image_files_in_folder(target) if os.path.isdir(target) else [target]
    work = lambda f: recognize_lines(f, names, known, fr, args.tolerance, args.show_distance)  # noqa: E731
    for lines in _each(files, work, args.cpus):
        for line in lines:
            print(line, flush=True)
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    fr = _configure(args)
    target = args.image_to_check
    files = image_files_in_folder(target) if os.path.isdir(target) else [target]

    def work(file: str) -> list[str]:
        image = fr.load_image_file(file)
        return [f"{file},{top},{right},{bottom},{left}" for top, right, bottom, left in
                fr.face_locations(image, number_of_times_to_upsample=args.upsample, model=args.model)]

    for lines in _each(files, work, args.cpus):
        for line in lines:
            print(line, flush=True)
    return 0


def _cpus(text: str) -> int:
    value = int_range(-1, 1024)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is out of range: use a positive count or -1 for every core")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    faces = command_group(sub, "faces")
    p = faces.add_parser(
        "recognize", help="who is in these photos? face_recognition's command line: file,name[,distance]",
        description="Like face_recognition's 'face_recognition' command. Each image in KNOWN_PEOPLE_FOLDER is one "
                    "person, named after the file (its first face counts). For each unknown image (IMAGE_TO_CHECK, or "
                    "every .jpg/.jpeg/.png of that folder, sorted by name) one line per face: 'file,name' for each "
                    "known person within --tolerance, else 'file,unknown_person'; 'file,no_persons_found' when the "
                    "image has no face. --show-distance adds the distance (None for unknown_person). Warnings go to "
                    "stderr. Faces and descriptors come from realtime.compat.face_recognition.")
    p.add_argument("known_people_folder", metavar="KNOWN_PEOPLE_FOLDER")
    p.add_argument("image_to_check", metavar="IMAGE_TO_CHECK")
    p.add_argument("--tolerance", type=float_range(0.0, 4.0), default=0.6,
                   help="largest distance that still matches (default 0.6; lower is stricter)")
    p.add_argument("--show-distance", type=_bool, nargs="?", const=True, default=False,
                   help="print the face distance too ('--show-distance' or '--show-distance true')")
    p.add_argument("--cpus", type=_cpus, default=1, help="images at once (default 1; -1: one per core)")
    p.set_defaults(func=cmd_recognize)

    p = faces.add_parser(
        "detect", help="face boxes of photos, face_recognition's command line: file,top,right,bottom,left",
        description="Like face_recognition's 'face_detection' command: one line per face, "
                    "'file,top,right,bottom,left' (pixels, boxes like dlib's detector gives), for IMAGE_TO_CHECK "
                    "or every .jpg/.jpeg/.png of that folder (sorted by name).")
    p.add_argument("image_to_check", metavar="IMAGE_TO_CHECK")
    p.add_argument("--model", choices=("hog", "cnn"), default="hog",
                   help="boxes like dlib's HOG (default) or CNN detector's")
    p.add_argument("--upsample", type=int_range(0, 3), default=0,
                   help="number_of_times_to_upsample (default 0, as face_detection; more finds smaller faces)")
    p.add_argument("--cpus", type=_cpus, default=1, help="images at once (default 1; -1: one per core)")
    p.set_defaults(func=cmd_detect)
