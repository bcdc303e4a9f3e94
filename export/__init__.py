"""PyTorch -> ONNX: export with the model contract in the metadata, parity checks, provider reports."""
