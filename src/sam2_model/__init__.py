"""sam2_model: a PyTorch implementation of SAM 2 / SAM 2.1 that loads Meta's official checkpoints."""
