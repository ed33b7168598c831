"""sensor_msgs Image, CompressedImage and CameraInfo fields -> numpy arrays and camera models, without ROS.

The functions read messages by field name only (``msg.encoding``, ``msg.data``, ``msg.k``, ``msg.p``, ...),
so rclpy messages (the node) and messages deserialised by the ``rosbags`` library (training from a bag)
go through the same code. Nothing here imports rclpy or a message package.

- RGB images come back as (H,W,3) uint8; grey images are replicated into three channels; 16-bit images keep
  their top byte; 4:2:2 YUV is converted with OpenCV's BT.601 (limited-range) rule.
- A bad message raises :class:`ConversionError` whose text starts with ``what`` (e.g. the topic name) and
  names the field and the problem.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from fg_depth_core.camera import CameraError, Intrinsics, StereoRig
from fg_depth_core.errors import FgDepthError


class ConversionError(FgDepthError, ValueError):
    """A message cannot be converted; the text names the message (topic), the field and the problem."""


#: 8-bit encodings image_to_rgb reads: channels per pixel and the index of R, G, B in each pixel.
RGB_ENCODINGS: Dict[str, Tuple[int, Tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}


#: Nanoseconds per second (header stamps are sec + nanosec).
NS_PER_S = 1_000_000_000


def stamp_ns(msg: Any) -> int:
    """msg.header.stamp as integer nanoseconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def what_prefix(what: str) -> str:
    """``what`` as the prefix of an error message ("" when empty)."""
    return f"{what}: " if what else ""


def image_rows(msg: Any, channels: int, itemsize: int, what: str) -> np.ndarray:
    """The pixel rows of ``msg`` as an (H, W * channels * itemsize) uint8 view of msg.data (no copy),
    after checking size, step and data length."""
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width <= 0 or height <= 0:
        raise ConversionError(
            f"{what_prefix(what)}image size is {width}x{height}: width and height must be > 0"
        )
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ConversionError(
            f"{what_prefix(what)}step is {step} bytes but a {msg.encoding} row of {width} pixels needs "
            f"{row_bytes} (width * {channels * itemsize})"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise ConversionError(
            f"{what_prefix(what)}data holds {data.size} bytes, fewer than step * height = "
            f"{step} * {height} = {step * height}"
        )
    # Rows may be padded (step > row_bytes): slice them off per row instead of copying.
    return data[: step * height].reshape(height, step)[:, :row_bytes]


#: Bayer encodings image_to_rgb demosaics (8-bit), with the OpenCV conversion to RGB. OpenCV names a pattern
#: by the second row's first two pixels, hence the apparent swap.
BAYER_ENCODINGS: Dict[str, str] = {
    "bayer_rggb8": "COLOR_BayerBG2RGB",
    "bayer_bggr8": "COLOR_BayerRG2RGB",
    "bayer_gbrg8": "COLOR_BayerGR2RGB",
    "bayer_grbg8": "COLOR_BayerGB2RGB",
}
#: 16-bit grey.
MONO16 = "mono16"
#: 16-bit-per-channel encodings image_to_rgb reads (either byte order, ``is_bigendian``): channels per pixel
#: and the index of R, G, B in each pixel. Reduced to 8 bits by :func:`top_byte`.
WIDE_ENCODINGS: Dict[str, Tuple[int, Tuple[int, int, int]]] = {
    MONO16: (1, (0, 0, 0)),
    "rgb16": (3, (0, 1, 2)),
    "bgr16": (3, (2, 1, 0)),
    "rgba16": (4, (0, 1, 2)),
    "bgra16": (4, (2, 1, 0)),
}
#: Packed 4:2:2 YUV (2 bytes a pixel; each pair of pixels shares one U and one V) with the OpenCV conversion
#: to RGB. ``yuv422`` is UYVY byte order (U Y0 V Y1) and ``yuv422_yuy2`` YUYV (Y0 U Y1 V), the order V4L2
#: USB cameras deliver and usb_cam / v4l2_camera publish; newer sensor_msgs name them ``uyvy`` and ``yuyv``.
#: OpenCV decodes both with ITU-R BT.601 limited-range coefficients (Y 16..235 and U, V 16..240 span the
#: full 0..255 RGB), the matrix UVC cameras declare by default (SMPTE 170M). A camera sending full-range
#: YUV comes out with slightly raised contrast (levels below 16 / above 235 clip).
YUV422_ENCODINGS: Dict[str, str] = {
    "yuv422": "COLOR_YUV2RGB_UYVY",
    "uyvy": "COLOR_YUV2RGB_UYVY",
    "yuv422_yuy2": "COLOR_YUV2RGB_YUY2",
    "yuyv": "COLOR_YUV2RGB_YUY2",
}
#: Every encoding image_to_rgb reads.
READ_ENCODINGS = (*RGB_ENCODINGS, *WIDE_ENCODINGS, *YUV422_ENCODINGS, *BAYER_ENCODINGS)


def top_byte(values: np.ndarray) -> np.ndarray:
    """uint8 of 16-bit ``values``: their high byte, floor(v / 256), so 0..65535 maps onto 0..255.

    Rather than round(v * 255 / 65535): the high byte gives back exactly the 8-bit value k of both ways
    drivers widen 8 bits to 16 (k << 8 and k * 257), and the top 8 bits of a 10/12-bit sensor whose driver
    left-aligns its samples; the two rules never differ by more than one level. Samples right-aligned in
    the container (a 12-bit camera publishing 0..4095 as mono16) come out dark (0..15): the 16-bit
    encodings declare the full 16-bit range, so this is not guessed per frame (a dark frame would be
    mistaken for a 12-bit one, and brightness would jump between frames).
    """
    return (values >> 8).astype(np.uint8)


def image_to_rgb(msg: Any, what: str = "") -> np.ndarray:
    """(H,W,3) uint8 RGB pixels of an Image ``msg`` in one of READ_ENCODINGS (any step/row padding).

    rgb8 and rgba8 come back as views of msg.data (no copy; copy before writing into them), the others as
    new arrays (channel order, grey replication, 16 -> 8 bits, YUV or demosaicing needs one). 16-bit
    encodings keep their top 8 bits (:func:`top_byte`); 4:2:2 YUV is converted as YUV422_ENCODINGS says.
    ``what`` prefixes error messages (the topic). Raises ConversionError for an unsupported encoding, a zero
    size, an odd width in 4:2:2 YUV, a step shorter than a row or data shorter than step * height.
    """
    encoding = str(msg.encoding).lower()
    height, width = int(msg.height), int(msg.width)
    if encoding in WIDE_ENCODINGS:
        channels, order = WIDE_ENCODINGS[encoding]
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        rows = image_rows(msg, channels, 2, what)
        values = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
        return np.ascontiguousarray(top_byte(values)[:, :, list(order)])
    if encoding in YUV422_ENCODINGS:
        import cv2

        if width % 2:
            raise ConversionError(
                f"{what_prefix(what)}{msg.encoding} image is {width} pixels wide: 4:2:2 YUV shares one U and "
                "one V between two pixels, so the width must be even"
            )
        packed = image_rows(msg, 2, 1, what).reshape(height, width, 2)
        return cv2.cvtColor(np.ascontiguousarray(packed), getattr(cv2, YUV422_ENCODINGS[encoding]))
    if encoding in BAYER_ENCODINGS:
        import cv2

        raw = image_rows(msg, 1, 1, what).reshape(height, width)
        return cv2.cvtColor(np.ascontiguousarray(raw), getattr(cv2, BAYER_ENCODINGS[encoding]))
    if encoding not in RGB_ENCODINGS:
        raise ConversionError(
            f"{what_prefix(what)}unsupported image encoding {msg.encoding!r}; "
            f"supported: {', '.join(READ_ENCODINGS)}"
        )
    channels, order = RGB_ENCODINGS[encoding]
    rows = image_rows(msg, channels, 1, what)
    pixels = rows.reshape(height, width, channels)
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if order == (0, 1, 2):
        return pixels[:, :, :3]
    # A reversed-stride view would be rejected by torch.from_numpy downstream: copy into RGB order.
    return np.ascontiguousarray(pixels[:, :, list(order)])


def compressed_to_rgb(msg: Any, what: str = "") -> np.ndarray:
    """(H,W,3) uint8 RGB pixels of a CompressedImage ``msg`` (JPEG or PNG, as image_transport's compressed
    plugin writes them: ``format`` like "jpeg", "png" or "bgr8; jpeg compressed bgr8").

    16-bit PNGs keep their top 8 bits (:func:`top_byte`, as raw 16-bit images). Raises ConversionError for
    compressedDepth or other formats, or data that does not decode.
    """
    import cv2

    fmt = str(msg.format).lower()
    if "compresseddepth" in fmt:
        raise ConversionError(
            f"{what_prefix(what)}CompressedImage format {msg.format!r} is a compressed depth image, not a "
            "camera image"
        )
    if fmt and not any(kind in fmt for kind in ("jpeg", "jpg", "png")):
        raise ConversionError(
            f"{what_prefix(what)}unsupported CompressedImage format {msg.format!r}; supported: jpeg, png"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ConversionError(
            f"{what_prefix(what)}CompressedImage data ({data.size} bytes, format {msg.format!r}) does not "
            "decode as JPEG or PNG"
        )
    if image.dtype == np.uint16:
        image = top_byte(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def message_to_rgb(msg: Any, what: str = "") -> np.ndarray:
    """(H,W,3) uint8 RGB of an Image (:func:`image_to_rgb`) or a CompressedImage (:func:`compressed_to_rgb`),
    told apart by their fields (a CompressedImage has ``format`` and no ``encoding``)."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_rgb(msg, what)
    return image_to_rgb(msg, what)


def info_matrix(values, shape: Tuple[int, int], field: str, what: str) -> np.ndarray:
    m = np.asarray(values, dtype=np.float64)
    if m.size != shape[0] * shape[1]:
        raise ConversionError(
            f"{what_prefix(what)}camera_info {field}: expected {shape[0] * shape[1]} values, got {m.size}"
        )
    return m.reshape(shape)


def camera_info_to_intrinsics(msg: Any, rectified: bool = True, what: str = "") -> Intrinsics:
    """The intrinsics of the images that go with ``msg``, at those images' size.

    rectified=True (images from image_rect topics): the left 3x3 of P, or K when P is all zero (a camera that
    publishes only K). rectified=False: K (distortion is not removed by this package). Binning and a region
    of interest, when set, are applied with fg_depth_core's crop/resize rules, so the result matches the
    binned/cropped image. Raises ConversionError naming the field for a zero size, an all-zero matrix, or
    NaN / non-positive focal lengths.
    """
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ConversionError(
            f"{what_prefix(what)}camera_info size is {width}x{height}: width and height must be > 0 "
            "(uncalibrated camera?)"
        )
    k = info_matrix(msg.k, (3, 3), "K", what)
    p = info_matrix(msg.p, (3, 4), "P", what)
    use_p = rectified and np.any(p != 0)
    field, matrix = ("P", p) if use_p else ("K", k)
    if not np.any(matrix != 0):
        raise ConversionError(
            f"{what_prefix(what)}camera_info {field} is all zero: the camera is not calibrated"
        )
    try:
        intr = Intrinsics.from_matrix(matrix, width, height)
        roi = msg.roi
        if roi.width > 0 and roi.height > 0:
            intr = intr.cropped(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
        bin_x, bin_y = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
        if bin_x > 1 or bin_y > 1:
            intr = intr.resized(intr.width // bin_x, intr.height // bin_y)
    except CameraError as exc:
        raise ConversionError(f"{what_prefix(what)}camera_info {field}: {exc}") from None
    return intr


def stereo_rig_from_infos(left: Any, right: Any, what: str = "") -> StereoRig:
    """The rectified rig of a stereo pair's camera infos (fg_depth_core.camera.StereoRig.from_projections):
    the left intrinsics of the images (after binning / ROI), the baseline B = Tx_l / fx_l - Tx_r / fx_r in
    metres, the disparity offset cx_r - cx_l in pixels of the images, and notes on accepted residuals (a
    vertical or depth offset of the right camera, fx / fy / cy differing a little between the two P) that
    the caller logs once per calibration.

    Raises ConversionError when the infos do not describe a rectified pair: sizes differ, a P is missing, the
    right camera is not at +x (swapped cameras, or a right Tx of the wrong sign), or a residual beyond its
    bound (fg_depth_core.camera.RIG_MAX_OFFSET_RATIO, RIG_MAX_FOCAL_MISMATCH, RIG_MAX_ROW_OFFSET); the text
    names the numbers and the bound.
    """
    prefix = what_prefix(what)
    if (left.width, left.height) != (right.width, right.height):
        raise ConversionError(
            f"{prefix}left camera_info is {left.width}x{left.height} but right is "
            f"{right.width}x{right.height}"
        )
    kl = camera_info_to_intrinsics(left, True, f"{prefix}left")
    kr = camera_info_to_intrinsics(right, True, f"{prefix}right")
    pl = info_matrix(left.p, (3, 4), "P", f"{prefix}left")
    pr = info_matrix(right.p, (3, 4), "P", f"{prefix}right")
    for side, p in (("left", pl), ("right", pr)):
        if not np.any(p != 0):
            raise ConversionError(
                f"{prefix}{side} camera_info P is all zero: a stereo pair needs rectified P"
            )
    try:
        labels = ("left camera_info P", "right camera_info P")
        rig = StereoRig.from_projections(pl, pr, int(left.width), int(left.height), labels, "camera_info P")
        # from_projections reads the full-frame P: the images' own (binned / cropped) intrinsics give the
        # left camera and, each view having its own ROI, the offset between the two views' cx.
        return StereoRig(kl, rig.baseline, kr.cx - kl.cx, rig.notes)
    except CameraError as exc:
        raise ConversionError(f"{prefix}{exc}") from None
