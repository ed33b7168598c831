"""depth_node on raw cameras (``rectified: false``): distorted images, undistorted (mono) or rectified
(stereo) from camera_info, give the depth and cloud of the undistorted scene, and the published camera_info
describes the published image.

The scene is a tilted plane whose true depth Z(u, v) in the rectified view is known exactly. The test image
encodes that depth in its red channel for the known-output model of depth_node_helpers (depth = 2 + 8 R,
times the focal factor, with f_train chosen so that it is 1): the node's depth is the true depth exactly where
its undistortion is right. Raw images are made from the rectified one by the lens model itself (OpenCV's
undistortPoints / fisheye.undistortPoints of every raw pixel), independently of the code under test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bag_helpers import default_cameras
from depth_node_helpers import Harness, stamp_of, write_linear_model
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from fg_depth_ros.conversions import image_to_depth, pointcloud_to_xyz, rgb_to_image

W, H = 192, 120
NET_W, NET_H = 64, 40
#: Pixels at the border left out of the comparison (bilinear resampling and area downsampling spread there).
BORDER = 6
#: Metres. Undistorted right, the error is the two resamplings' and the red channel's 8-bit steps (measured:
#: median 0.005, 95th percentile 0.013 m); the raw image taken as rectified errs by 0.046-0.18 m (median).
MEDIAN_ERROR, P95_ERROR, NAIVE_ERROR = 0.015, 0.05, 0.03

# Lenses with published coefficients (distortion is in normalised coordinates, so it holds at any scale):
# EuRoC MAV cam0 (Burri et al. 2016, sensor.yaml), plumb_bob, at a quarter of its 752x480 (intrinsics /4);
# a rational_polynomial lens of the same camera with k4..k6 as OpenCV's 8-coefficient model allows; the
# Intel RealSense T265 fisheye (Kannala-Brandt, ROS "equidistant"): its coefficients, its focal at
# 848x800 / 4.4, and the principal point moved to the centre of this smaller, wider image.
EUROC_K = np.array([[458.654 / 4, 0, 367.215 / 4], [0, 457.296 / 4, 248.375 / 4], [0, 0, 1]])
EUROC_D = np.array([-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05, 0.0])
RATIONAL_D = np.array([-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05, 0.0, 0.05, -0.02, 0.01])
T265_K = np.array([[286.18 / 4.4, 0, (W - 1) / 2], [0, 286.28 / 4.4, (H - 1) / 2], [0, 0, 1]])
T265_D = np.array([-0.00626, 0.04201, -0.03929, 0.00675])
LENSES = {
    "plumb_bob": (EUROC_K, EUROC_D),
    "rational_polynomial": (EUROC_K, RATIONAL_D),
    "equidistant": (T265_K, T265_D),
}


def plane_depth() -> np.ndarray:
    """(H,W) true depth in metres of a tilted plane in the rectified view: 1/Z is affine in the pixel
    coordinates (so in the normalised ones, whatever P), depths 2.6-8.3 m."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    return (1.0 / (0.25 + 0.18 * (u / W - 0.5) + 0.08 * (v / H - 0.5))).astype(np.float32)


def depth_image(depth: np.ndarray, seed: int = 0) -> np.ndarray:
    """An RGB image whose red channel makes the linear model predict ``depth`` (2 + 8 R); G, B texture."""
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[:, :, 0] = np.clip(np.round((depth - 2.0) / 8.0 * 255.0), 0, 255).astype(np.uint8)
    return rgb


def raw_image(rectified: np.ndarray, model: str, k, d, r, p) -> np.ndarray:
    """The raw image of a camera (K, D, R) whose rectified view through P is ``rectified``."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([u.ravel(), v.ravel()], axis=1)[:, None]
    if model == "equidistant":
        rect = cv2.fisheye.undistortPoints(pts, k, d, R=r, P=p[:, :3])
    else:
        rect = cv2.undistortPoints(pts, k, d, R=r, P=p[:, :3])
    rect = rect.reshape(H, W, 2).astype(np.float32)
    return cv2.remap(rectified, rect[..., 0], rect[..., 1], cv2.INTER_LINEAR)


def new_projection(model: str, k, d) -> np.ndarray:
    """The rectified P a calibration tool would publish for a mono camera (no black borders)."""
    if model == "equidistant":
        new_k = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(k, d, (W, H), np.eye(3), balance=0.0)
    else:
        new_k = cv2.getOptimalNewCameraMatrix(k, d, (W, H), 0.0)[0]
    return np.hstack([new_k, np.zeros((3, 1))])


def camera_info(header: Header, model: str, k, d, r, p) -> CameraInfo:
    msg = CameraInfo(header=header, width=W, height=H, distortion_model=model)
    msg.d, msg.k, msg.r, msg.p = list(map(float, d)), k.ravel(), r.ravel(), p.ravel()
    return msg


def _model(tmp_path, p: np.ndarray):
    # f_train = the rectified camera's focal sqrt(fx * fy) at the network size (same aspect): the focal
    # factor is 1 (docs/METHOD.md, "Scale").
    focal = float(np.sqrt(p[0, 0] * p[1, 1])) * NET_W / W
    return write_linear_model(tmp_path / "linear.onnx", NET_W, NET_H, train_focal=focal)


def _interior(mask: np.ndarray) -> np.ndarray:
    keep = np.zeros_like(mask)
    keep[BORDER:-BORDER, BORDER:-BORDER] = mask[BORDER:-BORDER, BORDER:-BORDER]
    return keep


@pytest.mark.parametrize("model", sorted(LENSES))
def test_a_raw_mono_camera_gives_the_depth_and_cloud_of_the_undistorted_scene(context, tmp_path, model):
    k, d = LENSES[model]
    p = new_projection(model, k, d)
    truth = plane_depth()
    rectified = depth_image(truth)
    raw = raw_image(rectified, model, k, d, np.eye(3), p)
    # Without undistortion the model would see the distorted image: far from the truth (the test can fail).
    naive = 2.0 + 8.0 * raw[:, :, 0].astype(np.float32) / 255.0
    assert np.median(np.abs(naive - truth)[_interior(raw[:, :, 1] > 0)]) > NAIVE_ERROR

    params = {"model": str(_model(tmp_path, p)), "rectified": False, "out_of_range": "clamp"}
    params.update({"points.decimation": 1, "points.color": False})
    harness = Harness(context, params)
    try:
        header = Header(frame_id="raw_optical")
        header.stamp.sec = 3
        harness.publish(camera_info=camera_info(header, model, k, d, np.eye(3), p))
        harness.spin_for(0.1)
        harness.publish(image=rgb_to_image(raw, header))
        for topic in ("depth/image", "depth/camera_info", "points"):
            harness.wait_outputs(topic, 1)
        assert harness.node.rejected == 0, harness.node.last_problem
        depth = image_to_depth(harness.got["depth/image"][0])
        info = harness.got["depth/camera_info"][0]
        # The published calibration is the undistorted image's: K = P's, D = 0, R = I.
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), p[:, :3], rtol=1e-12)
        np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], p[:, :3], rtol=1e-12)
        assert not np.any(info.d) and np.allclose(np.reshape(info.r, (3, 3)), np.eye(3))
        assert depth.shape == (H, W) and stamp_of(harness.got["depth/image"][0]) == 3_000_000_000
        error = np.abs(depth - truth)[_interior(np.ones((H, W), bool))]
        assert np.median(error) < MEDIAN_ERROR and np.percentile(error, 95) < P95_ERROR, error.max()
        # The cloud: every pixel's point, row by row, against the true plane's points.
        xyz = pointcloud_to_xyz(harness.got["points"][0]).reshape(H, W, 3)
        v, u = np.mgrid[0:H, 0:W]
        true_xyz = np.stack([(u - p[0, 2]) * truth / p[0, 0], (v - p[1, 2]) * truth / p[1, 1], truth], -1)
        distance = np.linalg.norm(xyz - true_xyz, axis=-1)[_interior(np.ones((H, W), bool))]
        assert np.median(distance) < MEDIAN_ERROR, np.median(distance)
    finally:
        harness.close()


def test_a_raw_stereo_pair_is_rectified_with_each_cameras_rotation(context, tmp_path):
    """EuRoC-like raw stereo (bag_helpers.default_cameras: barrel distortion, rotations of ~0.5 degree)."""
    cams = default_cameras()
    f, cx, cy = 200.0 * W / 320, (W - 1) / 2, (H - 1) / 2
    p_left = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]])
    p_right = p_left.copy()
    p_right[0, 3] = -f * 0.3
    scale = np.diag([W / 320, H / 192, 1.0])  # the helper cameras are calibrated at 320x192
    truth = plane_depth()
    raws, infos = [], []
    header = Header(frame_id="left_optical")
    header.stamp.sec = 4
    for side, p, seed in (("left", p_left, 0), ("right", p_right, 1)):
        cam = cams[side]
        k = scale @ cam.k
        raws.append(raw_image(depth_image(truth, seed), "plumb_bob", k, cam.d, cam.r, p))
        infos.append(camera_info(header, "plumb_bob", k, cam.d, cam.r, p))
    params = {"model": str(_model(tmp_path, p_left)), "mode": "stereo", "rectified": False}
    inputs = ("left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info")
    harness = Harness(context, params, inputs=inputs)
    try:
        harness.publish(
            left__camera_info=infos[0], right__camera_info=infos[1],
            left__image_rect=rgb_to_image(raws[0], header), right__image_rect=rgb_to_image(raws[1], header),
        )  # fmt: skip
        for topic in ("depth/image", "disparity"):
            harness.wait_outputs(topic, 1)
        assert harness.node.rejected == 0, harness.node.last_problem
        depth = image_to_depth(harness.got["depth/image"][0])
        error = np.abs(depth - truth)[_interior(np.ones((H, W), bool))]
        assert np.median(error) < MEDIAN_ERROR and np.percentile(error, 95) < P95_ERROR, error.max()
        assert harness.got["disparity"][0].t == pytest.approx(0.3)
        # The same pair taken as rectified (R ignored, no undistortion) misses the truth.
        naive = 2.0 + 8.0 * raws[0][:, :, 0].astype(np.float32) / 255.0
        assert np.median(np.abs(naive - truth)[_interior(raws[0][:, :, 1] > 0)]) > NAIVE_ERROR
    finally:
        harness.close()


def test_an_unknown_distortion_model_drops_the_frame_with_a_warning_naming_it(context, tmp_path):
    p = new_projection("plumb_bob", EUROC_K, EUROC_D)
    harness = Harness(context, {"model": str(_model(tmp_path, p)), "rectified": False})
    try:
        header = Header(frame_id="raw_optical")
        harness.publish(camera_info=camera_info(header, "kannala_brandt8", EUROC_K, EUROC_D, np.eye(3), p))
        harness.spin_for(0.1)
        harness.publish(image=rgb_to_image(depth_image(plane_depth()), header))
        harness.spin_until(lambda: harness.node.rejected == 1, what="the rejection")
        assert "/camera_info: camera_info distortion_model 'kannala_brandt8' is not supported" in (
            harness.node.last_problem
        )
        assert "plumb_bob, rational_polynomial, equidistant" in harness.node.last_problem
    finally:
        harness.close()
