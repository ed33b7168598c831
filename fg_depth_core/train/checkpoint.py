"""Writing training checkpoints, atomically.

The format, reading and checking (and building the model from a checkpoint) live with the model:
fg_depth_core.model.checkpoint. This module adds what only training does: writing.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Union

import torch

from fg_depth_core import __version__
from fg_depth_core.atomic_io import atomic_write_with
from fg_depth_core.model.checkpoint import REQUIRED_KEYS, CheckpointError


def save_checkpoint(path: Union[str, os.PathLike], state: Dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves either the old file or the new one, never a
    partial file (temporary file in the same directory, fsync, rename)."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint state lacks {missing}")
    payload = {**state, "version": __version__}
    atomic_write_with(path, lambda f: torch.save(payload, f))
