"""What every stereo dataset yields, and the resizing that brings a raw pair to the network input size.

A dataset subclass only reads files: ``__len__``, ``load(index) -> RawPair`` and ``name(index)``. The base
class resizes both views (and K) to the configured size, converts to tensors, and returns a sample dict:

- "left", "right": (3,H,W) float32 RGB in [0, 1] at the network input size.
- "K": (3,3) float32 left intrinsics at that size; "focal": () float32 pixels (K[0,0]); "baseline": () metres;
  "doffs": () float32 pixels at that size, the rig's disparity offset cx_r - cx_l (StereoRig.doffs).
- "depth_left": (1,H_gt,W_gt) float32 metres at the ground truth's own resolution, 0 where unknown
  (only when the dataset has ground truth; evaluation compares at that resolution).
- "index": () int64.
A target-only pair (monocular evaluation, RawPair.right None) gives no "right".
Teacher outputs are added by teachers.dataset.WithTeacher, which wraps any dataset.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch

from fg_depth_core.camera import StereoRig
from fg_depth_core.errors import FgDepthError


class DatasetError(FgDepthError):
    """A dataset file or folder is missing or malformed; the message names it."""


@dataclass
class RawPair:
    """A rectified pair as stored: (H,W,3) uint8 RGB views, the rig at that size, optional depth (H',W')
    float32 metres (0 or non-finite = unknown). ``right`` is None when only the target view was read."""

    left: np.ndarray
    right: Optional[np.ndarray]
    rig: StereoRig
    depth_left: Optional[np.ndarray] = None


class StereoDataset(torch.utils.data.Dataset, abc.ABC):
    """Base of all stereo datasets: subclasses implement ``__len__``, ``load`` and ``name``."""

    def __init__(self, width: int, height: int) -> None:
        self.width = int(width)
        self.height = int(height)

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of pairs."""

    @abc.abstractmethod
    def load(self, index: int) -> RawPair:
        """Read pair ``index`` from disk (or render it)."""

    @abc.abstractmethod
    def name(self, index: int) -> str:
        """A stable, human-readable identifier of pair ``index`` (e.g. its split-file line)."""

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        raw = self.load(index)
        return to_sample(raw, self.width, self.height, index)


def to_sample(raw: RawPair, width: int, height: int, index: int = 0) -> Dict[str, torch.Tensor]:
    """Resize a raw pair (and its intrinsics) to ``width`` x ``height`` and convert to the sample dict."""
    import cv2

    if raw.right is not None and raw.left.shape != raw.right.shape:
        raise DatasetError(f"left and right differ in size: {raw.left.shape} vs {raw.right.shape}")
    rig = raw.rig.resized(width, height)
    views = {}
    for key, image in (("left", raw.left), ("right", raw.right)):
        if image is None:
            continue
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        views[key] = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    k = torch.from_numpy(rig.intrinsics.matrix().astype(np.float32))
    sample = {
        **views,
        "K": k,
        "focal": k[0, 0].clone(),
        "baseline": torch.tensor(rig.baseline, dtype=torch.float32),
        "doffs": torch.tensor(rig.doffs, dtype=torch.float32),
        "index": torch.tensor(index, dtype=torch.int64),
    }
    if raw.depth_left is not None:
        depth = np.where(np.isfinite(raw.depth_left) & (raw.depth_left > 0), raw.depth_left, 0.0)
        sample["depth_left"] = torch.from_numpy(depth.astype(np.float32))[None]
    return sample
