"""Face commands: enroll, identify, verify, embed, gallery (list, remove, export, import, access)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from realtime.cli.args import float_range, int_range, json_list

STILL_DETECT_WIDTH = 640


def _config(args: argparse.Namespace):
    from realtime.cli.args import load_from_args

    return load_from_args(args)


def cmd_enroll(args: argparse.Namespace) -> int:
    from realtime.api import open_gallery
    from realtime.errors import ConfigError
    from realtime.gallery.names import check_name

    if bool(args.images) == (args.camera is not None):
        raise ConfigError("enroll needs IMAGE_OR_FOLDER... or --camera INDEX (one of the two)")
    name = check_name(args.name)  # before any model runs: a name that is refused wastes nothing
    config = _config(args)
    with open_gallery(config=config) as gallery:
        if args.camera is not None:
            samples = _camera_samples(config, args, gallery.faces)
            done = gallery.enroll_samples(name, samples, replace=args.replace, force=args.force)
        else:
            done = gallery.enroll(name, args.images, replace=args.replace, force=args.force)
        threshold = gallery.faces.match_threshold
    for refusal in done.refused:
        print(f"refused {refusal.source}: {refusal.reason}", file=sys.stderr)
    for person, distance in done.look_alikes:
        print(f"warning: the new face of {name!r} already matches {person!r} (distance {distance:.3f} < "
              f"{threshold}); check that these are different people", file=sys.stderr)
    print(f"enrolled {done.enrolled} face(s) for {name!r} ({done.stored} stored) in {config.faces.gallery}")
    return 0


def _camera_samples(config, args, faces):
    """Up to ``--shots`` accepted faces from a camera, at least 0.5 s apart, within ``--timeout`` seconds."""
    from realtime.io.capture import open_source
    from realtime.errors import EnrollmentError
    from realtime.face.enroll import FaceSample, sample_for_enrolment

    detector, embedder = faces.models()
    source_config = dataclasses.replace(config.source, policy="latest")
    samples, last_reason = [], ""
    deadline = time.monotonic() + args.timeout
    last_shot = 0.0
    with open_source(source_config, str(args.camera)) as source:
        while len(samples) < args.shots and time.monotonic() < deadline:
            packet = source.next_packet()
            if packet is None:
                break
            if time.monotonic() - last_shot < 0.5:
                continue
            result = sample_for_enrolment(packet.frame_bgr, f"camera {args.camera} frame {packet.index}",
                                          detector, embedder, config.faces.min_face_px, config.faces.min_sharpness)
            if isinstance(result, FaceSample):
                samples.append(result)
                last_shot = time.monotonic()
                print(f"shot {len(samples)}/{args.shots}", file=sys.stderr)
            elif result.reason != last_reason:
                last_reason = result.reason
                print(f"waiting: {result.reason}", file=sys.stderr)
    if len(samples) < args.shots:
        raise EnrollmentError(f"only {len(samples)} of {args.shots} usable shots in {args.timeout:.0f} s "
                              f"(last problem: {last_reason or 'none'}); nothing was enrolled")
    return samples


def _photos(items: list[str]):
    from realtime.io.capture import expand_inputs

    return expand_inputs(items, videos=False)


def _no_face_exit(missing: list[str], command: str) -> int:
    """Exit 12 (no face) after every result was printed, naming the photos without a face; else 0."""
    from realtime.cli.args import exit_code_for
    from realtime.errors import NoFaceError

    if not missing:
        return 0
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    print(f"rtv: {command}: no face found in {', '.join(missing[:3])}{more}", file=sys.stderr)
    return exit_code_for(NoFaceError())


def cmd_identify(args: argparse.Namespace) -> int:
    from realtime.api import open_gallery

    config = _config(args)
    paths = _photos(args.images)
    missing = []
    with open_gallery(config=config) as gallery:
        threshold = gallery.faces.match_threshold
        for path in paths:
            matches = gallery.identify(path)
            if not matches:
                missing.append(str(path))
            print(json.dumps({"image": str(path), "threshold": threshold, "margin": config.faces.match_margin,
                              "faces": [m.to_json() for m in matches]}), flush=True)
    return _no_face_exit(missing, "identify")


def cmd_embed(args: argparse.Namespace) -> int:
    from realtime.api import open_faces
    from realtime.io.capture import read_image

    paths = _photos(args.images)
    images = [(path, read_image(path)) for path in paths]  # every photo readable before anything is printed
    with open_faces(_config(args)) as faces:
        faces.detect_width = args.detect_width
        results = [{"image": str(path), "faces": [f.to_json() for f in faces.describe(image)]}
                   for path, image in images]
    missing = [item["image"] for item in results if not item["faces"]]
    if args.json:
        print(json.dumps(results))
        return _no_face_exit(missing, "embed")
    for item in results:
        print(f"{item['image']}: {len(item['faces'])} face(s)")
        for face in item["faces"]:
            x1, y1, x2, y2 = face["box"]
            print(f"  box {x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}  score {face['score']:.2f}  descriptor "
                  f"[{', '.join(f'{v:.3f}' for v in face['descriptor'][:4])}, ...]")
    return _no_face_exit(missing, "embed")


def box_arg(text: str) -> tuple[float, float, float, float]:
    """An argparse ``type`` for a box ``X1,Y1,X2,Y2`` in photo pixels."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not values[0] < values[2] or not values[1] < values[3]:
        raise argparse.ArgumentTypeError(f"{text!r} is not a box X1,Y1,X2,Y2 with X1 < X2 and Y1 < Y2")
    return values  # type: ignore[return-value]


def cmd_verify(args: argparse.Namespace) -> int:
    from realtime.api import open_faces
    from realtime.cli.args import exit_code_for
    from realtime.errors import ConfigError, FaceError

    paths = _photos(args.images)
    if len(paths) < 2:
        raise ConfigError(f"verify needs two photos or more; {', '.join(args.images)} gave {len(paths)}")
    if args.box2 is not None and len(paths) != 2:
        raise ConfigError("--box2 chooses the face of the second photo: give exactly two photos with it")
    reference, others = paths[0], paths[1:]
    code = 0
    with open_faces(_config(args)) as faces:
        for other in others:
            try:
                answer = faces.verify(reference, other, largest=args.largest, boxes=(args.box1, args.box2))
            except FaceError as exc:
                if len(others) == 1:
                    raise
                print(f"rtv: verify: {exc}", file=sys.stderr)
                code = code or exit_code_for(exc)
                continue
            for path, face, how in zip((reference, other), answer.faces, answer.chosen):
                if how != "only":
                    box = ",".join(f"{v:.0f}" for v in face.box_xyxy)
                    print(f"verify: {path}: used the {'largest face' if how == 'largest' else 'face in the box'} "
                          f"(box {box})", file=sys.stderr)
            row = answer.to_json()
            print(json.dumps({"image1": str(reference), "image2": str(other), "distance": row["distance"],
                              "threshold": row["threshold"], "same_person": row["same_person"],
                              "faces": row["faces"]}), flush=True)
    return code


def cmd_gallery(args: argparse.Namespace) -> int:
    from realtime.gallery.names import escape_text
    from realtime.gallery.store import Gallery

    config = _config(args)
    path = config.faces.gallery
    if args.gallery_command == "export":
        from realtime.cli.args import guard_outputs

        guard_outputs({"FILE": args.file}, config, overwrite=args.force)
    with Gallery.open(path, create=False) as gallery:
        if args.gallery_command == "list":
            persons = gallery.persons()
            if args.json:
                print(json.dumps([dataclasses.asdict(p) for p in persons], indent=2, default=str))
            else:
                print(f"{path}: {len(persons)} person(s), model {gallery.model_name} "
                      f"(sha256 {gallery.model_sha256[:12]}…)")
                for p in persons:
                    access = "allowed" if p.allowed else "denied"
                    print(f"  {escape_text(p.name):<24} {p.n_embeddings:>3} embedding(s)  {access}"
                          + (f"  schedule {json.dumps(p.schedule)}" if p.schedule else ""))
        elif args.gallery_command == "remove":
            removed = gallery.remove(args.name)
            print(f"removed {args.name!r} ({removed} embedding(s))")
        elif args.gallery_command == "export":
            n = gallery.export(args.file, overwrite=args.force)
            print(f"exported {n} person(s) to {args.file}")
        elif args.gallery_command == "import":
            n = gallery.import_(args.file, replace=args.replace)
            print(f"imported {n} person(s) from {args.file}")
        elif args.gallery_command == "access":
            schedule = args.schedule
            gallery.set_access(args.name, allowed=not args.deny, schedule=schedule)
            print(f"{args.name!r}: {'denied' if args.deny else 'allowed'}"
                  + (f", schedule {json.dumps(args.schedule)}" if args.schedule else ", any time"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enroll", help="add a person's face to the gallery from images or a camera",
                       description="Quality gates: exactly one face, at least faces.min_face_px tall, not blurred "
                                   "(faces.min_sharpness). Refused images are listed with their reason; accepted "
                                   "ones are stored in one transaction. The images must all show one person "
                                   "(pairwise distances under the match threshold, and under it from the faces "
                                   "already stored unless --replace): otherwise the odd image is named and nothing "
                                   "is stored, unless --force. Warns when the face already matches someone else. "
                                   "A name is 1-100 printable characters, no control or bidi characters, not "
                                   "starting with '-'.")
    p.add_argument("name", help="person's name")
    p.add_argument("images", nargs="*", metavar="IMAGE_OR_FOLDER", help="photos of that person")
    p.add_argument("--camera", type=int_range(0, 99), help="take the shots from this camera instead")
    p.add_argument("--shots", type=int_range(1, 100), default=5, help="shots to take from the camera (default 5)")
    p.add_argument("--timeout", type=float_range(0.0, 3600.0, low_open=True), default=30.0,
                   help="camera: give up after N seconds (default 30)")
    p.add_argument("--replace", action="store_true", help="replace the person's existing embeddings")
    p.add_argument("--force", action="store_true",
                   help="enrol even when the images (or the faces already stored) do not all match each other")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("identify", help="1:K: who is in these photos? one JSON line per photo",
                       description="For each photo (files, folders, globs), one JSON line: every face with its "
                                   "box, landmarks, identity (or null: unknown) and distance, decided from that "
                                   "face alone. Open set: a name only when the distance is under "
                                   "faces.match_threshold (default: the model's own, 0.6 for dlib) and beats the "
                                   "second-best person by faces.match_margin. Exit 12 when a photo shows no face "
                                   "(after every line is printed).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photo, folder or glob (several allowed)")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("verify", help="1:1: does each photo show the same person as the first? JSON lines",
                       description="The first photo is compared with each of the others (files, folders, globs), "
                                   "one JSON line per pair. Each photo must show one face: a photo with several is "
                                   "refused (exit 13) unless --largest or a box says which, and the face used is "
                                   "named; a photo with none is exit 12.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="the reference photo, then the photos to compare")
    p.add_argument("--largest", action="store_true", help="where a photo shows several faces, use the largest")
    p.add_argument("--box1", type=box_arg, metavar="X1,Y1,X2,Y2", help="the face of the first photo to use")
    p.add_argument("--box2", type=box_arg, metavar="X1,Y1,X2,Y2",
                   help="the face of the second photo to use (with exactly two photos)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("embed", help="face boxes, landmarks and 128-d descriptors of images (JSON with --json)",
                       description="For each image, every face: box [x1, y1, x2, y2], score, CenterFace's 5 "
                                   "landmarks, dlib's 5 landmarks (the points the chip is cut from) and the "
                                   "descriptor. Compare descriptors with the Euclidean distance (same person below "
                                   "0.6 for dlib's network). Exit 12 when a photo shows no face (after printing). "
                                   "Python: realtime.open_faces().describe(image).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photo, folder or glob (several allowed)")
    p.add_argument("--json", action="store_true", help="print one JSON list, one object per image")
    p.add_argument("--detect-width", type=int, default=STILL_DETECT_WIDTH,
                   help=f"face detection working width (default {STILL_DETECT_WIDTH})")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("gallery", help="list, remove, export, import persons; set door access",
                       description="The gallery is the SQLite file at faces.gallery.")
    gsub = p.add_subparsers(dest="gallery_command", metavar="ACTION")
    gsub.required = True
    q = gsub.add_parser("list", help="persons, embedding counts, access")
    q.add_argument("--json", action="store_true")
    q = gsub.add_parser("remove", help="remove a person and their embeddings")
    q.add_argument("name")
    q = gsub.add_parser("export", help="write everyone to a portable JSON file")
    q.add_argument("file")
    q.add_argument("--overwrite", "--force", dest="force", action="store_true",
                   help="replace an existing file (never the gallery, the audit log or the config)")
    q = gsub.add_parser("import", help="add everyone from an export file (same model only)")
    q.add_argument("file")
    q.add_argument("--replace", action="store_true", help="replace persons that already exist")
    q = gsub.add_parser("access", help="allow or deny a person at the door, optionally within time windows")
    q.add_argument("name")
    q.add_argument("--deny", action="store_true", help="deny instead of allow")
    q.add_argument("--schedule", type=json_list, help='JSON list, e.g. \'[{"days": "mon-fri", "start": "07:00", "end": "20:00"}]\'')
    p.set_defaults(func=cmd_gallery)
