"""``rtv run``, ``rtv annotate`` and ``rtv demo``: frames from a source through the pipeline into sinks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realtime.cli.args import (EXIT_OUTPUT, EXIT_SOURCE, add_metrics_json, add_overwrite, float_range,
                               guard_outputs, int_range, load_from_args, signal_name)

DEMO_FILES = ("demo_input.mp4", "demo_gallery.sqlite", "demo_annotated.mp4", "demo.jsonl", "demo_metrics.json")
MAX_DEMO_SECONDS = 600.0


def _finish(outcome, metrics_json: str | None, title: str) -> int:
    from realtime.io.paths import write_json_atomic
    from realtime.metrics import format_summary

    result = outcome.result
    print(format_summary(outcome.summary, title), file=sys.stderr)
    if metrics_json:
        write_json_atomic(metrics_json, {"result": result.__dict__, **outcome.summary})
    if result.reason == "output-error":
        print(f"rtv: error: {result.error} (stopped at frame {result.frames})", file=sys.stderr)
        return EXIT_OUTPUT
    if result.reason == "error":
        print(f"rtv: stopped at frame {result.frames}: {result.error} (outputs were finalised up to there)",
              file=sys.stderr)
        return EXIT_SOURCE
    if result.reason in ("interrupted", "terminated"):
        from realtime.io.interrupts import exit_code_for_interrupt, first_signal

        how = signal_name(first_signal())
        print(f"rtv: {how} after {result.frames} frames (outputs were finalised)", file=sys.stderr)
        return exit_code_for_interrupt()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from realtime.session import run_live

    config = load_from_args(args)
    guard_outputs({"--out": args.out, "--jsonl": args.jsonl, "--metrics-json": args.metrics_json}, config,
                  inputs=[args.source or config.source.uri], overwrite=args.overwrite)
    if not args.no_window:
        from realtime.io.display import require_display

        require_display()
    outcome = run_live(config, args.source, show_window=not args.no_window,
                       out_mp4=Path(args.out) if args.out else None,
                       out_jsonl=Path(args.jsonl) if args.jsonl else None, max_frames=args.max_frames)
    return _finish(outcome, args.metrics_json, "run")


def cmd_annotate(args: argparse.Namespace) -> int:
    from realtime.session import annotate
    from realtime.errors import ConfigError

    if not args.out and not args.jsonl:
        raise ConfigError("annotate needs --out FILE.mp4 and/or --jsonl FILE.jsonl")
    config = load_from_args(args)
    guard_outputs({"--out": args.out, "--jsonl": args.jsonl, "--metrics-json": args.metrics_json}, config,
                  inputs=[args.input], overwrite=args.overwrite)
    outcome = annotate(config, args.input, Path(args.out) if args.out else None,
                       Path(args.jsonl) if args.jsonl else None, progress=not args.no_progress,
                       max_frames=args.max_frames)
    for name in (args.out, args.jsonl):
        if name and Path(name).is_file():
            print(f"wrote {name}", file=sys.stderr)
    return _finish(outcome, args.metrics_json, "annotate")


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from realtime.samples.clips import enroll_demo_faces, write_demo_clip
    from realtime.cli.args import kept_files
    from realtime.io.paths import check_output_dir
    from realtime.session import annotate

    config = load_from_args(args)
    out = Path(args.out_dir)
    kept = kept_files(config)
    check_output_dir("--out-dir", out, DEMO_FILES, kept)
    if args.metrics_json:
        guard_outputs({"--metrics-json": args.metrics_json}, config, overwrite=args.overwrite)
    clip = write_demo_clip(out / "demo_input.mp4", seconds=args.seconds)
    print(f"demo clip: {clip} (scikit-image photos: astronaut, cameraman, coffee cup, motorcycle, cat)", file=sys.stderr)
    if config.faces.enabled and config.faces.recognize:
        gallery = out / "demo_gallery.sqlite"
        names = enroll_demo_faces(config, gallery)
        config = dataclasses.replace(config, faces=dataclasses.replace(config.faces, gallery=str(gallery)))
        print(f"demo gallery: {gallery} ({', '.join(names)} enrolled from their photos)", file=sys.stderr)
    outcome = annotate(config, str(clip), out / "demo_annotated.mp4", out / "demo.jsonl",
                       progress=not args.no_progress)
    written = [str(f) for f in (out / "demo_annotated.mp4", out / "demo.jsonl") if f.is_file()]
    if written:
        print(f"wrote {' and '.join(written)}", file=sys.stderr)
    code = _finish(outcome, args.metrics_json or str(out / "demo_metrics.json"), "demo")
    gallery_path = Path(config.faces.gallery) if config.faces.enabled and config.faces.recognize else None
    print(f"replay it live with the demo's gallery:\n  {replay_command(args, clip, gallery_path)}", file=sys.stderr)
    return code


def replay_command(args: argparse.Namespace, clip: Path, gallery: Path | None) -> str:
    """The ``rtv run`` command line that plays ``clip`` live (paced at its frame rate) with ``gallery``, keeping
    the demo's --config and --set options; paths absolute so it works from any folder."""
    import shlex

    words = ["rtv", "run", "--source", str(Path(clip).resolve())]
    if getattr(args, "config", None):
        words += ["--config", str(Path(args.config).resolve())]
    for item in getattr(args, "set", None) or []:
        if not item.startswith(("faces.gallery=", "source.pace=")):
            words += ["--set", item]
    if gallery is not None:
        words += ["--set", f"faces.gallery={Path(gallery).resolve()}"]
    words += ["--set", "source.pace=true"]
    return shlex.join(words)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="live view from a camera, stream, file or image folder, with overlays",
                       description="Live view. Keys: q/Esc quit, space pause, o overlays on/off, s next style. "
                                   "Uses the newest frame only (frames that arrive while busy are dropped and "
                                   "counted) unless source.policy says 'every'.")
    p.add_argument("--source", help="camera index (0), video file, rtsp/http URL, image folder or glob "
                                    "(default: source.uri from config)")
    p.add_argument("--no-window", action="store_true", help="headless: no OpenCV window")
    p.add_argument("--out", metavar="FILE.mp4", help="also record the annotated view (H.264)")
    p.add_argument("--jsonl", metavar="FILE.jsonl", help="also write per-frame results as JSON Lines")
    p.add_argument("--max-frames", type=int_range(1), help="stop after N frames")
    add_metrics_json(p)
    add_overwrite(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("annotate", help="annotate a video file or image folder: H.264 MP4 + JSONL sidecar",
                       description="Process every frame (none dropped), write an annotated browser-playable H.264 "
                                   "MP4 and/or a JSON Lines file with one object per frame. A damaged input is "
                                   "annotated up to the damage; the last JSONL line says where and why it stopped.")
    p.add_argument("input", help="video file, image folder or glob")
    p.add_argument("--out", metavar="FILE.mp4", help="annotated video (H.264)")
    p.add_argument("--jsonl", metavar="FILE.jsonl", help="per-frame results")
    p.add_argument("--max-frames", type=int_range(1), help="stop after N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_metrics_json(p)
    add_overwrite(p)
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("demo", help="build the built-in demo clip (scikit-image photos) and annotate it headless",
                       description="No webcam or network needed: makes a short 640x480 clip from public-domain "
                                   "photos that ship with scikit-image and annotates it.")
    p.add_argument("--out-dir", default="out/demo", help="where the clip, MP4, JSONL and metrics go "
                                                         "(default out/demo)")
    p.add_argument("--seconds", type=float_range(0.0, MAX_DEMO_SECONDS, low_open=True), default=4.0,
                   help=f"clip length, up to {MAX_DEMO_SECONDS:g} (default 4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_metrics_json(p)
    add_overwrite(p)
    p.set_defaults(func=cmd_demo)
