"""The stereo-folder layout (writer and reader), `fg-depth synth`, the rendered-split dataset, the factory."""

from __future__ import annotations

import dataclasses
import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.cli import main
from fg_depth_core.config import DataConfig, EvalConfig, SynthConfig
from fg_depth_core.data.base import DatasetError, RawPair
from fg_depth_core.data.factory import build_dataset
from fg_depth_core.data.folder import StereoFolder, read_calib, read_depth, write_stereo_folder
from fg_depth_core.data.synth import SynthDataset, render_split
from fg_depth_core.data.world import render_frame, resize_synth, synth_intrinsics

RIG = StereoRig(Intrinsics(100.0, 101.0, 47.5, 23.0, 96, 48), 0.3)


def _pairs(n: int, depth: bool = True, rig: StereoRig = RIG):
    rng = np.random.default_rng(0)
    for i in range(n):
        left = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
        right = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
        d = rng.uniform(1.0, 50.0, (48, 96)).astype(np.float32) if depth else None
        if d is not None:
            d[0, :4] = [np.inf, np.nan, 0.0, -1.0]  # unknown in every spelling
        yield f"pair{i}", RawPair(left, right, rig, d)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "stereo"
    assert write_stereo_folder(root, _pairs(3)) == 3
    return root


def test_written_folder_reads_back_with_scaled_intrinsics_and_depth(folder: Path):
    pairs = dict(_pairs(3))
    ds = StereoFolder(folder, 64, 32)
    assert len(ds) == 3 and [ds.name(i) for i in range(3)] == ["pair0", "pair1", "pair2"]
    raw = ds.load(1)
    assert np.array_equal(raw.left, pairs["pair1"].left) and np.array_equal(raw.right, pairs["pair1"].right)
    assert raw.rig == RIG
    expected = np.where(
        np.isfinite(pairs["pair1"].depth_left) & (pairs["pair1"].depth_left > 0),
        pairs["pair1"].depth_left,
        0.0,
    )
    assert np.array_equal(raw.depth_left, expected)
    sample = ds[1]
    assert sample["left"].shape == (3, 32, 64) and sample["depth_left"].shape == (1, 48, 96)
    k = RIG.intrinsics.resized(64, 32).matrix()
    assert torch.allclose(sample["K"], torch.from_numpy(k).float())
    assert float(sample["focal"]) == pytest.approx(100.0 * 64 / 96) and float(
        sample["baseline"]
    ) == pytest.approx(0.3)


def test_split_file_picks_and_orders_pairs_and_calib_without_size_uses_the_image_size(folder: Path):
    (folder / "calib.yaml").write_text("fx: 100.0\nfy: 101.0\ncx: 47.5\ncy: 23.0\nbaseline: 0.3\n")
    (folder / "val.txt").write_text("# a comment\npair2\n\npair0.png\n")
    ds = StereoFolder(folder, 96, 48, split_file="val.txt")  # found inside the folder
    assert [ds.name(i) for i in range(len(ds))] == ["pair2", "pair0"]
    assert ds.load(0).rig == RIG


def test_depth_as_16_bit_png_in_kitti_units(tmp_path: Path):
    depth = np.array([[0, 256, 2560], [65535, 1, 512]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), depth)
    assert np.array_equal(read_depth(tmp_path / "d.png"), depth.astype(np.float32) / 256.0)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DatasetError, match="rgb.png.*16-bit"):
        read_depth(tmp_path / "rgb.png")


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: (r / "calib.yaml").unlink(), r"calib\.yaml: calibration file not found"),
        (
            lambda r: (r / "calib.yaml").write_text("fx: 1\nfy: 1\ncx: 1\ncy: 1\n"),
            r"calib\.yaml: missing key 'baseline'",
        ),
        (
            lambda r: (r / "calib.yaml").write_text("fx: 1\nfy: 1\ncx: 1\ncy: 1\nbaseline: -0.5\n"),
            r"calib\.yaml: key 'baseline': expected metres > 0.*-0\.5",
        ),
        (
            lambda r: (r / "calib.yaml").write_text("fx: one\nfy: 1\ncx: 1\ncy: 1\nbaseline: 1\n"),
            r"calib\.yaml: key 'fx': expected a number",
        ),
        (lambda r: (r / "right" / "pair1.png").unlink(), r"left/pair1\.png: no right partner"),
        (lambda r: (r / "depth" / "pair2.npy").unlink(), r"left/pair2\.png: no depth file"),
        (lambda r: [p.unlink() for p in (r / "left").iterdir()], r"left: no images"),
    ],
)
def test_folder_errors_name_the_file(folder: Path, breakage, message):
    breakage(folder)
    with pytest.raises(DatasetError, match=message):
        StereoFolder(folder, 64, 32)


def test_split_file_and_size_errors(folder: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match="nope.txt: split file not found"):
        StereoFolder(folder, 64, 32, split_file=tmp_path / "nope.txt")
    (tmp_path / "s.txt").write_text("pair0\nghost\n")
    with pytest.raises(DatasetError, match=r"s\.txt: no left image named 'ghost'"):
        StereoFolder(folder, 64, 32, split_file=tmp_path / "s.txt")
    cv2.imwrite(str(folder / "left" / "pair0.png"), np.zeros((40, 96, 3), np.uint8))
    cv2.imwrite(str(folder / "right" / "pair0.png"), np.zeros((40, 96, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"pair0\.png: .*calibrated for 96x48 images, got 96x40"):
        StereoFolder(folder, 64, 32).load(0)
    with pytest.raises(DatasetError, match="stereo folder not found"):
        StereoFolder(tmp_path / "missing", 64, 32)


def test_writer_refuses_mixed_cameras(tmp_path: Path):
    other = StereoRig(RIG.intrinsics, 0.5)
    items = list(_pairs(2))
    items[1] = ("pair1", dataclasses.replace(items[1][1], rig=other))
    with pytest.raises(DatasetError, match="pair1.*differs from the folder's calibration"):
        write_stereo_folder(tmp_path / "mixed", items)
    with pytest.raises(DatasetError, match="calib.yaml: already describes another camera"):
        write_stereo_folder(tmp_path / "mixed", _pairs(1, rig=other))
    with pytest.raises(DatasetError, match="pair name"):
        write_stereo_folder(tmp_path / "bad", [("../x", next(_pairs(1))[1])])


def test_synth_cli_writes_the_layout_and_the_folder_reads_it_back(tmp_path: Path, capsys):
    out = tmp_path / "world"
    assert (
        main(
            ["synth", "--out", str(out), "--frames", "3", "--seed", "2", "--size", "160x64", "--split", "val"]
        )
        == 0
    )
    assert "3 rendered now" in capsys.readouterr().out
    for sub, ext in (("left", "png"), ("right", "png"), ("depth", "npy")):
        assert sorted(p.name for p in (out / sub).iterdir()) == [f"00000{i}.{ext}" for i in range(3)]
    cfg = resize_synth(dataclasses.replace(SynthConfig(), seed=2), 160, 64)
    ds = StereoFolder(out, 128, 64)
    sample = ds[2]
    truth = render_frame(cfg, "val", 2)
    raw = ds.load(2)
    assert np.array_equal(raw.left, truth.left) and np.array_equal(raw.right, truth.right)
    assert np.array_equal(raw.depth_left, np.where(np.isfinite(truth.depth_left), truth.depth_left, 0.0))
    k = synth_intrinsics(cfg).resized(128, 64).matrix()
    assert torch.allclose(sample["K"], torch.from_numpy(k).float())
    assert float(sample["focal"]) == pytest.approx(371.0 * 160 / 640 * 128 / 160)
    assert float(sample["baseline"]) == pytest.approx(0.54)
    # An interrupted render resumes: only the missing frame is rendered again.
    os.remove(out / "left" / "000001.png")
    before = (out / "left" / "000000.png").stat().st_mtime_ns
    assert (
        main(
            ["synth", "--out", str(out), "--frames", "3", "--seed", "2", "--size", "160x64", "--split", "val"]
        )
        == 0
    )
    assert "1 rendered now" in capsys.readouterr().out
    assert (out / "left" / "000000.png").stat().st_mtime_ns == before
    assert np.array_equal(StereoFolder(out, 160, 64).load(1).left, render_frame(cfg, "val", 1).left)
    # Other world settings never mix into the same folder.
    assert (
        main(
            ["synth", "--out", str(out), "--frames", "3", "--seed", "3", "--size", "160x64", "--split", "val"]
        )
        == 2
    )
    assert "seed: 2 there, 3 now" in capsys.readouterr().err


def _data_cfg(**synth) -> DataConfig:
    base = {"width": 128, "height": 64, "focal": 74.2, "train_frames": 3, "val_frames": 2, "test_frames": 2}
    return DataConfig(dataset="synth", width=128, height=64, synth=SynthConfig(**{**base, **synth}))


def test_synth_dataset_renders_each_split_once_into_its_folder(tmp_path: Path):
    cfg = _data_cfg()
    ds = SynthDataset(cfg, "train", tmp_path, progress=False)
    assert len(ds) == 3 and ds.name(2) == "train/000002"
    assert (tmp_path / "train" / "calib.yaml").is_file() and not (tmp_path / "val").exists()
    sample = ds[0]
    assert sample["left"].shape == (3, 64, 128) and sample["depth_left"].shape == (1, 64, 128)
    truth = render_frame(cfg.synth, "train", 0).depth_left
    assert np.allclose(sample["depth_left"][0].numpy(), np.where(np.isfinite(truth), truth, 0.0))
    assert render_split(cfg.synth, "train", tmp_path / "train", progress=False) == 0  # nothing left to do
    # More frames later: only the new ones are rendered.
    bigger = _data_cfg(train_frames=4)
    assert render_split(bigger.synth, "train", tmp_path / "train", progress=False) == 1
    assert len(SynthDataset(bigger, "train", tmp_path, progress=False)) == 4


def test_factory_builds_each_dataset_and_explains_bad_requests(tmp_path: Path, folder: Path, monkeypatch):
    synth = build_dataset(_data_cfg(), "val", path=str(tmp_path / "synth"))
    assert isinstance(synth, SynthDataset) and len(synth) == 2
    (folder / "train.txt").write_text("pair1\n")
    folder_cfg = DataConfig(dataset="folder", width=64, height=32, path=str(folder), train_split="train.txt")
    ds = build_dataset(folder_cfg, "train")
    assert isinstance(ds, StereoFolder) and ds.names == ["pair1"]
    assert build_dataset(folder_cfg, "test").names == ["pair0", "pair1", "pair2"]  # no test split file
    with pytest.raises(DatasetError, match="data.path: the 'folder' dataset needs a stereo folder"):
        build_dataset(dataclasses.replace(folder_cfg, path=""), "train")
    with pytest.raises(DatasetError, match="data.dataset: expected one of"):
        build_dataset(dataclasses.replace(folder_cfg, dataset="nuscenes"), "train")
    with pytest.raises(DatasetError, match="split: expected one of"):
        build_dataset(folder_cfg, "holdout")
    # KITTI: KittiRaw(root, split_file, width, height), imported only when asked for.
    calls = []
    fake = types.ModuleType("fg_depth_core.data.kitti")
    fake.KittiRaw = lambda *args, **kw: calls.append((*args, kw)) or "kitti"
    fake.DEFAULT_SPLITS = {"test": "eigen/test_files.txt"}
    monkeypatch.setitem(sys.modules, "fg_depth_core.data.kitti", fake)
    monkeypatch.setattr("fg_depth_core.data.kitti", fake, raising=False)
    kitti_cfg = DataConfig(dataset="kitti", width=640, height=192)
    assert build_dataset(kitti_cfg, "test", path="/data/kitti", split_file="mine.txt") == "kitti"
    assert build_dataset(kitti_cfg, "test", path="/data/kitti") == "kitti"
    assert build_dataset(kitti_cfg, "train", path="/data/kitti", split_file="t.txt") == "kitti"
    improved = EvalConfig(gt="improved", velodyne_depth="camera_z")
    assert build_dataset(kitti_cfg, "val", "/data/kitti", split_file="v.txt", eval_cfg=improved) == "kitti"
    # Ground truth only for evaluation roles: training batches never read it. The test role (evaluation)
    # reads the target image alone; the ground truth's source and convention come from the eval section
    # (published velodyne ground truth by default).
    evaluation = {"load_depth": True, "target_only": True, "gt": "velodyne", "velodyne_depth": "velodyne_x"}
    training = {"load_depth": False, "target_only": False, "gt": "velodyne", "velodyne_depth": "velodyne_x"}
    assert calls == [
        ("/data/kitti", "mine.txt", 640, 192, evaluation),
        ("/data/kitti", "eigen/test_files.txt", 640, 192, evaluation),
        ("/data/kitti", "t.txt", 640, 192, training),
        (
            "/data/kitti",
            "v.txt",
            640,
            192,
            {"load_depth": True, "target_only": False, "gt": "improved", "velodyne_depth": "camera_z"},
        ),
    ]


def test_calib_yaml_carries_the_disparity_offset(tmp_path):
    # Middlebury-style: doffs = cx_right - cx_left in pixels; depth = fx * baseline / (disparity + doffs).
    (tmp_path / "calib.yaml").write_text(
        "fx: 215.0\nfy: 215.0\ncx: 67.0\ncy: 54.5\nbaseline: 0.193\ndoffs: 6.7\nwidth: 160\nheight: 108\n"
    )
    rig, size = read_calib(tmp_path / "calib.yaml")
    assert size == (160, 108) and rig.doffs == 6.7 and rig.right_intrinsics.cx == pytest.approx(73.7)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "calib.yaml").write_text("fx: 1\nfy: 1\ncx: 1\ncy: 1\nbaseline: 1\n")
    assert read_calib(tmp_path / "old" / "calib.yaml")[0].doffs == 0.0  # files without the key
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "calib.yaml").write_text("fx: 1\nfy: 1\ncx: 1\ncy: 1\nbaseline: 1\ndoffs: x\n")
    with pytest.raises(DatasetError, match=r"calib\.yaml: key 'doffs': expected a number, got 'x'"):
        read_calib(tmp_path / "bad" / "calib.yaml")
    # Written and read back; a folder holds one rig, so another offset is another camera.
    pair = RawPair(np.zeros((108, 160, 3), np.uint8), np.zeros((108, 160, 3), np.uint8), rig)
    write_stereo_folder(tmp_path / "out", [("0", pair)])
    assert StereoFolder(tmp_path / "out", 160, 108).load(0).rig == rig
    other = RawPair(pair.left, pair.right, StereoRig(rig.intrinsics, rig.baseline, 0.0))
    with pytest.raises(DatasetError, match=r"differs from the folder's calibration \(.*doffs=6\.7 px\)"):
        write_stereo_folder(tmp_path / "out2", [("0", pair), ("1", other)])
