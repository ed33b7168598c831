"""The built-in world as a dataset: each split is rendered once into a stereo folder, then read from disk.

``render_split`` writes frames ``000000``, ``000001``, ... of a split in the stereo-folder layout
(data/folder.py) plus ``world.yaml``, the world settings they were rendered with. Frames already present are
skipped, so an interrupted render resumes; a folder rendered with other settings is refused, never mixed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional

from fg_depth_core.camera import StereoRig
from fg_depth_core.config import DataConfig, SynthConfig
from fg_depth_core.data.base import DatasetError, RawPair, StereoDataset
from fg_depth_core.data.folder import (
    PathLike,
    StereoFolder,
    atomic_write,
    pair_complete,
    write_calib,
    write_pair,
)
from fg_depth_core.data.world import SPLITS, WORLD_VERSION, render_frame, split_frames, synth_intrinsics

#: The file recording what a rendered split folder holds.
STAMP_FILE = "world.yaml"
#: SynthConfig fields that only say how many frames to render: they may change between runs.
_COUNT_FIELDS = ("train_frames", "val_frames", "test_frames")


def frame_name(index: int) -> str:
    """File stem of frame ``index``."""
    return f"{index:06d}"


def world_stamp(cfg: SynthConfig, split: str) -> Dict[str, Any]:
    """What determines a split's pixels: world version, split and every SynthConfig field but the counts."""
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _COUNT_FIELDS}
    return {"world_version": WORLD_VERSION, "split": split, **fields}


def _check_stamp(out: Path, stamp: Dict[str, Any]) -> None:
    """Write ``out``/world.yaml, or check that the one there matches ``stamp``."""
    import yaml

    path = out / STAMP_FILE
    if path.is_file():
        try:
            old = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(old, dict):
            raise DatasetError(f"{path}: expected a mapping of world settings, got {old!r}")
        diff = [f"{k}: {old.get(k)!r} there, {v!r} now" for k, v in stamp.items() if old.get(k) != v]
        if diff:
            raise DatasetError(
                f"{path}: this folder was rendered with other world settings ({'; '.join(diff)}); delete it "
                "or render into another folder"
            )
        return
    if any((out / sub).is_dir() and any((out / sub).iterdir()) for sub in ("left", "right")):
        raise DatasetError(
            f"{out}: holds stereo pairs but no {STAMP_FILE}; render the world into an empty folder"
        )
    header = "# Settings the built-in world was rendered with (fg_depth_core.data.world); do not edit.\n"
    atomic_write(path, (header + yaml.safe_dump(stamp, sort_keys=False)).encode())


def render_split(
    cfg: SynthConfig, split: str, out: PathLike, frames: Optional[int] = None, progress: bool = True
) -> int:
    """Render frames 0..frames-1 of ``split`` (default: the config's count) into the stereo folder ``out``,
    skipping frames already there; returns the number rendered now."""
    if split not in SPLITS:
        raise DatasetError(f"synth split: expected one of {list(SPLITS)}, got {split!r}")
    count = split_frames(cfg, split) if frames is None else int(frames)
    if count < 1:
        raise DatasetError(f"synth frames: expected >= 1, got {count}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_stamp(out, world_stamp(cfg, split))
    write_calib(out, StereoRig(synth_intrinsics(cfg), cfg.baseline))
    missing = [i for i in range(count) if not pair_complete(out, frame_name(i))]
    if not missing:
        return 0
    from tqdm import tqdm

    desc = f"render {split} {cfg.width}x{cfg.height}"
    for i in tqdm(missing, desc=desc, unit="frame", disable=not progress, dynamic_ncols=True):
        write_pair(out, frame_name(i), render_frame(cfg, split, i))
    return len(missing)


def split_folder(root: PathLike, split: str) -> Path:
    """The folder of ``split`` under ``root``: ``root``/<split>, or ``root`` itself when it is a folder that
    ``fg-depth synth`` rendered for that split (its world.yaml says so)."""
    import yaml

    root = Path(root)
    stamp = root / STAMP_FILE
    if stamp.is_file():
        try:
            data = yaml.safe_load(stamp.read_text())
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and data.get("split") == split:
            return root
    return root / split


class SynthDataset(StereoDataset):
    """Split ``split`` of the built-in world (cfg.synth) at the network size cfg.width x cfg.height.

    The first use renders the split into ``root``/<split> (see :func:`split_folder`) with a progress bar;
    later uses read the PNGs, the exact depth (.npy, inf = sky) and calib.yaml from there.
    """

    def __init__(self, cfg: DataConfig, split: str, root: PathLike, progress: bool = True) -> None:
        super().__init__(cfg.width, cfg.height)
        self.split = split
        self.synth = cfg.synth
        self.folder_root = split_folder(root, split)
        count = split_frames(cfg.synth, split)
        render_split(cfg.synth, split, self.folder_root, count, progress)
        self.folder = StereoFolder(
            self.folder_root, cfg.width, cfg.height, names=[frame_name(i) for i in range(count)]
        )

    def __len__(self) -> int:
        return len(self.folder)

    def load(self, index: int) -> RawPair:
        return self.folder.load(index)

    def name(self, index: int) -> str:
        return f"{self.split}/{self.folder.name(index)}"
