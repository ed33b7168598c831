"""Random-weight DepthNet checkpoints for tests that need a model but not a trained one."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from fg_depth_core.config import Config
from fg_depth_core.model import build_depthnet
from fg_depth_core.train.checkpoint import save_checkpoint


def save_random_depthnet(
    path,
    cfg: Optional[Config] = None,
    train_focal: float = 74.2,
    baseline: float = 0.54,
    seed: int = 0,
) -> Path:
    """Save a seeded random-weight DepthNet of ``cfg`` (default: Config() at 128x64) as a checkpoint whose
    input size is cfg.data.width x cfg.data.height."""
    if cfg is None:
        cfg = Config()
        cfg.data.width, cfg.data.height = 128, 64
    torch.manual_seed(seed)
    net = build_depthnet(cfg.model, load_weights=False)
    state = {
        "model": net.state_dict(),
        "config": cfg.to_dict(),
        "step": 0,
        "train_focal": float(train_focal),
        "train_baseline": float(baseline),
        "input_size": [cfg.data.width, cfg.data.height],
    }
    save_checkpoint(path, state)
    return Path(path)
