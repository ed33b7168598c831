"""Pinhole intrinsics and rectified stereo rigs: resize/crop/flip of K, the rig from two P, focal scaling.

Pixel convention everywhere in fg-depth: integer coordinates are pixel centres, x right, y down (REP 103/105
optical frame). Resizing maps a centre x to (x + 0.5) * s - 0.5, so cx changes accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

from fg_depth_core.errors import FgDepthError


class CameraError(FgDepthError, ValueError):
    """Intrinsics or a stereo calibration are unusable; the message says which value and why."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of an image of size ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise CameraError(
                f"intrinsics must be finite, got fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}"
            )
        if self.fx <= 0 or self.fy <= 0:
            raise CameraError(f"focal lengths must be > 0 pixels, got fx={self.fx} fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise CameraError(f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> "Intrinsics":
        """From a 3x3 K or the left 3x3 block of a 3x4 P."""
        k = np.asarray(k, dtype=np.float64)
        if k.shape not in ((3, 3), (3, 4)):
            raise CameraError(f"expected a 3x3 K or 3x4 P matrix, got shape {k.shape}")
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    def matrix(self) -> np.ndarray:
        """The 3x3 K (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def resized(self, width: int, height: int) -> "Intrinsics":
        """Intrinsics after resizing the whole image to ``width`` x ``height`` pixels."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "Intrinsics":
        """Intrinsics of the window [x0, x0+width) x [y0, y0+height) of this image."""
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise CameraError(
                f"crop ({x0},{y0}) {width}x{height} does not fit in a {self.width}x{self.height} image"
            )
        return Intrinsics(self.fx, self.fy, self.cx - x0, self.cy - y0, width, height)

    def flipped(self) -> "Intrinsics":
        """Intrinsics of the horizontally mirrored image."""
        return Intrinsics(self.fx, self.fy, self.width - 1 - self.cx, self.cy, self.width, self.height)


@dataclass(frozen=True)
class StereoRig:
    """A rectified stereo pair, described from the left view (the one whose depth fg-depth predicts).

    ``intrinsics``: the left camera's (pixels, at the images' size). ``baseline``: metres, the right camera at
    +B along x. ``doffs``: the disparity offset cx_r - cx_l (pixels), zero for a pair rectified to one K
    (OpenCV's CALIB_ZERO_DISPARITY) and non-zero for Middlebury 2014's doffs or OpenCV's stereoRectify
    without that flag. A point at depth Z (metres) appears at left column x and right column x - d with

        d = x_l - x_r = f * B / Z - doffs        Z = f * B / (d + doffs)

    (f = the left fx; Middlebury's calib.txt and ROS image_geometry's StereoCameraModel.getZ say the same; the
    maths is fg_depth_core.geometry / geometry_np). The right camera's intrinsics are the left ones with
    cx + doffs (:attr:`right_intrinsics`). ``notes``: human-readable residuals of the calibration it was built
    from (:meth:`from_projections`) that were accepted within bounds; callers log them once per calibration.
    """

    intrinsics: Intrinsics
    baseline: float
    doffs: float = 0.0
    notes: Tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not np.isfinite(self.baseline) or self.baseline <= 0:
            raise CameraError(f"baseline must be > 0 metres (right camera at +x), got {self.baseline}")
        if not np.isfinite(self.doffs):
            raise CameraError(f"disparity offset doffs must be finite pixels, got {self.doffs}")

    @property
    def right_intrinsics(self) -> Intrinsics:
        """The right camera's intrinsics: the left ones with cx_r = cx_l + doffs."""
        k = self.intrinsics
        return Intrinsics(k.fx, k.fy, k.cx + self.doffs, k.cy, k.width, k.height)

    @property
    def right_tx(self) -> float:
        """The right camera's P[0,3] = Tx = -fx * B (pixels * metres, the ROS CameraInfo convention with the
        left camera's Tx = 0)."""
        return -self.intrinsics.fx * self.baseline

    @classmethod
    def from_projections(
        cls,
        p_left: np.ndarray,
        p_right: np.ndarray,
        width: int,
        height: int,
        labels: Tuple[str, str] = ("left P", "right P"),
        pair_label: str = "P matrices",
    ) -> "StereoRig":
        """From the rectified 3x4 projection matrices (KITTI P_rect_0x, ROS CameraInfo.P) of ``width`` x
        ``height`` images; ``labels`` name the two matrices in messages, ``pair_label`` both.

        P = K [I | t]: Tx = P[0,3] = fx * t_x, and B = Tx_l / fx_l - Tx_r / fx_r, whichever camera carries a
        Tx (the ROS convention puts 0 on the left and -fx * B on the right; KITTI gives both a Tx).
        doffs = cx_r - cx_l. Residuals of a real calibration (the right camera offset vertically or in depth
        from the left, from t = K^-1 P[:,3]; the two P differing a little in fx, fy or cy) are accepted within
        RIG_MAX_OFFSET_RATIO, RIG_MAX_FOCAL_MISMATCH and RIG_MAX_ROW_OFFSET and described in ``notes``;
        beyond them, or with the right camera not at +x, CameraError names the numbers and the bound.
        """
        p_left = np.asarray(p_left, dtype=np.float64).reshape(3, 4)
        p_right = np.asarray(p_right, dtype=np.float64).reshape(3, 4)
        for label, p in zip(labels, (p_left, p_right)):
            if not np.all(np.isfinite(p)):
                raise CameraError(f"{label} must be finite, got {p.reshape(-1).tolist()}")
            if p[0, 0] <= 0 or p[1, 1] <= 0:
                raise CameraError(f"{label} needs fx > 0 and fy > 0, got fx={p[0, 0]} fy={p[1, 1]}")
            skew = max(abs(p[0, 1]), abs(p[1, 0])) > RIG_NOTE_RELATIVE * p[0, 0]
            if skew or not np.allclose(p[2, :3], (0.0, 0.0, 1.0)):
                raise CameraError(
                    f"{label} is not a rectified pinhole projection [fx 0 cx Tx; 0 fy cy Ty; 0 0 1 Tz]: got "
                    f"{p.reshape(-1).tolist()}"
                )
        left = Intrinsics.from_matrix(p_left, width, height)
        right = Intrinsics.from_matrix(p_right, width, height)
        baseline = float(p_left[0, 3] / p_left[0, 0] - p_right[0, 3] / p_right[0, 0])
        if not baseline > 0:
            raise CameraError(
                f"{pair_label}: baseline must be > 0 metres (right camera at +x), got B = Tx_l / fx_l - "
                "Tx_r / fx_r = "
                f"{baseline:.6g} m from {labels[0]}[0,3] = {p_left[0, 3]:g} and {labels[1]}[0,3] = "
                f"{p_right[0, 3]:g}: are left and right swapped, or is the right Tx positive (ROS: right "
                "P[0,3] = -fx * baseline)?"
            )
        notes = rig_residuals(p_left, p_right, baseline, labels)
        return cls(left, baseline, right.cx - left.cx, notes)

    def resized(self, width: int, height: int) -> "StereoRig":
        """The rig of both views resized to ``width`` x ``height`` (doffs scales with the width)."""
        k = self.intrinsics
        return StereoRig(k.resized(width, height), self.baseline, self.doffs * width / k.width, self.notes)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "StereoRig":
        """The rig of the same window [x0, x0+width) x [y0, y0+height) cut from both views (doffs stays)."""
        k = self.intrinsics.cropped(x0, y0, width, height)
        return StereoRig(k, self.baseline, self.doffs, self.notes)

    def flip_swapped(self) -> "StereoRig":
        """The rig of the pair mirrored left-right with the views swapped (the flip-swap augmentation).

        Mirroring maps a column x to W - 1 - x and the world's x to -x, so the old right camera becomes the
        left one, with the old left camera +B to its right. The new left view is the mirrored old right view:
        cx_l' = W - 1 - cx_r; the new right view is the mirrored old left view: cx_r' = W - 1 - cx_l. Hence
        doffs' = cx_r' - cx_l' = cx_r - cx_l: f, B and doffs are unchanged, only cx moves.
        """
        return StereoRig(self.right_intrinsics.flipped(), self.baseline, self.doffs, self.notes)


#: Largest accepted offset of the right camera from the left, vertically (ty) or along the optical axis (tz),
#: as a fraction of the baseline. A vertical offset moves a point's row in the right view by ty / B * (its
#: disparity + doffs) pixels: at this bound a point 50 px of disparity away is one row off, which semi-global
#: matching's blocks still absorb. A depth offset scales x_r - cx_r by Z / (Z - tz): the depth error is about
#: tz / B * |x - cx| / fx, about 1 % at the edge of a 60 degree view. KITTI 2011_09_26 has ty/B = 0.52 % and
#: tz/B = 0.003 %.
RIG_MAX_OFFSET_RATIO = 0.02
#: Largest accepted relative difference between the two P's fx (or fy). Rectification gives both views one
#: focal length; a difference is rounding or a hand-edited file. It moves a column by that fraction of its
#: distance to cx: at this bound 0.5 px at 500 px from the centre.
RIG_MAX_FOCAL_MISMATCH = 1e-3
#: Largest accepted difference of the two P's cy (pixels): rows misalign by that much everywhere; block
#: matching tolerates about one row.
RIG_MAX_ROW_OFFSET = 1.0
#: Residuals below these are float rounding, not worth a note: relative (offsets, focal lengths) and pixels.
RIG_NOTE_RELATIVE = 1e-9
RIG_NOTE_PIXELS = 1e-6


def rig_residuals(
    p_left: np.ndarray,
    p_right: np.ndarray,
    baseline: float,
    labels: Tuple[str, str] = ("left P", "right P"),
) -> Tuple[str, ...]:
    """Notes on the residuals of a rectified pair's P matrices (3,4) with baseline ``baseline`` (metres);
    CameraError naming the numbers and the bound for one beyond RIG_MAX_OFFSET_RATIO, RIG_MAX_FOCAL_MISMATCH
    or RIG_MAX_ROW_OFFSET. ``labels`` name the matrices in messages."""
    notes: List[str] = []
    # P = K [I | t]: t = K^-1 P[:, 3] is the rectified origin in each camera's frame, so the right camera's
    # centre relative to the left is t_l - t_r (its x is the baseline, up to tz rounding).
    own = [np.linalg.solve(p[:, :3], p[:, 3]) for p in (p_left, p_right)]
    offset = own[0] - own[1]
    for axis, index, what in (("ty", 1, "vertical"), ("tz", 2, "depth")):
        value = float(offset[index])
        ratio = abs(value) / baseline
        text = (
            f"{what} offset {axis} = {value * 1e3:+.4g} mm of the right camera from the left "
            f"({100 * ratio:.3g} % of the {baseline:.4g} m baseline"
        )
        if ratio > RIG_MAX_OFFSET_RATIO:
            side = 0 if np.abs(own[0][1:]).max() > np.abs(own[1][1:]).max() else 1
            p = (p_left, p_right)[side]
            raise CameraError(
                f"{labels[side]} has a vertical or depth offset (P[1,3]={p[1, 3]:g}, P[2,3]={p[2, 3]:g}): "
                f"{text}) is more than the accepted {100 * RIG_MAX_OFFSET_RATIO:g} % (RIG_MAX_OFFSET_RATIO); "
                "not a rectified pair"
            )
        if ratio > RIG_NOTE_RELATIVE:
            notes.append(f"{text}; accepted up to {100 * RIG_MAX_OFFSET_RATIO:g} %)")
    for name, row, col, bound, unit in (
        ("fx", 0, 0, RIG_MAX_FOCAL_MISMATCH, "relative"),
        ("fy", 1, 1, RIG_MAX_FOCAL_MISMATCH, "relative"),
        ("cy", 1, 2, RIG_MAX_ROW_OFFSET, "pixels"),
    ):
        a, b = float(p_left[row, col]), float(p_right[row, col])
        if unit == "relative":
            size, tiny = abs(b / a - 1.0), RIG_NOTE_RELATIVE
            limit, amount = f"{100 * bound:g} % (RIG_MAX_FOCAL_MISMATCH)", f"{100 * size:.3g} %"
        else:
            size, tiny = abs(b - a), RIG_NOTE_PIXELS
            limit, amount = f"{bound:g} px (RIG_MAX_ROW_OFFSET)", f"rows {size:.3g} px apart"
        text = f"P matrices differ in {name} (left {a}, right {b}): {amount}"
        if size > bound:
            raise CameraError(f"{text}, more than the accepted {limit}: not a rectified pair")
        if size > tiny:
            notes.append(f"{text}, accepted up to {limit}")
    return tuple(notes)


def focal_scale(focal: float, train_focal: float) -> float:
    """Factor D'/D for a network trained at focal length ``train_focal`` (pixels at the network input)
    applied to a camera with focal length ``focal`` (same units): D' = D * f' / f_train
    (docs/METHOD.md, "Scale")."""
    if not (np.isfinite(focal) and focal > 0 and np.isfinite(train_focal) and train_focal > 0):
        raise CameraError(f"focal lengths must be > 0, got f={focal} f_train={train_focal}")
    return float(focal) / float(train_focal)


def intrinsics_batch(items: Sequence[Intrinsics]) -> np.ndarray:
    """Stack K matrices of a batch: (B,3,3) float32."""
    return np.stack([k.matrix() for k in items]).astype(np.float32)
