"""The tables of bench/ablation.py over seeds: mean ± sd of each metric per row (a loss preset, or a
preset with extra settings), the per-seed abs_rel, and the paired difference of each row from the baseline
with a t-based 95 % interval. Paired: every row of a seed trains on the same world from the same weights."""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence

from fg_depth_core.metrics import METRIC_NAMES
from tools.paired_stats import mean_sd, paired_difference

#: The metrics where higher is better (the threshold accuracies); lower is better for the errors.
ACCURACIES = ("a1", "a2", "a3")
#: Metrics of the paired-difference table.
DIFFERENCE_METRICS = ("abs_rel", "rmse", "a1")
#: Interval level of the paired differences.
LEVEL = 0.95

#: results[row][seed] = that run's metrics (the seven names of METRIC_NAMES, at least).
Results = Mapping[str, Mapping[int, Mapping[str, float]]]


def complete_seeds(results: Results, rows: Sequence[str]) -> List[int]:
    """The seeds for which every row of ``rows`` has a result, in order."""
    seeds = set.intersection(*(set(results.get(r, {})) for r in rows)) if rows else set()
    return sorted(seeds)


def _cell(values: Sequence[float]) -> str:
    mean, sd = mean_sd(values)
    return f"{mean:.4f}" if math.isnan(sd) else f"{mean:.4f} ± {sd:.4f}"


def mean_table(results: Results, rows: Sequence[str], seeds: Sequence[int]) -> List[str]:
    """``| preset | abs_rel | ... |`` with "mean ± sd" over ``seeds`` in every cell."""
    lines = ["| preset | " + " | ".join(METRIC_NAMES) + " |", "|---" * (len(METRIC_NAMES) + 1) + "|"]
    for row in rows:
        cells = [_cell([results[row][s][k] for s in seeds]) for k in METRIC_NAMES]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def seed_table(
    results: Results, rows: Sequence[str], seeds: Sequence[int], metric: str = "abs_rel"
) -> List[str]:
    """``metric`` of every run: one row per preset, one column per seed."""
    lines = [
        f"| {metric} | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---" * (len(seeds) + 1) + "|",
    ]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(f"{results[row][s][metric]:.4f}" for s in seeds) + " |")
    return lines


def better(metric: str, difference: float) -> bool:
    """Whether a difference row - baseline of ``metric`` is an improvement."""
    return difference > 0 if metric in ACCURACIES else difference < 0


def difference_table(
    results: Results, rows: Sequence[str], seeds: Sequence[int], reference: str
) -> List[str]:
    """Paired differences row - ``reference`` of DIFFERENCE_METRICS: mean [95 % interval] and the seeds on
    which the row is better."""
    head = [f"{m}: mean [{LEVEL:.0%} interval]" for m in DIFFERENCE_METRICS]
    lines = [
        "| preset - " + reference + " | " + " | ".join(head) + " | seeds better (abs_rel) |",
        "|---" * (len(head) + 2) + "|",
    ]
    for row in rows:
        if row == reference:
            continue
        cells = []
        for m in DIFFERENCE_METRICS:
            d = paired_difference(
                [results[reference][s][m] for s in seeds], [results[row][s][m] for s in seeds]
            )
            mark = " *" if d.excludes_zero else ""
            cells.append(f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]{mark}")
        wins = sum(
            better("abs_rel", results[row][s]["abs_rel"] - results[reference][s]["abs_rel"]) for s in seeds
        )
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {wins} of {len(seeds)} |")
    return lines


def verdict(results: Results, row: str, reference: str, seeds: Sequence[int]) -> str:
    """One sentence on ``row`` against ``reference`` in abs_rel over ``seeds``."""
    ref = [results[reference][s]["abs_rel"] for s in seeds]
    d = paired_difference(ref, [results[row][s]["abs_rel"] for s in seeds])
    mean_ref = sum(ref) / len(ref)
    relative = 100 * d.mean / mean_ref
    if d.excludes_zero:
        outcome = "better than" if better("abs_rel", d.mean) else "worse than"
        head = f"{row} is {outcome} {reference}"
    else:
        head = f"{row} is not distinguishable from {reference}"
    return (
        f"{head} in abs_rel over {len(seeds)} paired seeds: difference {d.mean:+.4f} ({relative:+.1f} % of "
        f"{reference}'s mean), {LEVEL:.0%} interval [{d.low:+.4f}, {d.high:+.4f}]"
        + (" (excludes 0)." if d.excludes_zero else " (includes 0).")
    )


def seeds_report(results: Results, rows: Sequence[str], reference: str = "baseline") -> Dict[str, object]:
    """Everything a RESULTS.md section needs: the complete seeds, the three tables, the verdicts."""
    seeds = complete_seeds(results, rows)
    if not seeds:
        raise ValueError(f"no seed has a result for every row of {list(rows)}")
    out: Dict[str, object] = {
        "seeds": seeds,
        "means": mean_table(results, rows, seeds),
        "per_seed": seed_table(results, rows, seeds),
    }
    if reference in rows and len(seeds) >= 2:
        out["differences"] = difference_table(results, rows, seeds, reference)
        out["verdicts"] = [verdict(results, r, reference, seeds) for r in rows if r != reference]
    return out
