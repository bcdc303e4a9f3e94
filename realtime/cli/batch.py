"""``rtv batch``: annotate many files on a local process pool or a Ray cluster; ``rtv bench batch``: its scaling.

Exit codes of ``rtv batch``: 0 every input done (or skipped: done before with the same bytes and config);
11 the batch ran to the end but at least one input failed (``batch.jsonl`` says which and why); 130 interrupted
(Ctrl-C), 143 stopped by SIGTERM, 129 by SIGHUP
(re-run the same command to resume); 2-10 the batch could not start (bad config or arguments 2, model 4, gallery 5,
an output refused or the out-dir unusable 6; one line on stderr), as for every rtv command.
"""

from __future__ import annotations

import argparse
import sys

from realtime.cli.args import EXIT_INTERRUPTED, command_group, kept_files, load_from_args, write_json_output

EXIT_SOME_FAILED = 11


def cmd_batch(args: argparse.Namespace) -> int:
    from realtime.batch.progress import ProgressBar
    from realtime.batch.run import run_batch

    config = load_from_args(args)
    result = run_batch(config, args.inputs, args.out_dir, workers=args.workers, ray_address=args.ray,
                       overwrite=args.overwrite, reporter=ProgressBar(enabled=not args.no_progress),
                       protected=kept_files(config))
    counts = ", ".join(f"{n} {status}" for status, n in result.counts().items())
    where = (f"{result.workers} Ray actors" if result.runner == "ray" else
             f"{result.workers} local worker{'s' if result.workers != 1 else ''} x {result.threads} thread"
             f"{'s' if result.threads != 1 else ''}")
    print(f"batch: {len(result.records)} inputs: {counts} in {result.wall_s:.1f} s on {where}; "
          f"ledger {args.out_dir}/batch.jsonl", file=sys.stderr)
    if result.interrupted:
        import signal

        if result.signum in (None, signal.SIGINT):
            print("rtv: batch interrupted; run the same command again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"rtv: batch stopped by {signal.Signals(result.signum).name} (the inputs in flight are recorded as "
              "interrupted); run the same command again to resume", file=sys.stderr)
        return 128 + int(result.signum)
    return 0 if result.ok else EXIT_SOME_FAILED


def cmd_bench_batch(args: argparse.Namespace) -> int:
    from realtime.batch.bench import bench_batch, format_report

    from realtime.cli.args import guard_output_dir, guard_outputs

    config = load_from_args(args)
    guard_outputs({"--json": args.json}, config, overwrite=args.overwrite)
    guard_output_dir("--work-dir", args.work_dir, config)
    report = bench_batch(config, clips=args.clips, seconds=args.seconds, size_wh=tuple(args.size),
                         work_dir=args.work_dir, ray=not args.no_ray)
    print(format_report(report))
    if args.json:
        write_json_output(args.json, report)
        print(f"wrote {args.json}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="annotate many files (folders, globs, lists) on local workers or a Ray cluster, resumable",
        description="Each video becomes OUT_DIR/<name>.mp4 and OUT_DIR/<name>.jsonl, each photo an annotated "
                    "image of its own size and format (OUT_DIR/<name>.jpg, ...) and OUT_DIR/<name>.jsonl (as "
                    "'rtv annotate' writes them); OUT_DIR/batch.jsonl has one line per input: status (done, failed with the error, "
                    "skipped), frames, seconds, sha256. Re-running the same command skips inputs done before with "
                    "the same bytes and config and redoes the rest. One bad file never stops the batch. Ctrl-C "
                    "once: finish the inputs in flight; twice: abandon them (outputs finalised).\n\n"
                    "Exit codes: 0 all inputs done or skipped; 11 some input failed; 130 interrupted (Ctrl-C), "
                    "143 SIGTERM, 129 SIGHUP; 2-10 the "
                    "batch could not start.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video file, folder (its videos, recursively), glob, or list file (@FILE or .txt: one "
                        "input per line)")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="where the outputs and batch.jsonl go")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="worker processes (default 0: one per core); with --ray: actors (default: the "
                        "cluster's CPUs)")
    p.add_argument("--ray", metavar="auto|ADDRESS|local",
                   help="run on Ray: 'auto' (the cluster this machine belongs to), HOST:PORT or ray://HOST:10001, "
                        "or 'local' (a private instance on this machine); needs pip install -e '.[ray]'")
    p.add_argument("--overwrite", action="store_true",
                   help="redo every input and replace existing outputs (default: resume, never replace a file "
                        "the batch did not write)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (still a line per input)")
    p.set_defaults(func=cmd_batch)

    bench = command_group(sub, "bench")
    p = bench.add_parser("batch", help="batch scaling: 1 and 2 local workers and Ray on 2 CPUs, side by side",
                         description="Generates clips (the demo scenes with faces), annotates them with 1 and 2 "
                                     "local workers and on a local Ray instance with 2 CPUs; inputs per minute, "
                                     "frames per second and the speed-up over one worker, all in one run.")
    p.add_argument("--clips", type=int, default=6, help="generated clips (default 6)")
    p.add_argument("--seconds", type=float, default=1.5, help="length of each clip at 30 FPS (default 1.5)")
    p.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"),
                   help="clip size (default 640 480)")
    p.add_argument("--work-dir", default="out/bench_batch", help="clips and outputs (default out/bench_batch)")
    p.add_argument("--no-ray", action="store_true", help="leave out the Ray run")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace --json if it exists")
    p.set_defaults(func=cmd_bench_batch)
