#!/usr/bin/env python3
"""How good is the teacher where it speaks? Its pseudo depth against ground truth on the built-in world.

For the first N test frames of config/train_synth.yaml's world at the given network size, the teacher's
pseudo depth f*B/d on its prior-mask pixels M_fp is scored with the seven metrics, and the share of
ground-truth pixels (within [eval.min_depth, eval.max_depth]) that M_fp covers is reported.

    .venv/bin/python bench/teacher_accuracy.py --size 256x96
    .venv/bin/python bench/teacher_accuracy.py --size 640x192 --set teacher.sgbm.num_disparities=96
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fg_depth_core.config import load_config  # noqa: E402
from fg_depth_core.data.base import to_sample  # noqa: E402
from fg_depth_core.data.world import render_frame  # noqa: E402
from fg_depth_core.geometry import resize_to  # noqa: E402
from fg_depth_core.losses import prior_flow_mask, pseudo_depth  # noqa: E402
from fg_depth_core.metrics import depth_metrics  # noqa: E402
from fg_depth_core.teachers import build_teacher  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="256x96", help="network input WxH the teacher runs at")
    p.add_argument("--frames", type=int, default=12, help="test frames of the world")
    p.add_argument("--config", default=str(ROOT / "config" / "train_synth.yaml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    cfg = load_config(args.config, args.set)
    teacher = build_teacher(cfg.teacher)
    lo, hi = cfg.eval.min_depth, cfg.eval.max_depth
    gts, preds, cover = [], [], []
    for i in range(args.frames):
        raw = render_frame(cfg.data.synth, "test", i)
        s = to_sample(raw, width, height, i)
        with torch.no_grad():
            out = teacher.flow(s["left"][None], s["right"][None], doffs=float(s["doffs"]))
        rig = (s["focal"], s["baseline"])
        mask = prior_flow_mask(out.flow, out.valid, *rig, cfg.loss.prior_mask_max_depth, s["doffs"])
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
        cover.append(sel.sum() / max(in_range.sum(), 1))
    m = depth_metrics(np.concatenate(gts), np.concatenate(preds))
    print(
        f"teacher {cfg.teacher.method} at {width}x{height}, {args.frames} test frames: "
        + ", ".join(f"{k} {v:.3f}" for k, v in m.items())
        + f"; M_fp covers {np.mean(cover):.0%} of the ground-truth pixels"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
