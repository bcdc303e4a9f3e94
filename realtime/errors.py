"""Typed errors. Library code raises these; only the CLI turns them into one line and an exit code
(``realtime.cli.args.exit_code_for``)."""


class RtvError(Exception):
    """Base of every error rtv reports to a user (the CLI maps each class to an exit code: realtime.cli.args)."""


class ConfigError(RtvError):
    """A config file, a ``--set`` override or a command-line value is wrong."""


class SourceError(RtvError):
    """A camera, video file, stream or image folder cannot be opened or read."""


class ModelError(RtvError):
    """A model file is missing, not ONNX, lacks its contract, or its graph disagrees with the contract."""


class ProviderError(ModelError):
    """An ONNX Runtime execution provider that was required is not available or not in use."""


class GalleryError(RtvError):
    """The face gallery is missing, locked, corrupt, or was built with another model."""


class SinkError(RtvError):
    """An output (MP4, JSONL, window) cannot be written."""


class OutputError(SinkError):
    """An output path was refused before any work: it would replace an input, the gallery, the audit log, the config
    or another output of the same run; it is a folder or not a regular file; it exists and ``--overwrite`` was not
    given; or its folder cannot be written."""


class EnrollmentError(RtvError):
    """A face was refused at enrolment (no face, several faces, too small, blurred)."""


class DataError(RtvError):
    """A training or evaluation data set is malformed (missing folder, bad label line)."""


class ExportError(RtvError):
    """Export to ONNX failed, or the parity check between PyTorch and ONNX Runtime is beyond tolerance."""


class AuditError(RtvError):
    """The door audit log cannot be opened or written, or its hash chain is broken."""


class FaceError(RtvError):
    """A photo does not show the face a command needs."""


class NoFaceError(FaceError):
    """A photo that needed a face (identify, verify, embed) shows none."""


class SeveralFacesError(FaceError):
    """A photo shows several faces where one was needed and none was chosen (``--largest`` or a box)."""
