#!/usr/bin/env python3
"""The paper's ablation on the built-in world: train each loss preset with the same budget and seed, evaluate
each on the world's held-out test split, and write the table into docs/RESULTS.md.

    .venv/bin/python bench/ablation.py                      # the full benchmark (sized for ~20 min, 2 cores)
    .venv/bin/python bench/ablation.py --steps 4 --train-frames 8 --test-frames 4 --results /tmp/r.md  # smoke

The world (config/train_synth.yaml's camera, rendered at 640x192) and the teacher's cache are prepared once in
OUT/world and OUT/teacher_cache and shared by all presets, so every preset sees the same pairs with the same
teacher output; each preset then trains from scratch in a fresh process (``fg-depth train``) into OUT/<preset>
and its last.pt is scored by ``fg-depth eval`` (the checkpoint's eval protocol: [1e-3, 80] m, no Garg crop,
no median scaling). Only training steps differ between presets' wall times: rendering and the teacher are
paid before the first one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands import add_set_argument  # noqa: E402
from fg_depth_core.config import LOSS_PRESETS, PAPER_PRESETS, load_config  # noqa: E402
from fg_depth_core.metrics import METRIC_NAMES  # noqa: E402
from tools.results import RESULTS_MD, write_section  # noqa: E402

if TYPE_CHECKING:
    from fg_depth_core.config import Config

SECTION = "## Ablation on the built-in world"
BASE_CONFIG = ROOT / "config" / "train_synth.yaml"
PRESETS = tuple(LOSS_PRESETS)  # the paper's five in its order, then our extensions
#: The metrics where higher is better (the threshold accuracies); lower is better for the others (errors).
ACCURACIES = ("a1", "a2", "a3")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train and evaluate each FG-Depth loss preset on the built-in world; write the table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=str(ROOT / "outputs" / "ablation"), help="work folder (runs, world)")
    p.add_argument(
        "--presets",
        nargs="+",
        default=list(PAPER_PRESETS),
        choices=PRESETS,
        help="presets to run (default: the paper's five)",
    )
    p.add_argument("--steps", type=int, default=150, help="optimiser steps per preset")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    p.add_argument("--width", type=int, default=256, help="network input width (multiple of 32)")
    p.add_argument("--height", type=int, default=96, help="network input height (multiple of 32)")
    p.add_argument("--train-frames", type=int, default=120, help="training pairs of the world")
    p.add_argument("--val-frames", type=int, default=8, help="validation pairs (checked once, at the end)")
    p.add_argument("--test-frames", type=int, default=40, help="held-out test pairs that are scored")
    p.add_argument("--learning-rate", type=float, default=2e-4, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the world and of training")
    add_set_argument(p, "extra config override for every preset (as fg-depth train --set)")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    return p.parse_args(argv)


def config_overrides(args: argparse.Namespace, out: Path) -> List[str]:
    """The ``--set`` overrides on top of config/train_synth.yaml that every preset shares (the budget)."""
    steps = args.steps
    return [
        f"data.width={args.width}",
        f"data.height={args.height}",
        f"data.path={out / 'world'}",
        # Workers would only compete with the two training threads for the same cores.
        "data.num_workers=0",
        f"data.synth.seed={args.seed}",
        f"data.synth.train_frames={args.train_frames}",
        f"data.synth.val_frames={args.val_frames}",
        f"data.synth.test_frames={args.test_frames}",
        f"teacher.cache_dir={out / 'teacher_cache'}",
        f"train.seed={args.seed}",
        f"train.max_steps={steps}",
        f"train.batch_size={args.batch_size}",
        f"train.learning_rate={args.learning_rate}",
        "train.device=cpu",
        f"train.checkpoint_every={steps}",
        f"train.val_every={steps}",
        f"train.log_every={max(1, steps // 10)}",
        "train.image_every=0",
        *args.overrides,
    ]


def prepare(overrides: List[str], out: Path) -> float:
    """Render the world's splits and fill the teacher cache once (in this process); returns seconds."""
    from fg_depth_core.data.factory import build_dataset
    from fg_depth_core.train.trainer import Trainer

    start = time.time()
    cfg = load_config(BASE_CONFIG, overrides + ["loss.preset=fgdepth"])
    prep_dir = out / "prepare"
    shutil.rmtree(prep_dir, ignore_errors=True)
    # Building a Trainer renders train/val and computes the teacher for them, exactly as training will.
    Trainer(cfg, prep_dir, progress=True).close()
    build_dataset(cfg.data, "test", path=cfg.data.path)
    shutil.rmtree(prep_dir, ignore_errors=True)
    return time.time() - start


def run_cli(argv: List[str], log: Path) -> float:
    """Run ``python -m fg_depth_core ARGV`` with its output teed to ``log``; returns seconds."""
    cmd = [sys.executable, "-m", "fg_depth_core", *argv]
    print("$ " + " ".join(shlex.quote(c) for c in cmd[1:]), flush=True)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            # A progress bar arrives as one line of \r-separated updates: echo only its final state.
            sys.stdout.write("    " + line.rsplit("\r", 1)[-1])
        code = proc.wait()
    if code != 0:
        sys.exit(f"ablation: `{' '.join(argv[:1])}` failed with status {code}; see {log}")
    return time.time() - start


def run_preset(preset: str, overrides: List[str], out: Path) -> Dict[str, float]:
    """Train ``preset`` from scratch into OUT/<preset>, evaluate its last.pt; metrics plus timings."""
    run_dir = out / preset
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    sets: List[str] = []
    for item in overrides + [f"loss.preset={preset}"]:
        sets += ["--set", item]
    train_s = run_cli(
        ["train", "--config", str(BASE_CONFIG), "--out", str(run_dir), "--no-progress", *sets],
        run_dir / "train.log",
    )
    metrics_path = run_dir / "metrics.json"
    world = next(s.split("=", 1)[1] for s in overrides if s.startswith("data.path="))
    eval_s = run_cli(
        [
            "eval",
            "--checkpoint",
            str(run_dir / "last.pt"),
            "--data",
            "synth",
            "--data-path",
            world,
            "--device",
            "cpu",
            "--num-workers",
            "0",
            "--json",
            str(metrics_path),
        ],
        run_dir / "eval.log",
    )
    metrics = json.loads(metrics_path.read_text())
    return {**metrics, "train_s": train_s, "eval_s": eval_s}


def machine() -> str:
    """nproc, CPU model, Python and torch versions."""
    import torch

    from fg_depth_core.commands.bench import cpu_model, usable_cores

    return (
        f"{usable_cores()} CPU cores (nproc), {cpu_model()}; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


def table(results: Dict[str, Dict[str, float]]) -> List[str]:
    """The markdown table: one row per preset, the seven metrics."""
    lines = ["| preset | " + " | ".join(METRIC_NAMES) + " |", "|---" * (len(METRIC_NAMES) + 1) + "|"]
    for preset, m in results.items():
        lines.append(f"| {preset} | " + " | ".join(f"{m[k]:.4f}" for k in METRIC_NAMES) + " |")
    return lines


def section(
    args: argparse.Namespace,
    cfg: "Config",
    results: Dict[str, Dict[str, float]],
    prep_s: float,
    total_s: float,
    argv: Sequence[str],
) -> str:
    """The RESULTS.md section: command, machine, date, budget, table, timings and the headline comparison."""
    command = " ".join(["python", "bench/ablation.py", *map(shlex.quote, argv)])
    frames = {m["frames"] for m in results.values()}
    lines = [
        SECTION,
        "",
        "The paper's ablation (docs/METHOD.md, \"Ablation presets\") reproduced on the built-in stereo "
        "world: every preset trains from scratch with the same budget, data, teacher output and seed, and is "
        "scored on the world's held-out test split (scenes with seeds disjoint from training).",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine()}",
        f"- Date: {datetime.date.today().isoformat()}; wall time {total_s / 60:.1f} min "
        f"(world + teacher cache {prep_s:.0f} s, then per preset: "
        + ", ".join(f"{p} {m['train_s']:.0f}+{m['eval_s']:.0f} s" for p, m in results.items())
        + " train+eval)",
        f"- Budget per preset: {args.steps} steps of batch {args.batch_size} at {args.width}x{args.height}, "
        f"Adam lr {cfg.train.learning_rate:g}, {cfg.model.encoder} (encoder weights: "
        f"{cfg.model.encoder_weights}), seed {args.seed}; {cfg.data.synth.train_frames} training pairs of "
        f"config/train_synth.yaml's world, teacher {cfg.teacher.method}"
        + (f"; extra settings {' '.join(args.overrides)}" if args.overrides else ""),
        f"- Evaluation: `fg-depth eval` on last.pt, {', '.join(str(f) for f in sorted(frames))} test frames, "
        f"ground truth at {cfg.data.synth.width}x{cfg.data.synth.height}, depths in [{cfg.eval.min_depth:g}, "
        f"{cfg.eval.max_depth:g}] m, Garg crop {'on' if cfg.eval.garg_crop else 'off (KITTI-specific)'}, "
        f"median scaling {'on' if cfg.eval.median_scaling else 'off'}.",
        "",
        *table(results),
    ]
    if "baseline" in results and "fgdepth" in results:
        b, f = results["baseline"], results["fgdepth"]
        change = {k: f[k] - b[k] for k in METRIC_NAMES}
        better = [k for k in METRIC_NAMES if (change[k] > 0) == (k in ACCURACIES) and change[k] != 0]
        lines += [
            "",
            f"fgdepth vs baseline: abs_rel {b['abs_rel']:.4f} -> {f['abs_rel']:.4f} "
            f"({100 * change['abs_rel'] / b['abs_rel']:+.1f}%), rmse {b['rmse']:.3f} -> {f['rmse']:.3f} m, "
            f"a1 {b['a1']:.3f} -> {f['a1']:.3f}; fgdepth is better on {len(better)} of 7 metrics.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        sys.exit("ablation: --steps and --batch-size must be >= 1")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    overrides = config_overrides(args, out)
    cfg = load_config(BASE_CONFIG, overrides)  # fails early on a bad --set
    start = time.time()
    print(
        f"ablation: presets {', '.join(args.presets)}; {args.steps} steps each; work folder {out}", flush=True
    )
    prep_s = prepare(overrides, out)
    results: Dict[str, Dict[str, float]] = {}
    for done, preset in enumerate(args.presets, 1):
        print(f"== {preset}", flush=True)
        results[preset] = run_preset(preset, overrides, out)
        m = results[preset]
        spent = time.time() - start
        projected = prep_s + (spent - prep_s) * len(args.presets) / done
        print(f"   {spent / 60:.1f} min so far, about {projected / 60:.1f} min in all", flush=True)
        print(
            f"   {preset}: abs_rel {m['abs_rel']:.4f}, rmse {m['rmse']:.3f}, a1 {m['a1']:.3f} "
            f"({m['train_s']:.0f} s train, {m['eval_s']:.0f} s eval)",
            flush=True,
        )
    total_s = time.time() - start
    (out / "ablation.json").write_text(json.dumps(results, indent=1) + "\n")
    text = section(args, cfg, results, prep_s, total_s, argv)
    print()
    print(text)
    if not args.no_write:
        path = Path(args.results)
        write_section(path, SECTION, text)
        print(f"ablation: table written to {path} ({total_s / 60:.1f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
