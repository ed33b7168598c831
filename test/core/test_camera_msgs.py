"""fg_depth_core.camera_msgs and fg_depth_core.rectify on messages built with the rosbags type store (the
classes bag reading deserialises into; the node's rclpy messages are covered by test_conversions)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from encoding_helpers import pack_rgb16, pack_yuv422, rgb_to_yuv422, smooth_rgb, yuv_to_rgb
from rosbags.typesys import Stores, get_typestore

from fg_depth_core.camera_msgs import ConversionError, compressed_to_rgb, image_to_rgb
from fg_depth_core.rectify import CameraCalibration, StereoRectifier, inside_raw, valid_crop

T = get_typestore(Stores.ROS2_HUMBLE).types
RNG = np.random.default_rng(0)


def _header():
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam")


def _image(pixels: np.ndarray, encoding: str, bigendian: int = 0):
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/Image"](
        header=_header(), height=h, width=w, encoding=encoding, is_bigendian=bigendian, step=data.size // h,
        data=data,
    )  # fmt: skip


def test_mono16_keeps_the_top_byte_in_either_byte_order():
    grey = RNG.integers(0, 65535, (4, 5), dtype=np.uint16)
    for order, flag in (("<u2", 0), (">u2", 1)):
        rgb = image_to_rgb(_image(grey.astype(order), "mono16", flag))
        assert rgb.shape == (4, 5, 3) and np.array_equal(rgb[:, :, 1], (grey >> 8).astype(np.uint8))


def test_bayer_demosaics_to_the_right_colour():
    # A uniform red scene seen through an RGGB mosaic: R at even rows / even columns only.
    mosaic = np.zeros((8, 8), np.uint8)
    mosaic[0::2, 0::2] = 200
    rgb = image_to_rgb(_image(mosaic, "bayer_rggb8"))
    inner = rgb[2:-2, 2:-2].reshape(-1, 3).mean(axis=0)
    assert inner[0] > 150 and inner[1] < 30 and inner[2] < 30


def test_unsupported_encoding_names_the_topic_and_the_choices():
    with pytest.raises(ConversionError, match=r"^/cam: unsupported image encoding '32FC1'; supported: rgb8"):
        image_to_rgb(_image(np.zeros((2, 2), np.float32), "32FC1"), "/cam")


def test_compressed_png_jpeg_and_bad_data():
    # Smooth and different per channel (R across, G down, B flat): JPEG keeps it, and a swap would show.
    u, v = np.meshgrid(np.linspace(0, 250, 24), np.linspace(0, 250, 16))
    rgb = np.stack([u, v, np.full_like(u, 40)], axis=2).astype(np.uint8)
    for fmt, ext, tolerance in (("png", ".png", 0), ("bgr8; jpeg compressed bgr8", ".jpg", 4)):
        buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].reshape(-1)
        msg = T["sensor_msgs/msg/CompressedImage"](header=_header(), format=fmt, data=buf)
        out = compressed_to_rgb(msg)
        assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() <= tolerance
    grey = cv2.imencode(".png", rgb[:, :, 0])[1].reshape(-1)
    out = compressed_to_rgb(T["sensor_msgs/msg/CompressedImage"](header=_header(), format="png", data=grey))
    assert np.array_equal(out[:, :, 2], rgb[:, :, 0])
    nine = np.arange(9, dtype=np.uint8)
    junk = T["sensor_msgs/msg/CompressedImage"](header=_header(), format="jpeg", data=nine)
    with pytest.raises(ConversionError, match=r"^/c: CompressedImage data \(9 bytes"):
        compressed_to_rgb(junk, "/c")
    depth = T["sensor_msgs/msg/CompressedImage"](header=_header(), format="16UC1; compressedDepth", data=grey)
    with pytest.raises(ConversionError, match="compressed depth image"):
        compressed_to_rgb(depth)


def _info(model: str, d, k, r, p, width=64, height=48, binning=0):
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(), height=height, width=width, distortion_model=model, d=np.asarray(d, float),
        k=np.ravel(k).astype(float), r=np.ravel(r).astype(float), p=np.ravel(p).astype(float),
        binning_x=binning, binning_y=binning, roi=roi,
    )  # fmt: skip


K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
P_LEFT = np.hstack([K, np.zeros((3, 1))])
P_RIGHT = P_LEFT.copy()
P_RIGHT[0, 3] = -50.0 * 0.1


def test_fisheye_maps_undo_equidistant_distortion():
    d = [0.05, -0.01, 0.002, 0.0]
    calib = CameraCalibration.from_info(_info("equidistant", d, K, np.eye(3), P_LEFT))
    assert calib.is_raw()
    map_x, map_y = calib.maps()
    # The rectified pixel at (u, v) must come from where the fisheye model projects its ray.
    u, v = 55, 40
    ray = np.array([[[(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], 1.0]]])
    raw = cv2.fisheye.projectPoints(ray, np.zeros(3), np.zeros(3), K, np.array(d))[0].reshape(2)
    assert np.allclose([map_x[v, u], map_y[v, u]], raw, atol=1e-2)
    with pytest.raises(ConversionError, match="distortion_model 'kannala' is not supported"):
        CameraCalibration.from_info(_info("kannala", [0.1], K, np.eye(3), P_LEFT)).maps()


def test_rectifier_modes_and_crop():
    d = [0.3, 0.08, 0, 0, 0]
    left, right = _info("plumb_bob", d, K, np.eye(3), P_LEFT), _info("plumb_bob", d, K, np.eye(3), P_RIGHT)
    rect = StereoRectifier(left, right)
    assert rect.enabled and rect.rig.baseline == pytest.approx(0.1)
    x0, y0, w, h = rect.crop
    # Pincushion distortion puts the rectified corners' sources outside the raw image: the crop trims them.
    assert (w, h) < (64, 48) and rect.rig.intrinsics.cx == pytest.approx(31.5 - x0)
    image = RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    a, b = rect(image, image)
    assert a.shape == (h, w, 3) and a.min() >= 0
    assert not StereoRectifier(left, right, mode="never").enabled
    with pytest.raises(ConversionError, match="left image is 10x48 but its camera_info says 64x48"):
        rect(image[:, :10], image)
    clean = [_info("plumb_bob", [0] * 5, K, np.eye(3), p) for p in (P_LEFT, P_RIGHT)]
    assert not StereoRectifier(*clean).enabled and StereoRectifier(*clean, mode="always").enabled


def test_binned_cameras_are_used_at_their_binned_size_and_refused_for_rectification():
    zero = [0] * 5
    binned = [_info("plumb_bob", zero, K, np.eye(3), p, binning=2) for p in (P_LEFT, P_RIGHT)]
    rect = StereoRectifier(*binned, what="/cams")
    assert not rect.enabled and rect.size == (32, 24) and rect.rig.intrinsics.fx == pytest.approx(25.0)
    small = RNG.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    assert rect(small, small)[0].shape == (24, 32, 3)
    raw = [_info("plumb_bob", [0.1, 0, 0, 0, 0], K, np.eye(3), p, binning=2) for p in (P_LEFT, P_RIGHT)]
    with pytest.raises(ConversionError, match=r"^/cams: left: camera_info sets binning"):
        StereoRectifier(*raw, what="/cams")
    odd = [_info("kannala", [0.1], K, np.eye(3), p) for p in (P_LEFT, P_RIGHT)]
    with pytest.raises(ConversionError, match=r"^/cams: left: camera_info distortion_model 'kannala'"):
        StereoRectifier(*odd, what="/cams")


def test_header_stamp_read_from_cdr_bytes_matches_deserialisation():
    from fg_depth_core.camera_msgs import stamp_ns
    from fg_depth_core.data.bag import header_stamp_ns

    store = get_typestore(Stores.ROS2_HUMBLE)
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=1_700_000_123, nanosec=987_654_321), frame_id="cam"
    )
    msg = T["sensor_msgs/msg/CompressedImage"](header=header, format="png", data=np.zeros(3, np.uint8))
    for little in (True, False):
        raw = store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage", little_endian=little)
        assert header_stamp_ns(raw) == stamp_ns(msg) == 1_700_000_123_987_654_321
    assert header_stamp_ns(b"\x01\x00\x00\x00" + bytes(8)) is None  # not CDR


def test_valid_crop_finds_an_all_valid_rectangle():
    valid = np.ones((30, 40), bool)
    valid[:3] = False
    valid[:, 35:] = False
    valid[20:, :2] = False
    x0, y0, w, h = valid_crop(valid)
    assert valid[y0 : y0 + h, x0 : x0 + w].all() and w * h >= 27 * 31
    inside = inside_raw(np.array([-0.1, 0.0, 9.0, 9.1]), np.zeros(4), 10, 10)
    assert inside.tolist() == [False, True, True, False]
    with pytest.raises(ConversionError, match="no valid pixel"):
        valid_crop(np.zeros((3, 3), bool))


def test_the_rectifier_cache_keeps_the_maps_until_the_calibration_changes():
    from fg_depth_core.rectify import MonoRectifier, RectifierCache

    cache = RectifierCache()
    d = [-0.2, 0.05, 0.0, 0.0, 0.0]
    raw = _info("plumb_bob", d, K, np.eye(3), P_LEFT)
    first = cache.mono(raw, "/cam/camera_info")
    assert first.enabled and cache.mono(_info("plumb_bob", d, K, np.eye(3), P_LEFT)) is first
    changed = cache.mono(_info("plumb_bob", [-0.1, 0.05, 0.0, 0.0, 0.0], K, np.eye(3), P_LEFT))
    assert changed is not first and cache.mono(raw) is not first  # only the newest calibration is kept
    # An already rectified camera passes images through, with the intrinsics of P.
    rectified = MonoRectifier(_info("plumb_bob", [0.0] * 5, K, np.eye(3), P_LEFT))
    image = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    assert not rectified.enabled and rectified(image) is image and rectified.intrinsics.fx == 50.0
    with pytest.raises(ConversionError, match=r"/cam: image is 32x48 but its camera_info says 64x48"):
        first(image[:, :32], "/cam")
    # P all zero (a camera calibrated without a rectified projection): undistorted to K.
    assert MonoRectifier(_info("plumb_bob", d, K, np.eye(3), np.zeros((3, 4)))).intrinsics.cx == 31.5



def test_the_rig_of_a_rectified_pair_is_built_once_per_calibration():
    from fg_depth_core.rectify import RectifierCache

    cache = RectifierCache()
    right = _info("plumb_bob", [0.0] * 5, K, np.eye(3), P_RIGHT)
    rig = cache.rig(_info("plumb_bob", [0.0] * 5, K, np.eye(3), P_LEFT), right, "/l, /r")
    assert cache.rig(_info("plumb_bob", [0.0] * 5, K, np.eye(3), P_LEFT), right) is rig
    wider = P_RIGHT.copy()
    wider[0, 3] *= 2.0  # twice the baseline: a new calibration, a new rig
    left = _info("plumb_bob", [0.0] * 5, K, np.eye(3), P_LEFT)
    other = cache.rig(left, _info("plumb_bob", [0.0] * 5, K, np.eye(3), wider))
    assert other is not rig and other.baseline == pytest.approx(2 * rig.baseline)
    # A refused calibration is refused on every call, not remembered as accepted.
    skewed = P_LEFT.copy()
    skewed[1, 3] = 5.0  # a vertical offset far beyond a rectified pair's residuals
    for _ in range(2):
        with pytest.raises(ConversionError, match="/l, /r: left camera_info P has a vertical"):
            cache.rig(_info("plumb_bob", [0.0] * 5, K, np.eye(3), skewed), right, "/l, /r")

# ------------------------------------------------------------------------------ 16-bit and 4:2:2 encodings


def _packed_image(rows: np.ndarray, width: int, encoding: str, bigendian: int = 0, pad: int = 0):
    """An Image of ``rows`` (H, row bytes) uint8 plus ``pad`` junk bytes per row, ``width`` pixels wide."""
    data = np.concatenate([rows, np.full((rows.shape[0], pad), 0xCD, np.uint8)], axis=1)
    return T["sensor_msgs/msg/Image"](
        header=_header(), height=rows.shape[0], width=width, encoding=encoding, is_bigendian=bigendian,
        step=data.shape[1], data=data.reshape(-1),
    )  # fmt: skip


@pytest.mark.parametrize("pad", [0, 6])
@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_decodes_as_bt601_limited_range_in_its_byte_order(encoding, pad):
    # Legal BT.601 samples (Y 16..235, U and V 16..240), one U and V per pixel pair: the expected RGB comes
    # from the standard's own constants, not from OpenCV.
    h, w = 6, 10
    y = RNG.integers(16, 236, (h, w)).astype(np.uint8)
    u, v = (RNG.integers(16, 241, (h, w // 2)).astype(np.uint8) for _ in range(2))
    rgb = image_to_rgb(_packed_image(pack_yuv422(y, u, v, encoding), w, encoding, pad=pad))
    expected = yuv_to_rgb(np.stack([y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1)], axis=-1))
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb - expected).max() <= 1.0  # OpenCV's fixed-point arithmetic rounds


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_an_rgb_image_encoded_as_yuv422_comes_back_within_the_chroma_subsampling(encoding):
    rgb = smooth_rgb(32, 64)
    out = image_to_rgb(_packed_image(rgb_to_yuv422(rgb, encoding), 64, encoding))
    # Each pixel pair shares the mean of its chroma and neighbours differ by at most 4 levels here.
    error = np.abs(out.astype(int) - rgb)
    assert error.max() <= 3 and error.mean() < 1.5, (error.max(), error.mean())


def test_yuv422_with_an_odd_width_or_a_wrong_step_or_short_data_is_refused():
    rows = rgb_to_yuv422(smooth_rgb(4, 8), "yuv422_yuy2")
    odd = _packed_image(rows[:, :14], 7, "yuv422_yuy2")
    short_step = _packed_image(rows, 8, "yuv422_yuy2")
    short_step.step = 15
    short_data = _packed_image(rows[:3], 8, "yuv422")
    short_data.height = 4
    for msg, pattern in (
        (odd, r"^/usb: yuv422_yuy2 image is 7 pixels wide: 4:2:2 YUV .* the width must be even"),
        (short_step, r"^/usb: step is 15 bytes but a yuv422_yuy2 row of 8 pixels needs 16 \(width \* 2\)"),
        (short_data, r"^/usb: data holds 48 bytes, fewer than step \* height = 16 \* 4 = 64"),
    ):
        with pytest.raises(ConversionError, match=pattern):
            image_to_rgb(msg, "/usb")


@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("encoding", ["rgb16", "bgr16", "rgba16", "bgra16", "mono16"])
def test_16_bit_images_keep_their_top_byte_in_the_declared_byte_order(encoding, bigendian, pad):
    rgb16 = RNG.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    # Three rows of exact cases: 8-bit k widened as k << 8 and as k * 257, and a 12-bit sample p stored
    # left-aligned (p << 4): each must come back as its 8-bit value.
    k = RNG.integers(0, 256, (7, 3)).astype(np.uint16)
    p12 = RNG.integers(0, 4096, (7, 3)).astype(np.uint16)
    rgb16[0], rgb16[1], rgb16[2] = k << 8, k * 257, p12 << 4
    values = rgb16[..., 0] if encoding == "mono16" else rgb16
    msg = _packed_image(pack_rgb16(values, encoding, bool(bigendian)), 7, encoding, bigendian, pad)
    rgb = image_to_rgb(msg)
    expected = (rgb16 // 256).astype(np.uint8)
    if encoding == "mono16":
        expected = np.repeat(expected[..., :1], 3, axis=2)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected)
    channel = slice(0, 1) if encoding == "mono16" else slice(None)
    np.testing.assert_array_equal(rgb[0, :, channel], k[:, channel])
    np.testing.assert_array_equal(rgb[1, :, channel], k[:, channel])
    np.testing.assert_array_equal(rgb[2, :, channel], (p12 >> 4)[:, channel])
    # Read in the other byte order, the same bytes are other numbers: the flag is obeyed.
    msg.is_bigendian = 1 - bigendian
    assert not np.array_equal(image_to_rgb(msg), expected)


def test_16_bit_images_with_an_8_bit_step_or_short_data_are_refused():
    rows = pack_rgb16(RNG.integers(0, 65536, (5, 7, 3), dtype=np.uint16), "rgb16", False)
    eight_bit_step = _packed_image(rows, 7, "rgb16")
    eight_bit_step.step = 21  # as if rgb8
    short = _packed_image(rows[:4], 7, "bgr16")
    short.height = 5
    for msg, pattern in (
        (eight_bit_step, r"^/cam: step is 21 bytes but a rgb16 row of 7 pixels needs 42 \(width \* 6\)"),
        (short, r"^/cam: data holds 168 bytes, fewer than step \* height = 42 \* 5 = 210"),
    ):
        with pytest.raises(ConversionError, match=pattern):
            image_to_rgb(msg, "/cam")
