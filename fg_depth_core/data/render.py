"""A small exact ray caster for rectified stereo scenes made of textured planar patches.

Each pixel's ray is intersected with every patch; the nearest hit wins, so depth, disparity and occlusions
are exact by construction. Textures are functions of the patch's own 2-D surface coordinates (metres), so
both cameras see the same surface point with the same albedo. Units: metres and pixels; the left camera
sits at the origin of the optical frame (x right, y down, z forward), the right camera at (+B, 0, 0), or at
(+B, ty, tz) with intrinsics of its own to reproduce a real calibration (its cx offset, its residuals).

Speed: a patch is only tested against the pixels inside the bounding box of its projection (clipped to the
near plane), and textures are evaluated once per pixel, for the winning patch only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.camera import Intrinsics

#: Surface patterns a patch can carry (see :func:`_shade`).
PATTERNS = ("noise", "road", "windows", "car")
#: Hits nearer than this (metres) are ignored; the projection bounding box is clipped at the same plane.
Z_NEAR = 1e-6

#: A sky given per pixel: f(ray_x, ray_y) -> (N,3) linear RGB for rays (ray_x, ray_y, 1) that hit nothing.
SkyFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Patch:
    """A textured planar patch.

    ``origin`` (3,) is a corner; ``axis_u`` and ``axis_v`` (3,) span the patch (their lengths are its size in
    metres; use a very large length for an unbounded plane). ``texture_cell`` is the texture's feature size
    in metres. ``contrast`` scales the texture around ``albedo`` (0 gives a textureless patch). ``pattern``
    adds structure on top of the noise: "road" (lane markings; u across, v along the road), "windows" (a
    facade's window grid; u along, v down the facade) or "car" (the back of a car: rear window, lights,
    plate; u across, v down); its layout is drawn from ``texture_seed``.
    """

    origin: Tuple[float, float, float]
    axis_u: Tuple[float, float, float]
    axis_v: Tuple[float, float, float]
    albedo: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    contrast: float = 0.35
    texture_cell: float = 0.1
    texture_seed: int = 0
    pattern: str = "noise"

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"Patch.pattern: expected one of {PATTERNS}, got {self.pattern!r}")
        if not self.texture_cell > 0:
            raise ValueError(f"Patch.texture_cell: expected > 0 metres, got {self.texture_cell}")


@dataclass
class StereoFrame:
    """A rendered rectified pair with exact geometry.

    left, right: (H,W,3) uint8 RGB. depth_left, depth_right: (H,W) float32 metres (each camera's own z), inf
    where no patch is hit. disparity_left: (H,W) float32 pixels, the image disparity x_l - x_r of each left
    pixel's surface point, exact for any right camera (f * B / depth_left - doffs for an ideal rig); where
    nothing is hit, that of a point at infinity (0 when both cameras share K). right_intrinsics and
    right_offset (ty, tz metres): the right camera as rendered.
    """

    left: np.ndarray
    right: np.ndarray
    depth_left: np.ndarray
    depth_right: np.ndarray
    disparity_left: np.ndarray
    intrinsics: Intrinsics
    baseline: float
    right_intrinsics: Optional[Intrinsics] = None
    right_offset: Tuple[float, float] = (0.0, 0.0)


def fronto_parallel(depth: float, width: float = 1e4, height: float = 1e4, **kw) -> Patch:
    """A patch facing the camera at ``depth`` metres, centred on the optical axis."""
    return Patch(
        origin=(-width / 2, -height / 2, depth), axis_u=(width, 0.0, 0.0), axis_v=(0.0, height, 0.0), **kw
    )


# ------------------------------------------------------------------------------------------------ textures


def _octave_weight(unit: float, footprint: Optional[np.ndarray]) -> Union[float, np.ndarray]:
    """Weight in [0, 1] of a texture octave whose lattice unit is ``unit`` (same units as ``footprint``):
    1 when a unit spans >= 1.5 pixels, fading to 0 at <= 0.5 pixel, where a pixel would average several
    random lattice values (a box-filter stand-in that removes what would only alias)."""
    if footprint is None:
        return 1.0
    return np.clip(unit / np.maximum(footprint, 1e-12) - 0.5, 0.0, 1.0)


#: Lattice sizes of value_noise's octaves (powers of two, so that masks wrap coordinates).
_OCTAVE_SIZES = (64, 32, 16)


@functools.lru_cache(maxsize=4096)
def _lattices(seed: int) -> Tuple[np.ndarray, ...]:
    """value_noise's random lattices for ``seed``, each (size+1, size+1) flattened, wrapped by one row and
    column so that a cell's four corners sit at flat offsets 0, 1, size+1, size+2."""
    rng = np.random.default_rng(seed)
    out = []
    for size in _OCTAVE_SIZES:
        lattice = rng.uniform(-1.0, 1.0, (size, size))
        wrapped = np.pad(lattice, ((0, 1), (0, 1)), mode="wrap").ravel()
        wrapped.setflags(write=False)
        out.append(wrapped)
    return tuple(out)


def value_noise(
    seed: int, s: np.ndarray, t: np.ndarray, footprint: Optional[np.ndarray] = None
) -> np.ndarray:
    """Smooth random texture in [-1, 1] at surface coordinates s, t (in texture cells); shape of s.

    ``footprint`` (texture cells per pixel, shape of s) fades out the octaves a pixel cannot resolve; None
    keeps them all (point sampling).
    """
    out = np.zeros_like(s)
    # Sum of octaves of bilinear value noise on a periodic lattice: smooth, with features at every scale.
    for octave, (size, lattice) in enumerate(zip(_OCTAVE_SIZES, _lattices(int(seed)))):
        scale = 2.0**octave / 4.0
        weight = _octave_weight(1.0 / scale, footprint)
        if not np.any(weight):
            continue  # too fine for every pixel here
        x = s * scale
        y = t * scale
        x0 = np.floor(x)
        y0 = np.floor(y)
        fx = x - x0
        fy = y - y0
        # Bit masks wrap like % for the power-of-two sizes (negative coordinates included).
        m = size - 1
        i = (y0.astype(np.int64) & m) * (size + 1) + (x0.astype(np.int64) & m)
        a = lattice[i]
        b = lattice[i + 1]
        c = lattice[i + size + 1]
        d = lattice[i + size + 2]
        out += weight * ((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy) / 2.0**octave
    return np.clip(out / 1.75, -1.0, 1.0)


def _band(x: np.ndarray, lo: float, hi: float, footprint: Optional[np.ndarray]) -> np.ndarray:
    """Coverage in [0, 1] of the interval [lo, hi] by a pixel centred at x of width ``footprint`` (box
    filter; a hard step when footprint is None)."""
    if footprint is None:
        return ((x >= lo) & (x <= hi)).astype(np.float64)
    w = np.maximum(footprint, 1e-9)
    return np.clip((x - lo) / w + 0.5, 0.0, 1.0) * np.clip((hi - x) / w + 0.5, 0.0, 1.0)


def _periodic(x: np.ndarray, period: float, lo: float, hi: float, fp: Optional[np.ndarray]) -> np.ndarray:
    """Coverage of the intervals [lo, hi] + k * period (0 <= lo < hi <= period) at x."""
    phase = np.mod(x, period)
    # The neighbouring copies matter within a footprint of the period's ends.
    return np.clip(
        _band(phase, lo, hi, fp)
        + _band(phase, lo - period, hi - period, fp)
        + _band(phase, lo + period, hi + period, fp),
        0.0,
        1.0,
    )


def _mix(base: np.ndarray, paint: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Blend (N,3) ``paint`` over (N,3) ``base`` with (N,) coverage in [0, 1]."""
    return base + (np.asarray(paint) - base) * coverage[:, None]


def _shade(patch: Patch, s: np.ndarray, t: np.ndarray, footprint: Optional[np.ndarray]) -> np.ndarray:
    """Linear RGB (N,3) of ``patch`` at its surface coordinates s, t in [0, 1] (N,); ``footprint`` (N,)
    is the pixel's size on the surface in metres (None: point sampling)."""
    len_u = float(np.linalg.norm(patch.axis_u))
    len_v = float(np.linalg.norm(patch.axis_v))
    su, tv = s * len_u, t * len_v  # metres on the surface
    cell = patch.texture_cell
    albedo = np.asarray(patch.albedo, dtype=np.float64)
    if patch.contrast == 0 and patch.pattern in ("noise", "road"):
        tex = np.zeros_like(su)  # the same colour as below, without evaluating a texture nobody sees
    else:
        fp_cells = None if footprint is None else footprint / cell
        tex = value_noise(patch.texture_seed, su / cell, tv / cell, fp_cells)
    color = albedo * (1.0 + patch.contrast * tex[:, None])
    if patch.pattern == "noise":
        return color
    rng = np.random.default_rng([patch.texture_seed, PATTERNS.index(patch.pattern)])
    if patch.pattern == "road":
        paint = np.array([0.82, 0.82, 0.78])
        edge = rng.uniform(0.25, 0.45)
        cover = _band(su, edge, edge + 0.12, footprint) + _band(
            su, len_u - edge - 0.12, len_u - edge, footprint
        )
        dash = rng.uniform(2.0, 4.0)
        centre = _band(su, len_u / 2 - 0.06, len_u / 2 + 0.06, footprint) * _periodic(
            tv, dash * 3.0, 0.0, dash, footprint
        )
        return _mix(color, paint, np.clip(cover + centre, 0.0, 1.0))
    if patch.pattern == "windows":
        spacing = rng.uniform(2.5, 4.0)
        floor = rng.uniform(3.0, 3.6)
        width = spacing * rng.uniform(0.35, 0.6)
        height = floor * rng.uniform(0.4, 0.6)
        glass = rng.uniform(0.08, 0.25) * np.array([0.9, 1.0, 1.15])
        # Reflections vary per window pane, so neighbouring windows do not look alike.
        pane = np.floor(su / spacing) * 7.0 + np.floor(tv / floor) * 13.0
        glass_color = glass * (1.0 + 0.5 * np.sin(pane)[:, None]) * (1.0 + 0.3 * tex[:, None])
        # Facades are anchored at their top edge (v down), so the ground floor may be cut: realistic.
        cover = _periodic(su, spacing, (spacing - width) / 2, (spacing + width) / 2, footprint) * _periodic(
            tv, floor, 0.6, 0.6 + height, footprint
        )
        return color + (glass_color - color) * cover[:, None]
    # "car": the back of a car, u across (left to right), v down from the roof.
    glass = np.array([0.07, 0.08, 0.1]) * (1.0 + 0.3 * tex[:, None])
    window = _band(su, 0.12 * len_u, 0.88 * len_u, footprint) * _band(
        tv, 0.06 * len_v, 0.4 * len_v, footprint
    )
    color = color + (glass - color) * window[:, None]
    light_v = _band(tv, 0.5 * len_v, 0.62 * len_v, footprint)
    lights = _band(su, 0.04 * len_u, 0.2 * len_u, footprint) + _band(su, 0.8 * len_u, 0.96 * len_u, footprint)
    color = _mix(color, np.array([0.75, 0.08, 0.06]), lights * light_v)
    plate = _band(su, 0.4 * len_u, 0.6 * len_u, footprint) * _band(tv, 0.66 * len_v, 0.76 * len_v, footprint)
    return _mix(color, np.array([0.9, 0.9, 0.85]), plate)


# -------------------------------------------------------------------------------------------- ray casting


def _geometry(patches: Sequence[Patch]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Origins, u axes, v axes and normals (P,3) float64 of ``patches``."""
    o = np.array([p.origin for p in patches], dtype=np.float64).reshape(-1, 3)
    a = np.array([p.axis_u for p in patches], dtype=np.float64).reshape(-1, 3)
    b = np.array([p.axis_v for p in patches], dtype=np.float64).reshape(-1, 3)
    return o, a, b, np.cross(a, b).reshape(-1, 3)


def _bboxes(o: np.ndarray, a: np.ndarray, b: np.ndarray, camera: np.ndarray, k: Intrinsics) -> np.ndarray:
    """Pixel windows (P,4) int64 [v0, v1, u0, u1) that may see each patch from ``camera``; v0 >= v1 or
    u0 >= u1 when none can.

    The part of a patch in front of the near plane is a convex polygon whose vertices are the corners with
    z >= Z_NEAR and the crossings of its edges with that plane; its projection is convex, so the projected
    vertices bound every pixel centre whose ray hits. One pixel of slack covers rounding.
    """
    rel = o - camera
    corners = np.stack((rel, rel + a, rel + a + b, rel + b), axis=1)  # (P,4,3), in polygon order
    nxt = np.roll(corners, -1, axis=1)
    z0, z1 = corners[..., 2], nxt[..., 2]
    front = z0 >= Z_NEAR
    crossing = front != (z1 >= Z_NEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(crossing, (Z_NEAR - z0) / (z1 - z0), 0.0)
    cut = corners + (nxt - corners) * frac[..., None]
    points = np.concatenate((corners, cut), axis=1)  # (P,8,3)
    keep = np.concatenate((front, crossing), axis=1)
    z = np.where(keep, points[..., 2], 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        u = k.fx * points[..., 0] / z + k.cx
        v = k.fy * points[..., 1] / z + k.cy
    big = 1e9

    def span(c: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
        lo = np.clip(np.where(keep, c, big).min(axis=1), -2.0, size + 1.0)
        hi = np.clip(np.where(keep, c, -big).max(axis=1), -2.0, size + 1.0)
        first = np.maximum(np.floor(lo) - 1, 0).astype(np.int64)
        return first, np.minimum(np.ceil(hi) + 2, size).astype(np.int64)

    u0, u1 = span(u, k.width)
    v0, v1 = span(v, k.height)
    return np.stack((v0, v1, u0, u1), axis=1)


def _cast(
    patches: Sequence[Patch], k: Intrinsics, camera: Tuple[float, float, float]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit per pixel for a camera at ``camera`` (x, y, z metres) looking down +z.

    Returns depth (H,W) float64 metres (inf: no hit), the index (H,W) int64 of the patch hit (-1: none) and
    its surface coordinates s, t (H,W) in [0, 1].
    """
    rx = (np.arange(k.width, dtype=np.float64) - k.cx) / k.fx  # rays (rx, ry, 1): their parameter is depth
    ry = (np.arange(k.height, dtype=np.float64) - k.cy) / k.fy
    cam = np.asarray(camera, dtype=np.float64)
    depth = np.full((k.height, k.width), np.inf)
    index = np.full((k.height, k.width), -1, dtype=np.int64)
    s_buf = np.zeros((k.height, k.width))
    t_buf = np.zeros((k.height, k.width))
    if not len(patches):
        return depth, index, s_buf, t_buf
    origins, axes_u, axes_v, normals = _geometry(patches)
    boxes = _bboxes(origins, axes_u, axes_v, cam, k)
    for i in np.flatnonzero((boxes[:, 0] < boxes[:, 1]) & (boxes[:, 2] < boxes[:, 3])):
        v0, v1, u0, u1 = (int(x) for x in boxes[i])
        a, b, n = axes_u[i], axes_v[i], normals[i]
        d = cam - origins[i]
        bx, by = rx[None, u0:u1], ry[v0:v1, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = (-(d @ n)) / (n[0] * bx + n[1] * by + n[2])
            # hit - origin = ray * z + d, projected on each axis.
            s = (z * (a[0] * bx + a[1] * by + a[2]) + d @ a) / (a @ a)
            t = (z * (b[0] * bx + b[1] * by + b[2]) + d @ b) / (b @ b)
            view = depth[v0:v1, u0:u1]
            inside = (z > Z_NEAR) & (s >= 0) & (s <= 1) & (t >= 0) & (t <= 1) & (z < view)
        if not inside.any():
            continue
        view[inside] = z[inside]
        index[v0:v1, u0:u1][inside] = i
        s_buf[v0:v1, u0:u1][inside] = s[inside]
        t_buf[v0:v1, u0:u1][inside] = t[inside]
    return depth, index, s_buf, t_buf


def _colorize(
    patches: Sequence[Patch],
    k: Intrinsics,
    depth: np.ndarray,
    index: np.ndarray,
    s: np.ndarray,
    t: np.ndarray,
    antialias: bool,
) -> np.ndarray:
    """Linear RGB (H,W,3) of the hit pixels (zeros elsewhere), one texture evaluation per pixel."""
    color = np.zeros((k.height, k.width, 3))
    flat = index.ravel()
    hit = np.flatnonzero(flat >= 0)
    if hit.size == 0:
        return color
    order = hit[np.argsort(flat[hit], kind="stable")]
    ids, starts = np.unique(flat[order], return_index=True)
    bounds = list(starts[1:]) + [order.size]
    out = color.reshape(-1, 3)
    s_hit, t_hit = s.ravel()[order], t.ravel()[order]
    footprint = None
    if antialias:
        rx = (order % k.width - k.cx) / k.fx
        ry = (order // k.width - k.cy) / k.fy
        # A pixel subtends 1/f rad, so at range r = z |ray| it spans r / f metres across the line of sight:
        # its footprint along the surface's best-resolved direction. Along a grazing direction it is longer,
        # but blurring by that would erase the texture across it too (no anisotropic filter here); the road's
        # grazing direction is the image's vertical, which both views of a rectified rig sample alike.
        footprint = depth.ravel()[order] * np.sqrt(rx * rx + ry * ry + 1.0) / k.fx
    for pid, lo, hi in zip(ids, starts, bounds):
        fp = None if footprint is None else footprint[lo:hi]
        out[order[lo:hi]] = _shade(patches[int(pid)], s_hit[lo:hi], t_hit[lo:hi], fp)
    return color


def _sky_color(
    sky: Union[Tuple[float, float, float], SkyFunction], k: Intrinsics, mask: np.ndarray
) -> np.ndarray:
    """(N,3) sky colour at the pixels where ``mask`` (H,W) is True."""
    if not callable(sky):
        return np.broadcast_to(np.asarray(sky, dtype=np.float64), (int(mask.sum()), 3))
    v, u = np.nonzero(mask)
    return np.asarray(sky((u - k.cx) / k.fx, (v - k.cy) / k.fy), dtype=np.float64).reshape(-1, 3)


def render_stereo(
    patches: Sequence[Patch],
    intrinsics: Intrinsics,
    baseline: float,
    right_gain: float = 1.0,
    right_bias: float = 0.0,
    noise_std: float = 0.0,
    sky: Union[Tuple[float, float, float], SkyFunction] = (0.55, 0.7, 0.9),
    seed: Optional[int] = 0,
    antialias: bool = False,
    right_intrinsics: Optional[Intrinsics] = None,
    right_offset: Tuple[float, float] = (0.0, 0.0),
) -> StereoFrame:
    """Render the rectified pair seen by cameras at x = 0 (left) and x = +baseline (right).

    The right camera has ``intrinsics`` too unless ``right_intrinsics`` (same image size) gives its own (a cx
    of its own is a disparity offset doffs = cx_r - cx_l), and sits at (baseline, ty, tz) for
    ``right_offset`` = (ty, tz) metres; both keep the left camera's orientation. Ground truth stays exact.
    ``right_gain``/``right_bias`` change the right camera's exposure (intensity in [0, 1] units);
    ``noise_std`` adds Gaussian sensor noise (same units) to both views. Pixels that hit nothing show ``sky``:
    an RGB triple or a function of the ray direction (so it lies at infinity: zero disparity). With
    ``antialias`` each pixel averages texture detail and painted edges over its footprint on the surface (as
    a lens and sensor do), so distant surfaces do not alias into view-dependent noise.
    """
    k_right = intrinsics if right_intrinsics is None else right_intrinsics
    if (k_right.width, k_right.height) != (intrinsics.width, intrinsics.height):
        raise ValueError(
            f"right_intrinsics: expected a {intrinsics.width}x{intrinsics.height} image like the left, got "
            f"{k_right.width}x{k_right.height}"
        )
    ty, tz = (float(v) for v in right_offset)
    rng = np.random.default_rng(seed)
    views = []
    depths = []
    cameras = (
        (intrinsics, (0.0, 0.0, 0.0), 1.0, 0.0),
        (k_right, (float(baseline), ty, tz), right_gain, right_bias),
    )
    for k, position, gain, bias in cameras:
        depth, index, s, t = _cast(patches, k, position)
        color = _colorize(patches, k, depth, index, s, t, antialias)
        miss = index < 0
        if miss.any():
            color[miss] = _sky_color(sky, k, miss)
        color = color * gain + bias
        if noise_std > 0:
            color = color + rng.normal(0.0, noise_std, color.shape)
        views.append(np.clip(np.round(color * 255.0), 0, 255).astype(np.uint8))
        depths.append(depth.astype(np.float32))
    return StereoFrame(
        left=views[0],
        right=views[1],
        depth_left=depths[0],
        depth_right=depths[1],
        disparity_left=_image_disparity(depths[0], intrinsics, k_right, (float(baseline), ty, tz)),
        intrinsics=intrinsics,
        baseline=float(baseline),
        right_intrinsics=right_intrinsics,
        right_offset=(ty, tz),
    )


def _image_disparity(
    depth: np.ndarray, left: Intrinsics, right: Intrinsics, offset: Tuple[float, float, float]
) -> np.ndarray:
    """x_l - x_r (H,W) float32 pixels of each left pixel's surface point at ``depth`` (H,W metres, inf: a
    point at infinity along the pixel's ray) seen by a right camera with ``right`` intrinsics at ``offset``
    (x, y, z metres) from the left."""
    ray_x = (np.arange(left.width, dtype=np.float64)[None, :] - left.cx) / left.fx
    z = depth.astype(np.float64)
    finite = np.isfinite(z)
    # x_l = fx_l ray_x + cx_l and x_r = fx_r (ray_x Z - Bx) / (Z - Bz) + cx_r, grouped so that an ideal rig
    # (one fx, Bz = 0) gives exactly fx * B / Z - doffs; as Z -> inf the Z terms tend to 1 and 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        stretch = np.where(finite, z / (z - offset[2]), 1.0)
        parallax = np.where(finite, right.fx * offset[0] / (z - offset[2]), 0.0)
    disparity = ray_x * (left.fx - right.fx * stretch) + parallax - (right.cx - left.cx)
    return disparity.astype(np.float32)
