"""Bad input never kills depth_node: each bad message gives a throttled warning naming the topic and the
problem, the frame is dropped, and the next good frame is answered. Real rclpy; the node runs in a namespace
so that the warnings must name the resolved topics. A stereo node with no input says nothing about
synchronisation."""

from __future__ import annotations

import array
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import rclpy
from depth_node_helpers import (
    Harness,
    camera_messages,
    make_context,
    random_rgb,
    stamp_of,
    write_linear_model,
)
from sensor_msgs.msg import Image

from fg_depth_core.camera import Intrinsics
from fg_depth_ros.diagnostics import WARN, status_values

NET_W, NET_H = 64, 32
NS = "/robot"
INTR = Intrinsics(40.0, 40.0, 31.5, 15.5, NET_W, NET_H)
BASELINE = 0.3


@pytest.fixture(scope="module")
def context():
    ctx = make_context()
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_linear_model(tmp_path_factory.mktemp("model") / "linear.onnx", NET_W, NET_H)


@pytest.fixture(scope="module")
def mono(context, model):
    harness = Harness(context, {"model": str(model)}, namespace=NS)
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def stereo(context, model):
    params = {"model": str(model), "mode": "stereo", "sync.warn_after": 0.3, "diagnostics.period": 0.1}
    inputs = ("left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info")
    harness = Harness(context, params, inputs=inputs, namespace=NS)
    yield harness
    harness.close()


_stamps = iter(range(1, 10**6))


def _next_stamp() -> int:
    """Unique, increasing stamps (ns) across the module: outputs can be told apart by stamp."""
    return next(_stamps) * 10_000_000


def _good_mono(harness: Harness) -> None:
    """A good frame (with its camera_info) must come out as depth with its stamp."""
    stamp = _next_stamp()
    image, info = camera_messages(random_rgb(NET_H, NET_W), INTR, stamp)
    harness.publish(camera_info=info)
    harness.spin_for(0.05)
    harness.publish(image=image)
    depths = harness.got["depth/image"]
    harness.spin_until(lambda: any(stamp_of(m) == stamp for m in depths), what="the good frame")


def _bad_image(kind: str) -> Image:
    image, _ = camera_messages(random_rgb(NET_H, NET_W), INTR, _next_stamp())
    if kind == "encoding":
        image.encoding = "nv21"
    elif kind == "depth_encoding":
        image.encoding = "16UC1"
    elif kind == "short_data":
        image.data = array.array("B", bytes(image.step * image.height - 7))
    elif kind == "zero_size":
        image.width = image.height = image.step = 0
        image.data = array.array("B")
    elif kind == "short_step":
        image.step = NET_W * 3 - 1
    elif kind == "wide_step":
        image.encoding = "rgb16"  # rgb8 rows, half what 16 bits a channel needs
    elif kind == "odd_yuyv":
        image.encoding, image.width = "yuv422_yuy2", NET_W - 1
    return image


MONO_IMAGE_CASES = [
    ("encoding", "unsupported image encoding 'nv21'"),
    ("depth_encoding", "unsupported image encoding '16UC1'"),
    ("short_data", "fewer than step * height"),
    ("zero_size", "image size is 0x0"),
    ("short_step", "step is 191 bytes but a rgb8 row of 64 pixels needs 192"),
    ("wide_step", "step is 192 bytes but a rgb16 row of 64 pixels needs 384"),
    ("odd_yuyv", "yuv422_yuy2 image is 63 pixels wide: 4:2:2 YUV shares one U and one V between two pixels"),
]


@pytest.mark.parametrize("kind, problem", MONO_IMAGE_CASES)
def test_a_bad_image_is_dropped_with_a_warning_naming_the_topic_and_the_next_frame_answered(
    mono, kind, problem
):
    _good_mono(mono)  # a camera_info is there
    rejected = mono.node.rejected
    mono.publish(image=_bad_image(kind))
    mono.spin_until(lambda: mono.node.rejected == rejected + 1, what="the rejection")
    assert mono.node.last_problem.startswith(f"{NS}/image: ") and problem in mono.node.last_problem
    assert mono.node.last_problem.endswith("frame dropped")
    published = mono.node.published
    _good_mono(mono)
    assert mono.node.published == published + 1 and mono.node.errors == 0


def _info_with(**changes):
    _, info = camera_messages(random_rgb(NET_H, NET_W), INTR, _next_stamp())
    p = np.reshape(np.array(info.p, dtype=np.float64), (3, 4))
    k = np.reshape(np.array(info.k, dtype=np.float64), (3, 3))
    if "p_fx" in changes:
        p[0, 0] = changes["p_fx"]
    if "zero" in changes:
        p[:] = 0.0
        k[:] = 0.0
    if "size" in changes:
        info.width, info.height = changes["size"]
    info.p, info.k = p.reshape(-1), k.reshape(-1)
    return info


INFO_CASES = [
    ({"p_fx": math.nan}, "camera_info P: intrinsics must be finite"),
    ({"p_fx": 0.0}, "camera_info P: focal lengths must be > 0"),
    ({"zero": True}, "camera_info K is all zero: the camera is not calibrated"),
    (
        {"size": (128, 64)},
        "camera_info describes 128x64 images (after binning/ROI) but /robot/image is 64x32",
    ),
]


@pytest.mark.parametrize("changes, problem", INFO_CASES)
def test_bad_intrinsics_drop_the_frame_with_a_warning_and_the_next_good_info_works(mono, changes, problem):
    rejected = mono.node.rejected
    mono.publish(camera_info=_info_with(**changes))
    mono.spin_for(0.05)
    image, _ = camera_messages(random_rgb(NET_H, NET_W), INTR, _next_stamp())
    mono.publish(image=image)
    mono.spin_until(lambda: mono.node.rejected == rejected + 1, what="the rejection")
    assert mono.node.last_problem.startswith(f"{NS}/camera_info: ") and problem in mono.node.last_problem
    _good_mono(mono)
    assert mono.node.errors == 0


def test_images_before_any_camera_info_are_dropped_with_a_warning(context, model):
    harness = Harness(context, {"model": str(model)}, namespace="/fresh")
    try:
        image, _ = camera_messages(random_rgb(NET_H, NET_W), INTR, _next_stamp())
        harness.publish(image=image)
        harness.spin_until(lambda: harness.node.rejected == 1, what="the rejection")
        assert harness.node.last_problem.startswith("/fresh/camera_info: no camera_info received yet")
        assert "/fresh/image dropped" in harness.node.last_problem
        assert harness.node.received == 0
        _good_mono(harness)
    finally:
        harness.close()


def test_a_repeated_problem_is_logged_once_per_throttle_period_and_another_problem_gets_its_own(
    context, model, capfd
):
    harness = Harness(context, {"model": str(model)}, namespace="/logged")
    try:
        _good_mono(harness)
        capfd.readouterr()
        for kind, count in (("zero_size", 3), ("short_data", 2), ("zero_size", 1)):
            for _ in range(count):
                before = harness.node.rejected
                harness.publish(image=_bad_image(kind))
                harness.spin_until(lambda b=before: harness.node.rejected == b + 1, what="the rejection")
        _good_mono(harness)
        err = capfd.readouterr().err
        zero = [line for line in err.splitlines() if "image size is 0x0" in line]
        short = [line for line in err.splitlines() if "fewer than step * height" in line]
        assert len(zero) == 1 and len(short) == 1, err
        assert "WARN" in zero[0]
        assert "/logged/image: image size is 0x0: width and height must be > 0; frame dropped" in zero[0]
        assert "/logged/image: data holds" in short[0]
        assert sorted(harness.node.problem_counts.values()) == [2, 4]
    finally:
        harness.close()


# ------------------------------------------------------------------------------------------------ stereo


def _stereo_frame(stamp: int, right_size=(NET_W, NET_H), right_stamp=None, right_tx=None, left_fx=None):
    left_img, left_info = camera_messages(random_rgb(NET_H, NET_W, 1), INTR, stamp)
    right_intr = Intrinsics(INTR.fx, INTR.fy, INTR.cx, INTR.cy, NET_W, NET_H)
    tx = -INTR.fx * BASELINE if right_tx is None else right_tx
    right_rgb = random_rgb(right_size[1], right_size[0], 2)
    right_stamp = stamp if right_stamp is None else right_stamp
    right_img, right_info = camera_messages(
        right_rgb, right_intr, right_stamp, frame_id="camera_right_optical_frame", tx=tx
    )
    if left_fx is not None:
        p = list(left_info.p)
        p[0] = left_fx
        left_info.p = p
    return {
        "left__camera_info": left_info,
        "right__camera_info": right_info,
        "left__image_rect": left_img,
        "right__image_rect": right_img,
    }


def _good_stereo(harness: Harness) -> None:
    stamp = _next_stamp()
    harness.publish(**_stereo_frame(stamp))
    depths = harness.got["depth/image"]
    harness.spin_until(lambda: any(stamp_of(m) == stamp for m in depths), what="the good pair")
    harness.spin_until(lambda: any(stamp_of(m) == stamp for m in harness.got["disparity"]), what="disparity")


STEREO_CASES = [
    ({"right_size": (48, 24)}, "/robot/left/image_rect, /robot/right/image_rect: the views differ in size"),
    ({"right_tx": 4.0}, "/robot/left/camera_info, /robot/right/camera_info: camera_info P"),
    ({"left_fx": math.nan}, "/robot/left/camera_info, /robot/right/camera_info: left: camera_info P"),
]


@pytest.mark.parametrize("changes, problem", STEREO_CASES)
def test_a_bad_stereo_pair_is_dropped_with_a_warning_and_the_next_pair_answered(stereo, changes, problem):
    _good_stereo(stereo)
    rejected = stereo.node.rejected
    stereo.publish(**_stereo_frame(_next_stamp(), **changes))
    stereo.spin_until(lambda: stereo.node.rejected == rejected + 1, what="the rejection")
    assert stereo.node.last_problem.startswith(problem), stereo.node.last_problem
    _good_stereo(stereo)
    assert stereo.node.errors == 0


def test_a_bad_right_image_names_the_right_topic(stereo):
    rejected = stereo.node.rejected
    frame = _stereo_frame(_next_stamp())
    bad = copy.deepcopy(frame["right__image_rect"])
    bad.encoding = "nv24"
    frame["right__image_rect"] = bad
    stereo.publish(**frame)
    stereo.spin_until(lambda: stereo.node.rejected == rejected + 1, what="the rejection")
    assert stereo.node.last_problem.startswith("/robot/right/image_rect: unsupported image encoding 'nv24'")
    _good_stereo(stereo)


def test_stereo_that_never_synchronises_is_warned_about_and_recovers(stereo):
    _good_stereo(stereo)
    published = stereo.node.published
    # The right view is stamped 0.5 s off: far outside sync.slop, so no pair ever forms.
    for _ in range(4):
        stamp = _next_stamp()
        stereo.publish(**_stereo_frame(stamp, right_stamp=stamp + 500_000_000))
        stereo.spin_for(0.1)
    stereo.spin_until(lambda: "have not synchronised" in stereo.node.last_problem, what="the sync warning")
    problem = stereo.node.last_problem
    for topic in ("left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info"):
        assert f"{NS}/{topic}" in problem
    assert "sync.slop = 0.02 s" in problem and stereo.node.published == published
    stereo.spin_until(
        lambda: any(m.status[0].level == WARN and "do not synchronise" in m.status[0].message
                    for m in stereo.got["/diagnostics"]),
        what="a WARN status",
    )  # fmt: skip
    _good_stereo(stereo)
    values = status_values(stereo.got["/diagnostics"][-1], f"{NS[1:]}/depth_node: depth")
    assert values["mode"] == "stereo" and int(values["frames_published"]) >= published


def test_a_stereo_node_without_input_does_not_warn_about_synchronisation(context, model, capfd):
    params = {"model": str(model), "mode": "stereo", "sync.warn_after": 0.3, "diagnostics.period": 0.1}
    inputs = ("left/image_rect", "right/image_rect", "left/camera_info", "right/camera_info")
    harness = Harness(context, params, inputs=inputs, namespace="/idle")
    try:
        capfd.readouterr()
        harness.spin_for(1.5)  # five times sync.warn_after, no message published
        err = capfd.readouterr().err
        statuses = [m.status[0] for m in harness.got["/diagnostics"]]
        assert len(statuses) >= 5  # the watchdog was asked at every report
        assert "have not synchronised" not in err and "synchronis" not in harness.node.last_problem
        assert not any("synchronis" in s.message for s in statuses)
        # What it does say: no input on the four topics (a WARN, but not about synchronisation).
        assert statuses[-1].level == WARN
        assert statuses[-1].message.startswith("no input on /idle/left/image_rect")
        # The same capture does see the warning once one input arrives and nothing synchronises.
        for _ in range(8):
            left, _ = camera_messages(random_rgb(NET_H, NET_W), INTR, _next_stamp())
            harness.publish(left__image_rect=left)
            harness.spin_for(0.1)
        harness.spin_until(lambda: "have not synchronised" in harness.node.last_problem, what="the warning")
        assert "stereo inputs have not synchronised" in capfd.readouterr().err
    finally:
        harness.close()
