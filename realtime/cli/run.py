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


def _is_stream(text: str) -> bool:
    return text.strip().isdigit() or "://" in text


def cmd_annotate(args: argparse.Namespace) -> int:
    """One video (or stream): an MP4 and a JSONL. Photos, folders, globs and several inputs: each photo annotated
    on its own at its own size (an image of the same name and format), each video into an MP4 of its name, and one
    JSONL whose rows name their file. With no --out/--jsonl: a new numbered folder under output.runs_dir."""
    from realtime.io.capture import expand_inputs, is_image
    from realtime.style.stage import offline_style

    config = offline_style(load_from_args(args))  # files: style keeps its configured width
    inputs = list(args.input)
    if len(inputs) == 1 and (_is_stream(inputs[0]) or not (is_image(inputs[0]) or Path(inputs[0]).is_dir()
                                                              or any(c in inputs[0] for c in "*?["))):
        return _annotate_video(args, config, inputs[0])
    return _annotate_files(args, config, inputs, expand_inputs(inputs))


def _run_dir(config) -> Path:
    from realtime.session import new_run_dir

    return new_run_dir(config.output.runs_dir, "annotate")


def _annotate_video(args: argparse.Namespace, config, uri: str) -> int:
    from realtime.api import Vision
    from realtime.session import annotate

    out, jsonl, folder = args.out, args.jsonl, None
    if not out and not jsonl:
        if not _is_stream(uri) and not Path(uri).exists():
            from realtime.errors import SourceError

            raise SourceError(f"source not found: {uri} (give a video file, a photo, a folder, a glob or a URL)")
        folder = _run_dir(config)
        stem = Path(uri).stem if not _is_stream(uri) else "stream"
        out, jsonl = str(folder / f"{stem}.mp4"), str(folder / f"{stem}.jsonl")
    try:
        guard_outputs({"--out": out, "--jsonl": jsonl, "--metrics-json": args.metrics_json}, config,
                      inputs=[uri], overwrite=args.overwrite)
    except BaseException:
        _drop_if_empty(folder)
        raise
    with Vision(config) as vision:
        outcome = annotate(config, uri, Path(out) if out else None, Path(jsonl) if jsonl else None,
                           progress=not args.no_progress, max_frames=args.max_frames,
                           pipeline=vision.video_pipeline(), source_name=uri)
    for name in (out, jsonl):
        if name and Path(name).is_file():
            print(f"wrote {name}", file=sys.stderr)
    if folder is not None:
        print(f"results in {folder}", file=sys.stderr)
    return _finish(outcome, args.metrics_json, "annotate")


def _drop_if_empty(folder: Path | None) -> None:
    if folder is not None:
        try:
            folder.rmdir()
        except OSError:
            pass


def file_jobs(paths: list[Path], out: Path | None, single_file: bool) -> list:
    """Where each input's annotated copy goes: a photo keeps its name (and format), a video becomes NAME.mp4;
    names met twice get _2, _3, ... ``single_file``: ``out`` is the one photo's output file."""
    from realtime.io.capture import is_image
    from realtime.session import FileJob

    if out is None:
        return [FileJob(p, None) for p in paths]
    if single_file:
        return [FileJob(paths[0], out)]
    jobs, used = [], set()
    for p in paths:
        name = p.name if is_image(p) else f"{p.stem}.mp4"
        stem, suffix, k = Path(name).stem, Path(name).suffix, 1
        while name.lower() in used:
            k += 1
            name = f"{stem}_{k}{suffix}"
        used.add(name.lower())
        jobs.append(FileJob(p, out / name))
    return jobs


def _annotate_files(args: argparse.Namespace, config, inputs: list[str], paths: list[Path]) -> int:
    from realtime.api import Vision
    from realtime.errors import ConfigError
    from realtime.io.capture import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image
    from realtime.io.paths import write_json_atomic
    from realtime.session import annotate_files

    folder = None
    single_photo = len(paths) == 1 and is_image(paths[0])
    out = Path(args.out) if args.out else None
    jsonl = Path(args.jsonl) if args.jsonl else None
    if out is None and jsonl is None:
        folder = out = _run_dir(config)
        name = Path(inputs[0]).stem if len(inputs) == 1 and not any(c in inputs[0] for c in "*?[") else "results"
        jsonl = folder / f"{name or 'results'}.jsonl"
    single_file = single_photo and out is not None and folder is None and out.suffix.lower() in IMAGE_SUFFIXES
    if out is not None and not single_file and out.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
        _drop_if_empty(folder)
        raise ConfigError(f"--out {out}: give a folder when annotating {'photos' if len(paths) > 1 else 'a photo'} "
                          "(each annotated file keeps its input's name), or one image file for one photo")
    jobs = file_jobs(paths, out, single_file)
    try:
        if out is not None and not single_file:
            out.mkdir(parents=True, exist_ok=True)
        outputs = {f"output {i + 1} of {len(jobs)}:": job.output for i, job in enumerate(jobs)}
        guard_outputs({**outputs, "--jsonl": jsonl, "--metrics-json": args.metrics_json}, config,
                      inputs=inputs, overwrite=args.overwrite)
    except BaseException:
        _drop_if_empty(folder)
        raise
    with Vision(config) as vision:
        outcome = annotate_files(vision, jobs, jsonl, progress=not args.no_progress)
    result = outcome.result
    kinds = [f"{outcome.photos} photo(s)"] + ([f"{outcome.videos} video(s)"] if outcome.videos else [])
    where = folder or (out if out is not None and not single_file else None)
    print(f"annotated {' and '.join(kinds)}" + (f"; results in {where}" if where else ""), file=sys.stderr)
    if single_file:
        print(f"wrote {out}", file=sys.stderr)
    if jsonl is not None and jsonl.is_file():
        print(f"wrote {jsonl}", file=sys.stderr)
    if args.metrics_json:
        write_json_atomic(args.metrics_json, {"result": result.__dict__, "photos": outcome.photos,
                                              "videos": outcome.videos,
                                              "failed": [{"input": i, "error": e} for i, e in outcome.failed]})
    for name, reason in outcome.failed:
        print(f"rtv: failed {name}: {reason}", file=sys.stderr)
    if result.reason == "output-error":
        print(f"rtv: error: {result.error}", file=sys.stderr)
        return EXIT_OUTPUT
    if result.reason in ("interrupted", "terminated"):
        from realtime.io.interrupts import exit_code_for_interrupt, first_signal

        print(f"rtv: {signal_name(first_signal())} (outputs were finalised)", file=sys.stderr)
        return exit_code_for_interrupt()
    return EXIT_SOURCE if outcome.failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from realtime.bench.clips import enroll_demo_faces, write_demo_clip
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

    p = sub.add_parser("annotate", help="annotate videos and photos: H.264 MP4s, annotated images, JSONL",
                       description="A video: every frame (none dropped) into an annotated browser-playable H.264 "
                                   "MP4 and/or a JSON Lines file with one object per frame; a damaged video is "
                                   "annotated up to the damage and the last JSONL line says where and why it "
                                   "stopped. Photos (a file, a folder, a glob, several): each on its own, at its "
                                   "own size, into an annotated image of the same name and format, and one JSONL "
                                   "whose rows name their file; folders may mix photos and videos. Without "
                                   "--out/--jsonl the results go to a new numbered folder under output.runs_dir "
                                   "(runs/annotate/1, 2, ...), printed at the end.")
    p.add_argument("input", nargs="+", help="video file, stream URL, photo, folder or glob (several allowed)")
    p.add_argument("--out", metavar="FILE_OR_FOLDER",
                   help="annotated video (FILE.mp4); for photos a folder (or one image file for one photo)")
    p.add_argument("--jsonl", metavar="FILE.jsonl", help="per-frame results (one JSONL for all inputs)")
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
