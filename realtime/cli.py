"""``rtv``: the one command line. Only this module turns errors into messages and exit codes.

Heavy imports happen inside the handlers, after thread settings are fixed, so ``rtv --help`` is instant and the
serving commands never import torch. Commands that need PyTorch (export, train) import it only when run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
DEFAULT_CONFIG_NAME = "config.yaml"

log = logging.getLogger("rtv")


def load_from_args(args: argparse.Namespace):
    """The config named by --config (else ./config.yaml, else defaults) with --set overrides applied."""
    from realtime.config import dump_config, load_config

    path = args.config
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = DEFAULT_CONFIG_NAME
    config = load_config(path, args.set or [])
    log.debug("config (%s):\n%s", path or "built-in defaults", dump_config(config))
    return config


def _finish(outcome, metrics_json: str | None, title: str) -> int:
    from realtime.metrics import format_summary, write_json

    result = outcome.result
    print(format_summary(outcome.summary, title), file=sys.stderr)
    if metrics_json:
        write_json(metrics_json, {"result": result.__dict__, **outcome.summary})
    if result.reason == "error":
        print(f"rtv: stopped at frame {result.frames}: {result.error} (outputs were finalised up to there)",
              file=sys.stderr)
        return 3
    if result.reason == "interrupted":
        print(f"rtv: interrupted after {result.frames} frames (outputs were finalised)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


# ---------------------------------------------------------------- handlers


def cmd_run(args: argparse.Namespace) -> int:
    from realtime.app import run_live

    config = load_from_args(args)
    outcome = run_live(config, args.source, show_window=not args.no_window,
                       out_mp4=Path(args.out) if args.out else None,
                       out_jsonl=Path(args.jsonl) if args.jsonl else None, max_frames=args.max_frames)
    return _finish(outcome, args.metrics_json, "run")


def cmd_annotate(args: argparse.Namespace) -> int:
    from realtime.app import annotate
    from realtime.errors import ConfigError

    if not args.out and not args.jsonl:
        raise ConfigError("annotate needs --out FILE.mp4 and/or --jsonl FILE.jsonl")
    config = load_from_args(args)
    outcome = annotate(config, args.input, Path(args.out) if args.out else None,
                       Path(args.jsonl) if args.jsonl else None, progress=not args.no_progress,
                       max_frames=args.max_frames)
    for name in (args.out, args.jsonl):
        if name:
            print(f"wrote {name}", file=sys.stderr)
    return _finish(outcome, args.metrics_json, "annotate")


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from realtime.app import annotate
    from realtime.demo_clip import enroll_demo_faces, write_demo_clip

    config = load_from_args(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip = write_demo_clip(out / "demo_input.mp4", seconds=args.seconds)
    print(f"demo clip: {clip} (scikit-image photos: astronaut, cameraman, coffee, cat)", file=sys.stderr)
    if config.faces.enabled and config.faces.recognize:
        gallery = out / "demo_gallery.sqlite"
        names = enroll_demo_faces(config, gallery)
        config = dataclasses.replace(config, faces=dataclasses.replace(config.faces, gallery=str(gallery)))
        print(f"demo gallery: {gallery} ({', '.join(names)} enrolled from their photos)", file=sys.stderr)
    outcome = annotate(config, str(clip), out / "demo_annotated.mp4", out / "demo.jsonl",
                       progress=not args.no_progress)
    print(f"wrote {out / 'demo_annotated.mp4'} and {out / 'demo.jsonl'}", file=sys.stderr)
    return _finish(outcome, args.metrics_json or str(out / "demo_metrics.json"), "demo")


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from realtime.app import bench_pipeline
    from realtime.demo_clip import cached_demo_clip
    from realtime.metrics import format_summary, write_json

    config = load_from_args(args)
    clip = Path(args.clip) if args.clip else cached_demo_clip()
    report = bench_pipeline(config, clip)
    print(f"pipeline: {', '.join(report['stages']) or '(no stages)'}; clip {clip}")
    print(format_summary(report["throughput"], "throughput (every frame, unpaced)"))
    print(format_summary(report["live"], "live (clip replayed at its frame rate, newest frame only)"))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def cmd_bench_faces(args: argparse.Namespace) -> int:
    from realtime.build import match_threshold, open_face_detector, open_face_embedder
    from realtime.face.bench import bench_faces, format_report
    from realtime.metrics import write_json

    config = load_from_args(args)
    detector = open_face_detector(config.faces, config.runtime)
    embedder = open_face_embedder(config.faces, config.runtime)
    try:
        report = bench_faces(detector, embedder, n_faces=args.faces, repeats=args.repeats,
                             reembed_every=config.faces.reembed_every,
                             match_threshold=match_threshold(config.faces, embedder),
                             match_margin=config.faces.match_margin)
    finally:
        detector.close()
        embedder.close()
    report["detect_width"] = config.faces.detect_width
    report["threads"] = {"intra_op": config.runtime.intra_op_threads, "opencv": config.runtime.opencv_threads}
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from realtime import doctor

    config = load_from_args(args)
    report = doctor.collect(config, camera_index=None if args.no_camera else args.camera)
    print(doctor.to_json(report) if args.json else doctor.format_report(report))
    return 0


# ---------------------------------------------------------------- parser


class _SubParser(argparse.ArgumentParser):
    """Every (sub)command also takes the global options."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parents", [global_options()])
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


COMMAND_GROUPS = {
    "bench": ("benchmarks (not tests): pipeline, faces, detector, style",
              "Benchmarks print tables and can write JSON. They measure; they never pass or fail. This machine may "
              "be shared: compare figures from one run."),
    "export": ("PyTorch -> ONNX with the model contract and a parity check (needs torch)",
               "Export ONNX opset 17 with the model contract in its metadata and prove parity with PyTorch (and with "
               "the original release, for imported weights). Fails when parity is beyond tolerance."),
    "train": ("train or fine-tune networks in PyTorch (needs torch)",
              "Training commands. They write state-dict checkpoints and plots; export a checkpoint to ONNX with "
              "'rtv export ...'."),
    "eval": ("evaluate models on labelled data", "Evaluate models on labelled data."),
    "import": ("other frameworks' models -> rtv ONNX with the contract (needs torch)",
               "Import a model trained elsewhere (darknet) into rtv: ONNX with the model contract and parity."),
}


def command_group(sub: argparse._SubParsersAction, name: str) -> argparse._SubParsersAction:
    """The sub-commands of group ``name`` (one of :data:`COMMAND_GROUPS`), made on first use, so several modules
    can add commands to one group."""
    groups = sub.__dict__.setdefault("_rtv_groups", {})
    if name not in groups:
        help_text, description = COMMAND_GROUPS[name]
        parser = sub.add_parser(name, help=help_text, description=description)
        group = parser.add_subparsers(dest=f"{name}_command", metavar="WHAT")
        group.required = True
        groups[name] = group
    return groups[name]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-json", metavar="FILE", help="also write the run's metrics as JSON to FILE")


def _add_globals(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--config", metavar="FILE", default=default,
                        help="config YAML (default: ./config.yaml if it exists)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=default,
                        help="override a config value, e.g. --set faces.detect_width=256 (repeatable)")
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="info-level logs (stages, providers, config)")


def global_options() -> argparse.ArgumentParser:
    """--config/--set/--debug/-v, accepted before or after the command name."""
    parent = argparse.ArgumentParser(add_help=False)
    _add_globals(parent, argparse.SUPPRESS)
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtv",
        description="Real-time vision on ONNX Runtime: object detection, faces with identities, door access, "
                    "style transfer. Config comes from --config (default ./config.yaml if present, else built-in "
                    "defaults), overridden by --set section.key=value.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_globals(parser, argparse.SUPPRESS)
    parser.set_defaults(config=None, set=None, debug=False, verbose=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)
    sub.required = True

    p = sub.add_parser("run", help="live view from a camera, stream, file or image folder, with overlays",
                       description="Live view. Keys: q/Esc quit, space pause, o overlays on/off, s next style. "
                                   "Uses the newest frame only (frames that arrive while busy are dropped and "
                                   "counted) unless source.policy says 'every'.")
    p.add_argument("--source", help="camera index (0), video file, rtsp/http URL, image folder or glob "
                                    "(default: source.uri from config)")
    p.add_argument("--no-window", action="store_true", help="headless: no OpenCV window")
    p.add_argument("--out", metavar="FILE.mp4", help="also record the annotated view (H.264)")
    p.add_argument("--jsonl", metavar="FILE.jsonl", help="also write per-frame results as JSON Lines")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("annotate", help="annotate a video file or image folder: H.264 MP4 + JSONL sidecar",
                       description="Process every frame (none dropped), write an annotated browser-playable H.264 "
                                   "MP4 and/or a JSON Lines file with one object per frame. A damaged input is "
                                   "annotated up to the damage; the last JSONL line says where and why it stopped.")
    p.add_argument("input", help="video file, image folder or glob")
    p.add_argument("--out", metavar="FILE.mp4", help="annotated video (H.264)")
    p.add_argument("--jsonl", metavar="FILE.jsonl", help="per-frame results")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("demo", help="build the built-in demo clip (scikit-image photos) and annotate it headless",
                       description="No webcam or network needed: makes a short 640x480 clip from public-domain "
                                   "photos that ship with scikit-image and annotates it.")
    p.add_argument("--out-dir", default="out/demo", help="where the clip, MP4, JSONL and metrics go "
                                                         "(default out/demo)")
    p.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=cmd_demo)

    bench_sub = command_group(sub, "bench")
    p = bench_sub.add_parser("pipeline", help="the whole configured pipeline on the demo clip, headless",
                             description="Two runs: every frame unpaced (throughput, per-stage ms p50/p95) and the "
                                         "clip replayed at 30 FPS with the newest-frame policy (FPS held, dropped "
                                         "frames, capture-to-output latency).")
    p.add_argument("--clip", help="video to use instead of the built-in demo clip")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.set_defaults(func=cmd_bench_pipeline)

    p = bench_sub.add_parser("faces", help="face stage per part: detect, align, embed (batch vs single), search",
                             description="A 640x480 frame with several real faces (scikit-image photos), a random "
                                         "gallery of 300 embeddings; per-part p50/p95 ms and the whole face stage "
                                         "in steady state.")
    p.add_argument("--faces", type=int, default=3, help="faces in the frame (default 3)")
    p.add_argument("--repeats", type=int, default=50, help="timed repeats per part (default 50)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.set_defaults(func=cmd_bench_faces)

    p = sub.add_parser("doctor", help="versions, video I/O backends, ONNX Runtime providers, models, camera")
    p.add_argument("--camera", type=int, default=0, help="camera index to try (default 0)")
    p.add_argument("--no-camera", action="store_true", help="do not try to open a camera")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Command groups that live in their own modules (faces, detector, export, ...)."""
    from export import commands as export_commands
    from export import darknet_commands, detector_commands
    from export import style_commands, train_commands
    from realtime import bench_style, cli_door, cli_faces

    return [cli_faces.register, export_commands.register, detector_commands.register, darknet_commands.register,
            train_commands.register,
            cli_door.register, style_commands.register, bench_style.register]


def _configure_environment() -> None:
    """Before numpy/OpenCV load: keep BLAS/OpenMP pools from fighting ONNX Runtime on small machines, and keep
    OpenCV's and FFmpeg's own log lines off stderr (our errors say what failed in one line)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def main(argv: list[str] | None = None) -> int:
    _configure_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else (logging.INFO if args.verbose else logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    from realtime.errors import RtvError

    try:
        return int(args.func(args) or 0)
    except RtvError as exc:
        if args.debug:
            raise
        print(f"rtv: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rtv: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not bad input: still one line, with the way to see more
        if args.debug:
            raise
        print(f"rtv: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
