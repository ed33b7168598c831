"""sensor_msgs / stereo_msgs <-> numpy without cv_bridge: images, depth images, camera infos, point clouds
and disparity images.

Pure functions of messages and arrays; the node, the player and the tests share them. Conventions:

- RGB images are (H,W,3) uint8; depth maps are (H,W) float32 metres with NaN where unknown (REP 118).
- Pixel centres sit at integer coordinates, x right, y down, in the camera's optical frame (REP 103).
- A bad message raises :class:`ConversionError` whose text starts with ``what`` (e.g. the topic name) and
  names the field and the problem, so that the node can log it and drop the frame.

Message fields that need no ROS types to read (images, camera infos) are decoded by
fg_depth_core.camera_msgs, which training from bags shares; they are re-exported here. The maths
(back-projection, depth -> disparity, scaling of intrinsics) is fg_depth_core's: this module only moves
numbers between messages and arrays.
"""

from __future__ import annotations

import array
import sys
from typing import Optional, Tuple

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from fg_depth_core.camera import Intrinsics
from fg_depth_core.camera_msgs import (  # noqa: F401  (re-exported: the node and tests import them here)
    RGB_ENCODINGS,
    ConversionError,
    camera_info_to_intrinsics,
    image_rows,
    image_to_rgb,
    stereo_rig_from_infos,
    what_prefix,
)
from fg_depth_core.geometry_np import backproject, disparity_from_depth

DEPTH_ENCODING = "32FC1"
#: REP 118's other depth encoding: unsigned millimetres, 0 = unknown (read by image_to_depth only).
DEPTH_MM_ENCODING = "16UC1"
#: The PointField datatypes this module writes (FLOAT32) and reads (FLOAT32, UINT32 for packed colour).
FLOAT32 = PointField.FLOAT32
UINT32 = PointField.UINT32
_BIG_ENDIAN = sys.byteorder == "big"


def _bytes_field(buffer: np.ndarray) -> array.array:
    """``buffer``'s bytes as the array.array('B') that rclpy stores uint8[] fields in.

    Assigning an array.array skips the message setter's per-element range check (seconds for an image).
    """
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(buffer).view(np.uint8).reshape(-1))
    return out


def rgb_to_image(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """An Image of (H,W,3) uint8 RGB pixels ``rgb`` in ``encoding`` (rgb8, bgr8, rgba8 or bgra8, alpha 255),
    or of (H,W) / (H,W,1) uint8 grey pixels as mono8; rows unpadded (step = width * channels)."""
    rgb = np.asarray(rgb)
    encoding = encoding.lower()
    if encoding not in RGB_ENCODINGS:
        raise ConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(RGB_ENCODINGS)}"
        )
    if rgb.dtype != np.uint8:
        raise ConversionError(f"{encoding} image: expected uint8 pixels, got {rgb.dtype}")
    channels, order = RGB_ENCODINGS[encoding]
    if encoding == "mono8":
        if rgb.ndim == 3 and rgb.shape[2] == 1:
            rgb = rgb[:, :, 0]
        if rgb.ndim != 2:
            raise ConversionError(f"mono8 image: expected (H,W) grey pixels, got shape {rgb.shape}")
        pixels = rgb
    else:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ConversionError(f"{encoding} image: expected (H,W,3) RGB pixels, got shape {rgb.shape}")
        pixels = rgb[:, :, list(order)]
        if channels == 4:
            alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
            pixels = np.concatenate((pixels, alpha), axis=2)
    height, width = pixels.shape[:2]
    if width == 0 or height == 0:
        raise ConversionError(f"{encoding} image: size {width}x{height}; width and height must be > 0")
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(width * channels)
    msg.data = _bytes_field(pixels)
    return msg


def depth_to_image(depth: np.ndarray, header: Header) -> Image:
    """A 32FC1 Image of (H,W) depth in metres (REP 118: NaN = unknown, passed through as given), in the
    machine's byte order (is_bigendian set to match)."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.shape[0] == 0 or depth.shape[1] == 0:
        raise ConversionError(
            f"depth image: expected a non-empty (H,W) array of metres, got shape {depth.shape}"
        )
    height, width = depth.shape
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.encoding = DEPTH_ENCODING
    msg.is_bigendian = int(_BIG_ENDIAN)
    msg.step = int(width * 4)
    msg.data = _bytes_field(depth.astype(np.float32, copy=False))
    return msg


def image_to_depth(msg: Image, what: str = "") -> np.ndarray:
    """(H,W) float32 metres of a 32FC1 depth Image (either byte order, any step), or of a 16UC1 one in
    millimetres (0 becomes NaN). A copy, in native byte order."""
    encoding = str(msg.encoding).upper()
    if encoding == DEPTH_ENCODING:
        dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
    elif encoding == DEPTH_MM_ENCODING:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
    else:
        raise ConversionError(
            f"{what_prefix(what)}unsupported depth encoding {msg.encoding!r}; supported: "
            f"{DEPTH_ENCODING} (metres), {DEPTH_MM_ENCODING} (millimetres)"
        )
    rows = image_rows(msg, 1, dtype.itemsize, what)
    values = np.ascontiguousarray(rows).view(dtype).reshape(int(msg.height), int(msg.width))
    if encoding == DEPTH_MM_ENCODING:
        metres = values.astype(np.float32) / np.float32(1000.0)
        return np.where(values == 0, np.float32(np.nan), metres).astype(np.float32)
    return values.astype(np.float32)


# ------------------------------------------------------------------------------------------ camera infos


def intrinsics_to_camera_info(intr: Intrinsics, header: Header, tx: float = 0.0) -> CameraInfo:
    """A rectified CameraInfo for images of ``intr``'s size: K, P = [K | (tx, 0, 0)], R = I, plumb_bob with
    zero distortion. ``tx`` = -fx * baseline (pixels * metres) for the right camera of a stereo pair."""
    k = intr.matrix()
    p = np.zeros((3, 4))
    p[:, :3] = k
    p[0, 3] = float(tx)
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(intr.width), int(intr.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = k.reshape(-1)
    msg.r = np.eye(3).reshape(-1)
    msg.p = p.reshape(-1)
    return msg


# ------------------------------------------------------------------------------------------ point clouds


def _cloud_dtype(with_rgb: bool) -> np.dtype:
    names = ["x", "y", "z"] + (["rgb"] if with_rgb else [])
    return np.dtype(
        {"names": names, "formats": [np.float32] * len(names), "offsets": [4 * i for i in range(len(names))]}
    )


def depth_to_pointcloud(
    depth: np.ndarray,
    intr: Intrinsics,
    header: Header,
    rgb: Optional[np.ndarray] = None,
    decimation: int = 1,
    max_range: float = float("inf"),
    organized: bool = False,
) -> PointCloud2:
    """The point cloud of a depth map, in ``header``'s frame (the camera optical frame).

    depth: (H,W) metres, NaN / inf / <= 0 = unknown; intr: its intrinsics (same size). Points are
    fg_depth_core.geometry_np.backproject of the depth through K (as float32), taken at every
    ``decimation``-th row and column starting at pixel (0, 0). Unknown points and points farther than
    ``max_range`` metres (Euclidean distance from the camera centre) are left out: the cloud is unorganised
    (height 1, is_dense True), which keeps messages small when much of the image is sky or out of range.
    ``organized``: every pixel of the decimated grid, row by row (height H', width W', is_dense False), the
    left-out ones with x = y = z = NaN, as depth_image_proc publishes, for consumers that index by pixel.
    Fields x, y, z float32 (metres) and, when ``rgb`` (H,W,3) uint8 is given, rgb: a float32 holding
    0x00RRGGBB (PCL's packing; alpha 0 so the float is never NaN). Byte order is the machine's.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ConversionError(f"point cloud: expected an (H,W) depth map, got shape {depth.shape}")
    height, width = depth.shape
    if (width, height) != (intr.width, intr.height):
        raise ConversionError(
            f"point cloud: depth is {width}x{height} but the intrinsics are for {intr.width}x{intr.height}"
        )
    if rgb is not None and np.asarray(rgb).shape != (height, width, 3):
        raise ConversionError(
            f"point cloud: colour image shape {np.asarray(rgb).shape} does not match the depth's "
            f"({height}, {width}, 3)"
        )
    step = int(decimation)
    if step < 1:
        raise ConversionError(f"point cloud: decimation must be >= 1, got {decimation}")
    if not max_range > 0:
        raise ConversionError(f"point cloud: max_range must be > 0 metres, got {max_range}")
    points = backproject(depth, intr.matrix())[:, ::step, ::step]  # (3, H', W')
    xyz = points.reshape(3, -1)
    keep = np.isfinite(xyz).all(axis=0) & (xyz[2] > 0)
    if np.isfinite(max_range):
        keep &= np.sqrt((xyz * xyz).sum(axis=0)) <= max_range
    # Organised: every pixel, a dropped one as NaN; else only the kept points, gathered by index.
    kept = None if organized else np.flatnonzero(keep)
    if organized:
        xyz = np.where(keep, xyz, np.float32(np.nan))
    count = xyz.shape[1] if kept is None else kept.size
    dtype = _cloud_dtype(rgb is not None)
    # Fill a plain (N, point_step / 4) float32 array column by column with take(): several times faster
    # than boolean-masked assignment into structured fields; the bytes are the same.
    cloud = np.empty((count, dtype.itemsize // 4), dtype=np.float32)
    for axis in range(3):
        cloud[:, axis] = xyz[axis] if kept is None else xyz[axis].take(kept)
    if rgb is not None:
        colours = np.asarray(rgb, dtype=np.uint8)[::step, ::step].reshape(-1, 3)
        if kept is not None:
            colours = colours.take(kept, axis=0)
        # Write 0x00RRGGBB as the bytes of a native uint32: B, G, R, 0 little-endian; 0, R, G, B big-endian.
        packed = cloud.view(np.uint8)[:, 12:16]
        if _BIG_ENDIAN:
            packed[:, 0], packed[:, 1:] = 0, colours
        else:
            packed[:, :3], packed[:, 3] = colours[:, ::-1], 0
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = (int(points.shape[1]), int(points.shape[2])) if organized else (1, int(count))
    msg.fields = [
        PointField(name=name, offset=int(dtype.fields[name][1]), datatype=FLOAT32, count=1)
        for name in dtype.names
    ]
    msg.is_bigendian = _BIG_ENDIAN
    msg.point_step = int(dtype.itemsize)
    msg.row_step = int(dtype.itemsize * msg.width)
    msg.is_dense = not organized
    msg.data = _bytes_field(cloud)
    return msg


def _cloud_field(
    msg: PointCloud2, name: str, allowed: Tuple[int, ...], what: str, bits: bool = False
) -> np.ndarray:
    """Field ``name`` of every point (row-major, organised clouds flattened) as a 1-D native-order array;
    ``bits`` reads a float32 field's raw bits as uint32 (packed colours)."""
    fields = {f.name: f for f in msg.fields}
    if name not in fields:
        raise ConversionError(f"{what_prefix(what)}point cloud has no field {name!r} (has {sorted(fields)})")
    field = fields[name]
    if field.datatype not in allowed:
        raise ConversionError(
            f"{what_prefix(what)}point cloud field {name!r} has datatype {field.datatype}; "
            f"expected one of {allowed}"
        )
    kind = "u4" if bits or field.datatype == UINT32 else "f4"
    dtype = np.dtype((">" if msg.is_bigendian else "<") + kind)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if field.offset + dtype.itemsize > point_step:
        raise ConversionError(
            f"{what_prefix(what)}point cloud field {name!r} lies outside point_step {point_step}"
        )
    height, width = int(msg.height), int(msg.width)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < row_step * height or row_step < point_step * width:
        raise ConversionError(
            f"{what_prefix(what)}point cloud data ({data.size} bytes) does not hold {height} rows of {width} "
            f"points (row_step {row_step}, point_step {point_step})"
        )
    rows = data[: row_step * height].reshape(height, row_step)[:, : point_step * width]
    points = rows.reshape(height * width, point_step)[:, field.offset : field.offset + dtype.itemsize]
    return np.ascontiguousarray(points).view(dtype).reshape(-1).astype(dtype.newbyteorder("="))


def pointcloud_to_xyz(msg: PointCloud2, what: str = "") -> np.ndarray:
    """(N,3) float32 x, y, z (metres) of every point of ``msg``, read through its field offsets."""
    return np.stack([_cloud_field(msg, n, (FLOAT32,), what) for n in "xyz"], axis=1)


def pointcloud_to_rgb(msg: PointCloud2, what: str = "") -> np.ndarray:
    """(N,3) uint8 colours of ``msg``'s packed ``rgb`` field (0x00RRGGBB in a float32 or uint32)."""
    packed = _cloud_field(msg, "rgb", (FLOAT32, UINT32), what, bits=True)
    return np.stack(((packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF), axis=1).astype(np.uint8)


# ------------------------------------------------------------------------------------------ disparity


def disparity_image(
    depth: np.ndarray,
    focal: float,
    baseline: float,
    header: Header,
    min_disparity: Optional[float] = None,
    max_disparity: Optional[float] = None,
    delta_d: float = 0.0,
) -> DisparityImage:
    """A stereo_msgs/DisparityImage of depth (H,W) metres for a rig of focal length ``focal`` (pixels) and
    baseline ``baseline`` (metres): d = f * T / Z (fg_depth_core.geometry_np.disparity_from_depth).

    A rig's disparity offset doffs = cx_r - cx_l is not subtracted: the message defines its disparities as
    "pre-adjusted for any x-offset between the principal points", d = x_l - x_r - (cx_l - cx_r), so that
    Z = f * T / d holds (stereo_image_proc writes the same). The image disparity x_l - x_r, which
    image_geometry's StereoCameraModel.getZ takes together with the two camera infos, is d - doffs.

    min/max_disparity (pixels) default to the range of the valid disparities (0 when none). As the message
    defines, any disparity below min_disparity is invalid: unknown depth (NaN, <= 0) and disparities outside
    [min_disparity, max_disparity] are written as min_disparity - 1. The inner image is 32FC1 with the same
    header; valid_window is the whole image (a network predicts every pixel). delta_d = 0 says that the
    disparities are continuous (not quantised like block matching's 1/16 px).
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2 or depth.size == 0:
        raise ConversionError(
            f"disparity image: expected a non-empty (H,W) depth map, got shape {depth.shape}"
        )
    if not (np.isfinite(focal) and focal > 0 and np.isfinite(baseline) and baseline > 0):
        raise ConversionError(
            f"disparity image: need f > 0 pixels and T > 0 metres, got f={focal} T={baseline}"
        )
    disp = disparity_from_depth(depth, focal, baseline)
    # Z = +inf (REP 118: farther than measurable) is d = 0, a real disparity; NaN and Z <= 0 are unknown.
    known = ((np.isfinite(depth) & (depth > 0)) | np.isposinf(depth)) & np.isfinite(disp)
    lo = (
        float(min_disparity)
        if min_disparity is not None
        else float(disp[known].min())
        if known.any()
        else 0.0
    )
    hi = (
        float(max_disparity)
        if max_disparity is not None
        else float(disp[known].max())
        if known.any()
        else 0.0
    )
    if hi < lo:
        raise ConversionError(f"disparity image: max_disparity {hi} < min_disparity {lo}")
    valid = known & (disp >= lo) & (disp <= hi)
    out = np.where(valid, disp, np.float32(lo - 1.0)).astype(np.float32)
    msg = DisparityImage()
    msg.header = header
    msg.image = depth_to_image(out, header)
    msg.f = float(focal)
    msg.t = float(baseline)
    height, width = depth.shape
    msg.valid_window = RegionOfInterest(x_offset=0, y_offset=0, width=int(width), height=int(height))
    msg.min_disparity = lo
    msg.max_disparity = hi
    msg.delta_d = float(delta_d)
    return msg
