"""Evaluation on KITTI as the published tables do it: the Eigen ground truth's two depth conventions through
the real 2011_09_26 calibration, monocular trees (image_02 or image_03 only), the protocol that belongs to the
data whatever the checkpoint was trained with, one ground-truth source per run, --strict, and export-gt's
gt_depths.npz in Monodepth2's layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch
from kitti_helpers import (
    DATE,
    FOLDER,
    FX,
    HEIGHT,
    WIDTH,
    random_image,
    real_velo_point,
    write_date,
    write_frame,
)
from model_helpers import save_random_depthnet

from fg_depth_core.cli import main
from fg_depth_core.commands.eval import resolve_protocol
from fg_depth_core.config import Config, ConfigError, DataConfig, EvalConfig
from fg_depth_core.data.base import DatasetError
from fg_depth_core.data.factory import build_dataset
from fg_depth_core.data.kitti import KittiRaw
from fg_depth_core.data.kitti_calib import KittiCalib, load_kitti_calib
from fg_depth_core.data.kitti_gt import project_velodyne, read_gt_depths, write_gt_depths
from fg_depth_core.errors import FgDepthError
from fg_depth_core.evaluate import frame_metrics, post_process_depth, resize_depth
from fg_depth_core.metrics import METRIC_NAMES
from fg_depth_core.model.checkpoint import load_model

# ------------------------------------------------------------------------------- ground-truth conventions


def point_with_velodyne_x(
    calib: KittiCalib, camera: int, col: int, row: int, x: float
) -> Tuple[np.ndarray, float]:
    """The velodyne point seen by ``camera`` at 0-based pixel (col, row) whose velodyne x is ``x``, and its
    depth in that rectified camera. Points on a pixel's ray are affine in the camera depth d, so two of
    them (d = 0 and d = 1, by the hand inverse of the projection) give d for the wanted x."""
    at0 = real_velo_point(calib, camera, col, row, 0.0)
    at1 = real_velo_point(calib, camera, col, row, 1.0)
    depth = (x - at0[0]) / (at1[0] - at0[0])
    return at0 + depth * (at1 - at0), depth


def scan(points: List[np.ndarray]) -> np.ndarray:
    """(N,4) float32 velodyne records (reflectance 0.5)."""
    xyz = np.asarray(points, dtype=np.float64)
    return np.concatenate([xyz, np.full((len(xyz), 1), 0.5)], axis=1).astype(np.float32)


def test_both_ground_truth_conventions_through_the_published_calibration(tmp_path):
    calib = load_kitti_calib(write_date(tmp_path))
    targets = {(100, 200): 5.0, (620, 180): 20.0, (1100, 300): 8.5, (40, 370): 61.25, (700, 250): 33.0}
    points, camera_depth = [], {}
    for (col, row), x in targets.items():
        point, depth = point_with_velodyne_x(calib, 2, col, row, x)
        assert point[0] == pytest.approx(x, abs=1e-9)
        points.append(point)
        camera_depth[(col, row)] = depth
    # Two points on one pixel: the nearer (smaller velodyne x) wins, whichever comes first in the scan.
    near, _ = point_with_velodyne_x(calib, 2, 300, 220, 7.0)
    far, _ = point_with_velodyne_x(calib, 2, 300, 220, 12.0)
    points += [far, near]
    targets[(300, 220)] = 7.0
    camera_depth[(300, 220)] = point_with_velodyne_x(calib, 2, 300, 220, 7.0)[1]
    # Behind the sensor (velodyne x < 0): dropped by both conventions.
    points.append(np.array([-4.0, 0.0, 0.0]))
    records = scan(points)

    published = project_velodyne(records, calib, WIDTH, HEIGHT, camera=2)
    camera_z = project_velodyne(records, calib, WIDTH, HEIGHT, camera=2, velodyne_depth="camera_z")
    assert published.shape == camera_z.shape == (HEIGHT, WIDTH)
    assert sorted(map(tuple, np.argwhere(published)[:, ::-1].tolist())) == sorted(targets)
    assert np.array_equal(published > 0, camera_z > 0)
    for (col, row), x in targets.items():
        assert published[row, col] == pytest.approx(x, abs=1e-5)
        assert camera_z[row, col] == pytest.approx(camera_depth[(col, row)], abs=1e-5)
        # On KITTI's rig the velodyne sits 0.27 m behind camera 0's plane: nearby, the published depth is
        # larger by 0.25 to 0.3 m; its x axis is tilted by about a degree from the optical axis, so farther
        # away the offset spreads with the point's position.
        offset = published[row, col] - camera_z[row, col]
        assert 0.25 < offset < 0.3 if x < 10 else 0.2 < offset < 0.55
    np.testing.assert_array_equal(project_velodyne(records[::-1], calib, WIDTH, HEIGHT), published)
    # The right camera (P_rect_03) sees its own point at its own pixel, with the same convention.
    right_point, _ = point_with_velodyne_x(calib, 3, 1190, 300, 4.0)
    right = project_velodyne(scan([right_point]), calib, WIDTH, HEIGHT, camera=3)
    assert np.argwhere(right).tolist() == [[300, 1190]] and right[300, 1190] == pytest.approx(4.0, abs=1e-5)
    # ... which lies beyond camera 2's right edge (disparity f B / z = 99 px).
    assert not np.any(project_velodyne(scan([right_point]), calib, WIDTH, HEIGHT, camera=2))
    with pytest.raises(DatasetError, match=r"expected one of \['velodyne_x', 'camera_z'\], got 'x'"):
        project_velodyne(records, calib, WIDTH, HEIGHT, velodyne_depth="x")


def test_a_perfect_camera_z_prediction_scores_as_badly_as_a_table_row_gap(tmp_path):
    # Against the published ground truth, predicting each point's camera-frame z is off by the convention:
    # abs_rel ~ 0.27 / 5.27 at 5 m, the size of the gaps between rows of the reference table.
    calib = load_kitti_calib(write_date(tmp_path))
    points = [
        real_velo_point(calib, 2, col, row, 5.0)
        for col in range(100, 1150, 50)
        for row in range(170, 370, 20)
    ]
    records = scan(points)
    gt = project_velodyne(records, calib, WIDTH, HEIGHT)
    camera_z = project_velodyne(records, calib, WIDTH, HEIGHT, velodyne_depth="camera_z")
    prediction = np.where(camera_z > 0, camera_z, 5.0)
    off, _ = frame_metrics(gt, prediction, EvalConfig())
    assert 0.045 < off["abs_rel"] < 0.056 and off["a1"] == 1.0
    exact, _ = frame_metrics(gt, np.where(gt > 0, gt, 5.0), EvalConfig())
    assert exact["abs_rel"] < 1e-6


# ------------------------------------------------------------------------------------- a monocular tree

SPLIT_LINES = (f"{FOLDER} 0 l", f"{FOLDER} 1 l", f"{FOLDER} 3 r")


@pytest.fixture
def mono_tree(tmp_path) -> Dict[str, object]:
    """A KITTI tree without a single stereo pair: frames 0 and 1 have image_02 only (frame 1 no velodyne
    scan), frame 3 image_03 only. Frame 0's scan: a grid inside Garg's crop at 6-20 m, a band of 40 m points
    above the crop, and a point camera 3 alone sees; frame 3's scan: a point camera 3 alone sees and one
    camera 2 alone sees. Frame 0 also has an improved map."""
    root = tmp_path / "kitti"
    write_date(root)
    drive = root / FOLDER
    calib = load_kitti_calib(root / DATE)
    images = {0: random_image(1), 1: random_image(2), 3: random_image(3)}
    write_frame(drive, 0, {2: images[0]})
    write_frame(drive, 1, {2: images[1]})
    write_frame(drive, 3, {3: images[3]})
    inside = [
        point_with_velodyne_x(calib, 2, col, row, 6.0 + (col + row) % 15)[0]
        for col in range(60, 1190, 45)
        for row in range(160, 370, 15)
    ]
    above = [point_with_velodyne_x(calib, 2, col, 120, 40.0)[0] for col in range(60, 1190, 30)]
    only_right = point_with_velodyne_x(calib, 3, 1190, 300, 4.0)[0]
    only_left = point_with_velodyne_x(calib, 2, 20, 300, 4.0)[0]  # its disparity pushes it out of image_03
    velodyne = drive / "velodyne_points" / "data"
    velodyne.mkdir(parents=True)
    scan(inside + above + [only_right]).tofile(velodyne / "0000000000.bin")
    scan([only_right, only_left]).tofile(velodyne / "0000000003.bin")
    improved = np.zeros((HEIGHT, WIDTH), np.uint16)
    improved[200:360, 100:1100] = 9 * 256
    gt_dir = drive / "proj_depth" / "groundtruth" / "image_02"
    gt_dir.mkdir(parents=True)
    cv2.imwrite(str(gt_dir / "0000000000.png"), improved)
    split = tmp_path / "split.txt"
    split.write_text("\n".join(SPLIT_LINES) + "\n")
    return {"root": root, "split": split, "images": images, "calib": calib}


def test_monocular_evaluation_reads_only_the_target_camera(mono_tree):
    root, split = mono_tree["root"], mono_tree["split"]
    data = build_dataset(DataConfig(dataset="kitti", width=320, height=96), "test", str(root), str(split))
    assert isinstance(data, KittiRaw) and data.target_only and data.gt == "velodyne"
    assert [data.name(i) for i in range(len(data))] == list(SPLIT_LINES)
    left = data.load(0)
    assert left.right is None
    np.testing.assert_array_equal(left.left, mono_tree["images"][0])
    sample = data[0]
    assert "right" not in sample and sample["left"].shape == (3, 96, 320)
    assert float(sample["focal"]) == pytest.approx(FX * 320 / WIDTH, rel=1e-6)
    assert sample["depth_left"].shape == (1, HEIGHT, WIDTH)
    # The published convention by default: velodyne x.
    gt = sample["depth_left"][0].numpy()
    assert gt[160, 60] == pytest.approx(6.0 + (60 + 160) % 15, abs=1e-5)
    assert gt[120, 60] == pytest.approx(40.0, abs=1e-5)
    assert "depth_left" not in data[1]  # no velodyne scan: no ground truth
    assert data.frames_without_gt() == [1]
    # Without a split file, every frame with image_02 is listed, image_03 or not.
    listed = KittiRaw(root, target_only=True)
    assert [listed.name(i) for i in range(len(listed))] == [f"{FOLDER} 0 l", f"{FOLDER} 1 l"]
    # Training pairs still need both views, and say which file is missing.
    stereo = build_dataset(DataConfig(dataset="kitti"), "val", str(root), str(split))
    with pytest.raises(FgDepthError, match=r"image_03/data/0000000000\.png: image file not found"):
        stereo.load(0)
    # The evaluation config picks the ground truth of every role that loads it.
    improved = build_dataset(
        DataConfig(dataset="kitti"), "val", str(root), str(split), eval_cfg=EvalConfig(gt="improved")
    )
    assert improved.gt == "improved" and improved.frames_without_gt() == [1, 2]


def test_right_side_lines_use_camera_3_alone(mono_tree):
    root, split, calib = mono_tree["root"], mono_tree["split"], mono_tree["calib"]
    data = KittiRaw(root, split, width=320, height=96, target_only=True)
    raw = data.load(2)
    # image_03 as it is (not mirrored), no image_02 needed, camera 3's intrinsics.
    np.testing.assert_array_equal(raw.left, mono_tree["images"][3])
    assert raw.right is None
    p3 = calib.projection(3)
    k = raw.rig.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((p3[0, 0], p3[1, 1], p3[0, 2], p3[1, 2]))
    # Ground truth projected with P_rect_03: the point only camera 3 sees is there, the one only camera 2
    # sees is not.
    assert np.argwhere(raw.depth_left).tolist() == [[300, 1190]]
    assert raw.depth_left[300, 1190] == pytest.approx(4.0, abs=1e-5)
    # The stereo dataset serves the same line mirrored, as training does; evaluation does not.
    assert KittiRaw(root, split).frames[2].camera == 3


# ----------------------------------------------------------------------------- the protocol of the data


def test_kitti_protocol_ignores_the_checkpoint_and_flags_override_it():
    trained = EvalConfig(garg_crop=False, min_depth=0.5, max_depth=50.0, median_scaling=True)
    cfg, protocol = resolve_protocol(trained, "kitti", [], {})
    assert cfg == EvalConfig()
    assert (cfg.garg_crop, cfg.min_depth, cfg.max_depth, cfg.median_scaling) == (True, 1e-3, 80.0, False)
    assert (cfg.gt, cfg.velodyne_depth, cfg.post_process) == ("velodyne", "velodyne_x", False)
    assert protocol["origin"] == "the KITTI Eigen protocol" and protocol["overrides"] == []
    assert protocol["velodyne_depth"] == "velodyne_x" and protocol["aggregate"] == "mean over frames"
    # Other data keep the checkpoint's section.
    same, protocol = resolve_protocol(trained, "synth", [], {})
    assert same == trained and protocol["origin"] == "the checkpoint's eval section"
    assert protocol["ground_truth"] == "dataset" and "velodyne_depth" not in protocol
    # --set first, then the flags; None means a flag was not given.
    cfg, protocol = resolve_protocol(
        trained,
        "kitti",
        ["eval.max_depth=50", "eval.gt=improved"],
        {"max_depth": 60.0, "garg_crop": False, "post_process": None},
    )
    assert (cfg.max_depth, cfg.gt, cfg.garg_crop, cfg.post_process) == (60.0, "improved", False, False)
    assert protocol["overrides"] == [
        "eval.max_depth=50",
        "eval.gt=improved",
        "eval.max_depth=60.0",
        "eval.garg_crop=false",
    ]
    assert protocol["ground_truth"] == "improved" and "velodyne_depth" not in protocol
    with pytest.raises(ConfigError, match=r"eval\.max_depth: expected > min_depth, got 0\.0005"):
        resolve_protocol(trained, "kitti", [], {"max_depth": 5e-4})
    with pytest.raises(ConfigError, match=r"--set 'train\.max_steps=3': fg-depth eval takes only protocol"):
        resolve_protocol(trained, "kitti", ["train.max_steps=3"], {})
    with pytest.raises(ConfigError, match=r"eval\.gt: expected one of \['velodyne', 'improved'\]"):
        resolve_protocol(trained, "kitti", ["eval.gt=lidar"], {})
    with pytest.raises(FgDepthError, match=r"eval\.gt \(--gt\) chooses KITTI ground truth; --data synth"):
        resolve_protocol(trained, "synth", [], {"gt": "improved"})


def kitti_checkpoint(path: Path) -> None:
    """A random DepthNet for a 128x64 input whose training config turned the Garg crop off, narrowed the range
    and asked for median scaling (a built-in-world configuration): --data kitti must ignore all three."""
    cfg = Config()
    cfg.data.width, cfg.data.height, cfg.data.num_workers = 128, 64, 0
    cfg.eval.garg_crop, cfg.eval.max_depth, cfg.eval.median_scaling = False, 50.0, True
    save_random_depthnet(path, cfg, train_focal=74.2)


def scored(
    root: Path, split: Path, preds: Dict[str, np.ndarray], cfg: EvalConfig, **kitti
) -> Dict[str, float]:
    """The protocol ``cfg`` applied by hand-picked pieces to saved predictions: per-frame metrics against
    KittiRaw's ground truth, averaged over the frames that have some."""
    data = KittiRaw(root, split, target_only=True, **kitti)
    frames = []
    for key, pred in preds.items():
        gt = data.load(int(key)).depth_left
        assert gt is not None and pred.shape == gt.shape
        frames.append(frame_metrics(gt, pred, cfg)[0])
    return {name: float(np.mean([f[name] for f in frames])) for name in METRIC_NAMES}


def run_eval(argv: List[str], capsys) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_on_kitti_applies_the_published_protocol_to_any_checkpoint(mono_tree, tmp_path, capsys):
    root = mono_tree["root"]
    # The split also names a drive that is not on disk at all: no ground truth, so it is skipped unread.
    absent = "2011_09_26/2011_09_26_drive_0009_sync 7 l"
    split = tmp_path / "with_absent.txt"
    split.write_text("\n".join(SPLIT_LINES + (absent,)) + "\n")
    kitti_checkpoint(tmp_path / "net.pt")
    base = ["eval", "--checkpoint", str(tmp_path / "net.pt"), "--data", "kitti", "--data-path", str(root)]
    base += ["--device", "cpu", "--batch-size", "2"]
    common = base + ["--split-file", str(split)]
    code, out, err = run_eval(
        common + ["--json", str(tmp_path / "m.json"), "--save-pred", str(tmp_path / "p.npz")], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("abs_rel |"))
    assert lines[header - 1] == (
        "protocol (the KITTI Eigen protocol, --data kitti): velodyne ground truth (depth = velodyne x), "
        "Garg crop, depths in (0.001, 80) m, predictions clamped, no median scaling, no post-processing, "
        "mean over frames"
    )
    assert "note: 2 of 4 frames have no velodyne ground truth; skipped" in out
    assert "frames scored: 2, skipped without ground truth: 2" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["frames"] == 2 and metrics["skipped"] == 2
    assert metrics["skipped_frames"] == [SPLIT_LINES[1], absent]
    protocol = metrics["protocol"]
    assert protocol["garg_crop"] is True and protocol["median_scaling"] is False
    assert (protocol["min_depth"], protocol["max_depth"]) == (0.001, 80.0)
    assert (protocol["ground_truth"], protocol["velodyne_depth"]) == ("velodyne", "velodyne_x")
    assert protocol["strict"] is False and protocol["split"] == str(split)
    with np.load(tmp_path / "p.npz") as saved:
        preds = {key: saved[key] for key in saved.files}
    assert sorted(preds) == ["000000", "000002"]
    # The JSON is the KITTI protocol (crop on, 80 m) applied to the saved predictions ...
    expected = scored(root, split, preds, EvalConfig())
    for name in METRIC_NAMES:
        assert metrics[name] == pytest.approx(expected[name], rel=1e-6)
    # ... which the checkpoint's own protocol would have scored differently.
    trained = scored(root, split, preds, EvalConfig(garg_crop=False, max_depth=50.0, median_scaling=True))
    assert abs(trained["abs_rel"] - metrics["abs_rel"]) > 0.01

    # Flags and --set override the data's protocol; what was overridden is recorded.
    argv = common + ["--no-garg-crop", "--set", "eval.max_depth=50", "--max-depth", "60"]
    code, out, err = run_eval(argv + ["--json", str(tmp_path / "o.json")], capsys)
    assert code == 0, err
    assert "overridden: eval.max_depth=50 eval.garg_crop=false eval.max_depth=60.0): " in out
    assert "no Garg crop, depths in (0.001, 60) m" in out
    overridden = json.loads((tmp_path / "o.json").read_text())
    assert overridden["protocol"]["garg_crop"] is False and overridden["protocol"]["max_depth"] == 60.0
    assert overridden["protocol"]["overrides"] == [
        "eval.max_depth=50",
        "eval.garg_crop=false",
        "eval.max_depth=60.0",
    ]
    expected = scored(root, split, preds, EvalConfig(garg_crop=False, max_depth=60.0))
    assert overridden["abs_rel"] == pytest.approx(expected["abs_rel"], rel=1e-6)

    # Post-processing: the network also sees each mirror image; the disparities are blended, then resized.
    code, out, err = run_eval(common + ["--post-process", "--save-pred", str(tmp_path / "pp.npz")], capsys)
    assert code == 0, err
    assert "no median scaling, post-processed, mean over frames" in out
    net, _, state = load_model(tmp_path / "net.pt", torch.device("cpu"))
    sample = KittiRaw(root, split, 128, 64, target_only=True)[2]
    with torch.inference_mode():
        both = net.predict(torch.stack([sample["left"], sample["left"].flip(-1)]))[:, 0].numpy()
    factor = float(sample["focal"]) / float(state["train_focal"])
    by_hand = resize_depth(post_process_depth(both[0] * factor, both[1] * factor), HEIGHT, WIDTH)
    with np.load(tmp_path / "pp.npz") as saved:
        np.testing.assert_allclose(saved["000002"], by_hand, rtol=1e-4)
        assert np.abs(saved["000002"] / preds["000002"] - 1).max() > 1e-3  # it changed the prediction

    # The improved ground truth alone: frame 0's map, frames 1 and 3 skipped (no velodyne fallback).
    code, out, err = run_eval(common + ["--gt", "improved", "--json", str(tmp_path / "i.json")], capsys)
    assert code == 0, err
    assert "): improved ground truth, Garg crop" in out
    improved = json.loads((tmp_path / "i.json").read_text())
    assert improved["frames"] == 1
    assert improved["skipped_frames"] == [SPLIT_LINES[1], SPLIT_LINES[2], absent]
    expected = scored(root, split, {"000000": preds["000000"]}, EvalConfig(gt="improved"), gt="improved")
    assert improved["abs_rel"] == pytest.approx(expected["abs_rel"], rel=1e-6)

    # --strict refuses the split before predicting, naming the frame and the file it lacks.
    code, out, err = run_eval(common + ["--strict", "--json", str(tmp_path / "s.json")], capsys)
    assert code == 2 and not (tmp_path / "s.json").exists()
    assert f"--strict: 2 of 4 frames have no velodyne ground truth: {SPLIT_LINES[1]} (" in err
    assert "velodyne_points/data/0000000001.bin); " in err and "drive_0009_sync/velodyne_points" in err
    # A split none of whose frames has ground truth is refused before anything is predicted.
    nothing = tmp_path / "nothing.txt"
    nothing.write_text(f"{SPLIT_LINES[1]}\n{absent}\n")
    code, out, err = run_eval(base + ["--split-file", str(nothing)], capsys)
    assert code == 2 and "nothing to score: 2 of 2 frames have no velodyne ground truth" in err
    # A KITTI-only choice on another dataset is refused.
    code, out, err = run_eval(
        ["eval", "--checkpoint", str(tmp_path / "net.pt"), "--data", "folder", "--data-path", str(tmp_path)]
        + ["--gt", "improved", "--device", "cpu"],
        capsys,
    )
    assert code == 2 and "eval.gt (--gt) chooses KITTI ground truth" in err


# --------------------------------------------------------------------------------------------- export-gt


def test_export_gt_writes_monodepth2s_gt_depths_in_split_order(mono_tree, tmp_path, capsys):
    root = mono_tree["root"]
    split = tmp_path / "export.txt"
    split.write_text(f"{FOLDER} 3 r\n{FOLDER} 0 l\n")
    out = tmp_path / "gt" / "gt_depths.npz"
    assert main(["export-gt", "--data-path", str(root), "--split-file", str(split), "--out", str(out)]) == 0
    assert f"2 velodyne ground-truth maps ({WIDTH}x{HEIGHT};" in capsys.readouterr().out
    # As Monodepth2's evaluate_depth.py reads it (plus allow_pickle, which object arrays need).
    data = np.load(out, fix_imports=True, encoding="latin1", allow_pickle=True)["data"]
    assert data.dtype == object and data.shape == (2,)
    assert all(m.dtype == np.float32 and m.shape == (HEIGHT, WIDTH) for m in data)
    # Split order: the r line first (camera 3's map, unmirrored), then frame 0 of camera 2.
    assert np.argwhere(data[0]).tolist() == [[300, 1190]] and data[0][300, 1190] == pytest.approx(
        4.0, abs=1e-5
    )
    evaluated = KittiRaw(root, split, target_only=True)
    for i in range(2):
        np.testing.assert_array_equal(data[i], evaluated.load(i).depth_left)
    # The same maps come back through read_gt_depths, and write_gt_depths writes them identically.
    again = read_gt_depths(out)
    assert len(again) == 2 and all(np.array_equal(a, b) for a, b in zip(again, data))
    write_gt_depths(tmp_path / "copy.npz", again)
    assert all(np.array_equal(a, b) for a, b in zip(read_gt_depths(tmp_path / "copy.npz"), again))
    # Camera z on request: frame 0's values shrink by the convention's offset.
    z_out = tmp_path / "z.npz"
    argv = ["export-gt", "--data-path", str(root), "--split-file", str(split), "--out", str(z_out)]
    assert main(argv + ["--velodyne-depth", "camera_z"]) == 0
    camera_z = read_gt_depths(z_out)[1]
    filled = data[1] > 0
    assert np.array_equal(camera_z > 0, filled)
    offset = data[1][filled] - camera_z[filled]
    assert np.all((offset > 0.2) & (offset < 0.55))
    capsys.readouterr()
    # A split with a frame lacking ground truth cannot keep the file's order: refused, nothing written.
    bad = tmp_path / "bad.npz"
    argv = ["export-gt", "--data-path", str(root), "--split-file", str(mono_tree["split"]), "--out", str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"1 of 3 frames have no velodyne ground truth: {SPLIT_LINES[1]} (" in err and not bad.exists()
    # The improved maps export the same way.
    only0 = tmp_path / "only0.txt"
    only0.write_text(f"{FOLDER} 0 l\n")
    improved_out = tmp_path / "improved.npz"
    argv = ["export-gt", "--data-path", str(root), "--split-file", str(only0), "--out", str(improved_out)]
    assert main(argv + ["--gt", "improved"]) == 0
    (improved,) = read_gt_depths(improved_out)
    assert np.count_nonzero(improved) == 160 * 1000 and np.all(improved[200:360, 100:1100] == 9.0)


def test_gt_depths_file_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match=r"missing\.npz: ground-truth file not found"):
        read_gt_depths(tmp_path / "missing.npz")
    np.savez_compressed(tmp_path / "other.npz", depth=np.zeros((2, 3)))
    with pytest.raises(DatasetError, match=r"other\.npz: expected an entry 'data'"):
        read_gt_depths(tmp_path / "other.npz")
    with pytest.raises(DatasetError, match=r"map 1: expected an \(H,W\) depth map, got shape \(3,\)"):
        write_gt_depths(tmp_path / "bad.npz", [np.zeros((2, 3)), np.zeros(3)])
    assert not (tmp_path / "bad.npz").exists()
    # Maps of one size still form an object array (the layout does not depend on the dates in a split).
    write_gt_depths(tmp_path / "same.npz", [np.ones((2, 3)), np.zeros((2, 3))])
    with np.load(tmp_path / "same.npz", allow_pickle=True) as archive:
        assert archive["data"].dtype == object and archive["data"].shape == (2,)
