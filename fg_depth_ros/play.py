"""``ros2 run fg_depth_ros play``: a dataset (the built-in world, a stereo folder, KITTI raw drives) published
as camera topics with camera_info at a chosen rate, like ``ros2 bag play`` for datasets.

Topics (relative, so a namespace or remapping places them), images rgb8, rows unpadded:

- mode ``mono``: ``image``, ``camera_info`` (the left view).
- mode ``stereo``: ``left/image_rect``, ``left/camera_info``, ``right/image_rect``, ``right/camera_info``.

camera_info is the rectified calibration at the published size: K, P = [K | 0] (right: its own K, whose cx
is the left cx plus the rig's disparity offset doffs, and P[0,3] = Tx = -fx * baseline), R = I, plumb_bob
with zero distortion. Both views of a pair carry the same stamp: the node
clock's now (``clock: now``, which follows /clock under use_sim_time) or frame_number / rate seconds
(``clock: synthetic``, reproducible). Parameters: :data:`PARAMETERS` (``ros2 param describe`` shows them).

Each frame is read right after the previous one is published, so reading overlaps the wait for the next
tick; a rate faster than reading simply plays as fast as frames can be read. Not looping, the player exits
(status 0) after the last frame. A missing or malformed dataset or a bad parameter stops it at start-up with
the reason on stderr and exit status 1. In-process (tests, demo): ``DatasetPlayer(parameters={...})`` with
``autostart=False`` and :meth:`DatasetPlayer.publish_next`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from fg_depth_core.data.base import RawPair
from fg_depth_core.errors import FgDepthError
from fg_depth_ros.conversions import intrinsics_to_camera_info, rgb_to_image
from fg_depth_ros.node_params import MODES
from fg_depth_ros.params import (
    Param,
    ParamError,
    build,
    declare,
    help_requested,
    param,
    parameter_table,
    usage,
)
from fg_depth_ros.qos import PROFILES, profile

DATASETS = ("synth", "folder", "kitti")
CLOCKS = ("now", "synthetic")
SYNTH_SPLITS = ("train", "val", "test")
MONO_TOPICS = ("image", "camera_info")
STEREO_TOPICS = ("left/image_rect", "left/camera_info", "right/image_rect", "right/camera_info")


class PlayError(ParamError):
    """A player parameter is invalid; the message names it."""


@dataclass(frozen=True)
class PlayParams:
    """Every parameter of the player (read-only after start-up), typed."""

    dataset: str = param(
        "synth", "what to play: the built-in world, a stereo folder or KITTI raw", choices=DATASETS
    )
    path: str = param(
        "",
        "synth: folder the world is rendered into ('' = render in memory, no files); folder: the stereo "
        "folder (left/, right/, calib.yaml); kitti: the raw root (date folders) or one drive folder",
    )
    split: str = param("test", "synth: which split of the built-in world (its seeds)", choices=SYNTH_SPLITS)
    split_file: str = param(
        "",
        "folder/kitti: a file of frame names picking and ordering the frames (kitti: also a shipped split "
        "name such as 'eigen'); '' = every frame, sorted",
    )
    rate: float = param(10.0, "frames per second (Hz)", minimum=1e-3)
    loop: bool = param(False, "start again after the last frame instead of exiting")
    mode: str = param(
        "stereo", "mono: image + camera_info; stereo: left/right image_rect + camera_info", choices=MODES
    )
    frame_id: str = param("camera_optical_frame", "frame_id of the (left) camera's optical frame")
    right_frame_id: str = param("camera_right_optical_frame", "frame_id of the right camera's optical frame")
    width: int = param(
        0,
        "published width in pixels, 0 = the dataset's own",
        minimum=0,
        rule="set width and height together",
    )
    height: int = param(0, "published height in pixels, 0 = the dataset's own", minimum=0)
    start: int = param(0, "index of the first frame", minimum=0, rule="before the last frame")
    count: int = param(0, "number of frames to play, 0 = all from start", minimum=0)
    clock: str = param(
        "now", "header stamps: the node clock's now, or frame_number / rate seconds", choices=CLOCKS
    )
    qos: str = param("reliable", "QoS of the published topics (keep last 5)", choices=PROFILES)


#: Every parameter of the player by name, in declaration order.
PARAMETERS: Dict[str, Param] = parameter_table(PlayParams)


# --------------------------------------------------------------------------------------------- sources


class _WorldSource:
    """The built-in world rendered in memory, frame by frame (no files)."""

    def __init__(self, split: str, width: int, height: int) -> None:
        from fg_depth_core.config import SynthConfig
        from fg_depth_core.data.world import resize_synth, split_frames

        cfg = SynthConfig()
        self.cfg = resize_synth(cfg, width, height) if width and height else cfg
        self.split = split
        self.frames = split_frames(self.cfg, split)

    def __len__(self) -> int:
        return self.frames

    def load(self, index: int) -> RawPair:
        from fg_depth_core.data.world import render_frame

        return render_frame(self.cfg, self.split, index)

    def name(self, index: int) -> str:
        return f"world/{self.split}/{index:06d}"


def open_dataset(dataset: str, path: str, split: str, split_file: str, width: int, height: int) -> Any:
    """A source of RawPairs (``len``, ``load(i)``, ``name(i)``) for the player; DatasetError if missing."""
    from fg_depth_core.config import DataConfig
    from fg_depth_core.data.base import DatasetError
    from fg_depth_core.data.factory import build_dataset

    if dataset == "synth":
        if not path:
            return _WorldSource(split, width, height)
        from fg_depth_core.data.world import resize_synth

        cfg = DataConfig(dataset="synth", path=path)
        if width and height:
            cfg.synth = resize_synth(cfg.synth, width, height)
        return build_dataset(cfg, split, path)
    if not path:
        raise DatasetError(f"parameter 'path': the {dataset!r} dataset needs a path")
    if dataset == "folder":
        return build_dataset(DataConfig(dataset="folder", path=path), "test", path, split_file or None)
    from fg_depth_core.data.kitti import KittiRaw

    root = Path(path)
    drive = None
    if (root / "image_02").is_dir():
        # One drive folder (<root>/<date>/<drive>): play its frames only.
        drive, root = f"{root.parent.name}/{root.name}", root.parent.parent
    source = KittiRaw(root, split_file or None, load_depth=False)
    if drive is not None:
        source.frames = [f for f in source.frames if f.folder == drive]
        if not source.frames:
            raise DatasetError(f"{path}: no frames of this drive with both image_02 and image_03")
    return source


def resize_pair(pair: RawPair, width: int, height: int) -> RawPair:
    """``pair`` at ``width`` x ``height`` (area interpolation; intrinsics by fg_depth_core's resize rule)."""
    import cv2

    if (pair.left.shape[1], pair.left.shape[0]) == (width, height):
        return pair
    views = [cv2.resize(v, (width, height), interpolation=cv2.INTER_AREA) for v in (pair.left, pair.right)]
    return RawPair(views[0], views[1], pair.rig.resized(width, height), None)


# ---------------------------------------------------------------------------------------------- player


class DatasetPlayer(Node):
    """The player node (module docstring). ``parameters`` ({name: value}) override :data:`PARAMETERS` in
    addition to the command line; ``autostart=False`` creates no timer (call :meth:`publish_next`). Raises
    FgDepthError (the dataset's DatasetError or PlayError) for a missing dataset or a bad parameter."""

    def __init__(
        self,
        node_name: str = "play",
        parameters: Optional[Dict[str, Any]] = None,
        autostart: bool = True,
        **node_kwargs: Any,
    ) -> None:
        overrides = list(node_kwargs.pop("parameter_overrides", None) or [])
        overrides += [Parameter(k, value=v) for k, v in (parameters or {}).items()]
        super().__init__(node_name, parameter_overrides=overrides, **node_kwargs)
        try:
            self._setup(autostart)
        except BaseException:
            self.destroy_node()
            raise

    def _setup(self, autostart: bool) -> None:
        self.settings = self._read()
        s = self.settings
        self.source = open_dataset(
            s.dataset, s.path, s.split, s.split_file, s.width, s.height
        )
        total = len(self.source)
        if s.start >= total:
            raise PlayError(f"parameter 'start': {s.start} is past the last frame ({total} frames)")
        end = total if s.count == 0 else min(total, s.start + s.count)
        self.indices: List[int] = list(range(s.start, end))
        self.stereo = s.mode == "stereo"
        qos = profile(s.qos)
        names = STEREO_TOPICS if self.stereo else MONO_TOPICS
        types = (Image, CameraInfo, Image, CameraInfo)
        self.publishers_by_topic = {t: self.create_publisher(m, t, qos) for t, m in zip(names, types)}
        self.published = 0
        self.done = False
        self._position = 0
        # Read the first frame now: a dataset that cannot be read fails at start-up, not at the first tick.
        self._pending = self._load(self._position)
        self.timer = self.create_timer(1.0 / s.rate, self._tick) if autostart else None
        k = self._pending[1].rig.intrinsics
        self.get_logger().info(
            f"playing {len(self.indices)} frames of {s.dataset} {s.path or '(in memory)'} at "
            f"{s.rate:g} Hz, {k.width}x{k.height}, {s.mode}{', looping' if s.loop else ''}"
        )

    def _read(self) -> PlayParams:
        """Declare every parameter and return the checked values."""
        s = build(PlayParams, declare(self, PARAMETERS, PlayError))
        if (s.width == 0) != (s.height == 0):
            raise PlayError(f"parameters 'width'/'height': set both or neither, got {s.width}x{s.height}")
        return s

    def _load(self, position: int) -> Tuple[int, RawPair]:
        index = self.indices[position]
        pair = self.source.load(index)
        w, h = self.settings.width, self.settings.height
        if w and h:
            pair = resize_pair(pair, w, h)
        return index, pair

    def _stamp(self) -> Any:
        if self.settings.clock == "synthetic":
            return Time(nanoseconds=int(round(self.published * 1e9 / self.settings.rate))).to_msg()
        return self.get_clock().now().to_msg()

    def _tick(self) -> None:
        self.publish_next()
        if self.done and self.timer is not None:
            self.timer.cancel()

    def publish_next(self) -> Optional[int]:
        """Publish the next frame (both views and infos with one stamp) and read the one after it.

        Returns the dataset index published, or None once every frame was played (never when looping).
        """
        if self.done:
            return None
        index, pair = self._pending
        stamp = self._stamp()
        left = Header(stamp=stamp, frame_id=self.settings.frame_id)
        k = pair.rig.intrinsics
        if self.stereo:
            right = Header(stamp=stamp, frame_id=self.settings.right_frame_id)
            pubs = self.publishers_by_topic
            # Infos first: a synchroniser then has each camera's calibration when its image arrives.
            pubs["left/camera_info"].publish(intrinsics_to_camera_info(k, left))
            pubs["right/camera_info"].publish(
                intrinsics_to_camera_info(pair.rig.right_intrinsics, right, tx=pair.rig.right_tx)
            )
            pubs["left/image_rect"].publish(rgb_to_image(pair.left, left))
            pubs["right/image_rect"].publish(rgb_to_image(pair.right, right))
        else:
            self.publishers_by_topic["camera_info"].publish(intrinsics_to_camera_info(k, left))
            self.publishers_by_topic["image"].publish(rgb_to_image(pair.left, left))
        self.published += 1
        self._position += 1
        if self._position == len(self.indices):
            if not self.settings.loop:
                self.done = True
                self._pending = None
                return index
            self._position = 0
        self._pending = self._load(self._position)
        return index


def main(args: Optional[List[str]] = None) -> int:
    """Console entry point: run the player until the last frame (or Ctrl-C); returns the exit status."""
    if help_requested(sys.argv if args is None else args):
        print(usage("play", __doc__.split("\n\n")[0], PARAMETERS))
        return 0
    rclpy.init(args=args)
    node: Optional[DatasetPlayer] = None
    try:
        node = DatasetPlayer()
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
        # Give subscribers a moment to take the last frame before the publishers go away.
        deadline = time.monotonic() + min(0.5, 1.0 / node.settings.rate)
        while rclpy.ok() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        return 0
    except FgDepthError as exc:
        print(f"[play] error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    from fg_depth_ros.entry import run

    sys.exit(run(main))
