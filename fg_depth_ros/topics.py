"""depth_node's topics in one table, :data:`TOPICS`: name, type, direction, modes, QoS and content. The node
makes its subscriptions and publishers from it and tools/node_doc.py renders it into docs/NODE.md.

Names are relative, so a namespace or remapping places them, and follow image_transport: each image topic has
its camera_info beside it (``X/image`` -> ``X/camera_info``, ``image`` -> ``camera_info``). Mono: ``image``
and ``camera_info``. Stereo: ``left/image_rect``, ``right/image_rect`` and their camera_info, in the
synchroniser's (and the callback's) order. Out: ``depth/image`` with ``depth/camera_info``, ``points``,
``depth/color/image`` with ``depth/color/camera_info``, ``disparity`` (stereo), ``scale`` (``scale_source:
stereo``) and ``/diagnostics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32
from stereo_msgs.msg import DisparityImage

from fg_depth_core.camera_msgs import READ_ENCODINGS
from fg_depth_ros.node_params import MODES, NodeParams
from fg_depth_ros.qos import camera_qos, output_qos

#: Topic QoS kinds: camera inputs (SensorDataQoS), outputs (the qos.* parameters) and diagnostics.
TOPIC_QOS = ("camera", "output", "diagnostics")
#: History depth of /diagnostics (reliable, volatile, keep last).
DIAGNOSTICS_DEPTH = 10


@dataclass(frozen=True)
class Topic:
    """One topic of the node: its name (relative unless it starts with /), message type, direction ("in" or
    "out"), the modes it exists in, its QoS kind (:data:`TOPIC_QOS`, see :func:`topic_qos`), what it carries
    and when it is published beyond the mode."""

    name: str
    msg_type: type
    direction: str
    modes: Tuple[str, ...]
    qos: str
    description: str
    when: str = ""


#: Every topic of the node. Stereo inputs are in the synchroniser's (and the callback's) order.
TOPICS: Tuple[Topic, ...] = (
    Topic(
        "image", Image, "in", ("mono",), "camera",
        f"camera image: {', '.join(READ_ENCODINGS)} (16-bit: top byte; 4:2:2 YUV: BT.601 limited range), "
        "any row step, or with transport: compressed a JPEG/PNG CompressedImage on image/compressed; each "
        "pairs with the newest camera_info",
    ),
    Topic(
        "camera_info", CameraInfo, "in", ("mono",), "camera",
        "the image's calibration: intrinsics from P; with rectified: false also D, K and R to undistort",
    ),
    Topic(
        "left/image_rect", Image, "in", ("stereo",), "camera",
        "left image (the depth is the left view's), rectified or, with rectified: false, raw; encodings as "
        "for image",
    ),
    Topic("right/image_rect", Image, "in", ("stereo",), "camera", "right image, same size and kind"),
    Topic("left/camera_info", CameraInfo, "in", ("stereo",), "camera", "left calibration (P; raw: D, K, R)"),
    Topic(
        "right/camera_info", CameraInfo, "in", ("stereo",), "camera",
        "right calibration: the baseline from the two P's Tx (ROS: right Tx = -fx * B), the disparity offset "
        "from their cx",
    ),
    Topic(
        "depth/image", Image, "out", MODES, "output",
        "32FC1 depth in metres (REP 118: NaN unknown; REP 117: -Inf/+Inf out of range), with the input "
        "image's header",
    ),
    Topic(
        "depth/camera_info", CameraInfo, "out", MODES, "output",
        "the depth image's calibration (image_transport's sibling of depth/image): K and P at the output "
        "resolution, D = 0, R = I",
    ),
    Topic(
        "points", PointCloud2, "out", MODES, "output",
        "x y z float32 (and packed rgb with points.color) in the input's frame_id, the camera optical frame",
        "points.enabled and a subscriber",
    ),
    Topic(
        "depth/color/image", Image, "out", MODES, "output", "rgb8 colourised depth, for people",
        "color_image.enabled and a subscriber",
    ),
    Topic(
        "depth/color/camera_info", CameraInfo, "out", MODES, "output",
        "the colour image's calibration (the depth's)", "with depth/color/image",
    ),
    Topic(
        "disparity", DisparityImage, "out", ("stereo",), "output",
        "the depth as disparity d = f T / Z (the message's convention: pre-adjusted for the cameras' cx "
        "offset), f and T from the camera infos", "a subscriber",
    ),
    Topic(
        "scale", Float32, "out", ("stereo",), "output", "the stereo scale correction applied to the frame",
        "scale_source: stereo",
    ),
    Topic(
        "/diagnostics", DiagnosticArray, "out", MODES, "diagnostics",
        "rates, latency percentiles, frame counts and the last problem", "every diagnostics.period seconds",
    ),
)
TOPIC: Dict[str, Topic] = {t.name: t for t in TOPICS}
MONO_INPUTS = tuple(t.name for t in TOPICS if t.direction == "in" and "mono" in t.modes)
#: In the synchroniser's (and the callback's) order.
STEREO_INPUTS = tuple(t.name for t in TOPICS if t.direction == "in" and "stereo" in t.modes)
OUTPUTS = tuple(t.name for t in TOPICS if t.direction == "out" and t.qos == "output")
DIAGNOSTICS_TOPIC = next(t.name for t in TOPICS if t.qos == "diagnostics")


def image_subscription(name: str, transport: str) -> Tuple[type, str]:
    """(message type, topic) of input image ``name`` under image_transport ``transport``: raw images on the
    name itself, compressed ones on ``<name>/compressed``."""
    if transport == "compressed":
        return CompressedImage, f"{name}/compressed"
    return Image, name


def topic_qos(topic: Topic, settings: NodeParams) -> QoSProfile:
    """The QoS profile of ``topic`` for the node's ``settings``."""
    if topic.qos == "camera":
        p = settings.input_qos
        return camera_qos("sensor_data" if p.reliability == "best_effort" else "reliable", p.depth)
    if topic.qos == "output":
        return output_qos(settings.qos.reliability, settings.qos.depth)
    if topic.qos == "diagnostics":
        return QoSProfile(depth=DIAGNOSTICS_DEPTH)
    raise ValueError(f"topic {topic.name}: unknown QoS kind {topic.qos!r}; expected one of {list(TOPIC_QOS)}")
