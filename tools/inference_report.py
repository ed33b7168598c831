"""The "Inference on CPU" / "Inference on GPU" sections of docs/RESULTS.md, written by bench/inference.py from
a ``fg-depth bench`` measurement (:class:`~fg_depth_core.commands.bench.BenchRun`), with the verdicts on the
targets of issue 4."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from fg_depth_core.commands.bench import BenchRun, parse_size, table
from tools.results import machine_description, write_section

CPU_SECTION = "## Inference on CPU"
GPU_SECTION = "## Inference on GPU"
#: Targets of issue 4 on the 2-core CPU at 640x192.
ORT_SPEEDUP_TARGET = 1.8
PRE_POST_SHARE_TARGET = 0.10


def verdicts(rows: List[Dict[str, Any]]) -> List[str]:
    """The issue's CPU targets, per network size where both rows exist."""
    ok = [r for r in rows if "error" not in r and r["device"] == "cpu"]
    lines = []
    for network in sorted({r["network"] for r in ok}, key=lambda s: parse_size(s, "network")):
        by = {r["backend"]: r for r in ok if r["network"] == network}
        if "torch" in by and "onnxruntime" in by:
            ratio = by["onnxruntime"]["fps"] / by["torch"]["fps"]
            met = "met" if ratio >= ORT_SPEEDUP_TARGET else "NOT met"
            lines.append(
                f"- {network}: ONNX Runtime runs {ratio:.2f}x the throughput of eager PyTorch (target >= "
                f"{ORT_SPEEDUP_TARGET}x: {met})."
            )
        shares = ", ".join(
            f"{b} {100 * (r['pre_ms'] + r['post_ms']) / r['forward_ms']:.1f}%" for b, r in sorted(by.items())
        )
        worst = max((r["pre_ms"] + r["post_ms"]) / r["forward_ms"] for r in by.values())
        met = "met" if worst < PRE_POST_SHARE_TARGET else "NOT met"
        lines.append(
            f"- {network}: pre+post-processing is {shares} of the forward pass (target < "
            f"{100 * PRE_POST_SHARE_TARGET:.0f}%: {met})."
        )
    return lines


def section(title: str, rows: List[Dict[str, Any]], command: str, notes: List[str]) -> str:
    """One section: the method, the command, ``notes`` (one bullet each), the table and the verdicts."""
    lines = [
        title,
        "",
        "DepthEstimator.predict per frame, batch 1: pre-processing (resize of the camera image to the "
        "network input, float NCHW), the backend's forward pass, post-processing (focal scaling, resize back "
        "to the image), each timed separately; every row in a fresh process (peak RSS = VmHWM of that "
        "process).",
        "",
        f"- Command: `{command}`",
        *[f"- {n}" for n in notes],
        "",
        *table(rows),
    ]
    checks = verdicts(rows)
    if checks:
        lines += ["", *checks]
    return "\n".join(lines) + "\n"


def notes(bench: BenchRun) -> List[str]:
    """The bullets under the command: machine, date and settings, model, load average."""
    lines = [
        f"Machine: {machine_description()}",
        f"Date: {bench.date}; {bench.iterations} timed predictions after {bench.warmup} warm-up runs per row "
        f"and run, {bench.repeats} interleaved runs per row (the table shows the run with the lowest p50); "
        f"{bench.threads} CPU threads for torch and ONNX Runtime (graph optimisation level ORT_ENABLE_ALL; "
        f"torch eager under inference_mode); wall time {bench.wall_s / 60:.1f} min",
        f"Model: {bench.model}; camera image {bench.image_size[0]}x{bench.image_size[1]} RGB of the built-in "
        "world",
    ]
    if bench.load_before is not None and bench.load_after is not None:
        lines.append(
            f"1-minute load average {bench.load_before:.2f} before, {bench.load_after:.2f} after (a load "
            "above the core count means other processes shared the CPU)"
        )
    return lines


def write_results(path: Path, bench: BenchRun) -> None:
    """Replace the CPU section (and the GPU section, where GPU rows were measured) of the markdown file
    ``path``."""
    cpu_rows = [r for r in bench.rows if r["device"] == "cpu"]
    gpu_rows = [r for r in bench.rows if r["device"] != "cpu"]
    bullets = notes(bench)
    for title, rows in ((CPU_SECTION, cpu_rows), (GPU_SECTION, gpu_rows)):
        if rows:
            write_section(path, title, section(title, rows, bench.command, bullets))
