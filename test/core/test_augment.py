"""augment.py on batches of rendered stereo pairs: geometry survives flip-swap and grafting exactly; jitter
is the same colour map in both views; everything is reproducible from the generator."""

import dataclasses

import numpy as np
import pytest
import torch

from fg_depth_core.augment import AugmentError, augment, color_jitter, flip_swap, graft
from fg_depth_core.camera import Intrinsics
from fg_depth_core.config import AugmentConfig
from fg_depth_core.data.render import Patch, fronto_parallel, render_stereo
from fg_depth_core.geometry import (
    backproject,
    depth_warp,
    disparity_from_depth,
    flow_from_disparity,
    flow_warp,
    mirror,
    pixel_grid,
    sample,
)

K = Intrinsics(60.0, 60.0, 29.0, 23.5, 64, 48)  # cx off-centre so that the flip must move it
BASELINE = 0.5
TOL = 2.5 / 255
OFF = AugmentConfig(graft_prob=0.0, flip_prob=0.0, jitter_prob=0.0)


def _frame(seed, far, near, baseline=BASELINE):
    patches = [
        fronto_parallel(far, texture_cell=far / 10, texture_seed=seed, contrast=0.6),
        Patch(
            origin=(-0.9 + 0.3 * seed, -0.5, near),
            axis_u=(1.0, 0.0, 0.0),
            axis_v=(0.0, 1.0, 0.0),
            albedo=(0.7, 0.4, 0.3),
            contrast=0.6,
            texture_cell=near / 10,
            texture_seed=seed + 10,
        ),
    ]
    return render_stereo(patches, K, baseline)


def _batch(specs=((1, 6.7, 3.3), (2, 8.3, 2.9), (3, 5.9, 3.7)), baselines=None):
    """A batch of rendered pairs with exact teacher flows in both directions and ground-truth depths."""
    baselines = baselines or [BASELINE] * len(specs)
    frames = [_frame(*spec, baseline=b) for spec, b in zip(specs, baselines)]

    def stack(key, image=False):
        arrays = [getattr(f, key) for f in frames]
        t = torch.from_numpy(np.stack(arrays)).float()
        return t.permute(0, 3, 1, 2) / 255.0 if image else t[:, None]

    depth_left, depth_right = stack("depth_left"), stack("depth_right")
    focal = torch.full((len(frames),), K.fx)
    baseline = torch.tensor(baselines, dtype=torch.float32)
    # Left target -> right source moves by -d_left; right target -> left source by +d_right.
    flow_lr = flow_from_disparity(disparity_from_depth(depth_left, focal, baseline))
    flow_rl = -flow_from_disparity(disparity_from_depth(depth_right, focal, baseline))
    return {
        "left": stack("left", True),
        "right": stack("right", True),
        "flow_lr": flow_lr,
        "valid_lr": torch.ones_like(depth_left, dtype=torch.bool),
        "flow_rl": flow_rl,
        "valid_rl": torch.ones_like(depth_left, dtype=torch.bool),
        "depth_left": depth_left,
        "depth_right": depth_right,
        "K": torch.from_numpy(K.matrix()).float().repeat(len(frames), 1, 1),
        "focal": focal,
        "baseline": baseline,
    }


def _visible(depth_t, depth_s, flow):
    """Target pixels whose flow lands in view on the same surface (both pixels bilinear sampling reads)."""
    coords = pixel_grid(*depth_t.shape[-2:], depth_t) + flow
    ok = torch.ones_like(depth_t, dtype=torch.bool)
    for rounding in (torch.floor, torch.ceil):
        c = coords.clone()
        c[:, 0] = rounding(coords[:, 0])
        seen, inside = sample(depth_s, c)
        ok &= inside & ((seen - depth_t).abs() < 1e-3 * depth_t)
    return ok


def _assert_geometry_exact(b):
    """The true depth warp and both teacher flow warps reconstruct their targets in visible pixels, up to
    the uint8 rounding of both views plus bilinear interpolation of the texture."""
    vis = _visible(b["depth_left"], b["depth_right"], b["flow_lr"])
    assert vis.float().mean() > 0.7
    recon, _ = depth_warp(b["right"], b["depth_left"], b["focal"], b["baseline"])
    err = (recon - b["left"]).abs().amax(dim=1, keepdim=True)[vis]
    assert err.max() < TOL and err.mean() < 0.5 / 255
    by_flow, _ = flow_warp(b["right"], b["flow_lr"])
    assert (by_flow - b["left"]).abs().amax(dim=1, keepdim=True)[vis & b["valid_lr"]].max() < TOL
    vis_r = _visible(b["depth_right"], b["depth_left"], b["flow_rl"])
    back, _ = flow_warp(b["left"], b["flow_rl"])
    assert vis_r.float().mean() > 0.7
    err_r = (back - b["right"]).abs().amax(dim=1, keepdim=True)[vis_r & b["valid_rl"]]
    assert err_r.max() < TOL and err_r.mean() < 0.5 / 255


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_rendered_batch_is_exact_before_augmentation():
    _assert_geometry_exact(_batch())


def test_flip_swap_keeps_the_stereo_geometry_exact():
    batch = _batch()
    cfg = dataclasses.replace(OFF, flip_prob=1.0)
    flipped = flip_swap(batch, cfg, _gen(0))
    assert torch.equal(flipped["left"], mirror(batch["right"]))
    assert torch.equal(flipped["depth_right"], mirror(batch["depth_left"]))
    _assert_geometry_exact(flipped)
    # K: cx -> W - 1 - cx, so back-projecting the new left view gives the old right camera's points with
    # x negated (the mirrored world).
    assert torch.allclose(flipped["K"][:, 0, 2], torch.full((3,), 63.0 - 29.0))
    new_points = backproject(flipped["depth_left"], flipped["K"])
    old_points = mirror(backproject(batch["depth_right"], batch["K"]))
    assert torch.allclose(new_points[:, 0], -old_points[:, 0], atol=1e-4)
    assert torch.allclose(new_points[:, 1:], old_points[:, 1:], atol=1e-4)
    # Twice is the identity, for every key.
    twice = flip_swap(flipped, cfg, _gen(1))
    assert twice.keys() == batch.keys()
    for key in batch:
        assert torch.equal(twice[key], batch[key]), key


def test_flip_swap_flips_only_drawn_samples_and_needs_both_directions():
    batch = _batch()
    cfg = dataclasses.replace(OFF, flip_prob=0.5)
    out = flip_swap(batch, cfg, _gen(3))
    flipped = [not torch.equal(out["left"][i], batch["left"][i]) for i in range(3)]
    assert any(flipped) and not all(flipped)
    for i, was in enumerate(flipped):
        expected = mirror(batch["right"][i]) if was else batch["left"][i]
        assert torch.equal(out["left"][i], expected)
    partial = {k: v for k, v in batch.items() if k not in ("flow_rl", "valid_rl")}
    with pytest.raises(AugmentError, match="_rl"):
        flip_swap(partial, OFF, _gen(0))


@pytest.mark.parametrize("roll", [False, True])
def test_graft_swaps_exactly_the_rows_below_the_cut(roll):
    batch = _batch()
    cfg = dataclasses.replace(OFF, graft_prob=1.0, graft_ratios=[0.25], graft_roll=roll)
    out = graft(batch, cfg, _gen(4))
    cut = 12  # 0.25 * 48
    keys = ("left", "right", "flow_lr", "valid_lr", "flow_rl", "valid_rl", "depth_left", "depth_right")
    for i in range(3):
        # The partner is the other sample whose bottom rows reappear; it is never the sample itself.
        bottom = out["left"][i]
        if roll:
            bottom = torch.roll(bottom, cut, dims=-2)
        partners = [j for j in range(3) if torch.equal(bottom[:, cut:], batch["left"][j, :, cut:])]
        assert len(partners) == 1 and partners[0] != i
        j = partners[0]
        for key in keys:
            expected = torch.cat((batch[key][i, :, :cut], batch[key][j, :, cut:]), dim=-2)
            if roll:
                expected = torch.roll(expected, -cut, dims=-2)
            assert torch.equal(out[key][i], expected), key
    for key in ("K", "focal", "baseline"):
        assert torch.equal(out[key], batch[key])
    _assert_geometry_exact(out)


def test_graft_keeps_rigs_apart_and_clears_flow_crossing_a_seam():
    batch = _batch(baselines=[BASELINE, BASELINE, 0.3])
    cfg = dataclasses.replace(OFF, graft_prob=1.0, graft_ratios=[0.5], graft_roll=False)
    out = graft(batch, cfg, _gen(5))
    # Sample 2 has its own baseline: no partner, unchanged. Samples 0 and 1 trade bottoms.
    assert torch.equal(out["left"][2], batch["left"][2])
    assert torch.equal(out["left"][0, :, 24:], batch["left"][1, :, 24:])
    assert torch.equal(out["left"][1, :, 24:], batch["left"][0, :, 24:])
    _assert_geometry_exact(out)
    # A vertical flow component of +1.5 rows: rows 22 and 23 would read across the seam at row 24.
    batch["flow_lr"][:, 1] = 1.5
    out = graft(batch, cfg, _gen(5))
    rows = out["valid_lr"][0, 0].all(dim=1)
    assert rows.tolist() == [r not in (22, 23) for r in range(48)]
    assert out["valid_lr"][2].all()
    assert out["valid_rl"].all()


def test_color_jitter_is_one_colour_map_for_both_views_and_leaves_geometry_alone():
    batch = _batch()
    # Make the right view a shifted copy of the left with new (white) content entering on one side: the
    # overlap must stay an exact copy after jitter, although the two images' mean colours differ.
    batch["right"] = torch.cat((torch.ones_like(batch["left"][..., :5]), batch["left"][..., :-5]), dim=-1)
    cfg = dataclasses.replace(OFF, jitter_prob=1.0, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)
    out = color_jitter(batch, cfg, _gen(6))
    assert torch.allclose(out["right_aug"][..., 5:], out["left_aug"][..., :-5], atol=1e-6)
    for i in range(3):
        assert (out["left_aug"][i] - batch["left"][i]).abs().mean() > 2.0 / 255
    # Different samples get different parameters.
    shift = [(out["left_aug"][i] - batch["left"][i]).mean().item() for i in range(3)]
    assert len({round(s, 4) for s in shift}) == 3
    assert out["left_aug"].min() >= 0 and out["left_aug"].max() <= 1
    for key in batch:
        assert torch.equal(out[key], batch[key]), key
    never = color_jitter(batch, dataclasses.replace(cfg, jitter_prob=0.0), _gen(6))
    assert torch.equal(never["left_aug"], batch["left"]) and torch.equal(never["right_aug"], batch["right"])


def test_augment_is_deterministic_and_trains_on_unjittered_views():
    batch = _batch()
    cfg = AugmentConfig(graft_prob=0.5, flip_prob=0.5, jitter_prob=1.0)
    first = augment(batch, cfg, _gen(7))
    again = augment(batch, cfg, _gen(7))
    other = augment(batch, cfg, _gen(8))
    assert first.keys() == again.keys() == set(batch) | {"left_aug", "right_aug"}
    for key in first:
        assert torch.equal(first[key], again[key]), key
    assert any(not torch.equal(first[key], other[key]) for key in first)
    # The input is not modified, the loss views stay exact, the network views are jittered.
    assert torch.equal(batch["left"], _batch()["left"])
    _assert_geometry_exact(first)
    assert not torch.allclose(first["left_aug"], first["left"])
