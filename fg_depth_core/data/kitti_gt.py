"""KITTI depth ground truth of a camera image: a velodyne scan projected into it (the Eigen-split protocol),
or the improved ground truth of the KITTI depth benchmark (``proj_depth/groundtruth``); one of the two per
evaluation, never mixed (``eval.gt``). ``write_gt_depths`` stores a split's maps in the layout of
Monodepth2's ``gt_depths.npz``.

Depth maps are (H,W) float32 metres, 0 where there is no measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from fg_depth_core.config import KITTI_GT_SOURCES, VELODYNE_DEPTHS
from fg_depth_core.data.base import DatasetError
from fg_depth_core.data.kitti_calib import KittiCalib

#: The reference Eigen-split ground truth (Eigen et al.'s MATLAB code, reproduced by Monodepth2) treats the
#: rounded projected coordinates as 1-based pixel indices, so pixel column = round(u) - 1. Keeping that base
#: makes our maps identical to the ones the published numbers were measured on.
PIXEL_INDEX_BASE = 1
#: KITTI depth PNGs (uint16): metres = value / 256; 0 = no measurement.
DEPTH_PNG_SCALE = 256.0
#: Where the KITTI depth benchmark keeps the improved ground truth inside a drive folder.
IMPROVED_GT_DIR = ("proj_depth", "groundtruth")
#: Sub-folders of the depth benchmark archive (data_depth_annotated.zip) that hold drive folders.
DEPTH_BENCHMARK_SPLITS = ("train", "val")
_VELO_RECORD = 4  # float32 x, y, z, reflectance


def check_gt_options(gt: str, velodyne_depth: str = "velodyne_x") -> None:
    """DatasetError unless ``gt`` names a ground-truth source (KITTI_GT_SOURCES) and ``velodyne_depth`` a
    velodyne depth (VELODYNE_DEPTHS)."""
    if gt not in KITTI_GT_SOURCES:
        raise DatasetError(f"KITTI ground truth: expected one of {list(KITTI_GT_SOURCES)}, got {gt!r}")
    if velodyne_depth not in VELODYNE_DEPTHS:
        raise DatasetError(
            f"KITTI velodyne depth: expected one of {list(VELODYNE_DEPTHS)}, got {velodyne_depth!r}"
        )


def read_velodyne(path: Union[str, Path]) -> np.ndarray:
    """A velodyne scan ``NNNNNNNNNN.bin``: (N,4) float32 x, y, z (metres, velodyne frame), reflectance."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: velodyne scan not found")
    data = np.fromfile(path, dtype=np.float32)
    if data.size % _VELO_RECORD:
        raise DatasetError(
            f"{path}: expected float32 records of {_VELO_RECORD} values (x, y, z, reflectance; 16 bytes "
            f"each), got {path.stat().st_size} bytes"
        )
    return data.reshape(-1, _VELO_RECORD)


def project_velodyne(
    points: np.ndarray,
    calib: KittiCalib,
    width: int,
    height: int,
    camera: int = 2,
    min_forward: float = 0.0,
    index_base: int = PIXEL_INDEX_BASE,
    velodyne_depth: str = "velodyne_x",
) -> np.ndarray:
    """Sparse depth (height,width) float32 metres of ``camera``'s rectified image from velodyne ``points``.

    points: (N,3) or (N,4) velodyne-frame x (forward), y (left), z (up) in metres; a 4th column is ignored.
    Points with x < ``min_forward`` (behind the sensor) or camera depth <= 0 are dropped; each is projected
    with :meth:`KittiCalib.velo_to_image`, its pixel is (round(u) - index_base, round(v) - index_base) and
    points falling outside the image are dropped. The value written is ``velodyne_depth``: "velodyne_x", the
    point's x in the velodyne frame (the Eigen ground truth of the published tables, Monodepth2's
    ``vel_depth=True``), or "camera_z", its z in ``camera``'s rectified frame. Where several points share a
    pixel the smallest value wins.
    """
    check_gt_options("velodyne", velodyne_depth)
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] not in (3, 4):
        raise DatasetError(f"velodyne points: expected an (N,3) or (N,4) array, got shape {points.shape}")
    xyz = points[:, :3].astype(np.float64)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1) & (xyz[:, 0] >= min_forward)]
    homogeneous = np.concatenate([xyz, np.ones((len(xyz), 1))], axis=1)
    projected = homogeneous @ calib.velo_to_image(camera).T
    camera_z = projected[:, 2]
    in_front = camera_z > 0
    projected, camera_z = projected[in_front], camera_z[in_front]
    depth = xyz[in_front, 0] if velodyne_depth == "velodyne_x" else camera_z
    cols = np.round(projected[:, 0] / camera_z).astype(np.int64) - index_base
    rows = np.round(projected[:, 1] / camera_z).astype(np.int64) - index_base
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    cols, rows, depth = cols[inside], rows[inside], depth[inside]
    out = np.zeros((int(height), int(width)), dtype=np.float32)
    if depth.size:
        pixel = rows * int(width) + cols
        # Sort by pixel, then depth: the first entry of each pixel's run is its nearest point.
        order = np.lexsort((depth, pixel))
        first = np.unique(pixel[order], return_index=True)[1]
        nearest = order[first]
        out[rows[nearest], cols[nearest]] = depth[nearest]
    return out


def read_depth_png(path: Union[str, Path]) -> np.ndarray:
    """A KITTI depth PNG (uint16, metres * 256, 0 = none) as (H,W) float32 metres."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: depth map not found")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"{path}: not a readable PNG")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError(
            f"{path}: expected a single-channel 16-bit PNG (KITTI depth, metres * {DEPTH_PNG_SCALE:g}), got "
            f"dtype {raw.dtype} with shape {raw.shape}"
        )
    return raw.astype(np.float32) / DEPTH_PNG_SCALE


def improved_gt_candidates(
    root: Union[str, Path], folder: str, camera: int, index: int, gt_root: Optional[Union[str, Path]] = None
) -> List[Path]:
    """Where the improved ground truth of frame ``index`` of ``folder`` ("<date>/<drive>") may lie, in the
    order searched.

    Without ``gt_root``: inside the raw drive folder (``<root>/<date>/<drive>/proj_depth/...``, the layout
    Monodepth2's export script reads) and in an unpacked ``data_depth_annotated`` next to the dates. With
    ``gt_root``: ``<gt_root>/{<date>/,,train/,val/}<drive>/proj_depth/...`` (the last two are the layout of
    the depth benchmark archive).
    """
    drive = folder.rpartition("/")[2]
    tail = Path(*IMPROVED_GT_DIR, f"image_0{camera}", f"{index:010d}.png")
    if gt_root is None:
        root = Path(root)
        bases = [root / folder] + [root / "data_depth_annotated" / s / drive for s in DEPTH_BENCHMARK_SPLITS]
    else:
        gt_root = Path(gt_root)
        bases = [gt_root / folder, gt_root / drive] + [gt_root / s / drive for s in DEPTH_BENCHMARK_SPLITS]
    return [base / tail for base in dict.fromkeys(bases)]


def find_improved_gt(
    root: Union[str, Path], folder: str, camera: int, index: int, gt_root: Optional[Union[str, Path]] = None
) -> Optional[Path]:
    """The first existing file of :func:`improved_gt_candidates`, or None."""
    for path in improved_gt_candidates(root, folder, camera, index, gt_root):
        if path.is_file():
            return path
    return None


#: The key under which Monodepth2's gt_depths.npz holds its maps (its evaluate_depth.py reads ``["data"]``).
GT_DEPTHS_KEY = "data"


def write_gt_depths(path: Union[str, Path], maps: Sequence[np.ndarray]) -> None:
    """Write depth maps in the layout of Monodepth2's ``gt_depths.npz``, atomically: one compressed entry
    ``data``, an object array whose element i is frame i's (H,W) float32 map in metres (0 = none), in split
    order. Reading it back needs ``np.load(path, allow_pickle=True)["data"]`` (the maps differ in size
    between recording dates, so the array holds objects)."""
    from fg_depth_core.atomic_io import atomic_write_with

    data = np.empty(len(maps), dtype=object)
    for i, depth in enumerate(maps):
        depth = np.asarray(depth, dtype=np.float32)
        if depth.ndim != 2:
            raise DatasetError(f"{path}: map {i}: expected an (H,W) depth map, got shape {depth.shape}")
        data[i] = depth
    try:
        atomic_write_with(path, lambda f: np.savez_compressed(f, **{GT_DEPTHS_KEY: data}))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot write ({exc})") from None


def read_gt_depths(path: Union[str, Path]) -> List[np.ndarray]:
    """The maps of a ``gt_depths.npz`` (Monodepth2's layout, see :func:`write_gt_depths`), in order."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: ground-truth file not found")
    try:
        with np.load(path, allow_pickle=True) as archive:
            if GT_DEPTHS_KEY not in archive.files:
                raise DatasetError(
                    f"{path}: expected an entry {GT_DEPTHS_KEY!r} (Monodepth2's gt_depths.npz), got "
                    f"{archive.files}"
                )
            data = archive[GT_DEPTHS_KEY]
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable .npz ({exc})") from None
    return [np.asarray(depth, dtype=np.float32) for depth in data]
