"""rtv serving package: capture, ONNX Runtime, decode, faces, overlays, outputs. Never imports torch."""

__version__ = "0.1.0"
