"""Training: the loop, checkpoints and multi-process (DDP) support."""
