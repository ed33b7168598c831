"""Measurements in fresh processes, one after another in rounds: what bench/ceiling.py, bench/runtimes.py and
bench/teacher_cost.py share.

A measurement is a function ``module.function(spec) -> dict`` (JSON in, JSON out) run by :func:`run_isolated`
in a fresh interpreter, so that no runtime's thread pool or allocator is warm from (or competing with) the
previous one, and with the BLAS/OpenMP thread counts of the environment set to ``spec["threads"]``. A
benchmark runs every measurement once per round; comparing two measurements of the same round (and taking the
median over rounds) keeps a shared machine's minute-to-minute speed out of the ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from fg_depth_core.commands.bench import child_result, load_average  # noqa: F401 (load_average: for the benches)
from tools.checkout import ROOT

_CHILD = (
    "import importlib, json, sys; sys.path[:0] = [sys.argv[3], sys.argv[5]]; "
    "print(json.dumps(getattr(importlib.import_module(sys.argv[1]), sys.argv[2])(json.loads(sys.argv[4]))))"
)


def median_seconds(run: Callable[[], Any], iterations: int, warmup: int) -> float:
    """Median wall time (seconds) of ``iterations`` calls of ``run`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_isolated(
    module: str, function: str, spec: Dict[str, Any], path: Union[str, Path] = ROOT
) -> Dict[str, Any]:
    """``module.function(spec)`` in a fresh interpreter (``path``, by default the repository root, first on
    its import path; thread counts of OpenMP, OpenBLAS and MKL set to ``spec["threads"]`` when given); a
    failure becomes {"error": its last line of output}."""
    env = dict(os.environ)
    if "threads" in spec:
        threads = str(int(spec["threads"]))
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, module, function, str(path), json.dumps(spec), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return child_result(done)


def per_round_ratio(
    numerator: Sequence[Optional[float]], denominator: Sequence[Optional[float]]
) -> List[float]:
    """numerator[i] / denominator[i] for the rounds where both were measured (None or 0: not measured)."""
    return [a / b for a, b in zip(numerator, denominator) if a and b]


def describe_ratios(ratios: Sequence[float]) -> str:
    """ "1.52x (median of 3 rounds, 1.40-1.61)"; "-" without rounds."""
    if not ratios:
        return "-"
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}x (1 round)"
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
    return f"{statistics.median(ratios):.2f}x (median of {len(ratios)} rounds, {spread})"


def load_phrase(load: Tuple[Optional[float], Optional[float]], advice: str) -> str:
    """``"; 1-minute load average B before, A after"`` for a section's date line ("" where the OS has no
    load average), saying that other jobs shared the CPU, and ``advice`` on reading the rows, only where
    the load rose above the core count."""
    before, after = load
    if before is None or after is None:
        return ""
    text = f"; 1-minute load average {before:.2f} before, {after:.2f} after"
    cores = os.cpu_count() or 1
    if max(before, after) > cores:
        text += f" (above the {cores} cores: other jobs shared the CPU; {advice})"
    return text
