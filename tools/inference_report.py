"""The "Inference on CPU" / "Inference on GPU" sections of docs/RESULTS.md, written by bench/inference.py from
a ``fg-depth bench`` measurement (:class:`~fg_depth_core.commands.bench.BenchRun`), with the verdicts on the
targets of issue 4 (ONNX Runtime float32 against eager PyTorch, pre/post-processing) and issue 16 (the int8
model against eager PyTorch). Speed ratios are taken round by round (rows of one round ran within the same
minutes) and their median reported, so that a shared machine's changing load cancels out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from fg_depth_core.commands.bench import (
    BENCH_CALIBRATION_FRAMES,
    BenchRun,
    parse_size,
    round_ratio,
    round_ratios,
    table,
)
from tools.isolated import describe_ratios
from tools.results import machine_description, write_section

CPU_SECTION = "## Inference on CPU"
GPU_SECTION = "## Inference on GPU"
#: Targets of issue 4 on the 2-core CPU at 640x192.
ORT_SPEEDUP_TARGET = 1.8
PRE_POST_SHARE_TARGET = 0.10
#: Target of issue 16: the int8 model under ONNX Runtime against eager PyTorch, at this network size.
INT8_SPEEDUP_TARGET = 2.5
INT8_TARGET_NETWORK = "640x192"


def speedup(faster: Dict[str, Any], slower: Dict[str, Any]) -> str:
    """ "2.51x (median of 3 rounds, 2.40-2.73)" from the rows' per-round throughputs, or the ratio of their
    frames/s where they share no round."""
    ratios = round_ratios(faster, slower)
    return describe_ratios(ratios) if ratios else f"{faster['fps'] / slower['fps']:.2f}x"


def _ratio_value(faster: Dict[str, Any], slower: Dict[str, Any]) -> float:
    ratio = round_ratio(faster, slower)
    return faster["fps"] / slower["fps"] if ratio is None else ratio["median"]


#: Display names of (backend, precision) rows in the verdicts.
_NAMES = {
    ("torch", "fp32"): "eager PyTorch",
    ("onnxruntime", "fp32"): "ONNX Runtime",
    ("onnxruntime", "int8"): "ONNX Runtime int8",
    ("openvino", "fp32"): "OpenVINO",
    ("openvino", "int8"): "OpenVINO int8",
}


def verdicts(rows: List[Dict[str, Any]]) -> List[str]:
    """The issues' CPU targets and the int8 and OpenVINO comparisons, per network size where rows exist."""
    ok = [r for r in rows if "error" not in r and r["device"] == "cpu"]
    lines = []
    for network in sorted({r["network"] for r in ok}, key=lambda s: parse_size(s, "network")):
        by = {(r["backend"], r["precision"]): r for r in ok if r["network"] == network}
        torch_row, ort = by.get(("torch", "fp32")), by.get(("onnxruntime", "fp32"))
        int8 = by.get(("onnxruntime", "int8"))
        if torch_row is not None and ort is not None:
            ratio = _ratio_value(ort, torch_row)
            met = "met" if ratio >= ORT_SPEEDUP_TARGET else "NOT met"
            lines.append(
                f"- {network}: ONNX Runtime runs {speedup(ort, torch_row)} the throughput of "
                f"eager PyTorch (target >= {ORT_SPEEDUP_TARGET}x: {met})."
            )
        if int8 is not None and torch_row is not None:
            line = (
                f"- {network}: ONNX Runtime int8 runs {speedup(int8, torch_row)} the throughput of eager "
                "PyTorch"
            )
            if network == INT8_TARGET_NETWORK:
                met = "met" if _ratio_value(int8, torch_row) >= INT8_SPEEDUP_TARGET else "NOT met"
                line += f" (target >= {INT8_SPEEDUP_TARGET}x: {met})"
            lines.append(line + ".")
        if int8 is not None and ort is not None:
            lines.append(
                f"- {network}: ONNX Runtime int8 runs {speedup(int8, ort)} the throughput of "
                "ONNX Runtime float32."
            )
        for precision in ("fp32", "int8"):
            openvino, reference = by.get(("openvino", precision)), by.get(("onnxruntime", precision))
            if openvino is not None and reference is not None:
                lines.append(
                    f"- {network}: {_NAMES[('openvino', precision)]} runs {speedup(openvino, reference)} the "
                    f"throughput of {_NAMES[('onnxruntime', precision)]}"
                    + (f", {speedup(openvino, torch_row)} that of eager PyTorch." if torch_row else ".")
                )
        shares = ", ".join(
            f"{backend}{' ' + precision if precision != 'fp32' else ''} "
            f"{100 * (r['pre_ms'] + r['post_ms']) / r['forward_ms']:.1f}%"
            for (backend, precision), r in sorted(by.items())
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
    if any(r.get("precision") == "int8" for r in bench.rows):
        lines.append(
            "int8: the same model quantised as `fg-depth export --quantize int8` quantises it (QDQ, "
            "per-channel int8 weights, uint8 activations, output head float32), calibrated on "
            f"{BENCH_CALIBRATION_FRAMES} built-in world frames; ONNX Runtime's CPU provider"
        )
    lines.append(
        "Ratios: each round runs every row once, one after another, so a ratio is taken within a round and "
        "the median over the rounds reported; compare rows only within this table, since the machine's "
        "speed changes from one minute to the next"
    )
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
