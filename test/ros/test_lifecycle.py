"""depth_lifecycle_node: configure loads the model and makes the publishers, activate subscribes and depth
flows, deactivate stops it with the model kept, cleanup frees everything; a bad model fails configure. With
real rclpy lifecycle transitions (the services ``ros2 lifecycle set`` calls: test/ros/test_ros2_cli.py)."""

from __future__ import annotations

import time

import pytest
from depth_node_helpers import camera_messages, random_rgb, stamp_of, write_linear_model
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from fg_depth_core.camera import Intrinsics
from fg_depth_ros.depth_lifecycle_node import DepthLifecycleNode

NET_W, NET_H = 64, 32
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class Rig:
    """The lifecycle node, a camera publishing into it and a subscriber to its depth, on one executor."""

    def __init__(self, context, parameters):
        self.node = DepthLifecycleNode(parameters=parameters, context=context)
        self.tester = Node("tester", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image = self.tester.create_publisher(Image, "image", qos)
        self.info = self.tester.create_publisher(CameraInfo, "camera_info", qos)
        self.depths = []
        self.tester.create_subscription(Image, "depth/image", self.depths.append, qos)
        self.executor = SingleThreadedExecutor(context=context)
        for node in (self.node, self.tester):
            self.executor.add_node(node)
        self.intr = Intrinsics(50.0, 50.0, (NET_W - 1) / 2, (NET_H - 1) / 2, NET_W, NET_H)

    def spin(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)

    def spin_until(self, condition, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, what
            self.executor.spin_once(timeout_sec=0.01)

    def send(self, stamp_s: int) -> None:
        image, info = camera_messages(random_rgb(NET_H, NET_W, stamp_s), self.intr, stamp_s * 10**9)
        self.info.publish(info)
        self.image.publish(image)

    def subscribers_of_image(self) -> int:
        return self.image.get_subscription_count()

    def close(self) -> None:
        self.executor.shutdown()
        self.tester.destroy_node()
        self.node.destroy_node()


def test_transitions_load_subscribe_stop_and_free(context, tmp_path):
    model = write_linear_model(tmp_path / "linear.onnx", NET_W, NET_H)
    rig = Rig(context, {"model": str(model)})
    try:
        # Unconfigured: parameters declared, nothing loaded, nothing published or subscribed.
        assert rig.node.get_parameter("model").value == str(model) and rig.node.estimator is None
        rig.spin(0.3)
        assert rig.subscribers_of_image() == 0 and rig.tester.count_publishers("/depth/image") == 0

        assert rig.node.trigger_configure() == SUCCESS
        assert rig.node.estimator is not None and rig.node.estimator.info.width == NET_W
        rig.spin_until(lambda: rig.tester.count_publishers("/depth/image") == 1, "the publishers")
        rig.spin(0.3)
        assert rig.subscribers_of_image() == 0  # configured, not yet listening

        assert rig.node.trigger_activate() == SUCCESS
        rig.spin_until(lambda: rig.subscribers_of_image() == 1, "the camera subscription")
        rig.spin_until(lambda: rig.node.outputs.depth.get_subscription_count() == 1, "output matching")
        rig.send(1)
        rig.spin_until(lambda: len(rig.depths) == 1, "depth while active")
        assert stamp_of(rig.depths[0]) == 10**9

        assert rig.node.trigger_deactivate() == SUCCESS
        rig.spin_until(lambda: rig.subscribers_of_image() == 0, "unsubscribing")
        rig.send(2)
        rig.spin(0.5)
        assert len(rig.depths) == 1 and rig.node.estimator is not None  # stopped, model kept

        assert rig.node.trigger_activate() == SUCCESS  # quick: nothing to load
        rig.spin_until(lambda: rig.subscribers_of_image() == 1, "subscribing again")
        rig.send(3)
        rig.spin_until(lambda: len(rig.depths) == 2, "depth after reactivation")

        assert rig.node.trigger_deactivate() == SUCCESS
        assert rig.node.trigger_cleanup() == SUCCESS
        assert rig.node.estimator is None and rig.node.outputs is None
        rig.spin_until(lambda: rig.tester.count_publishers("/depth/image") == 0, "the publishers removed")
    finally:
        rig.close()


def test_a_bad_model_fails_configure_and_leaves_the_node_unconfigured(context, tmp_path):
    missing = tmp_path / "missing.onnx"
    rig = Rig(context, {"model": str(missing)})
    try:
        assert rig.node.trigger_configure() == FAILURE
        assert rig.node.estimator is None
        model = write_linear_model(missing, NET_W, NET_H)  # fixed on disk: configure again succeeds
        assert model == missing and rig.node.trigger_configure() == SUCCESS
    finally:
        rig.close()


def test_a_bad_parameter_is_refused_at_construction(context):
    from fg_depth_ros.node_params import NodeParamError

    with pytest.raises(NodeParamError, match="parameter 'model': no model given"):
        DepthLifecycleNode(context=context)
