"""``fg-depth teacher``: run the configured teacher on one rectified pair and save its disparity."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from fg_depth_core.config import TEACHER_METHODS
from fg_depth_core.errors import FgDepthError

if TYPE_CHECKING:
    from fg_depth_core.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "teacher",
        help="run a teacher (SGBM, DIS or RAFT) on a rectified stereo pair and save its disparity",
        description="Compute the teacher's left-view disparity (pixels, float32 .npy, NaN where invalid) "
        "at the input resolution, as the training losses see it: the image disparity x_left - x_right. "
        "Prints the share of valid pixels, over the image and per vertical band.",
    )
    p.add_argument("--method", choices=TEACHER_METHODS, default=None, help="teacher (default: the config's)")
    p.add_argument("--weights", default=None,
                   help="RAFT weights: a state-dict file, 'cache' (torchvision's hub cache, never "
                        "downloads) or 'none' (default: the config's teacher.weights, itself 'cache')")
    p.add_argument("--left", required=True, help="left (target) image")
    p.add_argument("--right", required=True, help="right (source) image")
    p.add_argument("--out", required=True, help="output disparity .npy (float32 pixels, NaN where invalid)")
    p.add_argument("--doffs", type=float, default=0.0,
                   help="the rig's disparity offset cx_right - cx_left in pixels of these images (default "
                        "0): depth = fx * baseline / (disparity + doffs); SGBM searches from -doffs")
    p.add_argument("--config", default=None, help="YAML config (teacher section)")
    p.add_argument("--cache-dir", default=None, help="teacher cache directory (overrides teacher.cache_dir)")
    p.add_argument("--device", default="cpu", help="torch device for RAFT, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--bands", type=int, default=8,
                   help="vertical bands of the printed coverage, left to right (default 8)")
    p.set_defaults(func=run)


def load_teacher_config(config: Optional[str], method: Optional[str], weights: Optional[str],
                        cache_dir: Optional[str] = None) -> "Config":
    """The config at ``config`` (or the defaults) with the teacher options of the command line applied."""
    from fg_depth_core.config import load_config

    cfg = load_config(config)
    # Set on the typed config, not as YAML override strings, so that any file name survives verbatim.
    if method:
        cfg.teacher.method = method
    if weights:
        cfg.teacher.weights = weights
    if cache_dir is not None:
        cfg.teacher.cache_dir = cache_dir
    cfg.teacher.validate("teacher")
    return cfg


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from fg_depth_core.image_io import read_stereo_pair, to_tensor
    from fg_depth_core.teachers import build_teacher, teacher_disparity
    from fg_depth_core.teachers.base import band_coverage

    if args.bands < 1:
        raise FgDepthError(f"--bands: expected at least 1, got {args.bands}")
    cfg = load_teacher_config(args.config, args.method, args.weights, args.cache_dir)
    left, right = read_stereo_pair(args.left, args.right)

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise FgDepthError(f"--device: expected a torch device (cpu, cuda), got {args.device!r}") from None
    teacher = build_teacher(cfg.teacher, device)
    output = teacher.flow(to_tensor(left), to_tensor(right), target_is_left=True, doffs=args.doffs)
    disparity = teacher_disparity(output)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # a file object keeps np.save from appending ".npy" to the name
        np.save(f, disparity)
    finite = np.isfinite(disparity)
    median = f"{float(np.median(disparity[finite])):.2f} px" if finite.any() else "n/a"
    bands = ", ".join(f"{share:.0%}" for share in band_coverage(finite, args.bands))
    print(
        f"{cfg.teacher.method}: {disparity.shape[1]}x{disparity.shape[0]} disparity -> {out} "
        f"(valid {finite.mean():.1%}, median {median}); valid per band, left to right: {bands}"
    )
    return 0
