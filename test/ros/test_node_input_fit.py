"""depth_node's input_fit on real rclpy: a 4:3 camera into a 2:1 network under stretch, crop and pad. The
published depth, camera_info, cloud (points and colours) and disparity describe the same pixels; the aspect
warning is logged once, not per frame; an unknown mode is refused at start-up."""

from __future__ import annotations

import numpy as np
import pytest
from depth_node_helpers import Harness, camera_messages, random_rgb, write_linear_model

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.deploy.estimator import DepthEstimator
from fg_depth_ros.conversions import image_to_depth, pointcloud_to_rgb, pointcloud_to_xyz
from fg_depth_ros.depth_node import DepthNode
from fg_depth_ros.node_params import PARAMETERS, NodeParamError, check_value
from fg_depth_ros.pipeline import CameraFrame, DepthResult, limit_depth, output_frame

NET_W, NET_H = 64, 32
TRAIN_FOCAL = 50.0
#: 4:3, square pixels: crop and pad see it undistorted; stretch widens it 1.5x.
CAMERA = Intrinsics(100.0, 100.0, 79.5, 59.5, 160, 120)
# By hand (test_input_fit.py has the derivations): the published size and K at output_resolution "input".
PUBLISHED = {
    "stretch": ((160, 120), (100.0, 100.0, 79.5, 59.5)),
    "crop": ((160, 80), (100.0, 100.0, 79.5, 39.5)),  # rows 20..99
    "pad": ((160, 120), (100.0, 100.0, 79.5, 59.5)),
}


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory):
    return write_linear_model(tmp_path_factory.mktemp("model") / "linear.onnx", NET_W, NET_H)


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
def test_a_4_3_camera_gives_depth_info_and_cloud_of_one_field_of_view_and_warns_once(
    context, linear_model, mode, capfd
):
    harness = Harness(
        context, {"model": str(linear_model), "input_fit": mode, "points.decimation": 1}
    )
    try:
        assert harness.node.settings.input_fit == mode and harness.node.estimator.input_fit == mode
        frames = 3
        rgbs = [random_rgb(120, 160, seed) for seed in range(frames)]
        _, info = camera_messages(rgbs[0], CAMERA, 1)
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        for i, rgb in enumerate(rgbs):
            image, _ = camera_messages(rgb, CAMERA, 1_000 + i)
            harness.publish(image=image)
            for topic in ("depth/image", "depth/camera_info", "points"):
                harness.wait_outputs(topic, i + 1)
        (width, height), (fx, fy, cx, cy) = PUBLISHED[mode]
        reference = DepthEstimator(linear_model, "onnxruntime", "cpu", input_fit=mode)
        for i, rgb in enumerate(rgbs):
            depth = image_to_depth(harness.got["depth/image"][i])
            info_msg = harness.got["depth/camera_info"][i]
            assert depth.shape == (height, width) and (info_msg.width, info_msg.height) == (width, height)
            k = np.reshape(info_msg.k, (3, 3))
            np.testing.assert_allclose(k, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], rtol=1e-12)
            np.testing.assert_allclose(np.reshape(info_msg.p, (3, 4))[:, :3], k, rtol=1e-12)
            expected = limit_depth(reference.predict(rgb, CAMERA), 0.1, 100.0, "clamp")
            np.testing.assert_allclose(depth, expected, rtol=1e-5)
            # The cloud: every pixel back-projected through the published K, coloured by the camera pixel
            # the depth shows (under crop: rows 20.. of the image, not a squeezed whole image).
            cloud = harness.got["points"][i]
            v, u = np.mgrid[0:height, 0:width].astype(np.float32)
            xyz = pointcloud_to_xyz(cloud)
            assert xyz.shape == (width * height, 3)
            np.testing.assert_allclose(xyz[:, 0], ((u - cx) * depth / fx).ravel(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(xyz[:, 1], ((v - cy) * depth / fy).ravel(), rtol=1e-5, atol=1e-5)
            seen = rgb[20:100] if mode == "crop" else rgb
            np.testing.assert_array_equal(pointcloud_to_rgb(cloud), seen.reshape(-1, 3))
        assert harness.node.published == frames and harness.node.rejected == 0
    finally:
        harness.close()
    logged = capfd.readouterr().err
    if mode == "stretch":
        # 4:3 widened to 2:1 = 1.5x, over the 10 % bound: one warning for three frames.
        assert len(harness.node.notes) == 1
        note = harness.node.notes[0]
        assert "input_fit 'stretch': the network sees this 160x120 camera 1.50x wider" in note
        assert logged.count("the network sees this 160x120 camera") == 1, logged
    else:
        assert harness.node.notes == [] and "the network sees this" not in logged


def test_stereo_crop_publishes_disparity_for_the_window(context, linear_model):
    harness = Harness(
        context,
        {"model": str(linear_model), "mode": "stereo", "input_fit": "crop"},
        inputs=("left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info"),
    )
    try:
        left, right = random_rgb(120, 160, 1), random_rgb(120, 160, 2)
        baseline = 0.2
        li, linfo = camera_messages(left, CAMERA, 5_000)
        ri, rinfo = camera_messages(right, CAMERA, 5_000, tx=-CAMERA.fx * baseline)
        harness.publish(left__camera_info=linfo, right__camera_info=rinfo)
        harness.publish(left__image_rect=li, right__image_rect=ri)
        for topic in ("depth/image", "depth/camera_info", "disparity"):
            harness.wait_outputs(topic, 1)
        depth = image_to_depth(harness.got["depth/image"][0])
        assert depth.shape == (80, 160)
        assert np.reshape(harness.got["depth/camera_info"][0].k, (3, 3))[1, 2] == pytest.approx(39.5)
        disparity = harness.got["disparity"][0]
        assert (disparity.image.width, disparity.image.height) == (160, 80)
        assert disparity.f == pytest.approx(100.0) and disparity.t == pytest.approx(baseline)
        np.testing.assert_allclose(image_to_depth(disparity.image), 100.0 * baseline / depth, rtol=1e-5)
    finally:
        harness.close()


def test_output_frame_is_the_window_of_both_views_and_their_intrinsics():
    left, right = random_rgb(120, 160, 3), random_rgb(120, 160, 4)
    frame = CameraFrame(left, CAMERA, right, StereoRig(CAMERA, 0.3, doffs=2.5))
    depth = np.ones((80, 160), np.float32)
    cropped = DepthResult(depth, CAMERA.cropped(0, 20, 160, 80), depth, 1.0, 0.0, (0, 20, 160, 80))
    view = output_frame(frame, cropped)
    np.testing.assert_array_equal(view.rgb, left[20:100])
    np.testing.assert_array_equal(view.right, right[20:100])
    assert view.intrinsics == Intrinsics(100.0, 100.0, 79.5, 39.5, 160, 80) and view.baseline == 0.3
    assert view.rig.intrinsics == view.intrinsics and view.rig.doffs == 2.5  # the rig cropped alike
    whole = DepthResult(depth, CAMERA, depth, 1.0, 0.0, (0, 0, 160, 120))
    assert output_frame(frame, whole) is frame
    assert output_frame(frame, DepthResult(depth, CAMERA, depth, 1.0, 0.0)) is frame  # no window: all


def test_input_fit_parameter_is_declared_from_the_config_and_refuses_unknown_modes(context, linear_model):
    spec = PARAMETERS["input_fit"]
    assert spec.default == "pad" and spec.spec.choices == ("stretch", "crop", "pad") and not spec.dynamic
    assert check_value("input_fit", "crop") == "crop"
    with pytest.raises(NodeParamError, match=r"parameter 'input_fit': expected one of .*got 'letterbox'"):
        check_value("input_fit", "letterbox")
    with pytest.raises(NodeParamError, match=r"parameter 'input_fit': expected one of"):
        DepthNode(parameters={"model": str(linear_model), "input_fit": "zoom"}, context=context)
