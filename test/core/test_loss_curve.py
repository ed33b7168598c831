"""The loss-curve diagnostic (paper Fig. 3) on rendered scenes with known depth."""

import json

import numpy as np
import pytest
import torch

from fg_depth_core.camera import Intrinsics
from fg_depth_core.cli import main
from fg_depth_core.config import LossConfig
from fg_depth_core.data.render import Patch, fronto_parallel, render_stereo
from fg_depth_core.geometry import flow_from_disparity
from fg_depth_core.image_io import to_tensor
from fg_depth_core.loss_curve import depth_hypotheses, loss_curves

W, H, F, B, Z = 256, 128, 200.0, 0.5, 10.0
GAIN = 1.3  # the right camera's exposure is 30 % brighter


def _x_at(k: Intrinsics, u: float) -> float:
    return (u - k.cx) * Z / F


def _exposure_trap():
    """A wall at Z with a textureless bright patch and, left of it, a textureless patch that is darker by
    exactly the right camera's gain: a too-near depth warps the bright patch onto the dark one in the brighter
    right view, where it matches the left intensity better than the true correspondence does."""
    k = Intrinsics(F, F, W / 2 - 0.5, H / 2 - 0.5, W, H)

    def patch(u0, u1, albedo, seed):
        return Patch(
            origin=(_x_at(k, u0), -1.0, Z - 1e-3),
            axis_u=(_x_at(k, u1) - _x_at(k, u0), 0.0, 0.0),
            axis_v=(0.0, 2.0, 0.0),
            albedo=(albedo,) * 3,
            contrast=0.0,
            texture_seed=seed,
        )

    scene = [patch(110, 200, 0.5, 1), patch(60, 110, 0.5 / GAIN, 2), fronto_parallel(Z, texture_cell=0.05)]
    return render_stereo(scene, k, B, right_gain=GAIN, noise_std=0.002, seed=3)


def test_photometric_minimum_is_fooled_in_a_textureless_region_while_fd_is_not():
    frame = _exposure_trap()
    target, source = to_tensor(frame.left), to_tensor(frame.right)
    # An ideal correspondence teacher (what a pretrained flow network approximates): exact flow everywhere.
    disparity = torch.from_numpy(frame.disparity_left)[None, None]
    flow = flow_from_disparity(disparity)
    valid = torch.ones_like(disparity, dtype=torch.bool)
    depths = depth_hypotheses(2.0, 30.0, 281)
    pixels = [(120, 64), (135, 64)]
    curves = loss_curves(target, source, F, B, flow, valid, pixels, depths, LossConfig(), window=5)
    for curve in curves:
        assert frame.depth_left[curve.v, curve.u] == pytest.approx(Z, abs=1e-2)
        assert abs(curve.argmin["photometric"] - Z) > 3.0, curve.argmin
        for name in ("fd", "dr", "fp"):
            assert abs(curve.argmin[name] - Z) < 0.25, (name, curve.argmin)
        # fd has a clear basin at the true depth, not a flat floor.
        fd = curve.losses["fd"]
        assert fd.max() > 5 * fd.min() + 1e-3


def test_cli_on_a_textured_pair_with_sgbm(tmp_path):
    import cv2

    k = Intrinsics(F, F, W / 2 - 0.5, H / 2 - 0.5, W, H)
    near = Patch(
        origin=(-0.8, -0.5, 6.0), axis_u=(1.2, 0, 0), axis_v=(0, 1.0, 0), texture_cell=0.03, texture_seed=7
    )
    frame = render_stereo([near, fronto_parallel(Z, texture_cell=0.05)], k, B, right_gain=1.1, seed=0)
    left, right = tmp_path / "l.png", tmp_path / "r.png"
    cv2.imwrite(str(left), cv2.cvtColor(frame.left, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(right), cv2.cvtColor(frame.right, cv2.COLOR_RGB2BGR))
    pixels = [(200, 30), (110, 60)]
    gt = [float(frame.depth_left[v, u]) for u, v in pixels]
    assert gt[1] == pytest.approx(6.0, abs=0.05) and gt[0] == pytest.approx(Z, abs=0.05)
    out_json, out_png = tmp_path / "curve.json", tmp_path / "curve.png"
    config = tmp_path / "small.yaml"
    config.write_text("teacher: {sgbm: {num_disparities: 64}}\n")
    argv = [
        "loss-curve",
        "--left",
        str(left),
        "--right",
        str(right),
        "--fx",
        str(F),
        "--baseline",
        str(B),
        "--teacher",
        "sgbm",
        "--config",
        str(config),
        "--depth-min",
        "2",
        "--depth-max",
        "20",
        "--steps",
        "181",
        "--json",
        str(out_json),
        "--png",
        str(out_png),
    ]
    for (u, v), z in zip(pixels, gt):
        argv += ["--pixel", f"{u},{v}", "--gt-depth", str(z)]
    assert main(argv) == 0
    data = json.loads(out_json.read_text())
    assert [(p["u"], p["v"]) for p in data["pixels"]] == pixels
    for entry, z in zip(data["pixels"], gt):
        assert len(entry["depths"]) == 181
        assert set(entry["losses"]) == {"photometric", "dr", "fp", "fd"}
        assert all(len(v) == 181 for v in entry["losses"].values())
        for name, zmin in entry["argmin"].items():
            assert zmin == pytest.approx(z, rel=0.05), (name, entry["argmin"])
    assert out_png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pixel", "1,1"], "--pixel 1,1: expected a pixel at least"),
        (
            ["--pixel", "50,50", "--gt-depth", "3", "--gt-depth", "4"],
            "--gt-depth: expected one value per --pixel",
        ),
        (["--pixel", "50,50", "--depth-min", "5", "--depth-max", "4"], "expected 0 < min < max"),
    ],
)
def test_cli_errors(tmp_path, capsys, extra, message):
    import cv2

    image = np.full((64, 96, 3), 128, np.uint8)
    for name in ("l.png", "r.png"):
        cv2.imwrite(str(tmp_path / name), image)
    argv = [
        "loss-curve",
        "--left",
        str(tmp_path / "l.png"),
        "--right",
        str(tmp_path / "r.png"),
        "--fx",
        "100",
        "--baseline",
        "0.5",
        "--json",
        str(tmp_path / "o.json"),
    ] + extra
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_hypotheses_are_evenly_spaced():
    z = depth_hypotheses(1.0, 3.0, 5)
    assert np.allclose(z, [1.0, 1.5, 2.0, 2.5, 3.0])


def test_picked_pixels_of_a_street_frame_are_what_they_claim_and_fd_finds_the_road(tmp_path):
    """pick_pixels on a frame of the built-in world (what the demo draws Fig. 3 at): the road pixel is at
    the bottom centre, every pixel has a finite depth, the object is a near one; at the road pixel, where
    SGBM matches, fd's minimum sits at the true depth."""
    from fg_depth_core.config import Config
    from fg_depth_core.data.world import render_stereo_frame
    from fg_depth_core.loss_curve import PIXEL_KINDS, LossCurveError, check_pixels, pick_pixels, plot_curves
    from fg_depth_core.teachers import build_teacher

    cfg = Config()
    frame = render_stereo_frame(cfg.data.synth, "test", 2)
    h, w = frame.depth_left.shape
    margin = check_pixels([], w, h, 5)
    pixels = pick_pixels(frame.left, frame.depth_left, margin)
    assert [kind for kind, _, _ in pixels] == list(PIXEL_KINDS)
    assert pixels[0][1:] == (w // 2, h - margin - 1)
    depth = {kind: float(frame.depth_left[v, u]) for kind, u, v in pixels}
    assert all(np.isfinite(z) for z in depth.values()), depth
    assert depth["nearest object"] < 40.0
    # Stereo folders store unknown depth (the sky) as 0, not inf: the same pixels must come out.
    zeros = np.where(np.isfinite(frame.depth_left), frame.depth_left, 0.0)
    assert pick_pixels(frame.left, zeros, margin) == pixels
    target, source = to_tensor(frame.left), to_tensor(frame.right)
    with torch.no_grad():
        out = build_teacher(cfg.teacher, use_cache=False).flow(target, source)
    (road,) = loss_curves(
        target,
        source,
        frame.intrinsics.fx,
        frame.baseline,
        out.flow,
        out.valid,
        [pixels[0][1:]],
        depth_hypotheses(1.0, 60.0, 240),
        cfg.loss,
        5,
    )
    assert abs(road.argmin["fd"] - depth["road"]) < 0.1 * depth["road"]
    plot_curves([road], str(tmp_path / "road.png"), ["road"])
    assert (tmp_path / "road.png").stat().st_size > 0
    with pytest.raises(LossCurveError, match="expected 1 titles, got 2"):
        plot_curves([road], str(tmp_path / "bad.png"), ["road", "sky"])


def test_pick_pixels_refuses_an_image_too_small_for_the_margin():
    from fg_depth_core.loss_curve import LossCurveError, pick_pixels

    with pytest.raises(LossCurveError, match="more than twice the margin"):
        pick_pixels(np.zeros((6, 40, 3), np.uint8), np.ones((6, 40), np.float32), 3)


def test_the_curves_use_the_loss_settings_training_uses():
    """L_dr in the configured units, L_fp with the horizontal teacher flow and delta read as configured,
    as losses.total_loss builds them: a curve of another loss than the one trained would mislead."""
    frame = _exposure_trap()
    target, source = to_tensor(frame.left), to_tensor(frame.right)
    disparity = torch.from_numpy(frame.disparity_left)[None, None]
    # A teacher with a spurious vertical component, as RAFT's or DIS's flow has.
    flow = flow_from_disparity(disparity) + torch.tensor([0.0, 1.5]).reshape(1, 2, 1, 1)
    valid = torch.ones_like(disparity, dtype=torch.bool)
    depths = depth_hypotheses(2.0, 30.0, 57)
    pixels = [(135, 64)]

    def curve(**overrides):
        (c,) = loss_curves(target, source, F, B, flow, valid, pixels, depths, LossConfig(**overrides))
        return c.losses

    # The residual against the teacher's pseudo depth (the rendered wall's, Z to a fraction of a millimetre).
    relative, metres = np.abs(depths - Z) / Z, np.abs(depths - Z)
    np.testing.assert_allclose(curve(dr_units="relative")["dr"], np.log1p(relative), atol=1e-3)
    np.testing.assert_allclose(curve(dr_units="metres")["dr"], np.log1p(metres), atol=1e-3)
    # Without the vertical flow the flow warp is the depth warp at the true depth: L_fp nearly 0 there.
    at_z = int(np.argmin(np.abs(depths - Z)))
    horizontal, full = curve(fp_horizontal_only=True)["fp"], curve(fp_horizontal_only=False)["fp"]
    assert horizontal[at_z] < 0.2 * full[at_z], (horizontal[at_z], full[at_z])
    # delta as a disparity bound of 1 px drops every pixel of this wall (f * B / Z = 10 px): no L_dr at all.
    assert np.isnan(curve(delta_reading="disparity", prior_mask_max_disparity=1.0)["dr"]).all()
