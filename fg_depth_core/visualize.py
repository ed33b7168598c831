"""Colourised depth and disparity images for people (PNG outputs, the node's preview topic), labelled panel
figures with a depth colour bar, and a point cloud seen by a virtual camera."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

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


# ------------------------------------------------------------------------------------------- figures

#: Height (pixels) of the title strip above a labelled panel and of the tick labels under a colour bar.
LABEL_HEIGHT = 24
#: OpenCV Hershey font scale and stroke of labels: readable at LABEL_HEIGHT.
LABEL_FONT_SCALE = 0.5
LABEL_THICKNESS = 1
#: Pixels between panels of a row; background of gaps and strips (dark grey, RGB).
PANEL_GAP = 4
BACKGROUND = (32, 32, 32)
LABEL_COLOUR = (235, 235, 235)


def _put_text(image: np.ndarray, text: str, x: int, baseline_y: int) -> None:
    import cv2

    cv2.putText(
        image,
        text,
        (int(x), int(baseline_y)),
        cv2.FONT_HERSHEY_SIMPLEX,
        LABEL_FONT_SCALE,
        LABEL_COLOUR,
        LABEL_THICKNESS,
        cv2.LINE_AA,
    )


def _text_width(text: str) -> int:
    import cv2

    (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, LABEL_FONT_SCALE, LABEL_THICKNESS)
    return int(width)


def labelled(rgb: np.ndarray, title: str) -> np.ndarray:
    """(H,W,3) uint8 RGB with a title strip of LABEL_HEIGHT pixels on top: (H + LABEL_HEIGHT, W, 3)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"labelled: expected an (H,W,3) uint8 image, got {rgb.shape} {rgb.dtype}")
    strip = np.empty((LABEL_HEIGHT, rgb.shape[1], 3), np.uint8)
    strip[:] = BACKGROUND
    # Baseline a quarter of the strip above its bottom: the font's descenders stay inside.
    _put_text(strip, title, PANEL_GAP, LABEL_HEIGHT - LABEL_HEIGHT // 4)
    return np.vstack((strip, rgb))


def panel_row(panels: Sequence[np.ndarray]) -> np.ndarray:
    """(H,W_i,3) uint8 images of one height side by side, PANEL_GAP pixels apart."""
    if not panels:
        raise ValueError("panel_row: no panels")
    heights = sorted({p.shape[0] for p in panels})
    if len(heights) != 1:
        raise ValueError(f"panel_row: panels differ in height ({heights})")
    gap = np.empty((heights[0], PANEL_GAP, 3), np.uint8)
    gap[:] = BACKGROUND
    parts: List[np.ndarray] = [panels[0]]
    for panel in panels[1:]:
        parts += [gap, panel]
    return np.hstack(parts)


def depth_colorbar(width: int, min_depth: float, max_depth: float, ticks: int = 5) -> np.ndarray:
    """The colour scale of :func:`colorize_depth` over [min_depth, max_depth] metres as a (2 * LABEL_HEIGHT,
    width, 3) uint8 strip: the colours (near left, far right), and below them ``ticks`` depth labels at
    evenly spaced colour levels (the scale is not linear in depth)."""
    if width < 2 or ticks < 2 or not 0 < min_depth < max_depth:
        raise ValueError(
            f"depth_colorbar: expected width >= 2, ticks >= 2 and 0 < min < max, got {width}, {ticks}, "
            f"{min_depth}, {max_depth}"
        )
    levels = np.linspace(1.0, 0.0, width, dtype=np.float64)  # bright (near) on the left
    depths = _depth_at_level(levels, min_depth, max_depth)
    rows = np.repeat(depths[None].astype(np.float32), LABEL_HEIGHT, axis=0)
    bar = colorize_depth(rows, min_depth, max_depth)
    labels = np.empty((LABEL_HEIGHT, width, 3), np.uint8)
    labels[:] = BACKGROUND
    for i, level in enumerate(np.linspace(1.0, 0.0, ticks)):
        x = int(round(i * (width - 1) / (ticks - 1)))
        text = f"{float(_depth_at_level(np.array([level]), min_depth, max_depth)[0]):.1f} m"
        bar[:, x] = LABEL_COLOUR
        # Centre the label on its tick, kept inside the strip.
        left = min(max(0, x - _text_width(text) // 2), width - _text_width(text) - 1)
        _put_text(labels, text, left, LABEL_HEIGHT - LABEL_HEIGHT // 4)
    return np.vstack((bar, labels))


def _depth_at_level(levels: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """The depth (metres) that :func:`colorize_depth` maps to colour level ``levels`` in [0, 1]."""
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    return 1.0 / (lo + np.square(levels) * (hi - lo))


# ------------------------------------------------------------------------------------------ point clouds


@dataclass(frozen=True)
class CloudView:
    """A virtual pinhole camera for looking at a point cloud given in a camera optical frame (x right, y
    down, z forward; metres): placed at ``eye``, looking at ``target``, with the optical frame's -y as up.
    The image is ``width`` x ``height`` pixels with a horizontal field of view of ``hfov_deg`` degrees; each
    point is drawn as a ``point_size`` x ``point_size`` pixel square, nearer points covering farther ones."""

    eye: Tuple[float, float, float]
    target: Tuple[float, float, float]
    width: int
    height: int
    hfov_deg: float
    point_size: int

    def rotation(self) -> np.ndarray:
        """(3,3) rows: the virtual camera's x (right), y (down), z (forward) axes in the cloud's frame."""
        eye, target = np.asarray(self.eye, np.float64), np.asarray(self.target, np.float64)
        forward = target - eye
        if not np.linalg.norm(forward) > 0:
            raise ValueError(f"CloudView: eye and target coincide at {self.eye}")
        forward /= np.linalg.norm(forward)
        up = np.array([0.0, -1.0, 0.0])  # the optical frame's y points down
        right = np.cross(forward, up)
        if not np.linalg.norm(right) > 0:
            raise ValueError(f"CloudView: looking straight up or down ({self.eye} -> {self.target})")
        right /= np.linalg.norm(right)
        return np.stack((right, np.cross(forward, right), forward))

    def intrinsics(self) -> np.ndarray:
        """(3,3) K of the virtual camera: square pixels, principal point at the image centre."""
        focal = (self.width / 2.0) / np.tan(np.radians(self.hfov_deg) / 2.0)
        return np.array(
            [[focal, 0.0, (self.width - 1) / 2.0], [0.0, focal, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]]
        )


def render_point_cloud(xyz: np.ndarray, colours: np.ndarray, view: CloudView) -> np.ndarray:
    """(view.height, view.width, 3) uint8 RGB of points ``xyz`` (N,3) metres coloured ``colours`` (N,3)
    uint8, seen by ``view`` (fg_depth_core.geometry.project), on the BACKGROUND colour. Points behind the
    virtual camera or outside its image are left out; where squares overlap the nearest point wins."""
    import torch

    from fg_depth_core.geometry import project

    xyz = np.asarray(xyz, dtype=np.float64)
    colours = np.asarray(colours, dtype=np.uint8)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or colours.shape != xyz.shape:
        raise ValueError(
            f"render_point_cloud: expected (N,3) points and colours, got {xyz.shape} and {colours.shape}"
        )
    if view.width < 1 or view.height < 1 or view.point_size < 1 or not 0 < view.hfov_deg < 180:
        raise ValueError(f"render_point_cloud: bad view {view}")
    image = np.empty((view.height, view.width, 3), np.uint8)
    image[:] = BACKGROUND
    local = (xyz - np.asarray(view.eye)) @ view.rotation().T
    ahead = local[:, 2] > 0
    local, colours = local[ahead], colours[ahead]
    if not len(local):
        return image
    uv, z = project(
        torch.from_numpy(local.T[None].copy()), torch.from_numpy(view.intrinsics()[None].copy())
    )
    # Top-left corner of each point's square, so that the square is centred on the projection.
    corner = np.floor(uv[0].numpy() - (view.point_size - 1) / 2.0 + 0.5).astype(np.int64)
    depth = z[0, 0].numpy()
    offsets = np.arange(view.point_size)
    cols = (corner[0][:, None, None] + offsets[None, None, :]).repeat(view.point_size, axis=1).ravel()
    rows = (corner[1][:, None, None] + offsets[None, :, None]).repeat(view.point_size, axis=2).ravel()
    area = view.point_size * view.point_size
    depth = np.repeat(depth, area)
    colour = np.repeat(colours, area, axis=0)
    inside = (cols >= 0) & (cols < view.width) & (rows >= 0) & (rows < view.height)
    pixel = rows[inside] * view.width + cols[inside]
    # A z-buffer without a loop: sort by pixel, then depth, and keep the first (nearest) point per pixel.
    order = np.lexsort((depth[inside], pixel))
    nearest = order[np.unique(pixel[order], return_index=True)[1]]
    image.reshape(-1, 3)[pixel[nearest]] = colour[inside][nearest]
    return image
