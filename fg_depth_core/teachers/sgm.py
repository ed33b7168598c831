"""Semi-global matching teacher (OpenCV StereoSGBM): needs no weights, so it is the offline default.

SGBM gives a left-view disparity with holes; holes are invalid teacher pixels. The right-view disparity comes
from the same matcher run on the mirrored, swapped pair: mirroring turns the right view into a left view.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

import cv2
import numpy as np
import torch

from fg_depth_core.config import SgbmConfig
from fg_depth_core.geometry import mirror
from fg_depth_core.teachers.base import Teacher, TeacherError, TeacherOutput, disparity_output

_MODES = {
    "sgbm": cv2.STEREO_SGBM_MODE_SGBM,
    "hh": cv2.STEREO_SGBM_MODE_HH,
    "sgbm_3way": cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    "hh4": cv2.STEREO_SGBM_MODE_HH4,
}
#: StereoSGBM returns fixed-point disparities with 4 fractional bits.
_DISP_SCALE = 16.0
#: Matching runs on single-channel (grayscale) images, which sets P1/P2's channel factor.
_CHANNELS = 1


def create_matcher(cfg: SgbmConfig) -> "cv2.StereoSGBM":
    """An OpenCV StereoSGBM matcher for ``cfg`` with P1/P2 = factor * channels * block_size^2."""
    area = _CHANNELS * cfg.block_size * cfg.block_size
    return cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=cfg.num_disparities,
        blockSize=cfg.block_size,
        P1=cfg.p1_factor * area,
        P2=cfg.p2_factor * area,
        disp12MaxDiff=cfg.disp12_max_diff,
        preFilterCap=cfg.pre_filter_cap,
        uniquenessRatio=cfg.uniqueness_ratio,
        speckleWindowSize=cfg.speckle_window_size,
        speckleRange=cfg.speckle_range,
        mode=_MODES[cfg.mode],
    )


def to_gray_u8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) float RGB in [0, 1] -> (H,W) uint8 grayscale."""
    rgb = (image.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb.permute(1, 2, 0).cpu().numpy()), cv2.COLOR_RGB2GRAY)


def sgbm_disparity(matcher: "cv2.StereoSGBM", left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Left-view disparity (H,W) float32 pixels from uint8 grayscale images; NaN where SGBM found no match.

    OpenCV marks failures with a value below minDisparity (0 here); a zero disparity (a point at infinity)
    is also treated as invalid since it has no finite depth.
    """
    width = left.shape[1]
    if width <= matcher.getNumDisparities():
        # OpenCV fails with an allocation error here rather than a message.
        raise TeacherError(
            f"teacher.sgbm.num_disparities: expected fewer than the image width ({width} px), got "
            f"{matcher.getNumDisparities()}; lower it (a multiple of 16) for images this small"
        )
    raw = matcher.compute(left, right).astype(np.float32) / _DISP_SCALE
    return np.where(raw > 0, raw, np.nan).astype(np.float32)


class SgbmTeacher(Teacher):
    """StereoSGBM as a disparity-only teacher; runs on the CPU, returns tensors on the input's device."""

    def __init__(self, cfg: SgbmConfig) -> None:
        self.cfg = cfg
        self._matcher = create_matcher(cfg)

    def identity(self) -> Dict[str, Any]:
        return {"method": "sgbm", "sgbm": dataclasses.asdict(self.cfg)}

    def _flow(self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool) -> TeacherOutput:
        if target_is_left:
            left, right = target, source
        else:
            # Mirrored, the right view becomes the left view of a rig whose right camera is the mirrored left.
            left, right = mirror(target), mirror(source)
        disparities = [
            sgbm_disparity(self._matcher, to_gray_u8(lf), to_gray_u8(rt)) for lf, rt in zip(left, right)
        ]
        disparity = torch.from_numpy(np.stack(disparities)[:, None]).to(target.device)
        if not target_is_left:
            disparity = mirror(disparity)
        valid = torch.isfinite(disparity)
        return disparity_output(torch.nan_to_num(disparity, nan=0.0), valid, target_is_left)
