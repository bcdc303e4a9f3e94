"""``rtv``: the parser that assembles every command, and ``main``, the only place errors become exit codes.

Command modules register themselves through :mod:`realtime.cli.args`; those of ``export/`` and ``models/`` are
imported here only to add their parsers (their handlers import torch when they run), so ``rtv --help`` is instant and
the serving commands never import torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import textwrap
from typing import Callable

from realtime.cli.args import EXIT_INTERNAL, RtvParser, SubParser, add_global_options, exit_code_for


def _registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Every command module's ``register`` (serving commands first; then export, train and eval)."""
    from export import cli as export_cli
    from models.train import cli as train_cli
    from realtime.cli import batch, bench, compat, doctor, door, faces, run, serve

    return [run.register, faces.register, compat.register, door.register, bench.register, doctor.register, batch.register,
            serve.register, export_cli.register, train_cli.register]


#: How ``rtv --help`` groups the commands: (section title, command names in order). A command no section names
#: is listed under "other commands", so a new command is never hidden.
COMMAND_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("see and annotate", ("run", "annotate", "demo", "batch", "serve")),
    ("faces, gallery and door", ("enroll", "identify", "verify", "embed", "faces", "gallery", "door", "calibrate",
                                 "audit")),
    ("models", ("export", "import", "train", "eval", "label")),
    ("tools", ("bench", "doctor")),
)


class TopParser(RtvParser):
    """The ``rtv`` parser: its help lists the commands by section and wraps every text to the terminal."""

    commands: argparse._SubParsersAction | None = None

    def format_help(self) -> str:
        width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120)) - 2
        helps = {action.dest: action.help or "" for action in (self.commands._choices_actions if self.commands
                                                               else [])}
        out = [self.format_usage().rstrip(), "", textwrap.fill(self.description or "", width)]
        listed: set[str] = set()
        sections = [*COMMAND_SECTIONS, ("other commands", tuple(helps))]
        name_width = max((len(name) for name in helps), default=8) + 2
        for title, names in sections:
            rows = [name for name in names if name in helps and name not in listed]
            if not rows:
                continue
            out += ["", f"{title}:"]
            for name in rows:
                listed.add(name)
                lines = textwrap.wrap(helps[name], width - name_width - 2) or [""]
                out.append(f"  {name:<{name_width}}{lines[0]}")
                out += [" " * (name_width + 2) + line for line in lines[1:]]
        formatter = argparse.HelpFormatter(self.prog, width=width)
        formatter.start_section("options")
        formatter.add_arguments([a for a in self._actions if a.option_strings])
        formatter.end_section()
        out += ["", formatter.format_help().strip(), "", textwrap.fill(
            "'rtv COMMAND --help' explains a command and its options. Exit codes: 0 done, 2 usage or config, "
            "3 source, 4 model, 5 gallery, 6 output, 7 enrolment, 8 data, 9 export, 10 audit log, 11 some "
            "batch inputs failed, 12 no face, 13 several faces where one was needed, 130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP.", width)]
        return "\n".join(out) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = TopParser(
        prog="rtv",
        description="Real-time vision on ONNX Runtime: object detection, faces with identities, door access, "
                    "style transfer. Config comes from --config (default ./config.yaml if present, else built-in "
                    "defaults), overridden by --set section.key=value.",
    )
    add_global_options(parser, argparse.SUPPRESS)
    parser.set_defaults(config=None, set=None, debug=False, verbose=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=SubParser)
    sub.required = True
    parser.commands = sub
    for register in _registrars():
        register(sub)
    return parser


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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, exit 2) or --help (exit 0): a code, as for every path
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    logging.basicConfig(level=logging.DEBUG if args.debug else (logging.INFO if args.verbose else logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    from realtime.errors import RtvError
    from realtime.io.interrupts import exit_code_for_interrupt, first_signal, stop_signals

    try:
        with stop_signals():
            return int(args.func(args) or 0)
    except RtvError as exc:
        if args.debug:
            raise
        print(f"rtv: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        import signal

        name = signal.Signals(first_signal()).name if first_signal() else "interrupted"
        print(f"rtv: stopped by {name}" if first_signal() else "rtv: interrupted", file=sys.stderr)
        return exit_code_for_interrupt()
    except Exception as exc:  # a bug, not bad input: still one line, with the way to see more
        if args.debug:
            raise
        print(f"rtv: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
