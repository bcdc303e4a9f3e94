"""What every command module shares: exit codes, the config loader, command groups, global options.

It imports nothing of ours above ``realtime.config`` and ``realtime.errors``, so ``export/`` and ``models/`` register
their commands through it without an import cycle (and lazily: nothing here imports torch).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
from datetime import datetime
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SOURCE = 3
EXIT_OUTPUT = 6
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
DEFAULT_CONFIG_NAME = "config.yaml"


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of a typed error (its nearest class in :data:`EXIT_CODES`; 1 for other
    :class:`realtime.errors.RtvError`)."""
    from realtime import errors

    codes = {errors.ConfigError: 2, errors.SourceError: 3, errors.ModelError: 4, errors.GalleryError: 5,
             errors.SinkError: 6, errors.EnrollmentError: 7, errors.DataError: 8, errors.ExportError: 9,
             errors.AuditError: 10, errors.NoFaceError: 12, errors.SeveralFacesError: 13}
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
    "faces": ("face_recognition's command lines: recognize (file,name) and detect (file,top,right,bottom,left)",
              "face_recognition's 'face_recognition' and 'face_detection' commands, same arguments and output "
              "lines, on rtv's face models (no dlib needed)."),
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


class RtvParser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit 2 (argparse's own usage block is behind ``--help``)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        self.exit(EXIT_USAGE, f"rtv: error: {where}{message} (see '{self.prog} --help')\n")


class SubParser(RtvParser):
    """Every (sub)command also takes the global options. A command (a parser with no sub-commands of its own) takes
    its options anywhere among its positionals: ``rtv enroll alice --replace a.jpg`` reads ``a.jpg`` as an image."""

    _intermixing = False

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parents", [global_options()])
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        if self._subparsers is not None or self._intermixing or (args is not None and "--" in args):
            return super().parse_known_args(args, namespace)  # "--" (a name like "-rf"): the plain way
        self._intermixing = True  # argparse's intermixed parse calls this method again, twice
        try:
            return self.parse_known_intermixed_args(args, namespace)
        except TypeError:  # a parser argparse cannot parse intermixed (a REMAINDER argument): the plain way
            return super().parse_known_args(args, namespace)
        finally:
            self._intermixing = False


def int_range(low: int, high: int | None = None):
    """An argparse ``type`` for an integer in [low, high] (no upper bound when ``high`` is None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {bound}")
        return value
    parse.__name__ = "integer"
    return parse


def float_range(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argparse ``type`` for a finite number in the interval from ``low`` to ``high`` (open ends when asked)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low) or (
                high_open and value == high):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be a finite number in {interval}")
        return value
    parse.__name__ = "number"
    return parse


def iso_time(text: str) -> str:
    """An argparse ``type`` for an ISO 8601 date or date-time (e.g. 2025-01-31 or 2025-01-31T08:00)."""
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time (e.g. 2025-01-31 or "
                                         "2025-01-31T08:00)") from None
    return text


def json_list(text: str) -> list:
    """An argparse ``type`` for a JSON list (e.g. a door access schedule)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON; e.g. "
                                         '\'[{"days": "mon-fri", "start": "07:00", "end": "20:00"}]\'') from None
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"{text!r} must be a JSON list of time windows")
    return value


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


def signal_name(signum: int | None) -> str:
    """How a run was stopped, for its last line: "interrupted" (Ctrl-C) or "stopped by SIGTERM"."""
    import signal

    if signum is None or signum == signal.SIGINT:
        return "interrupted"
    return f"stopped by {signal.Signals(signum).name}"


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (never an input, the gallery, the audit log "
                             "or the config)")


def kept_files(config, serving: bool = True, rebuilds=()) -> dict[str, list]:
    """What a run reads or keeps (the config, the gallery and its calibration, the audit log and its key, every
    model the config names, the zoo): :func:`realtime.io.paths.protected_paths` without inputs. ``serving`` is
    kept for callers; the set is the same for every command."""
    from realtime.io.paths import protected_paths

    kept = protected_paths(config, (), rebuilds)
    kept.pop("an input")
    return kept


def guard_outputs(outputs: dict, config=None, inputs=(), overwrite: bool = False, serving: bool = True,
                  make_parents: bool = False, rebuilds=()) -> dict:
    """The output guard for one command, called from its handler before any work: see
    :func:`realtime.io.paths.check_outputs`. ``inputs``: the files or folders the command reads."""
    from realtime.io.paths import check_outputs

    from realtime.io.paths import protected_paths

    protected = protected_paths(config, inputs, rebuilds)  # rebuilds: zoo files the command exists to rebuild
    return check_outputs(outputs, protected, overwrite=overwrite, make_parents=make_parents)


def guard_output_dir(label: str, folder, config, inputs=(), owned_names=(), serving: bool = True):
    """The guard for a folder a command owns (see :func:`realtime.io.paths.check_output_dir`): the files it owns
    there may be rebuilt even in the zoo; nothing else protected may be touched."""
    from realtime.io.paths import check_output_dir, protected_paths

    rebuilds = [Path(folder) / name for name in owned_names]
    return check_output_dir(label, folder, owned_names, protected_paths(config, inputs, rebuilds))


def write_json_output(path, data) -> None:
    """A JSON report written atomically (``.partial``, then rename; see :func:`realtime.io.paths.write_json_atomic`)."""
    from realtime.io.paths import write_json_atomic

    write_json_atomic(path, data)


def require_torch() -> None:
    """Export and training need PyTorch and onnx, which the runtime install leaves out."""
    from realtime.errors import ExportError

    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"this command needs {' and '.join(missing)}: pip install torch==2.13.0 -e '.[train]'")
