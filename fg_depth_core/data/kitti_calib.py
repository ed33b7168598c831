"""KITTI raw calibration: ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt`` of one recording date.

Both files hold lines ``KEY: v1 v2 ...`` (row-major matrices); ``calib_time`` is text and ignored. What the
loader needs:

- ``P_rect_02`` / ``P_rect_03`` (12 numbers): rectified 3x4 projections of the left/right colour cameras. The
  rig (left intrinsics, baseline, disparity offset, notes on residuals such as their small vertical and depth
  offsets) comes from them through :meth:`StereoRig.from_projections`.
- ``R_rect_00`` (9): rectifying rotation of the reference camera 0, applied to velodyne points.
- ``S_rect_02`` (2, optional): width and height of the rectified images the projections refer to.
- ``R`` (9) and ``T`` (3) of ``calib_velo_to_cam.txt``: velodyne -> camera 0 (unrectified), metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from fg_depth_core.camera import CameraError, Intrinsics, StereoRig
from fg_depth_core.data.base import DatasetError

CAM_TO_CAM = "calib_cam_to_cam.txt"
VELO_TO_CAM = "calib_velo_to_cam.txt"
#: Keys whose value is text, not numbers.
_TEXT_KEYS = frozenset({"calib_time"})
#: The two colour cameras of the KITTI rig: image_02 (left) and image_03 (right).
CAMERAS = (2, 3)


def read_calib_file(path: Union[str, Path]) -> Dict[str, Union[np.ndarray, str]]:
    """All ``KEY: values`` lines of a KITTI calibration file: float64 arrays, or the raw text where the
    value is not numeric (checked only when a key is asked for, see :func:`calib_values`)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: calibration file not found")
    entries: Dict[str, Union[np.ndarray, str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise DatasetError(f"{path}:{number}: expected 'KEY: values', got {line.strip()!r}")
        key = key.strip()
        if key in _TEXT_KEYS:
            continue
        try:
            entries[key] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            entries[key] = value.strip()
    return entries


def calib_values(
    entries: Dict[str, Union[np.ndarray, str]], path: Union[str, Path], key: str, count: int
) -> np.ndarray:
    """The ``count`` numbers of ``key`` (float64, flat); DatasetError naming the file and key otherwise."""
    if key not in entries:
        raise DatasetError(f"{path}: missing key {key!r} (expected {count} numbers)")
    value = entries[key]
    if isinstance(value, str):
        raise DatasetError(f"{path}: key {key!r}: expected {count} numbers, got non-numeric {value!r}")
    if value.size != count:
        raise DatasetError(f"{path}: key {key!r}: expected {count} numbers, got {value.size}")
    if not np.all(np.isfinite(value)):
        raise DatasetError(f"{path}: key {key!r}: expected finite numbers, got {value.tolist()}")
    return value


@dataclass(frozen=True)
class KittiCalib:
    """The calibration of one KITTI recording date.

    p_rect: camera (2 or 3) -> rectified 3x4 projection (pixels of the ``image_size`` image, metres).
    r_rect_00: (3,3) rectifying rotation of camera 0.
    velo_to_cam: (4,4) velodyne -> camera 0 rigid transform, or None when calib_velo_to_cam.txt is absent.
    image_size: (width, height) of the rectified images (S_rect_02), or None when the file does not say.
    source: the calib_cam_to_cam.txt it was read from (for messages).
    """

    p_rect: Dict[int, np.ndarray]
    r_rect_00: np.ndarray
    velo_to_cam: Optional[np.ndarray]
    image_size: Optional[Tuple[int, int]]
    source: str = ""

    def projection(self, camera: int) -> np.ndarray:
        """P_rect_0<camera> (3,4)."""
        if camera not in self.p_rect:
            raise DatasetError(f"{self.source}: no projection for camera {camera}, expected one of {CAMERAS}")
        return self.p_rect[camera]

    def velo_to_image(self, camera: int = 2) -> np.ndarray:
        """(3,4) matrix taking homogeneous velodyne points to ``camera``'s rectified image:
        P_rect_0c @ R_rect_00 (padded to 4x4) @ [R|T]. Row 3 of the result is the depth in that camera."""
        if self.velo_to_cam is None:
            folder = Path(self.source).parent if self.source else Path(".")
            raise DatasetError(
                f"{folder / VELO_TO_CAM}: calibration file not found (needed for velodyne depth)"
            )
        rect = np.eye(4)
        rect[:3, :3] = self.r_rect_00
        return self.projection(camera) @ rect @ self.velo_to_cam

    def rig(self, width: Optional[int] = None, height: Optional[int] = None, camera: int = 2) -> StereoRig:
        """The stereo rig of P_rect_02/03 for images of ``width`` x ``height`` (default: S_rect_02).

        Baseline, disparity offset and notes come from P_rect_02 (left) and P_rect_03 (right camera at +B);
        ``camera`` = 3 puts camera 3's intrinsics in place of camera 2's (for data of camera 3 unmirrored;
        the pair of a mirrored camera-3 target is ``rig().flip_swapped()``). When the images are not at
        S_rect_02 size (a resized copy) the rig is scaled to their size.
        """
        native = self.image_size
        if native is None:
            if width is None or height is None:
                raise DatasetError(f"{self.source}: no S_rect_02 image size; pass the image width and height")
            native = (int(width), int(height))
        try:
            rig = StereoRig.from_projections(
                self.projection(2),
                self.projection(3),
                native[0],
                native[1],
                ("P_rect_02", "P_rect_03"),
                "P_rect_02/P_rect_03",
            )
            if camera != 2:
                k = Intrinsics.from_matrix(self.projection(camera), native[0], native[1])
                rig = StereoRig(k, rig.baseline, rig.doffs, rig.notes)
        except CameraError as error:
            raise DatasetError(
                f"{self.source}: P_rect_02/P_rect_03 do not form a stereo rig: {error}"
            ) from error
        if width is not None and height is not None and (int(width), int(height)) != native:
            rig = rig.resized(int(width), int(height))
        return rig


def read_cam_to_cam(
    path: Union[str, Path],
) -> Tuple[Dict[int, np.ndarray], np.ndarray, Optional[Tuple[int, int]]]:
    """(P_rect_02/03 by camera, R_rect_00 (3,3), S_rect_02 (width, height) or None) of a
    calib_cam_to_cam.txt."""
    entries = read_calib_file(path)
    p_rect = {cam: calib_values(entries, path, f"P_rect_0{cam}", 12).reshape(3, 4) for cam in CAMERAS}
    r_rect = calib_values(entries, path, "R_rect_00", 9).reshape(3, 3)
    size = None
    if "S_rect_02" in entries:
        width, height = calib_values(entries, path, "S_rect_02", 2)
        if width < 1 or height < 1 or width != int(width) or height != int(height):
            raise DatasetError(
                f"{path}: key 'S_rect_02': expected a positive integer size, got {width} {height}"
            )
        size = (int(width), int(height))
    return p_rect, r_rect, size


def read_velo_to_cam(path: Union[str, Path]) -> np.ndarray:
    """The (4,4) velodyne -> camera 0 transform [R|T; 0 0 0 1] of calib_velo_to_cam.txt (metres)."""
    entries = read_calib_file(path)
    transform = np.eye(4)
    transform[:3, :3] = calib_values(entries, path, "R", 9).reshape(3, 3)
    transform[:3, 3] = calib_values(entries, path, "T", 3)
    return transform


def load_kitti_calib(date_dir: Union[str, Path]) -> KittiCalib:
    """Calibration of the date folder ``date_dir`` (e.g. ``<root>/2011_09_26``); the velodyne part is None
    when calib_velo_to_cam.txt is absent (then only velodyne ground truth is unavailable)."""
    date_dir = Path(date_dir)
    cam_path = date_dir / CAM_TO_CAM
    if not cam_path.is_file():
        raise DatasetError(
            f"{cam_path}: calibration file not found (KITTI raw keeps {CAM_TO_CAM} in each date folder, next "
            f"to the <date>_drive_XXXX_sync folders)"
        )
    p_rect, r_rect, size = read_cam_to_cam(cam_path)
    velo_path = date_dir / VELO_TO_CAM
    velo = read_velo_to_cam(velo_path) if velo_path.is_file() else None
    return KittiCalib(p_rect, r_rect, velo, size, str(cam_path))
