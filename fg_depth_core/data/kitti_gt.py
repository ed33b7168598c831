"""KITTI depth ground truth of a camera image: a velodyne scan projected into it (the Eigen-split protocol),
or the improved ground truth of the KITTI depth benchmark (``proj_depth/groundtruth``) when present.

Depth maps are (H,W) float32 metres, 0 where there is no measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

import numpy as np

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
) -> np.ndarray:
    """Sparse depth (height,width) float32 metres of ``camera``'s rectified image from velodyne ``points``.

    points: (N,3) or (N,4) velodyne-frame x (forward), y (left), z (up) in metres; a 4th column is ignored.
    Points with x < ``min_forward`` (behind the sensor) or depth <= 0 are dropped; each is projected with
    :meth:`KittiCalib.velo_to_image`, its pixel is (round(u) - index_base, round(v) - index_base) and points
    falling outside the image are dropped. Where several points share a pixel the nearest wins. The depth
    is the point's z in the camera frame.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] not in (3, 4):
        raise DatasetError(f"velodyne points: expected an (N,3) or (N,4) array, got shape {points.shape}")
    xyz = points[:, :3].astype(np.float64)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1) & (xyz[:, 0] >= min_forward)]
    homogeneous = np.concatenate([xyz, np.ones((len(xyz), 1))], axis=1)
    projected = homogeneous @ calib.velo_to_image(camera).T
    depth = projected[:, 2]
    in_front = depth > 0
    projected, depth = projected[in_front], depth[in_front]
    cols = np.round(projected[:, 0] / depth).astype(np.int64) - index_base
    rows = np.round(projected[:, 1] / depth).astype(np.int64) - index_base
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
