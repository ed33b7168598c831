#!/usr/bin/env python3
"""The paper's ablation on the built-in world over paired seeds: train each row (a loss preset, or a preset
with extra settings) with the same budget, evaluate each on the world's held-out test split, and write the
table of mean ± sd per row, with the paired difference from the baseline, into docs/RESULTS.md.

    .venv/bin/python bench/ablation.py --seeds 5 --presets baseline fgdepth \
        --variant fgdepth_md2 fgdepth loss.dr_units=monodepth2        # a row with extra settings
    .venv/bin/python bench/ablation.py --steps 4 --train-frames 8 --test-frames 4 --results /tmp/r.md  # smoke

Paired seeds: seed s renders its own world (data.synth.seed = s) into OUT/seed<s>/world and fills the teacher
cache there once; every row of that seed trains on that world from the same initial weights (train.seed = s;
the trainer seeds the network's initialisation right before building it) in a fresh process (``fg-depth
train``) into OUT/seed<s>/<row>, and its last.pt is scored by ``fg-depth eval`` (the checkpoint's eval
protocol: [1e-3, 80] m, no Garg crop, no median scaling). A row of a seed differs from another only by its
loss (and its extra settings), so the difference of two rows on one seed is free of the seed's luck in
world and initialisation, and the spread of those differences over seeds gives their interval
(tools/paired_stats.py). OUT/ablation.json holds every run's metrics as soon as it is done; --resume reuses
them. --jobs 2 runs two trainings at once, each with its share of the cores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands import add_set_argument  # noqa: E402
from fg_depth_core.config import LOSS_PRESETS, PAPER_PRESETS, load_config  # noqa: E402
from tools.ablation_report import seeds_report, verdict  # noqa: E402
from tools.isolated import load_average, load_phrase  # noqa: E402
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## Ablation on the built-in world"
BASE_CONFIG = ROOT / "config" / "train_synth.yaml"
PRESETS = tuple(LOSS_PRESETS)  # the paper's five in its order, then our extensions
RESULTS_JSON = "ablation.json"
#: A row of the table: its name, the loss preset it trains, and extra ``--set`` overrides.
Row = Tuple[str, str, Tuple[str, ...]]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train and evaluate FG-Depth loss presets on the built-in world over paired seeds; write "
        "the table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=str(ROOT / "outputs" / "ablation"), help="work folder (runs, worlds)")
    p.add_argument(
        "--presets",
        nargs="*",
        default=list(PAPER_PRESETS),
        choices=PRESETS,
        help="presets to run (default: the paper's five)",
    )
    p.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar="NAME PRESET KEY=VALUE",
        help="an extra row: NAME, the PRESET it trains and the settings it adds (repeatable)",
    )
    p.add_argument("--steps", type=int, default=150, help="optimiser steps per run")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    p.add_argument("--width", type=int, default=256, help="network input width (multiple of 32)")
    p.add_argument("--height", type=int, default=96, help="network input height (multiple of 32)")
    p.add_argument("--train-frames", type=int, default=120, help="training pairs of each world")
    p.add_argument("--val-frames", type=int, default=8, help="validation pairs (checked once, at the end)")
    p.add_argument("--test-frames", type=int, default=40, help="held-out test pairs that are scored")
    p.add_argument("--learning-rate", type=float, default=2e-4, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="the first seed (world and training)")
    p.add_argument("--seeds", type=int, default=1, help="number of paired seeds: --seed, --seed + 1, ...")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once (each gets cores / jobs threads)")
    p.add_argument("--resume", action="store_true", help="reuse the runs OUT/ablation.json already holds")
    add_set_argument(p, "extra config override for every run (as fg-depth train --set)")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    return p.parse_args(argv)


def table_rows(args: argparse.Namespace) -> List[Row]:
    """The presets, then the variants, as (name, preset, extra overrides); names must be unique."""
    rows: List[Row] = [(p, p, ()) for p in args.presets]
    for item in args.variant:
        if len(item) < 2 or item[1] not in LOSS_PRESETS:
            sys.exit(
                f"ablation: --variant {' '.join(item)}: expected NAME PRESET [KEY=VALUE ...] with PRESET one "
                f"of {list(LOSS_PRESETS)}"
            )
        rows.append((item[0], item[1], tuple(item[2:])))
    names = [r[0] for r in rows]
    if not rows or len(set(names)) != len(names):
        sys.exit(f"ablation: expected at least one row and unique names, got {names}")
    return rows


def threads_per_job(jobs: int) -> int:
    """CPU threads of each of ``jobs`` concurrent trainings: an equal share of the usable cores."""
    from fg_depth_core.commands.bench import usable_cores

    return max(1, usable_cores() // max(1, jobs))


def config_overrides(args: argparse.Namespace, seed_dir: Path, seed: int) -> List[str]:
    """The ``--set`` overrides on top of config/train_synth.yaml that every row of ``seed`` shares."""
    steps = args.steps
    return [
        f"data.width={args.width}",
        f"data.height={args.height}",
        f"data.path={seed_dir / 'world'}",
        # Workers would only compete with the training threads for the same cores.
        "data.num_workers=0",
        f"data.synth.seed={seed}",
        f"data.synth.train_frames={args.train_frames}",
        f"data.synth.val_frames={args.val_frames}",
        f"data.synth.test_frames={args.test_frames}",
        f"teacher.cache_dir={seed_dir / 'teacher_cache'}",
        f"train.seed={seed}",
        f"train.max_steps={steps}",
        f"train.batch_size={args.batch_size}",
        f"train.learning_rate={args.learning_rate}",
        "train.device=cpu",
        f"train.cpu_threads={threads_per_job(args.jobs)}",
        f"train.checkpoint_every={steps}",
        f"train.val_every={steps}",
        f"train.log_every={max(1, steps // 10)}",
        "train.image_every=0",
        *args.overrides,
    ]


def prepare(overrides: List[str], seed_dir: Path) -> float:
    """Render the seed's world and fill its teacher cache (in this process); returns seconds."""
    from fg_depth_core.data.factory import build_dataset
    from fg_depth_core.train.trainer import Trainer

    start = time.time()
    cfg = load_config(BASE_CONFIG, overrides + ["loss.preset=fgdepth"])
    prep_dir = seed_dir / "prepare"
    shutil.rmtree(prep_dir, ignore_errors=True)
    # Building a Trainer renders train/val and computes the teacher for them, exactly as training will.
    Trainer(cfg, prep_dir, progress=True).close()
    build_dataset(cfg.data, "test", path=cfg.data.path)
    shutil.rmtree(prep_dir, ignore_errors=True)
    return time.time() - start


def run_cli(argv: List[str], log: Path, threads: int, echo: bool) -> float:
    """Run ``python -m fg_depth_core ARGV`` with its output in ``log`` (and echoed when ``echo``) and at most
    ``threads`` OpenMP threads; returns seconds."""
    cmd = [sys.executable, "-m", "fg_depth_core", *argv]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    if echo:
        print("$ " + " ".join(shlex.quote(c) for c in cmd[1:]), flush=True)
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            if echo:
                # A progress bar arrives as one line of \r-separated updates: echo only its final state.
                sys.stdout.write("    " + line.rsplit("\r", 1)[-1])
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"ablation: `{' '.join(argv[:1])}` failed with status {code}; see {log}")
    return time.time() - start


def run_row(row: Row, overrides: List[str], seed_dir: Path, threads: int, echo: bool) -> Dict[str, float]:
    """Train ``row`` from scratch into SEED_DIR/<name>, evaluate its last.pt; metrics plus timings."""
    name, preset, extra = row
    run_dir = seed_dir / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    sets: List[str] = []
    for item in overrides + [f"loss.preset={preset}", *extra]:
        sets += ["--set", item]
    train_s = run_cli(
        ["train", "--config", str(BASE_CONFIG), "--out", str(run_dir), "--no-progress", *sets],
        run_dir / "train.log",
        threads,
        echo,
    )
    metrics_path = run_dir / "metrics.json"
    eval_s = run_cli(
        [
            "eval",
            "--checkpoint",
            str(run_dir / "last.pt"),
            "--data",
            "synth",
            "--data-path",
            str(seed_dir / "world"),
            "--device",
            "cpu",
            "--num-workers",
            "0",
            "--json",
            str(metrics_path),
        ],
        run_dir / "eval.log",
        threads,
        echo,
    )
    metrics = json.loads(metrics_path.read_text())
    return {**metrics, "train_s": train_s, "eval_s": eval_s}


def section(
    args: argparse.Namespace,
    cfg: Any,
    rows: Sequence[Row],
    results: Dict[str, Dict[int, Dict[str, float]]],
    prep_s: float,
    total_s: float,
    argv: Sequence[str],
    load: Tuple[Optional[float], Optional[float]] = (None, None),
) -> str:
    """The RESULTS.md section: command, machine, date, budget, the tables over seeds, the verdicts."""
    names = [r[0] for r in rows]
    report = seeds_report(results, names)
    seeds = report["seeds"]
    command = " ".join(["python", "bench/ablation.py", *map(shlex.quote, argv)])
    runs = [results[n][s] for n in names for s in seeds]
    frames = sorted({int(m["frames"]) for m in runs})
    train_min = sum(m["train_s"] for m in runs) / 60
    variants = [f"{name} = {preset} with {' '.join(extra)}" for name, preset, extra in rows if extra]
    lines = [
        SECTION,
        "",
        "The paper's ablation (docs/METHOD.md, \"Ablation presets\") on the built-in stereo world over "
        "paired seeds: seed s renders its own world and initialises the network from s, and every row of "
        "a seed trains on that world from those weights with the same budget and teacher output, then is "
        "scored on the world's held-out test split (scenes disjoint from training). Cells are mean ± "
        "sample standard deviation over the seeds.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}; {threads_per_job(args.jobs)} torch thread(s) per training, "
        f"{args.jobs} training(s) at once"
        + load_phrase(load, "the paired differences compare runs of one seed, not their times"),
        f"- Date: {datetime.date.today().isoformat()}; wall time {total_s / 60:.1f} min (worlds + teacher "
        f"caches {prep_s / 60:.1f} min; training {train_min:.1f} min summed over {len(runs)} runs)",
        f"- Budget per run: {args.steps} steps of batch {args.batch_size} at {args.width}x{args.height}, "
        f"Adam lr {cfg.train.learning_rate:g}, {cfg.model.encoder} (encoder weights: "
        f"{cfg.model.encoder_weights}); "
        f"{cfg.data.synth.train_frames} training pairs of config/train_synth.yaml's world, teacher "
        f"{cfg.teacher.method} ({cfg.teacher.resolution} resolution); seeds {', '.join(map(str, seeds))}"
        + (f"; extra settings {' '.join(args.overrides)}" if args.overrides else ""),
        *([f"- Rows with extra settings: {'; '.join(variants)}"] if variants else []),
        f"- Evaluation: `fg-depth eval` on last.pt, {', '.join(map(str, frames))} test frames per seed, "
        f"ground truth at {cfg.data.synth.width}x{cfg.data.synth.height}, depths in [{cfg.eval.min_depth:g}, "
        f"{cfg.eval.max_depth:g}] m, Garg crop {'on' if cfg.eval.garg_crop else 'off (KITTI-specific)'}, "
        f"median scaling {'on' if cfg.eval.median_scaling else 'off'}.",
        "",
        *report["means"],
        "",
        "abs_rel of every run:",
        "",
        *report["per_seed"],
    ]
    if "differences" in report:
        lines += [
            "",
            "Paired differences from the baseline (row minus baseline on the same seed; negative abs_rel and "
            "rmse, positive a1 are better); the interval is mean ± t(0.975, n-1) · sd / sqrt(n) over the "
            "seeds, * where it excludes 0:",
            "",
            *report["differences"],
            "",
            *[f"- {v}" for v in report["verdicts"]],
        ]
    # A variant against the preset it modifies, paired the same way (what its extra settings change).
    if len(seeds) >= 2:
        lines += [
            f"- {verdict(results, name, preset, seeds)}"
            for name, preset, extra in rows
            if extra and preset in names and preset != "baseline"
        ]
    return "\n".join(lines) + "\n"


class Store:
    """OUT/ablation.json: every finished run's metrics by row and seed, written after each run."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: Dict[str, Dict[str, Dict[str, float]]] = {}
        if resume and path.is_file():
            self.data = json.loads(path.read_text()).get("runs", {})

    def has(self, name: str, seed: int) -> bool:
        return str(seed) in self.data.get(name, {})

    def add(self, name: str, seed: int, metrics: Dict[str, float], meta: Dict[str, Any]) -> None:
        with self.lock:
            self.data.setdefault(name, {})[str(seed)] = metrics
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"meta": meta, "runs": self.data}, indent=1) + "\n")
            tmp.replace(self.path)

    def results(self) -> Dict[str, Dict[int, Dict[str, float]]]:
        return {name: {int(s): m for s, m in runs.items()} for name, runs in self.data.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.seeds < 1 or args.jobs < 1:
        sys.exit("ablation: --steps, --batch-size, --seeds and --jobs must be >= 1")
    rows = table_rows(args)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.seeds))
    overrides = {s: config_overrides(args, out / f"seed{s}", s) for s in seeds}
    for _, preset, extra in rows:  # fail early on a bad --set or --variant
        load_config(BASE_CONFIG, overrides[seeds[0]] + [f"loss.preset={preset}", *extra])
    cfg = load_config(BASE_CONFIG, overrides[seeds[0]])
    store = Store(out / RESULTS_JSON, args.resume)
    meta = {"argv": argv, "rows": [list(r[:2]) + [list(r[2])] for r in rows], "seeds": seeds}
    start = time.time()
    load_start = load_average()
    print(
        f"ablation: rows {', '.join(r[0] for r in rows)}; seeds {seeds}; {args.steps} steps each; "
        f"{args.jobs} at once; work folder {out}",
        flush=True,
    )
    prep_s = 0.0
    for seed in seeds:
        if all(store.has(r[0], seed) for r in rows):
            continue
        print(f"== seed {seed}: world and teacher cache", flush=True)
        prep_s += prepare(overrides[seed], out / f"seed{seed}")
    tasks = [(seed, row) for seed in seeds for row in rows if not store.has(row[0], seed)]
    threads = threads_per_job(args.jobs)
    done = 0

    def work(seed: int, row: Row) -> Tuple[int, Row, Dict[str, float]]:
        return seed, row, run_row(row, overrides[seed], out / f"seed{seed}", threads, echo=args.jobs == 1)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(work, seed, row) for seed, row in tasks]
        for future in concurrent.futures.as_completed(futures):
            seed, row, m = future.result()
            store.add(row[0], seed, m, meta)
            done += 1
            spent = time.time() - start
            projected = prep_s + (spent - prep_s) * len(tasks) / done
            print(
                f"   seed {seed} {row[0]}: abs_rel {m['abs_rel']:.4f}, rmse {m['rmse']:.3f}, "
                f"a1 {m['a1']:.3f} ({m['train_s']:.0f} s train, {m['eval_s']:.0f} s eval); "
                f"{done}/{len(tasks)} runs, {spent / 60:.1f} min so far, about {projected / 60:.1f} min "
                "in all",
                flush=True,
            )
    total_s = time.time() - start
    text = section(args, cfg, rows, store.results(), prep_s, total_s, argv, (load_start, load_average()))
    (out / "section.md").write_text(text)
    print()
    print(text)
    if not args.no_write:
        path = Path(args.results)
        write_section(path, SECTION, text)
        print(f"ablation: table written to {path} ({total_s / 60:.1f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
