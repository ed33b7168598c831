"""Dense inverse search (DIS) optical flow as a teacher: OpenCV's classical dense flow (Kroeger et al., ECCV
2016), on the CPU, with no weights. Unlike SGBM it gives a flow at every pixel, textureless areas included
(interpolated from their surroundings); a forward-backward check and a bound on the vertical flow decide
which of those flows are kept, as for RAFT.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple

import cv2
import numpy as np
import torch

from fg_depth_core.config import DisConfig
from fg_depth_core.teachers.base import OpticalFlowTeacher
from fg_depth_core.teachers.sgm import to_gray_u8

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DisTeacher(OpticalFlowTeacher):
    """OpenCV DIS optical flow on grayscale views, one run per direction (the backward one for the
    forward-backward check)."""

    parallel_on_cpu = True

    def __init__(self, cfg: DisConfig) -> None:
        self.cfg = cfg
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[cfg.preset])

    def __reduce__(self) -> Tuple[Any, ...]:
        # cv2.DISOpticalFlow does not pickle: a copy (a DataLoader worker's) builds its own from the config.
        return (type(self), (self.cfg,))

    def identity(self) -> Dict[str, Any]:
        return {"method": "dis", "dis": dataclasses.asdict(self.cfg), "opencv": cv2.__version__}

    def raw_flow(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """DIS flow target->source (B,2,H,W) pixels, I_t(p) ~ I_s(p + F(p)), for (B,3,H,W) images in
        [0, 1]."""
        flows = [
            self._dis.calc(to_gray_u8(t), to_gray_u8(s), None) for t, s in zip(target, source)
        ]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).float().to(target.device)
