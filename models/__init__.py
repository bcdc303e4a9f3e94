"""PyTorch networks, weight importers, losses, datasets and training loops. Never imports realtime/ serving code."""
