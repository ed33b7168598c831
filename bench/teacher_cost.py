#!/usr/bin/env python3
"""What the teacher costs per training pair at 640x192: SGBM, DIS (OpenCV's dense inverse search flow, the
dense teacher), RAFT small and RAFT large (random weights: none can be downloaded here, and the time does
not depend on them) computing both directions of a pair, as
filling the teacher cache does, and the cache's hit path that every later epoch takes; writes the "Teacher
cost per pair" section of docs/RESULTS.md.

    .venv/bin/python bench/teacher_cost.py                     # 5 rounds, a few minutes on 2 cores
    .venv/bin/python bench/teacher_cost.py --size 128x64 --rounds 1 --pairs 1 --results /tmp/r.md  # smoke

Each teacher runs in a fresh process per round (tools/isolated.py) on --pairs pairs of the built-in world's
train split rendered at the size, after one untimed pair; the time of a pair is ``teacher.stereo(left,
right)`` (left->right and right->left outputs) for a batch of one. The hit path is CachedTeacher.stereo on
pairs already in its cache: two .npz files read and turned into tensors. Settings: the default
configuration's teacher section (docs/CONFIG.md), on the CPU with the usable cores as threads.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands.bench import parse_size, usable_cores  # noqa: E402
from tools.isolated import describe_ratios, load_average, load_phrase, per_round_ratio, run_isolated  # noqa: E402
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## Teacher cost per pair"
#: Rows: (name, teacher method, cached).
ROWS = (
    ("SGBM", "sgbm", False),
    ("DIS (dense inverse search)", "dis", False),
    ("RAFT small (random weights)", "raft_small", False),
    ("RAFT large (random weights)", "raft_large", False),
    ("teacher cache hit (SGBM entries)", "sgbm", True),
)


def child(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One teacher in a fresh process: the median seconds of ``stereo`` per pair over ``pairs`` pairs after
    one untimed pair, and the share of valid pixels of its left->right output."""
    import torch

    from fg_depth_core.config import Config
    from fg_depth_core.data.world import render_frame, resize_synth
    from fg_depth_core.teachers import build_teacher

    torch.set_num_threads(int(spec["threads"]))
    cfg = Config()
    cfg.teacher.method = spec["method"]
    cfg.teacher.weights = "none"
    cfg.teacher.cache_dir = spec.get("cache_dir", "")
    teacher = build_teacher(cfg.teacher, "cpu", use_cache=bool(spec.get("cache_dir")))
    world = resize_synth(cfg.data.synth, int(spec["width"]), int(spec["height"]))

    def tensor(image: Any) -> Any:
        return torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255.0)

    pairs = [render_frame(world, "train", i) for i in range(int(spec["pairs"]) + 1)]
    views = [(tensor(p.left), tensor(p.right), float(p.rig.doffs)) for p in pairs]
    if spec.get("cache_dir"):
        for left, right, doffs in views:  # fill the cache: the timed calls below all hit it
            teacher.stereo(left, right, doffs)
    times, valid = [], []
    for i, (left, right, doffs) in enumerate(views):
        start = time.perf_counter()
        forward, _ = teacher.stereo(left, right, doffs)
        if i > 0:
            times.append(time.perf_counter() - start)
            valid.append(float(forward.valid.float().mean()))
    result = {"seconds": statistics.median(times), "valid": statistics.mean(valid)}
    if spec.get("cache_dir"):
        result["hits"] = int(teacher.hits)
    return result


def section(
    command: str,
    args: argparse.Namespace,
    threads: int,
    runs: Dict[str, List[Dict[str, Any]]],
    wall_s: float,
    load: Sequence[Optional[float]],
) -> str:
    """The RESULTS.md section: command, machine, time per pair per round, and ratios to SGBM."""
    from fg_depth_core.config import TeacherConfig

    sgbm, dis, raft = TeacherConfig().sgbm, TeacherConfig().dis, TeacherConfig().raft
    seconds = {name: [r.get("seconds") for r in rows] for name, rows in runs.items()}
    table = [
        "| teacher | seconds per pair, per round | median ms per pair | pairs per second | valid pixels | "
        "time relative to SGBM |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in runs.items():
        ok = [r for r in rows if "error" not in r]
        if not ok:
            table.append(f"| {name} | failed: {rows[-1]['error']} | | | | |")
            continue
        median = statistics.median(r["seconds"] for r in ok)
        relative = describe_ratios(per_round_ratio(seconds[name], seconds["SGBM"])) if name != "SGBM" else "1"
        per_round = ", ".join(f"{r['seconds']:.3f}" for r in ok)
        table.append(
            f"| {name} | {per_round} | {1e3 * median:.1f} | "
            f"{1 / median:.1f} | {100 * statistics.mean(r['valid'] for r in ok):.0f} % | {relative} |"
        )
    load_line = load_phrase(load, "the relative column compares within a round")
    lines = [
        SECTION,
        "",
        "What the teacher costs per training pair (both directions, as the cache is filled) and what a "
        "pair costs once cached; method in bench/teacher_cost.py. The cache is filled once per dataset and "
        "teacher setting, then every epoch reads it.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}",
        f"- Date: {datetime.date.today().isoformat()}; {args.rounds} rounds, each teacher in a fresh process "
        f"with {threads} threads on {args.pairs} pairs of the built-in world at {args.size} after one "
        f"untimed pair; wall time {wall_s / 60:.1f} min" + load_line,
        f"- Settings: the default configuration's teacher section (SGBM: {sgbm.num_disparities} disparities, "
        f"block {sgbm.block_size}, mode {sgbm.mode}; DIS: preset {dis.preset}, forward-backward threshold "
        f"{dis.fb_threshold:g} px; RAFT: {raft.num_flow_updates} flow updates, forward-backward threshold "
        f"{raft.fb_threshold:g} px, weights none: its valid share means nothing)",
        "",
        *table,
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="640x192", help="pair size WxH")
    p.add_argument("--rounds", type=int, default=5, help="rounds of every teacher")
    p.add_argument("--pairs", type=int, default=3, help="timed pairs per teacher and round")
    p.add_argument("--threads", type=int, default=0, help="threads; 0 = the usable cores")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = p.parse_args(argv)
    if min(args.rounds, args.pairs) < 1:
        sys.exit("teacher_cost: --rounds and --pairs must be >= 1")
    width, height = parse_size(args.size, "--size")
    threads = args.threads or usable_cores()
    load_before = load_average()
    started = time.time()
    runs: Dict[str, List[Dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="fg-depth-teacher-cost-") as tmp:
        for index in range(args.rounds):
            for name, method, cached in ROWS:
                spec = {"method": method, "width": width, "height": height, "pairs": args.pairs}
                spec["threads"] = threads
                if cached:
                    spec["cache_dir"] = str(Path(tmp) / f"cache_{index}")
                got = run_isolated("bench.teacher_cost", "child", spec)
                runs.setdefault(name, []).append(got)
                print(f"round {index + 1}: {name}: {got}", flush=True)
    command = " ".join(["python", "bench/teacher_cost.py", *map(shlex.quote, argv)])
    text = section(command, args, threads, runs, time.time() - started, (load_before, load_average()))
    print()
    print(text)
    if not args.no_write:
        write_section(Path(args.results), SECTION, text)
        print(f"teacher_cost: section written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
