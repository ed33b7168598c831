"""fg_depth_ros.play on real rclpy topics: a tiny stereo folder played in stereo and mono, resized, looped,
timer-driven; the built-in world in memory; a KITTI drive; and start-up failures (missing dataset, bad
parameters) with a clear message and a non-zero exit status."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.config import SynthConfig
from fg_depth_core.data.base import DatasetError, RawPair
from fg_depth_core.data.folder import write_stereo_folder
from fg_depth_core.data.world import resize_synth, synth_intrinsics
from fg_depth_ros.conversions import image_to_rgb, stereo_rig_from_infos
from fg_depth_ros.play import DatasetPlayer, PlayError, main

ROOT = Path(__file__).resolve().parents[2]
W, H = 40, 24
RIG = StereoRig(Intrinsics(30.0, 31.0, 19.5, 11.25, W, H), 0.3)
NAMES = ["a", "b", "c"]
STEREO = ("left/image_rect", "left/camera_info", "right/image_rect", "right/camera_info")
DOMAIN = os.getpid() % 100 + 1


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A stereo folder of three random pairs (random pixels make any mix-up visible)."""
    root = tmp_path_factory.mktemp("stereo")
    rng = np.random.default_rng(0)
    pairs = [
        (
            name,
            RawPair(
                rng.integers(0, 256, (H, W, 3), np.uint8), rng.integers(0, 256, (H, W, 3), np.uint8), RIG
            ),
        )
        for name in NAMES
    ]
    write_stereo_folder(root, pairs)
    return root


def _png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture
def context():
    ctx = rclpy.Context()
    # A domain of its own: parallel test processes must not hear each other's topics.
    rclpy.init(context=ctx, domain_id=DOMAIN)
    yield ctx
    rclpy.shutdown(context=ctx)


class _Listener:
    """A node subscribed to ``topics``, collecting messages per topic, spun together with the player."""

    def __init__(self, context, player: DatasetPlayer, topics) -> None:
        self.node = Node("listener", context=context)
        self.player = player
        self.got: Dict[str, List] = defaultdict(list)
        for topic in topics:
            msg_type = CameraInfo if topic.endswith("camera_info") else Image
            self.node.create_subscription(msg_type, topic, lambda m, t=topic: self.got[t].append(m), 50)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(player)
        # Reliable delivery only starts once publisher and subscription have matched.
        self.spin_until(lambda: all(p.get_subscription_count() for p in player.publishers_by_topic.values()))

    def spin_until(self, condition, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, (
                f"timed out; received { ({k: len(v) for k, v in self.got.items()}) }"
            )
            self.executor.spin_once(timeout_sec=0.02)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.player.destroy_node()


def _play_all(listener: _Listener, frames: int) -> List[int]:
    published = []
    while (index := listener.player.publish_next()) is not None:
        published.append(index)
    listener.spin_until(
        lambda: all(len(listener.got[t]) >= frames for t in listener.player.publishers_by_topic)
    )
    return published


def test_stereo_frames_arrive_with_one_stamp_per_pair_rgb8_and_the_rig_in_camera_info(context, folder):
    player = DatasetPlayer(
        parameters={"dataset": "folder", "path": str(folder)}, autostart=False, context=context
    )
    listener = _Listener(context, player, STEREO)
    try:
        assert _play_all(listener, 3) == [0, 1, 2]
        assert player.done and player.publish_next() is None
        got = listener.got
        assert all(len(got[t]) == 3 for t in STEREO)
        stamps = []
        for i, name in enumerate(NAMES):
            left, right = got["left/image_rect"][i], got["right/image_rect"][i]
            linfo, rinfo = got["left/camera_info"][i], got["right/camera_info"][i]
            pair_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in (left, right, linfo, rinfo)}
            assert len(pair_stamps) == 1, "both views and infos of a pair share one stamp"
            stamps.append(pair_stamps.pop())
            assert left.header.frame_id == linfo.header.frame_id == "camera_optical_frame"
            assert right.header.frame_id == rinfo.header.frame_id == "camera_right_optical_frame"
            for image in (left, right):
                assert (image.encoding, image.width, image.height, image.step) == ("rgb8", W, H, 3 * W)
            np.testing.assert_array_equal(image_to_rgb(left), _png(folder / "left" / f"{name}.png"))
            np.testing.assert_array_equal(image_to_rgb(right), _png(folder / "right" / f"{name}.png"))
            k = RIG.intrinsics.matrix()
            for info, tx in ((linfo, 0.0), (rinfo, -30.0 * 0.3)):
                assert (info.width, info.height) == (W, H)
                np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), k)
                np.testing.assert_allclose(
                    np.reshape(info.p, (3, 4)), np.hstack((k, [[tx], [0], [0]])), rtol=1e-12
                )
                np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), np.eye(3))
                assert list(info.d) == [0.0] * 5
        assert len(set(stamps)) == 3 and stamps == sorted(stamps)
    finally:
        listener.close()


def test_mono_mode_resized_with_synthetic_clock_and_a_window_of_frames(context, folder):
    params = {
        "dataset": "folder",
        "path": str(folder),
        "mode": "mono",
        "width": 20,
        "height": 12,
        "start": 1,
        "count": 5,
        "clock": "synthetic",
        "rate": 4,
        "frame_id": "cam",
    }
    player = DatasetPlayer(parameters=params, autostart=False, context=context)
    listener = _Listener(context, player, ("image", "camera_info"))
    try:
        assert set(player.publishers_by_topic) == {"image", "camera_info"}
        assert _play_all(listener, 2) == [1, 2]  # count is clipped to the frames there are
        images, infos = listener.got["image"], listener.got["camera_info"]
        # frame_number / rate seconds: 0 s and 0.25 s.
        assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in images] == [(0, 0), (0, 250_000_000)]
        assert [m.header.frame_id for m in infos] == ["cam", "cam"]
        assert (images[0].width, images[0].height) == (20, 12)
        expected = cv2.resize(_png(folder / "left" / "b.png"), (20, 12), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(image_to_rgb(images[0]), expected)
        # Intrinsics scaled by the core rule (pixel centres), P's Tx 0 for a mono camera.
        k = RIG.intrinsics.resized(20, 12).matrix()
        np.testing.assert_allclose(
            np.reshape(infos[0].p, (3, 4)), np.hstack((k, np.zeros((3, 1)))), rtol=1e-12
        )
    finally:
        listener.close()


def test_loop_starts_again_and_never_finishes(context, folder):
    params = {"dataset": "folder", "path": str(folder), "loop": True, "start": 1}
    player = DatasetPlayer(parameters=params, autostart=False, context=context)
    try:
        assert [player.publish_next() for _ in range(5)] == [1, 2, 1, 2, 1]
        assert not player.done and player.published == 5
    finally:
        player.destroy_node()


def test_the_timer_plays_every_frame_at_the_rate_and_stops(context, folder):
    player = DatasetPlayer(
        parameters={"dataset": "folder", "path": str(folder), "rate": 20.0}, autostart=False, context=context
    )
    listener = _Listener(context, player, STEREO)
    try:
        # Start the timer only now that the listener is matched (autostart=True does this in __init__).
        player.timer = player.create_timer(1.0 / 20.0, player._tick)
        start = time.monotonic()
        listener.spin_until(lambda: player.done and len(listener.got["right/image_rect"]) == 3)
        elapsed = time.monotonic() - start
        assert player.published == 3 and player.timer.is_canceled()
        assert 0.1 <= elapsed < 5.0  # three ticks of 50 ms
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in listener.got["left/image_rect"]]
        assert all(0.02 < b - a < 1.0 for a, b in zip(stamps, stamps[1:]))
    finally:
        listener.close()


def test_the_built_in_world_plays_from_memory_at_the_chosen_size(context):
    params = {"dataset": "synth", "width": 48, "height": 16, "count": 2, "mode": "stereo"}
    player = DatasetPlayer(parameters=params, autostart=False, context=context)
    listener = _Listener(context, player, STEREO)
    try:
        assert _play_all(listener, 2) == [0, 1]
        info = listener.got["right/camera_info"][0]
        k = synth_intrinsics(resize_synth(SynthConfig(), 48, 16))
        assert (info.width, info.height) == (48, 16)
        np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], k.matrix())
        assert info.p[3] == pytest.approx(-k.fx * SynthConfig().baseline)
        assert image_to_rgb(listener.got["left/image_rect"][1]).std() > 0
    finally:
        listener.close()


def _kitti_drive(root: Path) -> Path:
    """A minimal KITTI raw tree: one date with P_rect_02/03 for 40x24 images, one drive of two frames."""
    from kitti_helpers import random_image, write_date, write_frame

    p2 = "30 0 19.5 6.0 0 30 11.5 0 0 0 1 0"
    p3 = "30 0 19.5 -10.2 0 30 11.5 0 0 0 1 0"  # baseline (6.0 + 10.2) / 30 = 0.54 m
    cam = f"P_rect_02: {p2}\nP_rect_03: {p3}\nR_rect_00: 1 0 0 0 1 0 0 0 1\nS_rect_02: {W} {H}\n"
    drive = write_date(root, "2011_09_26", cam=cam, velo="") / "2011_09_26_drive_0001_sync"
    for i in range(2):
        write_frame(drive, i, {2: random_image(2 * i, W, H), 3: random_image(2 * i + 1, W, H)})
    return drive


def test_a_kitti_drive_folder_plays_its_frames_with_the_calibrated_baseline(context, tmp_path):
    drive = _kitti_drive(tmp_path / "kitti")
    player = DatasetPlayer(
        parameters={"dataset": "kitti", "path": str(drive)}, autostart=False, context=context
    )
    listener = _Listener(context, player, STEREO)
    try:
        assert _play_all(listener, 2) == [0, 1]
        info = listener.got["right/camera_info"][1]
        assert info.p[3] == pytest.approx(-30 * 0.54)
        image = listener.got["right/image_rect"][1]
        np.testing.assert_array_equal(
            image_to_rgb(image), _png(drive / "image_03" / "data" / "0000000001.png")
        )
    finally:
        listener.close()


@pytest.mark.parametrize(
    "params, error, pattern",
    [
        (
            {"dataset": "folder", "path": "/no/such/folder"},
            DatasetError,
            r"/no/such/folder: stereo folder not found",
        ),
        ({"dataset": "folder"}, DatasetError, r"parameter 'path': the 'folder' dataset needs a path"),
        (
            {"dataset": "kitti", "path": "/no/kitti"},
            DatasetError,
            r"/no/kitti: KITTI raw root folder not found",
        ),
        (
            {"mode": "triple"},
            PlayError,
            r"parameter 'mode': expected one of \['mono', 'stereo'\], got 'triple'",
        ),
        ({"rate": 0.0}, PlayError, r"parameter 'rate': expected >= 0.001, got 0.0"),
        ({"rate": "fast"}, PlayError, r"parameter 'rate': expected a number, got 'fast'"),
        ({"width": 64}, PlayError, r"'width'/'height': set both or neither, got 64x0"),
        ({"width": -1, "height": 5}, PlayError, r"parameter 'width'"),
        ({"split": "holdout"}, PlayError, r"parameter 'split': expected one of"),
        ({"count": 2, "start": 40}, PlayError, r"parameter 'start': 40 is past the last frame \(40 frames\)"),
    ],
)
def test_bad_start_up_raises_a_clear_error(context, params, error, pattern):
    with pytest.raises(error, match=pattern):
        DatasetPlayer(parameters=params, autostart=False, context=context)


def test_folder_errors_name_the_file(context, folder, tmp_path):
    broken = tmp_path / "broken"
    (broken / "left").mkdir(parents=True)
    (broken / "calib.yaml").write_text((folder / "calib.yaml").read_text())
    cv2.imwrite(str(broken / "left" / "x.png"), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"x.png: no right partner"):
        DatasetPlayer(parameters={"dataset": "folder", "path": str(broken)}, autostart=False, context=context)


@pytest.mark.slow
def test_console_entry_point_exits_non_zero_with_the_reason_when_the_dataset_is_missing(tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), PYTHONPATH=str(ROOT))
    args = ["--ros-args", "-p", "dataset:=folder", "-p", f"path:={tmp_path / 'missing'}"]
    done = subprocess.run(
        [sys.executable, "-m", "fg_depth_ros.play", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert f"[play] error: {tmp_path / 'missing'}: stereo folder not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_main_plays_to_the_end_and_returns_zero(folder, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    args = ["play", "--ros-args", "-p", "dataset:=folder", "-p", f"path:={folder}", "-p", "rate:=100"]
    start = time.monotonic()
    assert main(args) == 0
    assert time.monotonic() - start < 10
    assert main(["play", "--ros-args", "-p", "mode:=triple"]) == 1


def test_a_rig_with_a_disparity_offset_plays_with_the_right_cameras_own_cx(context, tmp_path):
    # Middlebury-like: the right principal point 6 px right of the left one (doffs = cx_r - cx_l = 6).
    rig = StereoRig(Intrinsics(30.0, 31.0, 19.5, 11.25, W, H), 0.3, 6.0)
    rng = np.random.default_rng(1)
    write_stereo_folder(tmp_path, [("a", RawPair(*rng.integers(0, 256, (2, H, W, 3), np.uint8), rig))])
    params = {"dataset": "folder", "path": str(tmp_path), "width": W // 2, "height": H // 2}
    player = DatasetPlayer(parameters=params, autostart=False, context=context)
    listener = _Listener(context, player, STEREO)
    try:
        assert _play_all(listener, 1) == [0]
        linfo, rinfo = listener.got["left/camera_info"][0], listener.got["right/camera_info"][0]
        small = rig.resized(W // 2, H // 2)  # the offset halves with the width
        assert small.doffs == 3.0
        np.testing.assert_allclose(np.reshape(linfo.k, (3, 3)), small.intrinsics.matrix(), rtol=1e-12)
        np.testing.assert_allclose(np.reshape(rinfo.k, (3, 3)), small.right_intrinsics.matrix(), rtol=1e-12)
        p = np.reshape(rinfo.p, (3, 4))
        assert p[0, 2] == pytest.approx(small.intrinsics.cx + 3.0) and p[0, 3] == pytest.approx(-15.0 * 0.3)
        # What the node reads back from the two infos is the rig played.
        back = stereo_rig_from_infos(linfo, rinfo)
        assert (back.baseline, back.doffs, back.notes) == (pytest.approx(0.3), pytest.approx(3.0), ())
        assert back.intrinsics == small.intrinsics
    finally:
        listener.close()
