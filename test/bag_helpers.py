"""Writing rosbag2 recordings for tests: frames of the built-in world, turned into raw camera images with a
known lens distortion and rectifying rotation, stored as sensor_msgs/Image or CompressedImage with their
CameraInfo, in sqlite3 or MCAP storage (the ``rosbags`` writer, as a robot's recorder would produce)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from encoding_helpers import YUV422_ORDER, rgb_to_yuv422

from fg_depth_core.config import SynthConfig
from fg_depth_core.data.render import StereoFrame
from fg_depth_core.data.world import render_stereo_frame

#: A small built-in-world camera: 320x192, f 200 px, 0.3 m baseline (disparities 1-60 px).
WORLD = SynthConfig(width=320, height=192, focal=200.0, baseline=0.3, noise_std=0.0, right_gain_range=0.0)
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 50_000_000  # 20 Hz


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    return cv2.Rodrigues(np.array([rx, ry, rz], dtype=np.float64))[0]


@dataclass
class RawCamera:
    """A raw camera that rectifies to the rendered one: its own K, plumb_bob D and rectifying R."""

    k: np.ndarray
    d: np.ndarray
    r: np.ndarray

    def raw_image(self, rectified: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The raw (distorted, unrotated) image that rectifies to ``rectified`` under (K, D, R, P)."""
        h, w = rectified.shape[:2]
        u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        pts = np.stack([u.ravel(), v.ravel()], axis=1)[:, None]
        rect = cv2.undistortPoints(pts, self.k, self.d, R=self.r, P=p[:, :3]).reshape(h, w, 2)
        return cv2.remap(rectified, rect[..., 0], rect[..., 1], cv2.INTER_LINEAR)


def default_cameras(cfg: SynthConfig = WORLD) -> Dict[str, RawCamera]:
    """Left and right raw cameras with EuRoC-like barrel distortion and rotations of ~0.5-1 degree."""
    f, cx, cy = cfg.focal, (cfg.width - 1) / 2, (cfg.height - 1) / 2
    k_left = np.array([[f * 1.05, 0, cx + 3], [0, f * 1.04, cy - 2], [0, 0, 1]])
    k_right = np.array([[f * 1.03, 0, cx - 2], [0, f * 1.03, cy + 2], [0, 0, 1]])
    return {
        "left": RawCamera(k_left, np.array([-0.28, 0.07, 2e-4, 2e-5, 0]), _rotation(7e-3, -8e-3, 4e-3)),
        "right": RawCamera(k_right, np.array([-0.27, 0.068, -1e-4, -3e-5, 0]), _rotation(7e-3, -9e-3, -3e-3)),
    }


def projections(cfg: SynthConfig = WORLD) -> Dict[str, np.ndarray]:
    """The rectified P of both cameras: the rendered intrinsics, P_right[0,3] = -f * baseline."""
    f, cx, cy = cfg.focal, (cfg.width - 1) / 2, (cfg.height - 1) / 2
    p = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]], dtype=np.float64)
    right = p.copy()
    right[0, 3] = -f * cfg.baseline
    return {"left": p, "right": right}


@dataclass
class BagSpec:
    """What :func:`write_stereo_bag` records."""

    storage: str = "sqlite3"  # or "mcap"
    compressed: Optional[str] = None  # None (sensor_msgs/Image), "png" or "jpeg"
    encoding: str = "rgb8"  # Image encoding: rgb8, bgr8, mono8 or a 4:2:2 YUV one (yuv422_yuy2, ...)
    distort: bool = True
    frames: int = 3
    #: Right stamp offset (ns) per frame; a list longer than frames is cut.
    right_offsets_ns: Sequence[int] = ()
    #: Left frames (indices) whose right partner is not recorded.
    drop_right: Sequence[int] = ()
    prefix: str = "/stereo"
    p_override: Dict[str, np.ndarray] = field(default_factory=dict)
    #: Raw cameras by side ("left", "right") instead of default_cameras'.
    cameras: Dict[str, RawCamera] = field(default_factory=dict)


def render_frames(n: int, cfg: SynthConfig = WORLD) -> List[StereoFrame]:
    return [render_stereo_frame(cfg, "train", i) for i in range(n)]


def write_stereo_bag(
    path: Path, frames: Sequence[StereoFrame], spec: BagSpec, cfg: SynthConfig = WORLD
) -> Path:
    """Record ``frames`` as a stereo bag at ``path`` (a rosbag2 folder); returns ``path``.

    Topics: <prefix>/left/image_raw[/compressed], <prefix>/left/camera_info and the same for right.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    cams = {**default_cameras(cfg), **spec.cameras}
    ps = {**projections(cfg), **spec.p_override}
    plugin = StoragePlugin.MCAP if spec.storage == "mcap" else StoragePlugin.SQLITE3
    image_type = "sensor_msgs/msg/CompressedImage" if spec.compressed else "sensor_msgs/msg/Image"
    suffix = "/compressed" if spec.compressed else ""
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for side in ("left", "right"):
            topic = f"{spec.prefix}/{side}/image_raw{suffix}"
            conns[side] = writer.add_connection(topic, image_type, typestore=ts)
            conns[side + "_info"] = writer.add_connection(
                f"{spec.prefix}/{side}/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts
            )
        for i, frame in enumerate(frames[: spec.frames]):
            for side in ("left", "right"):
                stamp = START_NS + i * PERIOD_NS
                if side == "right":
                    if i in spec.drop_right:
                        continue
                    stamp += int(spec.right_offsets_ns[i]) if i < len(spec.right_offsets_ns) else 0
                sec, nsec = divmod(stamp, 1_000_000_000)
                header = T["std_msgs/msg/Header"](
                    stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=f"{side}_optical"
                )
                view = frame.left if side == "left" else frame.right
                cam = cams[side]
                raw = cam.raw_image(view, ps[side]) if spec.distort else view
                image = _image_msg(T, header, raw, spec)
                writer.write(conns[side], stamp, ts.serialize_cdr(image, image_type))
                info = _info_msg(T, header, cam, ps[side], raw.shape, spec.distort)
                info_bytes = ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo")
                writer.write(conns[side + "_info"], stamp, info_bytes)
    return path


def _image_msg(T, header, rgb: np.ndarray, spec: BagSpec):
    if spec.compressed:
        ext = ".png" if spec.compressed == "png" else ".jpg"
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return T["sensor_msgs/msg/CompressedImage"](
            header=header, format=f"bgr8; {spec.compressed} compressed bgr8", data=buf.reshape(-1)
        )
    if spec.encoding in YUV422_ORDER:
        pixels = rgb_to_yuv422(rgb, spec.encoding)  # two bytes a pixel
    elif spec.encoding == "mono8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif spec.encoding == "bgr8":
        pixels = rgb[:, :, ::-1]
    else:
        pixels = rgb
    h, w = rgb.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(h, -1)
    return T["sensor_msgs/msg/Image"](
        header=header,
        height=h,
        width=w,
        encoding=spec.encoding,
        is_bigendian=0,
        step=rows.shape[1],
        data=rows.reshape(-1),
    )


def _info_msg(T, header, cam: RawCamera, p: np.ndarray, shape, distorted: bool):
    h, w = shape[:2]
    k = cam.k if distorted else p[:, :3]
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](
        header=header,
        height=h,
        width=w,
        distortion_model="plumb_bob",
        d=cam.d if distorted else np.zeros(5),
        k=np.asarray(k, dtype=np.float64).reshape(-1),
        r=(cam.r if distorted else np.eye(3)).reshape(-1),
        p=np.asarray(p, dtype=np.float64).reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )
