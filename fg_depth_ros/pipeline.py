"""One frame of depth_node as pure functions: camera messages -> a decoded camera frame -> depth at the output
resolution, limited to the published range (docs/ARCHITECTURE.md, "A frame in the node").

No ROS calls and no torch here: messages are read by fg_depth_core.camera_msgs (through
fg_depth_ros.conversions), the model runs through DepthEstimator, whose focal-length scaling makes the depth
metric for this camera. Bad input raises :class:`BadInput` or a ConversionError naming the topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Tuple

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.camera_msgs import message_to_rgb
from fg_depth_core.deploy.estimator import DepthEstimator, postprocess
from fg_depth_core.errors import FgDepthError
from fg_depth_core.rectify import RectifierCache
from fg_depth_ros.conversions import camera_info_to_intrinsics
from fg_depth_ros.node_params import OUT_OF_RANGE, NodeParamError, NodeParams


class ModelLoadError(FgDepthError):
    """The model file is missing or cannot be loaded or run; the message names it."""


class BadInput(FgDepthError, ValueError):
    """A frame cannot be used; the message names the topic and the problem."""


@dataclass(frozen=True)
class CameraFrame:
    """A decoded input: the (left) image (H,W,3) uint8 RGB and its intrinsics; for stereo also the right
    image (same size) and the rig (fg_depth_core.camera.StereoRig: baseline, disparity offset, notes on
    accepted calibration residuals) at the images' size."""

    rgb: np.ndarray
    intrinsics: Intrinsics
    right: Optional[np.ndarray] = None
    rig: Optional[StereoRig] = None

    @property
    def baseline(self) -> float:
        """The rig's baseline in metres (0 for mono)."""
        return self.rig.baseline if self.rig is not None else 0.0


@dataclass(frozen=True)
class DepthResult:
    """A frame's depth: ``depth`` (H,W) float32 metres at the output resolution, clamped (NaN unknown);
    ``intrinsics`` of that resolution; ``network_depth`` (h,w) at the network resolution before the scale
    correction (the padding cut away under input_fit pad); ``scale`` the correction applied; ``inference``
    the seconds the model took; ``window`` (x0, y0, w, h) the camera pixels the depth covers (the whole
    image except under input_fit crop; None: the whole image); ``note`` a warning to show once per camera
    (the aspect under stretch), or None."""

    depth: np.ndarray
    intrinsics: Intrinsics
    network_depth: np.ndarray
    scale: float
    inference: float
    window: Optional[Tuple[int, int, int, int]] = None
    note: Optional[str] = None


def load_estimator(settings: NodeParams) -> DepthEstimator:
    """DepthEstimator for the node's model/backend/device settings, warmed up with one prediction (the first
    run allocates buffers: doing it now keeps the first frame's latency normal and proves the model runs).
    Raises ModelLoadError naming the file for anything that goes wrong."""
    path = settings.model
    try:
        estimator = DepthEstimator(
            path,
            settings.backend,
            settings.device,
            settings.precision,
            settings.threads,
            input_fit=settings.input_fit,
        )
        info = estimator.info
        estimator.predict(np.zeros((info.height, info.width, 3), np.uint8))
    except FgDepthError as exc:
        raise ModelLoadError(f"cannot use the model (parameter 'model' = {path}): {exc}") from None
    except Exception as exc:  # libraries raise their own types for damaged files (protobuf, pickle, ...)
        raise ModelLoadError(
            f"cannot use the model (parameter 'model' = {path}): {type(exc).__name__}: {exc}"
        ) from None
    return estimator


def depth_range(settings: NodeParams, model_min: float, model_max: float) -> Tuple[float, float]:
    """The published depth range in metres: the parameters, where 0 means the model's own end (a clamp wider
    than what the network can predict would only let scaling artefacts through)."""
    low = settings.min_depth or model_min
    high = settings.max_depth or model_max
    if not low < high:
        raise NodeParamError(
            "parameters 'min_depth'/'max_depth': the depth range "
            f"{low:g}..{high:g} m (0 = the model's {model_min:g}..{model_max:g}) is empty"
        )
    return low, high


def check_size(intr: Intrinsics, rgb: np.ndarray, info_topic: str, image_topic: str) -> None:
    """Raise BadInput unless camera_info describes images of ``rgb``'s size."""
    height, width = rgb.shape[:2]
    if (intr.width, intr.height) != (width, height):
        raise BadInput(
            f"{info_topic}: camera_info describes {intr.width}x{intr.height} images (after binning/ROI) "
            f"but {image_topic} is {width}x{height}"
        )


def decode_mono(
    image: Image,
    info: CameraInfo,
    rectified: bool,
    topics: Mapping[str, str],
    rectifiers: RectifierCache,
) -> CameraFrame:
    """The camera frame of a mono image and its camera_info (``topics``: input name -> resolved topic).
    ``rectified`` False: a raw image, undistorted from camera_info into the image P describes (maps from
    ``rectifiers``, computed once per calibration)."""
    rgb = message_to_rgb(image, topics["image"])
    if rectified:
        intr = camera_info_to_intrinsics(info, True, topics["camera_info"])
        check_size(intr, rgb, topics["camera_info"], topics["image"])
        return CameraFrame(rgb, intr)
    rectifier = rectifiers.mono(info, topics["camera_info"])
    return CameraFrame(rectifier(rgb, topics["image"]), rectifier.intrinsics)


def decode_stereo(
    left: Image,
    right: Image,
    left_info: CameraInfo,
    right_info: CameraInfo,
    rectified: bool,
    topics: Mapping[str, str],
    rectifiers: RectifierCache,
) -> CameraFrame:
    """The camera frame of a stereo pair: both images, the left intrinsics and the rig of the two camera
    infos (any disparity offset cx_r - cx_l; residuals within bounds go into ``rig.notes``, for the node to
    log once per calibration). ``rectified`` False: raw images, rectified with both camera infos' D, K, R and
    P (maps cached in ``rectifiers``)."""
    left_rgb = message_to_rgb(left, topics["left/image_rect"])
    right_rgb = message_to_rgb(right, topics["right/image_rect"])
    if left_rgb.shape != right_rgb.shape:
        raise BadInput(
            f"{topics['left/image_rect']}, {topics['right/image_rect']}: the views differ in size "
            f"({left_rgb.shape[1]}x{left_rgb.shape[0]} and {right_rgb.shape[1]}x{right_rgb.shape[0]}); a "
            "stereo pair has one size"
        )
    infos = f"{topics['left/camera_info']}, {topics['right/camera_info']}"
    if rectified:
        rig = rectifiers.rig(left_info, right_info, infos)
    else:
        rectifier = rectifiers.stereo(left_info, right_info, infos)
        left_rgb, right_rgb = rectifier(left_rgb, right_rgb, infos)
        rig = rectifier.rig
    check_size(rig.intrinsics, left_rgb, topics["left/camera_info"], topics["left/image_rect"])
    return CameraFrame(left_rgb, rig.intrinsics, right_rgb, rig)


def limit_depth(
    depth: np.ndarray, min_depth: float, max_depth: float, out_of_range: str = "clamp"
) -> np.ndarray:
    """(H,W) metres with depths outside [min_depth, max_depth] handled by ``out_of_range``
    (:data:`~fg_depth_ros.node_params.OUT_OF_RANGE`): "clamp" to the range, "inf" (REP 117: -Inf nearer,
    +Inf farther) or "nan" (unknown). Non-finite input stays unknown (NaN, REP 118) in every mode."""
    depth = np.asarray(depth, dtype=np.float32)
    finite = np.isfinite(depth)
    if out_of_range == "clamp":
        out = np.clip(depth, min_depth, max_depth)
    elif out_of_range == "inf":
        out = np.where(depth < min_depth, -np.inf, np.where(depth > max_depth, np.inf, depth))
    elif out_of_range == "nan":
        out = np.where((depth < min_depth) | (depth > max_depth), np.nan, depth)
    else:
        raise ValueError(f"out_of_range: expected one of {list(OUT_OF_RANGE)}, got {out_of_range!r}")
    return np.where(finite, out, np.float32(np.nan)).astype(np.float32, copy=False)


def estimate_depth(
    estimator: DepthEstimator,
    frame: CameraFrame,
    output_resolution: str,
    limits: Tuple[float, float],
    scale: float = 1.0,
    out_of_range: str = "clamp",
) -> DepthResult:
    """The frame's metric depth: predicted at the network resolution (where the stereo scale compares),
    multiplied by ``scale``, resized to the camera image (or its window under input_fit crop) when
    ``output_resolution`` is "input" (exactly what ``predict(output="input")`` does) and limited to
    ``limits`` (metres) as ``out_of_range`` says. The result's intrinsics describe the depth as published,
    whatever the fit."""
    intr = frame.intrinsics
    fit = estimator.fit_for(intr.width, intr.height)
    start = time.monotonic()
    network = estimator.predict(frame.rgb, intr, output="network")
    inference = time.monotonic() - start
    depth = network * np.float32(scale) if scale != 1.0 else network
    if output_resolution == "input":
        depth = postprocess(depth, 1.0, fit.output_size("input"))
    return DepthResult(
        limit_depth(depth, *limits, out_of_range),
        fit.output_intrinsics(intr, output_resolution),
        network,
        float(scale),
        inference,
        fit.window,
        estimator.aspect_note(intr),
    )


def output_frame(frame: CameraFrame, result: DepthResult) -> CameraFrame:
    """The camera frame restricted to the pixels ``result``'s depth covers (its window: both views and the
    intrinsics cropped alike, so a rectified pair stays one), at the camera's pixel scale: what the point
    cloud's colours and the stereo scale must be read from. The frame itself when the window is all of it."""
    if result.window is None:
        return frame
    x0, y0, w, h = result.window
    if (x0, y0, w, h) == (0, 0, frame.intrinsics.width, frame.intrinsics.height):
        return frame
    right = frame.right[y0 : y0 + h, x0 : x0 + w] if frame.right is not None else None
    return replace(
        frame,
        rgb=frame.rgb[y0 : y0 + h, x0 : x0 + w],
        intrinsics=frame.intrinsics.cropped(x0, y0, w, h),
        right=right,
        rig=frame.rig.cropped(x0, y0, w, h) if frame.rig is not None else None,
    )
