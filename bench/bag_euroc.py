#!/usr/bin/env python3
"""Training from a real rosbag2 recording: rectification quality and a short training run, written into the
"Training from a rosbag2 recording" section of docs/RESULTS.md.

The bag is raw, distorted mono8 stereo with CameraInfo (e.g. ../shared/data/euroc_v101_mini, EuRoC V1_01).

1. Rectification: SIFT matches between left and right of every ``--every``-th pair, kept when they fit the
   epipolar geometry (RANSAC fundamental matrix, 1 px), before and after rectification. In a rectified pair
   a match lies on the same row: the vertical offset |y_left - y_right| measures the rectification.
2. Training: ``fg-depth train --bag`` for ``--steps`` steps on the CPU. The bag has no depth ground truth, so
   the run is judged by its validation loss and by how well the network's depth on the held-out (last)
   frames agrees with the stereo teacher's depth (SGBM on the rectified pair, metric through the baseline)
   where the teacher is valid, for the untrained network (step 0) and the trained one.

    .venv/bin/python bench/bag_euroc.py ../shared/data/euroc_v101_mini
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## Training from a rosbag2 recording (EuRoC V1_01)"
#: Pictures of the work folder -> where the section links them (relative to docs/RESULTS.md).
FIGURES = {
    "rectification.jpg": "img/bag_euroc_rectification.jpg",
    "held_out_depth.jpg": "img/bag_euroc_depth.jpg",
}
#: Lowe's ratio test and the RANSAC epipolar threshold (pixels) for the feature matches.
RATIO = 0.75
RANSAC_PX = 1.0


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bag", help="rosbag2 recording with raw stereo + CameraInfo")
    p.add_argument("--left", default="/cam0/image_raw")
    p.add_argument("--right", default="/cam1/image_raw")
    p.add_argument("--every", type=int, default=5, help="measure rectification on every N-th pair")
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--stride", type=int, default=1, help="data.bag.stride for training (the bag is short)")
    p.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "bag_euroc"), help="work folder")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--figures", default=str(ROOT / "docs" / "img"), help="folder for the pictures")
    p.add_argument("--no-write", action="store_true", help="print the section only (no results, no pictures)")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------ rectification


def vertical_offsets(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """|y_left - y_right| (pixels) of SIFT matches of two RGB views that fit one fundamental matrix."""
    import cv2

    sift = cv2.SIFT_create()
    grey = [cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) for v in (left, right)]
    (kl, dl), (kr, dr) = (sift.detectAndCompute(g, None) for g in grey)
    if dl is None or dr is None:
        return np.zeros(0)
    good = [m for m, n in cv2.BFMatcher().knnMatch(dl, dr, k=2) if m.distance < RATIO * n.distance]
    if len(good) < 8:
        return np.zeros(0)
    pl = np.float32([kl[m.queryIdx].pt for m in good])
    pr = np.float32([kr[m.trainIdx].pt for m in good])
    _, inliers = cv2.findFundamentalMat(pl, pr, cv2.FM_RANSAC, RANSAC_PX, 0.999)
    keep = inliers.ravel().astype(bool) if inliers is not None else np.zeros(len(good), bool)
    return np.abs(pl[keep, 1] - pr[keep, 1])


def rows_picture(pairs: Sequence[Any], path: Path, line_every: int = 40) -> None:
    """Each (left, right) pair side by side, one above the other, with horizontal lines every
    ``line_every`` pixels: in a rectified pair a point sits on the same line in both views."""
    import cv2

    rows = []
    width = max(left.shape[1] + right.shape[1] for left, right in pairs)
    for left, right in pairs:
        row = np.hstack([left, right]).copy()
        for y in range(line_every // 2, row.shape[0], line_every):
            cv2.line(row, (0, y), (row.shape[1] - 1, y), (0, 255, 0), 1)
        rows.append(np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0))))
    image = np.vstack(rows)
    image = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def rectification_quality(args: argparse.Namespace, out: Path) -> Dict[str, Dict[str, float]]:
    """Offsets of matches in the raw pairs and the rectified pairs, over every ``args.every``-th pair; the
    first pair of each kind is drawn into OUT/rectification.jpg."""
    from fg_depth_core.config import BagConfig
    from fg_depth_core.data.bag import bag_reader, iter_pairs, open_stereo

    stats: Dict[str, Dict[str, float]] = {}
    shown = []
    for name, mode in (("raw", "never"), ("rectified", "auto")):
        cfg = BagConfig(left_topic=args.left, right_topic=args.right, rectify=mode, stride=args.every)
        offsets: List[np.ndarray] = []
        with bag_reader(args.bag) as reader:
            stereo = open_stereo(reader, args.bag, cfg)
            for _stamp, pair in iter_pairs(reader, stereo):
                offsets.append(vertical_offsets(pair.left, pair.right))
                if len(offsets) == 1:
                    shown.append((pair.left, pair.right))
            description = stereo.rectifier.describe()
        dy = np.concatenate(offsets)
        stats[name] = {
            "pairs": len(offsets),
            "matches": int(dy.size),
            "median_px": float(np.median(dy)),
            "p90_px": float(np.percentile(dy, 90)),
            "within_1px": float((dy <= 1.0).mean()),
            "description": description,
        }
        print(f"{name}: {stats[name]}", flush=True)
    rows_picture(shown, out / "rectification.jpg")
    return stats


# ------------------------------------------------------------------------------------------ training


def teacher_depth(output: Any, sample: Dict[str, Any]) -> np.ndarray:
    """The teacher's depth f * B / (d + doffs) (H,W) metres of a sample's rig, NaN where it has none."""
    from fg_depth_core.geometry_np import depth_from_disparity
    from fg_depth_core.teachers import teacher_disparity

    rig = (float(sample[k]) for k in ("focal", "baseline", "doffs"))
    depth, valid = depth_from_disparity(teacher_disparity(output), *rig)
    return np.where(valid, depth, np.nan)


def teacher_agreement(net: torch.nn.Module, dataset: Any, teacher: Any, cfg: Any) -> Dict[str, float]:
    """AbsRel and delta<1.25 of the network's depth against the teacher's stereo depth, over ``dataset``,
    where the teacher is valid and its depth is in the evaluation range."""
    from fg_depth_core.metrics import depth_metrics
    refs, preds = [], []
    for i in range(len(dataset)):
        s = dataset[i]
        with torch.no_grad():
            out = teacher.flow(s["left"][None], s["right"][None], doffs=float(s["doffs"]))
            depth = net.predict(s["left"][None])[0, 0].numpy()
        ref = teacher_depth(out, s)
        valid = np.isfinite(ref) & (ref >= cfg.eval.min_depth) & (ref <= cfg.eval.max_depth)
        refs.append(ref[valid])
        preds.append(np.clip(depth[valid], cfg.eval.min_depth, cfg.eval.max_depth))
    m = depth_metrics(np.concatenate(refs), np.concatenate(preds))
    return {"abs_rel": float(m["abs_rel"]), "a1": float(m["a1"]), "pixels": int(sum(r.size for r in refs))}


def picture(net: torch.nn.Module, dataset: Any, teacher: Any, cfg: Any, path: Path) -> None:
    """left | network depth | teacher depth of the first held-out frame, one colour scale."""
    import cv2

    from fg_depth_core.visualize import colorize_depth

    s = dataset[0]
    with torch.no_grad():
        depth = net.predict(s["left"][None])[0, 0].numpy()
        ref = teacher_depth(teacher.flow(s["left"][None], s["right"][None], doffs=float(s["doffs"])), s)
    # The colour scale spans the scene's depths (the teacher's 5th to 95th percentile), not the eval range.
    lo, hi = (float(np.nanpercentile(ref, q)) for q in (5, 95))
    left = (s["left"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    panel = np.hstack([left, colorize_depth(depth, lo, hi), colorize_depth(ref, lo, hi)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def train_and_judge(args: argparse.Namespace, out: Path) -> Dict[str, Any]:
    from fg_depth_core.cli import main as cli_main
    from fg_depth_core.data.factory import build_dataset
    from fg_depth_core.model import build_depthnet
    from fg_depth_core.model.checkpoint import load_model
    from fg_depth_core.teachers import build_teacher
    from fg_depth_core.train.trainer import BAG_FRAMES_DIR

    run = out / "run"
    argv = [
        "train", "--bag", str(args.bag), "--left", args.left, "--right", args.right,
        "--config", str(ROOT / "config" / "train_bag.yaml"), "--out", str(run),
        "--set", f"data.width={args.width}", "--set", f"data.height={args.height}",
        "--set", f"train.batch_size={args.batch_size}", "--set", f"train.learning_rate={args.lr}",
        "--set", f"train.max_steps={args.steps}",
        "--set", f"train.checkpoint_every={max(1, args.steps // 4)}",
        "--set", f"data.bag.stride={args.stride}", "--set", "train.device=cpu",
    ]  # fmt: skip
    if (run / "last.pt").exists():
        argv.append("--resume")
    start, load_before = time.time(), os.getloadavg()[0]
    if cli_main(argv) != 0:
        raise SystemExit("bag_euroc: training failed")
    train_s = time.time() - start
    # Other jobs on the machine slow training down; the load average says how busy it was.
    load = (load_before, os.getloadavg()[0])
    net, cfg, state = load_model(run / "last.pt")
    val = build_dataset(cfg.data, "val", path=cfg.data.path, work_dir=str(run / BAG_FRAMES_DIR))
    teacher = build_teacher(dataclasses.replace(cfg.teacher, cache_dir=""))
    torch.manual_seed(cfg.train.seed)
    untrained = build_depthnet(cfg.model, load_weights=False).eval()
    picture(net, val, teacher, cfg, out / "held_out_depth.jpg")
    train_set = build_dataset(cfg.data, "train", path=cfg.data.path, work_dir=str(run / BAG_FRAMES_DIR))
    return {
        "train_pairs": len(train_set),
        "val_pairs": len(val),
        "steps": int(state["step"]),
        "train_s": train_s,
        "best": state.get("best"),
        "untrained": teacher_agreement(untrained, val, teacher, cfg),
        "trained": teacher_agreement(net, val, teacher, cfg),
        "load_average": load,
        "stride": cfg.data.bag.stride,
        "teacher": cfg.teacher.method,
        "argv": argv,
    }


# ------------------------------------------------------------------------------------------ report


def section(args: argparse.Namespace, rect: Dict[str, Dict[str, float]], run: Dict[str, Any], argv) -> str:
    raw, rec = rect["raw"], rect["rectified"]
    u, t = run["untrained"], run["trained"]
    best = run["best"] or {}
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python bench/bag_euroc.py {' '.join(argv)}` ({time.strftime('%Y-%m-%d')}).",
        f"Machine: {machine_description()}.",
        f"Bag: {args.bag} ({args.left} + {args.right}).",
        "",
        f"Rectification ({rec['description']}), measured on SIFT matches that fit the epipolar geometry "
        f"(RANSAC, {RANSAC_PX:g} px) in every {args.every}-th pair:",
        "",
        "| images | pairs | matches | median vertical offset (px) | 90th percentile (px) | within 1 px |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in (("raw (as recorded)", raw), ("rectified by fg-depth", rec)):
        lines.append(
            f"| {name} | {s['pairs']} | {s['matches']} | {s['median_px']:.3f} | {s['p90_px']:.3f} | "
            f"{s['within_1px']:.1%} |"
        )
    lines += [
        "",
        f"Training: `fg-depth train --bag` with config/train_bag.yaml at {args.width}x{args.height}, "
        f"batch {args.batch_size}, lr {args.lr:g}, {run['steps']} steps on the CPU in "
        f"{run['train_s'] / 60:.1f} min ({run['train_pairs']} training and {run['val_pairs']} held-out "
        f"pairs at stride {run['stride']}; teacher {run['teacher']}; 1-minute load average "
        f"{run['load_average'][0]:.1f} before and {run['load_average'][1]:.1f} after training).",
        f"Best validation ({best.get('metric', '?')}): {best.get('value', float('nan')):.4f} at step "
        f"{best.get('step', '?')}.",
        "The bag has no depth ground truth. Agreement of the network's depth with the SGBM teacher's stereo "
        "depth on the held-out frames, where the teacher is valid:",
        "",
        "| network | AbsRel vs teacher | delta < 1.25 vs teacher | pixels |",
        "|---|---|---|---|",
        f"| untrained (step 0) | {u['abs_rel']:.4f} | {u['a1']:.4f} | {u['pixels']} |",
        f"| after {run['steps']} steps | {t['abs_rel']:.4f} | {t['a1']:.4f} | {t['pixels']} |",
        "",
        "This shows that the pipeline learns metric depth from the robot's own recording. It is not an "
        "accuracy figure: the teacher is the reference, and a short CPU run is far from converged.",
        "",
        f"![raw (top) and rectified (bottom) pair, rows every 40 px]({FIGURES['rectification.jpg']})",
        "",
        f"![held-out frame: left view, network depth, teacher depth]({FIGURES['held_out_depth.jpg']})",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rect = rectification_quality(args, out)
    run = train_and_judge(args, out)
    (out / "bag_euroc.json").write_text(json.dumps({"rectification": rect, "training": run}, indent=1) + "\n")
    text = section(args, rect, run, argv)
    print(text)
    if not args.no_write:
        path = Path(args.results)
        write_section(path, SECTION, text)
        import shutil

        for name, link in FIGURES.items():
            target = Path(args.figures) / Path(link).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / name, target)
        print(f"bag_euroc: section written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
