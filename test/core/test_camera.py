"""Intrinsics under resize/crop/flip and stereo rigs from projection matrices."""

import numpy as np
import pytest

from fg_depth_core.camera import CameraError, Intrinsics, StereoRig, focal_scale


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
    p2 = np.array(
        [[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791], [0, 0, 1, 0.002745884]]
    )
    p3 = np.array(
        [[721.5377, 0, 609.5593, -339.5242], [0, 721.5377, 172.854, 2.199936], [0, 0, 1, 0.002729905]]
    )
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
