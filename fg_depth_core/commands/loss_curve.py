"""``fg-depth loss-curve``: the losses at chosen pixels as functions of a depth hypothesis (paper Fig. 3)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Tuple

from fg_depth_core.config import TEACHER_METHODS
from fg_depth_core.errors import FgDepthError


def _pixel(text: str) -> Tuple[int, int]:
    try:
        u, v = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected U,V (integers, column then row), got {text!r}") from None
    return u, v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loss-curve",
        help="plot each loss against a depth hypothesis at chosen pixels (paper Fig. 3)",
        description="Sweep a constant depth hypothesis over a small window around each pixel of a rectified "
        "stereo pair and evaluate the photometric loss and the flow-distillation losses (dr, fp, fd) there.",
    )
    p.add_argument("--left", required=True, help="left (target) image")
    p.add_argument("--right", required=True, help="right (source) image")
    p.add_argument("--fx", type=float, required=True, help="focal length in pixels of these images")
    p.add_argument("--baseline", type=float, required=True, help="stereo baseline in metres")
    p.add_argument(
        "--doffs",
        type=float,
        default=0.0,
        help="disparity offset cx_right - cx_left in pixels of these images (default 0)",
    )
    p.add_argument(
        "--pixel",
        type=_pixel,
        action="append",
        required=True,
        metavar="U,V",
        help="pixel (column,row); repeat for several",
    )
    p.add_argument(
        "--gt-depth",
        type=float,
        action="append",
        metavar="Z",
        help="true depth (metres) of each --pixel, in the same order",
    )
    p.add_argument("--teacher", choices=TEACHER_METHODS, default=None, help="teacher (default: the config's)")
    p.add_argument("--weights", default=None, help="RAFT weights file (default: the config's)")
    p.add_argument("--config", default=None, help="YAML config (loss and teacher settings)")
    p.add_argument("--depth-min", type=float, default=1.0, help="smallest hypothesis, metres")
    p.add_argument("--depth-max", type=float, default=40.0, help="largest hypothesis, metres")
    p.add_argument("--steps", type=int, default=200, help="number of hypotheses")
    p.add_argument("--window", type=int, default=5, help="odd window size (pixels) the losses average over")
    p.add_argument("--json", required=True, help="output JSON path")
    p.add_argument("--png", default=None, help="optional plot path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from fg_depth_core.commands.teacher import load_teacher_config
    from fg_depth_core.image_io import read_stereo_pair, to_tensor
    from fg_depth_core.loss_curve import check_pixels, depth_hypotheses, loss_curves, plot_curves
    from fg_depth_core.teachers import build_teacher

    cfg = load_teacher_config(args.config, args.teacher, args.weights)
    if args.gt_depth is not None and len(args.gt_depth) != len(args.pixel):
        raise FgDepthError(
            f"--gt-depth: expected one value per --pixel ({len(args.pixel)}), got {len(args.gt_depth)}"
        )
    if not (args.fx > 0 and args.baseline > 0):
        raise FgDepthError(f"--fx and --baseline: expected > 0, got {args.fx} and {args.baseline}")
    depths = depth_hypotheses(args.depth_min, args.depth_max, args.steps)
    left, right = read_stereo_pair(args.left, args.right)
    check_pixels(args.pixel, left.shape[1], left.shape[0], args.window)
    target, source = to_tensor(left), to_tensor(right)
    teacher = build_teacher(cfg.teacher, torch.device("cpu"))
    with torch.no_grad():
        out = teacher.flow(target, source, target_is_left=True, doffs=args.doffs)
        curves = loss_curves(
            target,
            source,
            args.fx,
            args.baseline,
            out.flow,
            out.valid,
            args.pixel,
            depths,
            cfg.loss,
            args.window,
            args.gt_depth,
            args.doffs,
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"pixels": [c.to_json() for c in curves]}, indent=1))
    if args.png:
        plot_curves(curves, args.png)
    for c in curves:
        mins = ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in c.argmin.items())
        gt = "" if c.gt_depth is None else f" (GT {c.gt_depth:.2f} m)"
        print(f"pixel ({c.u},{c.v}){gt}: argmin [m] {mins}")
    return 0
