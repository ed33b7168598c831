"""Calibration frames for static int8 quantisation (deploy/quantize.py): camera images of the data a model
will see, fitted to the network input exactly as the runtime fits them.

Where they come from:

- by default, the checkpoint's own training data, which its stored configuration names (``data.dataset``
  and ``data.path``): the built-in world's train split (rendered on the fly: it is deterministic), a
  stereo folder's or KITTI's training split, or the rectified pairs of a bag (``RUN_DIR/bag_frames``, the
  trainer's cache, beside the checkpoint);
- or any PATH: a rosbag2 recording (a folder with metadata.yaml, or a .mcap / .db3 file), a stereo folder
  (calib.yaml, left/, right/), a folder rendered by ``fg-depth synth`` (its train/ split), or a KITTI raw
  tree (date folders).

Only the left (target) view of each pair is used; ``count`` frames are picked evenly over the source, so a
recording contributes its beginning, middle and end alike.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Mapping, Optional, Union

import numpy as np

from fg_depth_core.errors import FgDepthError

if TYPE_CHECKING:
    from fg_depth_core.config import Config

PathLike = Union[str, "os.PathLike[str]"]

#: Calibration frames when the user names no count: enough for stable activation ranges on a DepthNet
#: (bench/quantization.py measures the accuracy this gives), few enough to calibrate in about a minute on a
#: 2-core CPU at 640x192.
DEFAULT_CALIBRATION_FRAMES = 32
#: Single-file rosbag2 storages.
BAG_SUFFIXES = (".mcap", ".db3")


class CalibrationError(FgDepthError):
    """No calibration frames can be read: a missing or unrecognised source, an empty one, a bad count."""


# ------------------------------------------------------------------------------------------ pure functions


def pick_indices(total: int, count: int) -> List[int]:
    """``min(count, total)`` distinct indices spread evenly over ``range(total)``, first and last included
    (one frame: the middle one)."""
    if count < 1:
        raise CalibrationError(f"calibration frames: expected >= 1, got {count}")
    if total < 1:
        raise CalibrationError("calibration source: it holds no frames")
    if count == 1:
        return [(total - 1) // 2]
    n = min(count, total)
    return sorted({int(round(i * (total - 1) / (n - 1))) for i in range(n)})


def source_kind(path: PathLike) -> str:
    """What a calibration PATH is: "bag", "folder" (a stereo folder), "synth" (a folder rendered by
    ``fg-depth synth`` holding train/) or "kitti" (a KITTI raw tree); CalibrationError naming the path and
    the layouts it could have had otherwise."""
    from fg_depth_core.data.folder import CALIB_FILE

    path = Path(path)
    if not path.exists():
        raise CalibrationError(f"--calibration {path}: not found")
    if path.is_file():
        if path.suffix.lower() in BAG_SUFFIXES:
            return "bag"
        raise CalibrationError(
            f"--calibration {path}: a file, but not a rosbag2 storage file ({', '.join(BAG_SUFFIXES)})"
        )
    if (path / "metadata.yaml").is_file():
        return "bag"
    if (path / CALIB_FILE).is_file():
        return "folder"
    if (path / "train" / CALIB_FILE).is_file():
        return "synth"
    if any(path.glob("*/*/image_02/data")):
        return "kitti"
    raise CalibrationError(
        f"--calibration {path}: not a calibration source; expected a rosbag2 recording (metadata.yaml, or "
        f"a .mcap / .db3 file), a stereo folder ({CALIB_FILE}, left/, right/), a folder written by "
        "fg-depth synth (train/) or a KITTI raw tree (<date>/<drive>/image_02/data/)"
    )


# --------------------------------------------------------------------------------------------- sources


@dataclass
class CalibrationFrames:
    """``count`` frames of a source: :meth:`images` reads them one at a time (H,W,3) uint8 RGB at the source's
    own resolution; ``description`` says what they are ("32 of 120 frames of ..."); ``root`` is the folder
    they are read from (None when rendered)."""

    description: str
    load: Callable[[int], np.ndarray]
    indices: List[int]
    root: Optional[Path] = None

    def __len__(self) -> int:
        return len(self.indices)

    def images(self) -> Iterator[np.ndarray]:
        for index in self.indices:
            yield self.load(index)


def _from_dataset(dataset: Any, count: int, what: str) -> CalibrationFrames:
    indices = pick_indices(len(dataset), count)
    root = getattr(dataset, "root", None)
    return CalibrationFrames(
        f"{len(indices)} of {len(dataset)} frames of {what}",
        lambda i: dataset.load(i).left,
        indices,
        Path(root) if root is not None else None,
    )


def _synth_frames(cfg: "Config", count: int) -> CalibrationFrames:
    from fg_depth_core.data.world import render_frame

    synth = cfg.data.synth
    indices = pick_indices(synth.train_frames, count)
    what = f"the built-in world's train split (seed {synth.seed}, rendered at {synth.width}x{synth.height})"
    return CalibrationFrames(
        f"{len(indices)} of {synth.train_frames} frames of {what}",
        lambda i: render_frame(synth, "train", i).left,
        indices,
    )


def training_frames(
    config: Mapping[str, Any], run_dir: PathLike, count: int, log: Optional[Callable[[str], None]] = None
) -> CalibrationFrames:
    """``count`` frames of the training data named by a checkpoint's stored ``config`` (a dict); ``run_dir``
    is the checkpoint's folder, where the trainer put the built-in world and a bag's rectified pairs."""
    from fg_depth_core.config import config_from_dict
    from fg_depth_core.data.base import DatasetError
    from fg_depth_core.data.factory import build_dataset
    from fg_depth_core.train.trainer import BAG_FRAMES_DIR

    cfg = config_from_dict(dict(config), "the checkpoint's config")
    kind, root = cfg.data.dataset, cfg.data.path
    if kind == "synth":
        return _synth_frames(cfg, count)
    run_dir = Path(run_dir)
    try:
        dataset = build_dataset(
            cfg.data, "train", path=root or None, work_dir=str(run_dir / BAG_FRAMES_DIR), log=log
        )
    except DatasetError as exc:
        raise CalibrationError(
            f"the checkpoint's training data ({kind} at {root or '(no path)'}) cannot be read here: {exc}; "
            "pass --calibration PATH (a stereo folder, KITTI raw tree or rosbag2 recording of the robot's "
            "camera)"
        ) from None
    return _from_dataset(dataset, count, f"the training data ({kind} {root}, train split)")


def path_frames(
    path: PathLike,
    count: int,
    config: Optional[Mapping[str, Any]] = None,
    work_dir: Optional[PathLike] = None,
    log: Optional[Callable[[str], None]] = None,
) -> CalibrationFrames:
    """``count`` frames of the source at ``path`` (:func:`source_kind`). A bag's stereo topics come from
    ``config`` (a checkpoint's) when it was trained on a bag with topics that this bag has, else from their
    names (fg_depth_core.data.bag.guess_stereo_topics); its pairs are rectified into ``work_dir``."""
    from fg_depth_core.data.folder import StereoFolder
    from fg_depth_core.data.kitti import KittiRaw

    path = Path(path)
    kind = source_kind(path)
    if kind == "folder":
        return _from_dataset(StereoFolder(path, 1, 1), count, f"stereo folder {path}")
    if kind == "synth":
        return _from_dataset(StereoFolder(path / "train", 1, 1), count, f"{path / 'train'}")
    if kind == "kitti":
        # The target view alone: calibration needs no right image and no ground truth.
        dataset = KittiRaw(path, None, 1, 1, load_depth=False, target_only=True)
        return _from_dataset(dataset, count, f"KITTI raw tree {path}")
    if work_dir is None:
        raise CalibrationError(f"--calibration {path}: a bag needs a work folder to rectify its pairs into")
    return _from_dataset(_bag_pairs(path, count, config, Path(work_dir), log), count, f"bag {path}")


def _bag_pairs(
    path: Path, count: int, config: Optional[Mapping[str, Any]], work_dir: Path, log: Any
) -> Any:
    """The bag's pairs, every stride-th so that about ``count`` are rectified, as a stereo folder."""
    import dataclasses

    from fg_depth_core.config import BagConfig, config_from_dict
    from fg_depth_core.data.bag import bag_reader, extract_bag, guess_stereo_topics, topic_stats
    from fg_depth_core.data.folder import StereoFolder

    with bag_reader(path) as reader:
        stats = topic_stats(reader)
    bag_cfg = BagConfig()
    if config is not None:
        trained = config_from_dict(dict(config), "the checkpoint's config").data.bag
        if trained.left_topic in stats and trained.right_topic in stats:
            bag_cfg = dataclasses.replace(trained, stride=1, max_frames=0, start=0.0, duration=0.0)
    if not bag_cfg.left_topic:
        topics = guess_stereo_topics(stats)
        if topics is None:
            images = sorted(name for name, s in stats.items() if "Image" in s.msgtype)
            raise CalibrationError(
                f"--calibration {path}: cannot tell its left and right image topics apart (image topics: "
                f"{', '.join(images) or 'none'}); calibrate on a stereo folder of its pairs instead "
                "(fg-depth train --bag writes one into RUN_DIR/bag_frames)"
            )
        bag_cfg = dataclasses.replace(bag_cfg, left_topic=topics[0], right_topic=topics[1])
    available = stats[bag_cfg.left_topic].count
    bag_cfg = dataclasses.replace(bag_cfg, stride=max(1, available // max(1, count)))
    folder = extract_bag(path, bag_cfg, work_dir, log=log)
    return StereoFolder(folder, 1, 1)


@contextlib.contextmanager
def calibration_frames(
    checkpoint: PathLike,
    config: Mapping[str, Any],
    count: int = DEFAULT_CALIBRATION_FRAMES,
    path: Optional[PathLike] = None,
    log: Optional[Callable[[str], None]] = None,
) -> Iterator[CalibrationFrames]:
    """``with calibration_frames(...) as frames:`` the frames to calibrate a checkpoint's export on: of
    ``path`` when given, else of its training data (``config``: the checkpoint's stored configuration;
    the checkpoint's folder is its run directory). A bag's rectified pairs live in a temporary folder until
    the block ends."""
    if not isinstance(count, int) or count < 1:
        raise CalibrationError(f"calibration frames: expected >= 1, got {count}")
    if path is None:
        yield training_frames(config, Path(checkpoint).parent, count, log)
        return
    with tempfile.TemporaryDirectory(prefix="fg-depth-calibration-") as tmp:
        yield path_frames(path, count, config, tmp, log)
