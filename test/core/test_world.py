"""The built-in stereo world: determinism, exact geometry, scene content, exposure, splits, sequences, and
the ray caster's bounding-box culling against brute force."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from fg_depth_core.camera import Intrinsics
from fg_depth_core.config import ConfigError, SynthConfig, config_from_dict
from fg_depth_core.data.base import DatasetError
from fg_depth_core.data.render import Patch, fronto_parallel, render_stereo
from fg_depth_core.data.world import (
    CAMERA_HEIGHT,
    SPLIT_SEED_STRIDE,
    SPLITS,
    VIEW_DEPTH,
    frame_spec,
    render_frame,
    render_stereo_frame,
    resize_synth,
    scene_seed,
    street_scene,
    synth_intrinsics,
)
from fg_depth_core.geometry import depth_warp

# A small KITTI-like camera: 320 px wide with the focal length scaled from 371 px at 640.
SMALL = resize_synth(SynthConfig(), 320, 96)
CLEAN = dataclasses.replace(SMALL, noise_std=0.0, right_gain_range=0.0)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def test_same_seed_same_pixels_other_seed_or_frame_other_pixels():
    a = render_frame(SMALL, "train", 5)
    b = render_frame(SMALL, "train", 5)
    assert np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
    assert np.array_equal(a.depth_left, b.depth_left)
    other_seed = render_frame(dataclasses.replace(SMALL, seed=1), "train", 5)
    other_frame = render_frame(SMALL, "train", 9)
    for other in (other_seed, other_frame):
        assert np.mean(other.left != a.left) > 0.3
        assert not np.array_equal(other.depth_left, a.depth_left)


def test_camera_is_kitti_like_and_scales_with_width():
    cfg = SynthConfig()
    k = synth_intrinsics(cfg)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (371.0, 371.0, 319.5, 95.5, 640, 192)
    kitti = resize_synth(cfg, 1242, 375)
    assert kitti.focal == pytest.approx(720.0, abs=0.1)  # KITTI's 721.5 px at 1242 px
    assert SMALL.focal == pytest.approx(185.5) and SMALL.baseline == 0.54
    frame = render_frame(SMALL, "val", 0)
    assert frame.left.shape == (96, 320, 3) and frame.rig.intrinsics == synth_intrinsics(SMALL)


def test_rendered_depth_is_exact_warping_the_right_view_rebuilds_the_left():
    frame = render_stereo_frame(CLEAN, "train", 2)
    h, w = frame.depth_left.shape
    depth = np.where(np.isfinite(frame.depth_left), frame.depth_left, 1e6)
    # Pixels whose surface point the right camera sees, away from depth edges (bilinear mixes them).
    xr = np.round(np.arange(w)[None] - frame.disparity_left).astype(int)
    seen = frame.depth_right[np.arange(h)[:, None], np.clip(xr, 0, w - 1)]
    finite = np.isfinite(frame.depth_left)
    visible = finite & (xr >= 0) & (np.abs(np.where(finite, seen - depth, 0.0)) < 0.01 * depth)
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= np.abs(np.diff(frame.disparity_left, axis=1)) > 0.5
    edge[1:, :] |= np.abs(np.diff(frame.disparity_left, axis=0)) > 0.5
    edge = cv2.dilate(edge.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    mask = visible & ~edge
    assert mask.mean() > 0.5
    left, right = _tensor(frame.left), _tensor(frame.right)
    errors = {}
    for scale in (1.0, 0.9, 1.1):
        rebuilt, inside = depth_warp(
            right, torch.from_numpy(depth * scale)[None, None].float(), frame.intrinsics.fx, frame.baseline
        )
        err = (rebuilt - left).abs().mean(1)[0].numpy()
        errors[scale] = float(err[mask & inside[0, 0].numpy()].mean())
    # Uint8 rounding and bilinear sampling leave about one grey level; a 10 % depth error costs much more.
    assert errors[1.0] < 0.005
    assert errors[0.9] > 2 * errors[1.0] and errors[1.1] > 2 * errors[1.0]


def test_road_depth_matches_the_ground_plane_by_hand():
    frame = render_stereo_frame(CLEAN, "train", 0)
    k = frame.intrinsics
    # The bottom row's centre sees the road (the ego lane is clear): Z = fy * h / (v - cy).
    v = k.height - 1
    assert frame.depth_left[v, k.width // 2] == pytest.approx(k.fy * CAMERA_HEIGHT / (v - k.cy), rel=1e-5)
    assert frame.disparity_left[v, k.width // 2] == pytest.approx(
        k.fx * 0.54 * (v - k.cy) / (k.fy * 1.65), rel=1e-5
    )


def test_frames_of_a_scene_move_forward_by_frame_step():
    cfg = CLEAN
    specs = [frame_spec(cfg, "test", i) for i in range(cfg.frames_per_scene + 1)]
    assert len({s.scene_seed for s in specs[:-1]}) == 1 and specs[-1].scene_seed != specs[0].scene_seed
    assert [s.travel for s in specs[:-1]] == [i * cfg.frame_step for i in range(cfg.frames_per_scene)]
    # The farthest surface (the hills closing the street) comes exactly frame_step metres nearer.
    far = [
        float(np.max(np.where(np.isfinite(d), d, 0)))
        for d in (render_stereo_frame(cfg, "test", i).depth_left for i in (0, 1))
    ]
    travel_max = (cfg.frames_per_scene - 1) * cfg.frame_step
    assert far[0] == pytest.approx(travel_max + VIEW_DEPTH, abs=1e-3)
    assert far[0] - far[1] == pytest.approx(cfg.frame_step, abs=1e-3)


def test_scenes_hold_sky_near_and_far_content_and_textureless_walls():
    near_objects = 0
    for i in range(8):
        frame = render_stereo_frame(CLEAN, "test", i)
        depth = frame.depth_left
        k = frame.intrinsics
        upper = depth[: int(k.cy)]  # above the horizon: no road, only objects, walls and sky
        assert np.isinf(depth).mean() > 0.02, "sky at infinity"
        assert (depth < 10).any(), "near content"
        assert (np.isfinite(upper) & (upper > 40)).mean() > 0.02, "far content"
        near_objects += bool((upper < 10).any())
        grey = cv2.cvtColor(frame.left, cv2.COLOR_RGB2GRAY).astype(np.float32)
        mean = cv2.blur(grey, (7, 7))
        std = np.sqrt(np.maximum(cv2.blur(grey * grey, (7, 7)) - mean * mean, 0.0))
        # Without sensor noise, textureless walls are flat to within rounding over 7x7 windows.
        assert ((std < 0.5) & np.isfinite(depth)).mean() > 0.1, "textureless regions"
    assert near_objects >= 3


def test_right_view_has_its_own_exposure_drawn_per_frame():
    cfg = dataclasses.replace(SMALL, noise_std=0.0)
    gains = []
    for i in range(4):
        spec = frame_spec(cfg, "val", i)
        frame = render_stereo_frame(cfg, "val", i)
        # The sky has the same colour in both views; values above 255 / 1.2 might clip.
        sky = (np.isinf(frame.depth_left) & np.isinf(frame.depth_right))[..., None] & (frame.left < 200)
        assert sky.sum() > 100
        ratio = frame.right[sky].astype(float).sum() / frame.left[sky].astype(float).sum()
        assert ratio == pytest.approx(spec.right_gain, abs=0.01)
        assert abs(spec.right_gain - 1.0) <= cfg.right_gain_range
        gains.append(spec.right_gain)
    assert np.ptp(gains) > 0.02


def test_sensor_noise_has_the_configured_std():
    noisy = render_stereo_frame(dataclasses.replace(CLEAN, noise_std=0.02), "train", 1)
    clean = render_stereo_frame(CLEAN, "train", 1)
    diff = (noisy.left.astype(float) - clean.left.astype(float)) / 255.0
    inner = (clean.left > 20) & (clean.left < 235)  # away from clipping
    assert np.std(diff[inner]) == pytest.approx(0.02, rel=0.1)


def test_splits_use_disjoint_scene_seeds():
    seeds = {}
    for cfg_seed in (0, 1):
        cfg = dataclasses.replace(SMALL, seed=cfg_seed)
        for split in SPLITS:
            n = 50
            seeds[(cfg_seed, split)] = {frame_spec(cfg, split, i).scene_seed for i in range(n)}
            assert len(seeds[(cfg_seed, split)]) == -(-n // cfg.frames_per_scene)
    keys = list(seeds)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not seeds[a] & seeds[b], (a, b)
    assert scene_seed(SMALL, "test", 3) == 2 * SPLIT_SEED_STRIDE + 3  # the documented rule
    a, b = render_frame(SMALL, "train", 0), render_frame(SMALL, "test", 0)
    assert np.mean(a.left != b.left) > 0.3
    with pytest.raises(DatasetError, match="split"):
        frame_spec(SMALL, "holdout", 0)


def test_synth_config_validates_the_new_fields():
    with pytest.raises(ConfigError, match="frames_per_scene"):
        config_from_dict({"data": {"synth": {"frames_per_scene": 0}}})
    with pytest.raises(ConfigError, match="frame_step"):
        config_from_dict({"data": {"synth": {"frame_step": -1.0}}})
    with pytest.raises(ConfigError, match="seed"):
        config_from_dict({"data": {"synth": {"seed": -2}}})


def test_street_scene_is_deterministic_and_varied():
    assert street_scene(4) == street_scene(4)
    assert street_scene(4) != street_scene(5)
    patterns = {p.pattern for p in street_scene(4)}
    assert {"road", "car", "noise"} <= patterns
    assert any(p.contrast == 0 for p in street_scene(4)), "a textureless wall"


# --------------------------------------------------------------------------------------- the ray caster


def _reference_depth(patches, k: Intrinsics, camera_x: float) -> np.ndarray:
    """Brute force: every pixel against every patch (the caster's bounding boxes must not lose a hit)."""
    v, u = np.mgrid[0 : k.height, 0 : k.width].astype(np.float64)
    ray = np.stack(((u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)), axis=-1)
    cam = np.array([camera_x, 0.0, 0.0])
    depth = np.full((k.height, k.width), np.inf)
    for p in patches:
        o, a, b = (np.asarray(x, float) for x in (p.origin, p.axis_u, p.axis_v))
        n = np.cross(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = ((o - cam) @ n) / (ray @ n)
            hit = cam + ray * z[..., None] - o
            s, t = hit @ a / (a @ a), hit @ b / (b @ b)
            inside = (z > 1e-6) & (s >= 0) & (s <= 1) & (t >= 0) & (t <= 1) & (z < depth)
        depth[inside] = z[inside]
    return depth


def test_bounding_box_culling_keeps_every_hit_including_patches_crossing_the_camera_plane():
    k = Intrinsics(60.0, 60.0, 39.5, 23.5, 80, 48)
    patches = [
        fronto_parallel(30.0, texture_seed=1),
        Patch((-3.17, 1.01, -5.07), (6.11, 0, 0), (0, 0, 40.3)),  # a floor starting behind the camera
        Patch((2.02, -2.03, -1.01), (0, 0, 6.07), (0, 4.03, 0)),  # a wall through the camera plane
        Patch((-0.41, -0.33, 2.07), (0.83, 0, 0), (0, 0.61, 0)),  # a small box face
        Patch((-9.0, -1.0, -4.0), (1.0, 0, 0), (0, 1.0, 0)),  # entirely behind: never seen
    ]
    frame = render_stereo(patches, k, 0.3)
    for depth, x in ((frame.depth_left, 0.0), (frame.depth_right, 0.3)):
        ref = _reference_depth(patches, k, x)
        assert np.array_equal(np.isfinite(depth), np.isfinite(ref))
        assert np.allclose(depth[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-6)


def test_unknown_pattern_is_rejected():
    with pytest.raises(ValueError, match="pattern"):
        Patch((0, 0, 1), (1, 0, 0), (0, 1, 0), pattern="marble")
