"""Reading images from disk into the package's conventions (RGB uint8 arrays, (1,3,H,W) float tensors)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import numpy as np
import torch

from fg_depth_core.errors import FgDepthError


class ImageReadError(FgDepthError):
    """An image file is missing, unreadable, or not the expected size."""


def read_rgb(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as (H,W,3) uint8 RGB (grey images are replicated to 3 channels)."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: image file not found")
    image = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"{p}: not a readable image (expected PNG, JPEG, ...)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_stereo_pair(left: Union[str, Path], right: Union[str, Path]) -> Tuple[np.ndarray, np.ndarray]:
    """Read a left/right pair as RGB uint8 and check that both have the same size."""
    a, b = read_rgb(left), read_rgb(right)
    if a.shape != b.shape:
        raise ImageReadError(
            f"{right}: expected the same size as {left} ({a.shape[1]}x{a.shape[0]}), "
            f"got {b.shape[1]}x{b.shape[0]}"
        )
    return a, b


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 -> (1,3,H,W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
