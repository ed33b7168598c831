"""Pinhole intrinsics and rectified stereo rigs: resize/crop/flip of K, baselines from P, focal scaling.

Pixel convention everywhere in fg-depth: integer coordinates are pixel centres, x right, y down (REP 103/105
optical frame). Resizing maps a centre x to (x + 0.5) * s - 0.5, so cx changes accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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
    """A rectified stereo pair: shared intrinsics and the baseline (metres, right camera at +x)."""

    intrinsics: Intrinsics
    baseline: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.baseline) or self.baseline <= 0:
            raise CameraError(f"baseline must be > 0 metres (right camera at +x), got {self.baseline}")

    @classmethod
    def from_projections(
        cls, p_left: np.ndarray, p_right: np.ndarray, width: int, height: int
    ) -> "StereoRig":
        """From the rectified 3x4 projection matrices (KITTI P_rect_0x, ROS CameraInfo.P).

        P = K [I | t] with P[0,3] = -fx * x_cam, so the camera's x offset is -P[0,3] / P[0,0].
        """
        p_left = np.asarray(p_left, dtype=np.float64).reshape(3, 4)
        p_right = np.asarray(p_right, dtype=np.float64).reshape(3, 4)
        if p_left[0, 0] <= 0 or p_right[0, 0] <= 0:
            raise CameraError(f"P matrices need fx > 0, got {p_left[0, 0]} and {p_right[0, 0]}")
        baseline = p_left[0, 3] / p_left[0, 0] - p_right[0, 3] / p_right[0, 0]
        return cls(Intrinsics.from_matrix(p_left, width, height), float(baseline))

    def resized(self, width: int, height: int) -> "StereoRig":
        return StereoRig(self.intrinsics.resized(width, height), self.baseline)


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
