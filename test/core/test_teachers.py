"""Teachers: SGBM accuracy on rendered stereo, RAFT shapes/weights/validity, the disk cache, the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List

import cv2
import numpy as np
import pytest
import torch

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.cli import main
from fg_depth_core.config import RaftConfig, SgbmConfig, TeacherConfig
from fg_depth_core.data.base import RawPair, StereoDataset
from fg_depth_core.data.render import Patch, fronto_parallel, render_stereo
from fg_depth_core.teachers import (
    CachedTeacher,
    Teacher,
    TeacherError,
    TeacherOutput,
    build_teacher,
    disparity_output,
    stereo_flows,
    teacher_disparity,
)
from fg_depth_core.teachers.base import band_coverage, consistency_valid, rescale_output
from fg_depth_core.teachers.dataset import WithTeacher
from fg_depth_core.teachers.raft import RaftTeacher, hub_checkpoint_path, padded_size
from fg_depth_core.teachers.sgm import SgbmTeacher

FOCAL = 200.0
BASELINE = 0.2
FAR, NEAR = 5.0, 2.0  # metres: disparities 8 px and 20 px
SGBM = SgbmConfig(num_disparities=32)  # small range so that most of a 320 px wide image is matchable
TINY_RAFT = RaftConfig(num_flow_updates=2)


def _render(far_seed: int = 1):
    k = Intrinsics(fx=FOCAL, fy=FOCAL, cx=159.5, cy=95.5, width=320, height=192)
    # A nearer textured box in front of a textured wall makes a depth edge and an occlusion band.
    near = Patch(origin=(-0.5, -0.4, NEAR), axis_u=(1.0, 0.0, 0.0), axis_v=(0.0, 0.8, 0.0),
                 texture_seed=3, texture_cell=0.05)
    wall = fronto_parallel(FAR, texture_seed=far_seed, texture_cell=0.1)
    return render_stereo([wall, near], k, BASELINE, right_gain=1.15, seed=0)


@pytest.fixture(scope="module")
def frame():
    return _render()


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def _agreement(estimate: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    valid = np.isfinite(estimate)
    err = np.abs(estimate - truth)[valid]
    return {
        "valid": float(valid.mean()),
        "within_1px": float((err <= 1.0).mean()),
        "median": float(np.median(err)),
    }


def _visible_in_right(frame) -> np.ndarray:
    """(H,W) True where the left pixel's surface point is the one the right camera sees at u - d."""
    h, w = frame.disparity_left.shape
    xr = np.round(np.arange(w)[None] - frame.disparity_left).astype(int)
    seen = frame.depth_right[np.arange(h)[:, None], np.clip(xr, 0, w - 1)]
    return (xr >= 0) & (np.abs(seen - frame.depth_left) < 0.01 * frame.depth_left)


def _near_depth_edge(disparity: np.ndarray, radius: int) -> np.ndarray:
    edge = np.zeros(disparity.shape, bool)
    edge[:, 1:] |= np.abs(np.diff(disparity, axis=1)) > 0.5
    edge[1:, :] |= np.abs(np.diff(disparity, axis=0)) > 0.5
    size = 2 * radius + 1
    return cv2.dilate(edge.astype(np.uint8), np.ones((size, size), np.uint8)) > 0


# ------------------------------------------------------------------------------------------------ SGBM


def test_sgbm_left_disparity_matches_rendered_truth(frame):
    lr, _ = stereo_flows(SgbmTeacher(SGBM), _tensor(frame.left), _tensor(frame.right))
    assert lr.flow.shape == (1, 2, 192, 320) and lr.valid.shape == (1, 1, 192, 320)
    assert lr.valid.dtype == torch.bool and lr.target_is_left
    # Left target: the match lies to the left, so flow x = -disparity < 0 and there is no vertical flow.
    assert torch.all(lr.flow[:, 0][lr.valid[:, 0]] < 0)
    assert torch.all(lr.flow[:, 1] == 0)
    disparity = teacher_disparity(lr)
    stats = _agreement(disparity, frame.disparity_left)
    assert stats["valid"] > 0.6
    # SGBM fattens depth edges by a few pixels; everywhere else it is sub-pixel.
    assert stats["within_1px"] > 0.97 and stats["median"] < 0.25
    # Where the left pixel is visible in the right view, >= 2 px from a depth edge and the image border, SGBM
    # is within 1 px: the rest of its error is edge fattening and occlusion, which M_fp has to tolerate.
    core = _visible_in_right(frame) & ~_near_depth_edge(frame.disparity_left, 2)
    core[:, -SGBM.block_size:] = False
    err = np.abs(disparity - frame.disparity_left)[core & np.isfinite(disparity)]
    assert err.size > 0.6 * core.sum()
    assert (err <= 1.0).mean() > 0.999 and err.max() < 1.5
    # Both depths are present: the near box (20 px) and the wall (8 px).
    near = frame.depth_left < (NEAR + FAR) / 2
    assert abs(np.nanmedian(disparity[near]) - FOCAL * BASELINE / NEAR) < 0.5
    assert abs(np.nanmedian(disparity[~near]) - FOCAL * BASELINE / FAR) < 0.5


def test_sgbm_right_to_left_has_opposite_sign_and_matches_right_truth(frame):
    lr, rl = stereo_flows(SgbmTeacher(SGBM), _tensor(frame.left), _tensor(frame.right))
    assert not rl.target_is_left
    assert torch.all(rl.flow[:, 0][rl.valid[:, 0]] > 0)
    truth_right = FOCAL * BASELINE / frame.depth_right
    stats = _agreement(teacher_disparity(rl), truth_right)
    assert stats["valid"] > 0.6 and stats["within_1px"] > 0.97 and stats["median"] < 0.25
    # The right view's border band (the left view's left band, mirrored) is matched since SGBM pads its
    # views (issue 14), but only where the match lies inside the left view with a block's margin: the left
    # camera does not see the right view's last columns.
    width = frame.left.shape[1]
    band = slice(width - SGBM.num_disparities, width)
    columns = torch.arange(width, dtype=torch.float32)[band]
    valid_band = rl.valid[0, 0, :, band]
    assert valid_band.float().mean() > 0.5  # of 32 columns, the last 8 + 5 cannot be matched
    assert torch.all((columns + rl.flow[0, 0, :, band])[valid_band] <= width - 1 - SGBM.block_size)
    assert rl.valid[0, 0, :, : SGBM.num_disparities].float().mean() > 0.8
    # flow() in the right->left direction gives what stereo_flows gave.
    again = SgbmTeacher(SGBM).flow(_tensor(frame.right), _tensor(frame.left), target_is_left=False)
    assert torch.equal(again.flow, rl.flow) and torch.equal(again.valid, rl.valid)


def test_teacher_rejects_mismatched_inputs():
    with pytest.raises(TeacherError, match="same shape"):
        SgbmTeacher(SGBM).flow(torch.rand(1, 3, 20, 30), torch.rand(1, 3, 20, 31))
    with pytest.raises(TeacherError, match=r"\(B,3,H,W\)"):
        SgbmTeacher(SGBM).flow(torch.rand(3, 20, 30), torch.rand(3, 20, 30))


# ------------------------------------------------------------------------------- disparity/flow signs


def test_disparity_only_teacher_sign_convention():
    d = torch.tensor([[[[2.0, 3.5], [0.0, 7.25]]]])
    valid = torch.tensor([[[[True, True], [False, True]]]])
    left = disparity_output(d, valid, target_is_left=True)
    right = disparity_output(d, valid, target_is_left=False)
    assert torch.equal(left.flow[0, 0], torch.tensor([[-2.0, -3.5], [-0.0, -7.25]]))
    assert torch.equal(right.flow[0, 0], d[0, 0])
    assert torch.equal(left.flow[0, 1], torch.zeros(2, 2))
    expected = np.array([[2.0, 3.5], [np.nan, 7.25]], dtype=np.float32)
    for out in (left, right):
        got = teacher_disparity(out)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------------------------------ RAFT


def test_padded_size():
    assert padded_size(37, 53, 8, 128) == (128, 128)
    assert padded_size(130, 201, 8, 128) == (136, 208)
    assert padded_size(192, 320, 8, 128) == (192, 320)


@pytest.mark.parametrize("height,width,batch", [(37, 53, 1), (50, 67, 2)])
def test_raft_random_weights_runs_on_odd_sizes(height, width, batch):
    torch.manual_seed(0)
    left, right = torch.rand(batch, 3, height, width), torch.rand(batch, 3, height, width)
    teacher = RaftTeacher("raft_small", "none", TINY_RAFT)
    lr, rl = stereo_flows(teacher, left, right)
    for out in (lr, rl):
        assert out.flow.shape == (batch, 2, height, width) and out.flow.dtype == torch.float32
        assert out.valid.shape == (batch, 1, height, width) and out.valid.dtype == torch.bool
        assert torch.isfinite(out.flow).all()
    assert lr.target_is_left and not rl.target_is_left


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_raft_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    first = RaftTeacher("raft_small", "none", TINY_RAFT)
    assert torch.equal(torch.rand(3), expected)
    assert _same_weights(first.model, RaftTeacher("raft_small", "none", TINY_RAFT).model)


def test_consistency_valid_by_hand():
    h, w = 6, 10
    forward = torch.zeros(1, 2, h, w)
    forward[:, 0] = -3.0  # match 3 px to the left
    backward = torch.zeros(1, 2, h, w)
    backward[:, 0] = 3.0
    backward[0, 0, :, 6:] = 4.5  # inconsistent where forward lands at x - 3 >= 6, i.e. x >= 9
    forward[0, 1, 0, 5] = 1.5  # too much vertical flow at one pixel
    cfg = RaftConfig(fb_threshold=1.0, max_vertical_flow=1.0)
    valid = consistency_valid(forward, backward, cfg)[0, 0]
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[:, 3:9] = True  # x < 3 leaves the view, x = 9 fails forward-backward (|-3 + 4.5| > 1)
    expected[0, 5] = False
    assert torch.equal(valid, expected)
    # With the check disabled only the view and the vertical flow count.
    no_fb = consistency_valid(forward, None, RaftConfig(fb_threshold=0.0, max_vertical_flow=1.0))[0, 0]
    expected[:, 9] = True
    assert torch.equal(no_fb, expected)


def test_raft_cache_weights_missing_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    with pytest.raises(TeacherError) as info:
        build_teacher(TeacherConfig(method="raft_small", weights="cache"))
    message = str(info.value)
    expected = tmp_path / "empty_torch_home" / "hub" / "checkpoints" / "raft_small_C_T_V2-01064c6d.pth"
    assert str(expected) in message and "https://" in message


def test_raft_weights_from_cache_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    reference = RaftTeacher("raft_small", "none", TINY_RAFT)
    # A perturbed state dict, so that loading it is visible in the output.
    state = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in reference.model.state_dict().items()}
    hub_file = hub_checkpoint_path("raft_small")
    hub_file.parent.mkdir(parents=True)
    torch.save(state, hub_file)
    plain_file = tmp_path / "raft.pth"
    torch.save({"state_dict": state}, plain_file)
    from_cache = RaftTeacher("raft_small", "cache", TINY_RAFT).model
    from_file = RaftTeacher("raft_small", str(plain_file), TINY_RAFT).model
    assert _same_weights(from_cache, from_file)
    assert torch.equal(from_cache.state_dict()["update_block.flow_head.conv2.bias"],
                       state["update_block.flow_head.conv2.bias"])
    assert not _same_weights(from_cache, reference.model)


def test_raft_bad_weight_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(TeacherError, match=str(missing)):
        RaftTeacher("raft_small", str(missing), TINY_RAFT)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(TeacherError, match=str(garbage)):
        RaftTeacher("raft_small", str(garbage), TINY_RAFT)
    wrong = tmp_path / "large.pth"
    torch.save(RaftTeacher("raft_large", "none", TINY_RAFT).model.state_dict(), wrong)
    with pytest.raises(TeacherError, match=str(wrong)):
        RaftTeacher("raft_small", str(wrong), TINY_RAFT)


# ----------------------------------------------------------------------------------------------- cache


class CountingTeacher(Teacher):
    """Records the batch size of every call to the wrapped teacher."""

    def __init__(self, inner: Teacher) -> None:
        self.inner = inner
        self.calls: List[int] = []

    def identity(self) -> Dict[str, Any]:
        return self.inner.identity()

    def _flow(self, target, source, target_is_left, doffs):
        self.calls.append(target.shape[0])
        return self.inner.flow(target, source, target_is_left, doffs)


def test_cache_hit_returns_identical_arrays(frame, tmp_path):
    left, right = _tensor(frame.left), _tensor(frame.right)
    counting = CountingTeacher(SgbmTeacher(SGBM))
    cached = CachedTeacher(counting, tmp_path)
    first = cached.flow(left, right)
    second = cached.flow(left, right)
    assert (cached.misses, cached.hits, counting.calls) == (1, 1, [1])
    assert torch.equal(first.flow, second.flow) and torch.equal(first.valid, second.valid)
    assert torch.equal(first.flow, SgbmTeacher(SGBM).flow(left, right).flow)
    # A fresh wrapper on the same directory (another process) hits as well.
    other = CachedTeacher(SgbmTeacher(SGBM), tmp_path)
    assert torch.equal(other.flow(left, right).flow, first.flow) and other.hits == 1
    # The other direction is a different entry.
    cached.flow(right, left, target_is_left=False)
    assert cached.misses == 2


def test_cache_misses_on_changed_image_or_config(frame, tmp_path):
    left, right = _tensor(frame.left), _tensor(frame.right)
    cached = CachedTeacher(SgbmTeacher(SGBM), tmp_path)
    cached.flow(left, right)
    changed = left.clone()
    changed[0, 0, 10, 10] += 1.0 / 255.0
    cached.flow(changed, right)
    assert (cached.hits, cached.misses) == (0, 2)
    other_cfg = CachedTeacher(SgbmTeacher(dataclasses.replace(SGBM, block_size=7)), tmp_path)
    other_cfg.flow(left, right)
    assert (other_cfg.hits, other_cfg.misses) == (0, 1)


def test_cache_is_per_sample_and_covers_both_directions(frame, tmp_path):
    a_left, a_right = _tensor(frame.left), _tensor(frame.right)
    other = _render(far_seed=9)
    b_left, b_right = _tensor(other.left), _tensor(other.right)
    counting = CountingTeacher(SgbmTeacher(SGBM))
    cached = CachedTeacher(counting, tmp_path, flow_dtype="float16")
    single = cached.flow(a_left, a_right)
    batch = cached.flow(torch.cat((a_left, b_left)), torch.cat((a_right, b_right)))
    assert counting.calls == [1, 1]  # only the new sample went to the teacher
    assert (cached.hits, cached.misses) == (1, 2)
    assert torch.equal(batch.flow[:1], single.flow)
    # float16 storage: the miss returned the stored precision, so the hit is identical to it.
    again = cached.flow(torch.cat((a_left, b_left)), torch.cat((a_right, b_right)))
    assert torch.equal(batch.flow, again.flow)
    lr, rl = stereo_flows(cached, b_left, b_right)
    assert (cached.hits, cached.misses) == (4, 3)  # left->right of b hit, right->left computed
    assert torch.equal(lr.flow, batch.flow[1:])
    hit = cached.flow(b_right, b_left, target_is_left=False)
    assert torch.equal(hit.flow, rl.flow) and not hit.target_is_left and cached.hits == 5


def test_cache_recovers_from_a_damaged_file(frame, tmp_path):
    left, right = _tensor(frame.left), _tensor(frame.right)
    cached = CachedTeacher(SgbmTeacher(SGBM), tmp_path)
    first = cached.flow(left, right)
    (entry,) = list(Path(tmp_path).rglob("*.npz"))
    entry.write_bytes(b"truncated")
    assert torch.equal(cached.flow(left, right).flow, first.flow) and cached.misses == 2
    assert not list(Path(tmp_path).rglob("*.tmp"))


def test_build_teacher_wraps_in_cache(tmp_path):
    teacher = build_teacher(TeacherConfig(method="sgbm", cache_dir=str(tmp_path / "c"), sgbm=SGBM))
    assert isinstance(teacher, CachedTeacher) and isinstance(teacher.teacher, SgbmTeacher)
    assert isinstance(build_teacher(TeacherConfig(method="sgbm")), SgbmTeacher)


# ------------------------------------------------------------------------------------------------- CLI


def _write_pair(frame, tmp_path: Path):
    left, right = tmp_path / "left.png", tmp_path / "right.png"
    cv2.imwrite(str(left), cv2.cvtColor(frame.left, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(right), cv2.cvtColor(frame.right, cv2.COLOR_RGB2BGR))
    config = tmp_path / "teacher.yaml"
    config.write_text(f"teacher:\n  sgbm:\n    num_disparities: {SGBM.num_disparities}\n"
                      f"  raft:\n    num_flow_updates: {TINY_RAFT.num_flow_updates}\n")
    return str(left), str(right), str(config)


def test_cli_writes_disparity(frame, tmp_path, capsys):
    left, right, config = _write_pair(frame, tmp_path)
    out = tmp_path / "out" / "disp.npy"
    cache = tmp_path / "cache"
    argv = ["teacher", "--method", "sgbm", "--left", left, "--right", right, "--out", str(out),
            "--config", config, "--cache-dir", str(cache)]
    assert main(argv) == 0
    disparity = np.load(out)
    assert disparity.dtype == np.float32 and disparity.shape == (192, 320)
    assert np.isnan(disparity).any()
    stats = _agreement(disparity, frame.disparity_left)
    assert stats["valid"] > 0.6 and stats["within_1px"] > 0.97
    summary = capsys.readouterr().out
    assert "valid" in summary and "median" in summary
    assert len(list(cache.rglob("*.npz"))) == 1


def test_cli_raft_runs_with_random_weights(frame, tmp_path):
    crop = dataclasses.replace(frame, left=frame.left[:45, :70], right=frame.right[:45, :70])
    left, right, config = _write_pair(crop, tmp_path)
    out = tmp_path / "raft.npy"
    argv = ["teacher", "--method", "raft_small", "--weights", "none", "--left", left, "--right", right,
            "--out", str(out), "--config", config]
    assert main(argv) == 0
    disparity = np.load(out)
    assert disparity.shape == (45, 70) and disparity.dtype == np.float32


def test_cli_errors_name_the_file(frame, tmp_path, capsys, monkeypatch):
    left, right, _ = _write_pair(frame, tmp_path)
    missing = str(tmp_path / "missing.png")
    out = str(tmp_path / "d.npy")
    assert main(["teacher", "--left", left, "--right", missing, "--out", out]) == 2
    assert missing in capsys.readouterr().err
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), frame.right[:100, :200])
    assert main(["teacher", "--left", left, "--right", str(small), "--out", out]) == 2
    err = capsys.readouterr().err
    assert str(small) in err and "200x100" in err and "320x192" in err
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    assert main(["teacher", "--method", "raft_large", "--left", left, "--right", right, "--out", out]) == 2
    assert "raft_large_C_T_V2" in capsys.readouterr().err
    assert not Path(out).exists()


def test_sgbm_on_an_image_narrower_than_its_disparity_range_says_so():
    from fg_depth_core.config import SgbmConfig
    from fg_depth_core.teachers.base import TeacherError
    from fg_depth_core.teachers.sgm import SgbmTeacher

    image = torch.rand(1, 3, 32, 96)
    with pytest.raises(TeacherError, match=r"num_disparities: expected fewer than the image width \(96 px\)"):
        SgbmTeacher(SgbmConfig(num_disparities=96)).flow(image, image)
    out = SgbmTeacher(SgbmConfig(num_disparities=32)).flow(image, image)
    assert out.flow.shape == (1, 2, 32, 96)


def test_sgbm_searches_from_the_rigs_offset_per_sample_and_the_cache_keys_on_it(tmp_path):
    # The frame's right camera with its principal point 12 px to the right (doffs = 12): image disparities
    # are f B / Z - 12, i.e. -4 px (wall) and +8 px (box).
    k = Intrinsics(fx=FOCAL, fy=FOCAL, cx=159.5, cy=95.5, width=320, height=192)
    right_k = Intrinsics(FOCAL, FOCAL, 159.5 + 12.0, 95.5, 320, 192)
    near = Patch(origin=(-0.5, -0.4, NEAR), axis_u=(1.0, 0.0, 0.0), axis_v=(0.0, 0.8, 0.0),
                 texture_seed=3, texture_cell=0.05)
    shifted = render_stereo([fronto_parallel(FAR, texture_seed=1, texture_cell=0.1), near], k, BASELINE,
                            seed=0, right_intrinsics=right_k)  # fmt: skip
    left, right = _tensor(shifted.left), _tensor(shifted.right)
    teacher = SgbmTeacher(SGBM)
    both = teacher.flow(torch.cat((left, left)), torch.cat((right, right)), doffs=torch.tensor([12.0, 0.0]))
    with_offset, without = teacher_disparity(both, 0), teacher_disparity(both, 1)
    stats = _agreement(with_offset, shifted.disparity_left)
    assert stats["valid"] > 0.6 and stats["within_1px"] > 0.97 and stats["median"] < 0.25, stats
    assert np.nanmin(with_offset) < -3.0  # negative image disparities were searched
    # Searched from 0, the wall's -4 px cannot be found.
    wall = shifted.depth_left > (NEAR + FAR) / 2

    def found(disparity):
        return float((np.abs(disparity - shifted.disparity_left)[wall] <= 1.0).mean())

    assert found(without) < 0.05 and found(with_offset) > 0.6
    # The right view as target (mirrored, swapped): the same offset and the same accuracy.
    rl = teacher.flow(right, left, target_is_left=False, doffs=12.0)
    truth_right = FOCAL * BASELINE / shifted.depth_right - 12.0
    assert _agreement(teacher_disparity(rl), truth_right)["within_1px"] > 0.97
    # The cache tells offsets apart (SGBM's answer depends on them) and finds each again.
    cached = CachedTeacher(SgbmTeacher(SGBM), tmp_path)
    cached.flow(left, right, doffs=12.0)
    cached.flow(left, right)
    assert (cached.hits, cached.misses) == (0, 2)
    assert torch.equal(cached.flow(left, right, doffs=12.0).flow, both.flow[:1]) and cached.hits == 1
    with pytest.raises(TeacherError, match=r"teacher doffs: expected one finite disparity offset .* of 2"):
        teacher.flow(torch.cat((left, left)), torch.cat((right, right)), doffs=[1.0, 2.0, 3.0])
    # The command line takes the offset too.
    left_png, right_png, config = _write_pair(shifted, tmp_path)
    out = tmp_path / "disp.npy"
    argv = ["teacher", "--method", "sgbm", "--left", left_png, "--right", right_png, "--out", str(out),
            "--config", config, "--doffs", "12"]  # fmt: skip
    assert main(argv) == 0
    assert _agreement(np.load(out), shifted.disparity_left)["within_1px"] > 0.97


# ----------------------------------------------------------------------------------------------- issue 14


def test_sgbm_matches_the_left_band_where_the_match_is_in_the_right_view(frame):
    # Issue 14: OpenCV matched no pixel with x < num_disparities unless the views are padded.
    lr, _ = stereo_flows(SgbmTeacher(SGBM), _tensor(frame.left), _tensor(frame.right))
    disparity = teacher_disparity(lr)
    band = slice(0, SGBM.num_disparities)
    # Matchable: visible in the right view with a block's margin from its left edge, away from depth edges.
    columns = np.arange(frame.left.shape[1])[None, :]
    matchable = (
        _visible_in_right(frame)
        & (columns - frame.disparity_left >= SGBM.block_size + 1)
        & ~_near_depth_edge(frame.disparity_left, 2)
    )[:, band]
    found = np.isfinite(disparity[:, band])
    assert matchable.mean() > 0.5
    assert found[matchable].mean() > 0.9
    err = np.abs(disparity[:, band] - frame.disparity_left[:, band])[found & matchable]
    assert (err <= 1.0).mean() > 0.99
    # No match lands in the padding: x - d stays a block inside the right view.
    assert np.all((columns[:, band] - disparity[:, band])[found] >= SGBM.block_size)


def test_cli_reports_the_coverage_per_band(frame, tmp_path, capsys):
    left, right, config = _write_pair(frame, tmp_path)
    argv = ["teacher", "--method", "sgbm", "--left", left, "--right", right, "--out", str(tmp_path / "d.npy"),
            "--config", config, "--bands", "4"]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    shares = summary.split("valid per band, left to right: ")[1].strip().split(", ")
    disparity = np.load(tmp_path / "d.npy")
    expected = [f"{np.isfinite(disparity[:, i * 80:(i + 1) * 80]).mean():.0%}" for i in range(4)]
    assert shares == expected and shares[0] != "0%"


def test_band_coverage_and_rescaled_teacher_output_by_hand():
    valid = np.zeros((2, 10), bool)
    valid[:, 5:] = True
    valid[0, 0] = True
    assert band_coverage(valid, 2) == [0.1, 1.0]
    assert band_coverage(valid, 3) == pytest.approx([1 / 6, 0.5, 1.0])
    # A 4x8 flow brought to 2x4: x scaled by 4/8, y by 2/4, each pixel the mean of its valid 2x2 block,
    # valid where at least half of the block is.
    flow = torch.zeros(1, 2, 4, 8)
    flow[0, 0] = -4.0
    flow[0, 0, :2, :2] = torch.tensor([[-4.0, -8.0], [-6.0, 100.0]])
    flow[0, 1] = 2.0
    ok = torch.ones(1, 1, 4, 8, dtype=torch.bool)
    ok[0, 0, 1, 1] = False  # the outlier 100 is invalid and must not leak in
    ok[0, 0, 2:, 6:] = torch.tensor([[False, False], [False, True]])
    small = rescale_output(TeacherOutput(flow, ok, True), 2, 4)
    assert small.flow.shape == (1, 2, 2, 4) and small.valid.shape == (1, 1, 2, 4)
    assert small.flow[0, 0, 0, 0].item() == pytest.approx((-4 - 8 - 6) / 3 / 2)
    assert small.flow[0, 0, 1, 1].item() == pytest.approx(-2.0) and small.flow[0, 1, 1, 1].item() == 1.0
    assert small.valid[0, 0].tolist() == [[True] * 4, [True, True, True, False]]
    assert rescale_output(small, 2, 4) is small


class _StoredPairs(StereoDataset):
    """The rendered frame stored at 320x192 and served at 160x96 (what a camera and a network input do)."""

    def __init__(self, frame) -> None:
        super().__init__(160, 96)
        self.frame = frame

    def __len__(self) -> int:
        return 1

    def load(self, index: int) -> RawPair:
        rig = StereoRig(
            Intrinsics(fx=FOCAL, fy=FOCAL, cx=159.5, cy=95.5, width=320, height=192), baseline=BASELINE
        )
        return RawPair(self.frame.left, self.frame.right, rig, self.frame.depth_left)

    def name(self, index: int) -> str:
        return "frame"


def test_teacher_at_raw_resolution_gives_flow_at_the_network_size(frame, tmp_path):
    dataset = _StoredPairs(frame)
    teacher = SgbmTeacher(SGBM)
    raw = WithTeacher(dataset, teacher, resolution="raw", cache_dir=str(tmp_path / "cache"))[0]
    low = WithTeacher(dataset, teacher, resolution="input")[0]
    for sample in (raw, low):
        assert sample["flow_lr"].shape == (2, 96, 160) and sample["valid_lr"].shape == (1, 96, 160)
        assert sample["flow_rl"].shape == (2, 96, 160)
    # The raw flow, matched at 320 px and halved, agrees with the truth at 160 px (8 px -> 4 px, 20 -> 10).
    truth = frame.disparity_left[::2, ::2] / 2
    valid = raw["valid_lr"][0].numpy()
    err = np.abs(-raw["flow_lr"][0].numpy() - truth)[valid & ~_near_depth_edge(truth, 2)]
    assert valid.mean() > 0.6 and np.median(err) < 0.25 and (err <= 0.5).mean() > 0.9
    # It is more precise than matching the halved images directly (sub-pixel at twice the resolution).
    low_valid = low["valid_lr"][0].numpy() & ~_near_depth_edge(truth, 2)
    err_low = np.abs(-low["flow_lr"][0].numpy() - truth)[low_valid]
    assert np.mean(err) < np.mean(err_low)
    with pytest.raises(TeacherError, match="teacher.resolution 'raw'"):
        WithTeacher(torch.utils.data.TensorDataset(torch.zeros(1)), teacher, resolution="raw")


def test_dis_teacher_is_dense_and_consistent_in_both_directions(frame):
    teacher = build_teacher(TeacherConfig(method="dis"))
    lr, rl = stereo_flows(teacher, _tensor(frame.left), _tensor(frame.right))
    assert lr.target_is_left and not rl.target_is_left
    assert lr.flow.shape == (1, 2, 192, 320) and lr.valid.dtype == torch.bool
    disparity = teacher_disparity(lr)
    core = _visible_in_right(frame) & ~_near_depth_edge(frame.disparity_left, 3)
    err = np.abs(disparity - frame.disparity_left)[core & np.isfinite(disparity)]
    assert np.isfinite(disparity)[core].mean() > 0.8 and np.median(err) < 0.5
    # Valid flows are nearly horizontal and pass the round trip.
    assert lr.flow[:, 1][lr.valid[:, 0]].abs().max() <= 1.0
    assert torch.all(rl.flow[:, 0][rl.valid[:, 0]] > -1.0)
    assert teacher.identity()["method"] == "dis"


def test_an_optical_flow_teacher_runs_one_direction_when_it_has_no_backward_check(frame):
    from fg_depth_core.config import DisConfig
    from fg_depth_core.teachers.dis import DisTeacher

    class Counting(DisTeacher):
        runs = 0

        def raw_flow(self, target, source):
            Counting.runs += 1
            return super().raw_flow(target, source)

    left, right = _tensor(frame.left), _tensor(frame.right)
    unchecked = Counting(DisConfig(fb_threshold=0.0))
    out = unchecked.flow(left, right)
    assert Counting.runs == 1
    # The same validity as the checked teacher's first output without its round trip: in view, horizontal.
    both = Counting(DisConfig(fb_threshold=0.0)).stereo(left, right)[0]
    assert torch.equal(out.valid, both.valid) and torch.equal(out.flow, both.flow)
    assert Counting.runs == 3  # stereo needs both directions
