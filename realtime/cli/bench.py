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


def _providers(args: argparse.Namespace, config):
    """Per provider asked for with --providers (else the configured policy alone): its runtime config; the lines
    for providers that are not here are printed."""
    from realtime.bench.providers import provider_runtimes

    if not args.providers:
        return {config.runtime.providers: config.runtime}
    from realtime.errors import ProviderError

    runtimes, missing = provider_runtimes(config.runtime, args.providers)
    for line in missing:
        print(line)
    if not runtimes:
        raise ProviderError(f"none of the providers {', '.join(args.providers)} is usable here")
    return runtimes


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from realtime.samples.clips import cached_bench_clip
    from realtime.bench.pipeline import bench_pipeline, compare_pipeline, format_compare
    from realtime.bench.providers import machine_record
    from realtime.metrics import format_summary

    config = load_from_args(args)
    _guard(args, config, [args.clip])
    clip = Path(args.clip) if args.clip else cached_bench_clip()
    runtimes = _providers(args, config)
    if args.compare or args.providers:
        report = compare_pipeline(config, clip, list(runtimes) if args.providers else None, naive=args.compare)
        print(f"clip {clip}; naive = every stage in sequence, float models on the CPU provider, one thread each; "
              "tuned = the config" + (" on each provider" if args.providers else ""))
        print(format_compare(report))
    else:
        report = bench_pipeline(config, clip)
        print(f"pipeline: {', '.join(report['stages']) or '(no stages)'}; clip {clip}")
        print(format_summary(report["throughput"], "throughput (every frame, unpaced)"))
        print(format_summary(report["live"], "live (clip replayed at its frame rate, newest frame only)"))
    report["machine"] = machine_record(config, runtimes)
    write_report(args.json, report)
    return 0


def cmd_bench_faces(args: argparse.Namespace) -> int:
    from realtime.bench.faces import bench_faces, format_report
    from realtime.zoo import match_threshold, open_face_detector, open_face_embedder
    from realtime.bench.providers import machine_record, side_by_side

    config = load_from_args(args)
    _guard(args, config)
    plan = plan_threads(config.runtime, branches=1)
    apply_process_threads(plan)
    runtimes = _providers(args, config)
    reports = {}
    for label, runtime in runtimes.items():
        detector = open_face_detector(config.faces, runtime, plan)
        embedder = open_face_embedder(config.faces, runtime, plan)
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
        reports[label] = report
        if not args.providers:
            print(format_report(report))
    if args.providers:
        print(f"faces on a 640x480 frame, detect width {config.faces.detect_width}, {args.repeats} repeats per "
              "part, providers one after the other in this process")
        print(side_by_side("p50 per part", {p: {**{k: v["p50_ms"] for k, v in r["parts"].items()},
                                                "detect+recognize (steady)": r["stage_steady_state"]["p50_ms"]}
                                            for p, r in reports.items()}))
        result = {"providers": reports}
    else:
        result = next(iter(reports.values()))
    result["machine"] = machine_record(config, runtimes)
    write_report(args.json, result)
    return 0


def cmd_bench_detector(args: argparse.Namespace) -> int:
    from realtime.bench.detector import bench_detector, bench_nms, format_bench_table
    from realtime.bench.providers import machine_record
    from realtime.zoo import model_path, precision_choice
    from realtime.samples.clips import cached_demo_clip
    from realtime.runtime import RuntimeOptions

    config = load_from_args(args)
    _guard(args, config, [args.clip, args.model, args.checkpoint])
    runtimes = _providers(args, config)
    variants = {}
    for provider, runtime in runtimes.items():
        choice = precision_choice("detector", runtime, bool(args.model or config.detector.model))
        path = Path(args.model) if args.model else model_path("detector", config.detector.model, runtime=runtime)
        label = f"{provider}/{choice.precision}" if args.providers else "onnxruntime"
        variants[label] = (path, RuntimeOptions(providers=provider, precision_hint=choice.hint,
                                                intra_op_threads=args.threads))
    runners = {}
    if args.checkpoint:
        require_torch()
        from export.yolo_export import torch_runner

        runners["pytorch"] = lambda: torch_runner(args.checkpoint, args.threads)
    first_path = next(iter(variants.values()))[0]
    result = bench_detector(first_path, sizes=args.sizes, source=args.clip or cached_demo_clip(),
                            frames=args.frames, threads=args.threads, extra_runners=runners, variants=variants)
    result["nms_1000"] = bench_nms()
    result["machine"] = machine_record(config, runtimes)
    print(format_bench_table(result))
    print("NMS on 1000 candidates (ms): " + json.dumps(result["nms_1000"]))
    write_report(args.json, result)
    return 0


def cmd_bench_style(args: argparse.Namespace) -> int:
    from realtime.bench.providers import machine_record, side_by_side
    from realtime.bench.style import bench_style, format_report
    from realtime.errors import ModelError
    from realtime.style.stage import open_style_model, resolve_styles, zoo_style_files
    from realtime.zoo import runtime_options, style_dir

    from realtime.cli.args import kept_files
    from realtime.io.paths import check_output_dir

    config = load_from_args(args)
    _guard(args, config)
    check_output_dir("--out-dir", args.out_dir, (), kept_files(config))
    model_dir = style_dir(config.style.model_dir)
    files = zoo_style_files(model_dir)
    if not files:
        raise ModelError(f"no style_*.onnx in {model_dir}: 'rtv train style' then 'rtv export style'")
    plan = plan_threads(config.runtime, branches=1)
    apply_process_threads(plan)
    runtimes = _providers(args, config)
    reports = {}
    for label, runtime in runtimes.items():
        models = [open_style_model(p, runtime_options(runtime, plan, "style")) for p in files]
        try:
            students = resolve_styles(config.style.styles, models, quality=False)
            teachers = [m for m in models if m.contract.extra.get("role") == "teacher"]
            report = bench_style(students, teachers[0] if teachers else None, repeats=args.repeats,
                                 out_dir=Path(args.out_dir) / label if args.providers else Path(args.out_dir))
        finally:
            for model in models:
                model.close()
        report["threads"] = plan.to_dict()
        reports[label] = report
        if not args.providers:
            print(format_report(report))
    if args.providers:
        print(side_by_side("style network p50", {
            p: {f"{r['model']} {r['role']} {r['size']}": r["net_ms"]["p50"] for r in rep["speed"]}
            for p, rep in reports.items()}))
        result = {"providers": reports}
    else:
        result = next(iter(reports.values()))
    result["machine"] = machine_record(config, runtimes)
    write_report(args.json, result)
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


def _video_every(path: str, every: int, limit: int):
    from realtime.errors import SourceError
    from realtime.media import sample_video_frames

    frames = sample_video_frames(path, every, limit)
    if not frames:
        raise SourceError(f"--clip {path}: no frames could be read")
    return frames


def _face_frames():
    import numpy as np

    from realtime.bench.faces import faces_frame

    frames = [faces_frame(n) for n in range(1, MAX_BENCH_FACES + 1)]
    return frames + [np.ascontiguousarray(f[:, ::-1]) for f in frames]


def _embedder_chips(args: argparse.Namespace, config):
    """BGR 150x150 chips: the dlib reference chips (faces and non-faces) when given, else chips aligned from the
    face frames by the float models on the CPU provider."""
    import dataclasses

    import numpy as np

    from realtime.errors import ConfigError
    from realtime.zoo import open_face_detector, open_face_embedder

    if args.dlib_reference:
        path = Path(args.dlib_reference)
        if not path.is_file():
            raise ConfigError(f"--dlib-reference {path}: no such file")
        data = np.load(path, allow_pickle=False)
        chips = np.concatenate([data["chips"], data["noface_chips"]])[..., ::-1]
        return np.ascontiguousarray(chips), f"{path.name}: {len(data['chips'])} face + " \
                                            f"{len(data['noface_chips'])} non-face chips"
    runtime = dataclasses.replace(config.runtime, providers="cpu", precision="float")
    detector = open_face_detector(config.faces, runtime)
    embedder = open_face_embedder(config.faces, runtime)
    try:
        chips = []
        for frame in _face_frames():
            faces = detector.detect(frame)
            chips.append(embedder.align(frame, faces.boxes_xyxy, faces.landmarks5)[0])
    finally:
        detector.close()
        embedder.close()
    chips = np.concatenate(chips)
    return chips, f"{len(chips)} chips aligned from the bench face frames"


def cmd_bench_precision(args: argparse.Namespace) -> int:
    import time

    import cv2

    from realtime.bench import precision as prec
    from realtime.bench.style import held_out_frames
    from realtime.cpu import cpu_info
    from realtime.zoo import ZOO_DIR
    config = load_from_args(args)
    _guard(args, config, [args.clip])
    plan = plan_threads(config.runtime, branches=1)
    apply_process_threads(plan)
    threads = args.threads
    report = {"cpu": cpu_info().to_dict(), "threads": threads, "providers": args.providers,
              "measured": time.strftime("%Y-%m-%d"), "models": [], "skipped": []}
    if "detector" in args.models:
        if args.clip:
            frames = _video_every(args.clip, 3, args.frames)
            block = prec.eval_detector(frames, args.providers, threads, repeats=args.repeats)
            block["clip"] = Path(args.clip).name
            report["models"].append(block)
        else:
            report["skipped"].append("detector: pass --clip with held-out street frames (e.g. OpenCV's vtest.avi)")
    if "faces" in args.models:
        report["models"].append(prec.eval_face_detector(_face_frames(), args.providers, threads,
                                                        repeats=args.repeats))
    if "embedder" in args.models:
        chips, origin = _embedder_chips(args, config)
        report["models"].append(prec.eval_embedder(chips, args.providers, threads, args.repeats, origin))
    if "style" in args.models:
        for path, size in prec.style_students(ZOO_DIR):
            frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in held_out_frames(size).values()]
            report["models"].append(prec.eval_style(path, frames, args.providers, threads,
                                                    repeats=max(3, args.repeats // 2)))
    print(f"cpu {report['cpu']['model']} (class {report['cpu']['isa']}), {threads} thread(s); reference: float on "
          "the CPU provider; variants timed in turn in this run")
    print(prec.format_table(report))
    for line in report["skipped"]:
        print(f"skipped {line}")
    if args.record:
        from realtime.precision import load_manifest

        command = (f"rtv bench precision --providers {' '.join(args.providers)} --models {' '.join(args.models)}"
                   + (f" --clip {Path(args.clip).name}" if args.clip else "")
                   + (f" --dlib-reference {Path(args.dlib_reference).name}" if args.dlib_reference else "")
                   + f" --threads {threads} --record")
        manifest = prec.merge_records(load_manifest(ZOO_DIR), prec.manifest_records(report, command), prec.RULES)
        from realtime.io.paths import write_text_atomic

        write_text_atomic(ZOO_DIR / "MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"recorded {sum(len(b['rows']) for b in report['models'])} verdicts in {ZOO_DIR / 'MANIFEST.json'}")
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
    p.add_argument("--providers", nargs="+", choices=("cpu", "openvino", "cuda"),
                   help="measure on each of these execution providers in this run and print them side by side "
                        "with the ratios (a provider that is not here is named and skipped)")
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
    p.add_argument("--providers", nargs="+", choices=("cpu", "openvino", "cuda"),
                   help="measure on each of these execution providers in this run and print them side by side "
                        "with the ratios (a provider that is not here is named and skipped)")
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
    p.add_argument("--providers", nargs="+", choices=("cpu", "openvino", "cuda"),
                   help="measure on each of these execution providers in this run and print them side by side "
                        "with the ratios (a provider that is not here is named and skipped)")
    p.set_defaults(func=cmd_bench_detector)

    p = bench.add_parser("precision", help="each model in float, bf16 and INT8 per provider: agreement with float "
                                           "(declared rule), ms and ratio, verdict",
                         description="Measures every shipped model's variants (float / bf16 hint / INT8 file) on "
                                     "the providers given against float on the CPU provider, with the rule each "
                                     "model declares, and times them in turn in the same run. --record stores the "
                                     "verdicts in the zoo manifest, where runtime.precision auto reads them.")
    p.add_argument("--providers", nargs="+", choices=("cpu", "openvino", "cuda"), default=["cpu", "openvino"])
    p.add_argument("--models", nargs="+", choices=("detector", "faces", "embedder", "style"),
                   default=["detector", "faces", "embedder", "style"])
    p.add_argument("--clip", help="held-out street video for the detector (every 3rd frame), e.g. OpenCV's "
                                  "vtest.avi; without it the detector is skipped")
    p.add_argument("--frames", type=int_range(1, 100000), default=400, help="at most this many detector frames")
    p.add_argument("--dlib-reference", help="dlib_face_reference.npz: the embedder is measured on its chips")
    p.add_argument("--threads", type=int_range(0, 256), default=1, help="intra-op threads per session (default 1)")
    p.add_argument("--repeats", type=int_range(1, 100000), default=20, help="timed calls per variant")
    p.add_argument("--record", action="store_true", help="store the verdicts in realtime/zoo/MANIFEST.json")
    p.add_argument("--json", metavar="FILE")
    add_overwrite(p)
    p.set_defaults(func=cmd_bench_precision)

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
    p.add_argument("--providers", nargs="+", choices=("cpu", "openvino", "cuda"),
                   help="measure on each of these execution providers in this run and print them side by side "
                        "with the ratios (a provider that is not here is named and skipped)")
    p.set_defaults(func=cmd_bench_style)

    from realtime.cli.serve import register_bench  # rtv bench serve: the HTTP service under concurrent clients

    register_bench(bench)


def write_report(path: str | None, report: dict) -> None:
    """``--json FILE``: the report written atomically (the guard checked FILE before any work), then say so."""
    if path:
        from realtime.io.paths import write_json_atomic

        write_json_atomic(path, report)
        print(f"wrote {path}")
