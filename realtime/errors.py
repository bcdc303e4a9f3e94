"""Typed errors. Library code raises these; only ``realtime.cli.main`` turns them into one line and an exit code."""


class RtvError(Exception):
    """Base of every error rtv reports to a user. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(RtvError):
    """A config file, a ``--set`` override or a command-line value is wrong."""

    exit_code = 2


class SourceError(RtvError):
    """A camera, video file, stream or image folder cannot be opened or read."""

    exit_code = 3


class ModelError(RtvError):
    """A model file is missing, not ONNX, lacks its contract, or its graph disagrees with the contract."""

    exit_code = 4


class ProviderError(ModelError):
    """An ONNX Runtime execution provider that was required is not available or not in use."""


class GalleryError(RtvError):
    """The face gallery is missing, locked, corrupt, or was built with another model."""

    exit_code = 5


class SinkError(RtvError):
    """An output (MP4, JSONL, window) cannot be written."""

    exit_code = 6


class EnrollmentError(RtvError):
    """A face was refused at enrolment (no face, several faces, too small, blurred)."""

    exit_code = 7


class DataError(RtvError):
    """A training or evaluation data set is malformed (missing folder, bad label line)."""

    exit_code = 8


class ExportError(RtvError):
    """Export to ONNX failed, or the parity check between PyTorch and ONNX Runtime is beyond tolerance."""

    exit_code = 9


class AuditError(RtvError):
    """The door audit log cannot be opened or written, or its hash chain is broken."""

    exit_code = 10
