"""depth_node on real rclpy: rendered stereo frames in, depth / camera_info / points / disparity out with the
input's stamp and frame; the cloud is exactly the back-projection of the published depth through the published
K; the stereo scale correction; frames faster than inference are dropped with bounded latency; run-time
parameter changes; start-up failures exit 1 with a clear message. Also the ROS-free pieces (scale maths,
parameter checks, statistics, the newest-only worker)."""

from __future__ import annotations

import array
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from depth_node_helpers import (
    DOMAIN,
    Harness,
    camera_messages,
    expected_network_depth,
    random_rgb,
    stamp_of,
    write_linear_model,
)
from diagnostic_msgs.msg import DiagnosticArray
from encoding_helpers import rgb_to_yuv422, smooth_rgb
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from fg_depth_core.camera import Intrinsics
from fg_depth_core.config import SynthConfig
from fg_depth_core.data.world import render_frame, resize_synth
from fg_depth_core.deploy.estimator import postprocess
from fg_depth_ros import play
from fg_depth_ros.conversions import image_to_depth, pointcloud_to_rgb, pointcloud_to_xyz
from fg_depth_ros.depth_node import DepthNode, main
from fg_depth_ros.diagnostics import LatencyWindow, RateMeter, status_values
from fg_depth_ros.node_params import (
    DYNAMIC,
    PARAMETERS,
    NodeParamError,
    check_settings,
    check_value,
)
from fg_depth_ros.params import descriptor
from fg_depth_ros.pipeline import limit_depth
from fg_depth_ros.play import DatasetPlayer
from fg_depth_ros.scale import (
    ScaleError,
    ScaleEstimator,
    ScaleSettings,
    StereoDepth,
    fit_num_disparities,
    scale_measurement,
)
from fg_depth_ros.topics import MONO_INPUTS, STEREO_INPUTS, TOPIC, TOPICS, topic_qos
from fg_depth_ros.worker import NewestOnlyWorker

ROOT = Path(__file__).resolve().parents[2]
NET_W, NET_H = 64, 32
TRAIN_FOCAL = 50.0


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory) -> Path:
    return write_linear_model(tmp_path_factory.mktemp("model") / "linear.onnx", NET_W, NET_H)


def _depth(harness: Harness, index: int = -1) -> np.ndarray:
    return image_to_depth(harness.got["depth/image"][index])


# ------------------------------------------------------------------------------------ stereo end to end


def test_rendered_stereo_frames_give_depth_info_points_and_disparity_with_the_input_stamp_and_frame(
    context, linear_model
):
    width, height = 96, 48
    player = DatasetPlayer(
        parameters={"dataset": "synth", "width": width, "height": height, "count": 3, "clock": "synthetic"},
        autostart=False,
        context=context,
    )
    harness = Harness(context, {"model": str(linear_model), "mode": "stereo"}, inputs=())
    harness.add_node(player)
    try:
        harness.spin_until(
            lambda: all(p.get_subscription_count() for p in player.publishers_by_topic.values())
        )
        cfg = resize_synth(SynthConfig(), width, height)
        for frame in range(3):
            assert player.publish_next() == frame
            for topic in ("depth/image", "depth/camera_info", "points", "disparity", "depth/color/image"):
                harness.wait_outputs(topic, frame + 1)
            pair = render_frame(cfg, "test", frame)  # what the player published
            k = pair.rig.intrinsics
            stamp = round(frame * 1e9 / 10.0)  # synthetic clock: frame / rate seconds
            for topic in ("depth/image", "depth/camera_info", "points", "disparity", "depth/color/image"):
                msg = harness.got[topic][frame]
                assert stamp_of(msg) == stamp, topic
                assert msg.header.frame_id == "camera_optical_frame", topic
            depth_msg = harness.got["depth/image"][frame]
            assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == ("32FC1", width, height)
            # The model's known output through DepthEstimator's own pre/post-processing and focal scaling.
            rgb_net = cv2.resize(pair.left, (NET_W, NET_H), interpolation=cv2.INTER_AREA)
            network = expected_network_depth(rgb_net, k.resized(NET_W, NET_H).fx, train_focal=TRAIN_FOCAL)
            expected = limit_depth(postprocess(network, 1.0, (width, height)), 0.1, 100.0, "clamp")
            np.testing.assert_allclose(_depth(harness, frame), expected, rtol=1e-5)

            info = harness.got["depth/camera_info"][frame]
            assert (info.width, info.height) == (width, height)
            np.testing.assert_allclose(np.reshape(info.k, (3, 3)), k.matrix(), rtol=1e-12)

            disparity = harness.got["disparity"][frame]
            assert disparity.f == pytest.approx(k.fx) and disparity.t == pytest.approx(pair.rig.baseline)
            d = image_to_depth(disparity.image)
            np.testing.assert_allclose(d, k.fx * pair.rig.baseline / expected, rtol=1e-5)
            assert disparity.min_disparity <= d.min() and d.max() <= disparity.max_disparity
            # The valid range is the published depth range (the model's 0.1..100 m), not the frame's.
            fb = k.fx * pair.rig.baseline
            assert (disparity.min_disparity, disparity.max_disparity) == pytest.approx((fb / 100.0, fb / 0.1))
            assert harness.got["points"][frame].width > 0
        assert harness.node.published == 3 and harness.node.rejected == 0 and harness.node.errors == 0
    finally:
        harness.close()
        player.destroy_node()


def test_stereo_scale_source_measures_the_scale_by_sgbm_and_applies_it(context, tmp_path):
    # A network as wide as the images so that SGBM has room: 192x64, KITTI-like focal (111 px).
    width, height = 192, 64
    model = write_linear_model(tmp_path / "wide.onnx", width, height, train_focal=TRAIN_FOCAL)
    player = DatasetPlayer(
        parameters={"dataset": "synth", "width": width, "height": height, "count": 2}, autostart=False,
        context=context,
    )  # fmt: skip
    params = {"model": str(model), "mode": "stereo", "scale_source": "stereo", "scale.min": 0.01,
              "scale.max": 10.0, "scale.ema": 0.5}  # fmt: skip
    harness = Harness(context, params, inputs=())
    harness.add_node(player)
    try:
        harness.spin_until(
            lambda: all(p.get_subscription_count() for p in player.publishers_by_topic.values())
        )
        cfg = resize_synth(SynthConfig(), width, height)
        measured = []
        for frame in range(2):
            player.publish_next()
            harness.wait_outputs("depth/image", frame + 1)
            assert harness.node.wait_idle()
            pair = render_frame(cfg, "test", frame)
            k = pair.rig.intrinsics
            predicted = expected_network_depth(pair.left, k.fx, train_focal=TRAIN_FOCAL)
            stereo = StereoDepth(PARAMETERS["scale.num_disparities"].default).depth(
                pair.left, pair.right, k.fx, pair.rig.baseline
            )
            measured.append(scale_measurement(stereo, predicted, 0.1, 30.0, 0.02))
            assert measured[-1] is not None
        # First measurement taken as it is, the second averaged with weight 0.5.
        expected = 0.5 * measured[0] + 0.5 * measured[1]
        assert harness.node.scale.measurements == 2
        assert harness.node.scale.value == pytest.approx(expected, rel=1e-5)
        # The second frame was corrected by the first measurement and says so on 'scale'.
        harness.wait_outputs("scale", 2)
        assert harness.got["scale"][1].data == pytest.approx(measured[0], rel=1e-5)
        second = expected_network_depth(render_frame(cfg, "test", 1).left, k.fx, train_focal=TRAIN_FOCAL)
        np.testing.assert_allclose(_depth(harness, 1), second * np.float32(measured[0]), rtol=1e-5)
        # Sanity of the maths on the world's exact depth: SGBM depth is metric where it is valid.
        truth = render_frame(cfg, "test", 1).depth_left
        stereo = StereoDepth(96).depth(pair.left, pair.right, k.fx, pair.rig.baseline)
        valid = np.isfinite(stereo) & np.isfinite(truth) & (truth < 30)
        assert valid.mean() > 0.2 and abs(np.median(stereo[valid] / truth[valid]) - 1) < 0.05
        # The status names the node without a leading slash and, as hardware, the camera (its frame_id).
        statuses = harness.got["/diagnostics"]
        harness.spin_until(lambda: any(m.status[0].hardware_id == "camera_optical_frame" for m in statuses))
        assert statuses[-1].status[0].name == "depth_node: depth"
        values = status_values(statuses[-1], "depth_node: depth")
        assert float(values["scale"]) == pytest.approx(harness.node.scale.value, abs=1e-3)
    finally:
        harness.close()
        player.destroy_node()


# ------------------------------------------------------------------------------ cloud == back-projection


def _backprojection(depth: np.ndarray, k: np.ndarray, step: int, max_range: float) -> np.ndarray:
    """X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z over pixels (u, v) = (step*i, step*j), in float32 in
    the order written; points without a finite positive depth or beyond max_range left out."""
    k32 = k.astype(np.float32)
    v, u = np.mgrid[0 : depth.shape[0] : step, 0 : depth.shape[1] : step].astype(np.float32)
    z = depth[::step, ::step]
    x = (u - k32[0, 2]) * z / k32[0, 0]
    y = (v - k32[1, 2]) * z / k32[1, 1]
    points = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    keep = np.isfinite(points).all(axis=1) & (points[:, 2] > 0)
    keep &= np.sqrt((points.astype(np.float32) ** 2).sum(axis=1)) <= max_range
    return points[keep]


@pytest.mark.parametrize(
    "resolution, image_size, decimation, max_range",
    [("network", (NET_W, NET_H), 1, 0.0), ("input", (96, 40), 3, 0.0), ("input", (96, 40), 2, 6.0)],
)
def test_the_cloud_is_the_back_projection_of_the_published_depth_through_the_published_k(
    context, linear_model, resolution, image_size, decimation, max_range
):
    width, height = image_size
    params = {
        "model": str(linear_model),
        "output_resolution": resolution,
        "points.decimation": decimation,
        "points.max_range": max_range,
    }
    harness = Harness(context, params)
    try:
        intr = Intrinsics(45.0, 44.0, 30.5, 17.25, width, height)
        rgb = random_rgb(height, width, seed=decimation)
        image, info = camera_messages(rgb, intr, 42_000_000_123, frame_id="cam_optical")
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        harness.publish(image=image)
        for topic in ("depth/image", "depth/camera_info", "points"):
            harness.wait_outputs(topic, 1)
        depth = _depth(harness)
        k = np.reshape(harness.got["depth/camera_info"][0].k, (3, 3))
        cloud = harness.got["points"][0]
        assert cloud.header.frame_id == "cam_optical" and stamp_of(cloud) == 42_000_000_123
        out_w, out_h = (NET_W, NET_H) if resolution == "network" else (width, height)
        assert depth.shape == (out_h, out_w)
        np.testing.assert_allclose(k, intr.resized(out_w, out_h).matrix(), rtol=1e-12)
        if resolution == "network":
            # Known model output: depth = (2 + 8 R) * f'/f_train at the network resolution, f' = sqrt(fx fy)
            # there (45 and 44 px: the image is at the network size).
            net = cv2.resize(rgb, (NET_W, NET_H), interpolation=cv2.INTER_AREA)
            expected = expected_network_depth(net, math.sqrt(45.0 * 44.0), train_focal=TRAIN_FOCAL)
            np.testing.assert_array_equal(depth, expected)
        xyz = pointcloud_to_xyz(cloud)
        expected_points = _backprojection(depth, k, decimation, max_range or math.inf)
        assert 0 < len(expected_points) and (max_range == 0.0 or len(expected_points) < depth[::2, ::2].size)
        np.testing.assert_array_equal(xyz, expected_points)
        # Colours: the image at the output resolution, same pixels.
        colour = (
            rgb if resolution == "input" else cv2.resize(rgb, (NET_W, NET_H), interpolation=cv2.INTER_AREA)
        )
        if max_range == 0.0:
            np.testing.assert_array_equal(
                pointcloud_to_rgb(cloud), colour[::decimation, ::decimation].reshape(-1, 3)
            )
    finally:
        harness.close()


@pytest.mark.parametrize("out_of_range", ["inf", "clamp", "nan"])
def test_depths_outside_the_range_follow_out_of_range_in_the_depth_and_the_cloud(
    context, linear_model, out_of_range
):
    """The linear model gives (2 + 8 R) * f'/f_train m; a range of 4..7 m cuts both ends (REP 117)."""
    low, high = 4.0, 7.0
    params = {
        "model": str(linear_model),
        "output_resolution": "network",
        "min_depth": low,
        "max_depth": high,
        "out_of_range": out_of_range,
        "points.decimation": 1,
        "points.color": False,
    }
    harness = Harness(context, params)
    try:
        intr = Intrinsics(TRAIN_FOCAL, TRAIN_FOCAL, (NET_W - 1) / 2, (NET_H - 1) / 2, NET_W, NET_H)
        rgb = random_rgb(NET_H, NET_W, seed=5)
        image, info = camera_messages(rgb, intr, 7_000_000_000)
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        harness.publish(image=image)
        for topic in ("depth/image", "points"):
            harness.wait_outputs(topic, 1)
        depth = _depth(harness)
        model = expected_network_depth(rgb, TRAIN_FOCAL, train_focal=TRAIN_FOCAL)
        near, far, inside = model < low, model > high, (model >= low) & (model <= high)
        assert near.sum() > 10 and far.sum() > 10 and inside.sum() > 10
        np.testing.assert_array_equal(depth[inside], model[inside])
        if out_of_range == "inf":
            assert np.all(depth[near] == -np.inf) and np.all(depth[far] == np.inf)
        elif out_of_range == "clamp":
            assert np.all(depth[near] == low) and np.all(depth[far] == high)
        else:
            assert np.all(np.isnan(depth[near | far]))
        # The cloud holds exactly the points of finite published depths: all of them when clamped.
        xyz = pointcloud_to_xyz(harness.got["points"][0])
        assert len(xyz) == (depth.size if out_of_range == "clamp" else int(inside.sum()))
        np.testing.assert_array_equal(np.sort(xyz[:, 2]), np.sort(depth[np.isfinite(depth)]))
    finally:
        harness.close()


def test_a_yuyv_usb_camera_gives_the_depth_of_the_same_image_in_rgb8(context, linear_model):
    harness = Harness(context, {"model": str(linear_model)})
    try:
        intr = Intrinsics(40.0, 40.0, 31.5, 15.5, NET_W, NET_H)
        rgb = smooth_rgb(NET_H, NET_W)  # red spans 0..255: the depth spans the model's range
        rgb8, info = camera_messages(rgb, intr, 7_000_000_000)
        yuyv, _ = camera_messages(rgb, intr, 8_000_000_000)
        yuyv.encoding, yuyv.step = "yuv422_yuy2", 2 * NET_W
        yuyv.data = array.array("B", rgb_to_yuv422(rgb, "yuv422_yuy2").tobytes())  # the test's own BT.601
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        harness.publish(image=rgb8)
        harness.wait_outputs("depth/image", 1)
        harness.publish(image=yuyv)
        harness.wait_outputs("depth/image", 2)
        assert [stamp_of(m) for m in harness.got["depth/image"]] == [7_000_000_000, 8_000_000_000]
        from_rgb8, from_yuyv = _depth(harness, 0), _depth(harness, 1)
        np.testing.assert_array_equal(
            from_rgb8, expected_network_depth(rgb, intr.fx, train_focal=TRAIN_FOCAL)
        )
        # Depth = (2 + 8 R/255) * fx / f_train: allow 3 levels of red (4:2:2 chroma, rounding), 0.075 m here.
        red_levels = np.abs(from_yuyv - from_rgb8) / (8.0 / 255.0 * intr.fx / TRAIN_FOCAL)
        assert red_levels.max() <= 3.0 + 1e-4  # float32 depth
        assert from_rgb8.max() - from_rgb8.min() > 5.0  # a swapped channel would show
        assert harness.node.rejected == 0 and harness.node.errors == 0
    finally:
        harness.close()


def test_out_of_range_words_that_yaml_reads_as_numbers_are_accepted():
    """`-p out_of_range:=inf` reaches the node as a double; it means the word."""
    assert check_value("out_of_range", math.inf) == "inf" and check_value("out_of_range", math.nan) == "nan"
    assert descriptor("out_of_range", PARAMETERS["out_of_range"]).dynamic_typing
    with pytest.raises(NodeParamError, match=r"expected one of \['inf', 'clamp', 'nan'\], got '-inf'"):
        check_value("out_of_range", -math.inf)
    with pytest.raises(NodeParamError, match="expected a str, got 5.0"):
        check_value("mode", 5.0)


# ------------------------------------------------------------------------------------ latency first


@pytest.mark.slow
def test_input_faster_than_inference_is_dropped_and_counted_and_latency_stays_bounded(
    context, tmp_path, write_depthnet_checkpoint
):
    # A real DepthNet on torch, 1 thread: tens of milliseconds per frame, far slower than 200 Hz input.
    model = write_depthnet_checkpoint(tmp_path / "net.pt", 128, 64)
    params = {
        "model": str(model),
        "backend": "torch",
        "device": "cpu",
        "threads": 1,
        "diagnostics.period": 0.2,
    }
    harness = Harness(context, params)
    try:
        intr = Intrinsics(70.0, 70.0, 63.5, 31.5, 128, 64)
        image, info = camera_messages(random_rgb(64, 128), intr, 0)
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        clock = harness.tester.get_clock()
        sent = 0
        start = time.monotonic()
        while time.monotonic() - start < 2.5:
            image.header.stamp = clock.now().to_msg()
            harness.publish(image=image)
            sent += 1
            harness.executor.spin_once(timeout_sec=0.0)
            deadline = time.monotonic() + 0.005
            while time.monotonic() < deadline:  # 200 Hz, delivering callbacks meanwhile
                harness.executor.spin_once(timeout_sec=0.001)
        node = harness.node
        harness.spin_until(lambda: node.wait_idle(0.0) and len(harness.got["depth/image"]) == node.published)
        assert node.dropped > 0.5 * node.received, (node.dropped, node.received, sent)
        assert node.published + node.dropped == node.received and node.rejected == 0 and node.errors == 0
        assert node.received >= 0.5 * sent  # best effort may lose some on the way, not most
        # Latency (stamp -> depth received here) stays about one inference: no backlog builds up, although
        # 200 Hz for 2.5 s queued would be seconds of work.
        processing = max(node.stats.processing.values())
        stamps = np.array([stamp_of(m) * 1e-9 for m in harness.got["depth/image"]])
        latencies = np.array(harness.arrival["depth/image"]) - stamps
        assert len(latencies) == node.published >= 10
        assert latencies.max() < 3 * processing + 0.25, (latencies.max(), processing)
        assert np.median(latencies[-5:]) < 3 * processing + 0.25
        assert sent * 0.02 > 1.0  # the same frames processed one after another would take > 1 s of backlog
        harness.spin_until(lambda: len(harness.got["/diagnostics"]) >= 1)
        harness.spin_for(0.3)
        values = status_values(harness.got["/diagnostics"][-1], "depth_node: depth")
        assert int(values["frames_dropped"]) == node.dropped > 0
        assert float(values["latency_p95_ms"]) < 1e3 * (3 * processing + 0.25)
        assert values["backend"] == "torch"
    finally:
        harness.close()


# ------------------------------------------------------------------------------------ run-time parameters


def test_cheap_parameters_change_at_run_time_and_bad_values_are_refused_with_a_reason(context, linear_model):
    harness = Harness(context, {"model": str(linear_model), "points.decimation": 1})
    try:
        node = harness.node
        intr = Intrinsics(40.0, 40.0, 31.5, 15.5, NET_W, NET_H)
        image, info = camera_messages(random_rgb(NET_H, NET_W), intr, 1)
        harness.publish(camera_info=info)
        harness.spin_for(0.1)

        def frame(index: int):
            image.header.stamp.nanosec = index
            harness.publish(image=image)
            harness.wait_outputs("depth/image", index)
            harness.wait_outputs("points", index)
            return harness.got["points"][index - 1]

        assert frame(1).width == NET_W * NET_H
        results = node.set_parameters(
            [Parameter("points.decimation", value=4), Parameter("points.max_range", value=5)]
        )
        assert all(r.successful for r in results)
        assert node.settings.points.max_range == 5.0
        cloud = frame(2)
        xyz = pointcloud_to_xyz(cloud)
        assert 0 < cloud.width <= (NET_W // 4) * (NET_H // 4) and np.linalg.norm(xyz, axis=1).max() <= 5.0

        assert node.set_parameters([Parameter("points.color", value=False)])[0].successful
        assert [f.name for f in frame(3).fields] == ["x", "y", "z"]
        harness.wait_outputs("depth/color/image", 3)
        assert node.set_parameters([Parameter("color_image.enabled", value=False)])[0].successful
        frame(4)
        harness.spin_for(0.2)
        assert len(harness.got["depth/color/image"]) == 3

        # Refusals come from rclpy's descriptor checks (type, integer range, read-only) or from the node's
        # own check; either way with a reason.
        refused = [
            ("points.decimation", 0, "points.decimation out of range"),
            ("points.decimation", 65, "points.decimation out of range"),
            ("points.max_range", -2.0, "parameter 'points.max_range': expected >= 0, got -2.0"),
            ("points.max_range", "far", "parameter 'points.max_range': expected a number, got 'far'"),
            ("points.enabled", "yes", "Wrong parameter type"),
            ("mode", "stereo", "read-only parameter: mode"),
            ("model", "/other.onnx", "read-only parameter: model"),
        ]
        for name, value, reason in refused:
            result = node.set_parameters([Parameter(name, value=value)])[0]
            assert not result.successful and reason in result.reason, (name, value, result)
        # A batch with one bad value changes nothing.
        result = node.set_parameters_atomically(
            [Parameter("points.decimation", value=2), Parameter("points.max_range", value=math.nan)]
        )
        assert not result.successful and "finite" in result.reason
        assert node.settings.points.decimation == 4 and node.get_parameter("points.decimation").value == 4
    finally:
        harness.close()


# ------------------------------------------------------------------------------------ start-up failures


def test_start_up_errors_raise_a_clear_error(context, linear_model, tmp_path):
    from fg_depth_ros.pipeline import ModelLoadError

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not an onnx model\xff" * 10)
    cases = [
        ({"model": str(tmp_path / "missing.onnx")}, ModelLoadError, r"missing.onnx: model file not found"),
        ({"model": str(corrupt)}, ModelLoadError, r"corrupt.onnx.*not a readable ONNX model"),
        ({"model": str(tmp_path / "x.txt")}, ModelLoadError, r"x.txt"),
        ({}, NodeParamError, r"parameter 'model': no model given"),
        (
            {"model": str(linear_model), "mode": "triple"},
            NodeParamError,
            r"parameter 'mode': expected one of",
        ),
        ({"model": str(linear_model), "scale_source": "stereo"}, NodeParamError, r"needs mode 'stereo'"),
        ({"model": str(linear_model), "points.decimation": 0}, NodeParamError, r"points.decimation"),
        ({"model": str(linear_model), "min_depth": 50.0, "max_depth": 5.0}, NodeParamError, r"min < max"),
        ({"model": str(linear_model), "min_depth": 200.0}, NodeParamError, r"depth range 200..100 m"),
    ]
    for params, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            DepthNode(parameters=params, context=context)


def test_main_returns_1_with_the_reason_and_no_traceback_for_a_missing_model(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nowhere" / "depthnet.onnx"
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    assert main(["depth_node", "--ros-args", "-p", f"model:={missing}"]) == 1
    err = capsys.readouterr().err
    assert f"[depth_node] error: cannot use the model (parameter 'model' = {missing})" in err
    assert "model file not found" in err and "Traceback" not in err


@pytest.mark.slow
def test_the_module_runs_as_a_program_and_exits_1_for_a_corrupt_model(tmp_path):
    corrupt = tmp_path / "broken.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "fg_depth_ros.depth_node", "--ros-args", "-p", f"model:={corrupt}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"[depth_node] error: cannot use the model (parameter 'model' = {corrupt})" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------ ROS-free pieces


def test_without_a_subscriber_frames_are_not_inferred_until_one_appears(context, linear_model):
    node = DepthNode(parameters={"model": str(linear_model), "diagnostics.period": 0.1}, context=context)
    camera = Node("camera", context=context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_image = camera.create_publisher(Image, "image", qos)
    pub_info = camera.create_publisher(CameraInfo, "camera_info", qos)
    statuses = []
    camera.create_subscription(DiagnosticArray, "/diagnostics", statuses.append, 10)
    executor = SingleThreadedExecutor(context=context)
    for n in (node, camera):
        executor.add_node(n)

    def spin_until(condition, what):
        deadline = time.monotonic() + 15.0
        while not condition():
            assert time.monotonic() < deadline, what
            executor.spin_once(timeout_sec=0.01)

    intr = Intrinsics(50.0, 50.0, (NET_W - 1) / 2, (NET_H - 1) / 2, NET_W, NET_H)
    try:
        spin_until(lambda: pub_image.get_subscription_count() > 0, "matching")
        for i in range(3):
            image, info = camera_messages(random_rgb(NET_H, NET_W, i), intr, (i + 1) * 10**9)
            pub_info.publish(info)
            pub_image.publish(image)
        spin_until(lambda: node.stats.unwanted == 3, "three unwanted frames")
        assert node.received == 0 and node.published == 0  # the model never ran
        spin_until(lambda: any("idle: no subscriber" in m.status[0].message for m in statuses), "idle status")
        depths = []
        camera.create_subscription(Image, "depth/image", depths.append, qos)
        spin_until(lambda: node.outputs.depth.get_subscription_count() > 0, "output matching")
        image, info = camera_messages(random_rgb(NET_H, NET_W, 7), intr, 9 * 10**9)
        pub_info.publish(info)
        pub_image.publish(image)
        spin_until(lambda: len(depths) == 1, "the depth once someone listens")
        assert node.received == 1 and stamp_of(depths[0]) == 9 * 10**9
        assert node.diagnostic_values()["frames_without_subscribers"] == 3
    finally:
        executor.shutdown()
        camera.destroy_node()
        node.destroy_node()


def _png(rgb: np.ndarray, header) -> CompressedImage:
    """image_transport's compressed plugin's message of ``rgb`` (PNG: lossless)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return CompressedImage(header=header, format="rgb8; png compressed bgr8", data=data.tobytes())


def test_compressed_transport_reads_image_transport_s_compressed_topic(context, linear_model):
    params = {"model": str(linear_model), "transport": "compressed", "input_qos.reliability": "reliable"}
    params["input_qos.depth"] = 3
    harness = Harness(context, params, inputs=("image/compressed", "camera_info"))
    try:
        # The camera subscriptions carry the chosen QoS (history depth is local: not in discovery).
        for topic in ("image/compressed", "camera_info"):
            (endpoint,) = harness.tester.get_subscriptions_info_by_topic(topic)
            assert endpoint.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
        assert topic_qos(TOPIC["image"], harness.node.settings).depth == 3
        intr = Intrinsics(50.0, 50.0, (NET_W - 1) / 2, (NET_H - 1) / 2, NET_W, NET_H)
        rgb = random_rgb(NET_H, NET_W, 11)
        image, info = camera_messages(rgb, intr, 11 * 10**9)
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        harness.publish(image__compressed=_png(rgb, image.header))
        harness.wait_outputs("depth/image", 1)
        assert stamp_of(harness.got["depth/image"][0]) == 11 * 10**9
        np.testing.assert_array_equal(
            _depth(harness), expected_network_depth(rgb, 50.0, train_focal=TRAIN_FOCAL)
        )
        # A broken JPEG is a bad frame like any other: dropped with a warning naming the topic.
        harness.publish(image__compressed=CompressedImage(header=image.header, format="jpeg", data=b"junk"))
        harness.spin_until(lambda: harness.node.rejected == 1, what="the rejection")
        assert harness.node.last_problem.startswith("/image/compressed: CompressedImage data (4 bytes")
    finally:
        harness.close()


def test_stereo_compressed_transport_subscribes_to_both_compressed_images(context, linear_model):
    params = {"model": str(linear_model), "mode": "stereo", "transport": "compressed"}
    node = DepthNode(parameters=params, namespace="rig", context=context)
    try:
        assert node.input.topics == {
            "left/image_rect": "/rig/left/image_rect/compressed",
            "right/image_rect": "/rig/right/image_rect/compressed",
            "left/camera_info": "/rig/left/camera_info",
            "right/camera_info": "/rig/right/camera_info",
        }
        subscribed = dict(node.get_subscriber_names_and_types_by_node("depth_node", "/rig"))
        assert subscribed["/rig/left/image_rect/compressed"] == ["sensor_msgs/msg/CompressedImage"]
        assert subscribed["/rig/right/camera_info"] == ["sensor_msgs/msg/CameraInfo"]
    finally:
        node.destroy_node()


def camera_info_topic(image_topic: str) -> str:
    """Where image_transport (CameraPublisher / CameraSubscriber, getCameraInfoTopic) looks for an image
    topic's calibration: the image topic's last name replaced by ``camera_info``."""
    base = image_topic.rsplit("/", 1)[0] if "/" in image_topic else ""
    return f"{base}/camera_info" if base else "camera_info"


def test_every_published_image_has_its_camera_info_where_image_transport_looks(context, linear_model):
    images = [t.name for t in TOPICS if t.direction == "out" and t.msg_type is Image]
    assert images == ["depth/image", "depth/color/image"]
    assert {camera_info_topic(t) for t in images} == {"depth/camera_info", "depth/color/camera_info"}
    assert camera_info_topic("image") == "camera_info"
    assert camera_info_topic("left/image_rect") == "left/camera_info"
    harness = Harness(context, {"model": str(linear_model)})
    try:
        intr = Intrinsics(50.0, 50.0, (NET_W - 1) / 2, (NET_H - 1) / 2, NET_W, NET_H)
        image, info = camera_messages(random_rgb(NET_H, NET_W, 9), intr, 9_000_000_000)
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        harness.publish(image=image)
        for topic in images:
            harness.wait_outputs(topic, 1)
            harness.wait_outputs(camera_info_topic(topic), 1)
            picture, calibration = harness.got[topic][0], harness.got[camera_info_topic(topic)][0]
            # Paired as a camera subscriber pairs them: same stamp and frame, and the size of the image.
            assert stamp_of(picture) == stamp_of(calibration) == 9_000_000_000, topic
            assert picture.header.frame_id == calibration.header.frame_id, topic
            assert (calibration.width, calibration.height) == (picture.width, picture.height), topic
    finally:
        harness.close()


def test_topic_names_match_the_player_and_the_issue():
    assert MONO_INPUTS == play.MONO_TOPICS
    assert sorted(STEREO_INPUTS) == sorted(play.STEREO_TOPICS)


def test_scale_measurement_is_the_median_ratio_over_valid_pixels_in_range():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(2, 20, (40, 60)).astype(np.float32)
    stereo = predicted * 1.7
    stereo[:5] = predicted[:5] * 9.0  # outliers (bad matches) on 1/8 of the pixels
    stereo[5:10] = np.nan  # holes
    stereo[10:12] = 100.0  # beyond max_depth
    assert scale_measurement(stereo, predicted, 0.5, 60.0, 0.02) == pytest.approx(1.7, rel=1e-6)
    predicted[12:14] = np.nan
    assert scale_measurement(stereo, predicted, 0.5, 60.0, 0.02) == pytest.approx(1.7, rel=1e-6)
    sparse = np.full_like(stereo, np.nan)
    sparse[0, :10] = 3.0
    assert scale_measurement(sparse, predicted, 0.5, 60.0, 0.02) is None  # 10 of 2400 pixels < 2 %
    assert scale_measurement(sparse, predicted, 0.5, 60.0, 0.004) is not None
    with pytest.raises(ScaleError, match="same"):
        scale_measurement(stereo[:10], predicted, 0.5, 60.0, 0.02)


def test_scale_estimator_starts_at_the_first_measurement_then_averages_and_clamps():
    est = ScaleEstimator(ScaleSettings(ema=0.25, minimum=0.5, maximum=2.0))
    assert est.value == 1.0
    assert est.update(None) == 1.0 and est.rejected == 1 and est.measurements == 0
    assert est.update(1.6) == pytest.approx(1.6)
    assert est.update(1.2) == pytest.approx(0.75 * 1.6 + 0.25 * 1.2)
    assert est.update(math.nan) == pytest.approx(1.5) and est.rejected == 2
    for _ in range(50):
        est.update(5.0)
    assert est.value == 2.0 and est.last_measurement == 5.0
    for _ in range(50):
        est.update(0.1)
    assert est.value == 0.5
    with pytest.raises(ScaleError, match="scale.ema"):
        ScaleSettings(ema=0.0)
    with pytest.raises(ScaleError, match="min < max"):
        ScaleSettings(minimum=2.0, maximum=1.0)


def test_sgbm_search_range_fits_narrow_images():
    assert fit_num_disparities(96, 640) == 96
    assert fit_num_disparities(96, 192) == 80
    assert fit_num_disparities(96, 64) == 16
    with pytest.raises(ScaleError, match="multiple of 16"):
        fit_num_disparities(40, 640)


def test_parameter_table_checks_values_and_builds_descriptors():
    assert set(DYNAMIC) == {
        "points.enabled", "points.decimation", "points.max_range", "points.color", "points.organized",
        "color_image.enabled",
    }  # fmt: skip
    assert check_value("points.max_range", 5) == 5.0 and isinstance(check_value("points.max_range", 5), float)
    for name, value, pattern in [
        ("points.decimation", 0, ">= 1"),
        ("points.decimation", 2.0, "expected an integer"),
        ("points.enabled", 1, "expected a bool"),
        ("device", "gpu", "got 'gpu'"),
        ("backend", "tflite", "expected one of"),
        ("sync.slop", math.inf, "finite"),
        ("nonsense", 1, "not a depth_node parameter"),
    ]:
        with pytest.raises(NodeParamError, match=pattern):
            check_value(name, value)
    assert check_value("device", "cuda:1") == "cuda:1"
    defaults = {name: spec.default for name, spec in PARAMETERS.items()}
    assert check_settings({**defaults, "model": "m.onnx"}).model == "m.onnx"
    desc = descriptor("points.decimation", PARAMETERS["points.decimation"])
    assert not desc.read_only and desc.integer_range[0].from_value == 1 and desc.description
    desc = descriptor("mode", PARAMETERS["mode"])
    assert desc.read_only and "mono" in desc.additional_constraints
    assert descriptor("sync.slop", PARAMETERS["sync.slop"]).dynamic_typing


def test_rate_meter_and_latency_window():
    meter = RateMeter(window=2.0)
    for i in range(10):
        meter.tick(100.0 + 0.1 * i)
    assert meter.rate(101.0) == pytest.approx(5.0)
    assert meter.rate(103.5) == 0.0
    window = LatencyWindow(size=3)
    assert math.isnan(window.percentile_ms(50))
    for seconds in (0.5, 0.01, 0.02, 0.03):
        window.add(seconds)
    assert window.percentile_ms(50) == pytest.approx(20.0) and len(window) == 3


def test_newest_only_worker_drops_waiting_items_and_survives_errors():
    release, started = threading.Event(), threading.Event()
    seen, errors = [], []

    def process(item, submitted_at):
        if item == "bad":
            raise ValueError("bad item")
        started.set()
        release.wait(5)
        seen.append(item)

    worker = NewestOnlyWorker("test", process, errors.append)
    try:
        worker.submit("bad")
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.submit(1)  # taken at once, blocks in process
        assert started.wait(5)
        for item in (2, 3, 4):
            worker.submit(item)
        release.set()
        while not worker.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [1, 4] and worker.dropped == 2 and worker.submitted == 5 and worker.processed == 3
        assert [str(e) for e in errors] == ["bad item"]
    finally:
        assert worker.stop()
