"""Semi-global matching (OpenCV StereoSGBM) on NumPy images: the matcher the SGBM teacher trains with and the
node's online stereo scale measures with. No torch, so a torch-free runtime can use it.

Disparities are image disparities of the left view, d = x_l - x_r (the right camera at +x: a left pixel x
appears at x - d on the right), float32 with NaN where SGBM found no match. For a rig with a disparity offset
doffs = cx_r - cx_l (fg_depth_core.camera.StereoRig) the depth is f * B / (d + doffs), so d runs from -doffs
(a point at infinity) upwards: the search starts at :func:`min_disparity_for` (doffs) rather than at 0, and
``num_disparities`` counts from there.
"""

from __future__ import annotations

import math

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
#: A doffs within this many pixels of an integer counts as that integer when choosing the search start, so
#: that float rounding of a zero offset (after resizing, say) does not move the search by a whole pixel.
_DOFFS_ROUNDING = 1e-6


class StereoMatchingError(FgDepthError, ValueError):
    """The images cannot be matched with these settings; the message names the setting and the fix."""


def min_disparity_for(doffs: float) -> int:
    """The first image disparity to search for a rig with offset ``doffs`` (pixels): -ceil(doffs), so the
    search covers f * B / Z = d + doffs from just below 0 (infinity) upwards."""
    return -int(math.ceil(float(doffs) - _DOFFS_ROUNDING))


def create_matcher(cfg: SgbmConfig, min_disparity: int = 0) -> "cv2.StereoSGBM":
    """An OpenCV StereoSGBM matcher for ``cfg`` searching image disparities [min_disparity, min_disparity +
    num_disparities), with P1/P2 = factor * channels * block_size^2."""
    area = _CHANNELS * cfg.block_size * cfg.block_size
    return cv2.StereoSGBM_create(
        minDisparity=int(min_disparity),
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


def left_padding(matcher: "cv2.StereoSGBM") -> int:
    """Columns to add on the left of both views so that SGBM can match the first column: the largest
    disparity it searches, min_disparity + num_disparities (at least num_disparities)."""
    return int(matcher.getNumDisparities() + max(matcher.getMinDisparity(), 0))


def _pad_left(image: np.ndarray, pad: int) -> np.ndarray:
    """``image`` (H,W) with ``pad`` columns repeating its first column added on the left."""
    return cv2.copyMakeBorder(image, 0, 0, pad, 0, cv2.BORDER_REPLICATE)


def sgbm_disparity(
    matcher: "cv2.StereoSGBM", left: np.ndarray, right: np.ndarray, doffs: float = 0.0
) -> np.ndarray:
    """Left-view image disparity (H,W) float32 pixels from uint8 grayscale images; NaN where SGBM found no
    match. The views are padded on the left (:func:`left_padding`) and the result cropped back, so the
    leftmost columns are matched too; a match closer than block_size pixels to the right image's left edge
    (x - d < block_size) is invalid.

    OpenCV marks failures with a value below the matcher's minDisparity; a disparity with d + doffs <= 0 (a
    point at or beyond infinity) is also invalid since it has no finite depth. Search from
    :func:`min_disparity_for` (doffs) to see the whole depth range.
    """
    width = left.shape[1]
    if width <= matcher.getNumDisparities():
        # OpenCV fails with an allocation error here rather than a message.
        raise StereoMatchingError(
            f"teacher.sgbm.num_disparities: expected fewer than the image width ({width} px), got "
            f"{matcher.getNumDisparities()}; lower it (a multiple of 16) for images this small"
        )
    # OpenCV leaves the leftmost columns unmatched, where some searched disparity would read left of the
    # right image; padding both views on the left by the search's reach lets every column be matched.
    pad = left_padding(matcher)
    raw = matcher.compute(_pad_left(left, pad), _pad_left(right, pad))[:, pad:]
    disparity = raw.astype(np.float32) / np.float32(_DISP_SCALE)
    matched = raw >= matcher.getMinDisparity() * _DISP_SCALE
    finite_depth = disparity + np.float32(doffs) > 0
    # A match must lie in the right image with a block's margin: nearer its edge the block compares
    # repeated padding columns, and a pixel whose true match is outside the view gets a wrong one there.
    columns = np.arange(width, dtype=np.float32)[None, :]
    inside = columns - disparity >= matcher.getBlockSize()
    return np.where(matched & finite_depth & inside, disparity, np.float32(np.nan)).astype(np.float32)
