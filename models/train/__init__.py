"""Training loops (PyTorch). Each module exposes one plain ``train_*`` function the CLI calls."""
