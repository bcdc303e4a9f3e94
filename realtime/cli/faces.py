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


def _models(config, detect_width: int = STILL_DETECT_WIDTH):
    """Detector (at a still-image working width) and embedder, as configured."""
    from realtime.build import open_face_detector, open_face_embedder

    faces = dataclasses.replace(config.faces, detect_width=detect_width)
    detector = open_face_detector(faces, config.runtime)
    try:
        embedder = open_face_embedder(config.faces, config.runtime)
    except BaseException:
        detector.close()
        raise
    return detector, embedder


def _open_gallery(config, embedder, create: bool):
    from realtime.gallery.store import Gallery

    contract = embedder.model.contract
    return Gallery.open(config.faces.gallery, model_sha256=embedder.sha256, model_name=contract.name,
                        embedding_size=contract.embedding_size, create=create)


def cmd_enroll(args: argparse.Namespace) -> int:
    from realtime.build import match_threshold
    from realtime.errors import ConfigError
    from realtime.face.enroll import (check_consistent, collect_samples, enroll_samples, expand_image_paths,
                                      look_alikes, read_image)
    from realtime.gallery.names import check_name

    if bool(args.images) == (args.camera is not None):
        raise ConfigError("enroll needs IMAGE_OR_FOLDER... or --camera INDEX (one of the two)")
    name = check_name(args.name)  # before any model runs: a name that is refused wastes nothing
    config = _config(args)
    faces = config.faces
    detector, embedder = _models(config)
    try:
        if args.camera is not None:
            samples, refused = _camera_samples(config, args, detector, embedder)
        else:
            images = ((str(p), read_image(p)) for p in expand_image_paths(args.images))
            samples, refused = collect_samples(images, detector, embedder, faces.min_face_px, faces.min_sharpness)
        for refusal in refused:
            print(f"refused {refusal.source}: {refusal.reason}", file=sys.stderr)
        threshold = match_threshold(faces, embedder)
        if not args.force:
            check_consistent(samples, threshold, None, name)  # before the gallery is opened (or made)
        with _open_gallery(config, embedder, create=bool(samples)) as gallery:
            vectors, labels = gallery.vectors()
            if not args.force and not args.replace:
                check_consistent(samples, threshold, vectors[labels == name], name)
            for person, distance in look_alikes(samples, name, vectors, labels, threshold):
                print(f"warning: the new face of {name!r} already matches {person!r} (distance "
                      f"{distance:.3f} < {threshold}); check that these are different people",
                      file=sys.stderr)
            total = enroll_samples(gallery, name, samples, refused, replace=args.replace)
    finally:
        detector.close()
        embedder.close()
    print(f"enrolled {len(samples)} face(s) for {name!r} ({total} stored) in {config.faces.gallery}")
    return 0


def _camera_samples(config, args, detector, embedder):
    """Up to ``--shots`` accepted faces from a camera, at least 0.5 s apart, within ``--timeout`` seconds."""
    from realtime.io.capture import open_source
    from realtime.errors import EnrollmentError
    from realtime.face.enroll import FaceSample, sample_for_enrolment

    source_config = dataclasses.replace(config.source, policy="latest")
    samples, refused, last_reason = [], [], ""
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
    return samples, refused


def cmd_identify(args: argparse.Namespace) -> int:
    from realtime.build import match_threshold
    from realtime.face.enroll import embed_faces, read_image
    from realtime.face.matching import match_faces
    from realtime.serialize import faces_json

    config = _config(args)
    image = read_image(args.image)
    detector, embedder = _models(config)
    try:
        faces = detector.detect(image)
        _chips, vectors = embed_faces(image, faces, embedder)
        with _open_gallery(config, embedder, create=False) as gallery:
            gallery_vectors, labels = gallery.vectors()
    finally:
        detector.close()
        embedder.close()
    threshold = match_threshold(config.faces, embedder)
    ids, best, second = match_faces(vectors, gallery_vectors, labels, threshold, config.faces.match_margin)
    out = []
    for i, face in enumerate(faces_json(faces, None)):
        face.update(identity=ids[i], distance=_num(best[i]), second_distance=_num(second[i]))
        out.append(face)
    print(json.dumps({"image": str(args.image), "threshold": threshold,
                      "margin": config.faces.match_margin, "faces": out}, indent=2))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from realtime.face.describe import embed_images

    results = embed_images(args.images, _config(args), detect_width=args.detect_width)
    if args.json:
        print(json.dumps(results))
        return 0
    for item in results:
        print(f"{item['image']}: {len(item['faces'])} face(s)")
        for face in item["faces"]:
            x1, y1, x2, y2 = face["box"]
            print(f"  box {x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}  score {face['score']:.2f}  descriptor "
                  f"[{', '.join(f'{v:.3f}' for v in face['descriptor'][:4])}, ...]")
    return 0


def _num(value: float) -> float | None:
    import math

    return None if math.isnan(value) or math.isinf(value) else round(float(value), 4)


def cmd_verify(args: argparse.Namespace) -> int:
    import numpy as np

    from realtime.build import match_threshold
    from realtime.errors import EnrollmentError
    from realtime.face.enroll import embed_faces, read_image

    config = _config(args)
    images = [read_image(args.image1), read_image(args.image2)]
    detector, embedder = _models(config)
    vectors = []
    try:
        for path, image in zip((args.image1, args.image2), images):
            faces = detector.detect(image)
            if len(faces) == 0:
                raise EnrollmentError(f"{path}: no face found")
            heights = faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1]
            largest = int(np.argmax(heights))
            _chips, v = embed_faces(image, faces, embedder)
            vectors.append(v[largest])
    finally:
        detector.close()
        embedder.close()
    distance = float(np.linalg.norm(vectors[0] - vectors[1]))
    threshold = match_threshold(config.faces, embedder)
    same = distance < threshold
    print(json.dumps({"image1": str(args.image1), "image2": str(args.image2), "distance": round(distance, 4),
                      "threshold": threshold, "same_person": same}, indent=2))
    return 0


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

    p = sub.add_parser("identify", help="1:K: who is in this image? prints JSON",
                       description="Each face with its box, landmarks, identity (or null: unknown) and distance. "
                                   "Open set: a name only when the distance is under faces.match_threshold "
                                   "(default: the model's own, 0.6 for dlib) and "
                                   "beats the second-best person by faces.match_margin.")
    p.add_argument("image")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("verify", help="1:1: are the largest faces of two images the same person? prints JSON")
    p.add_argument("image1")
    p.add_argument("image2")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("embed", help="face boxes, landmarks and 128-d descriptors of images (JSON with --json)",
                       description="For each image, every face: box [x1, y1, x2, y2], score, CenterFace's 5 "
                                   "landmarks, dlib's 5 landmarks (the points the chip is cut from) and the "
                                   "descriptor. Compare descriptors with the Euclidean distance (same person below "
                                   "0.6 for dlib's network). Python: realtime.face.describe.embed_images(paths).")
    p.add_argument("images", nargs="+", metavar="IMAGE")
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
