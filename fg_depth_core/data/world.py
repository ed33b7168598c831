"""The built-in stereo world: procedural street scenes with what breaks photometric losses.

A scene is a list of render.Patch: a textured road, kerbs, buildings with large textureless walls, boxes
("cars") at 3-60 m, sky at infinity. Scenes are deterministic per seed; render.render_stereo turns them into
rectified pairs with exact depth, and a different exposure in the right view.
"""

from __future__ import annotations

from typing import List

import numpy as np

from fg_depth_core.data.render import Patch

#: Height of the camera above the road (metres, +y is down in the optical frame), KITTI-like.
CAMERA_HEIGHT = 1.65


def street_scene(seed: int, length: float = 120.0) -> List[Patch]:
    """Patches of one street scene (metres, left-camera optical frame at the origin looking down +z)."""
    rng = np.random.default_rng(seed)
    patches: List[Patch] = []
    road_half = rng.uniform(4.0, 7.0)
    patches.append(  # the road: a horizontal plane below the camera
        Patch(
            origin=(-road_half, CAMERA_HEIGHT, 0.5),
            axis_u=(2 * road_half, 0, 0),
            axis_v=(0, 0, length),
            albedo=(0.38, 0.38, 0.4),
            contrast=0.5,
            texture_cell=0.04,
            texture_seed=int(rng.integers(1 << 30)),
        )
    )
    for side in (-1.0, 1.0):
        x_wall = side * (road_half + rng.uniform(2.0, 5.0))
        patches.append(  # the pavement between road and buildings
            Patch(
                origin=(min(side * road_half, x_wall), CAMERA_HEIGHT - 0.12, 0.5),
                axis_u=(abs(x_wall - side * road_half), 0, 0),
                axis_v=(0, 0, length),
                albedo=(0.55, 0.52, 0.5),
                contrast=0.3,
                texture_cell=0.06,
                texture_seed=int(rng.integers(1 << 30)),
            )
        )
        patches.append(  # the kerb's vertical face, so no sky shows between road and pavement
            Patch(
                origin=(side * road_half, CAMERA_HEIGHT - 0.12, 0.5),
                axis_u=(0, 0, length),
                axis_v=(0, 0.12, 0),
                albedo=(0.6, 0.6, 0.6),
                contrast=0.2,
                texture_cell=0.05,
                texture_seed=int(rng.integers(1 << 30)),
            )
        )
        z = rng.uniform(0.5, 6.0)
        while z < length:
            width = rng.uniform(6.0, 18.0)
            height = rng.uniform(5.0, 14.0)
            textureless = rng.random() < 0.35
            albedo = tuple(float(c) for c in rng.uniform(0.3, 0.8, 3))
            patches.append(  # a building facade parallel to the road
                Patch(
                    origin=(x_wall, CAMERA_HEIGHT - height, z),
                    axis_u=(0, 0, width),
                    axis_v=(0, height, 0),
                    albedo=albedo,
                    contrast=0.0 if textureless else 0.4,
                    texture_cell=0.15,
                    texture_seed=int(rng.integers(1 << 30)),
                )
            )
            z += width + rng.uniform(0.0, 4.0)
    for _ in range(int(rng.integers(2, 6))):  # boxes on the road at 3-60 m
        z = rng.uniform(3.0, 60.0)
        x = rng.uniform(-road_half + 1.0, road_half - 1.0)
        w, h = rng.uniform(1.6, 2.0), rng.uniform(1.3, 1.8)
        albedo = tuple(float(c) for c in rng.uniform(0.1, 0.9, 3))
        patches.append(
            Patch(
                origin=(x - w / 2, CAMERA_HEIGHT - h, z),
                axis_u=(w, 0, 0),
                axis_v=(0, h, 0),
                albedo=albedo,
                contrast=0.3,
                texture_cell=0.08,
                texture_seed=int(rng.integers(1 << 30)),
            )
        )
    return patches
