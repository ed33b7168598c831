"""Checkpoints as a model source: read one, check it and build the DepthNet it holds, without training code.

A checkpoint is a dict saved with torch.save (written by fg_depth_core.train.checkpoint.save_checkpoint):
- "model": DepthNet state dict; "config": Config.to_dict(); "step": optimiser steps done;
- "train_focal": focal length (pixels) at the network input size; "train_baseline": metres;
- "input_size": [width, height] of the network input; "version": fg_depth_core.__version__;
- optional "optimizer", "scheduler", "scaler", "rng", "best": training state for --resume; the trainer
  (train/trainer.py) also stores "focal_counts"/"baseline_counts" ([[value, pairs seen], ...], whose medians
  are train_focal/train_baseline), "world_size" (processes it trained with) and "loss_terms" (the loss terms
  in effect, {term: settings}, fg_depth_core.losses.loss_terms).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from fg_depth_core.config import Config, ConfigError, config_from_dict
from fg_depth_core.errors import FgDepthError
from fg_depth_core.model.depthnet import build_depthnet

#: What every checkpoint holds (inference needs all of it).
REQUIRED_KEYS = ("model", "config", "step", "train_focal", "train_baseline", "input_size")


class CheckpointError(FgDepthError):
    """A checkpoint file is missing, unreadable or incomplete; the message names the file."""


def load_checkpoint(path: Union[str, os.PathLike], map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint and check that it has what inference needs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        # Checkpoints hold only tensors and plain containers, so the safe loader suffices.
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"{path}: not a readable fg-depth checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not an fg-depth checkpoint, missing {missing}")
    return state


def checkpoint_config(state: Dict[str, Any], path: Union[str, os.PathLike] = "checkpoint") -> Config:
    """The validated Config stored in a checkpoint. A stored loss section whose keys contradict its preset
    (written before such sections were refused) is read as preset custom, with a warning: the keys are what
    it trained with."""
    try:
        return config_from_dict(state["config"], f"{path} (stored config)", preset_conflict="custom")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def load_model(
    path: Union[str, os.PathLike], device: Any = "cpu"
) -> Tuple[torch.nn.Module, Config, Dict[str, Any]]:
    """A DepthNet in eval mode with the checkpoint's weights, its Config, and the checkpoint dict."""
    state = load_checkpoint(path, map_location=device)
    cfg = checkpoint_config(state, path)
    net = build_depthnet(cfg.model, load_weights=False)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit model {cfg.model.encoder}: {exc}") from None
    return net.to(device).eval(), cfg, state
