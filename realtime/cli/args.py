"""What every command module shares: exit codes, the config loader, command groups, global options.

It imports nothing of ours above ``realtime.config`` and ``realtime.errors``, so ``export/`` and ``models/`` register
their commands through it without an import cycle (and lazily: nothing here imports torch).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SOURCE = 3
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
DEFAULT_CONFIG_NAME = "config.yaml"


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of a typed error (its nearest class in :data:`EXIT_CODES`; 1 for other
    :class:`realtime.errors.RtvError`)."""
    from realtime import errors

    codes = {errors.ConfigError: 2, errors.SourceError: 3, errors.ModelError: 4, errors.GalleryError: 5,
             errors.SinkError: 6, errors.EnrollmentError: 7, errors.DataError: 8, errors.ExportError: 9,
             errors.AuditError: 10}
    for cls in type(exc).__mro__:
        if cls in codes:
            return codes[cls]
    return 1

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


class SubParser(argparse.ArgumentParser):
    """Every (sub)command also takes the global options."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parents", [global_options()])
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def add_global_options(parser: argparse.ArgumentParser, default) -> None:
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
    add_global_options(parent, argparse.SUPPRESS)
    return parent


def add_metrics_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-json", metavar="FILE", help="also write the run's metrics as JSON to FILE")


def require_torch() -> None:
    """Export and training need PyTorch and onnx, which the runtime install leaves out."""
    from realtime.errors import ExportError

    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"this command needs {' and '.join(missing)}: pip install torch==2.13.0 -e '.[train]'")
