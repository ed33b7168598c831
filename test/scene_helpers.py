"""A small rendered stereo scene shared by the geometry and loss tests: a textured wall at 6.7 m and a
textured board at 3.3 m in front of it, seen by a 64x48 rig (f = 60 px, B = 0.5 m). Its depths give
non-integer disparities (4.48 px and 9.09 px), so warps really interpolate."""

from fg_depth_core.camera import Intrinsics
from fg_depth_core.data.render import Patch, StereoFrame, fronto_parallel, render_stereo

K = Intrinsics(60.0, 60.0, 31.5, 23.5, 64, 48)
BASELINE = 0.5


def wall_and_board(right_gain: float = 1.0) -> StereoFrame:
    """The scene rendered exactly (depth, disparity and both views); ``right_gain`` scales the right view's
    exposure."""
    patches = [
        fronto_parallel(6.7, texture_cell=0.5, texture_seed=1, contrast=0.6),
        Patch(
            origin=(-0.6, -0.5, 3.3),
            axis_u=(1.2, 0.0, 0.0),
            axis_v=(0.0, 1.0, 0.0),
            albedo=(0.7, 0.4, 0.3),
            texture_cell=0.3,
            texture_seed=2,
            contrast=0.6,
        ),
    ]
    return render_stereo(patches, K, BASELINE, right_gain=right_gain)
