"""A small exact ray caster for rectified stereo scenes made of textured planar patches.

Each pixel's ray is intersected with every patch; the nearest hit wins, so depth, disparity and occlusions
are exact by construction. Textures are functions of the patch's own 2-D surface coordinates (metres), so
both cameras see the same surface point with the same albedo. Units: metres and pixels; the left camera
sits at the origin of the optical frame (x right, y down, z forward), the right camera at (+B, 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from fg_depth_core.camera import Intrinsics


@dataclass(frozen=True)
class Patch:
    """A textured planar patch.

    ``origin`` (3,) is a corner; ``axis_u`` and ``axis_v`` (3,) span the patch (their lengths are its size in
    metres; use a very large length for an unbounded plane). ``texture_cell`` is the texture's feature size
    in metres. ``contrast`` scales the texture around ``albedo`` (0 gives a textureless patch).
    """

    origin: Tuple[float, float, float]
    axis_u: Tuple[float, float, float]
    axis_v: Tuple[float, float, float]
    albedo: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    contrast: float = 0.35
    texture_cell: float = 0.1
    texture_seed: int = 0


@dataclass
class StereoFrame:
    """A rendered rectified pair with exact geometry.

    left, right: (H,W,3) uint8 RGB. depth_left, depth_right: (H,W) float32 metres, inf where no patch is hit.
    disparity_left: (H,W) float32 pixels (f * B / depth_left, 0 where nothing is hit).
    """

    left: np.ndarray
    right: np.ndarray
    depth_left: np.ndarray
    depth_right: np.ndarray
    disparity_left: np.ndarray
    intrinsics: Intrinsics
    baseline: float


def fronto_parallel(depth: float, width: float = 1e4, height: float = 1e4, **kw) -> Patch:
    """A patch facing the camera at ``depth`` metres, centred on the optical axis."""
    return Patch(
        origin=(-width / 2, -height / 2, depth), axis_u=(width, 0.0, 0.0), axis_v=(0.0, height, 0.0), **kw
    )


def _texture(seed: int, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Smooth random texture in [-1, 1] at surface coordinates s, t (in texture cells); shape of s."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(s)
    # Sum of octaves of bilinear value noise on a periodic lattice: smooth, with features at every scale.
    for octave, size in enumerate((64, 32, 16)):
        lattice = rng.uniform(-1.0, 1.0, (size, size))
        scale = 2.0**octave / 4.0
        x = s * scale
        y = t * scale
        x0 = np.floor(x).astype(np.int64)
        y0 = np.floor(y).astype(np.int64)
        fx = x - x0
        fy = y - y0
        a = lattice[y0 % size, x0 % size]
        b = lattice[y0 % size, (x0 + 1) % size]
        c = lattice[(y0 + 1) % size, x0 % size]
        d = lattice[(y0 + 1) % size, (x0 + 1) % size]
        out += ((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy) / 2.0**octave
    return np.clip(out / 1.75, -1.0, 1.0)


def _cast(patches: Sequence[Patch], k: Intrinsics, camera_x: float) -> Tuple[np.ndarray, np.ndarray]:
    """Depth (H,W) and linear RGB (H,W,3) seen by a camera at (camera_x, 0, 0) looking down +z."""
    v, u = np.mgrid[0 : k.height, 0 : k.width].astype(np.float64)
    ray = np.stack(((u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)), axis=-1)  # z = 1 rays
    cam = np.array([camera_x, 0.0, 0.0])
    depth = np.full((k.height, k.width), np.inf)
    color = np.zeros((k.height, k.width, 3))
    for patch in patches:
        o = np.asarray(patch.origin, dtype=np.float64)
        a = np.asarray(patch.axis_u, dtype=np.float64)
        b = np.asarray(patch.axis_v, dtype=np.float64)
        n = np.cross(a, b)
        denom = ray @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            z = ((o - cam) @ n) / denom  # ray parameter = depth, since rays have unit z
        hit = cam + ray * z[..., None] - o
        s = hit @ a / (a @ a)
        t = hit @ b / (b @ b)
        inside = np.isfinite(z) & (z > 0) & (s >= 0) & (s <= 1) & (t >= 0) & (t <= 1) & (z < depth)
        if not inside.any():
            continue
        depth[inside] = z[inside]
        albedo = np.asarray(patch.albedo, dtype=np.float64)
        cell_s = np.linalg.norm(a) / patch.texture_cell
        cell_t = np.linalg.norm(b) / patch.texture_cell
        tex = _texture(patch.texture_seed, s[inside] * cell_s, t[inside] * cell_t)
        color[inside] = albedo * (1.0 + patch.contrast * tex[:, None])
    return depth, color


def render_stereo(
    patches: Sequence[Patch],
    intrinsics: Intrinsics,
    baseline: float,
    right_gain: float = 1.0,
    right_bias: float = 0.0,
    noise_std: float = 0.0,
    sky: Tuple[float, float, float] = (0.55, 0.7, 0.9),
    seed: Optional[int] = 0,
) -> StereoFrame:
    """Render the rectified pair seen by cameras at x = 0 (left) and x = +baseline (right).

    ``right_gain``/``right_bias`` change the right camera's exposure (intensity in [0, 1] units);
    ``noise_std`` adds Gaussian sensor noise (same units) to both views. Pixels that hit nothing show ``sky``.
    """
    rng = np.random.default_rng(seed)
    views = []
    depths = []
    for camera_x, gain, bias in ((0.0, 1.0, 0.0), (baseline, right_gain, right_bias)):
        depth, color = _cast(patches, intrinsics, camera_x)
        color[~np.isfinite(depth)] = sky
        color = color * gain + bias
        if noise_std > 0:
            color = color + rng.normal(0.0, noise_std, color.shape)
        views.append(np.clip(np.round(color * 255.0), 0, 255).astype(np.uint8))
        depths.append(depth.astype(np.float32))
    with np.errstate(divide="ignore"):
        disparity = np.where(np.isfinite(depths[0]), intrinsics.fx * baseline / depths[0], 0.0)
    return StereoFrame(
        left=views[0],
        right=views[1],
        depth_left=depths[0],
        depth_right=depths[1],
        disparity_left=disparity.astype(np.float32),
        intrinsics=intrinsics,
        baseline=float(baseline),
    )
