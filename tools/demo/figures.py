"""Stage 5 of the demo, pictures: the side-by-side PNG per frame, the view of the node's point cloud and the
loss curves of the paper's Fig. 3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from sensor_msgs.msg import PointCloud2

from tools.demo import ros_adapter
from tools.demo.scoring import FrameResult
from tools.demo.settings import FRAMES_DIR, LOSS_CURVES_JSON, LOSS_CURVES_PNG, DemoError, Settings

#: Depth labels under the colour bar of the side-by-side PNGs (about one per half panel at 640 px).
COLORBAR_TICKS = 9
#: The loss curves (paper Fig. 3): depth hypotheses (metres), their number, and the loss window (pixels).
LOSS_CURVE_DEPTHS = (1.0, 60.0)
LOSS_CURVE_STEPS = 240
LOSS_CURVE_WINDOW = 5
#: The virtual camera of pointcloud.png, in the node's camera frame (x right, y down, z forward, metres):
#: behind and above the camera, looking down the street, so the road, cars and facades read in 3-D.
CLOUD_EYE = (0.0, -8.0, -12.0)
CLOUD_TARGET = (0.0, 0.0, 25.0)
CLOUD_IMAGE_SIZE = (960, 540)
CLOUD_HFOV_DEG = 60.0
CLOUD_POINT_SIZE = 2


def side_by_side(frame: FrameResult, depth_range: Tuple[float, float], teacher_label: str) -> np.ndarray:
    """input | node depth | teacher depth | ground truth, labelled, over one colour bar: (H', W', 3) uint8."""
    from fg_depth_core.visualize import colorize_depth, depth_colorbar, labelled, panel_row

    m = frame.metrics
    teacher = f"{teacher_label} teacher: no match anywhere"
    if frame.teacher_metrics is not None:
        teacher = (
            f"{teacher_label} teacher (black: no match): AbsRel {frame.teacher_metrics['abs_rel']:.3f} on "
            f"{frame.teacher_coverage:.0%} of pixels"
        )
    panels = [
        labelled(frame.rgb, f"input {frame.name}"),
        labelled(
            colorize_depth(frame.pred, *depth_range),
            f"depth_node: AbsRel {m['abs_rel']:.3f}, RMSE {m['rmse']:.2f} m, d<1.25 {m['a1']:.2f}",
        ),
        labelled(colorize_depth(frame.teacher, *depth_range), teacher),
        labelled(colorize_depth(frame.gt, *depth_range), "ground truth (black: unknown, i.e. sky)"),
    ]
    row = panel_row(panels)
    return np.vstack((row, depth_colorbar(row.shape[1], *depth_range, ticks=COLORBAR_TICKS)))


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Write an (H,W,3) uint8 RGB image as PNG; DemoError if OpenCV cannot."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise DemoError(f"{path}: cannot write the image")


def frame_png(out: Path, name: str) -> Path:
    """OUT/frames/<name with '/' as '_'>.png."""
    return out / FRAMES_DIR / (name.replace("/", "_") + ".png")


def clear_frames(out: Path) -> None:
    """Remove the side-by-side PNGs of an earlier run (it may have played other frames)."""
    for old in (out / FRAMES_DIR).glob("*.png"):
        old.unlink()


def cloud_view() -> Any:
    from fg_depth_core.visualize import CloudView

    width, height = CLOUD_IMAGE_SIZE
    return CloudView(CLOUD_EYE, CLOUD_TARGET, width, height, CLOUD_HFOV_DEG, CLOUD_POINT_SIZE)


def draw_cloud(path: Path, cloud: PointCloud2, name: str) -> int:
    """pointcloud.png: the node's PointCloud2 of frame ``name`` in its own colours, from the virtual camera
    of :func:`cloud_view`; returns the number of points."""
    from fg_depth_core.visualize import labelled, render_point_cloud

    xyz = ros_adapter.pointcloud_to_xyz(cloud, "points")
    if not len(xyz):
        raise DemoError(f"the node's point cloud of {name} is empty")
    rgb = ros_adapter.pointcloud_to_rgb(cloud, "points")
    view = cloud_view()
    title = (
        f"depth_node's point cloud of {name}: {len(xyz)} points, coloured by the camera image; seen from "
        f"{-view.eye[2]:g} m behind and {-view.eye[1]:g} m above the camera"
    )
    save_png(path, labelled(render_point_cloud(xyz, rgb, view), title))
    return int(len(xyz))


def draw_loss_curves(settings: Settings, index: int, teacher: Any) -> List[Dict[str, Any]]:
    """The paper's Fig. 3 on test frame ``index`` as training sees it (network input size, ``teacher``, the
    config's loss): loss_curves.png and .json at three pixels (fg_depth_core.loss_curve.pick_pixels)."""
    import cv2
    import torch

    from fg_depth_core.data.base import to_sample
    from fg_depth_core.data.folder import StereoFolder
    from fg_depth_core.loss_curve import check_pixels, depth_hypotheses, loss_curves, pick_pixels, plot_curves

    cfg = settings.cfg
    w, h = cfg.data.width, cfg.data.height
    pair = StereoFolder(settings.played, w, h).load(index)
    sample = to_sample(pair, w, h)
    target, source = sample["left"][None], sample["right"][None]
    rgb = np.ascontiguousarray((sample["left"].permute(1, 2, 0) * 255).round().byte().numpy())
    gt = cv2.resize(pair.depth_left, (w, h), interpolation=cv2.INTER_NEAREST)
    pixels = pick_pixels(rgb, gt, check_pixels([], w, h, LOSS_CURVE_WINDOW))
    focal, baseline, doffs = (float(sample[k]) for k in ("focal", "baseline", "doffs"))
    with torch.no_grad():
        out = teacher.flow(target, source, target_is_left=True, doffs=doffs)
        curves = loss_curves(
            target,
            source,
            focal,
            baseline,
            out.flow,
            out.valid,
            [(u, v) for _, u, v in pixels],
            depth_hypotheses(*LOSS_CURVE_DEPTHS, LOSS_CURVE_STEPS),
            cfg.loss,
            LOSS_CURVE_WINDOW,
            [float(gt[v, u]) for _, u, v in pixels],
            doffs,
        )
    plot_curves(curves, str(settings.out / LOSS_CURVES_PNG), [kind for kind, _, _ in pixels])
    table = [{"kind": kind, **c.to_json()} for (kind, _, _), c in zip(pixels, curves)]
    (settings.out / LOSS_CURVES_JSON).write_text(json.dumps({"frame": index, "pixels": table}, indent=1))
    return table
