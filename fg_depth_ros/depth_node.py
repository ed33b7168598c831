"""``ros2 run fg_depth_ros depth_node``: metric depth, point clouds and disparity from a mono or stereo camera
with a trained FG-Depth model (ARCHITECTURE.md, "a frame in the node").

Topics: :data:`TOPICS` (name, type, direction, mode, QoS, content; rendered into docs/NODE.md by
fg_depth_ros.node_doc). Names are relative, so a namespace or remapping places them. Mono: ``image`` and
``camera_info``, each image paired with the newest camera_info (calibration rarely changes, and drivers
publish it at their own pace). Stereo: ``left/image_rect``, ``right/image_rect`` and their camera_info,
paired by an approximate-time synchroniser (``sync.queue_size``, ``sync.slop``). Out: ``depth``,
``depth/camera_info``, ``points``, ``depth/color``, ``disparity`` (stereo), ``scale`` (``scale_source:
stereo``) and ``/diagnostics``; points, depth/color and disparity are computed only while someone subscribes.

Threads: subscription callbacks only store the newest frame (:class:`~fg_depth_ros.worker.NewestOnlyWorker`);
the inference worker converts, predicts (DepthEstimator, focal-length scaling inside), applies the stereo
scale, back-projects and publishes. Frames arriving while it works replace each other (counted as dropped),
so the latency stays one inference, whatever the input rate. With ``scale_source: stereo`` a second worker
runs semi-global matching on the newest pair and updates the scale (fg_depth_ros.scale) without delaying the
depth.

Bad input (wrong encoding, short data, zero size, mismatched stereo sizes, NaN or zero intrinsics, missing
camera_info, stereo that never synchronises) drops the frame with a throttled warning naming the topic and
the problem; the node goes on. A missing or unloadable model, or a bad parameter, stops it at start-up with
one line on stderr and exit status 1. Parameters: fg_depth_ros.node_params.PARAMETERS (``ros2 param
describe`` shows them; the ``points.*`` and ``color_image.enabled`` ones change at run time).
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float32
from stereo_msgs.msg import DisparityImage

from fg_depth_core.camera import Intrinsics
from fg_depth_core.camera_msgs import READ_ENCODINGS, stamp_ns
from fg_depth_core.deploy.estimator import DepthEstimator, InputError, postprocess, resize_interpolation
from fg_depth_core.errors import FgDepthError
from fg_depth_core.visualize import colorize_depth
from fg_depth_ros import diagnostics
from fg_depth_ros.conversions import (
    ConversionError,
    camera_info_to_intrinsics,
    depth_to_image,
    depth_to_pointcloud,
    disparity_image,
    image_to_rgb,
    intrinsics_to_camera_info,
    rgb_to_image,
    stereo_rig_from_infos,
)
from fg_depth_ros.diagnostics import LatencyWindow, RateMeter
from fg_depth_ros.node_params import (
    MODES,
    PARAMETERS,
    NodeParamError,
    check_settings,
    check_value,
    descriptor,
)
from fg_depth_ros.qos import camera_qos, output_qos
from fg_depth_ros.scale import ScaleEstimator, ScaleSettings, StereoDepth, scale_measurement
from fg_depth_ros.sync import make_synchronizer
from fg_depth_ros.worker import NewestOnlyWorker

#: Topic QoS kinds: camera inputs (SensorDataQoS), outputs (the qos.* parameters) and diagnostics.
TOPIC_QOS = ("camera", "output", "diagnostics")
#: History depth of /diagnostics (reliable, volatile, keep last).
DIAGNOSTICS_DEPTH = 10


@dataclass(frozen=True)
class Topic:
    """One topic of the node: its name (relative unless it starts with /), message type, direction ("in" or
    "out"), the modes it exists in, its QoS kind (:data:`TOPIC_QOS`, see :func:`topic_qos`), what it carries
    and when it is published beyond the mode. fg_depth_ros.node_doc renders the table into docs/NODE.md."""

    name: str
    msg_type: type
    direction: str
    modes: Tuple[str, ...]
    qos: str
    description: str
    when: str = ""


#: Every topic of the node; the subscriptions and publishers below are made from it. Stereo inputs are in the
#: synchroniser's (and the callback's) order.
TOPICS: Tuple[Topic, ...] = (
    Topic(
        "image", Image, "in", ("mono",), "camera",
        f"camera image: {', '.join(READ_ENCODINGS)}, any row step; each pairs with the newest camera_info",
    ),
    Topic(
        "camera_info", CameraInfo, "in", ("mono",), "camera",
        "the image's calibration: intrinsics from P (rectified: true) or K (rectified: false)",
    ),
    Topic(
        "left/image_rect", Image, "in", ("stereo",), "camera",
        "rectified left image (the depth is the left view's); encodings as for image",
    ),
    Topic("right/image_rect", Image, "in", ("stereo",), "camera", "rectified right image, same size"),
    Topic("left/camera_info", CameraInfo, "in", ("stereo",), "camera", "left calibration (P)"),
    Topic(
        "right/camera_info", CameraInfo, "in", ("stereo",), "camera",
        "right calibration; the baseline comes from its P (Tx = -fx * B)",
    ),
    Topic(
        "depth", Image, "out", MODES, "output",
        "32FC1 depth in metres, NaN = unknown, with the input image's header",
    ),
    Topic("depth/camera_info", CameraInfo, "out", MODES, "output", "intrinsics at the output resolution"),
    Topic(
        "points", PointCloud2, "out", MODES, "output",
        "x y z float32 (and packed rgb with points.color) in the input's frame_id, the camera optical frame",
        "points.enabled and a subscriber",
    ),
    Topic(
        "depth/color", Image, "out", MODES, "output", "rgb8 colourised depth, for people",
        "color_image.enabled and a subscriber",
    ),
    Topic(
        "disparity", DisparityImage, "out", ("stereo",), "output",
        "the depth as disparity, with f and T from the camera infos", "a subscriber",
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
#: Seconds between two warnings about the same problem.
WARN_THROTTLE_S = 5.0
#: Distinct problems throttled separately; beyond this many, the rest share one throttle.
_MAX_WARNING_KEYS = 64


def topic_qos(topic: Topic, settings: Mapping[str, Any]) -> QoSProfile:
    """The QoS profile of ``topic`` for the node's ``settings`` (checked parameter values)."""
    if topic.qos == "camera":
        return camera_qos()
    if topic.qos == "output":
        return output_qos(settings["qos.reliability"], settings["qos.depth"])
    if topic.qos == "diagnostics":
        return QoSProfile(depth=DIAGNOSTICS_DEPTH)
    raise ValueError(f"topic {topic.name}: unknown QoS kind {topic.qos!r}; expected one of {list(TOPIC_QOS)}")


class ModelLoadError(FgDepthError):
    """The model file is missing or cannot be loaded or run; the message names it."""


class BadInput(FgDepthError, ValueError):
    """A frame cannot be used; the message names the topic and the problem."""


@dataclass
class Frame:
    """One input: the image(s) (mono: one; stereo: left, right) and their camera_info(s)."""

    images: Tuple[Image, ...]
    infos: Tuple[CameraInfo, ...]


def load_estimator(settings: Dict[str, Any]) -> DepthEstimator:
    """DepthEstimator for the node's model/backend/device settings, warmed up with one prediction (the first
    run allocates buffers: doing it now keeps the first frame's latency normal and proves the model runs).
    Raises ModelLoadError naming the file for anything that goes wrong."""
    path = settings["model"]
    try:
        estimator = DepthEstimator(
            path, settings["backend"], settings["device"], settings["precision"], settings["threads"]
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


def clamp_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """(H,W) metres clamped to [min_depth, max_depth]; non-finite values become NaN (REP 118: unknown)."""
    depth = np.asarray(depth, dtype=np.float32)
    return np.where(np.isfinite(depth), np.clip(depth, min_depth, max_depth), np.float32(np.nan)).astype(
        np.float32, copy=False
    )


class DepthNode(Node):
    """The depth node (module docstring). ``parameters`` ({name: value}) override the declared defaults in
    addition to the command line / params file (tests, embedding). Raises FgDepthError (NodeParamError,
    ModelLoadError) at construction for a bad parameter or model.

    Counters for tests and tools: ``received`` (frames handed to the worker), ``dropped`` (replaced by a
    newer frame before inference), ``rejected`` (bad input), ``errors`` (unexpected failures),
    ``published`` (depth images out); ``last_problem`` is the text of the newest warning.
    """

    def __init__(
        self, node_name: str = "depth_node", parameters: Optional[Dict[str, Any]] = None, **node_kwargs: Any
    ) -> None:
        overrides = list(node_kwargs.pop("parameter_overrides", None) or [])
        overrides += [Parameter(k, value=v) for k, v in (parameters or {}).items()]
        super().__init__(node_name, parameter_overrides=overrides, **node_kwargs)
        self._worker: Optional[NewestOnlyWorker] = None
        self._scale_worker: Optional[NewestOnlyWorker] = None
        try:
            self._setup()
        except BaseException:
            self.destroy_node()
            raise

    # ------------------------------------------------------------------------------------------ set-up

    def _setup(self) -> None:
        self.settings = self._declare()
        s = self.settings
        self.estimator = load_estimator(s)
        info = self.estimator.info
        # 0 = the model's range: a clamp wider than what the network can predict would only let scaling
        # artefacts through.
        self.min_depth = s["min_depth"] or info.min_depth
        self.max_depth = s["max_depth"] or info.max_depth
        if not self.min_depth < self.max_depth:
            raise NodeParamError(
                "parameters 'min_depth'/'max_depth': the depth range "
                f"{self.min_depth:g}..{self.max_depth:g} m (0 = the model's "
                f"{info.min_depth:g}..{info.max_depth:g}) is empty"
            )
        self.stereo = s["mode"] == "stereo"
        self.topics = {t: self.resolve_topic_name(t) for t in (STEREO_INPUTS if self.stereo else MONO_INPUTS)}

        self.rejected = 0
        self.errors = 0
        self.published = 0
        self.last_problem = ""
        self.problem_counts: Dict[str, int] = {}
        self._warn_lock = threading.Lock()
        self._warners: Dict[str, Any] = {}
        self.stamp_latency = LatencyWindow()
        self.node_latency = LatencyWindow()
        self.processing = LatencyWindow()
        self.inference = LatencyWindow()
        #: Per frame: stamp-to-publish minus that frame's inference, i.e. what the node and transport add.
        self.overhead = LatencyWindow()
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self._reported = {"rejected": 0, "errors": 0}
        self._sync_stalled = False

        self.scale: Optional[ScaleEstimator] = None
        if s["scale_source"] == "stereo":
            self.scale = ScaleEstimator(
                ScaleSettings(
                    ema=s["scale.ema"],
                    minimum=s["scale.min"],
                    maximum=s["scale.max"],
                    min_depth=self.min_depth,
                    max_depth=s["scale.max_depth"],
                    min_valid_fraction=s["scale.min_valid_fraction"],
                )
            )
            self.stereo_depth = StereoDepth(s["scale.num_disparities"])

        self.pub_depth = self._publisher("depth")
        self.pub_info = self._publisher("depth/camera_info")
        self.pub_points = self._publisher("points")
        self.pub_color = self._publisher("depth/color")
        self.pub_disparity = self._publisher("disparity") if self.stereo else None
        self.pub_scale = self._publisher("scale") if self.scale is not None else None
        self.pub_diagnostics = self._publisher(DIAGNOSTICS_TOPIC)

        self._worker = NewestOnlyWorker("depth_inference", self._process, self._on_frame_error)
        if self.scale is not None:
            self._scale_worker = NewestOnlyWorker(
                "depth_stereo_scale", self._measure_scale, self._on_scale_error
            )

        self._latest_info: Optional[CameraInfo] = None
        self._started = time.monotonic()
        self._last_synced = self._started
        self._last_unpaired = self._started
        self._sync_signature: Any = None
        if self.stereo:
            inputs = [(TOPIC[name].msg_type, name) for name in STEREO_INPUTS]
            camera = topic_qos(TOPIC[STEREO_INPUTS[0]], s)
            self.sync = make_synchronizer(
                self, inputs, s["sync.queue_size"], s["sync.slop"], self._on_stereo, camera
            )
        else:
            self.sync = None
            self._subscribe("camera_info", self._on_camera_info)
            self._subscribe("image", self._on_image)
        self.create_timer(s["diagnostics.period"], self._on_diagnostics)
        # After declaring: rclpy runs on-set callbacks for declarations too.
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.get_logger().info(
            f"{s['mode']} depth from {s['model']} ({self.estimator.backend_name} on {self.estimator.device}, "
            f"network {info.width}x{info.height}, depth {self.min_depth:g}..{self.max_depth:g} m, output at "
            f"{s['output_resolution']} resolution{', stereo scale correction' if self.scale else ''}); "
            f"inputs {', '.join(self.topics.values())}"
        )

    def _publisher(self, name: str) -> Any:
        topic = TOPIC[name]
        return self.create_publisher(topic.msg_type, topic.name, topic_qos(topic, self.settings))

    def _subscribe(self, name: str, callback: Any) -> Any:
        topic = TOPIC[name]
        return self.create_subscription(topic.msg_type, topic.name, callback, topic_qos(topic, self.settings))

    def _declare(self) -> Dict[str, Any]:
        values = {}
        for name, spec in PARAMETERS.items():
            try:
                values[name] = self.declare_parameter(name, spec.default, descriptor(name, spec)).value
            except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
                raise NodeParamError(f"parameter '{name}': {exc}") from None
        return check_settings(values)

    # ------------------------------------------------------------------------------------------ inputs

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._latest_info = msg

    def _on_image(self, msg: Image) -> None:
        self.input_rate.tick()
        info = self._latest_info
        if info is None:
            self._reject(
                f"{self.topics['camera_info']}: no camera_info received yet, image on {self.topics['image']} "
                "dropped (is the camera calibrated, and camera_info remapped with the image?)"
            )
            return
        self._worker.submit(Frame((msg,), (info,)))

    def _on_stereo(self, left: Image, right: Image, left_info: CameraInfo, right_info: CameraInfo) -> None:
        self.input_rate.tick()
        self._last_synced = time.monotonic()
        self._sync_stalled = False
        self._worker.submit(Frame((left, right), (left_info, right_info)))

    @property
    def received(self) -> int:
        return self._worker.submitted if self._worker else 0

    @property
    def dropped(self) -> int:
        return self._worker.dropped if self._worker else 0

    # ------------------------------------------------------------------------------------------ worker

    def _mono_inputs(self, frame: Frame, s: Dict[str, Any]) -> Tuple[np.ndarray, Intrinsics]:
        rgb = image_to_rgb(frame.images[0], self.topics["image"])
        intr = camera_info_to_intrinsics(frame.infos[0], s["rectified"], self.topics["camera_info"])
        self._check_size(intr, rgb, self.topics["camera_info"], self.topics["image"])
        return rgb, intr

    def _stereo_inputs(self, frame: Frame) -> Tuple[np.ndarray, np.ndarray, Intrinsics, float]:
        t = self.topics
        left = image_to_rgb(frame.images[0], t["left/image_rect"])
        right = image_to_rgb(frame.images[1], t["right/image_rect"])
        if left.shape != right.shape:
            raise BadInput(
                f"{t['left/image_rect']}, {t['right/image_rect']}: the views differ in size "
                f"({left.shape[1]}x{left.shape[0]} and {right.shape[1]}x{right.shape[0]}); a rectified pair "
                "has one size"
            )
        rig = stereo_rig_from_infos(
            frame.infos[0], frame.infos[1], f"{t['left/camera_info']}, {t['right/camera_info']}"
        )
        self._check_size(rig.intrinsics, left, t["left/camera_info"], t["left/image_rect"])
        return left, right, rig.intrinsics, rig.baseline

    @staticmethod
    def _check_size(intr: Intrinsics, rgb: np.ndarray, info_topic: str, image_topic: str) -> None:
        height, width = rgb.shape[:2]
        if (intr.width, intr.height) != (width, height):
            raise BadInput(
                f"{info_topic}: camera_info describes {intr.width}x{intr.height} images (after binning/ROI) "
                f"but {image_topic} is {width}x{height}"
            )

    def _process(self, frame: Frame, submitted_at: float) -> None:
        """Inference and publishing of one frame (the worker thread)."""
        start = time.monotonic()
        s = dict(self.settings)  # one consistent view while parameters may change
        right = None
        baseline = 0.0
        if self.stereo:
            rgb, right, intr, baseline = self._stereo_inputs(frame)
        else:
            rgb, intr = self._mono_inputs(frame, s)
        info = self.estimator.info
        # Network resolution first: the scale measurement compares at that size, and postprocess's resize
        # below is exactly what predict(output="input") would do.
        inference_start = time.monotonic()
        depth = self.estimator.predict(rgb, intr, output="network")
        inference = time.monotonic() - inference_start
        self.inference.add(inference)
        applied_scale = 1.0
        if self.scale is not None:
            # Read before handing the pair over: the scale worker may update it while this frame goes out.
            applied_scale = self.scale.value
            self._scale_worker.submit((rgb, right, intr, baseline, depth))
            depth = depth * np.float32(applied_scale)
        if s["output_resolution"] == "input":
            depth = postprocess(depth, 1.0, (intr.width, intr.height))
            out_intr = intr
        else:
            out_intr = intr.resized(info.width, info.height)
        depth = clamp_depth(depth, self.min_depth, self.max_depth)

        header = frame.images[0].header
        self.pub_depth.publish(depth_to_image(depth, header))
        self.pub_info.publish(intrinsics_to_camera_info(out_intr, header))
        done = time.monotonic()
        self.node_latency.add(done - submitted_at)
        # Plain nanoseconds: a camera clock slightly ahead gives a negative age, which rclpy's Duration
        # refuses on some distributions.
        stamp_age = (self.get_clock().now().nanoseconds - stamp_ns(frame.images[0])) * 1e-9
        self.stamp_latency.add(stamp_age)
        self.overhead.add(stamp_age - inference)
        self.output_rate.tick(done)
        self.published += 1

        if s["points.enabled"] and self.pub_points.get_subscription_count() > 0:
            colour = self._colour(rgb, out_intr) if s["points.color"] else None
            max_range = s["points.max_range"] or math.inf
            self.pub_points.publish(
                depth_to_pointcloud(depth, out_intr, header, colour, s["points.decimation"], max_range)
            )
        if self.pub_disparity is not None and self.pub_disparity.get_subscription_count() > 0:
            self.pub_disparity.publish(disparity_image(depth, out_intr.fx, baseline, header))
        if s["color_image.enabled"] and self.pub_color.get_subscription_count() > 0:
            self.pub_color.publish(
                rgb_to_image(colorize_depth(depth, self.min_depth, self.max_depth), header)
            )
        if self.pub_scale is not None:
            self.pub_scale.publish(Float32(data=float(applied_scale)))
        self.processing.add(time.monotonic() - start)

    @staticmethod
    def _colour(rgb: np.ndarray, out_intr: Intrinsics) -> np.ndarray:
        """The camera image at the output resolution (for point colours)."""
        import cv2

        src = (rgb.shape[1], rgb.shape[0])
        dst = (out_intr.width, out_intr.height)
        if src == dst:
            return rgb
        return cv2.resize(rgb, dst, interpolation=resize_interpolation(src, dst))

    def _measure_scale(self, item: Tuple[Any, ...], submitted_at: float) -> None:
        """One stereo scale measurement at the network resolution (the scale worker thread)."""
        import cv2

        left, right, intr, baseline, predicted = item
        height, width = predicted.shape
        src = (left.shape[1], left.shape[0])
        views = [
            cv2.resize(v, (width, height), interpolation=resize_interpolation(src, (width, height)))
            if src != (width, height)
            else v
            for v in (left, right)
        ]
        focal = intr.resized(width, height).fx
        stereo = self.stereo_depth.depth(views[0], views[1], focal, baseline)
        settings = self.scale.settings
        measured = scale_measurement(
            stereo, predicted, settings.min_depth, settings.max_depth, settings.min_valid_fraction
        )
        self.scale.update(measured)

    # ------------------------------------------------------------------------------------------ problems

    def _warn(self, text: str) -> None:
        """A warning throttled per problem: numbers are blanked out of the key, so that the same problem
        with other values (sizes, stamps) shares a throttle while different problems each get theirs."""
        key = re.sub(r"\d+(\.\d+)?", "#", text)[:300]
        with self._warn_lock:
            self.last_problem = text
            self.problem_counts[key] = self.problem_counts.get(key, 0) + 1
            logger = self._warners.get(key)
            if logger is None:
                if len(self._warners) >= _MAX_WARNING_KEYS:
                    key = "*"
                    logger = self._warners.get(key)
                if logger is None:
                    # A logger object of the node's name keeps its own throttle state (rclpy keys throttling
                    # by logger object and call site).
                    logger = rclpy.logging.get_logger(self.get_logger().name)
                    self._warners[key] = logger
        logger.warning(text, throttle_duration_sec=WARN_THROTTLE_S)

    def _count(self, counter: str) -> None:
        # Callbacks (executor thread) and workers count concurrently; += is not atomic.
        with self._warn_lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _reject(self, text: str) -> None:
        self._count("rejected")
        self._warn(f"{text}; frame dropped")

    def _on_frame_error(self, exc: BaseException) -> None:
        if isinstance(exc, (ConversionError, BadInput, InputError)):
            self._reject(str(exc))
            return
        self._count("errors")
        self._warn(f"processing a frame failed: {type(exc).__name__}: {exc}; frame dropped")

    def _on_scale_error(self, exc: BaseException) -> None:
        self._count("errors")
        self._warn(f"stereo scale measurement failed: {type(exc).__name__}: {exc}")

    def _sync_queues(self) -> Optional[Tuple[List[int], Any]]:
        """Messages waiting in the stereo synchroniser per input, and a signature that changes whenever a
        message arrives (newest stamps, drop counts); None when the synchroniser cannot tell."""
        sync = getattr(self.sync, "sync", None)
        if hasattr(sync, "queued"):  # fg_depth_ros.sync.ApproximateTimeSync
            queued = [sync.queued(i) for i in range(len(STEREO_INPUTS))]
            return [len(q) for q in queued], (tuple(q[-1:] for q in queued), tuple(sync.dropped))
        queues = getattr(sync, "queues", None)  # message_filters.ApproximateTimeSynchronizer: {stamp: msg}
        if isinstance(queues, list) and len(queues) == len(STEREO_INPUTS):
            keys = [sorted(q) for q in list(queues)]
            return [len(k) for k in keys], tuple(tuple(k[-1:]) for k in keys)
        return None

    def _check_sync(self, now: float) -> None:
        """Warn when stereo input keeps arriving but no set has synchronised for sync.warn_after seconds
        (an input that stopped is 'no input', reported by diagnostics, not a synchronisation problem)."""
        state = self._sync_queues()
        if state is None:
            return
        counts, signature = state
        if signature != self._sync_signature:
            self._sync_signature, self._last_unpaired = signature, now
        warn_after = self.settings["sync.warn_after"]
        if now - self._last_synced < warn_after or now - self._last_unpaired > warn_after or not any(counts):
            self._sync_stalled = False
            return
        self._sync_stalled = True
        waiting = ", ".join(f"{self.topics[t]} {n}" for t, n in zip(STEREO_INPUTS, counts))
        self._warn(
            f"stereo inputs have not synchronised for {now - self._last_synced:.1f} s (messages waiting: "
            f"{waiting}): check that all four topics are published and their stamps lie within sync.slop = "
            f"{self.settings['sync.slop']:g} s of each other"
        )

    # ------------------------------------------------------------------------------------------ diagnostics

    def _on_diagnostics(self) -> None:
        now = time.monotonic()
        if self.stereo:
            self._check_sync(now)
        values = self.diagnostic_values(now)
        level, message = diagnostics.OK, "ok"
        new_rejected = self.rejected - self._reported["rejected"]
        new_errors = self.errors - self._reported["errors"]
        self._reported = {"rejected": self.rejected, "errors": self.errors}
        if new_errors:
            level, message = diagnostics.ERROR, f"{new_errors} frame(s) failed: {self.last_problem}"
        elif self._sync_stalled:
            level, message = diagnostics.WARN, "stereo inputs do not synchronise"
        elif new_rejected:
            level, message = diagnostics.WARN, f"{new_rejected} bad frame(s): {self.last_problem}"
        elif values["input_rate_hz"] == 0.0:
            level, message = diagnostics.WARN, f"no input on {', '.join(self.topics.values())}"
        status = diagnostics.diagnostic_status(
            f"{self.get_fully_qualified_name()}: depth", str(self.settings["model"]), level, message, values
        )
        self.pub_diagnostics.publish(diagnostics.diagnostic_array(self.get_clock().now().to_msg(), [status]))

    def diagnostic_values(self, now: Optional[float] = None) -> Dict[str, Any]:
        """The numbers /diagnostics reports (rates in Hz, percentiles in ms over the last 200 frames, counts
        since start). latency: input stamp -> depth published (the node's clock); node_latency: frame
        received -> depth published; processing: the worker's whole frame (conversion, inference, all
        outputs); inference: DepthEstimator.predict alone; overhead: per frame, latency minus inference (what
        transport, queueing and the node add to the model)."""
        now = time.monotonic() if now is None else now
        info = self.estimator.info
        return {
            "mode": self.settings["mode"],
            "backend": self.estimator.backend_name,
            "device": self.estimator.device,
            "network": f"{info.width}x{info.height}",
            "output_resolution": self.settings["output_resolution"],
            "input_rate_hz": self.input_rate.rate(now),
            "output_rate_hz": self.output_rate.rate(now),
            "latency_p50_ms": self.stamp_latency.percentile_ms(50),
            "latency_p95_ms": self.stamp_latency.percentile_ms(95),
            "node_latency_p50_ms": self.node_latency.percentile_ms(50),
            "node_latency_p95_ms": self.node_latency.percentile_ms(95),
            "processing_p50_ms": self.processing.percentile_ms(50),
            "processing_p95_ms": self.processing.percentile_ms(95),
            "inference_p50_ms": self.inference.percentile_ms(50),
            "inference_p95_ms": self.inference.percentile_ms(95),
            "overhead_p50_ms": self.overhead.percentile_ms(50),
            "overhead_p95_ms": self.overhead.percentile_ms(95),
            "frames_received": self.received,
            "frames_published": self.published,
            "frames_dropped": self.dropped,
            "frames_rejected": self.rejected,
            "errors": self.errors,
            "scale_source": self.settings["scale_source"],
            "scale": self.scale.value if self.scale is not None else 1.0,
            "scale_measurements": self.scale.measurements if self.scale is not None else 0,
            "last_problem": self.last_problem,
        }

    # ------------------------------------------------------------------------------------------ parameters

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        """Validate run-time changes (rclpy has already refused read-only ones) and apply them all or none.

        Applied here rather than in a post-set callback, which Humble's rclpy lacks; this is the node's only
        on-set callback, so no later callback can still refuse the change.
        """
        updates = {}
        for param in params:
            spec = PARAMETERS.get(param.name)
            if spec is None:
                continue  # rclpy's own parameters (use_sim_time, ...)
            if not spec.dynamic:
                return SetParametersResult(
                    successful=False,
                    reason=f"parameter '{param.name}' is read-only: restart the node to change it",
                )
            try:
                updates[param.name] = check_value(param.name, param.value)
            except NodeParamError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        self.settings.update(updates)
        if updates:
            self.get_logger().info(
                "parameters changed: " + ", ".join(f"{k}={v}" for k, v in sorted(updates.items()))
            )
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------ shutdown

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the workers have nothing left to do (tests); True if they are idle."""
        deadline = time.monotonic() + timeout
        workers = [w for w in (self._worker, self._scale_worker) if w is not None]
        while not all(w.idle() for w in workers):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def destroy_node(self) -> None:
        """Stop the workers (after their current frame), release the model, then destroy the node."""
        for worker in (self._worker, self._scale_worker):
            if worker is not None:
                worker.stop()
        # Free the model (and its runtime's thread pool) now, not whenever the garbage collector breaks the
        # node's reference cycles: that may happen in a process forked later (multiprocessing, DataLoader),
        # where destroying ONNX Runtime's thread-pool state inherited from this process hangs for ever.
        self.estimator = None
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> int:
    """Console entry point: run the node until Ctrl-C / shutdown; returns the exit status (1 for a bad
    parameter or model, with the reason on stderr)."""
    rclpy.init(args=args)
    node: Optional[DepthNode] = None
    executor = SingleThreadedExecutor()
    try:
        node = DepthNode()
        executor.add_node(node)
        executor.spin()
        return 0
    except FgDepthError as exc:
        print(f"[depth_node] error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
