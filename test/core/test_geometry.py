"""geometry.py against rendered ground truth and hand computations: warps, depth<->disparity, projection,
mirroring, sampling."""

import math

import numpy as np
import torch
from scene_helpers import BASELINE, K, wall_and_board

from fg_depth_core.geometry import (
    backproject,
    depth_from_disparity,
    depth_warp,
    disparity_from_depth,
    flow_from_disparity,
    flow_warp,
    mirror,
    mirror_flow,
    pixel_grid,
    project,
    resize_to,
    sample,
)


def _image(a):
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0


def _map(a):
    return torch.from_numpy(np.ascontiguousarray(a))[None, None].float()


def _visible(depth_left, depth_right, focal, baseline):
    """Left pixels whose right-view correspondence is the same surface: both pixels that bilinear sampling
    reads at x - d show the same depth, and x - d is in view."""
    coords = pixel_grid(*depth_left.shape[-2:], depth_left) + flow_from_disparity(
        disparity_from_depth(depth_left, focal, baseline)
    )
    ok = torch.ones_like(depth_left, dtype=torch.bool)
    for rounding in (torch.floor, torch.ceil):
        c = coords.clone()
        c[:, 0] = rounding(coords[:, 0])
        seen, inside = sample(depth_right, c)
        ok &= inside & ((seen - depth_left).abs() < 1e-3 * depth_left)
    return ok


def test_true_depth_warp_reconstructs_target_and_wrong_depth_does_not():
    frame = wall_and_board()
    left, right = _image(frame.left), _image(frame.right)
    depth, depth_r = _map(frame.depth_left), _map(frame.depth_right)
    visible = _visible(depth, depth_r, K.fx, BASELINE)
    # Occlusions at the near patch's left edge exist and are excluded; most pixels remain.
    assert 0.7 < visible.float().mean() < 0.98
    recon, inside = depth_warp(right, depth, torch.tensor([K.fx]), torch.tensor([BASELINE]))
    err = (recon - left).abs().amax(dim=1, keepdim=True)[visible]
    assert err.max() < 2.0 / 255 and err.mean() < 0.5 / 255
    assert inside[visible].all()
    # The same correspondence given as a flow field warps identically.
    by_flow, _ = flow_warp(right, flow_from_disparity(_map(frame.disparity_left)))
    assert torch.allclose(by_flow, recon, atol=1e-5)
    for factor in (0.85, 1.15):
        wrong, _ = depth_warp(right, depth * factor, K.fx, BASELINE)
        wrong_err = (wrong - left).abs().amax(dim=1, keepdim=True)[visible]
        assert wrong_err.mean() > 4 * err.mean()
        assert wrong_err.mean() > 1.5 / 255


def test_depth_disparity_round_trip_per_sample():
    torch.manual_seed(0)
    depth = torch.rand(2, 1, 3, 4) * 50 + 1
    focal = torch.tensor([100.0, 250.0])
    baseline = torch.tensor([0.54, 0.12])
    disp = disparity_from_depth(depth, focal, baseline)
    assert math.isclose(disp[1, 0, 2, 3].item(), 250.0 * 0.12 / depth[1, 0, 2, 3].item(), rel_tol=1e-6)
    back, valid = depth_from_disparity(disp, focal, baseline)
    assert valid.all()
    assert torch.allclose(back, depth, rtol=1e-6)
    bad = torch.tensor([0.0, -2.0, float("inf"), float("nan"), 3.0]).reshape(1, 1, 1, 5)
    d, v = depth_from_disparity(bad, 10.0, 0.3)
    assert v.flatten().tolist() == [False, False, False, False, True]
    assert d.flatten()[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert math.isclose(d.flatten()[4].item(), 1.0, rel_tol=1e-6)


def test_backproject_project_round_trip():
    torch.manual_seed(1)
    k = torch.tensor([[[500.0, 0.0, 30.2], [0.0, 480.0, 20.7], [0.0, 0.0, 1.0]]]).repeat(2, 1, 1)
    k[1, 0, 0] = 300.0
    depth = torch.rand(2, 1, 5, 7) * 20 + 0.5
    points = backproject(depth, k)
    # Hand computation for one pixel: x = 6, y = 4 of sample 1.
    z = depth[1, 0, 4, 6].item()
    assert math.isclose(points[1, 0, 4, 6].item(), (6 - 30.2) * z / 300.0, rel_tol=1e-5)
    assert math.isclose(points[1, 1, 4, 6].item(), (4 - 20.7) * z / 480.0, rel_tol=1e-5)
    uv, zz = project(points, k)
    assert torch.allclose(uv, pixel_grid(5, 7, depth).expand(2, -1, -1, -1), atol=1e-3)
    assert torch.allclose(zz, depth, rtol=1e-6)


def test_mirror_flow_commutes_with_warping():
    torch.manual_seed(2)
    source = torch.rand(1, 3, 6, 9)
    flow = torch.randn(1, 2, 6, 9) * 2
    target, inside = flow_warp(source, flow)
    mirrored, mirrored_inside = flow_warp(mirror(source), mirror_flow(flow))
    assert torch.allclose(mirrored, mirror(target), atol=1e-5)
    assert torch.equal(mirrored_inside, mirror(inside))
    # Hand check of one vector: (x=2, y=1) holds (a, b); the mirrored field holds (-a, b) at x = 8 - 2.
    a, b = flow[0, 0, 1, 2].item(), flow[0, 1, 1, 2].item()
    assert mirror_flow(flow)[0, :, 1, 6].tolist() == [-a, b]


def test_sample_values_and_inside_mask():
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    xs = torch.tensor([0.0, 3.0, 1.5, -0.01, 3.01, 2.0, 2.0])
    ys = torch.tensor([0.0, 2.0, 1.0, 1.0, 1.0, -0.5, 2.5])
    coords = torch.stack((xs, ys)).reshape(1, 2, 1, 7)
    values, inside = sample(image, coords)
    assert inside.flatten().tolist() == [True, True, True, False, False, False, False]
    # Pixel centres give the pixel, half-way between two pixels gives their mean: row 1 holds 4..7.
    assert values.flatten()[:3].tolist() == [0.0, 11.0, 5.5]
    # Outside the image the border is repeated.
    assert math.isclose(values.flatten()[3].item(), 4.0, abs_tol=1e-5)


def test_resize_to_area_averages_blocks():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    small = resize_to(image, 2, 2, mode="area")
    assert small.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_numpy_twins_equal_the_torch_geometry():
    """geometry_np serves the torch-free node: each function must give what its torch twin gives."""
    from fg_depth_core import geometry_np

    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 80.0, (37, 53)).astype(np.float32)
    depth[0, :5] = [0.0, np.inf, np.nan, -1.0, 1e-3]
    k = np.array([[412.5, 0.0, 25.3], [0.0, 398.0, 17.9], [0.0, 0.0, 1.0]])
    t_depth = torch.from_numpy(depth)[None, None]

    points = geometry_np.backproject(depth, k)
    expected = backproject(t_depth, torch.from_numpy(k.astype(np.float32))[None])[0].numpy()
    assert points.shape == (3, 37, 53) and points.dtype == np.float32
    np.testing.assert_allclose(points, expected, rtol=1e-6, atol=1e-6, equal_nan=True)

    disparity = geometry_np.disparity_from_depth(depth, 412.5, 0.54)
    np.testing.assert_allclose(
        disparity, disparity_from_depth(t_depth, 412.5, 0.54)[0, 0].numpy(), rtol=1e-6, equal_nan=True
    )
    assert disparity[0, 0] == np.inf and disparity[0, 1] == 0.0

    back, valid = geometry_np.depth_from_disparity(disparity, 412.5, 0.54)
    t_back, t_valid = depth_from_disparity(torch.from_numpy(disparity)[None, None], 412.5, 0.54)
    np.testing.assert_array_equal(valid, t_valid[0, 0].numpy())
    np.testing.assert_allclose(back, t_back[0, 0].numpy(), rtol=1e-6)
    assert not valid[0, 0] and not valid[0, 3] and back[0, 0] == 0.0


def test_numpy_twins_equal_the_torch_geometry_with_a_disparity_offset():
    """Image disparity d = f B / Z - doffs and back, in both twins; where d + doffs <= 0 there is no depth."""
    from fg_depth_core import geometry_np

    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 80.0, (19, 23)).astype(np.float32)
    depth[0, :2] = [np.inf, 1e-3]
    f, b, doffs = 412.5, 0.193, 13.4
    disparity = geometry_np.disparity_from_depth(depth, f, b, doffs)
    t_disparity = disparity_from_depth(torch.from_numpy(depth)[None, None], f, b, doffs)[0, 0].numpy()
    np.testing.assert_allclose(disparity, t_disparity, rtol=1e-6)
    np.testing.assert_allclose(disparity + doffs, f * b / depth.astype(np.float64), rtol=1e-5)
    assert disparity[0, 0] == np.float32(-doffs)  # a point at infinity sits at -doffs
    back, valid = geometry_np.depth_from_disparity(disparity, f, b, doffs)
    t_back, t_valid = depth_from_disparity(torch.from_numpy(disparity)[None, None], f, b, doffs)
    np.testing.assert_array_equal(valid, t_valid[0, 0].numpy())
    np.testing.assert_allclose(back, t_back[0, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(back[1:], depth[1:], rtol=1e-4)
    assert not valid[0, 0] and back[0, 0] == 0.0
    # Per-sample offsets (B,) in torch: each sample its own.
    batch = torch.from_numpy(np.stack([disparity, disparity]))[:, None]
    both, _ = depth_from_disparity(batch, f, b, torch.tensor([doffs, 0.0]))
    np.testing.assert_allclose(both[0, 0, 1:].numpy(), depth[1:], rtol=1e-4)
    assert not torch.allclose(both[1, 0, 1:], both[0, 0, 1:])
