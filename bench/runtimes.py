#!/usr/bin/env python3
"""CPU runtimes on the same .onnx files: ONNX Runtime (what the onnxruntime backend runs) against the OpenVINO
runtime (pip package openvino, optional), for the float32 and the int8 DepthNet, and ONNX Runtime on an int8
model with int8 instead of uint8 activations; writes the "Inference on CPU: OpenVINO against ONNX Runtime"
section of docs/RESULTS.md with the verdict on issue 16's bar for adding an OpenVINO backend (1.3x).

    .venv/bin/python bench/runtimes.py                         # 640x192 and 1024x320, 5 rounds, ~10 min
    .venv/bin/python bench/runtimes.py --sizes 128x64 --rounds 1 --iterations 2 --results /tmp/r.md  # smoke

The models: a random-weight DepthNet (default config) exported by fg-depth's exporter, its int8 quantisation
as ``fg-depth export --quantize int8`` makes it (uint8 activations) and the same with int8 activations.
Every (runtime, model) forward pass runs in a fresh process with the usable cores as threads, one after
another in rounds; ratios are taken within a round and their median reported (tools/isolated.py).

ONNX Runtime: the backend's session (CPU provider, ORT_ENABLE_ALL, dynamic batch). OpenVINO: the same file
read by ``openvino.Core().read_model``, reshaped to batch 1 (static shapes are what OpenVINO compiles best),
compiled for "CPU" with the LATENCY hint and the thread count; float32 with the f32 precision hint (the
same arithmetic as ONNX Runtime) and with OpenVINO's default hint, which on a CPU with bf16 instructions
is bf16 (faster, less precise). Each OpenVINO run also checks its depth against ONNX Runtime's on the same
input (mean relative difference).
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

from fg_depth_core.commands.bench import (  # noqa: E402
    parse_size,
    prepare_models,
    quantize_for_bench,
    usable_cores,
)
from tools.isolated import (  # noqa: E402
    describe_ratios,
    load_average,
    load_phrase,
    median_seconds,
    per_round_ratio,
    run_isolated,
)
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## Inference on CPU: OpenVINO against ONNX Runtime"
#: Issue 16: an OpenVINO backend is added only if it runs the same .onnx at least this much faster.
OPENVINO_BAR = 1.3
#: Rows: (name, runtime, model key, OpenVINO precision hint or None for its default).
ROWS = (
    ("ONNX Runtime, float32 model", "onnxruntime", "onnx", None),
    ("OpenVINO, float32 model, f32", "openvino", "onnx", "f32"),
    ("OpenVINO, float32 model, default precision", "openvino", "onnx", None),
    ("ONNX Runtime, int8 model (uint8 activations)", "onnxruntime", "int8", None),
    ("OpenVINO, int8 model (uint8 activations)", "openvino", "int8", None),
    ("ONNX Runtime, int8 model with int8 activations", "onnxruntime", "int8_s8", None),
)
#: Comparisons reported: (faster candidate, reference).
COMPARISONS = (
    ("OpenVINO, float32 model, f32", "ONNX Runtime, float32 model"),
    ("OpenVINO, float32 model, default precision", "ONNX Runtime, float32 model"),
    ("OpenVINO, int8 model (uint8 activations)", "ONNX Runtime, int8 model (uint8 activations)"),
    ("ONNX Runtime, int8 model (uint8 activations)", "ONNX Runtime, int8 model with int8 activations"),
    ("ONNX Runtime, int8 model (uint8 activations)", "ONNX Runtime, float32 model"),
)


def child(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One (runtime, model) in a fresh process: the median forward time (s) at batch 1; for OpenVINO also
    the precision it compiled to and its mean relative difference from ONNX Runtime on the same input."""
    import numpy as np

    from fg_depth_core.deploy.backends.onnxruntime_backend import OnnxRuntimeBackend

    threads, width, height = int(spec["threads"]), int(spec["width"]), int(spec["height"])
    batch = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    iterations, warmup = int(spec["iterations"]), int(spec["warmup"])
    if spec["runtime"] == "onnxruntime":
        backend = OnnxRuntimeBackend(spec["model"], "cpu", "fp32", threads)
        return {"seconds": median_seconds(lambda: backend.forward(batch), iterations, warmup)}
    import openvino as ov

    core = ov.Core()
    model = core.read_model(spec["model"])
    model.reshape({"image": [1, 3, height, width]})
    config: Dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if spec.get("hint"):
        config["INFERENCE_PRECISION_HINT"] = spec["hint"]
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    seconds = median_seconds(lambda: request.infer({0: batch}), iterations, warmup)
    depth = np.asarray(request.infer({0: batch})[0])
    reference = OnnxRuntimeBackend(spec["model"], "cpu", "fp32", threads).forward(batch)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    return {
        "seconds": seconds,
        "precision": precision.get_type_name() if hasattr(precision, "get_type_name") else str(precision),
        "difference": float(np.mean(np.abs(depth - reference) / reference)),
        "openvino": ov.__version__ if hasattr(ov, "__version__") else ov.get_version(),
    }


#: What was done with a decision that met the bar (written under the decisions).
TAKEN = (
    "Taken: fg-depth has an optional `openvino` backend (fg_depth_core/deploy/backends/openvino_backend.py; "
    "`pip install openvino`, or the extra `fg_depth_ros[openvino]`) that runs the float32 and the int8 "
    ".onnx on the CPU, float layers compiled in f32 (OpenVINO's bf16 default is faster but is not what fp32 "
    "promises). It runs when asked for: `inference.backend: openvino` in the config, the node's `backend` "
    "parameter or `--backend openvino`; `auto` keeps ONNX Runtime, so that installing a package does not "
    "change which runtime serves a model. Without the package, asking for it is an error saying what to "
    "install."
)


def decide(network: str, seconds: Dict[str, List[Optional[float]]]) -> str:
    """Issue 16's bar, round by round: does OpenVINO's fastest row reach OPENVINO_BAR x the throughput of
    ONNX Runtime's fastest (its float32 or int8 model; int8 activations are not what the backend runs)?"""

    def fastest(runtime: str) -> List[Optional[float]]:
        names = [n for n, r, key, _ in ROWS if r == runtime and key != "int8_s8"]
        columns = [seconds.get(n, []) for n in names]
        best: List[Optional[float]] = []
        for i in range(max((len(c) for c in columns), default=0)):
            times = [c[i] for c in columns if i < len(c) and c[i]]
            best.append(min(times) if times else None)
        return best

    ratios = per_round_ratio(fastest("onnxruntime"), fastest("openvino"))
    if not ratios:
        return f"- {network}: no decision (OpenVINO or ONNX Runtime did not run)."
    enough = statistics.median(ratios) >= OPENVINO_BAR
    verdict = "an OpenVINO backend would pay off" if enough else "no OpenVINO backend"
    return (
        f"- {network}: OpenVINO's fastest row runs {describe_ratios(ratios)} the throughput of ONNX "
        f"Runtime's fastest: {'at least' if enough else 'below'} the {OPENVINO_BAR}x bar, {verdict}."
    )


def section(
    command: str,
    args: argparse.Namespace,
    threads: int,
    rounds: Dict[str, Dict[str, List[Dict[str, Any]]]],
    wall_s: float,
    load: Sequence[Optional[float]],
) -> str:
    """The RESULTS.md section: command, machine, the per-row times, the ratios and the decision."""
    table = [
        "| network | runtime and model | forward ms per round | median ms | compiled precision "
        "| difference from ONNX Runtime |",
        "|---|---|---|---|---|---|",
    ]
    verdicts: List[str] = []
    decisions: List[str] = []
    version = "not installed"
    for network, by_row in rounds.items():
        seconds = {
            name: [r.get("seconds") if "error" not in r else None for r in runs]
            for name, runs in by_row.items()
        }
        for name, runs in by_row.items():
            ok = [r for r in runs if "error" not in r]
            if not ok:
                table.append(f"| {network} | {name} | failed: {runs[-1]['error']} | | | |")
                continue
            version = next((r["openvino"] for r in ok if "openvino" in r), version)
            times = ", ".join(f"{1e3 * r['seconds']:.0f}" for r in ok)
            difference = ok[-1].get("difference")
            shown = f"{100 * difference:.3f} %" if difference is not None else "-"
            median = statistics.median(1e3 * r["seconds"] for r in ok)
            precision = ok[-1].get("precision", "-")
            table.append(f"| {network} | {name} | {times} | {median:.1f} | {precision} | {shown} |")
        for candidate, reference in COMPARISONS:
            # Throughput ratio: the reference's time over the candidate's, round by round.
            ratios = per_round_ratio(seconds.get(reference, []), seconds.get(candidate, []))
            verdicts.append(
                f"- {network}: {candidate} runs {describe_ratios(ratios)} the throughput of {reference}."
            )
        decisions.append(decide(network, seconds))
    load_line = load_phrase(load, "compare rows by the per-round ratios")
    lines = [
        SECTION,
        "",
        "The same .onnx files run by ONNX Runtime (the onnxruntime backend's session) and by the OpenVINO "
        "runtime, forward pass only, batch 1; method in bench/runtimes.py.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}, openvino {version}",
        f"- Date: {datetime.date.today().isoformat()}; {args.rounds} rounds, every row in a fresh "
        f"process with {threads} threads, median of {args.iterations} runs after {args.warmup} warm-up "
        f"runs; wall time {wall_s / 60:.1f} min" + load_line,
        "- Models: random-weight DepthNet (default config); int8 quantised as `fg-depth export "
        "--quantize int8` quantises it, and the same with int8 activations "
        '(`quantize_int8(..., activations="int8")`)',
        "",
        *table,
        "",
        *verdicts,
        "",
        "Decision (issue 16: a backend only for at least 1.3x):",
        *decisions,
    ]
    if any("at least the" in d for d in decisions):
        lines += ["", TAKEN]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["640x192", "1024x320"], help="network sizes WxH")
    p.add_argument("--rounds", type=int, default=5, help="rounds of every row")
    p.add_argument("--iterations", type=int, default=10, help="timed runs per row and round (median kept)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument("--threads", type=int, default=0, help="threads; 0 = the usable cores")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = p.parse_args(argv)
    if min(args.rounds, args.iterations) < 1 or args.warmup < 0:
        sys.exit("runtimes: --rounds and --iterations must be >= 1, --warmup >= 0")
    threads = args.threads or usable_cores()
    sizes = [parse_size(s, "--sizes") for s in args.sizes]
    load_before = load_average()
    started = time.time()
    rounds: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="fg-depth-runtimes-") as tmp:
        models = prepare_models(None, sizes, Path(tmp), need_onnx=True, need_int8=True)
        for (w, h), paths in models.items():
            paths["int8_s8"] = quantize_for_bench(paths["onnx"], Path(tmp) / f"s8_{w}x{h}.onnx", "int8")
        for index in range(args.rounds):
            for (w, h), paths in models.items():
                for name, runtime, key, hint in ROWS:
                    spec = {
                        "runtime": runtime,
                        "model": str(paths[key]),
                        "hint": hint,
                        "width": w,
                        "height": h,
                        "threads": threads,
                        "iterations": args.iterations,
                        "warmup": args.warmup,
                    }
                    got = run_isolated("bench.runtimes", "child", spec)
                    rounds.setdefault(f"{w}x{h}", {}).setdefault(name, []).append(got)
                    print(f"round {index + 1}: {w}x{h} {name}: {got}", flush=True)
    command = " ".join(["python", "bench/runtimes.py", *map(shlex.quote, argv)])
    text = section(command, args, threads, rounds, time.time() - started, (load_before, load_average()))
    print()
    print(text)
    if not args.no_write:
        write_section(Path(args.results), SECTION, text)
        print(f"runtimes: section written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
