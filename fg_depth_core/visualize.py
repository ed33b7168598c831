"""Colourised depth and disparity images for people (PNG outputs, the node's preview topic)."""

from __future__ import annotations

import numpy as np


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """(H,W) depth in metres -> (H,W,3) uint8 RGB, near = bright, by inverse depth (MAGMA); NaN, inf and
    non-positive depths are black."""
    import cv2

    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    inv = np.zeros_like(depth)
    inv[valid] = 1.0 / np.clip(depth[valid], min_depth, max_depth)
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    scaled = np.clip((inv - lo) / (hi - lo), 0.0, 1.0)
    # Inverse depth squeezes far ranges; a square root spreads the 5-50 m band people look at most.
    levels = np.round(np.sqrt(scaled) * 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_MAGMA), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def colorize_disparity(disparity: np.ndarray, max_disparity: float) -> np.ndarray:
    """(H,W) disparity in pixels -> (H,W,3) uint8 RGB (TURBO); NaN and non-positive are black."""
    import cv2

    disparity = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(disparity) & (disparity > 0)
    levels = np.zeros(disparity.shape, np.uint8)
    levels[valid] = np.round(np.clip(disparity[valid] / max_disparity, 0, 1) * 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb
