#!/usr/bin/env python3
"""Where do two ablation runs differ? AbsRel of each checkpoint split by what the teacher saw.

Each test pixel with ground truth in the evaluation range falls in one of two regions: the prior flow mask
M_fp (the teacher is valid, in view and nearer than delta: L_dr and L_fp supervise it) or its complement
(SGBM holes: textureless areas, the unmatched left band, occlusions, far content). Running it on the runs
that bench/ablation.py wrote shows whether the full loss helps where the teacher speaks and what masking the
photometric loss with M_fp costs where it is silent.

    .venv/bin/python bench/ablation_breakdown.py outputs/ablation/baseline/last.pt \
        outputs/ablation/fgdepth/last.pt --world outputs/ablation/world
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fg_depth_core.data.factory import build_dataset  # noqa: E402
from fg_depth_core.evaluate import resize_depth  # noqa: E402
from fg_depth_core.geometry import resize_to  # noqa: E402
from fg_depth_core.losses import prior_flow_mask  # noqa: E402
from fg_depth_core.metrics import depth_metrics  # noqa: E402
from fg_depth_core.model.checkpoint import load_model  # noqa: E402
from fg_depth_core.teachers import build_teacher  # noqa: E402


def region_metrics(checkpoints: List[str], world: str, frames: int) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{checkpoint: {region: metrics}} over the first ``frames`` test frames of the world at ``world``."""
    nets = [load_model(c) for c in checkpoints]
    cfg = nets[0][1]
    dataset = build_dataset(cfg.data, "test", path=world)
    teacher = build_teacher(cfg.teacher)
    gts: Dict[str, List[np.ndarray]] = {"teacher (M_fp)": [], "no teacher": []}
    preds: Dict[str, Dict[str, List[np.ndarray]]] = {c: {k: [] for k in gts} for c in checkpoints}
    lo, hi = cfg.eval.min_depth, cfg.eval.max_depth
    for i in range(min(frames, len(dataset))):
        s = dataset[i]
        gt = s["depth_left"][0].numpy()
        with torch.no_grad():
            out = teacher.flow(s["left"][None], s["right"][None], doffs=float(s["doffs"]))
            delta = cfg.loss.prior_mask_max_depth
            mask = prior_flow_mask(out.flow, out.valid, s["focal"], s["baseline"], delta, s["doffs"])
        # The mask lives at the network input size; ground truth at its own: nearest keeps it boolean.
        mask = resize_to(mask.float(), gt.shape[0], gt.shape[1], mode="nearest")[0, 0].numpy() > 0.5
        valid = (gt >= lo) & (gt <= hi)
        regions = {"teacher (M_fp)": valid & mask, "no teacher": valid & ~mask}
        for name, sel in regions.items():
            gts[name].append(gt[sel])
        for c, (net, _, _) in zip(checkpoints, nets):
            with torch.no_grad():
                depth = net.predict(s["left"][None])[0, 0].numpy()
            depth = np.clip(resize_depth(depth, *gt.shape), lo, hi)
            for name, sel in regions.items():
                preds[c][name].append(depth[sel])
    return {
        c: {name: depth_metrics(np.concatenate(gts[name]), np.concatenate(preds[c][name])) for name in gts}
        | {"pixels": {name: float(sum(g.size for g in gts[name])) for name in gts}}
        for c in checkpoints
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", help="last.pt of each run to compare")
    p.add_argument("--world", required=True, help="the world folder the runs trained on (OUT/world)")
    p.add_argument("--frames", type=int, default=40, help="test frames to use")
    args = p.parse_args()
    results = region_metrics(args.checkpoints, args.world, args.frames)
    first = results[args.checkpoints[0]]["pixels"]
    total = sum(first.values())
    print("| run | region | share of GT pixels | abs_rel | rmse | a1 |")
    print("|---|---|---|---|---|---|")
    for c, r in results.items():
        for name in ("teacher (M_fp)", "no teacher"):
            m = r[name]
            share = r["pixels"][name] / total
            print(f"| {c} | {name} | {share:.0%} | {m['abs_rel']:.4f} | {m['rmse']:.3f} | {m['a1']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
