"""``rtv bench pipeline|faces|detector|style``: benchmarks print tables and can write JSON; they never pass or fail."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from realtime.cli.args import (add_overwrite, command_group, guard_outputs, int_range, load_from_args,
                               require_torch)
from realtime.threads import apply_process_threads, plan_threads

MAX_BENCH_FACES = 8


def _guard(args: argparse.Namespace, config, inputs=()) -> None:
    guard_outputs({"--json": args.json}, config, inputs=inputs, overwrite=args.overwrite)


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from realtime.bench.clips import cached_bench_clip
    from realtime.bench.pipeline import bench_pipeline, compare_pipeline, format_compare
    from realtime.metrics import format_summary

    config = load_from_args(args)
    _guard(args, config, [args.clip])
    clip = Path(args.clip) if args.clip else cached_bench_clip()
    if args.compare:
        report = compare_pipeline(config, clip)
        print(f"clip {clip}; naive = every stage in sequence, float models, one thread each; tuned = the config")
        print(format_compare(report))
    else:
        report = bench_pipeline(config, clip)
        print(f"pipeline: {', '.join(report['stages']) or '(no stages)'}; clip {clip}")
        print(format_summary(report["throughput"], "throughput (every frame, unpaced)"))
        print(format_summary(report["live"], "live (clip replayed at its frame rate, newest frame only)"))
    write_report(args.json, report)
    return 0


def cmd_bench_faces(args: argparse.Namespace) -> int:
    from realtime.build import match_threshold, open_face_detector, open_face_embedder
    from realtime.bench.faces import bench_faces, format_report
    config = load_from_args(args)
    _guard(args, config)
    plan = plan_threads(config.runtime, branches=1)
    apply_process_threads(plan)
    detector = open_face_detector(config.faces, config.runtime, plan)
    embedder = open_face_embedder(config.faces, config.runtime, plan)
    try:
        report = bench_faces(detector, embedder, n_faces=args.faces, repeats=args.repeats,
                             reembed_every=config.faces.reembed_every,
                             match_threshold=match_threshold(config.faces, embedder),
                             match_margin=config.faces.match_margin)
    finally:
        detector.close()
        embedder.close()
    report["detect_width"] = config.faces.detect_width
    report["threads"] = plan.to_dict()
    print(format_report(report))
    write_report(args.json, report)
    return 0


def cmd_bench_detector(args: argparse.Namespace) -> int:
    from realtime.bench.detector import bench_detector, bench_nms, format_bench_table
    from realtime.build import model_path
    from realtime.bench.clips import cached_demo_clip
    config = load_from_args(args)
    _guard(args, config, [args.clip, args.model, args.checkpoint])
    onnx_path = Path(args.model) if args.model else model_path(config.detector.model, "detector")
    runners = {}
    if args.checkpoint:
        require_torch()
        from export.yolo_export import torch_runner

        runners["pytorch"] = lambda: torch_runner(args.checkpoint, args.threads)
    result = bench_detector(onnx_path, sizes=args.sizes, source=args.clip or cached_demo_clip(),
                            frames=args.frames, threads=args.threads, providers=config.runtime.providers,
                            extra_runners=runners)
    result["nms_1000"] = bench_nms()
    print(format_bench_table(result))
    print("NMS on 1000 candidates (ms): " + json.dumps(result["nms_1000"]))
    write_report(args.json, result)
    return 0


def cmd_bench_style(args: argparse.Namespace) -> int:
    from realtime.build import runtime_options
    from realtime.config import ZOO_DIR
    from realtime.errors import ModelError
    from realtime.bench.style import bench_style, format_report
    from realtime.style.stage import open_style_model, resolve_styles, zoo_style_files

    from realtime.cli.args import kept_files
    from realtime.io.paths import check_output_dir

    config = load_from_args(args)
    _guard(args, config)
    check_output_dir("--out-dir", args.out_dir, (), kept_files(config))
    model_dir = Path(config.style.model_dir) if config.style.model_dir else ZOO_DIR
    files = zoo_style_files(model_dir)
    if not files:
        raise ModelError(f"no style_*.onnx in {model_dir}: 'rtv train style' then 'rtv export style'")
    plan = plan_threads(config.runtime, branches=1)
    apply_process_threads(plan)
    models = [open_style_model(p, runtime_options(config.runtime, plan)) for p in files]
    try:
        students = resolve_styles(config.style.styles, models, quality=False)
        teachers = [m for m in models if m.contract.extra.get("role") == "teacher"]
        report = bench_style(students, teachers[0] if teachers else None, repeats=args.repeats,
                             out_dir=Path(args.out_dir))
    finally:
        for model in models:
            model.close()
    report["threads"] = plan.to_dict()
    print(format_report(report))
    write_report(args.json, report)
    return 0


def cmd_bench_every(args: argparse.Namespace) -> int:
    from realtime.bench.every import bench_every, format_every
    from realtime.build import build_detector_stage
    from realtime.errors import ConfigError, ModelError

    config = load_from_args(args)
    _guard(args, config, [args.clip])
    if any(n < 1 for n in args.every):
        raise ConfigError(f"--every {args.every}: each interval must be >= 1")
    if not Path(args.clip).is_file():
        raise ConfigError(f"--clip {args.clip}: no such file")
    stage = build_detector_stage(config)
    if stage is None:
        raise ModelError("no object detector configured or shipped; set detector.model")
    try:
        report = bench_every(stage.detector, args.clip, args.every, max_frames=args.frames)
    finally:
        stage.close()
    print(format_every(report))
    write_report(args.json, report)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    bench = command_group(sub, "bench")
    p = bench.add_parser("pipeline", help="the whole configured pipeline on the bench clip, headless",
                             description="Two runs: every frame unpaced (throughput, per-stage ms p50/p95) and the "
                                         "clip replayed at 30 FPS with the newest-frame policy (FPS held, dropped "
                                         "frames, capture-to-output latency).")
    p.add_argument("--clip", help="video to use instead of the built-in bench clip (640x480, 3 faces, objects)")
    p.add_argument("--compare", action="store_true",
                   help="also run the naive configuration (sequential, float, one thread each) and print both "
                        "with the ratio; --json then writes {runs: {naive, tuned}, speedup}")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    add_overwrite(p)
    p.set_defaults(func=cmd_bench_pipeline)

    p = bench.add_parser("faces", help="face stage per part: detect, align, embed (batch vs single), search",
                             description="A 640x480 frame with several real faces (scikit-image photos), a random "
                                         "gallery of 300 embeddings; per-part p50/p95 ms and the whole face stage "
                                         "in steady state.")
    p.add_argument("--faces", type=int_range(1, MAX_BENCH_FACES), default=3,
                   help=f"faces in the frame, 1 to {MAX_BENCH_FACES} (default 3)")
    p.add_argument("--repeats", type=int_range(1, 100000), default=50, help="timed repeats per part (default 50)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    add_overwrite(p)
    p.set_defaults(func=cmd_bench_faces)

    p = bench.add_parser("detector", help="preprocess / inference / decode+NMS ms at several sizes; ORT vs PyTorch",
                         description="On the demo clip (or --clip). With --checkpoint, PyTorch eager on the same "
                                     "model in the same run. Also times NMS on 1000 candidates.")
    p.add_argument("--model", help="detector .onnx (default: detector.model, else the shipped default)")
    p.add_argument("--checkpoint", help="the model's checkpoint, to time PyTorch eager too (needs torch)")
    p.add_argument("--sizes", type=int_range(32, 4096), nargs="+", default=[320, 416])
    p.add_argument("--frames", type=int_range(1, 100000), default=60)
    p.add_argument("--threads", type=int_range(0, 256), default=1)
    p.add_argument("--clip", help="video instead of the demo clip")
    p.add_argument("--json", metavar="FILE")
    add_overwrite(p)
    p.set_defaults(func=cmd_bench_detector)

    p = bench.add_parser("every", help="detector.every N: agreement with every-frame detection and time saved",
                         description="Runs the configured detector on every frame of --clip, then for each N "
                                     "carries the boxes of every N-th frame to the frames between (as "
                                     "detector.every does) and reports precision/recall/F1 against the every-frame "
                                     "boxes (same class, IoU >= 0.5) and the detector time saved per frame.")
    p.add_argument("--clip", required=True, help="a video, e.g. OpenCV's vtest.avi (Debian opencv-doc)")
    p.add_argument("--every", type=int_range(1, 1000), nargs="+", default=[2, 3, 5])
    p.add_argument("--frames", type=int_range(1, 1000000), help="at most this many frames")
    p.add_argument("--json", metavar="FILE")
    add_overwrite(p)
    p.set_defaults(func=cmd_bench_every)

    p = bench.add_parser("style", help="style models: ms per model and size, student vs teacher PSNR/SSIM, flicker",
                         description="Speed of every shipped style model at several widths (ONNX Runtime, "
                                     "runtime.intra_op_threads) and of the whole stage on a 640x480 frame; PSNR "
                                     "and SSIM of each student against its teacher on held-out photos; flicker on "
                                     "a static noisy scene with and without the stabiliser; preview PNGs "
                                     "(original | teacher | student).")
    p.add_argument("--out-dir", default="out/bench_style", help="where previews go (default out/bench_style)")
    p.add_argument("--repeats", type=int_range(1, 100000), default=20,
                   help="timed runs per student size (teacher: a fifth)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    add_overwrite(p)
    p.set_defaults(func=cmd_bench_style)

    from realtime.cli.serve import register_bench  # rtv bench serve: the HTTP service under concurrent clients

    register_bench(bench)


def write_report(path: str | None, report: dict) -> None:
    """``--json FILE``: the report written atomically (the guard checked FILE before any work), then say so."""
    if path:
        from realtime.io.paths import write_json_atomic

        write_json_atomic(path, report)
        print(f"wrote {path}")
