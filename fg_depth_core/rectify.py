"""Undistortion and stereo rectification of raw camera images from their CameraInfo (D, K, R, P), with
OpenCV.

A ROS camera driver publishes raw, distorted images and a CameraInfo per camera: K and D describe the raw
camera, R rotates it into the rectified frame the stereo pair shares, and P projects that frame into the
rectified image (P_right[0,3] = -fx * baseline; the two P may differ in cx, the disparity offset of
fg_depth_core.camera.StereoRig). Rectifying both views with these gives row-aligned pairs
that the teacher and the photometric loss need. Pixel maps are computed once per camera and applied per
frame with ``cv2.remap``.

The rectified image keeps the raw size; where a rectified pixel maps outside the raw image it is black, so
:func:`valid_crop` finds the largest rectangle that both views fill and :class:`StereoRectifier` crops to it
(the intrinsics shift with the crop) when asked. :class:`MonoRectifier` undistorts one camera, and
:class:`RectifierCache` keeps the maps of the calibration in use, so a node computes them once per
calibration rather than per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Tuple

import numpy as np

from fg_depth_core.camera import CameraError, Intrinsics, StereoRig
from fg_depth_core.camera_msgs import (
    ConversionError,
    camera_info_to_intrinsics,
    info_matrix,
    stereo_rig_from_infos,
    what_prefix,
)
from fg_depth_core.config import RECTIFY_MODES

#: CameraInfo distortion models and the OpenCV model that undistorts them.
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
FISHEYE_MODELS = ("equidistant",)
DISTORTION_MODELS = PINHOLE_MODELS + FISHEYE_MODELS
#: Tolerance under which R counts as the identity and D as zero (an already rectified camera).
IDENTITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CameraCalibration:
    """One camera's CameraInfo as arrays: raw size (pixels), distortion model and D, K (3,3), R (3,3),
    P (3,4)."""

    width: int
    height: int
    model: str
    d: np.ndarray
    k: np.ndarray
    r: np.ndarray
    p: np.ndarray
    #: Binning or a region of interest is set (the images are not the calibrated full frame).
    binned_or_cropped: bool = False
    #: Prefix of error messages (the topic).
    what: str = ""

    @classmethod
    def from_info(cls, msg: Any, what: str = "") -> "CameraCalibration":
        """From a CameraInfo message (rclpy or rosbags). Raises ConversionError naming ``what`` and the field
        for a zero size, wrong matrix sizes or an all-zero K."""
        width, height = int(msg.width), int(msg.height)
        if width <= 0 or height <= 0:
            raise ConversionError(
                f"{what_prefix(what)}camera_info size is {width}x{height}: the camera is not calibrated"
            )
        k = info_matrix(msg.k, (3, 3), "K", what)
        if not np.any(k != 0):
            raise ConversionError(
                f"{what_prefix(what)}camera_info K is all zero: the camera is not calibrated"
            )
        r = info_matrix(msg.r, (3, 3), "R", what)
        if not np.any(r != 0):
            r = np.eye(3)  # an unset R means no rotation (monocular cameras leave it zero)
        d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
        p = info_matrix(msg.p, (3, 4), "P", what)
        binned = max(int(msg.binning_x), 1) > 1 or max(int(msg.binning_y), 1) > 1 or int(msg.roi.width) > 0
        return cls(width, height, str(msg.distortion_model), d, k, r, p, binned, what)

    def is_raw(self) -> bool:
        """True when the images need rectification: D is not zero or R is not the identity."""
        distorted = bool(np.any(np.abs(self.d) > IDENTITY_TOLERANCE))
        rotated = not np.allclose(self.r, np.eye(3), atol=IDENTITY_TOLERANCE)
        return distorted or rotated

    def maps(self) -> Tuple[np.ndarray, np.ndarray]:
        """(map_x, map_y): (H,W) float32 raw-image pixel coordinates of each rectified pixel."""
        import cv2

        prefix = what_prefix(self.what)
        if self.binned_or_cropped:
            raise ConversionError(
                f"{prefix}camera_info sets binning or a region of interest; rectifying such images is not "
                "supported (record full-resolution raw images, or rectified ones)"
            )
        size = (self.width, self.height)
        if self.model in FISHEYE_MODELS:
            if self.d.size < 4:
                raise ConversionError(
                    f"{prefix}{self.model} distortion needs 4 coefficients, got {self.d.size}"
                )
            return cv2.fisheye.initUndistortRectifyMap(
                self.k, self.d[:4], self.r, self.p[:, :3], size, cv2.CV_32FC1
            )
        if self.model not in PINHOLE_MODELS:
            raise ConversionError(
                f"{prefix}camera_info distortion_model {self.model!r} is not supported; supported: "
                f"{', '.join(DISTORTION_MODELS)}"
            )
        return cv2.initUndistortRectifyMap(self.k, self.d, self.r, self.p[:, :3], size, cv2.CV_32FC1)


def inside_raw(map_x: np.ndarray, map_y: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H,W) bool: rectified pixels whose raw source lies inside a ``width`` x ``height`` image."""
    return (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)


def valid_crop(valid: np.ndarray) -> Tuple[int, int, int, int]:
    """(x0, y0, width, height) of a large axis-aligned rectangle inside which ``valid`` (H,W bool) is all
    True: the bounding box of the valid pixels, shrunk one row or column at a time on the side with the most
    invalid pixels. Exact for the convex-ish valid regions rectification produces."""
    if not valid.any():
        raise ConversionError("rectification leaves no valid pixel: check the CameraInfo matrices")
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    while True:
        box = ~valid[y0:y1, x0:x1]
        if not box.any():
            return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
        sides = {
            "top": box[0].sum(),
            "bottom": box[-1].sum(),
            "left": box[:, 0].sum(),
            "right": box[:, -1].sum(),
        }
        side = max(sides, key=sides.get)
        if side == "top":
            y0 += 1
        elif side == "bottom":
            y1 -= 1
        elif side == "left":
            x0 += 1
        else:
            x1 -= 1


class StereoRectifier:
    """Rectifies raw stereo pairs of two CameraInfos into row-aligned, cropped pairs.

    mode: "auto" rectifies when either camera is raw (:meth:`CameraCalibration.is_raw`), "always" and
    "never" force it. crop: cut the rectified pair to the rectangle both views fill. ``rig`` is the rectified
    rig at the output size (fg_depth_core.camera_msgs.stereo_rig_from_infos: left intrinsics, baseline in
    metres, disparity offset, and ``rig.notes`` on accepted calibration residuals for the caller to log).
    """

    def __init__(
        self, left_info: Any, right_info: Any, mode: str = "auto", crop: bool = True, what: str = ""
    ) -> None:
        if mode not in RECTIFY_MODES:
            raise ConversionError(f"rectify mode: expected one of {list(RECTIFY_MODES)}, got {mode!r}")
        prefix = what_prefix(what)
        self.left = CameraCalibration.from_info(left_info, f"{prefix}left")
        self.right = CameraCalibration.from_info(right_info, f"{prefix}right")
        # Checks that the P matrices describe a rectified pair and gives its rig.
        rig = stereo_rig_from_infos(left_info, right_info, what)
        self.mode = mode
        self.enabled = mode == "always" or (mode == "auto" and (self.left.is_raw() or self.right.is_raw()))
        # Images used as recorded have the size of the (binned / cropped) intrinsics; remapped: full frame.
        k = rig.intrinsics
        self.size = (self.left.width, self.left.height) if self.enabled else (k.width, k.height)
        self.maps = None
        x0, y0, w, h = 0, 0, self.size[0], self.size[1]
        if self.enabled:
            self.maps = (self.left.maps(), self.right.maps())
            if crop:
                valid = np.ones((h, w), dtype=bool)
                for map_x, map_y in self.maps:
                    valid &= inside_raw(map_x, map_y, w, h)
                x0, y0, w, h = valid_crop(valid)
        self.crop = (x0, y0, w, h)
        try:
            self.rig = rig.cropped(x0, y0, w, h)
        except CameraError as exc:
            raise ConversionError(f"{prefix}camera_info: {exc}") from None

    def __call__(self, left: np.ndarray, right: np.ndarray, what: str = "") -> Tuple[np.ndarray, np.ndarray]:
        """Rectified, cropped (H',W',3) uint8 views of raw (H,W,3) uint8 ``left`` and ``right``."""
        out = []
        for side, image in (("left", left), ("right", right)):
            if image.shape[1::-1] != self.size:
                raise ConversionError(
                    f"{what_prefix(what)}{side} image is {image.shape[1]}x{image.shape[0]} but its "
                    f"camera_info says {self.size[0]}x{self.size[1]}"
                )
        for image, maps in zip((left, right), self.maps or (None, None)):
            if maps is not None:
                image = remap(image, maps)
            x0, y0, w, h = self.crop
            out.append(np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w]))
        return out[0], out[1]

    def describe(self) -> str:
        """One line: what is done to the images and the resulting rig."""
        x0, y0, w, h = self.crop
        k = self.rig.intrinsics
        action = (
            f"rectified ({self.left.model}) and cropped to {w}x{h} at ({x0},{y0})"
            if self.enabled
            else (
                "used as recorded (rectify=never)"
                if self.mode == "never"
                else "already rectified (D = 0, R = I): used as recorded"
            )
        )
        offset = f", disparity offset {self.rig.doffs:.2f} px" if self.rig.doffs else ""
        return (
            f"{self.size[0]}x{self.size[1]} {action}; fx {k.fx:.1f} px, baseline {self.rig.baseline:.4f} m"
            f"{offset}"
        )


def remap(image: np.ndarray, maps: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``image`` (H,W[,C]) resampled at the raw-pixel coordinates ``maps`` (bilinear; black outside)."""
    import cv2

    return cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


class MonoRectifier:
    """Undistorts (and rotates by R) one raw camera's images from its CameraInfo into the image its P
    describes (K when P is all zero, as for a camera calibrated without a rectified projection), at the raw
    size: what ROS' image_proc publishes as image_rect. ``intrinsics`` are those of the output; an already
    rectified camera (D = 0, R = I) passes through. Raises ConversionError naming ``what`` for an unknown
    distortion model, binning or an ROI with raw images, or a bad matrix."""

    def __init__(self, info: Any, what: str = "") -> None:
        calibration = CameraCalibration.from_info(info, what)
        self.enabled = calibration.is_raw()
        if not self.enabled:
            self.maps = None
            self.intrinsics = camera_info_to_intrinsics(info, True, what)
            self.size = (self.intrinsics.width, self.intrinsics.height)
            return
        if not np.any(calibration.p != 0):
            calibration = replace(calibration, p=np.hstack([calibration.k, np.zeros((3, 1))]))
        self.maps = calibration.maps()
        self.size = (calibration.width, calibration.height)
        try:
            self.intrinsics = Intrinsics.from_matrix(calibration.p, *self.size)
        except CameraError as exc:
            raise ConversionError(f"{what_prefix(what)}camera_info P: {exc}") from None

    def __call__(self, image: np.ndarray, what: str = "") -> np.ndarray:
        """The rectified (H,W[,C]) image of a raw one of the calibrated size."""
        if image.shape[1::-1] != self.size:
            raise ConversionError(
                f"{what_prefix(what)}image is {image.shape[1]}x{image.shape[0]} but its camera_info says "
                f"{self.size[0]}x{self.size[1]}"
            )
        return image if self.maps is None else remap(image, self.maps)


def calibration_key(info: Any) -> Tuple[Any, ...]:
    """Everything of a CameraInfo that the rectification maps depend on, hashable."""
    roi = info.roi
    return (
        int(info.width),
        int(info.height),
        str(info.distortion_model),
        tuple(np.asarray(info.d, dtype=np.float64).ravel()),
        tuple(np.asarray(info.k, dtype=np.float64).ravel()),
        tuple(np.asarray(info.r, dtype=np.float64).ravel()),
        tuple(np.asarray(info.p, dtype=np.float64).ravel()),
        int(info.binning_x),
        int(info.binning_y),
        (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
    )


class RectifierCache:
    """The rectifier of the calibration in use, rebuilt only when a camera_info changes (computing the maps
    takes tens of milliseconds; applying them, one remap per image). Not thread-safe: one owner calls it."""

    def __init__(self) -> None:
        self._mono: Dict[Tuple[Any, ...], MonoRectifier] = {}
        self._stereo: Dict[Tuple[Any, ...], StereoRectifier] = {}
        self._rigs: Dict[Tuple[Any, ...], StereoRig] = {}

    def mono(self, info: Any, what: str = "") -> MonoRectifier:
        key = calibration_key(info)
        if key not in self._mono:
            self._mono = {key: MonoRectifier(info, what)}  # keep only the newest calibration
        return self._mono[key]

    def stereo(self, left: Any, right: Any, what: str = "") -> StereoRectifier:
        """Rectification of both views (mode "auto", no crop: the output keeps the raw size)."""
        key = calibration_key(left) + calibration_key(right)
        if key not in self._stereo:
            self._stereo = {key: StereoRectifier(left, right, "auto", crop=False, what=what)}
        return self._stereo[key]

    def rig(self, left: Any, right: Any, what: str = "") -> StereoRig:
        """The rig of an already rectified pair (:func:`stereo_rig_from_infos`, with its residual notes),
        built once per calibration; a refused calibration is refused again on every call."""
        key = calibration_key(left) + calibration_key(right)
        if key not in self._rigs:
            self._rigs = {key: stereo_rig_from_infos(left, right, what)}
        return self._rigs[key]
