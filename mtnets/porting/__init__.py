"""Weights from elsewhere: reference PyTorch state dicts and ImageNet checkpoints."""
