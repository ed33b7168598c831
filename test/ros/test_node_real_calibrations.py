"""depth_node in stereo mode on published calibrations (KITTI 2011_09_26, EuRoC V1, Middlebury 2014 Motorcycle
with its disparity offset, a ZED 2-style rig): the built-in world rendered through each (test/
calibration_helpers.py) goes in with the calibration's own CameraInfos. The model answers with the scene's
exact depth, so the node's online stereo scale (its SGBM depth over that depth) must come out at 1, the depth
it then publishes must be the truth, and the DisparityImage must carry the rendered disparity in the
message's convention. Every pair is accepted, and the residuals of a calibration are logged once."""

from __future__ import annotations

import numpy as np
import pytest
from calibration_helpers import CALIBRATIONS, render_through, visible_core
from depth_node_helpers import Harness, write_fixed_depth_model
from std_msgs.msg import Header

from fg_depth_core.camera import Intrinsics
from fg_depth_ros.conversions import image_to_depth, intrinsics_to_camera_info, rgb_to_image
from fg_depth_ros.topics import STEREO_INPUTS

MIN_DEPTH, MAX_DEPTH = 0.1, 1000.0
FRAMES = 3
#: Stereo depths used for the scale: at least this much disparity f * B / Z (pixels).
MIN_DISPARITY = 4.0
#: How close the measured scale must be to 1, and the corrected depth to the truth (median): SGBM's own
#: accuracy on these scenes is 2-2.5 % per pixel, and the median over thousands of pixels is far tighter.
SCALE_TOLERANCE = 0.02
RESIDUAL_WARNING = "stereo calibration accepted with residuals"


def _info(p: np.ndarray, width: int, height: int, header: Header):
    """The CameraInfo a driver publishes for a rectified view: K = P's 3x3, the published P."""
    msg = intrinsics_to_camera_info(Intrinsics.from_matrix(p, width, height), header)
    msg.p = [float(v) for v in p.reshape(-1)]
    return msg


@pytest.mark.parametrize("name", list(CALIBRATIONS))
def test_stereo_node_accepts_a_published_calibration_and_measures_true_depth(name, context, tmp_path, capfd):
    frame = render_through(CALIBRATIONS[name])
    rig = frame.rig
    h, w = frame.depth.shape
    fb = rig.intrinsics.fx * rig.baseline
    truth = np.where(np.isfinite(frame.depth), np.clip(frame.depth, MIN_DEPTH, MAX_DEPTH), MAX_DEPTH)
    # f_train = sqrt(fx * fy) at the network size (= the image size here): the focal factor is 1.
    focal = float(np.sqrt(rig.intrinsics.fx * rig.intrinsics.fy))
    model = write_fixed_depth_model(tmp_path / "truth.onnx", truth, focal, MIN_DEPTH, MAX_DEPTH)
    params = {
        "model": str(model), "mode": "stereo", "scale_source": "stereo", "scale.ema": 1.0, "scale.min": 0.2,
        "scale.max": 5.0, "scale.max_depth": fb / MIN_DISPARITY, "scale.num_disparities": 64,
    }  # fmt: skip
    harness = Harness(context, params, inputs=STEREO_INPUTS)
    try:
        capfd.readouterr()
        for index in range(FRAMES):
            header = Header(frame_id="left_optical")
            header.stamp.sec = 100 + index
            right = Header(stamp=header.stamp, frame_id="right_optical")
            harness.publish(
                left__camera_info=_info(frame.p_left, w, h, header),
                right__camera_info=_info(frame.p_right, w, h, right),
                left__image_rect=rgb_to_image(frame.left, header),
                right__image_rect=rgb_to_image(frame.right, right),
            )
            harness.wait_outputs("depth/image", index + 1)
            assert harness.node.wait_idle()
        node = harness.node
        # Every pair accepted: nothing rejected or failed, every frame answered.
        assert (node.published, node.rejected, node.errors) == (FRAMES, 0, 0), node.last_problem
        # The first frame precedes any measurement: the model's depth as it is.
        first = image_to_depth(harness.got["depth/image"][0])
        np.testing.assert_allclose(first, truth, rtol=1e-5)
        # SGBM through the rig's baseline and disparity offset measures the true depth: scale 1.
        assert node.scale.measurements == FRAMES
        print("SCALE", name, node.scale.value, node.scale.estimator.last_measurement)
        assert node.scale.value == pytest.approx(1.0, abs=SCALE_TOLERANCE)
        last = image_to_depth(harness.got["depth/image"][-1])
        core = visible_core(frame) & np.isfinite(frame.depth)
        assert np.median(np.abs(last[core] / frame.depth[core] - 1.0)) < SCALE_TOLERANCE
        # DisparityImage: d = f T / Z, the message's convention (pre-adjusted for the cx offset), so that the
        # image disparity x_l - x_r is d - doffs: the rendered one.
        msg = harness.wait_outputs("disparity", 1)[0]
        assert msg.f == pytest.approx(rig.intrinsics.fx, rel=1e-6) and msg.t == pytest.approx(rig.baseline)
        d = image_to_depth(msg.image)
        inside = np.isfinite(frame.depth) & (frame.depth > MIN_DEPTH) & (frame.depth < MAX_DEPTH)
        np.testing.assert_allclose(d[inside], fb / frame.depth[inside], rtol=1e-4)
        np.testing.assert_allclose(d[inside] - rig.doffs, frame.disparity[inside], rtol=1e-3, atol=1e-3)
        # Residuals of the calibration (KITTI's vertical and depth offsets) are logged once, not per frame.
        err = capfd.readouterr().err
        assert err.count(RESIDUAL_WARNING) == (1 if rig.notes else 0), err
        if rig.notes:
            assert "vertical offset ty = -2.753 mm" in err
    finally:
        harness.close()
