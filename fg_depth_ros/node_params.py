"""depth_node's parameters, declared once in :class:`NodeParams` (fg_depth_ros.params): the node declares them
from it with descriptors and reads them through the typed :class:`NodeParams` it builds; config/depth.yaml
lists the same keys and test/ros/test_launch_params.py checks the YAML and the launch file against
:data:`PARAMETERS`.

Nested names use ROS 2's dot convention: ``points.decimation`` is ``points: {decimation: ...}`` in YAML.
Parameters marked ``dynamic`` can change at run time (``ros2 param set``); the others are read-only after
start-up. The inference settings mirror fg_depth_core.config.InferenceConfig (the config tree holds their
defaults and allowed values, docs/ARCHITECTURE.md, "Principles").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping

from fg_depth_core.config import InferenceConfig, SgbmConfig
from fg_depth_core.deploy.estimator import OUTPUTS
from fg_depth_ros.params import (
    Param,
    ParamError,
    build,
    from_setting,
    group,
    param,
    parameter_table,
)
from fg_depth_ros.params import check_value as _check_value

MODES = ("mono", "stereo")
SCALE_SOURCES = ("none", "stereo")
RELIABILITIES = ("reliable", "best_effort")
#: How camera images arrive: sensor_msgs/Image, or image_transport's compressed CompressedImage (JPEG/PNG).
TRANSPORTS = ("raw", "compressed")
#: What happens to depths outside [min_depth, max_depth] (fg_depth_ros.pipeline.limit_depth).
OUT_OF_RANGE = ("inf", "clamp", "nan")
#: The node's name in messages about unknown parameters.
NODE_NAME = "depth_node"


class NodeParamError(ParamError):
    """A depth_node parameter has a bad value; the message names the parameter, the value and the rule."""


@dataclass(frozen=True)
class PointsParams:
    enabled: bool = param(True, "publish the point cloud on 'points'", dynamic=True)
    decimation: int = param(
        2, "keep every n-th row and column of the depth in the cloud", dynamic=True, minimum=1, maximum=64
    )
    max_range: float = param(
        0.0,
        "leave out points farther than this (metres from the camera); 0 = no limit",
        dynamic=True,
        minimum=0.0,
    )
    color: bool = param(True, "add the camera's colour to each point (packed rgb field)", dynamic=True)
    organized: bool = param(
        False,
        "organised cloud: every (decimated) pixel in rows and columns, unknown and far points NaN, as "
        "depth_image_proc publishes; false: only the valid points (smaller messages)",
        dynamic=True,
    )


@dataclass(frozen=True)
class ColorImageParams:
    enabled: bool = param(True, "publish a colourised depth image on 'depth/color'", dynamic=True)


@dataclass(frozen=True)
class QosParams:
    reliability: str = param("reliable", "reliability of the published topics", choices=RELIABILITIES)
    depth: int = param(5, "history depth (keep last) of the published topics", minimum=1, maximum=1000)


@dataclass(frozen=True)
class InputQosParams:
    reliability: str = param(
        "best_effort",
        "reliability of the camera subscriptions: best_effort (SensorDataQoS; hears reliable and best-effort "
        "cameras) or reliable (hears reliable cameras only, never drops a delivered frame)",
        choices=RELIABILITIES,
    )
    depth: int = param(5, "history depth (keep last) of the camera subscriptions", minimum=1, maximum=1000)


@dataclass(frozen=True)
class SyncParams:
    queue_size: int = param(
        10, "stereo: messages per input kept by the approximate-time synchroniser", minimum=1, maximum=1000
    )
    slop: float = param(
        0.02, "stereo: largest stamp difference (seconds) within one synchronised set", minimum=0.0
    )
    warn_after: float = param(
        5.0, "stereo: warn when inputs arrive but no set synchronises for this many seconds", minimum=0.1
    )


@dataclass(frozen=True)
class ScaleParams:
    ema: float = param(
        0.2,
        "weight of a new stereo scale measurement in its moving average (1 = no smoothing)",
        minimum=1e-3,
        maximum=1.0,
    )
    min: float = param(0.5, "smallest scale correction applied", minimum=1e-3, rule="< scale.max")
    max: float = param(2.0, "largest scale correction applied", minimum=1e-3)
    max_depth: float = param(
        30.0,
        "stereo depths beyond this (metres) are not used for the scale (their error grows as Z^2)",
        minimum=1e-3,
    )
    min_valid_fraction: float = param(
        0.02,
        "a scale measurement needs at least this fraction of pixels with valid stereo",
        minimum=1e-4,
        maximum=1.0,
    )
    num_disparities: int = param(
        SgbmConfig().num_disparities,
        "SGBM disparity search range (pixels at the network resolution; lowered to fit narrow images)",
        minimum=16,
        maximum=1024,
        multiple_of=16,
    )


@dataclass(frozen=True)
class DiagnosticsParams:
    period: float = param(1.0, "seconds between /diagnostics messages", minimum=0.05, maximum=60.0)


@dataclass(frozen=True)
class NodeParams:
    """Every parameter of depth_node, typed; an instance is one consistent set of values."""

    model: str = param(
        "",
        "model file: an fg-depth ONNX export (.onnx), a TensorRT engine (.engine) or a training checkpoint "
        "(.pt); required",
    )
    backend: str = from_setting(
        InferenceConfig, "backend", "inference backend ('auto' = fastest installed; openvino only when named)"
    )
    device: str = from_setting(InferenceConfig, "device", "inference device: auto, cpu, cuda or cuda:N")
    precision: str = from_setting(InferenceConfig, "precision", "arithmetic precision (fp16 needs CUDA)")
    threads: int = from_setting(
        InferenceConfig, "threads", "CPU threads of the backend; 0 = the library's default"
    )
    input_fit: str = from_setting(
        InferenceConfig,
        "input_fit",
        "how an image of another aspect than the network's meets it: pad (depth of the whole image), crop "
        "(depth and camera_info of the centred window only) or stretch (distorts; warns once beyond 10 %)",
    )
    mode: str = param(
        "mono",
        "mono: image + camera_info; stereo: left/right image_rect + camera_info, synchronised",
        choices=MODES,
    )
    transport: str = param(
        "raw",
        "camera images as sensor_msgs/Image (raw) or as image_transport's compressed CompressedImage (JPEG "
        "or PNG) on <image topic>/compressed",
        choices=TRANSPORTS,
    )
    rectified: bool = param(
        True,
        "the images are rectified (image_rect): intrinsics from camera_info P; false: raw images, "
        "undistorted (stereo: also rectified) from camera_info D, K, R and P (plumb_bob, "
        "rational_polynomial, equidistant), the outputs describing the undistorted image",
    )
    output_resolution: str = param(
        "input",
        "resolution of depth, points and disparity: the camera image's pixel scale or the network's "
        "(under input_fit crop both cover the centred window only)",
        choices=OUTPUTS,
    )
    min_depth: float = param(
        0.0,
        "smallest published depth in metres (see out_of_range); 0 = the model's min_depth",
        minimum=0.0,
        rule="< max_depth",
    )
    max_depth: float = param(
        0.0, "largest published depth in metres (see out_of_range); 0 = the model's max_depth", minimum=0.0
    )
    out_of_range: str = param(
        "inf",
        "depths outside min_depth..max_depth: inf (REP 117: -Inf too near, +Inf too far), clamp to the "
        "range, or nan (unknown); the point cloud leaves inf and nan points out and keeps clamped ones",
        choices=OUT_OF_RANGE,
    )
    points: PointsParams = group(PointsParams)
    color_image: ColorImageParams = group(ColorImageParams)
    qos: QosParams = group(QosParams)
    input_qos: InputQosParams = group(InputQosParams)
    sync: SyncParams = group(SyncParams)
    scale_source: str = param(
        "none",
        "stereo: 'stereo' corrects the depth scale online from semi-global matching on the same pair",
        choices=SCALE_SOURCES,
        rule="'stereo' needs mode stereo",
    )
    scale: ScaleParams = group(ScaleParams)
    diagnostics: DiagnosticsParams = group(DiagnosticsParams)


#: Every parameter by dotted name, in declaration order.
PARAMETERS: Dict[str, Param] = parameter_table(NodeParams)
#: Parameters that may change at run time.
DYNAMIC = tuple(name for name, spec in PARAMETERS.items() if spec.dynamic)


def check_value(name: str, value: Any) -> Any:
    """``value`` of parameter ``name`` converted to its kind and checked; NodeParamError otherwise."""
    return _check_value(PARAMETERS, name, value, NodeParamError, NODE_NAME)


def check_settings(values: Mapping[str, Any]) -> NodeParams:
    """Every parameter checked (:func:`check_value`) plus the rules between parameters, as NodeParams."""
    out = {name: check_value(name, values[name]) for name in PARAMETERS}
    if not out["model"]:
        raise NodeParamError(
            "parameter 'model': no model given; set it to an fg-depth model file, e.g. "
            "--ros-args -p model:=/path/to/depthnet.onnx (export one with fg-depth export)"
        )
    if out["min_depth"] and out["max_depth"] and not out["min_depth"] < out["max_depth"]:
        raise NodeParamError(
            "parameters 'min_depth'/'max_depth': expected min < max, got "
            f"{out['min_depth']}, {out['max_depth']}"
        )
    if not out["scale.min"] < out["scale.max"]:
        raise NodeParamError(
            "parameters 'scale.min'/'scale.max': expected min < max, got "
            f"{out['scale.min']}, {out['scale.max']}"
        )
    if out["scale_source"] == "stereo" and out["mode"] != "stereo":
        raise NodeParamError(
            "parameter 'scale_source': 'stereo' needs mode 'stereo' (a second view to match)"
        )
    return build(NodeParams, out)
