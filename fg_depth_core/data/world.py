"""The built-in stereo world: procedural street scenes with what breaks photometric losses.

A scene is a list of render.Patch: a textured road with lane markings, pavements and kerbs, building facades
(some large and textureless, some with window grids), box cars at 3-60 m (nearly textureless paint, a dark
rear window), poles and trees, distant hills and a sky at infinity. render.render_stereo turns it into a
rectified pair with exact depth; the right camera has its own exposure gain, both views get sensor noise.

Frames and splits (all deterministic, see :func:`frame_spec`): frame ``i`` of a split belongs to scene
``i // frames_per_scene`` of that split and sits ``(i % frames_per_scene) * frame_step`` metres further down
the street than the scene's first frame. Scene ``j`` of split ``s`` (train 0, val 1, test 2) has the seed

    scene_seed = cfg.seed * 3_000_000 + s * 1_000_000 + j        (j < 1_000_000)

so the three splits of one ``cfg.seed`` never share a scene, nor do any two non-negative ``cfg.seed`` values.
The right camera's gain (uniform in [1 - right_gain_range, 1 + right_gain_range]) and the sensor noise are
drawn per frame from (scene_seed, frame in scene).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.config import SynthConfig
from fg_depth_core.data.base import DatasetError, RawPair
from fg_depth_core.data.render import Patch, SkyFunction, StereoFrame, render_stereo, value_noise

#: Bump when a change here or in render.py changes the pixels of a frame: rendered folders record it.
WORLD_VERSION = 1
#: Height of the camera above the road (metres, +y is down in the optical frame), KITTI-like.
CAMERA_HEIGHT = 1.65
#: Split names in the order of their seed blocks.
SPLITS = ("train", "val", "test")
#: Scene seeds per split block, and per cfg.seed (all three splits).
SPLIT_SEED_STRIDE = 1_000_000
SEED_STRIDE = len(SPLITS) * SPLIT_SEED_STRIDE
#: Street length (metres) ahead of the last frame of a scene; the hills stand at its end.
VIEW_DEPTH = 250.0
#: Street built behind the first frame (metres), so the sides are never empty.
BEHIND = 25.0

_CAR_PAINTS = (
    (0.85, 0.85, 0.83),  # white
    (0.1, 0.1, 0.11),  # black
    (0.5, 0.5, 0.52),  # grey
    (0.72, 0.73, 0.75),  # silver
    (0.6, 0.1, 0.1),  # red
    (0.12, 0.2, 0.5),  # blue
    (0.25, 0.35, 0.25),  # green
)


@dataclass(frozen=True)
class FrameSpec:
    """Where frame ``index`` of ``split`` comes from: its scene, its place in it and its per-frame draws."""

    split: str
    index: int
    scene_seed: int
    frame_in_scene: int
    #: Metres the camera moved forward since the scene's first frame.
    travel: float
    right_gain: float
    noise_seed: int


def split_frames(cfg: SynthConfig, split: str) -> int:
    """Number of frames of ``split`` (cfg.train_frames, val_frames or test_frames)."""
    _check_split(split)
    return int(getattr(cfg, f"{split}_frames"))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"synth split: expected one of {list(SPLITS)}, got {split!r}")


def scene_seed(cfg: SynthConfig, split: str, scene: int) -> int:
    """Seed of scene ``scene`` of ``split`` (module docstring: disjoint blocks per split and per cfg.seed)."""
    _check_split(split)
    if not 0 <= scene < SPLIT_SEED_STRIDE:
        raise DatasetError(f"synth scene index: expected 0..{SPLIT_SEED_STRIDE - 1}, got {scene}")
    return cfg.seed * SEED_STRIDE + SPLITS.index(split) * SPLIT_SEED_STRIDE + scene


def frame_spec(cfg: SynthConfig, split: str, index: int) -> FrameSpec:
    """The scene, camera travel and per-frame draws of frame ``index`` of ``split``."""
    if index < 0:
        raise DatasetError(f"synth frame index: expected >= 0, got {index}")
    scene, frame = divmod(int(index), cfg.frames_per_scene)
    seed = scene_seed(cfg, split, scene)
    rng = np.random.default_rng([seed, frame])
    gain = float(rng.uniform(1.0 - cfg.right_gain_range, 1.0 + cfg.right_gain_range))
    return FrameSpec(split, int(index), seed, frame, frame * cfg.frame_step, gain, int(rng.integers(1 << 62)))


def synth_intrinsics(cfg: SynthConfig) -> Intrinsics:
    """The world camera: fx = fy = cfg.focal, principal point at the image centre, cfg.width x cfg.height."""
    return Intrinsics(
        cfg.focal, cfg.focal, (cfg.width - 1) / 2.0, (cfg.height - 1) / 2.0, cfg.width, cfg.height
    )


def resize_synth(cfg: SynthConfig, width: int, height: int) -> SynthConfig:
    """``cfg`` rendering at ``width`` x ``height``: the focal length scales with the width (same horizontal
    field of view, square pixels), so e.g. 1242 px wide gives KITTI's 720 px."""
    if width <= 0 or height <= 0:
        raise DatasetError(f"synth size: expected positive width and height, got {width}x{height}")
    return dataclasses.replace(cfg, width=int(width), height=int(height), focal=cfg.focal * width / cfg.width)


# ------------------------------------------------------------------------------------------------- scenes


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1 << 30))


def _box(
    rng: np.random.Generator,
    x0: float,
    x1: float,
    y_top: float,
    y_bottom: float,
    z0: float,
    z1: float,
    albedo: Tuple[float, float, float],
    contrast: float,
    cell: float,
    front_pattern: str = "noise",
    top: bool = True,
) -> List[Patch]:
    """The camera-facing faces of an axis-aligned box (x0 < x1, y_top < y_bottom, z0 < z1): back (at z0),
    both sides and optionally the top; faces are shaded by orientation so edges show."""
    a = np.asarray(albedo)

    def shade(f: float) -> Tuple[float, float, float]:
        return tuple(float(c) for c in np.clip(a * f, 0.0, 1.0))

    w, h, d = x1 - x0, y_bottom - y_top, z1 - z0
    faces = [
        Patch((x0, y_top, z0), (w, 0, 0), (0, h, 0), shade(1.0), contrast, cell, _seed(rng), front_pattern),
        Patch((x0, y_top, z0), (0, 0, d), (0, h, 0), shade(0.75), contrast, cell, _seed(rng)),
        Patch((x1, y_top, z0), (0, 0, d), (0, h, 0), shade(0.8), contrast, cell, _seed(rng)),
    ]
    if top:
        faces.append(Patch((x0, y_top, z0), (w, 0, 0), (0, 0, d), shade(1.15), contrast, cell, _seed(rng)))
    return faces


def _car(rng: np.random.Generator, x: float, z: float) -> List[Patch]:
    """A car whose back (facing the camera) is centred at lateral position x, distance z."""
    w, h, length = rng.uniform(1.6, 1.9), rng.uniform(1.35, 1.6), rng.uniform(3.8, 4.8)
    paint = _CAR_PAINTS[int(rng.integers(len(_CAR_PAINTS)))]
    paint = tuple(float(c) for c in np.clip(np.asarray(paint) * rng.uniform(0.9, 1.1), 0, 1))
    return _box(
        rng,
        x - w / 2,
        x + w / 2,
        CAMERA_HEIGHT - h,
        CAMERA_HEIGHT - 0.15,
        z,
        z + length,
        paint,
        0.06,
        0.3,
        front_pattern="car",
    )


def _place_cars(
    rng: np.random.Generator,
    lane_x: float,
    z_min: float,
    z_max: float,
    gap: Tuple[float, float],
    jitter: float,
) -> List[Patch]:
    """A queue of cars in one lane between z_min and z_max, gaps drawn from ``gap`` (metres)."""
    patches: List[Patch] = []
    z = z_min + rng.uniform(*gap) * rng.random()
    while z < z_max:
        patches += _car(rng, lane_x + rng.uniform(-jitter, jitter), z)
        z += 5.0 + rng.uniform(*gap)
    return patches


def street_scene(seed: int, length: float = VIEW_DEPTH, travel: float = 0.0) -> List[Patch]:
    """Patches of one street scene (metres, left-camera optical frame of the scene's first frame at the
    origin looking down +z). ``travel`` is how far the camera will move forward (metres): the street ahead
    stays ``length`` metres long from there, and no car stands in the ego lane before travel + 6 m."""
    rng = np.random.default_rng(seed)
    patches: List[Patch] = []
    end = travel + length
    start = -BEHIND
    span = end - start
    # Two lanes and, on both sides, a parking lane (or a narrow shoulder); the camera drives in the middle of
    # the right lane, so the centre line (the middle of the road) is at x = -lane / 2.
    lane = rng.uniform(3.0, 3.6)
    parking = rng.random() < 0.6
    road_half = lane + (2.2 if parking else 0.4)
    road_left, road_right = road_half + lane / 2, road_half - lane / 2
    road_w = 2 * road_half
    grey = rng.uniform(0.28, 0.42)
    patches.append(  # the road: a horizontal plane below the camera, with lane markings
        Patch(
            origin=(-road_left, CAMERA_HEIGHT, start),
            axis_u=(road_w, 0, 0),
            axis_v=(0, 0, span),
            albedo=(grey, grey, grey * 1.04),
            contrast=rng.uniform(0.15, 0.35),
            texture_cell=0.05,
            texture_seed=_seed(rng),
            pattern="road",
        )
    )
    plain_drawn = False
    for side, kerb_x in ((-1.0, -road_left), (1.0, road_right)):
        walk = rng.uniform(2.0, 4.5)
        x_walk = kerb_x + side * walk
        kerb = 0.12
        stone = rng.uniform(0.45, 0.6)
        patches.append(  # the pavement between road and buildings
            Patch(
                origin=(min(kerb_x, x_walk), CAMERA_HEIGHT - kerb, start),
                axis_u=(walk, 0, 0),
                axis_v=(0, 0, span),
                albedo=(stone, stone * 0.96, stone * 0.92),
                contrast=0.3,
                texture_cell=0.06,
                texture_seed=_seed(rng),
            )
        )
        patches.append(  # the kerb's vertical face, so no sky shows between road and pavement
            Patch(
                origin=(kerb_x, CAMERA_HEIGHT - kerb, start),
                axis_u=(0, 0, span),
                axis_v=(0, kerb, 0),
                albedo=(0.62, 0.62, 0.6),
                contrast=0.2,
                texture_cell=0.05,
                texture_seed=_seed(rng),
            )
        )
        z = start + rng.uniform(0.0, 6.0)
        while z < end:
            width = rng.uniform(6.0, 22.0)
            height = rng.uniform(4.0, 16.0)
            x_wall = x_walk + side * rng.uniform(0.0, 3.0)
            style = rng.choice(("plain", "windows", "stucco"), p=(0.4, 0.4, 0.2))
            if not plain_drawn and z > 0:
                style, plain_drawn = "plain", True  # every scene has at least one large textureless wall
            albedo = tuple(float(c) for c in rng.uniform(0.3, 0.85, 3))
            contrast = {"plain": 0.0, "windows": rng.uniform(0.1, 0.3), "stucco": rng.uniform(0.25, 0.45)}[
                style
            ]
            y_top = CAMERA_HEIGHT - kerb - height
            patches.append(  # a building facade parallel to the road
                Patch(
                    origin=(x_wall, y_top, z),
                    axis_u=(0, 0, width),
                    axis_v=(0, height, 0),
                    albedo=albedo,
                    contrast=contrast,
                    texture_cell=rng.uniform(0.1, 0.3),
                    texture_seed=_seed(rng),
                    pattern="windows" if style == "windows" else "noise",
                )
            )
            side_albedo = tuple(0.8 * c for c in albedo)
            for z_cap in (z, z + width):  # the building's side walls, seen where the neighbour is set back
                patches.append(
                    Patch(
                        (x_wall, y_top, z_cap),
                        (side * 12.0, 0, 0),
                        (0, height, 0),
                        side_albedo,
                        contrast,
                        0.2,
                        _seed(rng),
                    )
                )
            z += width + (rng.uniform(1.0, 6.0) if rng.random() < 0.3 else 0.0)
        # Poles and trees on the pavement.
        z = start + rng.uniform(0.0, 20.0)
        while z < end:
            x = kerb_x + side * rng.uniform(0.4, 0.8)
            ground = CAMERA_HEIGHT - kerb
            if rng.random() < 0.5:
                h = rng.uniform(4.0, 7.0)
                patches += _box(
                    rng,
                    x - 0.08,
                    x + 0.08,
                    ground - h,
                    ground,
                    z,
                    z + 0.16,
                    (0.35, 0.36, 0.38),
                    0.1,
                    0.2,
                    top=False,
                )
            else:
                trunk, crown = rng.uniform(2.0, 3.0), rng.uniform(2.0, 4.0)
                patches += _box(
                    rng,
                    x - 0.15,
                    x + 0.15,
                    ground - trunk,
                    ground,
                    z,
                    z + 0.3,
                    (0.3, 0.22, 0.15),
                    0.3,
                    0.05,
                    top=False,
                )
                green = (rng.uniform(0.1, 0.25), rng.uniform(0.3, 0.5), rng.uniform(0.08, 0.2))
                patches += _box(
                    rng,
                    x - crown / 2,
                    x + crown / 2,
                    ground - trunk - crown * 0.9,
                    ground - trunk,
                    z - crown / 2 + 0.15,
                    z + crown / 2 + 0.15,
                    green,
                    0.8,
                    0.12,
                    top=False,
                )
                # Its underside, seen from below.
                patches.append(
                    Patch(
                        (x - crown / 2, ground - trunk, z - crown / 2 + 0.15),
                        (crown, 0, 0),
                        (0, 0, crown),
                        tuple(0.5 * c for c in green),
                        0.8,
                        0.12,
                        _seed(rng),
                    )
                )
            z += rng.uniform(12.0, 35.0)
    # Cars: the ego lane stays clear until well past the last frame; the opposite lane and the kerbs do not.
    ego_clear = travel + 6.0
    patches += _place_cars(rng, 0.0, ego_clear + rng.uniform(0.0, 30.0), 70.0 + travel, (15.0, 60.0), 0.2)
    patches += _place_cars(rng, -lane, 3.0, 70.0 + travel, (6.0, 40.0), 0.2)
    for kerb_x, side in ((-road_left, -1.0), (road_right, 1.0)):
        if parking and rng.random() < 0.8:
            patches += _place_cars(rng, kerb_x - side * 1.1, start + 3.0, 60.0 + travel, (0.5, 12.0), 0.05)
    # Distant hills close the street, so only the sky is at infinity.
    hill = rng.uniform(0.06, 0.12) * length
    patches.append(
        Patch(
            (-5 * length, CAMERA_HEIGHT - hill, end),
            (10 * length, 0, 0),
            (0, hill + 10.0, 0),
            (rng.uniform(0.3, 0.45), rng.uniform(0.4, 0.5), rng.uniform(0.38, 0.5)),
            0.25,
            4.0,
            _seed(rng),
        )
    )
    return patches


def street_sky(seed: int) -> SkyFunction:
    """A sky at infinity for scene ``seed``: bright at the horizon, bluer upwards, with soft clouds.

    A function of the ray direction only, so it has zero disparity and looks the same in both views."""
    rng = np.random.default_rng([seed, 7])
    zenith = np.array([rng.uniform(0.3, 0.45), rng.uniform(0.5, 0.65), rng.uniform(0.8, 0.95)])
    horizon = np.array([0.82, 0.86, 0.9]) * rng.uniform(0.9, 1.05)
    cloudiness = rng.uniform(0.0, 0.6)
    cloud_seed = _seed(rng)

    def sky(ray_x: np.ndarray, ray_y: np.ndarray) -> np.ndarray:
        up = np.clip(-ray_y / 0.5, 0.0, 1.0)[:, None]
        color = horizon + (zenith - horizon) * up
        clouds = value_noise(cloud_seed, ray_x * 12.0, ray_y * 30.0)
        cover = np.clip((clouds + cloudiness - 0.4) * 2.0, 0.0, 1.0)[:, None] * cloudiness
        return color + (np.array([0.92, 0.92, 0.94]) - color) * cover

    return sky


# ------------------------------------------------------------------------------------------------- frames


def render_stereo_frame(cfg: SynthConfig, split: str, index: int) -> StereoFrame:
    """Frame ``index`` of ``split``: the rectified pair with exact depth in both views."""
    spec = frame_spec(cfg, split, index)
    travel_max = (cfg.frames_per_scene - 1) * cfg.frame_step
    patches = [
        dataclasses.replace(p, origin=(p.origin[0], p.origin[1], p.origin[2] - spec.travel))
        for p in street_scene(spec.scene_seed, travel=travel_max)
    ]
    return render_stereo(
        patches,
        synth_intrinsics(cfg),
        cfg.baseline,
        right_gain=spec.right_gain,
        noise_std=cfg.noise_std,
        sky=street_sky(spec.scene_seed),
        seed=spec.noise_seed,
        antialias=True,
    )


def render_frame(cfg: SynthConfig, split: str, index: int) -> RawPair:
    """Frame ``index`` of ``split`` as a dataset pair: views, rig, the left view's exact depth (inf: sky)."""
    frame = render_stereo_frame(cfg, split, index)
    return RawPair(frame.left, frame.right, StereoRig(frame.intrinsics, frame.baseline), frame.depth_left)
