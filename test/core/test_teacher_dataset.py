"""Teacher outputs per sample (teachers/dataset.py): shapes, signs and accuracy on rendered pairs, the cache
across runs, pickling and DataLoader workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fg_depth_core.config import DataConfig, SgbmConfig, SynthConfig, TeacherConfig
from fg_depth_core.data.synth import SynthDataset
from fg_depth_core.teachers import CachedTeacher, TeacherError
from fg_depth_core.teachers.dataset import WithTeacher, precompute_teacher
from fg_depth_core.teachers.sgm import SgbmTeacher

W, H = 160, 64
SGBM = SgbmConfig(num_disparities=48)  # disparities here reach f*B/3 m = 17 px; 48 < the 160 px width
# Sensor noise off keeps SGBM's answer crisp; the exposure difference stays.
DATA = DataConfig(
    dataset="synth",
    width=W,
    height=H,
    synth=SynthConfig(width=W, height=H, focal=371.0 * W / 640, train_frames=4, noise_std=0.0),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SynthDataset:
    return SynthDataset(DATA, "train", tmp_path_factory.mktemp("world"), progress=False)


def _teacher_cfg(cache: Path) -> TeacherConfig:
    return TeacherConfig(method="sgbm", sgbm=SGBM, cache_dir=str(cache))


def test_samples_gain_teacher_flows_with_the_right_shapes_signs_and_values(world, tmp_path):
    ds = WithTeacher(world, _teacher_cfg(tmp_path / "cache"))
    sample = ds[1]
    for key in ("left", "right", "K", "focal", "baseline", "depth_left"):
        assert key in sample  # the wrapped sample is kept
    for d in ("lr", "rl"):
        assert sample[f"flow_{d}"].shape == (2, H, W) and sample[f"flow_{d}"].dtype == torch.float32
        assert sample[f"valid_{d}"].shape == (1, H, W) and sample[f"valid_{d}"].dtype == torch.bool
        assert sample[f"valid_{d}"].float().mean() > 0.3
    lr, rl = sample["flow_lr"], sample["flow_rl"]
    assert (lr[0][sample["valid_lr"][0]] <= 0).all() and (rl[0][sample["valid_rl"][0]] >= 0).all()
    assert (lr[1] == 0).all() and (rl[1] == 0).all()  # SGBM is a disparity-only teacher
    # Computed at the network input size: the left target's disparity -flow_x matches f * B / Z there.
    depth = sample["depth_left"][0]
    truth = torch.where(depth > 0, sample["focal"] * sample["baseline"] / depth.clamp(min=1e-6), 0.0)
    ok = sample["valid_lr"][0] & (depth > 0)
    err = (-lr[0] - truth)[ok].abs()
    assert float((err <= 1.0).float().mean()) > 0.8


def test_cache_is_filled_once_and_reused_by_a_later_run(world, tmp_path):
    first = WithTeacher(world, _teacher_cfg(tmp_path / "cache"))
    stats = precompute_teacher(first, progress=False)
    assert stats == {"samples": 4, "computed": 8, "cached": 0}  # two directions per pair
    assert isinstance(first.teacher, CachedTeacher) and first.teacher.misses == 8
    again = precompute_teacher(first, progress=False)
    assert again == {"samples": 4, "computed": 0, "cached": 8}
    # A new run (new wrapper, new teacher) reads the same files and gets identical outputs.
    later = WithTeacher(world, _teacher_cfg(tmp_path / "cache"))
    a, b = first[2], later[2]
    assert later.teacher.hits == 2 and later.teacher.misses == 0
    for key in ("flow_lr", "valid_lr", "flow_rl", "valid_rl"):
        assert torch.equal(a[key], b[key])


def test_one_direction_and_a_teacher_instance(world, tmp_path):
    only_rl = WithTeacher(world, SgbmTeacher(SGBM), directions=("rl",), cache_dir=str(tmp_path / "c"))
    sample = only_rl[0]
    assert "flow_rl" in sample and "flow_lr" not in sample
    assert isinstance(only_rl.teacher, CachedTeacher) and only_rl.teacher.misses == 1
    both = WithTeacher(world, SgbmTeacher(SGBM))
    assert torch.equal(both[0]["flow_rl"], sample["flow_rl"])  # uncached teacher, same answer
    with pytest.raises(TeacherError, match="directions"):
        WithTeacher(world, SgbmTeacher(SGBM), directions=("lr", "up"))
    with pytest.raises(TeacherError, match="WithTeacher dataset"):
        precompute_teacher(world)


def test_wrapper_pickles_with_an_sgbm_teacher_inside_a_cache(world, tmp_path):
    ds = WithTeacher(world, CachedTeacher(SgbmTeacher(SGBM), tmp_path / "cache"))
    expected = ds[3]
    clone = pickle.loads(pickle.dumps(ds))  # the OpenCV matcher itself cannot be pickled
    assert isinstance(clone.teacher, CachedTeacher) and isinstance(clone.teacher.teacher, SgbmTeacher)
    got = clone[3]
    assert clone.teacher.hits == 2
    assert torch.equal(got["flow_lr"], expected["flow_lr"])


def test_the_dis_teacher_pickles_and_is_parallelised_on_the_cpu_like_sgbm(world, tmp_path):
    from fg_depth_core.config import DisConfig
    from fg_depth_core.teachers.dis import DisTeacher

    ds = WithTeacher(world, CachedTeacher(DisTeacher(DisConfig()), tmp_path / "cache"))
    expected = ds[1]
    clone = pickle.loads(pickle.dumps(ds))  # cv2.DISOpticalFlow itself cannot be pickled
    assert isinstance(clone.teacher.teacher, DisTeacher) and clone.teacher.hits == 0
    assert torch.equal(clone[1]["flow_lr"], expected["flow_lr"])
    # CPU-only teachers get the DataLoader's workers when the cache is filled, through the cache wrapper too.
    assert clone.teacher.parallel_on_cpu and SgbmTeacher(SGBM).parallel_on_cpu


def test_dataloader_with_two_workers_and_a_subset(world, tmp_path):
    ds = WithTeacher(world, _teacher_cfg(tmp_path / "cache"))
    precompute_teacher(torch.utils.data.Subset(ds, [0, 2]), progress=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2
    flows = torch.cat([b["flow_lr"] for b in batches])
    assert flows.shape == (4, 2, H, W) and batches[0]["valid_rl"].shape == (2, 1, H, W)
    for i in range(4):
        assert torch.equal(flows[i], ds[i]["flow_lr"])
    files = list((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 8  # the workers filled in the pairs the subset skipped


def test_precompute_with_workers_fills_the_cache(world, tmp_path):
    ds = WithTeacher(world, _teacher_cfg(tmp_path / "cache"))
    stats = precompute_teacher(ds, progress=False, num_workers=2)
    assert stats["samples"] == 4 and len(list((tmp_path / "cache").rglob("*.npz"))) == 8
    assert precompute_teacher(ds, progress=False) == {"samples": 4, "computed": 0, "cached": 8}
    disparity = -ds[0]["flow_lr"][0]
    assert np.isfinite(disparity.numpy()).all()
