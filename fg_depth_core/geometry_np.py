"""NumPy twins of fg_depth_core.geometry for runtimes without torch (depth_node serving an ONNX or TensorRT
model): back-projection and depth <-> disparity of one image.

Same conventions as geometry.py (pixel centres at integer coordinates, x right, y down, optical frame; the
right camera at +B along x, image disparity d = f * B / Z - doffs with doffs = cx_r - cx_l), for single
images: depth and disparity (H,W), points (3,H,W).
test/core/test_geometry.py checks that each function equals its torch twin.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def backproject(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """3-D points (3,H,W) float32 in the camera optical frame (metres) from depth (H,W) metres and K (3,3):
    X = (x - cx) * Z / fx, Y = (y - cy) * Z / fy, Z = depth (geometry.backproject)."""
    z = np.asarray(depth, dtype=np.float32)
    k = np.asarray(k, dtype=np.float32)
    height, width = z.shape
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    x = (np.arange(width, dtype=np.float32) - cx)[None, :] * z / fx
    y = (np.arange(height, dtype=np.float32) - cy)[:, None] * z / fy
    return np.stack((x, y, z))


def disparity_from_depth(depth: np.ndarray, focal: float, baseline: float, doffs: float = 0.0) -> np.ndarray:
    """Image disparity (H,W) float32 pixels d = f * B / Z - doffs from depth Z (metres): Z = 0 gives inf,
    Z = inf gives -doffs (geometry.disparity_from_depth)."""
    z = np.asarray(depth, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = (np.float32(focal) * np.float32(baseline) / z).astype(np.float32, copy=False)
    return disparity - np.float32(doffs) if doffs else disparity


def depth_from_disparity(
    disparity: np.ndarray, focal: float, baseline: float, doffs: float = 0.0
) -> Tuple[np.ndarray, np.ndarray]:
    """Depth Z = f * B / (d + doffs) (H,W) float32 metres from image disparity d and its validity (d finite
    and d + doffs > 0); invalid pixels hold 0 (geometry.depth_from_disparity)."""
    d = np.asarray(disparity, dtype=np.float32)
    if doffs:
        d = d + np.float32(doffs)
    valid = np.isfinite(d) & (d > 0)
    safe = np.where(valid, d, np.float32(1.0))
    depth = np.float32(focal) * np.float32(baseline) / safe
    return np.where(valid, depth, np.float32(0.0)).astype(np.float32, copy=False), valid
