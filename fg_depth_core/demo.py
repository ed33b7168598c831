"""``make demo``: a tour of the method on the built-in world, written to an output folder.

Renders a street pair of the built-in world (exact depth, a right camera with another exposure), runs the
SGBM teacher, builds the prior flow mask, draws the loss curves of the paper's Fig. 3 at three kinds of
pixel, and fits a DepthNet to the pair for a few steps with the full FG-Depth loss. Every number printed is
measured in this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from fg_depth_core.config import Config, load_config
from fg_depth_core.data.render import StereoFrame
from fg_depth_core.data.world import frame_spec, render_stereo_frame
from fg_depth_core.image_io import to_tensor
from fg_depth_core.loss_curve import depth_hypotheses, loss_curves, plot_curves
from fg_depth_core.losses import prior_flow_mask, total_loss
from fg_depth_core.metrics import depth_metrics
from fg_depth_core.model import build_depthnet
from fg_depth_core.teachers import build_teacher, teacher_disparity
from fg_depth_core.visualize import colorize_depth, colorize_disparity

#: Depth range (metres) the colour maps span: the street's near cars to the evaluation limit.
DISPLAY_DEPTH_RANGE = (2.0, 80.0)


def pick_pixels(frame: StereoFrame, margin: int) -> List[Tuple[str, int, int]]:
    """A road pixel, the most textureless pixel with finite depth, and a pixel on the nearest object."""
    import cv2

    h, w = frame.depth_left.shape
    depth = frame.depth_left
    inner = np.zeros_like(depth, dtype=bool)
    inner[margin : h - margin, margin : w - margin] = True
    grey = cv2.cvtColor(frame.left, cv2.COLOR_RGB2GRAY).astype(np.float32)
    local_std = np.sqrt(np.maximum(cv2.blur(grey**2, (9, 9)) - cv2.blur(grey, (9, 9)) ** 2, 0.0))
    finite = np.isfinite(depth) & inner
    road = ("road", w // 2, h - margin - 1)
    flat_score = np.where(finite & (depth > 5.0) & (depth < 40.0), local_std, np.inf)
    fv, fu = np.unravel_index(np.argmin(flat_score), depth.shape)
    # The central upper band holds the objects on the road; the road's near rows and the facades at the image
    # border would otherwise always be nearest.
    band = np.zeros_like(finite)
    band[margin : int(h * 0.6), w // 4 : 3 * w // 4] = True
    # The farthest depth in the loss window around each pixel: small only inside an object, not on its edge.
    window_far = cv2.dilate(
        np.where(np.isfinite(depth), depth, 1e6).astype(np.float32), np.ones((margin * 2 + 1,) * 2)
    )
    nv, nu = np.unravel_index(np.argmin(np.where(finite & band, window_far, np.inf)), depth.shape)
    return [road, ("textureless", int(fu), int(fv)), ("nearest object", int(nu), int(nv))]


def fit_depthnet(cfg: Config, frame: StereoFrame, flow, valid, steps: int) -> Tuple[np.ndarray, List[float]]:
    """Fit a randomly initialised DepthNet to this single pair with the configured loss; returns the final
    depth (H,W) and the loss per step."""
    torch.manual_seed(cfg.train.seed)
    net = build_depthnet(cfg.model)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.learning_rate)
    target, source = to_tensor(frame.left), to_tensor(frame.right)
    focal = torch.tensor([frame.intrinsics.fx])
    baseline = torch.tensor([frame.baseline])
    history = []
    from tqdm import tqdm

    for _ in tqdm(range(steps), desc="fit DepthNet", unit="step", leave=False):
        loss, _ = total_loss(net(target), target, source, flow, valid, focal, baseline, cfg.loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    with torch.no_grad():
        depth = net.eval().predict(target)[0, 0].numpy()
    return depth, history


def _save_rgb(path: Path, rgb: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def run(out: Path, config: Optional[str], index: int, steps: int) -> Dict[str, object]:
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(config)
    s = cfg.data.synth
    frame = render_stereo_frame(s, "test", index)
    gain = frame_spec(s, "test", index).right_gain
    print(
        f"[1/4] rendered test frame {index} of the built-in world: {s.width}x{s.height}, f={s.focal} px, "
        f"B={s.baseline} m, right camera gain {gain:.2f}"
    )

    target, source = to_tensor(frame.left), to_tensor(frame.right)
    teacher = build_teacher(cfg.teacher)
    with torch.no_grad():
        t_out = teacher.flow(target, source, target_is_left=True)
    disparity = teacher_disparity(t_out)
    truth = frame.disparity_left
    both = np.isfinite(disparity) & (truth > 0)
    epe = np.abs(disparity - truth)[both]
    focal, baseline = frame.intrinsics.fx, frame.baseline
    mask = prior_flow_mask(t_out.flow, t_out.valid, focal, baseline, cfg.loss.prior_mask_max_depth)[
        0, 0
    ].numpy()
    teacher_stats = {
        "method": cfg.teacher.method,
        "valid_fraction": float(np.isfinite(disparity).mean()),
        "median_abs_error_px": float(np.median(epe)),
        "within_1px": float((epe <= 1.0).mean()),
        "prior_mask_fraction": float(mask.mean()),
    }
    print(
        f"[2/4] teacher {cfg.teacher.method}: valid {teacher_stats['valid_fraction']:.0%}, median error "
        f"{teacher_stats['median_abs_error_px']:.2f} px, {teacher_stats['within_1px']:.0%} within 1 px; "
        f"M_fp keeps {teacher_stats['prior_mask_fraction']:.0%} of pixels"
    )

    max_disp = float(np.nanmax(truth))
    depth_range = DISPLAY_DEPTH_RANGE
    gt_vis = colorize_depth(frame.depth_left, *depth_range)
    mask_vis = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    panels = [frame.left, frame.right, gt_vis, colorize_disparity(disparity, max_disp), mask_vis]
    _save_rgb(out / "scene.png", np.vstack(panels))

    window = 5
    pixels = pick_pixels(frame, margin=window // 2 + 1)
    depths = depth_hypotheses(1.0, 60.0, 240)
    gts = [float(frame.depth_left[v, u]) for _, u, v in pixels]
    curves = loss_curves(
        target,
        source,
        focal,
        baseline,
        t_out.flow,
        t_out.valid,
        [(u, v) for _, u, v in pixels],
        depths,
        cfg.loss,
        window,
        gts,
    )
    plot_curves(curves, str(out / "loss_curves.png"))
    curve_json = [{"kind": kind, **c.to_json()} for (kind, _, _), c in zip(pixels, curves)]
    (out / "loss_curves.json").write_text(json.dumps({"pixels": curve_json}, indent=1))
    print("[3/4] loss curves (argmin of each loss, metres):")
    for (kind, u, v), c in zip(pixels, curves):
        mins = "  ".join(f"{k}={'n/a' if z is None else f'{z:.1f}'}" for k, z in c.argmin.items())
        print(f"      {kind:15s} ({u:3d},{v:3d}) GT {c.gt_depth:5.1f}  {mins}")
    if any(c.argmin["fd"] is None for c in curves):
        print(
            "      n/a: no valid teacher pixel in that window (SGBM leaves textureless areas empty), so M_fp "
            "keeps L_dr and L_fp out of it and the photometric loss alone decides there."
        )

    pred, history = fit_depthnet(cfg, frame, t_out.flow, t_out.valid, steps)
    gt = frame.depth_left
    valid_gt = np.isfinite(gt) & (gt > cfg.eval.min_depth) & (gt < cfg.eval.max_depth)
    clipped = np.clip(pred, cfg.eval.min_depth, cfg.eval.max_depth)
    fit_metrics = depth_metrics(gt[valid_gt], clipped[valid_gt])
    _save_rgb(out / "depth_fit.png", np.vstack([frame.left, colorize_depth(pred, *depth_range), gt_vis]))
    print(
        f"[4/4] DepthNet fitted to this pair for {steps} steps ({cfg.loss.preset} loss): loss "
        f"{history[0]:.4f} -> {history[-1]:.4f}, "
        f"AbsRel {fit_metrics['abs_rel']:.3f}, a1 {fit_metrics['a1']:.3f}"
    )

    summary = {
        "teacher": teacher_stats,
        "fit": {"steps": steps, "loss_first": history[0], "loss_last": history[-1], **fit_metrics},
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"\nDone in {summary['seconds']} s. Look at {out}/: scene.png (left, right, true depth, teacher "
        "disparity, M_fp), loss_curves.png, depth_fit.png (left, fitted depth, true depth), summary.json."
    )
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fg_depth_core.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--config", default=None, help="YAML config (defaults otherwise)")
    p.add_argument("--frame", type=int, default=2, help="which frame of the world's test split")
    p.add_argument("--steps", type=int, default=40, help="DepthNet fitting steps")
    args = p.parse_args(argv)
    run(Path(args.out), args.config, args.frame, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
