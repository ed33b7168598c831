#!/usr/bin/env python3
"""How good is the teacher where it speaks, and where does it speak? Its pseudo depth against the built-in
world's exact depth.

For the first N test frames of config/train_synth.yaml's world at the given network size, the teacher's
pseudo depth f*B/(d+doffs) on its prior-mask pixels M_fp is scored with the seven metrics, and the share of
ground-truth pixels (within [eval.min_depth, eval.max_depth]) that M_fp covers is reported, over the whole
image and per vertical band (left to right: SGBM without padding leaves the left band empty).

    .venv/bin/python bench/teacher_accuracy.py --size 256x96
    .venv/bin/python bench/teacher_accuracy.py --size 640x192 --set teacher.sgbm.num_disparities=96
    .venv/bin/python bench/teacher_accuracy.py --size 256x96 --set teacher.method=dis
    .venv/bin/python bench/teacher_accuracy.py --size 256x96 --unpadded-sgbm   # SGBM before issue 14
    .venv/bin/python bench/teacher_accuracy.py --size 256x96 --set teacher.resolution=raw \\
        --set teacher.sgbm.num_disparities=96          # SGBM at the rendered 640x192, flow scaled to 256x96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fg_depth_core import stereo_matching  # noqa: E402
from fg_depth_core.config import load_config  # noqa: E402
from fg_depth_core.data.base import to_sample  # noqa: E402
from fg_depth_core.data.world import render_frame  # noqa: E402
from fg_depth_core.geometry import resize_to  # noqa: E402
from fg_depth_core.image_io import to_tensor  # noqa: E402
from fg_depth_core.losses import cfg_prior_flow_mask, pseudo_depth  # noqa: E402
from fg_depth_core.metrics import depth_metrics  # noqa: E402
from fg_depth_core.teachers import build_teacher  # noqa: E402
from fg_depth_core.teachers.base import band_coverage, rescale_output  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="256x96", help="network input WxH the teacher's output is scored at")
    p.add_argument("--frames", type=int, default=12, help="test frames of the world")
    p.add_argument("--bands", type=int, default=8, help="vertical bands of the per-band coverage")
    p.add_argument("--config", default=str(ROOT / "config" / "train_synth.yaml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument(
        "--unpadded-sgbm",
        action="store_true",
        help="SGBM without its left padding, as OpenCV matches by itself (the teacher before issue 14): "
        "what the padding adds",
    )
    return p.parse_args(argv)


def evaluate(args: argparse.Namespace) -> Dict[str, object]:
    """Metrics on M_fp, coverage of the ground truth overall and per band, and seconds per pair."""
    width, height = (int(v) for v in args.size.lower().split("x"))
    cfg = load_config(args.config, args.set)
    if args.unpadded_sgbm:
        # sgbm_disparity reads the module's left_padding at each call: no columns added, none cropped.
        stereo_matching.left_padding = lambda matcher: 0
    teacher = build_teacher(cfg.teacher)
    lo, hi = cfg.eval.min_depth, cfg.eval.max_depth
    gts, preds, covers, in_ranges = [], [], [], []
    seconds = 0.0
    for i in range(args.frames):
        raw = render_frame(cfg.data.synth, "test", i)
        s = to_sample(raw, width, height, i)
        if cfg.teacher.resolution == "raw":
            views = [to_tensor(raw.left), to_tensor(raw.right)]
            doffs = float(raw.rig.doffs)
        else:
            views = [s["left"][None], s["right"][None]]
            doffs = float(s["doffs"])
        start = time.perf_counter()
        with torch.no_grad():
            out = teacher.flow(*views, doffs=doffs)
        seconds += time.perf_counter() - start
        out = rescale_output(out, height, width)
        rig = (s["focal"], s["baseline"])
        mask = cfg_prior_flow_mask(out.flow, out.valid, *rig, cfg.loss, s["doffs"])
        depth, _ = pseudo_depth(out.flow, *rig, s["doffs"])
        # Ground truth down to the teacher's grid (nearest: no mixing across depth edges).
        gt = resize_to(
            torch.from_numpy(np.nan_to_num(raw.depth_left, posinf=0.0))[None, None],
            height,
            width,
            mode="nearest",
        )[0, 0].numpy()
        in_range = (gt >= lo) & (gt <= hi)
        sel = mask[0, 0].numpy() & in_range
        gts.append(gt[sel])
        preds.append(np.clip(depth[0, 0].numpy()[sel], lo, hi))
        covers.append(sel)
        in_ranges.append(in_range)
    m = depth_metrics(np.concatenate(gts), np.concatenate(preds))
    # The frames stacked vertically: per band, covered ground-truth pixels over that band's, frames pooled.
    cover = np.concatenate(covers, axis=0)
    in_range = np.concatenate(in_ranges, axis=0)
    per_band = [
        c / max(r, 1e-9)
        for c, r in zip(band_coverage(cover, args.bands), band_coverage(in_range, args.bands))
    ]
    return {
        "cfg": cfg,
        "size": (width, height),
        "metrics": m,
        "coverage": float(cover.sum() / max(in_range.sum(), 1)),
        "bands": per_band,
        "seconds_per_pair": seconds / args.frames,
    }


def report(args: argparse.Namespace, result: Dict[str, object]) -> List[str]:
    cfg = result["cfg"]
    width, height = result["size"]
    m = result["metrics"]
    bands = ", ".join(f"{b:.0%}" for b in result["bands"])
    return [
        f"teacher {cfg.teacher.method}{' (unpadded)' if args.unpadded_sgbm else ''} (resolution "
        f"{cfg.teacher.resolution}) scored at {width}x{height}, "
        f"{args.frames} test frames: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()),
        f"  M_fp covers {result['coverage']:.0%} of the ground-truth pixels; per band, left to right "
        f"({args.bands} bands): {bands}",
        f"  {result['seconds_per_pair'] * 1000:.0f} ms per pair and direction (with its check's second "
        "direction where it has one)",
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    print("\n".join(report(args, evaluate(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
