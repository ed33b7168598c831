"""Semi-global matching teacher (OpenCV StereoSGBM, fg_depth_core.stereo_matching): needs no weights, so it
is the offline default.

SGBM gives a left-view disparity with holes; holes are invalid teacher pixels. The right-view disparity comes
from the same matcher run on the mirrored, swapped pair: mirroring turns the right view into a left view of a
rig with the same disparity offset (StereoRig.flip_swapped), so both directions search the same range.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple

import cv2
import numpy as np
import torch

from fg_depth_core.config import SgbmConfig
from fg_depth_core.geometry import mirror
from fg_depth_core.stereo_matching import (
    StereoMatchingError,
    create_matcher,
    min_disparity_for,
    sgbm_disparity,
)
from fg_depth_core.teachers.base import Teacher, TeacherError, TeacherOutput, disparity_output


def to_gray_u8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) float RGB in [0, 1] -> (H,W) uint8 grayscale."""
    rgb = (image.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb.permute(1, 2, 0).cpu().numpy()), cv2.COLOR_RGB2GRAY)


class SgbmTeacher(Teacher):
    """StereoSGBM as a disparity-only teacher; runs on the CPU, returns tensors on the input's device."""

    parallel_on_cpu = True

    def __init__(self, cfg: SgbmConfig) -> None:
        self.cfg = cfg
        self._matchers = {0: create_matcher(cfg)}

    def __reduce__(self) -> Tuple[Any, ...]:
        # OpenCV's matchers do not pickle: a copy (a DataLoader worker's) builds its own from the config.
        return (type(self), (self.cfg,))

    def _matcher(self, doffs: float) -> Any:
        """The matcher whose search starts where a rig with offset ``doffs`` needs it (one per start)."""
        start = min_disparity_for(doffs)
        if start not in self._matchers:
            self._matchers[start] = create_matcher(self.cfg, start)
        return self._matchers[start]

    def identity(self) -> Dict[str, Any]:
        # "left_padded": outputs from before SGBM padded its views differ, so they must not be reused.
        return {"method": "sgbm", "sgbm": dataclasses.asdict(self.cfg), "left_padded": True}

    def _flow(
        self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool, doffs: Tuple[float, ...]
    ) -> TeacherOutput:
        if target_is_left:
            left, right = target, source
        else:
            # Mirrored, the right view becomes the left view of a rig whose right camera is the mirrored left.
            left, right = mirror(target), mirror(source)
        try:
            disparities = [
                sgbm_disparity(self._matcher(offset), to_gray_u8(lf), to_gray_u8(rt), offset)
                for lf, rt, offset in zip(left, right, doffs)
            ]
        except StereoMatchingError as exc:
            raise TeacherError(str(exc)) from None
        disparity = torch.from_numpy(np.stack(disparities)[:, None]).to(target.device)
        if not target_is_left:
            disparity = mirror(disparity)
        valid = torch.isfinite(disparity)
        return disparity_output(torch.nan_to_num(disparity, nan=0.0), valid, target_is_left)
