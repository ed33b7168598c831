"""KITTI raw trees for tests: the published calibration of the 2011_09_26 recordings in KITTI's own file
format, and writers of date folders, images and velodyne scans whose points land on chosen pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import cv2
import numpy as np

from fg_depth_core.data.kitti_calib import KittiCalib

# The published calibration of the 2011_09_26 recordings, in KITTI's own file format.
CAM_TO_CAM_2011_09_26 = """\
calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_00: 1.392000e+03 5.120000e+02
K_00: 9.842439e+02 0.000000e+00 6.900000e+02 0.000000e+00 9.808141e+02 2.331966e+02 0.000000e+00 \
0.000000e+00 1.000000e+00
D_00: -3.728755e-01 2.037299e-01 2.219027e-03 1.383707e-03 -7.233722e-02
R_00: 1.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00 0.000000e+00 \
0.000000e+00 1.000000e+00
T_00: 2.573699e-16 -1.059758e-16 1.614870e-16
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 \
7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 \
1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_01: 1.392000e+03 5.120000e+02
K_01: 9.895267e+02 0.000000e+00 7.020000e+02 0.000000e+00 9.878386e+02 2.455590e+02 0.000000e+00 \
0.000000e+00 1.000000e+00
D_01: -3.644661e-01 1.790019e-01 1.148107e-03 -6.298563e-04 -5.314062e-02
R_01: 9.993513e-01 1.860866e-02 -3.083487e-02 -1.887662e-02 9.997863e-01 -8.421873e-03 3.067156e-02 \
8.998467e-03 9.994890e-01
T_01: -5.370000e-01 4.822061e-03 -1.252488e-02
S_rect_01: 1.242000e+03 3.750000e+02
R_rect_01: 9.996878e-01 -8.976826e-03 2.331651e-02 8.876121e-03 9.999508e-01 4.418952e-03 \
-2.335503e-02 -4.210612e-03 9.997184e-01
P_rect_01: 7.215377e+02 0.000000e+00 6.095593e+02 -3.875744e+02 0.000000e+00 7.215377e+02 \
1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_02: 1.392000e+03 5.120000e+02
K_02: 9.597910e+02 0.000000e+00 6.960217e+02 0.000000e+00 9.569251e+02 2.241806e+02 0.000000e+00 \
0.000000e+00 1.000000e+00
D_02: -3.691481e-01 1.968681e-01 1.353473e-03 5.677587e-04 -6.770705e-02
R_02: 9.999758e-01 -5.267463e-03 -4.552439e-03 5.251945e-03 9.999804e-01 -3.413835e-03 4.570332e-03 \
3.389843e-03 9.999838e-01
T_02: 5.956621e-02 2.900141e-04 2.577209e-03
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_02: 9.998817e-01 1.511453e-02 -2.841595e-03 -1.511724e-02 9.998853e-01 -9.338510e-04 \
2.827154e-03 9.766976e-04 9.999955e-01
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 \
1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
S_03: 1.392000e+03 5.120000e+02
K_03: 9.037596e+02 0.000000e+00 6.957519e+02 0.000000e+00 9.019653e+02 2.242509e+02 0.000000e+00 \
0.000000e+00 1.000000e+00
D_03: -3.639558e-01 1.788651e-01 6.029694e-04 -3.922424e-04 -5.382460e-02
R_03: 9.995599e-01 1.699522e-02 -2.431313e-02 -1.704422e-02 9.998531e-01 -1.809756e-03 2.427880e-02 \
2.223358e-03 9.997028e-01
T_03: -4.731050e-01 5.551470e-03 -5.250882e-03
S_rect_03: 1.242000e+03 3.750000e+02
R_rect_03: 9.998321e-01 -7.193136e-03 1.685599e-02 7.232804e-03 9.999712e-01 -2.293585e-03 \
-1.683901e-02 2.415116e-03 9.998553e-01
P_rect_03: 7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 \
1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03
"""
VELO_TO_CAM_2011_09_26 = """\
calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 \
7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
delta_c: 0.000000e+00 0.000000e+00
"""
FX = 721.5377
# Baseline by hand from P = K [I | t]: camera x = -P[0,3] / fx, right minus left.
BASELINE = (4.485728e01 - -3.395242e02) / FX
WIDTH, HEIGHT = 1242, 375
DATE = "2011_09_26"
DRIVE = "2011_09_26_drive_0001_sync"
FOLDER = f"{DATE}/{DRIVE}"


def write_date(
    root: Path, date: str = DATE, cam: str = CAM_TO_CAM_2011_09_26, velo: str = VELO_TO_CAM_2011_09_26
):
    folder = root / date
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calib_cam_to_cam.txt").write_text(cam)
    if velo:
        (folder / "calib_velo_to_cam.txt").write_text(velo)
    return folder


def velo_point_for_pixel(
    p: np.ndarray, r_rect, velo_r, velo_t, col: int, row: int, depth: float
) -> np.ndarray:
    """The velodyne point that camera P sees at 0-based pixel (col, row) + 0.3 (1-based u = col + 1.3, the
    KITTI reference convention) at camera depth ``depth``: the projection run backwards by hand."""
    u, v = col + 1 + 0.3, row + 1 + 0.3
    z = depth - p[2, 3]  # depth = z_rect + P[2,3]
    x = (u * depth - p[0, 2] * z - p[0, 3]) / p[0, 0]
    y = (v * depth - p[1, 2] * z - p[1, 3]) / p[1, 1]
    cam0 = np.asarray(r_rect).T @ np.array([x, y, z])
    return np.asarray(velo_r).T @ (cam0 - np.asarray(velo_t))


def random_image(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_frame(drive_dir: Path, index: int, images: Dict[int, np.ndarray], suffix: str = ".png") -> None:
    for camera, rgb in images.items():
        path = drive_dir / f"image_0{camera}" / "data" / f"{index:010d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])


def real_velo_point(calib: KittiCalib, camera: int, col: int, row: int, depth: float) -> np.ndarray:
    velo = calib.velo_to_cam
    return velo_point_for_pixel(
        calib.projection(camera), calib.r_rect_00, velo[:3, :3], velo[:3, 3], col, row, depth
    )
