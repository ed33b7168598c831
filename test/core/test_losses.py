"""losses.py on rendered stereo pairs with exact geometry and on small hand-computed tensors."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scene_helpers import BASELINE, K, wall_and_board

from fg_depth_core.config import LOSS_PRESETS, LossConfig
from fg_depth_core.geometry import depth_warp, flow_from_disparity
from fg_depth_core.losses import (
    LossError,
    auto_mask,
    cfg_prior_flow_mask,
    dr_penalty,
    masked_mean,
    pe,
    photometric_mask,
    prior_flow_mask,
    pseudo_depth,
    smoothness,
    ssim,
    total_loss,
)

FOCAL = torch.tensor([K.fx])
BASE = torch.tensor([BASELINE])


def _pair(right_gain=1.2):
    """Left/right images (1,3,H,W), true left depth (1,1,H,W) and the exact teacher flow (1,2,H,W)."""
    frame = wall_and_board(right_gain)

    def image(a):
        return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0

    depth = torch.from_numpy(frame.depth_left)[None, None]
    flow = flow_from_disparity(torch.from_numpy(frame.disparity_left)[None, None])
    return image(frame.left), image(frame.right), depth, flow


def _losses(preset, depth, left, right, flow, valid=None, **overrides):
    cfg = LossConfig.from_preset(preset, **overrides)
    if valid is None:
        valid = torch.ones_like(depth, dtype=torch.bool)
    return total_loss([depth], left, right, flow, valid, FOCAL, BASE, cfg)


# ----------------------------------------------------------------------------------------------- pe / SSIM


def _hand_ssim(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    vx = sum(v * v for v in xs) / n - mx * mx
    vy = sum(v * v for v in ys) / n - my * my
    cxy = sum(a * b for a, b in zip(xs, ys)) / n - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def test_ssim_against_hand_computation_and_identity():
    x = torch.tensor([[0.1, 0.5, 0.9], [0.3, 0.2, 0.8], [0.6, 0.4, 0.7]])
    y = torch.tensor([[0.2, 0.4, 0.8], [0.1, 0.3, 0.9], [0.5, 0.6, 0.6]])
    s = ssim(x[None, None], y[None, None])[0, 0]
    # The centre pixel's window is the whole 3x3 image.
    assert s[1, 1].item() == pytest.approx(_hand_ssim(x.flatten().tolist(), y.flatten().tolist()), rel=1e-5)
    # The corner's window under reflection padding holds rows/columns (1, 0, 1).
    idx = [(r, c) for r in (1, 0, 1) for c in (1, 0, 1)]
    corner = _hand_ssim([x[r, c].item() for r, c in idx], [y[r, c].item() for r, c in idx])
    assert s[0, 0].item() == pytest.approx(corner, rel=1e-5)
    torch.manual_seed(0)
    image = torch.rand(2, 3, 8, 9)
    assert torch.allclose(ssim(image, image), torch.ones_like(image), atol=1e-5)
    assert pe(image, image, 0.85).abs().max() < 1e-6
    assert pe(image, image, 0.85).shape == (2, 1, 8, 9)


def test_pe_mixes_ssim_and_l1_averaged_over_colour():
    torch.manual_seed(1)
    a, b = torch.rand(1, 3, 5, 5), torch.rand(1, 3, 5, 5)
    l1 = (a - b).abs().mean(dim=1, keepdim=True)
    assert torch.allclose(pe(a, b, 0.0), l1, atol=1e-6)
    dssim = ((1 - ssim(a, b)) / 2).mean(dim=1, keepdim=True)
    assert torch.allclose(pe(a, b, 1.0), dssim, atol=1e-6)
    # Centre pixel, red channel only differs from a hand SSIM: build a one-channel check at alpha = 0.85.
    win_a = a[0, 0, 1:4, 1:4].flatten().tolist()
    win_b = b[0, 0, 1:4, 1:4].flatten().tolist()
    hand = 0.85 * (1 - _hand_ssim(win_a, win_b)) / 2 + 0.15 * abs(a[0, 0, 2, 2].item() - b[0, 0, 2, 2].item())
    assert pe(a[:, :1], b[:, :1], 0.85)[0, 0, 2, 2].item() == pytest.approx(hand, rel=1e-5)


# ----------------------------------------------------------------------------------------------- masks


def test_masked_mean_hand_value_and_empty_mask():
    x = torch.tensor([1.0, 2.0, float("inf"), 4.0]).reshape(1, 1, 1, 4).requires_grad_(True)
    mask = torch.tensor([True, False, False, True]).reshape(1, 1, 1, 4)
    value = masked_mean(x, mask)
    assert value.item() == pytest.approx(2.5)
    value.backward()
    assert x.grad.flatten().tolist() == [0.5, 0.0, 0.0, 0.5]
    y = torch.tensor([[1.0, float("nan")]], requires_grad=True)
    empty = masked_mean(y, torch.zeros(1, 2, dtype=torch.bool))
    assert torch.isfinite(empty) and empty.item() == 0.0 and empty.requires_grad
    empty.backward()
    assert torch.isfinite(y.grad).all()


def test_prior_flow_mask_drops_each_bad_case():
    # f * B = 10 in sample 0 and 20 in sample 1; delta = 80 m, so d̂ must exceed 0.125 px (0.25 px).
    focal = torch.tensor([10.0, 20.0])
    baseline = torch.tensor([1.0, 1.0])
    nan = float("nan")
    # Row 0, x = 0..7: zero disparity; out of view (1 - 2 < 0); keep (lands on x = 0); invalid teacher;
    #   far (D̂ = 100 m); negative disparity; NaN flow; exactly at delta for sample 0 (D̂ = 80 m).
    # Row 1: out of view (0 - 0.5 < 0); three keeps (D̂ = 20 m / 40 m); D̂ = 50 m (sample 1: 100 m, far);
    #   vertical flow leaving the image (1 + 1.5 > 1); vertical flow staying inside; out of view (7 - 8 < 0).
    fx = torch.tensor(
        [[0.0, -2.0, -2.0, -2.0, -0.1, 1.0, nan, -0.125], [-0.5] * 4 + [-0.2, -3.0, -3.0, -8.0]]
    )
    fy = torch.zeros(2, 8)
    fy[1, 5] = 1.5
    fy[1, 6] = -1.0
    flow = torch.stack((fx, fy))[None].repeat(2, 1, 1, 1)
    valid = torch.ones(2, 1, 2, 8, dtype=torch.bool)
    valid[:, 0, 0, 3] = False
    mask = prior_flow_mask(flow, valid, focal, baseline, 80.0)
    f, t = False, True
    assert mask[0, 0].tolist() == [[f, f, t, f, f, f, f, f], [f, t, t, t, t, f, t, f]]
    assert mask[1, 0].tolist() == [[f, f, t, f, f, f, f, f], [f, t, t, t, f, f, t, f]]
    depth, ok = pseudo_depth(flow, focal, baseline)
    assert depth[0, 0, 0, 2].item() == pytest.approx(5.0)
    assert depth[1, 0, 1, 4].item() == pytest.approx(100.0)
    assert ok[0, 0, 0].tolist() == [f, t, t, t, t, f, f, t]


def test_prior_flow_mask_on_rendered_pair_keeps_visible_near_pixels():
    left, right, depth, flow = _pair()
    valid = torch.ones_like(depth, dtype=torch.bool)
    mask = prior_flow_mask(flow, valid, FOCAL, BASE, 80.0)
    x = torch.arange(64.0).reshape(1, 1, 1, 64)
    expected = (x + flow[:, :1]) >= 0
    assert torch.equal(mask, expected)
    # Every pixel is 3.3 m or 6.7 m away: a 5 m threshold keeps only the near patch.
    near = prior_flow_mask(flow, valid, FOCAL, BASE, 5.0)
    assert torch.equal(near, expected & (depth < 5.0))
    assert 0 < near.sum() < mask.sum()


def test_auto_mask_keeps_pixels_where_warping_helps():
    torch.manual_seed(3)
    source = torch.rand(1, 3, 8, 24)
    # Columns < 12 moved 3 px between the views (target(x) = source(x - 3)); columns >= 12 did not move
    # (as if infinitely far, or moving with the camera), so there not warping is what reconstructs them.
    target = source.clone()
    target[..., :12] = torch.roll(source, 3, dims=-1)[..., :12]
    depth = torch.full((1, 1, 8, 24), 10.0 / 3.0)  # f * B / 3 px with f = 10, B = 1
    recon, _ = depth_warp(source, depth, 10.0, 1.0)
    mask = auto_mask(pe(target, recon, 0.85), pe(target, source, 0.85))[0, 0]
    assert mask[:, 4:11].all()
    assert not mask[:, 13:].any()
    # With the true depth almost every textured pixel of a rendered pair prefers warping.
    left, right, depth, _ = _pair(right_gain=1.0)
    recon, _ = depth_warp(right, depth, FOCAL, BASE)
    m_p = auto_mask(pe(left, recon, 0.85), pe(left, right, 0.85))
    assert m_p[..., 12:].float().mean() > 0.95


# ----------------------------------------------------------------------------------------------- L_dr


def test_dr_penalties_match_hand_computation():
    pred = torch.tensor([2.0, 5.0, 10.0, 1.0]).reshape(1, 1, 1, 4)
    target = torch.tensor([3.0, 4.0, 12.0, 1.0]).reshape(1, 1, 1, 4)
    expect = {
        "log_l1": [math.log1p(1.0), math.log1p(1.0), math.log1p(2.0), 0.0],
        "l1": [1.0, 1.0, 2.0, 0.0],
        "inv_l1": [abs(1 / 2 - 1 / 3), abs(1 / 5 - 1 / 4), abs(1 / 10 - 1 / 12), 0.0],
        # c = 0.6 * max|x| = 1.2: |x| = 1 stays L1, |x| = 2 gives (4 + 1.44) / 2.4.
        "berhu": [1.0, 1.0, (4.0 + 1.44) / 2.4, 0.0],
    }
    for kind, values in expect.items():
        got = dr_penalty(pred, target, kind, 0.6).flatten().tolist()
        assert got == pytest.approx(values, rel=1e-6), kind
    # The berHu threshold and the mean only see masked pixels: a masked-out outlier changes nothing.
    pred5 = torch.cat((pred, torch.tensor([100.0]).reshape(1, 1, 1, 1)), dim=-1).requires_grad_(True)
    target5 = torch.cat((target, torch.tensor([0.0]).reshape(1, 1, 1, 1)), dim=-1)
    mask = torch.tensor([True, True, True, True, False]).reshape(1, 1, 1, 5)
    rho = dr_penalty(pred5, target5, "berhu", 0.6, mask)
    assert rho.flatten().tolist() == pytest.approx([1.0, 1.0, (4.0 + 1.44) / 2.4, 0.0, 0.0], rel=1e-6)
    loss = masked_mean(rho, mask)
    assert loss.item() == pytest.approx((2.0 + 5.44 / 2.4) / 4, rel=1e-6)
    loss.backward()
    # c is detached: d/dx (x^2 + c^2) / 2c = x / c for the quadratic pixel (x = -2), sign(x) for L1 ones.
    assert pred5.grad.flatten().tolist() == pytest.approx([-0.25, 0.25, -2.0 / 1.2 / 4, 0.0, 0.0], rel=1e-6)
    inv = dr_penalty(pred5.detach(), target5, "inv_l1", 0.6, mask)
    assert torch.isfinite(inv).all() and inv[0, 0, 0, 4] == 0


# ----------------------------------------------------------------------------------------------- L_fp / L_ph


def test_flow_photometric_loss_vanishes_at_true_depth_and_grows_away_from_it():
    left, right, depth, flow = _pair(right_gain=1.2)
    _, logs = _losses("fgdepth", depth, left, right, flow)
    assert logs["fp"].item() < 1e-6
    assert logs["dr"].item() < 1e-5
    # The classic photometric loss pays for the exposure difference although the depth is perfect.
    assert logs["photometric"].item() > 0.02
    for sign in (1.0, -1.0):
        values = [
            _losses("fp", depth * (1 + sign * e), left, right, flow)[1]["fp"].item()
            for e in (0, 0.05, 0.1, 0.2)
        ]
        assert all(a < b for a, b in zip(values, values[1:])), values
    _, same_exposure = _losses("fgdepth", depth, *_pair(right_gain=1.0)[:2], flow)
    assert same_exposure["photometric"] < 0.5 * logs["photometric"]


# ----------------------------------------------------------------------------------------------- smoothness


def test_smoothness_hand_value_and_edge_awareness():
    disp = torch.tensor([[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]]).reshape(1, 1, 2, 4)
    flat = torch.full((1, 3, 2, 4), 0.5)
    # d* = d / 2: one step of 1 among 3 horizontal differences per row, no vertical change.
    assert smoothness(disp, flat).item() == pytest.approx(1 / 3, rel=1e-5)
    edge = flat.clone()
    edge[..., 2:] = 1.5  # an image edge of 1 exactly where the disparity steps
    assert smoothness(disp, edge).item() == pytest.approx(math.exp(-1.0) / 3, rel=1e-5)
    torch.manual_seed(4)
    image = torch.rand(1, 3, 16, 16)
    assert smoothness(torch.full((1, 1, 16, 16), 0.3), image).item() == pytest.approx(0.0, abs=1e-7)
    ramp = torch.linspace(1.0, 2.0, 16).reshape(1, 1, 1, 16).expand(1, 1, 16, 16)
    noisy = ramp + 0.5 * torch.rand(1, 1, 16, 16)
    assert smoothness(noisy, image) > 2 * smoothness(ramp, image)


# ----------------------------------------------------------------------------------------------- presets


@pytest.mark.parametrize("preset", sorted(LOSS_PRESETS))
def test_presets_switch_terms_as_in_the_ablation_table(preset):
    left, right, depth, flow = _pair()
    wrong = depth * 1.1
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[..., :5, :] = False
    loss, logs = _losses(preset, wrong, left, right, flow, valid, lambda_dr=2.0, lambda_fp=0.5)
    row = LOSS_PRESETS[preset]
    assert ("dr" in logs) == row["use_dr"]
    assert ("fp" in logs) == row["use_fp"]
    assert ("fd" in logs) == (row["use_dr"] or row["use_fp"])
    prior = prior_flow_mask(flow, valid, FOCAL, BASE, 80.0)
    assert torch.equal(logs["mask_prior"], prior)
    recon, _ = depth_warp(right, wrong, FOCAL, BASE)
    auto = pe(left, recon, 0.85) < pe(left, right, 0.85)
    expected = {"auto": auto, "flow_prior": prior, "flow_prior_auto": prior | (~valid & auto)}[
        row["photometric_mask"]
    ]
    assert torch.equal(logs["mask_photometric"], expected)
    assert logs["photometric"].item() == pytest.approx(masked_mean(pe(left, recon, 0.85), expected).item())
    fd = 2.0 * logs.get("dr", 0.0) + 0.5 * logs.get("fp", 0.0)
    if "fd" in logs:
        assert logs["fd"].item() == pytest.approx(float(fd), rel=1e-6)
        assert logs["fd"] > 0
    total = logs["photometric"] + fd + 1e-3 * logs["smoothness"]
    assert loss.item() == pytest.approx(float(total), rel=1e-6)


def test_flow_prior_auto_falls_back_to_the_auto_mask_only_in_teacher_holes():
    left, right, depth, flow = _pair()
    valid = torch.ones_like(flow[:, :1], dtype=torch.bool)
    valid[..., :, : valid.shape[-1] // 2] = False  # the teacher is silent on the left half
    far = flow.clone()
    far[..., 0, :, -4:] = -1e-4  # and sees the last columns as very far (sky): out of M_fp
    pe_warped, pe_identity = torch.rand(2, *valid.shape, generator=torch.Generator().manual_seed(0))
    inside = torch.ones_like(valid)
    prior = prior_flow_mask(far, valid, FOCAL, BASE, 80.0)
    mask = photometric_mask("flow_prior_auto", pe_warped, pe_identity, inside, prior, valid)
    auto = pe_warped < pe_identity
    half = valid.shape[-1] // 2
    assert torch.equal(mask[..., :half], auto[..., :half])  # holes: the auto-mask decides
    assert torch.equal(mask[..., half:], prior[..., half:])  # teacher valid: M_fp, sky excluded
    assert not mask[..., -4:].any() and auto[..., -4:].any()
    with pytest.raises(LossError, match="validity"):
        photometric_mask("flow_prior_auto", pe_warped, pe_identity, inside, prior, None)


def test_baseline_needs_no_teacher_and_the_others_do():
    left, right, depth, _ = _pair()
    loss, logs = total_loss([depth], left, right, None, None, FOCAL, BASE, LossConfig.from_preset("baseline"))
    assert torch.isfinite(loss) and "mask_prior" not in logs
    with pytest.raises(LossError, match="teacher"):
        total_loss([depth], left, right, None, None, FOCAL, BASE, LossConfig.from_preset("mask"))


def test_scales_are_averaged_with_halving_smoothness_weight():
    left, right, depth, flow = _pair()
    valid = torch.ones_like(depth, dtype=torch.bool)
    coarse = F.avg_pool2d(depth * 1.05, 4)
    cfg = LossConfig.from_preset("fgdepth")
    both, logs = total_loss([depth, coarse], left, right, flow, valid, FOCAL, BASE, cfg)
    fine_only, _ = total_loss([depth], left, right, flow, valid, FOCAL, BASE, cfg)
    half = LossConfig.from_preset("fgdepth", smoothness_weight=cfg.smoothness_weight / 2)
    coarse_only, coarse_logs = total_loss([coarse], left, right, flow, valid, FOCAL, BASE, half)
    assert both.item() == pytest.approx((fine_only.item() + coarse_only.item()) / 2, rel=1e-6)
    # The coarse depth's smoothness is measured at its own resolution against the image averaged down to it.
    image = F.avg_pool2d(left, 4)
    disp = FOCAL.reshape(1, 1, 1, 1) * BASELINE / coarse
    assert coarse_logs["smoothness"].item() == pytest.approx(smoothness(disp, image).item(), rel=1e-6)
    assert logs["mask_photometric"].shape == (1, 1, 48, 64)


def _fit(preset, steps=30):
    """Fit a free log-depth map (initialised at 10 m) with Adam; returns the loss history and the depth."""
    torch.manual_seed(5)
    left, right, depth, flow = _pair()
    valid = torch.rand_like(depth) > 0.2  # teacher holes
    log_depth = torch.full_like(depth, math.log(10.0)).requires_grad_(True)
    optimiser = torch.optim.Adam([log_depth], lr=0.05)
    cfg = LossConfig.from_preset(preset)
    history = []
    for _ in range(steps):
        pred = log_depth.exp()
        depths = [pred] + [F.avg_pool2d(pred, 2**s) for s in range(1, 4)]
        loss, _ = total_loss(depths, left, right, flow, valid, FOCAL, BASE, cfg)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(loss.item())
    return history, log_depth.detach().exp(), depth


def _abs_rel(pred, depth):
    return ((pred - depth).abs() / depth).mean().item()


def test_a_few_adam_steps_lower_the_fgdepth_loss_and_the_depth_error():
    history, fitted, depth = _fit("fgdepth")
    assert np.isfinite(history).all()
    assert history[-1] < 0.5 * history[0]
    start = _abs_rel(torch.full_like(depth, 10.0), depth)
    assert _abs_rel(fitted, depth) < 0.2 * start
    # The photometric baseline, with the exposure change and no teacher, gets much less far in as many steps.
    _, baseline_fit, _ = _fit("baseline")
    assert _abs_rel(fitted, depth) < 0.5 * _abs_rel(baseline_fit, depth)


# ----------------------------------------------------------------------------------------------- issue 14


def test_dr_units_scale_the_residual_before_the_penalty():
    pred = torch.tensor([2.0, 5.0, 10.0, 1.0]).reshape(1, 1, 1, 4)
    target = torch.tensor([3.0, 4.0, 12.0, 1.0]).reshape(1, 1, 1, 4)
    residual = {
        "metres": [-1.0, 1.0, -2.0, 0.0],
        "monodepth2": [-1.0 / 5.4, 1.0 / 5.4, -2.0 / 5.4, 0.0],
        "inverse": [1 / 2 - 1 / 3, 1 / 5 - 1 / 4, 1 / 10 - 1 / 12, 0.0],
        "relative": [-1 / 3, 1 / 4, -2 / 12, 0.0],
    }
    for units, x in residual.items():
        got = dr_penalty(pred, target, "log_l1", 0.2, units=units).flatten().tolist()
        assert got == pytest.approx([math.log1p(abs(v)) for v in x], rel=1e-6), units
        assert dr_penalty(pred, target, "l1", 0.2, units=units).flatten().tolist() == pytest.approx(
            [abs(v) for v in x], rel=1e-6
        )
    with pytest.raises(LossError, match="inv_l1"):
        dr_penalty(pred, target, "inv_l1", 0.2, units="relative")
    # In Monodepth2's units log1p is closer to linear: its gradient at a 2.6 m error is 5.4 / 8 of L1's
    # instead of 1 / 3.6, which is what keeps L_dr from dominating L_ph (issue 14).
    p = torch.tensor([7.6], requires_grad=True)
    dr_penalty(p, torch.tensor([5.0]), "log_l1", 0.2, units="monodepth2").sum().backward()
    assert p.grad.item() == pytest.approx(1 / 5.4 / (1 + 2.6 / 5.4), rel=1e-6)


def test_lambda_ph_weighs_the_photometric_term_and_zero_removes_it():
    left, right, depth, flow = _pair(right_gain=1.2)
    wrong = depth * 1.2
    full, logs = _losses("fgdepth", wrong, left, right, flow)
    half, _ = _losses("fgdepth", wrong, left, right, flow, lambda_ph=0.5)
    none, logs0 = _losses("fgdepth", wrong, left, right, flow, lambda_ph=0.0)
    assert (full - half).item() == pytest.approx(0.5 * logs["photometric"].item(), rel=1e-5)
    assert (full - none).item() == pytest.approx(logs["photometric"].item(), rel=1e-5)
    # The distillation and smoothness still drive the depth with L_ph replaced.
    assert none.item() == pytest.approx(logs0["fd"].item() + 1e-3 * logs0["smoothness"].item(), rel=1e-5)


def test_delta_read_as_disparity_bounds_the_match_not_the_depth():
    # f * B = 10: d̂ = 0.1 px is D̂ = 100 m (far), d̂ = 2 px is 5 m, d̂ = 6 px is 1.67 m (near).
    flow = torch.zeros(1, 2, 1, 8)
    flow[0, 0, 0, 5:] = torch.tensor([-0.1, -2.0, -6.0])
    valid = torch.ones(1, 1, 1, 8, dtype=torch.bool)
    focal, base = torch.tensor([10.0]), torch.tensor([1.0])
    by_depth = prior_flow_mask(flow, valid, focal, base, 80.0)[0, 0, 0, 5:].tolist()
    by_disparity = prior_flow_mask(flow, valid, focal, base, 80.0, max_disparity=4.0)[0, 0, 0, 5:].tolist()
    assert by_depth == [False, True, True]
    assert by_disparity == [True, True, False]
    # Through the config: the same numbers.
    cfg = LossConfig(delta_reading="disparity", prior_mask_max_disparity=4.0)
    assert cfg_prior_flow_mask(flow, valid, focal, base, cfg)[0, 0, 0, 5:].tolist() == by_disparity


def test_l_fp_on_the_horizontal_flow_reaches_zero_despite_a_vertical_teacher_flow():
    left, right, depth, flow = _pair(right_gain=1.2)
    # A RAFT-like teacher: the right disparity plus a small spurious vertical component.
    noisy = flow.clone()
    noisy[:, 1] = 0.4
    _, horizontal = _losses("fgdepth", depth, left, right, noisy, fp_horizontal_only=True)
    _, both = _losses("fgdepth", depth, left, right, noisy, fp_horizontal_only=False)
    assert horizontal["fp"].item() < 1e-6
    assert both["fp"].item() > 100 * max(horizontal["fp"].item(), 1e-7)


def test_the_auto_mask_averaged_over_all_pixels_as_monodepth2_does():
    left, right, depth, flow = _pair(right_gain=1.0)
    wrong = depth * 1.3
    _, masked = _losses("baseline", wrong, left, right, None, None, auto_mask_average="mask")
    loss, everywhere = _losses("baseline", wrong, left, right, None, None, auto_mask_average="all")
    # Monodepth2: per pixel min(pe(warped), pe(identity)), averaged over every pixel.
    recon, _ = depth_warp(right, wrong, FOCAL, BASE)
    expected = torch.minimum(pe(left, recon, 0.85), pe(left, right, 0.85)).mean()
    assert everywhere["photometric"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert everywhere["photometric"].item() != pytest.approx(masked["photometric"].item(), rel=1e-3)
    # The identity error of a rejected pixel is a constant: the gradient is the masked one times |M| / N.
    kept = everywhere["mask_photometric"].float().mean().item()
    grads = []
    for average in ("mask", "all"):
        d = wrong.clone().requires_grad_(True)
        total, _ = _losses(
            "baseline", d, left, right, None, None, auto_mask_average=average, smoothness_weight=0.0
        )
        grads.append(torch.autograd.grad(total, d)[0])
    assert torch.allclose(grads[1], grads[0] * kept, rtol=1e-4, atol=1e-4 * grads[0].abs().max().item())
    # Without the auto-mask in M the setting changes nothing.
    a, _ = _losses("fgdepth", wrong, left, right, flow, auto_mask_average="all")
    b, _ = _losses("fgdepth", wrong, left, right, flow, auto_mask_average="mask")
    assert a.item() == b.item()


def test_loss_terms_name_what_the_total_contains():
    from fg_depth_core.losses import describe_loss, loss_terms

    assert sorted(loss_terms(LossConfig.from_preset("baseline"))) == ["L_ph", "L_s"]
    assert sorted(loss_terms(LossConfig.from_preset("fgdepth"))) == ["L_dr", "L_fp", "L_ph", "L_s"]
    replaced = loss_terms(LossConfig.from_preset("dr", lambda_ph=0.0, dr_units="monodepth2"))
    assert sorted(replaced) == ["L_dr", "L_s"] and "monodepth2" in replaced["L_dr"]
    line = describe_loss(LossConfig.from_preset("mask"))
    assert line.startswith("loss (preset mask): L_ph = 1 x pe over M_fp;") and "L_dr" not in line
