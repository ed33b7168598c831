"""Intrinsics under resize/crop/flip and stereo rigs from projection matrices."""

import numpy as np
import pytest
from calibration_helpers import CALIBRATIONS

from fg_depth_core.camera import (
    RIG_MAX_FOCAL_MISMATCH,
    RIG_MAX_OFFSET_RATIO,
    RIG_MAX_ROW_OFFSET,
    CameraError,
    Intrinsics,
    StereoRig,
    focal_scale,
)

#: KITTI 2011_09_26's published P_rect_02 / P_rect_03 (test/calibration_helpers.py).
KITTI = CALIBRATIONS["kitti_2011_09_26"]


def _project(k: Intrinsics, point):
    x, y, z = point
    return k.fx * x / z + k.cx, k.fy * y / z + k.cy


def test_resize_keeps_projection_consistent_with_pixel_centres():
    k = Intrinsics(721.5, 721.5, 609.6, 172.9, 1242, 375)
    small = k.resized(640, 192)
    point = (1.3, -0.4, 12.0)
    u, v = _project(k, point)
    us, vs = _project(small, point)
    # A pixel centre x maps to (x + 0.5) * s - 0.5 under resizing.
    assert us == pytest.approx((u + 0.5) * 640 / 1242 - 0.5, abs=1e-9)
    assert vs == pytest.approx((v + 0.5) * 192 / 375 - 0.5, abs=1e-9)
    back = small.resized(1242, 375)
    assert np.allclose(back.matrix(), k.matrix())


def test_crop_and_flip():
    k = Intrinsics(500.0, 510.0, 320.0, 240.0, 640, 480)
    c = k.cropped(100, 40, 400, 300)
    assert (c.cx, c.cy, c.width, c.height) == (220.0, 200.0, 400, 300)
    u, v = _project(k, (0.7, 0.2, 5.0))
    uc, vc = _project(c, (0.7, 0.2, 5.0))
    assert (uc, vc) == pytest.approx((u - 100, v - 40))
    f = k.flipped()
    uf, _ = _project(f, (-0.7, 0.2, 5.0))
    assert uf == pytest.approx(639 - u)
    with pytest.raises(CameraError, match="does not fit"):
        k.cropped(300, 0, 400, 300)


def test_stereo_rig_from_kitti_style_projections():
    p2, p3 = KITTI.p_left, KITTI.p_right
    rig = StereoRig.from_projections(p2, p3, 1242, 375)
    assert rig.baseline == pytest.approx((44.85728 + 339.5242) / 721.5377, rel=1e-9)
    assert rig.baseline == pytest.approx(0.5327, abs=1e-3)
    with pytest.raises(CameraError, match="baseline must be > 0"):
        StereoRig.from_projections(p3, p2, 1242, 375)


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((float("nan"), 1.0, 0.0, 0.0, 10, 10), "finite"),
        ((0.0, 1.0, 0.0, 0.0, 10, 10), "> 0"),
        ((1.0, 1.0, 0.0, 0.0, 0, 10), "positive"),
    ],
)
def test_bad_intrinsics(args, fragment):
    with pytest.raises(CameraError, match=fragment):
        Intrinsics(*args)


def test_focal_scale():
    assert focal_scale(360.0, 720.0) == 0.5
    with pytest.raises(CameraError):
        focal_scale(0.0, 720.0)


# ------------------------------------------------------------------------------------------ the rig


def _rig_projections(fx=400.0, cx_l=310.0, cx_r=342.5, cy=240.0, baseline=0.12, left_tx=0.0):
    """P matrices of a rig with its own cx per view; the left may carry a Tx (the right then carries the
    rest, so that B stays ``baseline``)."""
    p_l = np.array([[fx, 0, cx_l, left_tx], [0, fx, cy, 0], [0, 0, 1, 0]])
    p_r = np.array([[fx, 0, cx_r, left_tx - fx * baseline], [0, fx, cy, 0], [0, 0, 1, 0]])
    return p_l, p_r


def _project_pair(rig: StereoRig, point):
    """Left and right image x of a point (left-camera frame), the right camera at (+B, 0, 0)."""
    x, _, z = point
    k, r = rig.intrinsics, rig.right_intrinsics
    return k.fx * x / z + k.cx, r.fx * (x - rig.baseline) / z + r.cx


def test_a_rig_with_different_principal_points_has_the_disparity_offset_cx_r_minus_cx_l():
    for left_tx in (0.0, 48.0, -20.0):  # ROS (left Tx = 0), KITTI-like (both), or the left carries it all
        rig = StereoRig.from_projections(*_rig_projections(left_tx=left_tx), 640, 480)
        assert rig.baseline == pytest.approx(0.12, rel=1e-12) and rig.doffs == pytest.approx(32.5)
        assert rig.right_intrinsics.cx == pytest.approx(342.5) and rig.notes == ()
    p_l, p_r = _rig_projections()
    # The left camera carries the Tx instead (origin at the right camera): the same rig.
    p_l[0, 3], p_r[0, 3] = 400.0 * 0.12, 0.0
    other = StereoRig.from_projections(p_l, p_r, 640, 480)
    assert (other.baseline, other.doffs) == pytest.approx((0.12, 32.5), rel=1e-12)
    # d = x_l - x_r = f B / Z - doffs (Middlebury's Z = f B / (d + doffs), image_geometry's getZ).
    xl, xr = _project_pair(rig, (0.8, 0.1, 3.0))
    assert xl - xr == pytest.approx(400.0 * 0.12 / 3.0 - 32.5)
    assert rig.right_tx == pytest.approx(-400.0 * 0.12)


def test_a_right_camera_not_at_plus_x_is_refused_naming_the_numbers():
    p_l, p_r = _rig_projections()
    swapped = r"baseline must be > 0 metres .* -0\.12 m from left P\[0,3\] = -48 and right P\[0,3\] = 0"
    with pytest.raises(CameraError, match=swapped):
        StereoRig.from_projections(p_r, p_l, 640, 480)
    p_r[0, 3] = +400.0 * 0.12  # right Tx with the wrong sign
    with pytest.raises(CameraError, match=r"right Tx positive"):
        StereoRig.from_projections(p_l, p_r, 640, 480)


def test_resize_crop_and_flip_swap_keep_the_projections_of_both_views():
    rig = StereoRig.from_projections(*_rig_projections(), 640, 480)
    point = (0.8, 0.1, 3.0)
    xl, xr = _project_pair(rig, point)
    small = rig.resized(320, 240)
    sl, sr = _project_pair(small, point)
    assert small.doffs == pytest.approx(32.5 / 2)
    assert (sl, sr) == pytest.approx(((xl + 0.5) / 2 - 0.5, (xr + 0.5) / 2 - 0.5))
    cut = rig.cropped(100, 20, 400, 300)
    assert cut.doffs == rig.doffs and _project_pair(cut, point) == pytest.approx((xl - 100, xr - 100))
    # Flip-swap: the new left view is the mirrored right one, the new right view the mirrored left one, and
    # in the mirrored world the point sits at x' = B - x from the new left camera.
    flipped = rig.flip_swapped()
    fl, fr = _project_pair(flipped, (rig.baseline - point[0], point[1], point[2]))
    assert (fl, fr) == pytest.approx((639 - xr, 639 - xl))
    assert flipped.doffs == rig.doffs and flipped.intrinsics.cx == pytest.approx(639 - 342.5)
    assert flipped.flip_swapped() == rig


def test_calibration_residuals_within_their_bounds_are_noted_and_beyond_them_refused():
    # KITTI 2011_09_26's P_rect_02 / P_rect_03: the right camera 2.75 mm off vertically.
    p2, p3 = KITTI.p_left, KITTI.p_right
    rig = StereoRig.from_projections(p2, p3, 1242, 375)
    assert [n.split(" = ")[0] for n in rig.notes] == ["vertical offset ty", "depth offset tz"]
    assert "-2.753 mm" in rig.notes[0] and "accepted up to 2 %" in rig.notes[0]
    assert rig.resized(621, 187).notes == rig.notes  # the notes describe the calibration, at any size
    # Vertical offset: 2 % of the baseline is the bound (RIG_MAX_OFFSET_RATIO).
    assert RIG_MAX_OFFSET_RATIO == 0.02
    far = p3.copy()
    far[1, 3] = 721.5377 * 0.03 * rig.baseline  # 3 % of B
    beyond = r"right P has a vertical or depth offset \(P\[1,3\]=11\.53.*2\.94 % of the 0\.5327 m baseline\) "
    with pytest.raises(CameraError, match=beyond + r"is more than the accepted 2 % \(RIG_MAX_OFFSET_RATIO\)"):
        StereoRig.from_projections(p2, far, 1242, 375)
    deep = p3.copy()
    deep[2, 3] = 0.002729905 + 0.03 * rig.baseline
    with pytest.raises(CameraError, match=r"depth offset tz = -15\.9\d mm .*3 % of the .*_OFFSET_RATIO"):
        StereoRig.from_projections(p2, deep, 1242, 375)
    # Focal lengths: 0.05 % apart is noted, 0.2 % refused (RIG_MAX_FOCAL_MISMATCH = 0.1 %).
    near = p3.copy()
    near[1, 1] *= 1.0005
    notes = StereoRig.from_projections(p2, near, 1242, 375).notes
    assert any(n.startswith("P matrices differ in fy (left 721.5377, right 721.8984") for n in notes)
    near[0, 0] *= 1.002
    focal = r"differ in fx \(left 721\.5377, right 722\.9.*\): 0\.2 %, more than the accepted 0\.1 % "
    with pytest.raises(CameraError, match=focal + r"\(RIG_MAX_FOCAL_MISMATCH\)"):
        StereoRig.from_projections(p2, near, 1242, 375)
    # Rows: half a pixel apart is noted, 1.5 px refused (RIG_MAX_ROW_OFFSET = 1 px).
    rows = p3.copy()
    rows[1, 2] += 0.5
    assert "rows 0.5 px apart" in StereoRig.from_projections(p2, rows, 1242, 375).notes[-1]
    rows[1, 2] += 1.0
    with pytest.raises(CameraError, match=r"rows 1\.5 px apart, more than the accepted 1 px"):
        StereoRig.from_projections(p2, rows, 1242, 375)
    assert (RIG_MAX_FOCAL_MISMATCH, RIG_MAX_ROW_OFFSET) == (1e-3, 1.0)
