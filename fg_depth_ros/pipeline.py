"""One frame of depth_node as pure functions: camera messages -> a decoded camera frame -> depth at the output
resolution, clamped to the published range (docs/ARCHITECTURE.md, "A frame in the node").

No ROS calls and no torch here: messages are read by fg_depth_core.camera_msgs (through
fg_depth_ros.conversions), the model runs through DepthEstimator, whose focal-length scaling makes the depth
metric for this camera. Bad input raises :class:`BadInput` or a ConversionError naming the topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.deploy.estimator import DepthEstimator, postprocess
from fg_depth_core.errors import FgDepthError
from fg_depth_ros.conversions import camera_info_to_intrinsics, image_to_rgb, stereo_rig_from_infos
from fg_depth_ros.node_params import NodeParamError, NodeParams


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
    correction; ``scale`` the correction applied; ``inference`` the seconds the model took."""

    depth: np.ndarray
    intrinsics: Intrinsics
    network_depth: np.ndarray
    scale: float
    inference: float


def load_estimator(settings: NodeParams) -> DepthEstimator:
    """DepthEstimator for the node's model/backend/device settings, warmed up with one prediction (the first
    run allocates buffers: doing it now keeps the first frame's latency normal and proves the model runs).
    Raises ModelLoadError naming the file for anything that goes wrong."""
    path = settings.model
    try:
        estimator = DepthEstimator(
            path, settings.backend, settings.device, settings.precision, settings.threads
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


def decode_mono(image: Image, info: CameraInfo, rectified: bool, topics: Mapping[str, str]) -> CameraFrame:
    """The camera frame of a mono image and its camera_info (``topics``: input name -> resolved topic)."""
    rgb = image_to_rgb(image, topics["image"])
    intr = camera_info_to_intrinsics(info, rectified, topics["camera_info"])
    check_size(intr, rgb, topics["camera_info"], topics["image"])
    return CameraFrame(rgb, intr)


def decode_stereo(
    left: Image, right: Image, left_info: CameraInfo, right_info: CameraInfo, topics: Mapping[str, str]
) -> CameraFrame:
    """The camera frame of a rectified stereo pair: both images, the left intrinsics and the rig of the two
    camera infos (any disparity offset cx_r - cx_l; residuals within bounds go into ``rig.notes``, for the
    node to log once per calibration)."""
    left_rgb = image_to_rgb(left, topics["left/image_rect"])
    right_rgb = image_to_rgb(right, topics["right/image_rect"])
    if left_rgb.shape != right_rgb.shape:
        raise BadInput(
            f"{topics['left/image_rect']}, {topics['right/image_rect']}: the views differ in size "
            f"({left_rgb.shape[1]}x{left_rgb.shape[0]} and {right_rgb.shape[1]}x{right_rgb.shape[0]}); a "
            "rectified pair has one size"
        )
    rig = stereo_rig_from_infos(
        left_info, right_info, f"{topics['left/camera_info']}, {topics['right/camera_info']}"
    )
    check_size(rig.intrinsics, left_rgb, topics["left/camera_info"], topics["left/image_rect"])
    return CameraFrame(left_rgb, rig.intrinsics, right_rgb, rig)


def clamp_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """(H,W) metres clamped to [min_depth, max_depth]; non-finite values become NaN (REP 118: unknown)."""
    depth = np.asarray(depth, dtype=np.float32)
    return np.where(np.isfinite(depth), np.clip(depth, min_depth, max_depth), np.float32(np.nan)).astype(
        np.float32, copy=False
    )


def estimate_depth(
    estimator: DepthEstimator,
    frame: CameraFrame,
    output_resolution: str,
    limits: Tuple[float, float],
    scale: float = 1.0,
) -> DepthResult:
    """The frame's metric depth: predicted at the network resolution (where the stereo scale compares),
    multiplied by ``scale``, resized to the camera image when ``output_resolution`` is "input" (exactly what
    ``predict(output="input")`` does) and clamped to ``limits`` (metres)."""
    intr = frame.intrinsics
    info = estimator.info
    start = time.monotonic()
    network = estimator.predict(frame.rgb, intr, output="network")
    inference = time.monotonic() - start
    depth = network * np.float32(scale) if scale != 1.0 else network
    if output_resolution == "input":
        depth = postprocess(depth, 1.0, (intr.width, intr.height))
        out_intr = intr
    else:
        out_intr = intr.resized(info.width, info.height)
    return DepthResult(clamp_depth(depth, *limits), out_intr, network, float(scale), inference)
