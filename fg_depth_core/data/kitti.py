"""KITTI raw as a stereo dataset: image_02/image_03 pairs, the rig of each date's calibration, split files and
depth ground truth (the projected velodyne scan or the improved ground truth, one of them per dataset); for
evaluation also target-only frames, which read only the image of the split line's camera.

Layout read (the one of the KITTI raw archives)::

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <root>/<date>/<date>_drive_XXXX_sync/image_02/data/NNNNNNNNNN.png   (left; .jpg copies are accepted)
    <root>/<date>/<date>_drive_XXXX_sync/image_03/data/NNNNNNNNNN.png   (right)
    <root>/<date>/<date>_drive_XXXX_sync/velodyne_points/data/NNNNNNNNNN.bin   (optional)
    <root>/<date>/<date>_drive_XXXX_sync/proj_depth/groundtruth/image_0X/NNNNNNNNNN.png   (optional)

Split files have one frame per line in the Monodepth format ``<date>/<drive> <frame index> <l|r>``. The side
names the target view. Side ``r`` is served mirrored: both images are flipped left-right and swapped, so the
target (mirrored image_03) is "left" and the source (mirrored image_02) sits at +B, the convention every
other part of fg-depth assumes (the flip-swap of docs/METHOD.md, "Data augmentation", applied on disk). Its
depth ground truth is that of image_03, mirrored likewise. A target-only dataset (evaluation) needs no source
view: it reads image_02 (side ``l``) or image_03 (side ``r``) alone, unmirrored, with that camera's P_rect and
ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from fg_depth_core.data.base import DatasetError, RawPair, StereoDataset
from fg_depth_core.data.kitti_calib import KittiCalib, load_kitti_calib
from fg_depth_core.data.kitti_gt import (
    check_gt_options,
    find_improved_gt,
    improved_gt_candidates,
    project_velodyne,
    read_depth_png,
    read_velodyne,
)
from fg_depth_core.image_io import read_rgb, read_stereo_pair

#: Image file suffixes tried for a frame, in order (the archives hold PNG; converted copies often JPEG).
IMAGE_SUFFIXES = (".png", ".jpg")
#: Split files shipped with the package, relative to fg_depth_core/data/splits (see its README.md).
SHIPPED_SPLITS = ("eigen/test_files.txt", "eigen_zhou/val_files.txt", "eigen_zhou/train_files.txt")
#: The split each role uses when the configuration names none.
DEFAULT_SPLITS = {
    "train": "eigen_zhou/train_files.txt",
    "val": "eigen_zhou/val_files.txt",
    "test": "eigen/test_files.txt",
}
_SIDES = {"l": 2, "r": 3}
_PKG_SPLITS = "pkg://fg_depth_core/data/splits/"


@dataclass(frozen=True)
class KittiFrame:
    """One split-file line: ``folder`` "<date>/<drive>", frame ``index``, target ``side`` ("l" or "r")."""

    folder: str
    index: int
    side: str = "l"

    @property
    def date(self) -> str:
        return self.folder.split("/")[0]

    @property
    def camera(self) -> int:
        """KITTI camera number of the target view: 2 (image_02) for "l", 3 (image_03) for "r"."""
        return _SIDES[self.side]

    def line(self) -> str:
        """The frame as a split-file line."""
        return f"{self.folder} {self.index} {self.side}"


def parse_split_line(line: str, where: str = "split line") -> Optional[KittiFrame]:
    """One split-file line -> KittiFrame; None for blank lines and ``#`` comments. ``where`` names the
    file and line number in the error message."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    fields = text.split()
    expected = (
        "expected '<date>/<drive> <frame index> <l|r>' (e.g. '2011_09_26/2011_09_26_drive_0048_sync 5 l')"
    )
    if len(fields) not in (2, 3):
        raise DatasetError(f"{where}: {expected}, got {line.strip()!r}")
    folder = fields[0].strip("/")
    parts = folder.split("/")
    if len(parts) != 2 or not all(parts):
        raise DatasetError(f"{where}: folder must be '<date>/<drive>', got {fields[0]!r}; {expected}")
    try:
        index = int(fields[1])
    except ValueError:
        raise DatasetError(
            f"{where}: frame index must be an integer, got {fields[1]!r}; {expected}"
        ) from None
    if index < 0:
        raise DatasetError(f"{where}: frame index must be >= 0, got {index}")
    side = fields[2] if len(fields) == 3 else "l"
    if side not in _SIDES:
        raise DatasetError(f"{where}: side must be 'l' or 'r', got {side!r}; {expected}")
    return KittiFrame(folder, index, side)


def parse_split(text: str, source: str = "split") -> List[KittiFrame]:
    """All frames of a split file's text; errors name ``source`` and the line number."""
    frames = []
    for number, line in enumerate(text.splitlines(), 1):
        frame = parse_split_line(line, f"{source}:{number}")
        if frame is not None:
            frames.append(frame)
    return frames


def _shipped_resource(name: str):
    return resources.files("fg_depth_core.data").joinpath("splits", *name.split("/"))


def read_split(spec: Union[str, Path]) -> List[KittiFrame]:
    """Frames of a split given as a file path or as a shipped split name ("eigen/test_files.txt",
    "eigen_zhou/val_files.txt"; the "_files.txt" suffix may be left out; the configs' spelling
    "pkg://fg_depth_core/data/splits/<name>" works too)."""
    path = Path(spec)
    if path.is_file():
        frames = parse_split(path.read_text(encoding="utf-8"), str(path))
    else:
        name = str(spec)
        if name.startswith(_PKG_SPLITS):
            name = name[len(_PKG_SPLITS) :]
        name = name.strip("/")
        if not name.endswith(".txt"):
            name += "_files.txt"
        shipped = _shipped_resource(name) if name in SHIPPED_SPLITS else None
        if shipped is None or not shipped.is_file():
            if name == "eigen_zhou/train_files.txt":
                raise DatasetError(
                    f"split {spec!r}: the Eigen-Zhou train list is not shipped with fg-depth (too large to "
                    f"vendor here, see fg_depth_core/data/splits/README.md). Save splits/eigen_zhou/"
                    f"train_files.txt of github.com/nianticlabs/monodepth2 and pass its path "
                    f"(data.train_split)"
                )
            available = [n for n in SHIPPED_SPLITS if _shipped_resource(n).is_file()]
            raise DatasetError(
                f"split {spec!r}: no such file, and not a shipped split (shipped: {available})"
            )
        frames = parse_split(shipped.read_text(encoding="utf-8"), f"splits/{name}")
    if not frames:
        raise DatasetError(f"split {spec!r}: no frames in it")
    return frames


def _image_path(drive_dir: Path, camera: int, index: int) -> Path:
    """The frame's image file; the .png name when no suffix exists (so messages name the expected file)."""
    stem = drive_dir / f"image_0{camera}" / "data" / f"{index:010d}"
    for suffix in IMAGE_SUFFIXES:
        candidate = stem.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return stem.with_suffix(IMAGE_SUFFIXES[0])


def find_frames(root: Union[str, Path], need_right: bool = True) -> List[KittiFrame]:
    """Every frame (side "l") of every drive under ``root`` that has image_02 and, with ``need_right``,
    image_03, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: KITTI raw root folder not found")
    frames = []
    for image_dir in sorted(root.glob("*/*/image_02/data")):
        drive_dir = image_dir.parent.parent
        folder = f"{drive_dir.parent.name}/{drive_dir.name}"
        indices = sorted(
            {int(p.stem) for p in image_dir.iterdir() if p.suffix in IMAGE_SUFFIXES and p.stem.isdigit()}
        )
        frames.extend(
            KittiFrame(folder, i) for i in indices if not need_right or _image_path(drive_dir, 3, i).is_file()
        )
    if not frames:
        hint = " (it is a date folder: pass its parent)" if (root / "calib_cam_to_cam.txt").is_file() else ""
        raise DatasetError(
            f"{root}: no KITTI raw frames found{hint}; expected <root>/<date>/<drive>/image_02/data/"
            f"NNNNNNNNNN.png" + (" with a matching image_03" if need_right else "")
        )
    return frames


class KittiRaw(StereoDataset):
    """KITTI raw stereo pairs with the calibration of their date and, when available, depth ground truth.

    root: folder holding the date folders. split_file: a split file path or shipped split name (see
    :func:`read_split`); None = every frame under ``root`` (:func:`find_frames`). width, height: network input
    size of the samples. gt: the one ground-truth source of every frame, "velodyne" (the scan projected into
    the target camera) or "improved" (``proj_depth/groundtruth`` maps); a frame without it has none.
    gt_root: where the improved ground truth lives if not inside the raw drives (see
    :func:`improved_gt_candidates`). load_depth: False skips ground truth altogether (training needs none).
    velodyne_depth: what a velodyne point writes, "velodyne_x" or "camera_z" (see
    :func:`~fg_depth_core.data.kitti_gt.project_velodyne`). target_only: read only the target camera's image
    (monocular evaluation); samples then have no "right" view and side ``r`` is not mirrored.
    """

    def __init__(
        self,
        root: Union[str, Path],
        split_file: Optional[Union[str, Path]] = None,
        width: int = 640,
        height: int = 192,
        gt: str = "velodyne",
        gt_root: Optional[Union[str, Path]] = None,
        load_depth: bool = True,
        velodyne_depth: str = "velodyne_x",
        target_only: bool = False,
    ) -> None:
        super().__init__(width, height)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: KITTI raw root folder not found")
        check_gt_options(gt, velodyne_depth)
        self.target_only = bool(target_only)
        self.frames = (
            read_split(split_file)
            if split_file is not None
            else find_frames(self.root, need_right=not self.target_only)
        )
        self.gt = gt
        self.velodyne_depth = velodyne_depth
        self.gt_root = Path(gt_root) if gt_root is not None else None
        if self.gt_root is not None and not self.gt_root.is_dir():
            raise DatasetError(f"{self.gt_root}: improved ground truth folder (gt_root) not found")
        self.load_depth = bool(load_depth)
        self._calibs: Dict[str, KittiCalib] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def name(self, index: int) -> str:
        return self.frames[index].line()

    def calib(self, date: str) -> KittiCalib:
        """The calibration of recording date ``date`` (read once, then cached)."""
        if date not in self._calibs:
            self._calibs[date] = load_kitti_calib(self.root / date)
        return self._calibs[date]

    def depth_source(self, index: int) -> Optional[str]:
        """Which ground truth :meth:`load` gives for frame ``index``: ``self.gt`` when its file exists, else
        None (also when depth is not loaded)."""
        if not self.load_depth:
            return None
        return self.gt if self._gt_file(self.frames[index]) is not None else None

    def gt_path(self, index: int) -> Path:
        """The ground-truth file of frame ``index``: the one found, or where it was expected (for messages;
        for improved ground truth the first place searched)."""
        frame = self.frames[index]
        found = self._gt_file(frame)
        if found is not None:
            return found
        if self.gt == "improved":
            return improved_gt_candidates(self.root, frame.folder, frame.camera, frame.index, self.gt_root)[0]
        return self._velodyne_path(frame)

    def ground_truth(self, index: int) -> Optional[np.ndarray]:
        """Frame ``index``'s ground truth, (H,W) float32 metres (0 = none) of its target camera, unmirrored,
        or None when it has none; reads no image unless the calibration lacks S_rect_02 (then the target
        image gives the velodyne map's size)."""
        frame = self.frames[index]
        calib = self.calib(frame.date)
        width = height = 0
        if self.gt == "velodyne" and calib.image_size is None and self._gt_file(frame) is not None:
            image = read_rgb(_image_path(self.root / frame.folder, frame.camera, frame.index))
            height, width = image.shape[:2]
        return self._depth(frame, calib, width, height)

    def frames_without_gt(self) -> List[int]:
        """Indices of the frames that have no ground-truth file of ``self.gt`` (cheap: file lookups only)."""
        return [i for i, frame in enumerate(self.frames) if self._gt_file(frame) is None]

    def load(self, index: int) -> RawPair:
        if self.target_only:
            return self._load_target(index)
        frame = self.frames[index]
        drive_dir = self.root / frame.folder
        calib = self.calib(frame.date)
        left, right = read_stereo_pair(
            _image_path(drive_dir, 2, frame.index), _image_path(drive_dir, 3, frame.index)
        )
        height, width = left.shape[:2]
        rig = calib.rig(width, height)
        depth = self._depth(frame, calib, width, height) if self.load_depth else None
        if frame.side == "r":
            left, right = np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1])
            rig = rig.flip_swapped()
            if depth is not None:
                depth = np.ascontiguousarray(depth[:, ::-1])
        return RawPair(left, right, rig, depth)

    def _load_target(self, index: int) -> RawPair:
        """The target camera's image alone (side ``l``: image_02, ``r``: image_03), unmirrored, with that
        camera's intrinsics and ground truth; the rig's baseline stays that of the pair."""
        frame = self.frames[index]
        calib = self.calib(frame.date)
        image = read_rgb(_image_path(self.root / frame.folder, frame.camera, frame.index))
        height, width = image.shape[:2]
        rig = calib.rig(width, height, camera=frame.camera)
        depth = self._depth(frame, calib, width, height) if self.load_depth else None
        return RawPair(image, None, rig, depth)

    def _velodyne_path(self, frame: KittiFrame) -> Path:
        return self.root / frame.folder / "velodyne_points" / "data" / f"{frame.index:010d}.bin"

    def _gt_file(self, frame: KittiFrame) -> Optional[Path]:
        """The existing ground-truth file of ``frame`` for ``self.gt``, or None."""
        if self.gt == "improved":
            return find_improved_gt(self.root, frame.folder, frame.camera, frame.index, self.gt_root)
        velodyne = self._velodyne_path(frame)
        return velodyne if velodyne.is_file() else None

    def _depth(self, frame: KittiFrame, calib: KittiCalib, width: int, height: int) -> Optional[np.ndarray]:
        """Ground truth of the target camera from ``self.gt`` only, unmirrored, at its own resolution
        (S_rect_02 for velodyne); None when the frame has none."""
        path = self._gt_file(frame)
        if path is None:
            return None
        if self.gt == "improved":
            return read_depth_png(path)
        gt_width, gt_height = calib.image_size or (width, height)
        return project_velodyne(
            read_velodyne(path),
            calib,
            gt_width,
            gt_height,
            camera=frame.camera,
            velodyne_depth=self.velodyne_depth,
        )
