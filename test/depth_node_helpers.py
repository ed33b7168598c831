"""Shared by test_depth_node.py and test_node_bad_input.py: a fixture model whose output is a known function
of the image, camera messages, and a harness that runs a DepthNode with a listener node on real rclpy."""

from __future__ import annotations

import gc
import os
import time
from collections import defaultdict
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from linear_model_helpers import (  # noqa: F401 (shared here)
    expected_network_depth,
    write_fixed_depth_model,
    write_linear_model,
)
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32, Header
from stereo_msgs.msg import DisparityImage

from fg_depth_core.camera import Intrinsics
from fg_depth_ros.conversions import intrinsics_to_camera_info, rgb_to_image
from fg_depth_ros.depth_node import DepthNode

#: A ROS domain of this test process's own: parallel test processes must not hear each other's topics.
DOMAIN = (os.getpid() + 37) % 100 + 1
OUTPUT_TYPES = {
    "depth/image": Image,
    "depth/camera_info": CameraInfo,
    "points": PointCloud2,
    "depth/color/image": Image,
    "depth/color/camera_info": CameraInfo,
    "disparity": DisparityImage,
    "scale": Float32,
    "/diagnostics": DiagnosticArray,
}


def _input_type(topic: str) -> type:
    if topic.endswith("camera_info"):
        return CameraInfo
    return CompressedImage if topic.endswith("/compressed") else Image


def camera_messages(
    rgb: np.ndarray, intr: Intrinsics, stamp_ns: int, frame_id: str = "camera_optical_frame", tx: float = 0.0
):
    """(Image rgb8, CameraInfo) of one view with one header."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return rgb_to_image(rgb, header), intrinsics_to_camera_info(intr, header, tx=tx)


class Harness:
    """A DepthNode plus a 'tester' node publishing camera topics and collecting every output, spun by one
    executor from the test's thread (the node's inference runs on its own worker thread)."""

    def __init__(
        self,
        context,
        parameters: Dict[str, Any],
        inputs: Sequence[str] = ("image", "camera_info"),
        namespace: str = "",
    ):
        self.context = context
        self.node = DepthNode(parameters=parameters, context=context, namespace=namespace)
        self.tester = Node("tester", context=context, namespace=namespace)
        self.got: Dict[str, List[Any]] = defaultdict(list)
        #: time.time() of each message's arrival, per topic (the stamps' clock when they come from now()).
        self.arrival: Dict[str, List[float]] = defaultdict(list)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_type in OUTPUT_TYPES.items():
            self.tester.create_subscription(msg_type, topic, lambda m, t=topic: self._store(t, m), qos)
        self.pubs = {topic: self.tester.create_publisher(_input_type(topic), topic, qos) for topic in inputs}
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.tester)
        self.spin_until(lambda: all(p.get_subscription_count() for p in self.pubs.values()), what="matching")
        self.spin_until(lambda: self.node.outputs.depth.get_subscription_count() > 0, what="output matching")

    def _store(self, topic: str, msg: Any) -> None:
        self.arrival[topic].append(time.time())
        self.got[topic].append(msg)

    def add_node(self, node: Node) -> None:
        """Spin ``node`` (a DatasetPlayer, say) with the others."""
        self.executor.add_node(node)

    def spin_until(self, condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what or 'a condition'}; received "
                f"{ {k: len(v) for k, v in self.got.items()} }; node: received {self.node.received}, "
                f"published {self.node.published}, rejected {self.node.rejected}, errors {self.node.errors}, "
                f"last problem {self.node.last_problem!r}"
            )
            self.executor.spin_once(timeout_sec=0.01)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)

    def publish(self, **msgs) -> None:
        """Publish messages by input topic (keyword names use '__' for '/': left__image_rect=...)."""
        for name, msg in msgs.items():
            self.pubs[name.replace("__", "/")].publish(msg)

    def wait_outputs(self, topic: str, count: int, timeout: float = 15.0) -> List[Any]:
        self.spin_until(lambda: len(self.got[topic]) >= count, timeout, f"{count} message(s) on {topic}")
        return self.got[topic]

    def close(self) -> None:
        self.executor.shutdown()
        self.tester.destroy_node()
        self.node.destroy_node()
        # Collect the nodes' reference cycles here rather than in a process that a later test forks.
        gc.collect()


def make_context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    return ctx


def stamp_of(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
