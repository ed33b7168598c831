"""The parameters of depth_node in one table, :data:`PARAMETERS`: the node declares them from it (with
descriptors), config/depth.yaml lists the same keys and test/ros/test_launch_params.py checks the YAML and the
launch file against it. Pure: no rclpy here except the descriptor builder's message types.

Nested names use ROS 2's dot convention: ``points.decimation`` is ``points: {decimation: ...}`` in YAML.
Parameters marked ``dynamic`` can change at run time (``ros2 param set``); the others are read-only after
start-up. The inference settings default to fg_depth_core.config.InferenceConfig (the config tree holds the
defaults, principle 3 of ARCHITECTURE.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from rcl_interfaces.msg import IntegerRange, ParameterDescriptor

from fg_depth_core.config import INFERENCE_BACKENDS, PRECISIONS, InferenceConfig, SgbmConfig
from fg_depth_core.deploy.estimator import OUTPUTS
from fg_depth_core.errors import FgDepthError

MODES = ("mono", "stereo")
SCALE_SOURCES = ("none", "stereo")
RELIABILITIES = ("reliable", "best_effort")
_INFERENCE = InferenceConfig()
#: Largest integer the descriptors advertise (ROS parameters are int64; this is plenty for any count here).
_INT_MAX = 2**31 - 1


class NodeParamError(FgDepthError, ValueError):
    """A depth_node parameter has a bad value; the message names the parameter, the value and the rule."""


@dataclass(frozen=True)
class Param:
    """One parameter: default (its type is the parameter's type), description (with units), and constraints.

    choices: allowed strings; minimum/maximum: inclusive numeric bounds; pattern: a regular expression a
    string must match fully; dynamic: may change at run time.
    """

    default: Any
    description: str
    choices: Tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    pattern: Optional[str] = None
    dynamic: bool = False

    @property
    def kind(self) -> type:
        """bool, int, float or str."""
        return type(self.default)


PARAMETERS: Dict[str, Param] = {
    "model": Param(
        "",
        "model file: an fg-depth ONNX export (.onnx), a TensorRT engine (.engine) or a training checkpoint "
        "(.pt); required",
    ),
    "backend": Param(
        _INFERENCE.backend, "inference backend ('auto' = fastest installed)", INFERENCE_BACKENDS
    ),
    "device": Param(
        _INFERENCE.device, "inference device: auto, cpu, cuda or cuda:N", pattern=r"auto|cpu|cuda(:[0-9]+)?"
    ),
    "precision": Param(_INFERENCE.precision, "arithmetic precision (fp16 needs CUDA)", PRECISIONS),
    "threads": Param(
        _INFERENCE.threads, "CPU threads of the backend; 0 = the library's default", minimum=0, maximum=1024
    ),
    "mode": Param(
        "mono",
        "mono: image + camera_info; stereo: left/right image_rect + camera_info, synchronised",
        MODES,
    ),
    "rectified": Param(
        True,
        "mono: the image is rectified, intrinsics come from camera_info P; false: from K (distortion is not "
        "removed). Stereo always uses P",
    ),
    "output_resolution": Param(
        "input", "resolution of depth, points and disparity: the camera image's or the network's", OUTPUTS
    ),
    "min_depth": Param(
        0.0,
        "smallest published depth in metres (outputs are clamped); 0 = the model's min_depth",
        minimum=0.0,
    ),
    "max_depth": Param(
        0.0, "largest published depth in metres (outputs are clamped); 0 = the model's max_depth", minimum=0.0
    ),
    "points.enabled": Param(True, "publish the point cloud on 'points'", dynamic=True),
    "points.decimation": Param(
        2, "keep every n-th row and column of the depth in the cloud", minimum=1, maximum=64, dynamic=True
    ),
    "points.max_range": Param(
        0.0,
        "leave out points farther than this (metres from the camera); 0 = no limit",
        minimum=0.0,
        dynamic=True,
    ),
    "points.color": Param(True, "add the camera's colour to each point (packed rgb field)", dynamic=True),
    "color_image.enabled": Param(True, "publish a colourised depth image on 'depth/color'", dynamic=True),
    "qos.reliability": Param("reliable", "reliability of the published topics", RELIABILITIES),
    "qos.depth": Param(5, "history depth (keep last) of the published topics", minimum=1, maximum=1000),
    "sync.queue_size": Param(
        10, "stereo: messages per input kept by the approximate-time synchroniser", minimum=1, maximum=1000
    ),
    "sync.slop": Param(
        0.02, "stereo: largest stamp difference (seconds) within one synchronised set", minimum=0.0
    ),
    "sync.warn_after": Param(
        5.0, "stereo: warn when inputs arrive but no set synchronises for this many seconds", minimum=0.1
    ),
    "scale_source": Param(
        "none",
        "stereo: 'stereo' corrects the depth scale online from semi-global matching on the same pair",
        SCALE_SOURCES,
    ),
    "scale.ema": Param(
        0.2,
        "weight of a new stereo scale measurement in its moving average (1 = no smoothing)",
        minimum=1e-3,
        maximum=1.0,
    ),
    "scale.min": Param(0.5, "smallest scale correction applied", minimum=1e-3),
    "scale.max": Param(2.0, "largest scale correction applied", minimum=1e-3),
    "scale.max_depth": Param(
        30.0,
        "stereo depths beyond this (metres) are not used for the scale (their error grows as Z^2)",
        minimum=1e-3,
    ),
    "scale.min_valid_fraction": Param(
        0.02,
        "a scale measurement needs at least this fraction of pixels with valid stereo",
        minimum=1e-4,
        maximum=1.0,
    ),
    "scale.num_disparities": Param(
        SgbmConfig().num_disparities,
        "SGBM disparity search range (pixels at the network resolution, a multiple of 16; lowered to fit "
        "narrow images)",
        minimum=16,
        maximum=1024,
    ),
    "diagnostics.period": Param(1.0, "seconds between /diagnostics messages", minimum=0.05, maximum=60.0),
}

#: Parameters that may change at run time.
DYNAMIC = tuple(name for name, spec in PARAMETERS.items() if spec.dynamic)


def descriptor(name: str, spec: Param) -> ParameterDescriptor:
    """The ParameterDescriptor of one parameter (``ros2 param describe`` shows it)."""
    desc = ParameterDescriptor(name=name, description=spec.description, read_only=not spec.dynamic)
    constraints = []
    if spec.choices:
        constraints.append(f"one of: {', '.join(spec.choices)}")
    if spec.pattern:
        constraints.append(f"matches {spec.pattern}")
    if spec.kind is float:
        # Accept model:=... max_depth:=80 as well as 80.0 (a typed double parameter would refuse the
        # integer): the value is converted and range-checked by check_value.
        desc.dynamic_typing = True
        bounds = []
        if spec.minimum is not None:
            bounds.append(f">= {spec.minimum:g}")
        if spec.maximum is not None:
            bounds.append(f"<= {spec.maximum:g}")
        constraints.append("a number" + (" " + " and ".join(bounds) if bounds else ""))
    elif spec.kind is int and spec.minimum is not None:
        top = int(spec.maximum) if spec.maximum is not None else _INT_MAX
        desc.integer_range = [IntegerRange(from_value=int(spec.minimum), to_value=top, step=1)]
    if constraints:
        desc.additional_constraints = "; ".join(constraints)
    return desc


def check_value(name: str, value: Any) -> Any:
    """``value`` of parameter ``name`` converted to its kind (int -> float for float parameters) and checked
    against its constraints; raises NodeParamError naming the parameter otherwise."""
    if name not in PARAMETERS:
        raise NodeParamError(f"parameter '{name}': not a depth_node parameter")
    spec = PARAMETERS[name]
    kind = spec.kind
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NodeParamError(f"parameter '{name}': expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise NodeParamError(f"parameter '{name}': expected a finite number, got {value}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise NodeParamError(f"parameter '{name}': expected an integer, got {value!r}")
    elif not isinstance(value, kind):
        raise NodeParamError(f"parameter '{name}': expected a {kind.__name__}, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise NodeParamError(f"parameter '{name}': expected one of {list(spec.choices)}, got {value!r}")
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise NodeParamError(f"parameter '{name}': expected {spec.description}, got {value!r}")
    if spec.minimum is not None and value < spec.minimum:
        raise NodeParamError(f"parameter '{name}': expected >= {spec.minimum:g}, got {value!r}")
    if spec.maximum is not None and value > spec.maximum:
        raise NodeParamError(f"parameter '{name}': expected <= {spec.maximum:g}, got {value!r}")
    return value


def check_settings(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Every parameter checked (:func:`check_value`) plus the rules between parameters; returns a new dict."""
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
    if out["scale.num_disparities"] % 16:
        raise NodeParamError(
            "parameter 'scale.num_disparities': expected a multiple of 16, got "
            f"{out['scale.num_disparities']}"
        )
    return out


def yaml_defaults() -> Dict[str, Any]:
    """The defaults as the nested mapping a ``ros__parameters`` block holds (dots -> nested keys)."""
    tree: Dict[str, Any] = {}
    for name, spec in PARAMETERS.items():
        *groups, leaf = name.split(".")
        node = tree
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = spec.default
    return tree
