"""fg_depth_ros.conversions against hand-built messages: every image encoding with and without row padding,
each malformed-image error, depth images in both byte orders, camera_info <-> intrinsics, stereo rigs from P,
point clouds against fg_depth_core.geometry.backproject, and disparity images."""

from __future__ import annotations

import array
import sys

import numpy as np
import pytest
import torch
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from fg_depth_core.camera import Intrinsics
from fg_depth_core.errors import FgDepthError
from fg_depth_core.geometry import backproject
from fg_depth_ros.conversions import (
    RGB_ENCODINGS,
    ConversionError,
    camera_info_to_intrinsics,
    depth_to_image,
    depth_to_pointcloud,
    disparity_image,
    image_to_depth,
    image_to_rgb,
    intrinsics_to_camera_info,
    pointcloud_to_rgb,
    pointcloud_to_xyz,
    rgb_to_image,
    stereo_rig_from_infos,
)

H, W = 5, 7
K = Intrinsics(50.0, 48.0, 3.25, 2.0, W, H)
TOPIC = "/cam/image"


def _rgb(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _header(frame: str = "cam_optical", sec: int = 12, nanosec: int = 345) -> Header:
    header = Header(frame_id=frame)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


def _raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, width=None, height=None, step=None) -> Image:
    """An Image whose bytes are ``pixels`` (H,W,C) row by row plus ``pad`` junk bytes per row, built by hand
    (independent of rgb_to_image)."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    junk = np.full((h, pad), 0xAB, dtype=np.uint8)
    data = np.concatenate((rows, junk), axis=1)
    msg = Image(
        encoding=encoding, height=h if height is None else height, width=w if width is None else width
    )
    msg.step = data.shape[1] if step is None else step
    msg.data = array.array("B", data.tobytes())
    return msg


def _as_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """rgb (H,W,3) rearranged into ``encoding``'s channel layout by hand."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    a = np.full_like(r, 200)
    return {
        "rgb8": np.stack((r, g, b), -1),
        "bgr8": np.stack((b, g, r), -1),
        "rgba8": np.stack((r, g, b, a), -1),
        "bgra8": np.stack((b, g, r, a), -1),
        "mono8": r[..., None],
    }[encoding]


# ------------------------------------------------------------------------------------------------ images


@pytest.mark.parametrize("pad", [0, 3, 17])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_every_colour_encoding_decodes_to_the_same_rgb_with_any_row_padding(encoding, pad):
    rgb = _rgb(1)
    msg = _raw_image(_as_encoding(rgb, encoding), encoding, pad)
    out = image_to_rgb(msg)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)
    # Usable as a torch tensor (no negative strides) without a copy by the caller.
    assert torch.from_numpy(out).shape == (H, W, 3)


@pytest.mark.parametrize("pad", [0, 5])
def test_mono8_decodes_to_grey_rgb(pad):
    grey = _rgb(2)[..., :1]
    out = image_to_rgb(_raw_image(grey, "mono8", pad))
    np.testing.assert_array_equal(out, np.repeat(grey, 3, axis=2))


def test_longer_data_than_step_times_height_is_accepted_and_encoding_case_ignored():
    rgb = _rgb(3)
    msg = _raw_image(rgb, "rgb8")
    msg.data = array.array("B", bytes(msg.data) + b"\x00" * 10)
    msg.encoding = "RGB8"
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize("encoding", list(RGB_ENCODINGS))
def test_rgb_to_image_round_trips_and_writes_the_encoding_byte_order(encoding):
    rgb = _rgb(4)
    source = rgb[..., 0] if encoding == "mono8" else rgb
    msg = rgb_to_image(source, _header(), encoding)
    channels = RGB_ENCODINGS[encoding][0]
    assert (msg.width, msg.height, msg.encoding, msg.step) == (W, H, encoding, W * channels)
    assert msg.header.frame_id == "cam_optical" and msg.header.stamp.nanosec == 345
    raw = np.frombuffer(msg.data, np.uint8).reshape(H, W, channels)
    expected = _as_encoding(rgb, encoding)
    if channels == 4:
        expected = expected.copy()
        expected[..., 3] = 255
    np.testing.assert_array_equal(raw, expected)
    decoded = image_to_rgb(msg)
    np.testing.assert_array_equal(decoded, np.repeat(rgb[..., :1], 3, 2) if encoding == "mono8" else rgb)


def test_rgb8_decoding_is_a_view_of_the_message_data():
    msg = _raw_image(_rgb(5), "rgb8")
    out = image_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize(
    "change, pattern",
    [
        (
            {"encoding": "nv21"},
            r"/cam/image: unsupported image encoding 'nv21'; supported: rgb8, bgr8, "
            r"rgba8, bgra8, mono8, mono16, rgb16, bgr16, rgba16, bgra16, yuv422, uyvy, yuv422_yuy2, yuyv, "
            r"bayer_rggb8",
        ),
        ({"encoding": "16UC1"}, r"unsupported image encoding '16UC1'"),
        ({"width": 0}, r"/cam/image: image size is 0x5: width and height must be > 0"),
        ({"height": 0}, r"/cam/image: image size is 7x0"),
        ({"step": 20}, r"/cam/image: step is 20 bytes but a rgb8 row of 7 pixels needs 21"),
        ({"height": 6}, r"/cam/image: data holds 105 bytes, fewer than step \* height = 21 \* 6 = 126"),
        ({"width": 8, "step": 24}, r"data holds 105 bytes, fewer than step \* height = 24 \* 5 = 120"),
    ],
)
def test_malformed_images_raise_conversion_errors_naming_topic_and_problem(change, pattern):
    msg = _raw_image(_rgb(6), "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ConversionError, match=pattern) as info:
        image_to_rgb(msg, TOPIC)
    assert isinstance(info.value, FgDepthError)


def test_truncated_data_is_an_error_even_when_only_the_last_rows_padding_is_missing():
    msg = _raw_image(_rgb(7), "rgb8", pad=3)
    msg.data = msg.data[:-3]
    with pytest.raises(ConversionError, match="fewer than step"):
        image_to_rgb(msg, TOPIC)


def test_rgb_to_image_rejects_wrong_shapes_and_types():
    with pytest.raises(ConversionError, match="expected uint8"):
        rgb_to_image(np.zeros((H, W, 3), np.float32), _header())
    with pytest.raises(ConversionError, match=r"expected \(H,W,3\)"):
        rgb_to_image(np.zeros((H, W), np.uint8), _header())
    with pytest.raises(ConversionError, match="unsupported image encoding 'jpeg'"):
        rgb_to_image(_rgb(), _header(), "jpeg")


# ------------------------------------------------------------------------------------------ depth images


def _depth(seed: int = 0) -> np.ndarray:
    depth = np.random.default_rng(seed).uniform(0.5, 40.0, (H, W)).astype(np.float32)
    depth[0, 0] = np.nan
    depth[1, 2] = np.inf
    depth[2, 3] = 0.0
    return depth


def test_depth_image_is_32fc1_metres_in_native_order_and_round_trips_with_nan():
    depth = _depth()
    msg = depth_to_image(depth, _header())
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("32FC1", W, H, 4 * W)
    assert bool(msg.is_bigendian) == (sys.byteorder == "big")
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.float32).reshape(H, W), depth)
    back = image_to_depth(msg)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, depth)  # assert_array_equal treats NaN == NaN
    assert np.isnan(back[0, 0]) and np.isposinf(back[1, 2])


def test_depth_image_of_the_other_byte_order_and_padded_rows_decodes():
    depth = _depth(1)
    other = ">f4" if sys.byteorder == "little" else "<f4"
    rows = np.concatenate((depth.astype(other).view(np.uint8).reshape(H, -1), np.zeros((H, 8), np.uint8)), 1)
    msg = Image(encoding="32FC1", width=W, height=H, step=4 * W + 8, is_bigendian=int(other == ">f4"))
    msg.data = array.array("B", rows.tobytes())
    np.testing.assert_array_equal(image_to_depth(msg), depth)


def test_16uc1_millimetre_depth_decodes_to_metres_with_zero_unknown():
    mm = np.array([[0, 1500, 65535]], dtype=np.uint16)
    msg = Image(encoding="16UC1", width=3, height=1, step=6, is_bigendian=int(sys.byteorder == "big"))
    msg.data = array.array("B", mm.tobytes())
    np.testing.assert_allclose(image_to_depth(msg), [[np.nan, 1.5, 65.535]], rtol=1e-6)


def test_depth_decoding_errors():
    msg = depth_to_image(_depth(), _header())
    msg.encoding = "rgb8"
    with pytest.raises(ConversionError, match=r"/d: unsupported depth encoding 'rgb8'; supported: 32FC1"):
        image_to_depth(msg, "/d")
    with pytest.raises(ConversionError, match="non-empty"):
        depth_to_image(np.zeros((0, 3), np.float32), _header())


# ------------------------------------------------------------------------------------------ camera infos


def _info(k=(50.0, 0, 3.25, 0, 48.0, 2.0, 0, 0, 1), p=None, width=W, height=H) -> CameraInfo:
    msg = CameraInfo(width=width, height=height)
    msg.k = [float(v) for v in k]
    msg.p = [float(v) for v in p] if p is not None else [0.0] * 12
    return msg


def test_camera_info_intrinsics_round_trip_with_r_identity_and_zero_distortion():
    info = intrinsics_to_camera_info(K, _header("cam"), tx=-12.5)
    assert (info.width, info.height, info.header.frame_id) == (W, H, "cam")
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), K.matrix())
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), np.hstack((K.matrix(), [[-12.5], [0], [0]])))
    np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), np.eye(3))
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    assert camera_info_to_intrinsics(info) == K
    assert camera_info_to_intrinsics(info, rectified=False) == K


def test_rectified_images_use_p_and_raw_images_use_k():
    p = (60.0, 0, 3.0, -6.0, 0, 61.0, 2.5, 0, 0, 0, 1, 0)
    info = _info(p=p)
    assert camera_info_to_intrinsics(info) == Intrinsics(60.0, 61.0, 3.0, 2.5, W, H)
    assert camera_info_to_intrinsics(info, rectified=False) == K
    # A camera that publishes only K: rectified images fall back to it.
    assert camera_info_to_intrinsics(_info()) == K


def test_binning_and_roi_follow_the_core_crop_and_resize_rules():
    info = _info(k=(100.0, 0, 40.0, 0, 100.0, 30.0, 0, 0, 1), width=80, height=60)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 10, 6, 40, 24
    info.binning_x = info.binning_y = 2
    expected = Intrinsics(100.0, 100.0, 40.0, 30.0, 80, 60).cropped(10, 6, 40, 24).resized(20, 12)
    assert camera_info_to_intrinsics(info) == expected
    assert (expected.width, expected.height, expected.fx) == (20, 12, 50.0)


@pytest.mark.parametrize(
    "info, pattern",
    [
        (_info(width=0), r"/cam/camera_info: camera_info size is 0x5: width and height must be > 0"),
        (_info(k=[0.0] * 9), r"/cam/camera_info: camera_info K is all zero: the camera is not calibrated"),
        (_info(k=(np.nan, 0, 3, 0, 48, 2, 0, 0, 1)), r"camera_info K: intrinsics must be finite"),
        (_info(p=(0.0, 0, 3, 0, 0, 48, 2, 0, 0, 0, 1, 0)), r"camera_info P: focal lengths must be > 0"),
        (_info(k=(50.0, 0, 3, 0, -1, 2, 0, 0, 1)), r"camera_info K: focal lengths must be > 0"),
    ],
)
def test_unusable_camera_infos_raise_conversion_errors_naming_the_field(info, pattern):
    with pytest.raises(ConversionError, match=pattern):
        camera_info_to_intrinsics(info, what="/cam/camera_info")


def _pair(baseline: float = 0.25, intr: Intrinsics = K):
    left = intrinsics_to_camera_info(intr, _header("l"))
    right = intrinsics_to_camera_info(intr, _header("r"), tx=-intr.fx * baseline)
    return left, right


def test_stereo_rig_baseline_comes_from_the_p_matrices():
    rig = stereo_rig_from_infos(*_pair(0.25))
    assert rig.intrinsics == K
    assert rig.baseline == pytest.approx(0.25, rel=1e-12)
    # KITTI-style P with a non-zero left Tx: the baseline is the difference of the camera offsets.
    left, right = _pair()
    left.p[3], right.p[3] = 50.0 * 0.06, -50.0 * 0.48
    assert stereo_rig_from_infos(left, right).baseline == pytest.approx(0.54, rel=1e-12)


def test_non_rectified_pairs_are_refused_with_the_reason():
    left, right = _pair()
    with pytest.raises(ConversionError, match="baseline must be > 0"):
        stereo_rig_from_infos(right, left)  # swapped cameras
    left, right = _pair()
    right.p[0] = 51.0
    with pytest.raises(ConversionError, match=r"/stereo: P matrices differ in fx \(left 50.0, right 51.0\)"):
        stereo_rig_from_infos(left, right, "/stereo")
    left, right = _pair()
    # Rows 1.5 px apart: beyond RIG_MAX_ROW_OFFSET (half a pixel is accepted with a note, test_camera_msgs).
    right.p[6] = K.cy + 1.5
    with pytest.raises(ConversionError, match=r"differ in cy \(left 2.0, right 3.5\): rows 1.5 px apart"):
        stereo_rig_from_infos(left, right)
    left, right = _pair()
    right.width = W + 1
    with pytest.raises(ConversionError, match=r"left camera_info is 7x5 but right is 8x5"):
        stereo_rig_from_infos(left, right)
    left, right = _pair()
    right.p = [0.0] * 12
    with pytest.raises(ConversionError, match="right camera_info P is all zero"):
        stereo_rig_from_infos(left, right)
    left, right = _pair()
    right.p[7] = 3.0
    with pytest.raises(ConversionError, match="right camera_info P has a vertical or depth offset"):
        stereo_rig_from_infos(left, right)


# ------------------------------------------------------------------------------------------ point clouds


def _scene_depth(h: int = 12, w: int = 16) -> np.ndarray:
    depth = np.random.default_rng(3).uniform(1.0, 30.0, (h, w)).astype(np.float32)
    depth[0, :3] = np.nan
    depth[4, 5] = 0.0
    depth[5, 5] = -2.0
    depth[6, 6] = np.inf
    return depth


def _expected_points(depth, intr, step=1):
    """What the cloud must hold: backproject through float32 K, every step-th pixel, unknown depth removed."""
    k = torch.from_numpy(intr.matrix().astype(np.float32))[None]
    pts = backproject(torch.from_numpy(depth)[None, None], k)[0, :, ::step, ::step].reshape(3, -1).numpy().T
    keep = np.isfinite(pts).all(axis=1) & (pts[:, 2] > 0)
    return pts, keep


def _cloud_records(msg: PointCloud2, with_rgb: bool) -> np.ndarray:
    """The cloud's bytes read with an explicitly written layout (independent of pointcloud_to_xyz)."""
    order = ">" if msg.is_bigendian else "<"
    fields = [("x", order + "f4"), ("y", order + "f4"), ("z", order + "f4")]
    if with_rgb:
        fields.append(("rgb", order + "u4"))
    return np.frombuffer(bytes(msg.data), dtype=np.dtype(fields))


def test_point_cloud_is_exactly_the_core_back_projection_with_unknown_points_left_out():
    depth = _scene_depth()
    intr = Intrinsics(20.0, 21.0, 7.5, 5.25, 16, 12)
    msg = depth_to_pointcloud(depth, intr, _header("cam_optical"))
    assert msg.header.frame_id == "cam_optical" and msg.header.stamp.sec == 12
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
    ]
    pts, keep = _expected_points(depth, intr)
    assert keep.sum() == 16 * 12 - 6
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, keep.sum(), 12, 12 * keep.sum())
    assert msg.is_dense and bool(msg.is_bigendian) == (sys.byteorder == "big")
    records = _cloud_records(msg, False)
    np.testing.assert_array_equal(np.stack([records[n] for n in "xyz"], 1), pts[keep])
    np.testing.assert_array_equal(pointcloud_to_xyz(msg), pts[keep])
    # By hand for one pixel: X = (x - cx) Z / fx.
    z = depth[3, 10]
    assert np.isclose(
        pointcloud_to_xyz(msg)[keep[: 3 * 16 + 10].sum()], [(10 - 7.5) * z / 20, (3 - 5.25) * z / 21, z]
    ).all()


def test_decimation_takes_every_nth_pixel_from_the_origin():
    depth = _scene_depth()
    intr = Intrinsics(20.0, 21.0, 7.5, 5.25, 16, 12)
    for step in (2, 3, 5):
        msg = depth_to_pointcloud(depth, intr, _header(), decimation=step)
        full, _ = _expected_points(depth, intr)
        grid = full.reshape(12, 16, 3)[::step, ::step].reshape(-1, 3)
        keep = np.isfinite(grid).all(1) & (grid[:, 2] > 0)
        np.testing.assert_array_equal(pointcloud_to_xyz(msg), grid[keep])


def test_max_range_is_the_euclidean_distance_from_the_camera():
    depth = _scene_depth()
    intr = Intrinsics(20.0, 21.0, 7.5, 5.25, 16, 12)
    pts, keep = _expected_points(depth, intr)
    ranges = np.linalg.norm(pts, axis=1)
    limit = float(np.median(ranges[keep]))
    xyz = pointcloud_to_xyz(depth_to_pointcloud(depth, intr, _header(), max_range=limit))
    inside = keep & (np.sqrt((pts * pts).sum(1)) <= limit)
    assert 0 < inside.sum() < keep.sum()
    np.testing.assert_array_equal(xyz, pts[inside])
    # A range cut, not a depth cut: some points nearer than the limit in Z are cut for their range.
    assert ((pts[:, 2] < limit) & keep & ~inside).any()


def test_rgb_is_packed_as_0x00rrggbb_and_unpacks_to_the_source_colours():
    depth = _scene_depth()
    rgb = _rgb(9, 12, 16)
    intr = Intrinsics(20.0, 21.0, 7.5, 5.25, 16, 12)
    msg = depth_to_pointcloud(depth, intr, _header(), rgb=rgb, decimation=2)
    assert [(f.name, f.offset, f.datatype) for f in msg.fields][-1] == ("rgb", 12, PointField.FLOAT32)
    assert msg.point_step == 16
    full, _ = _expected_points(depth, intr, 2)
    keep = np.isfinite(full).all(1) & (full[:, 2] > 0)
    colours = rgb[::2, ::2].reshape(-1, 3)[keep].astype(np.uint32)
    records = _cloud_records(msg, True)
    np.testing.assert_array_equal(
        records["rgb"], (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    )
    np.testing.assert_array_equal(pointcloud_to_rgb(msg), colours)
    np.testing.assert_array_equal(pointcloud_to_xyz(msg), full[keep])


def test_an_organised_cloud_keeps_the_pixel_grid_with_nan_holes():
    depth = _scene_depth()
    rgb = _rgb(4, 12, 16)
    intr = Intrinsics(20.0, 21.0, 7.5, 5.25, 16, 12)
    full, keep = _expected_points(depth, intr)
    limit = float(np.median(np.linalg.norm(full[keep], axis=1)))
    msg = depth_to_pointcloud(depth, intr, _header(), rgb=rgb, decimation=2, max_range=limit, organized=True)
    # depth_image_proc's layout: one row per (decimated) image row, NaN where the depth says nothing.
    assert (msg.height, msg.width, msg.row_step) == (6, 8, 8 * msg.point_step) and not msg.is_dense
    grid = full.reshape(12, 16, 3)[::2, ::2].reshape(-1, 3)
    inside = np.isfinite(grid).all(1) & (grid[:, 2] > 0) & (np.linalg.norm(grid, axis=1) <= limit)
    assert 0 < inside.sum() < inside.size
    xyz = pointcloud_to_xyz(msg)
    np.testing.assert_array_equal(xyz[inside], grid[inside])
    assert np.isnan(xyz[~inside]).all()
    # Colours stay on every pixel, the holes' too, row by row.
    np.testing.assert_array_equal(pointcloud_to_rgb(msg), rgb[::2, ::2].reshape(-1, 3))


def test_point_cloud_reader_handles_organised_padded_clouds():
    # 2 rows of 2 points, point_step 20 (4 pad bytes), row_step 44 (4 pad bytes per row), rgb as uint32.
    rows = []
    for r in range(2):
        row = b""
        for c in range(2):
            row += (
                np.array([r, c, 1.0 + r + c], np.float32).tobytes()
                + np.uint32(0x102030 + c).tobytes()
                + b"pad!"
            )
        rows.append(row + b"PADS")
    msg = PointCloud2(height=2, width=2, point_step=20, row_step=44, is_bigendian=sys.byteorder == "big")
    msg.fields = [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")
    ]
    msg.fields.append(PointField(name="rgb", offset=12, datatype=PointField.UINT32, count=1))
    msg.data = array.array("B", b"".join(rows))
    np.testing.assert_array_equal(pointcloud_to_xyz(msg), [[0, 0, 1], [0, 1, 2], [1, 0, 2], [1, 1, 3]])
    np.testing.assert_array_equal(pointcloud_to_rgb(msg)[:2], [[0x10, 0x20, 0x30], [0x10, 0x20, 0x31]])


def test_point_cloud_argument_errors():
    depth = _scene_depth()
    intr = Intrinsics(20.0, 21.0, 7.5, 5.25, 16, 12)
    with pytest.raises(ConversionError, match="depth is 16x12 but the intrinsics are for 7x5"):
        depth_to_pointcloud(depth, K, _header())
    with pytest.raises(ConversionError, match="decimation must be >= 1"):
        depth_to_pointcloud(depth, intr, _header(), decimation=0)
    with pytest.raises(ConversionError, match="max_range must be > 0"):
        depth_to_pointcloud(depth, intr, _header(), max_range=0.0)
    with pytest.raises(ConversionError, match="colour image shape"):
        depth_to_pointcloud(depth, intr, _header(), rgb=_rgb())
    with pytest.raises(ConversionError, match="no field 'rgb'"):
        pointcloud_to_rgb(depth_to_pointcloud(depth, intr, _header()))


def test_empty_cloud_when_nothing_is_valid():
    msg = depth_to_pointcloud(
        np.full((12, 16), np.nan, np.float32), Intrinsics(20, 20, 7.5, 5.5, 16, 12), _header()
    )
    assert (msg.width, msg.height, len(msg.data)) == (0, 1, 0)
    assert pointcloud_to_xyz(msg).shape == (0, 3)


# ------------------------------------------------------------------------------------------ disparity


def test_disparity_image_holds_f_t_over_z_and_marks_unknown_below_min():
    depth = np.array([[2.0, 4.0, np.nan], [0.0, np.inf, 50.0]], np.float32)
    f, t = 100.0, 0.5
    msg = disparity_image(depth, f, t, _header("cam"), min_disparity=1.5, max_disparity=40.0)
    assert msg.header.frame_id == "cam" and msg.image.header.frame_id == "cam"
    assert (msg.f, msg.t, msg.min_disparity, msg.max_disparity, msg.delta_d) == (100.0, 0.5, 1.5, 40.0, 0.0)
    assert (msg.valid_window.x_offset, msg.valid_window.width, msg.valid_window.height) == (0, 3, 2)
    assert msg.image.encoding == "32FC1" and (msg.image.width, msg.image.height) == (3, 2)
    d = image_to_depth(msg.image)
    # 25 and 12.5 px valid; NaN, 0 m, inf (d = 0 < min) and 50 m (d = 1 < min) are written as min - 1.
    np.testing.assert_allclose(d, [[25.0, 12.5, 0.5], [0.5, 0.5, 0.5]], rtol=1e-6)
    assert (d < msg.min_disparity).sum() == 4


def test_disparity_range_defaults_to_the_valid_values_and_clips_above_max():
    depth = np.array([[2.0, 4.0, 10.0, np.nan]], np.float32)
    msg = disparity_image(depth, 100.0, 0.5, _header())
    assert (msg.min_disparity, msg.max_disparity) == pytest.approx((5.0, 25.0))
    np.testing.assert_allclose(image_to_depth(msg.image), [[25.0, 12.5, 5.0, 4.0]], rtol=1e-6)
    capped = disparity_image(depth, 100.0, 0.5, _header(), min_disparity=0.0, max_disparity=20.0)
    np.testing.assert_allclose(image_to_depth(capped.image), [[-1.0, 12.5, 5.0, -1.0]], rtol=1e-6)
    with pytest.raises(ConversionError, match="need f > 0 pixels and T > 0 metres"):
        disparity_image(depth, 100.0, 0.0, _header())
