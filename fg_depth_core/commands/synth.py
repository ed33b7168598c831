"""``fg-depth synth``: render frames of the built-in stereo world into a stereo folder with exact depth."""

from __future__ import annotations

import argparse
from typing import Tuple

from fg_depth_core.errors import FgDepthError

SPLIT_CHOICES = ("train", "val", "test")


def _size(text: str) -> Tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH in pixels (e.g. 640x192), got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"expected a size of at least 16x16 pixels, got {text!r}")
    return w, h


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render the built-in stereo world into a stereo folder (with exact depth)",
        description="Render frames of the built-in street world (data.synth settings) as rectified stereo "
        "pairs in the stereo-folder layout: OUT/left/NNNNNN.png, OUT/right/NNNNNN.png, OUT/depth/NNNNNN.npy "
        "(float32 metres of the left view, inf = sky), OUT/calib.yaml and OUT/world.yaml (the settings). "
        "Frames already in OUT are kept, so an interrupted run resumes. Read it back with --data folder "
        "(or --data synth, which renders missing frames).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames", type=int, default=None, help="number of frames (default: the split's count)")
    p.add_argument("--seed", type=int, default=None, help="world seed (default: data.synth.seed)")
    p.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="WxH",
        help="image size; the focal length scales with the width (default: data.synth width x height)",
    )
    p.add_argument(
        "--split", choices=SPLIT_CHOICES, default="train", help="which split's scenes (default: train)"
    )
    p.add_argument("--config", default=None, help="YAML config (its data.synth section)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from fg_depth_core.config import load_config
    from fg_depth_core.data.synth import render_split
    from fg_depth_core.data.world import resize_synth, split_frames

    synth = load_config(args.config).data.synth
    if args.seed is not None:
        if args.seed < 0:
            raise FgDepthError(f"--seed: expected >= 0, got {args.seed}")
        synth = dataclasses.replace(synth, seed=args.seed)
    if args.size is not None:
        synth = resize_synth(synth, *args.size)
    frames = split_frames(synth, args.split) if args.frames is None else args.frames
    if frames < 1:
        raise FgDepthError(f"--frames: expected >= 1, got {frames}")
    out = Path(args.out)
    rendered = render_split(synth, args.split, out, frames, progress=True)
    print(
        f"{args.split} split, seed {synth.seed}: {frames} frames at {synth.width}x{synth.height} "
        f"(f={synth.focal:.1f} px, B={synth.baseline} m) in {out} ({rendered} rendered now, "
        f"{frames - rendered} already there)"
    )
    return 0
