"""KITTI raw: calibration parser on files in the real format, velodyne projection against hand geometry, the
improved ground truth, split files (shipped and user-written) and KittiRaw on a fake KITTI tree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import cv2
import numpy as np
import pytest
from kitti_helpers import (
    BASELINE,
    CAM_TO_CAM_2011_09_26,
    DATE,
    DRIVE,
    FOLDER,
    FX,
    HEIGHT,
    VELO_TO_CAM_2011_09_26,
    WIDTH,
    random_image,
    real_velo_point,
    velo_point_for_pixel,
    write_date,
    write_frame,
)

from fg_depth_core.data.base import DatasetError
from fg_depth_core.data.kitti import KittiFrame, KittiRaw, find_frames, parse_split, read_split
from fg_depth_core.data.kitti_calib import KittiCalib, load_kitti_calib, read_calib_file
from fg_depth_core.data.kitti_gt import (
    find_improved_gt,
    project_velodyne,
    read_depth_png,
    read_velodyne,
)
from fg_depth_core.errors import FgDepthError


def _replace_line(text: str, key: str, new_line: str) -> str:
    return "\n".join(new_line if line.startswith(key + ":") else line for line in text.splitlines()) + "\n"


def _mat(values: Iterable[float]) -> str:
    return " ".join(f"{v:.6e}" for v in values)


# ---------------------------------------------------------------- calibration


def test_calibration_of_2011_09_26_gives_the_kitti_rig(tmp_path):
    calib = load_kitti_calib(write_date(tmp_path))
    assert calib.image_size == (WIDTH, HEIGHT)
    rig = calib.rig()
    assert rig.intrinsics.fx == pytest.approx(FX) and rig.intrinsics.fy == pytest.approx(FX)
    assert (rig.intrinsics.cx, rig.intrinsics.cy) == pytest.approx((609.5593, 172.854))
    assert (rig.intrinsics.width, rig.intrinsics.height) == (WIDTH, HEIGHT)
    assert rig.baseline == pytest.approx(BASELINE, rel=1e-9)
    assert rig.baseline == pytest.approx(0.54, abs=0.01)  # KITTI's nominal stereo baseline
    # The velodyne transform is [R|T] as written, row-major.
    assert calib.velo_to_cam[0, :3] == pytest.approx([7.533745e-03, -9.999714e-01, -6.166020e-04])
    assert calib.velo_to_cam[:3, 3] == pytest.approx([-4.069766e-03, -7.631618e-02, -2.717806e-01])
    assert calib.velo_to_cam[3].tolist() == [0, 0, 0, 1]
    assert calib.r_rect_00[1, 0] == pytest.approx(-9.869795e-03)
    # At another image size the intrinsics scale like any resize (a resized copy of the images).
    small = calib.rig(640, 192)
    assert small.intrinsics.fx == pytest.approx(FX * 640 / WIDTH)
    assert small.intrinsics.cx == pytest.approx((609.5593 + 0.5) * 640 / WIDTH - 0.5)
    assert small.baseline == rig.baseline
    # The right camera's own intrinsics serve a right target.
    assert calib.rig(camera=3).intrinsics.cx == pytest.approx(609.5593)


def test_calibration_file_parser_keeps_numbers_and_skips_calib_time(tmp_path):
    path = write_date(tmp_path) / "calib_cam_to_cam.txt"
    entries = read_calib_file(path)
    assert "calib_time" not in entries
    assert entries["S_rect_02"].tolist() == [1242.0, 375.0]
    assert entries["corner_dist"].tolist() == [0.0995]
    assert entries["P_rect_03"].shape == (12,)


@pytest.mark.parametrize(
    "key, new_line, message",
    [
        ("P_rect_03", "", r"calib_cam_to_cam\.txt: missing key 'P_rect_03' \(expected 12 numbers\)"),
        (
            "P_rect_02",
            "P_rect_02: " + _mat(range(11)),
            r"\.txt: key 'P_rect_02': expected 12 numbers, got 11",
        ),
        ("R_rect_00", "R_rect_00: 1 0 0 0 1 zero 0 0 1", r"key 'R_rect_00': expected 9 numbers, got non-num"),
        ("S_rect_02", "S_rect_02: 1242", r"key 'S_rect_02': expected 2 numbers, got 1"),
    ],
)
def test_calibration_errors_name_the_file_and_key(tmp_path, key, new_line, message):
    folder = write_date(tmp_path, cam=_replace_line(CAM_TO_CAM_2011_09_26, key, new_line))
    with pytest.raises(DatasetError, match=message):
        load_kitti_calib(folder)


def test_velodyne_calibration_errors_and_missing_files(tmp_path):
    folder = write_date(tmp_path, velo=_replace_line(VELO_TO_CAM_2011_09_26, "T", "T: 0 0"))
    with pytest.raises(DatasetError, match=r"calib_velo_to_cam\.txt: key 'T': expected 3 numbers, got 2"):
        load_kitti_calib(folder)
    with pytest.raises(DatasetError, match=r"2011_09_27/calib_cam_to_cam\.txt: calibration file not found"):
        load_kitti_calib(tmp_path / "2011_09_27")
    # Without calib_velo_to_cam.txt the rig still loads; only the velodyne projection says what is missing.
    calib = load_kitti_calib(write_date(tmp_path / "other", velo=""))
    assert calib.velo_to_cam is None and calib.rig().baseline == pytest.approx(BASELINE)
    with pytest.raises(DatasetError, match=r"calib_velo_to_cam\.txt: calibration file not found"):
        project_velodyne(np.zeros((1, 4), np.float32), calib, 10, 10)


def test_baseline_must_be_positive(tmp_path):
    swapped = CAM_TO_CAM_2011_09_26.replace("4.485728e+01", "-4.485728e+02")
    calib = load_kitti_calib(write_date(tmp_path, cam=swapped))
    with pytest.raises(DatasetError, match=r"calib_cam_to_cam\.txt: P_rect_02/P_rect_03 .*baseline"):
        calib.rig()


# ---------------------------------------------------------------- velodyne projection

# A synthetic rig with a non-trivial velodyne mount, rectification and camera-2 offset.
VELO_R = np.array(
    [[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]
)  # x fwd, y left, z up -> x right, ...
VELO_T = np.array([0.05, -0.08, -0.27])
ANGLE = np.deg2rad(0.6)
R_RECT = np.array(
    [[np.cos(ANGLE), 0.0, np.sin(ANGLE)], [0.0, 1.0, 0.0], [-np.sin(ANGLE), 0.0, np.cos(ANGLE)]]
)
F, CX, CY = 100.0, 79.3, 23.6
P2 = np.array([[F, 0, CX, 6.0], [0, F, CY, 0.2], [0, 0, 1, 0.003]])
P3 = np.array([[F, 0, CX, -48.0], [0, F, CY, 0.2], [0, 0, 1, 0.003]])
SMALL_W, SMALL_H = 160, 48


def _synthetic_calib() -> KittiCalib:
    velo = np.eye(4)
    velo[:3, :3], velo[:3, 3] = VELO_R, VELO_T
    return KittiCalib({2: P2, 3: P3}, R_RECT, velo, (SMALL_W, SMALL_H), "synthetic")


def test_velodyne_points_land_on_hand_projected_pixels_with_their_depth():
    calib = _synthetic_calib()
    # A plane 7.5 m in front of the camera: a grid of pixels, each carrying a point at that depth.
    targets = {(c, r): 7.5 for c in range(3, SMALL_W, 17) for r in range(2, SMALL_H, 9)}
    points = [velo_point_for_pixel(P2, R_RECT, VELO_R, VELO_T, c, r, d) for (c, r), d in targets.items()]
    # Nearest wins: three points on one pixel, the nearest in the middle of the list.
    for depth in (12.0, 4.25, 9.0):
        points.append(velo_point_for_pixel(P2, R_RECT, VELO_R, VELO_T, 50, 30, depth))
    targets[(50, 30)] = 4.25
    # Dropped: outside the image (right of it, above it) and behind the sensor.
    points.append(velo_point_for_pixel(P2, R_RECT, VELO_R, VELO_T, SMALL_W + 2, 10, 6.0))
    points.append(velo_point_for_pixel(P2, R_RECT, VELO_R, VELO_T, 10, -3, 6.0))
    points.append(np.array([-5.0, 0.0, 0.0]))
    scan = np.concatenate([np.array(points), np.full((len(points), 1), 0.5)], axis=1).astype(np.float64)

    depth = project_velodyne(scan, calib, SMALL_W, SMALL_H, camera=2, velodyne_depth="camera_z")
    assert depth.shape == (SMALL_H, SMALL_W) and depth.dtype == np.float32
    expected = np.zeros((SMALL_H, SMALL_W), np.float32)
    for (c, r), d in targets.items():
        expected[r, c] = d
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-5)
    # The list order does not decide the winner.
    reversed_order = project_velodyne(scan[::-1], calib, SMALL_W, SMALL_H, velodyne_depth="camera_z")
    np.testing.assert_array_equal(reversed_order, depth)


def test_velodyne_projection_into_the_right_camera_and_index_base():
    calib = _synthetic_calib()
    point = velo_point_for_pixel(P3, R_RECT, VELO_R, VELO_T, 40, 20, 10.0)
    right = project_velodyne(point[None], calib, SMALL_W, SMALL_H, camera=3, velodyne_depth="camera_z")
    assert np.argwhere(right).tolist() == [[20, 40]] and right[20, 40] == pytest.approx(10.0, abs=1e-5)
    zero_based = project_velodyne(point[None], calib, SMALL_W, SMALL_H, camera=3, index_base=0)
    assert np.argwhere(zero_based).tolist() == [[21, 41]]


def test_velodyne_scan_file_round_trip_and_size_check(tmp_path):
    scan = np.arange(24, dtype=np.float32).reshape(6, 4)
    scan.tofile(tmp_path / "0000000000.bin")
    np.testing.assert_array_equal(read_velodyne(tmp_path / "0000000000.bin"), scan)
    scan[:, :3].tofile(tmp_path / "bad.bin")  # 18 floats: not whole records
    with pytest.raises(DatasetError, match=r"bad\.bin: expected float32 records of 4 values"):
        read_velodyne(tmp_path / "bad.bin")


def test_depth_png_is_value_over_256(tmp_path):
    raw = np.array([[0, 256, 1000], [65535, 1, 2560]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), raw)
    np.testing.assert_allclose(read_depth_png(tmp_path / "d.png"), raw.astype(np.float64) / 256.0)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"rgb\.png: expected a single-channel 16-bit PNG"):
        read_depth_png(tmp_path / "rgb.png")


def test_improved_gt_is_found_in_the_standard_layouts(tmp_path):
    tail = Path("proj_depth/groundtruth/image_02/0000000007.png")
    assert find_improved_gt(tmp_path, FOLDER, 2, 7) is None
    for n, (base, use_gt_root) in enumerate(
        [
            (Path("raw") / FOLDER, False),  # merged into the raw drive (Monodepth2's export layout)
            (Path("raw") / "data_depth_annotated" / "val" / DRIVE, False),
            (Path("ann") / "train" / DRIVE, True),  # data_depth_annotated.zip unpacked under gt_root
            (Path("ann") / DRIVE, True),
            (Path("ann") / FOLDER, True),
        ]
    ):
        top = tmp_path / str(n)
        (top / base / tail).parent.mkdir(parents=True)
        (top / base / tail).write_bytes(b"")
        gt_root = top / "ann" if use_gt_root else None
        assert find_improved_gt(top / "raw", FOLDER, 2, 7, gt_root) == top / base / tail
        assert find_improved_gt(top / "raw", FOLDER, 3, 7, gt_root) is None
        assert find_improved_gt(top / "raw", FOLDER, 2, 8, gt_root) is None


# ---------------------------------------------------------------- split files


def test_split_lines_parse_and_errors_name_file_and_line(tmp_path):
    frames = parse_split(f"# comment\n{FOLDER} 0000000069 l\n\n{FOLDER} 5 r\n{FOLDER}/ 3\n", "x.txt")
    assert frames == [KittiFrame(FOLDER, 69, "l"), KittiFrame(FOLDER, 5, "r"), KittiFrame(FOLDER, 3, "l")]
    assert frames[1].camera == 3 and frames[1].date == DATE and frames[1].line() == f"{FOLDER} 5 r"
    for bad, message in [
        (f"{FOLDER} 5 x", r"bad\.txt:2: side must be 'l' or 'r', got 'x'"),
        (f"{FOLDER} five l", r"bad\.txt:2: frame index must be an integer, got 'five'"),
        (f"{FOLDER}", r"bad\.txt:2: expected '<date>/<drive> <frame index> <l\|r>'"),
        (f"{DRIVE} 5 l", r"bad\.txt:2: folder must be '<date>/<drive>'"),
        (f"{FOLDER} -1 l", r"bad\.txt:2: frame index must be >= 0"),
    ]:
        path = tmp_path / "bad.txt"
        path.write_text(f"{FOLDER} 1 l\n{bad}\n")
        with pytest.raises(DatasetError, match=message):
            read_split(path)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DatasetError, match="no frames"):
        read_split(tmp_path / "empty.txt")
    with pytest.raises(DatasetError, match="not a shipped split"):
        read_split(tmp_path / "missing.txt")


LINE = re.compile(r"^(\d{4}_\d\d_\d\d)/(\1)_drive_\d{4}_sync (\d+) ([lr])$")


def _lines(name: str) -> List[Tuple[str, int, str]]:
    path = Path(__file__).resolve().parents[2] / "fg_depth_core" / "data" / "splits" / name
    out = []
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        assert match, f"{name}: {line!r}"
        out.append((line.split()[0], int(match.group(3)), match.group(4)))
    return out


def test_shipped_eigen_test_split_is_the_standard_697_frames():
    lines = _lines("eigen/test_files.txt")
    assert len(lines) == 697 and len(set(lines)) == 697
    assert {side for _, _, side in lines} == {"l"}
    assert len({folder for folder, _, _ in lines}) == 28
    assert lines[0] == ("2011_09_26/2011_09_26_drive_0002_sync", 69, "l")
    assert lines[-1] == ("2011_10_03/2011_10_03_drive_0047_sync", 768, "l")
    frames = read_split("eigen/test")
    assert [(f.folder, f.index, f.side) for f in frames] == lines


def test_shipped_eigen_zhou_val_split_avoids_the_test_drives():
    val = _lines("eigen_zhou/val_files.txt")
    assert len(val) == 4424 and len(set(val)) == 4424
    assert {side for _, _, side in val} == {"l", "r"}
    test_drives = {folder for folder, _, _ in _lines("eigen/test_files.txt")}
    assert not {folder for folder, _, _ in val} & test_drives
    assert len(read_split("eigen_zhou/val_files.txt")) == 4424
    assert read_split("pkg://fg_depth_core/data/splits/eigen_zhou/val_files.txt")[-1] == KittiFrame(
        "2011_09_30/2011_09_30_drive_0028_sync", 2924, "r"
    )


def test_missing_train_split_says_how_to_provide_it(monkeypatch):
    import fg_depth_core.data.kitti as kitti

    real = kitti._shipped_resource
    monkeypatch.setattr(kitti, "_shipped_resource", lambda name: real(name + ".absent"))
    with pytest.raises(DatasetError, match=r"not shipped.*data\.train_split"):
        read_split("eigen_zhou/train")


# ---------------------------------------------------------------- KittiRaw on a fake tree


@pytest.fixture
def kitti_tree(tmp_path) -> Dict[str, object]:
    root = tmp_path / "kitti"
    write_date(root)
    drive = root / FOLDER
    images = {i: {2: random_image(10 * i), 3: random_image(10 * i + 1)} for i in range(3)}
    for i in (0, 1):
        write_frame(drive, i, images[i])
    write_frame(drive, 2, {2: images[2][2]})  # no right view: not a stereo frame
    # Frame 0: a velodyne scan with one point seen by image_02 only, at (10, 200), and one seen by image_03
    # only, at (1237, 40): their disparities (f B / depth = 77 and 96 px) push each out of the other view.
    calib = load_kitti_calib(root / DATE)
    scan = np.stack([real_velo_point(calib, 2, 10, 200, 5.0), real_velo_point(calib, 3, 1237, 40, 4.0)])
    scan = np.concatenate([scan, np.ones((2, 1))], axis=1).astype(np.float32)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    scan.tofile(drive / "velodyne_points" / "data" / "0000000000.bin")
    # Frame 1: improved ground truth only, 5 m everywhere in a known block.
    improved = np.zeros((HEIGHT, WIDTH), np.uint16)
    improved[300:310, 600:640] = 5 * 256
    gt_path = drive / "proj_depth" / "groundtruth" / "image_02" / "0000000001.png"
    gt_path.parent.mkdir(parents=True)
    cv2.imwrite(str(gt_path), improved)
    # A second drive of half-size JPEG copies.
    half = root / DATE / "2011_09_26_drive_0002_sync"
    halves = {2: random_image(7, WIDTH // 2, 188), 3: random_image(8, WIDTH // 2, 188)}
    write_frame(half, 4, halves, suffix=".jpg")
    return {"root": root, "images": images, "drive": drive}


def test_all_frames_under_the_root_are_listed_in_order(kitti_tree):
    frames = find_frames(kitti_tree["root"])
    assert [f.line() for f in frames] == [
        f"{FOLDER} 0 l",
        f"{FOLDER} 1 l",
        "2011_09_26/2011_09_26_drive_0002_sync 4 l",
    ]
    with pytest.raises(DatasetError, match="date folder: pass its parent"):
        find_frames(kitti_tree["root"] / DATE)


def test_kitti_raw_samples_images_intrinsics_and_velodyne_depth(kitti_tree):
    data = KittiRaw(kitti_tree["root"], width=320, height=96, velodyne_depth="camera_z")
    assert len(data) == 3 and data.name(0) == f"{FOLDER} 0 l"
    raw = data.load(0)
    np.testing.assert_array_equal(raw.left, kitti_tree["images"][0][2])
    np.testing.assert_array_equal(raw.right, kitti_tree["images"][0][3])
    assert raw.rig.intrinsics.fx == pytest.approx(FX) and raw.rig.baseline == pytest.approx(BASELINE)
    # Depth: the image_02 point at its pixel; the image_03 point falls outside image_02.
    assert data.depth_source(0) == "velodyne"
    assert raw.depth_left.shape == (HEIGHT, WIDTH)
    assert np.argwhere(raw.depth_left).tolist() == [[200, 10]]
    assert raw.depth_left[200, 10] == pytest.approx(5.0, abs=1e-4)

    sample = data[0]
    assert sample["left"].shape == (3, 96, 320) and sample["right"].shape == (3, 96, 320)
    k = sample["K"].numpy()
    assert k[0, 0] == pytest.approx(FX * 320 / WIDTH, rel=1e-6)
    assert k[1, 1] == pytest.approx(FX * 96 / HEIGHT, rel=1e-6)
    assert k[0, 2] == pytest.approx((609.5593 + 0.5) * 320 / WIDTH - 0.5, rel=1e-6)
    assert float(sample["focal"]) == pytest.approx(k[0, 0])
    assert float(sample["baseline"]) == pytest.approx(BASELINE, rel=1e-6)
    assert sample["depth_left"].shape == (1, HEIGHT, WIDTH)


def test_one_ground_truth_source_per_dataset_never_mixed(kitti_tree, tmp_path):
    root = kitti_tree["root"]
    data = KittiRaw(root, gt="improved")
    assert data.depth_source(1) == "improved"
    depth = data.load(1).depth_left
    assert np.count_nonzero(depth) == 400 and np.all(depth[300:310, 600:640] == 5.0)
    # Frame 0 has a velodyne scan but no improved map: with improved ground truth it has none (no fallback).
    assert data.depth_source(0) is None and data.load(0).depth_left is None
    assert data.frames_without_gt() == [0, 2] and data.gt_path(0).parts[-4:] == (
        "proj_depth",
        "groundtruth",
        "image_02",
        "0000000000.png",
    )
    raw_only = KittiRaw(root, gt="velodyne")
    assert raw_only.depth_source(1) is None and raw_only.load(1).depth_left is None
    assert "depth_left" not in raw_only[1]
    assert raw_only.frames_without_gt() == [1, 2] and raw_only.gt_path(1).name == "0000000001.bin"
    assert KittiRaw(root).gt == "velodyne"  # the published ground truth is the default
    # An improved map under gt_root (depth benchmark layout) serves frame 0.
    gt = tmp_path / "annotated" / "train" / DRIVE / "proj_depth" / "groundtruth" / "image_02"
    gt.mkdir(parents=True)
    cv2.imwrite(str(gt / "0000000000.png"), np.full((HEIGHT, WIDTH), 2560, np.uint16))
    with_root = KittiRaw(root, gt="improved", gt_root=tmp_path / "annotated")
    assert with_root.depth_source(0) == "improved" and np.all(with_root.load(0).depth_left == 10.0)
    assert KittiRaw(root, gt_root=tmp_path / "annotated", gt="velodyne").depth_source(0) == "velodyne"
    assert KittiRaw(root, load_depth=False).load(0).depth_left is None
    with pytest.raises(DatasetError, match=r"expected one of \['velodyne', 'improved'\], got 'both'"):
        KittiRaw(root, gt="both")


def test_right_side_frames_are_mirrored_and_swapped(kitti_tree, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text(f"{FOLDER} 0 r\n{FOLDER} 0 l\n")
    data = KittiRaw(kitti_tree["root"], split, width=320, height=96, velodyne_depth="camera_z")
    right_side, left_side = data.load(0), data.load(1)
    np.testing.assert_array_equal(right_side.left, kitti_tree["images"][0][3][:, ::-1])
    np.testing.assert_array_equal(right_side.right, kitti_tree["images"][0][2][:, ::-1])
    k = right_side.rig.intrinsics
    assert k.cx == pytest.approx(WIDTH - 1 - 609.5593) and k.fx == pytest.approx(FX)
    assert right_side.rig.baseline == pytest.approx(left_side.rig.baseline) and right_side.rig.baseline > 0
    # The image_03 point, mirrored with its image: column 1237 -> WIDTH - 1 - 1237.
    assert np.argwhere(right_side.depth_left).tolist() == [[40, WIDTH - 1 - 1237]]
    assert right_side.depth_left[40, WIDTH - 1 - 1237] == pytest.approx(4.0, abs=1e-4)
    assert data.name(0) == f"{FOLDER} 0 r"


def test_resized_jpeg_copies_get_scaled_intrinsics(kitti_tree, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0002_sync 0000000004 l\n")
    raw = KittiRaw(kitti_tree["root"], split).load(0)
    assert raw.left.shape == (188, WIDTH // 2, 3)
    assert raw.rig.intrinsics.fx == pytest.approx(FX / 2)
    assert raw.rig.intrinsics.fy == pytest.approx(FX * 188 / HEIGHT)
    assert raw.depth_left is None


def test_missing_files_and_bad_roots_name_the_path(kitti_tree, tmp_path):
    root = kitti_tree["root"]
    split = tmp_path / "split.txt"
    split.write_text(f"{FOLDER} 2 l\n{FOLDER} 9 l\n2011_09_28/2011_09_28_drive_0001_sync 0 l\n")
    data = KittiRaw(root, split)
    with pytest.raises(FgDepthError, match=r"image_03/data/0000000002\.png: image file not found"):
        data.load(0)
    with pytest.raises(FgDepthError, match=r"image_02/data/0000000009\.png: image file not found"):
        data.load(1)
    with pytest.raises(DatasetError, match=r"2011_09_28/calib_cam_to_cam\.txt: calibration file not found"):
        data.load(2)
    with pytest.raises(DatasetError, match="root folder not found"):
        KittiRaw(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="gt_root"):
        KittiRaw(root, gt_root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no KITTI raw frames found"):
        KittiRaw(tmp_path / "empty")
