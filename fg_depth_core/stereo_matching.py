"""Semi-global matching (OpenCV StereoSGBM) on NumPy images: the matcher the SGBM teacher trains with and the
node's online stereo scale measures with. No torch, so a torch-free runtime can use it.

Disparities are pixels of the left view (the right camera at +x: a left pixel x appears at x - d on the
right), float32 with NaN where SGBM found no match.
"""

from __future__ import annotations

import cv2
import numpy as np

from fg_depth_core.config import SgbmConfig
from fg_depth_core.errors import FgDepthError

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


class StereoMatchingError(FgDepthError, ValueError):
    """The images cannot be matched with these settings; the message names the setting and the fix."""


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


def sgbm_disparity(matcher: "cv2.StereoSGBM", left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Left-view disparity (H,W) float32 pixels from uint8 grayscale images; NaN where SGBM found no match.

    OpenCV marks failures with a value below minDisparity (0 here); a zero disparity (a point at infinity)
    is also treated as invalid since it has no finite depth.
    """
    width = left.shape[1]
    if width <= matcher.getNumDisparities():
        # OpenCV fails with an allocation error here rather than a message.
        raise StereoMatchingError(
            f"teacher.sgbm.num_disparities: expected fewer than the image width ({width} px), got "
            f"{matcher.getNumDisparities()}; lower it (a multiple of 16) for images this small"
        )
    raw = matcher.compute(left, right).astype(np.float32) / _DISP_SCALE
    return np.where(raw > 0, raw, np.nan).astype(np.float32)
