"""Door commands: ``rtv door``, ``rtv calibrate``, ``rtv audit verify|list|export``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from realtime.cli.args import add_overwrite, float_range, guard_outputs, int_range

EXIT_SOURCE_LOST = 3
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


def _config(args: argparse.Namespace):
    from realtime.cli.args import load_from_args

    config = load_from_args(args)
    if getattr(args, "log", None):
        from realtime.config import resolve_path

        config = dataclasses.replace(config, door=dataclasses.replace(
            config.door, audit=str(resolve_path(args.log, Path.cwd()))))
    return config


def cmd_door(args: argparse.Namespace) -> int:
    from realtime.door.mode import run_door
    from realtime.metrics import format_summary

    config = _config(args)
    guard_outputs({"--jsonl": args.jsonl, "--out": args.out}, config, inputs=[args.source or config.source.uri],
                  overwrite=args.overwrite)
    if args.out:  # refuse an unsupported container before the door starts (and logs a start)
        from realtime.io.video import container_for

        container_for(Path(args.out))
    if not args.no_window:
        from realtime.io.display import require_display

        require_display()
    outcome = run_door(config, args.source, show_window=not args.no_window, max_frames=args.max_frames,
                       out_jsonl=Path(args.jsonl) if args.jsonl else None,
                       out_video=Path(args.out) if args.out else None)
    if outcome.summary:
        print(format_summary(outcome.summary, "door"), file=sys.stderr)
    print(f"door {config.door.door_id}: {len(outcome.grants)} GRANT, {len(outcome.denies)} DENY, "
          f"{len(outcome.alarms)} alarm(s); audit log {config.door.audit}", file=sys.stderr)
    if outcome.result.reason == "error":
        print(f"rtv: door stopped at frame {outcome.result.frames}: {outcome.result.error} (alarm logged; no "
              "GRANT without a camera)", file=sys.stderr)
        return EXIT_SOURCE_LOST
    if outcome.result.reason == "output-error":
        from realtime.cli.args import EXIT_OUTPUT

        print(f"rtv: error: {outcome.result.error} (door stopped at frame {outcome.result.frames}; stop record "
              "written)", file=sys.stderr)
        return EXIT_OUTPUT
    if outcome.result.reason in ("interrupted", "terminated"):
        from realtime.cli.args import signal_name
        from realtime.io.interrupts import exit_code_for_interrupt, first_signal

        print(f"rtv: door {config.door.door_id} {signal_name(first_signal())} after {outcome.result.frames} "
              "frames (stop record written)", file=sys.stderr)
        return exit_code_for_interrupt()
    return 0


def _impostor_vectors(config, folder: str):
    """Embeddings of every face (at least faces.min_face_px tall) in the images of ``folder``."""
    import numpy as np

    from realtime.build import open_face_detector, open_face_embedder
    from realtime.face.enroll import embed_faces, expand_image_paths, read_image

    faces_config = dataclasses.replace(config.faces, detect_width=640)
    detector = open_face_detector(faces_config, config.runtime)
    embedder = open_face_embedder(config.faces, config.runtime)
    vectors = []
    try:
        for path in expand_image_paths([folder]):
            image = read_image(path)
            faces = detector.detect(image)
            if len(faces) == 0:
                continue
            heights = faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1]
            _chips, v = embed_faces(image, faces, embedder)
            vectors.extend(v[heights >= config.faces.min_face_px])
    finally:
        detector.close()
        embedder.close()
    size = 128 if not vectors else len(vectors[0])
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, size), np.float32)


def _kept(config):
    from realtime.cli.args import kept_files

    return kept_files(config)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from realtime.build import model_path
    from realtime.door.calibrate import calibrate, calibration_path, plot_histogram, save_calibration
    from realtime.errors import GalleryError
    from realtime.gallery.store import Gallery
    from realtime.runtime import file_sha256

    config = _config(args)
    gallery_path = Path(config.faces.gallery)
    out = calibration_path(gallery_path)
    plot_file = Path(args.plot) if args.plot else out.with_suffix(".png")
    if plot_file.suffix.lower() not in PLOT_SUFFIXES:
        from realtime.errors import ConfigError

        raise ConfigError(f"--plot {args.plot}: the histogram is written as {', '.join(PLOT_SUFFIXES)}; "
                          "give a file name ending in one of them")
    # The calibration file and the default plot beside the gallery are calibrate's own: it replaces them.
    kept = {k: v for k, v in _kept(config).items() if k != "the gallery's calibration"}
    from realtime.io.paths import check_outputs

    check_outputs({"calibration": out}, kept, overwrite=True)
    check_outputs({"--plot": plot_file}, {**kept, "an input": [args.impostors], "the calibration": [out]},
                  overwrite=args.overwrite or not args.plot)
    if not gallery_path.is_file():
        raise GalleryError(f"no gallery at {gallery_path}; enrol people first ('rtv enroll NAME PHOTO')")
    sha = file_sha256(model_path(config.faces.embedder_model, "face_embedder"))
    with Gallery.open(gallery_path, model_sha256=sha, create=False) as gallery:
        vectors, labels = gallery.vectors()
    extra = _impostor_vectors(config, args.impostors) if args.impostors else None
    target = args.far if args.far is not None else config.door.target_far
    cal, genuine, impostor = calibrate(vectors, labels, target, sha, extra)
    if cal.measurable:
        save_calibration(cal, out)
    plotted = plot_histogram(genuine, impostor, cal.threshold, plot_file,
                             title=f"{gallery_path.name}: threshold {cal.threshold:.3f} at FAR <= {target:g}")
    if args.json:
        print(json.dumps({**cal.to_json(), "stored": cal.measurable, "file": str(out) if cal.measurable else None,
                          "plot": str(plotted) if plotted else None}, indent=2))
    else:
        extra_text = f", {len(extra)} extra impostor face(s)" if extra is not None else ""
        print(f"gallery {gallery_path}: {len(set(labels.tolist()))} person(s), {len(labels)} embedding(s)"
              f"{extra_text}")
        print(f"pairs: {cal.n_genuine} genuine, {cal.n_impostor} impostor")
        tar = "not measured" if cal.tar != cal.tar else f"{cal.tar:.4f}"
        print(f"threshold {cal.threshold:.4f} for target FAR {target:g}: FAR {cal.far:.4g}, TAR {tar}")
        for note in cal.notes:
            print(f"note: {note}")
        if cal.measurable:
            print(f"wrote {out} (door mode uses it when door.use_calibration is true)")
        print(f"wrote {plotted}" if plotted else "no histogram: matplotlib is not installed "
                                                 "(pip install matplotlib)")
    if not cal.measurable:
        raise GalleryError(f"threshold NOT stored: {cal.n_impostor} impostor pair(s) cannot measure a FAR of "
                           f"{target:g} (needs {math.ceil(1 / target)}); add photos of people who are not enrolled "
                           "with --impostors DIR, or enrol more people; door mode keeps door.match_threshold")
    return 0


def _since(text: str) -> str:
    """argparse type of ``--since``: a bad date is a usage error (exit 2)."""
    from realtime.door.audit import normalize_since
    from realtime.errors import AuditError

    try:
        normalize_since(text)
    except AuditError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _head(text: str) -> str:
    from realtime.door.audit import parse_head
    from realtime.errors import ConfigError

    try:
        parse_head(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip().lower()


def cmd_audit(args: argparse.Namespace) -> int:
    from realtime.door.audit import AuditLog, load_key, write_key_file
    from realtime.errors import AuditError
    from realtime.gallery.names import escape_text

    if args.audit_command == "keygen":
        key_path = args.file
        if key_path is None:  # the data folder's key file
            from realtime.data_dir import default_audit_key, prepare_parent

            key_path = str(default_audit_key())
            prepare_parent(key_path)
        print(f"wrote key file {key_path} (key id {write_key_file(key_path)}); set door.audit_key_file to it "
              "before the first door run of a new log, keep it readable only by the door's user, and back it up "
              "apart from the log")
        return 0
    config = _config(args)
    if args.audit_command == "export":
        guard_outputs({"FILE.csv": args.file}, config, overwrite=args.overwrite)
    key_file = args.key_file or config.door.audit_key_file
    key = load_key(key_file, "--key-file" if args.key_file else "door.audit_key_file") if key_file else None
    log_path = config.door.audit
    with AuditLog.open(log_path, create=False, key=key) as audit:
        if args.audit_command == "verify":
            report = audit.verify(expect_head=args.expect_head)
            if not report.ok:
                where = f"at record {report.broken_seq}" if report.broken_seq is not None else "at its end"
                raise AuditError(f"audit log {log_path}: chain broken {where}: {report.problem}; "
                                 f"{report.records} record(s) before it check out")
            kept = f", and it holds the head you kept ({args.expect_head})" if args.expect_head else ""
            print(f"audit log {log_path}: {report.records} record(s), chain intact"
                  f"{' (HMAC-SHA256, key id ' + audit.meta['key_id'] + ')' if audit.keyed else ''}{kept}; head "
                  f"{report.head_text} (keep it elsewhere: 'rtv audit verify --expect-head HEAD' then detects "
                  "records cut off the end)")
        elif args.audit_command == "head":
            print(audit.head())
        elif args.audit_command == "list":
            records = list(audit.records(since=args.since))
            if args.json:
                print(json.dumps(records, indent=2))  # ensure_ascii: control and bidi characters are escaped
            else:
                for r in records:
                    what = r["decision"] or r["kind"].upper()
                    dist = "" if r["distance"] is None else f" d={r['distance']:.3f}"
                    print(f"#{r['seq']:<5} {escape_text(r['ts'])}  {escape_text(r['door_id'])}  {what:<8} "
                          f"{escape_text(r['person']) or '-':<16}{dist}  {escape_text(r['reason'])}")
                print(f"{len(records)} record(s); liveness check: none", file=sys.stderr)
        elif args.audit_command == "export":
            n = audit.export_csv(args.file, since=args.since)
            print(f"exported {n} record(s) to {args.file}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("door", help="door-access mode: decide over face tracks, audit log, unlock hook",
                       description="Office door prototype. NO LIVENESS CHECK: a photo or a screen showing an "
                                   "enrolled person is accepted like the person. Decides per tracked face over "
                                   "several good frames (door.* in config), logs every decision and alarm to the "
                                   "tamper-evident audit log (door.audit), then runs the unlock hook on GRANT. "
                                   "Says at start which threshold it uses (calibrated by 'rtv calibrate', or "
                                   "door.match_threshold). The hook command gets argv [*door.hook_command, '--', "
                                   "PERSON, DOOR_ID] and RTV_PERSON, RTV_DOOR_ID, RTV_AUDIT_SEQ in its environment; "
                                   "it is dropped when not started within door.hook_timeout_s of the GRANT and "
                                   "killed (its process group) at the timeout. Gallery changes apply from the next "
                                   "frame. Fail secure: gallery missing, replaced or unreadable -> alarm, no GRANT "
                                   "until it reads again; camera lost -> alarm, door locked, reopened until it is "
                                   "back (door.max_camera_down_s, 0 = forever); model error -> alarm, stop. Keys: "
                                   "q/Esc quit.")
    p.add_argument("--source", help="camera index (0), stream URL, video file (default: source.uri from config)")
    p.add_argument("--no-window", action="store_true", help="headless: no OpenCV window")
    p.add_argument("--max-frames", type=int_range(1), help="stop after N frames")
    p.add_argument("--jsonl", metavar="FILE.jsonl", help="also write per-frame faces and decisions as JSON Lines")
    p.add_argument("--out", metavar="FILE.mp4", help="also record the annotated door view (H.264; .mp4, .mkv, "
                   ".avi or .mov)")
    p.add_argument("--log", metavar="FILE", help="audit log file (default: door.audit from config)")
    add_overwrite(p)
    p.set_defaults(func=cmd_door)

    p = sub.add_parser("calibrate", help="door threshold for a target false-accept rate, from the gallery",
                       description="Genuine and impostor distances from the enrolled gallery (plus faces in "
                                   "--impostors DIR, people who are not enrolled), the threshold at the target "
                                   "FAR, TAR there, and a histogram PNG (needs matplotlib). Stores "
                                   "<gallery>.calibration.json, which door mode uses.")
    p.add_argument("--impostors", metavar="DIR", help="folder of photos of people who are not enrolled")
    p.add_argument("--far", type=float_range(0.0, 1.0, low_open=True, high_open=True),
                   help="target false-accept rate (default door.target_far, 0.001)")
    p.add_argument("--plot", metavar="FILE.png", help="histogram file (default <gallery>.calibration.png)")
    add_overwrite(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("audit", help="the door's audit log: verify the chain, keep its head, list, export CSV",
                       description="Every record carries sha256(previous hash + its content), or an HMAC-SHA256 "
                                   "with the key in door.audit_key_file ('rtv audit keygen'); the first record "
                                   "links to the meta table. 'verify' walks the chain and names the first broken "
                                   "record (exit code 10); 'head' prints SEQ:HASH to keep elsewhere, and "
                                   "'verify --expect-head SEQ:HASH' then also detects records cut off the end and "
                                   "a chain recomputed after an edit.")
    p.add_argument("--log", metavar="FILE", help="audit log file (default: door.audit from config)")
    p.add_argument("--key-file", metavar="FILE", help="key file of a keyed log (default: door.audit_key_file)")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    asub.required = True
    q = asub.add_parser("verify", help="check the chain; non-zero exit naming the first broken record")
    q.add_argument("--expect-head", metavar="SEQ:HASH", type=_head,
                   help="a head printed earlier by 'rtv audit head': the log must still hold that record")
    asub.add_parser("head", help="verify, then print the head (SEQ:HASH) to keep somewhere else")
    q = asub.add_parser("list", help="records, oldest first (control and bidi characters shown escaped)")
    q.add_argument("--since", metavar="ISO", type=_since,
                   help="only records at or after this date/time (local if no zone)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = asub.add_parser("export", help="write the records as CSV (formula-like cells escaped with a leading ')")
    q.add_argument("file", metavar="FILE.csv")
    q.add_argument("--since", metavar="ISO", type=_since, help="only records at or after this date/time")
    add_overwrite(q)
    q = asub.add_parser("keygen", help="create a new key file (64 random hex digits, mode 0600) for a keyed log")
    q.add_argument("file", metavar="KEYFILE", nargs="?",
                   help="where to write the key (default: door_audit.key in the data folder; 'rtv doctor' prints it)")
    p.set_defaults(func=cmd_audit)
