"""Stage 4 of the demo: depth_node, play and a recorder on one rclpy executor in this process, every test
frame through the node, and the checked Recording of what it published."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Dict, List

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from fg_depth_core.camera_msgs import stamp_ns
from tools.demo import ros_adapter
from tools.demo.settings import PLAYED_SPLIT, DemoError, Settings

#: Seconds to wait for the nodes to discover each other, and for one frame's depth and cloud to come back
#: (generous: a loaded 2-core machine; a frame normally takes tens of milliseconds).
MATCH_TIMEOUT_S = 60.0
FRAME_TIMEOUT_S = 60.0
#: /diagnostics periods to wait for a message that counts every frame.
DIAGNOSTICS_PERIODS = 5
#: History of the recorder's subscriptions (more than the frames in flight at any time: one).
RECORD_QUEUE = 10
#: Executor spin granularity, seconds.
SPIN_S = 0.01


class Recorder(Node):
    """Keeps every message play and depth_node publish on the demo's topics, with its arrival time
    (nanoseconds of this node's clock, the clock play stamps with)."""

    TOPICS = {
        "image": Image,
        "depth/image": Image,
        "depth/camera_info": CameraInfo,
        "points": PointCloud2,
        "/diagnostics": DiagnosticArray,
    }

    def __init__(self, context: Any) -> None:
        super().__init__("demo_recorder", context=context)
        self.messages: Dict[str, List[Any]] = {topic: [] for topic in self.TOPICS}
        self.arrival_ns: Dict[str, List[int]] = {topic: [] for topic in self.TOPICS}
        qos = QoSProfile(depth=RECORD_QUEUE, reliability=ReliabilityPolicy.RELIABLE)
        for topic, kind in self.TOPICS.items():
            self.create_subscription(kind, topic, partial(self._store, topic), qos)

    def _store(self, topic: str, msg: Any) -> None:
        self.arrival_ns[topic].append(self.get_clock().now().nanoseconds)
        self.messages[topic].append(msg)

    def count(self, topic: str) -> int:
        return len(self.messages[topic])


@dataclass
class Recording:
    """What the ROS stage saw. Lists are per played frame, in order."""

    indices: List[int]
    names: List[str]
    images: List[Image]
    depths: List[Image]
    clouds: List[PointCloud2]
    #: depth message arrival minus its header stamp (play's clock now at publishing), seconds.
    stamp_to_receive_s: List[float]
    #: The node's own timing per frame (LatencyWindow values): frame received -> depth published, the
    #: backend's predict alone, and the worker's whole frame (conversion, inference, every output), seconds.
    node_latency_s: List[float]
    inference_s: List[float]
    processing_s: List[float]
    #: The node's last /diagnostics key/values, and its settings.
    diagnostics: Dict[str, str] = field(default_factory=dict)
    node: Dict[str, Any] = field(default_factory=dict)


def node_parameters(settings: Settings) -> Dict[str, Any]:
    """depth_node's parameters: the ONNX model with the config's inference settings, mono camera, outputs at
    the camera's resolution; the cloud keeps points within the evaluation range (farther predictions, such
    as the sky at the model's maximum depth, would stand as a wall behind the scene)."""
    inference = settings.cfg.inference
    return {
        "model": str(settings.model),
        "backend": inference.backend,
        "device": inference.device,
        "threads": inference.threads,
        "mode": "mono",
        "output_resolution": "input",
        "points.max_range": float(settings.cfg.eval.max_depth),
    }


def player_parameters(settings: Settings) -> Dict[str, Any]:
    """play's parameters: the rendered test split as a mono camera, stamped with the clock's now."""
    return {
        "dataset": "folder",
        "path": str(settings.played),
        "mode": "mono",
        "count": settings.frames,
        "clock": "now",
        "qos": "reliable",
    }


def all_matched(player: Any, node: Any) -> bool:
    """True once every publisher of play and depth_node is matched with its subscriptions: play's with the
    node's (and ``image`` also with the recorder's), the node's outputs with the recorder's. Matched, not
    merely discovered, so that no message of the first frame is lost."""
    inputs = all(
        pub.get_subscription_count() >= 1 + (topic in Recorder.TOPICS)
        for topic, pub in ros_adapter.player_publishers(player).items()
    )
    return inputs and all(pub.get_subscription_count() > 0 for pub in ros_adapter.output_publishers(node))


class RosSession:
    """depth_node, play and the recorder as three nodes on one executor of a private rclpy context (in the
    demo's ROS domain), spun from this thread; the node infers on its own worker thread. A context manager:
    entering starts the nodes and waits until they are matched, leaving destroys them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nodes: List[Node] = []

    def __enter__(self) -> "RosSession":
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.settings.domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        try:
            self.node = self._add(ros_adapter.make_depth_node(node_parameters(self.settings), self.context))
            self.player = self._add(ros_adapter.make_player(player_parameters(self.settings), self.context))
            self.recorder = self._add(Recorder(self.context))
            self.spin_until(
                lambda: all_matched(self.player, self.node),
                MATCH_TIMEOUT_S,
                "play, depth_node and the recorder to discover each other",
            )
        except BaseException:
            self.__exit__()
            raise
        return self

    def _add(self, node: Any) -> Any:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def __exit__(self, *exc: Any) -> None:
        self.executor.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []
        rclpy.try_shutdown(context=self.context)
        # Break the nodes' reference cycles now, not in a process forked later (see DepthNode.destroy_node).
        gc.collect()

    def spin_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Spin until ``condition()``; DemoError after ``timeout`` seconds naming ``what``, or as soon as the
        node drops a frame."""
        deadline = time.monotonic() + timeout
        while not condition():
            node = getattr(self, "node", None)
            problem = None if node is None else ros_adapter.dropped_frame(node)
            if problem is not None:
                raise DemoError(f"depth_node dropped a frame: {problem}")
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=SPIN_S)

    def play_all(self) -> List[int]:
        """Publish the frames one at a time, each once the node's depth and cloud of the previous one are
        back; returns the dataset indices played."""
        indices: List[int] = []
        for k in range(self.settings.frames):
            index = ros_adapter.publish_next(self.player)
            if index is None:
                raise DemoError(f"play ran out of frames after {k} of {self.settings.frames}")
            indices.append(index)
            self.spin_until(
                lambda k=k: min(self.recorder.count(t) for t in ("image", "depth/image", "points")) > k,
                FRAME_TIMEOUT_S,
                f"the node's depth and point cloud of frame {k} (test frame {index})",
            )
        # The node times a frame after publishing it: let its worker finish the last one.
        if not ros_adapter.wait_idle(self.node, FRAME_TIMEOUT_S):
            raise DemoError(f"depth_node's worker still busy after {FRAME_TIMEOUT_S:.0f} s")
        return indices

    def diagnostics(self) -> Dict[str, str]:
        """The key/values of the node's first /diagnostics message that counts every played frame."""
        name = ros_adapter.diagnostics_status(self.node)
        frames = str(self.settings.frames)

        def latest() -> Dict[str, str]:
            messages = self.recorder.messages["/diagnostics"]
            try:
                return ros_adapter.status_values(messages[-1], name) if messages else {}
            except KeyError:
                return {}

        period = ros_adapter.diagnostics_period(self.node)
        self.spin_until(
            lambda: latest().get("frames_published") == frames,
            DIAGNOSTICS_PERIODS * period,
            f"a /diagnostics message of {name} counting {frames} frames",
        )
        return latest()

    def recording(self, indices: List[int], diagnostics: Dict[str, str]) -> Recording:
        """What the recorder and the node's timing windows hold now."""
        messages, arrival = self.recorder.messages, self.recorder.arrival_ns
        node_latency, inference, processing = ros_adapter.timings(self.node)
        backend, device = ros_adapter.backend(self.node)
        return Recording(
            indices=indices,
            names=[f"{PLAYED_SPLIT}/{ros_adapter.frame_name(self.player, i)}" for i in indices],
            images=list(messages["image"]),
            depths=list(messages["depth/image"]),
            clouds=list(messages["points"]),
            stamp_to_receive_s=[
                (t - stamp_ns(m)) * 1e-9 for m, t in zip(messages["depth/image"], arrival["depth/image"])
            ],
            node_latency_s=node_latency,
            inference_s=inference,
            processing_s=processing,
            diagnostics=diagnostics,
            node={
                "backend": backend,
                "device": device,
                "parameters": node_parameters(self.settings),
            },
        )


def record(settings: Settings) -> Recording:
    """Stage 4: every test frame through depth_node; the checked Recording."""
    with RosSession(settings) as ros:
        indices = ros.play_all()
        recording = ros.recording(indices, ros.diagnostics())
    check_recording(recording, settings.frames)
    return recording


def check_recording(rec: Recording, frames: int) -> None:
    """Every played frame came back once from the node, in order, with the stamp play gave it."""
    counts = {
        "published images": len(rec.images),
        "depth images": len(rec.depths),
        "point clouds": len(rec.clouds),
        "node latencies": len(rec.node_latency_s),
        "node inference times": len(rec.inference_s),
        "node processing times": len(rec.processing_s),
    }
    if any(n != frames for n in counts.values()):
        raise DemoError(f"expected {frames} of each, got {counts}")
    for k, (image, depth, cloud) in enumerate(zip(rec.images, rec.depths, rec.clouds)):
        if not stamp_ns(image) == stamp_ns(depth) == stamp_ns(cloud):
            raise DemoError(
                f"frame {k}: the node's depth ({stamp_ns(depth)}) and cloud ({stamp_ns(cloud)}) do not carry "
                f"the stamp play published ({stamp_ns(image)})"
            )
