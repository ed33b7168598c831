"""Published rectified stereo calibrations and the built-in world rendered through them (shared by
test/core/test_real_calibrations.py and test/ros/test_node_real_calibrations.py).

Each calibration is the pair of rectified 3x4 projection matrices as published, at its native image size.
:func:`render_through` scales them to a small test image (the pixel-centre rule of
fg_depth_core.camera.Intrinsics.resized, applied to the whole P) and renders a street of the built-in world
with the left camera of the left P and the right camera of the right P: its own intrinsics (so its own cx,
the disparity offset) and its offset from the left camera, t_l - t_r with t = K^-1 P[:, 3] (baseline, and
the vertical and depth residuals). The ground truth stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.data.render import render_stereo
from fg_depth_core.data.world import street_scene, street_sky


@dataclass(frozen=True)
class Calibration:
    """A published rectified pair: P of the left and the right camera (3,4) for width x height images."""

    name: str
    p_left: np.ndarray
    p_right: np.ndarray
    width: int
    height: int

    def scaled(self, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """Both P for the images resized to ``width`` x ``height``: S @ P with S mapping a pixel centre x to
        (x + 0.5) * s - 0.5 (so K scales like Intrinsics.resized and t = K^-1 P[:, 3] stays)."""
        sx, sy = width / self.width, height / self.height
        s = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return s @ self.p_left, s @ self.p_right


def _p(k: Tuple[float, float, float, float], t: Tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """P = K [I | t] for K = (fx, fy, cx, cy) and t in metres."""
    fx, fy, cx, cy = k
    kk = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return np.hstack([kk, kk @ np.reshape(t, (3, 1))])


CALIBRATIONS: Dict[str, Calibration] = {
    # KITTI raw, recording date 2011_09_26, calib_cam_to_cam.txt: P_rect_02 (left colour camera) and
    # P_rect_03 (right colour camera), S_rect_02 = 1242 x 375 (Geiger et al., "Vision meets Robotics: The
    # KITTI Dataset", IJRR 2013; www.cvlibs.net/datasets/kitti/raw_data.php). The left camera has Tx != 0,
    # and both carry a small vertical and depth offset.
    "kitti_2011_09_26": Calibration(
        "kitti_2011_09_26",
        np.array(
            [
                [7.215377e02, 0.0, 6.095593e02, 4.485728e01],
                [0.0, 7.215377e02, 1.728540e02, 2.163791e-01],
                [0.0, 0.0, 1.0, 2.745884e-03],
            ]
        ),
        np.array(
            [
                [7.215377e02, 0.0, 6.095593e02, -3.395242e02],
                [0.0, 7.215377e02, 1.728540e02, 2.199936e00],
                [0.0, 0.0, 1.0, 2.729905e-03],
            ]
        ),
        1242,
        375,
    ),
    # EuRoC MAV, Vicon room 1 (V1_01_easy), cam0 / cam1 at 752 x 480: the rectified P of their CameraInfo
    # (OpenCV stereo rectification of the published sensor.yaml calibration, one K for both views; Burri et
    # al., "The EuRoC micro aerial vehicle datasets", IJRR 2016). The raw K, plumb_bob D and R are EUROC_RAW.
    "euroc_v1": Calibration(
        "euroc_v1",
        np.array(
            [
                [436.24429564709413, 0.0, 364.44123458862305, 0.0],
                [0.0, 436.24429564709413, 256.95167541503906, 0.0],
                [0.0, 0.0, 1.0, 0.0],
            ]
        ),
        np.array(
            [
                [436.24429564709413, 0.0, 364.44123458862305, -48.0208307332968],
                [0.0, 436.24429564709413, 256.95167541503906, 0.0],
                [0.0, 0.0, 1.0, 0.0],
            ]
        ),
        752,
        480,
    ),
    # Middlebury Stereo 2014, scene Motorcycle, calib.txt: cam0 = [3979.911 0 1244.772; 0 3979.911 1019.507;
    # 0 0 1], cam1 = [3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1], doffs = 124.343 (= cx1 - cx0),
    # baseline = 193.001 mm, 2964 x 2000 (Scharstein et al., GCPR 2014; vision.middlebury.edu/stereo/data/
    # scenes2014). Z = baseline * f / (d + doffs).
    "middlebury_motorcycle": Calibration(
        "middlebury_motorcycle",
        _p((3979.911, 3979.911, 1244.772, 1019.507)),
        _p((3979.911, 3979.911, 1369.115, 1019.507), (-0.193001, 0.0, 0.0)),
        2964,
        2000,
    ),
    # A ZED 2-style rectified HD720 pair as its ROS wrapper publishes it: one K for both views, right
    # P[0,3] = -fx * B with the 120 mm baseline Stereolabs specifies; focal length and principal point are
    # typical values of a factory calibration at 1280 x 720, not one particular unit's.
    "zed2_hd720": Calibration(
        "zed2_hd720",
        _p((527.2, 527.2, 641.3, 359.6)),
        _p((527.2, 527.2, 641.3, 359.6), (-0.12, 0.0, 0.0)),
        1280,
        720,
    ),
}

#: EuRoC V1_01 cam0 / cam1 raw calibration of the same CameraInfo (752 x 480): K, plumb_bob D, rectifying R.
EUROC_RAW = {
    "left": {
        "k": np.array([[458.654, 0.0, 367.215], [0.0, 457.296, 248.375], [0.0, 0.0, 1.0]]),
        "d": np.array([-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05, 0.0]),
        "r": np.array(
            [
                [0.9999663475300326, -0.001422739138721599, 0.008079580483489151],
                [0.0013657418346424666, 0.9999741760894848, 0.007055629199250527],
                [-0.008089410156935827, -0.007044357138828136, 0.9999424675829173],
            ]
        ),
    },
    "right": {
        "k": np.array([[457.587, 0.0, 379.999], [0.0, 456.134, 255.238], [0.0, 0.0, 1.0]]),
        "d": np.array([-0.28368365, 0.07451284, -0.00010473, -3.555907e-05, 0.0]),
        "r": np.array(
            [
                [0.9999633526194371, -0.0036258118715555435, 0.007755443660230135],
                [0.00368039854725533, 0.999968475277163, -0.0070358452512171675],
                [-0.007729688520779978, 0.007064130529499098, 0.9999451734846436],
            ]
        ),
    },
}

#: Test images are this wide; the height keeps the calibration's aspect (rounded to a multiple of 8).
TEST_WIDTH = 320
#: The world is rendered at the stereo range of the built-in world's test camera (f * B = 60 px m, as in
#: test/bag_helpers.WORLD): a rig with another f * B sees the world scaled by (its f * B) / 60, the same
#: pictures with every distance scaled, so that every calibration gets disparities of 1-60 px.
WORLD_FB = 60.0
#: The street the tests look at (a seed of fg_depth_core.data.world.street_scene).
SCENE_SEED = 4


def image_size(calib: Calibration, width: int = TEST_WIDTH) -> Tuple[int, int]:
    """(width, height) of the test images of ``calib``."""
    return width, max(8, int(round(width * calib.height / calib.width / 8.0)) * 8)


@dataclass
class RigFrame:
    """A pair rendered through a calibration at the test size.

    left, right: (H,W,3) uint8. depth: (H,W) float32 metres of the left view (inf: sky). disparity: (H,W)
    float32 image disparity x_l - x_r (pixels). p_left, p_right: the calibration's P at this size. rig: the
    StereoRig of those P. world_scale: how much larger than the built-in world the scene is.
    """

    left: np.ndarray
    right: np.ndarray
    depth: np.ndarray
    disparity: np.ndarray
    depth_right: np.ndarray
    p_left: np.ndarray
    p_right: np.ndarray
    rig: StereoRig
    world_scale: float


def render_through(calib: Calibration, width: int = TEST_WIDTH, seed: int = SCENE_SEED) -> RigFrame:
    """The built-in world's street ``seed`` seen through ``calib`` at ``image_size(calib, width)``."""
    w, h = image_size(calib, width)
    p_left, p_right = calib.scaled(w, h)
    k_left = Intrinsics.from_matrix(p_left, w, h)
    k_right = Intrinsics.from_matrix(p_right, w, h)
    offset = np.linalg.solve(p_left[:, :3], p_left[:, 3]) - np.linalg.solve(p_right[:, :3], p_right[:, 3])
    # Distances scale by s: render the world with the rig's offsets divided by s, then scale depth back.
    scale = k_left.fx * offset[0] / WORLD_FB
    frame = render_stereo(
        street_scene(seed),
        k_left,
        offset[0] / scale,
        right_gain=1.0,
        sky=street_sky(seed),
        seed=0,
        antialias=True,
        right_intrinsics=k_right,
        right_offset=(offset[1] / scale, offset[2] / scale),
    )
    return RigFrame(
        frame.left,
        frame.right,
        frame.depth_left * np.float32(scale),
        frame.disparity_left,
        frame.depth_right * np.float32(scale),
        p_left,
        p_right,
        StereoRig.from_projections(p_left, p_right, w, h),
        float(scale),
    )


def visible_core(frame: RigFrame, radius: int = 3) -> np.ndarray:
    """(H,W) True where the left pixel's surface point is what the right view shows at x - d (not occluded),
    inside both images and at least ``radius`` pixels from a disparity edge: where a matcher can be exact."""
    import cv2

    h, w = frame.disparity.shape
    xr = np.round(np.arange(w)[None] - frame.disparity).astype(int)
    inside = (xr >= 0) & (xr <= w - 1) & np.isfinite(frame.depth)
    # Depth of the right camera is z - tz: within 1 % of the left's where both see the same point.
    seen = frame.depth_right[np.arange(h)[:, None], np.clip(xr, 0, w - 1)]
    with np.errstate(invalid="ignore"):
        visible = inside & (np.abs(seen - frame.depth) < 0.01 * frame.depth)
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= np.abs(np.diff(frame.disparity, axis=1)) > 0.5
    edge[1:, :] |= np.abs(np.diff(frame.disparity, axis=0)) > 0.5
    size = 2 * radius + 1
    near_edge = cv2.dilate(edge.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    return visible & ~near_edge
