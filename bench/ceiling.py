#!/usr/bin/env python3
"""The ceiling of CPU inference: how many FLOPs a DepthNet forward pass needs (torch.utils.flop_counter) and
what fraction of this CPU's measured matrix-multiply peak each backend reaches (float32 for eager PyTorch
and ONNX Runtime float32, int8 for the int8 model); writes the "Inference on CPU: the ceiling" section of
docs/RESULTS.md.

    .venv/bin/python bench/ceiling.py                        # 640x192 and 1024x320, 3 rounds, ~10 min
    .venv/bin/python bench/ceiling.py --sizes 128x64 --rounds 1 --gemm-size 256 --iterations 2 \\
        --results /tmp/r.md                                  # smoke

Peak: square GEMMs of --gemm-size (float32: torch.mm, NumPy's matmul, ONNX Runtime's MatMul; int8: ONNX
Runtime's MatMulInteger on uint8 x int8, torch's quantized Linear on its x86 engine, torch._int_mm), the
best of each data type in a round being that round's peak; 2 operations per multiply-add throughout.
Each measurement runs in a fresh process with the backends' thread count (the usable cores), one after
another in rounds: a round measures every GEMM and every backend once, and a backend's fraction of the peak
is taken within its round (median over rounds reported), so a machine whose speed changes from minute to
minute (others' jobs) still gives comparable fractions. A network's FLOPs are its convolutions' (the
counter counts matrix products and convolutions); the int8 model runs most of them in int8 but ELU, the
output head and the layout conversions in float, so its fraction is of the int8 peak, an upper bound.
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
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands.bench import parse_size, prepare_models, usable_cores  # noqa: E402
from tools.isolated import load_average, load_phrase, median_seconds, run_isolated  # noqa: E402
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## Inference on CPU: the ceiling"
#: GEMM implementations and the data type whose peak each measures.
GEMMS = {
    "torch.mm": "float32",
    "numpy.matmul": "float32",
    "onnxruntime MatMul": "float32",
    "onnxruntime MatMulInteger (u8 x s8)": "int8",
    "torch quantized Linear (x86 engine)": "int8",
    "torch._int_mm (s8 x s8)": "int8",
}
#: Backends timed: (name, model key of prepare_models, data type of the peak it is held against).
BACKENDS = (
    ("PyTorch eager float32", "pt", "float32"),
    ("ONNX Runtime float32", "onnx", "float32"),
    ("ONNX Runtime int8", "int8", "int8"),
)
# ------------------------------------------------------------------------------------- the measurements


def count_flops(width: int, height: int) -> Dict[str, float]:
    """FLOPs of one forward pass at batch 1 of the default config's DepthNet (DepthNetExport: depth only):
    {"total": FLOPs, "conv": those of convolutions}."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fg_depth_core.config import Config
    from fg_depth_core.model import DepthNetExport, build_depthnet

    net = DepthNetExport(build_depthnet(Config().model, load_weights=False).eval())
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(torch.rand(1, 3, height, width))
    by_op = {str(op): float(n) for op, n in counter.get_flop_counts()["Global"].items()}
    conv = sum(n for op, n in by_op.items() if "conv" in op)
    return {"total": float(counter.get_total_flops()), "conv": conv}


def _gemm(name: str, n: int, threads: int) -> Any:
    """A function running one n x n x n product with implementation ``name``."""
    import numpy as np

    rng = np.random.default_rng(0)
    if name in ("torch.mm", "torch quantized Linear (x86 engine)", "torch._int_mm (s8 x s8)"):
        import torch

        torch.set_num_threads(threads)
        if name == "torch.mm":
            a, b = torch.randn(n, n), torch.randn(n, n)
            return lambda: torch.mm(a, b)
        if name == "torch._int_mm (s8 x s8)":
            a = torch.randint(-128, 128, (n, n), dtype=torch.int8)
            b = torch.randint(-128, 128, (n, n), dtype=torch.int8)
            return lambda: torch._int_mm(a, b)
        import torch.ao.nn.quantized as nnq

        torch.backends.quantized.engine = "x86"
        linear = nnq.Linear(n, n, bias_=False)
        linear.set_weight_bias(torch.quantize_per_tensor(torch.randn(n, n), 0.05, 0, torch.qint8), None)
        x = torch.quantize_per_tensor(torch.rand(n, n), 1 / 255, 0, torch.quint8)
        return lambda: linear(x)
    if name == "numpy.matmul":
        a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
        return lambda: a @ b
    import onnxruntime as ort
    from onnx import TensorProto, helper

    integer = "Integer" in name
    in_a, in_b = (TensorProto.UINT8, TensorProto.INT8) if integer else (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger" if integer else "MatMul", ["A", "B"], ["Y"])],
        "gemm",
        [helper.make_tensor_value_info("A", in_a, [n, n]), helper.make_tensor_value_info("B", in_b, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32 if integer else TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    if integer:
        feeds = {
            "A": rng.integers(0, 256, (n, n), dtype=np.uint8),
            "B": rng.integers(-128, 128, (n, n), dtype=np.int8),
        }
    else:
        feeds = {"A": rng.random((n, n), dtype=np.float32), "B": rng.random((n, n), dtype=np.float32)}
    return lambda: session.run(None, feeds)


def _backend_forward(model: str, backend: str, threads: int, width: int, height: int) -> Any:
    import numpy as np

    from fg_depth_core.deploy.backends import create_backend

    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    runner = create_backend(model, backend, "cpu", "fp32", threads)
    batch = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    return lambda: runner.forward(batch)


def child(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One measurement (in a fresh process, :func:`measure`): seconds per GEMM or per forward pass."""
    threads = int(spec["threads"])
    if spec["kind"] == "gemm":
        run = _gemm(spec["name"], int(spec["n"]), threads)
    else:
        backend = "torch" if spec["model"].endswith(".pt") else "onnxruntime"
        run = _backend_forward(spec["model"], backend, threads, int(spec["width"]), int(spec["height"]))
    return {"seconds": median_seconds(run, int(spec["iterations"]), int(spec["warmup"]))}


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`child` in a fresh interpreter (tools/isolated.py); a failure becomes {"error": ...}."""
    return run_isolated("bench.ceiling", "child", spec)


# ------------------------------------------------------------------------------------------- reporting


def fractions(
    rounds: List[Dict[str, Any]], flops: Dict[str, Dict[str, float]]
) -> Dict[Tuple[str, str], Dict[str, float]]:
    """(network, backend) -> forward ms, achieved GFLOP/s, the round's peak and the fraction of it, each the
    median over the rounds where both the backend and a GEMM of its data type were measured."""
    out: Dict[Tuple[str, str], Dict[str, float]] = {}
    for network, counted in flops.items():
        for name, _, dtype in BACKENDS:
            samples = []
            for r in rounds:
                seconds = r["backends"].get(network, {}).get(name)
                peaks = [1e-9 * r["gemm_ops"] / s for g, s in r["gemms"].items() if GEMMS[g] == dtype and s]
                if seconds and peaks:
                    achieved = 1e-9 * counted["total"] / seconds
                    samples.append((1e3 * seconds, achieved, max(peaks), achieved / max(peaks)))
            if samples:
                columns = list(zip(*samples))
                out[(network, name)] = {
                    key: statistics.median(values)
                    for key, values in zip(("ms", "gflops", "peak", "fraction"), columns)
                }
                out[(network, name)]["rounds"] = len(samples)
    return out


def section(
    command: str,
    args: argparse.Namespace,
    threads: int,
    rounds: List[Dict[str, Any]],
    flops: Dict[str, Dict[str, float]],
    wall_s: float,
    load: Tuple[Optional[float], Optional[float]],
) -> str:
    """The RESULTS.md section: command, machine, the FLOP counts, the peaks, the fractions."""
    gemm_lines = ["| GEMM | data type | GOP/s per round | median GOP/s |", "|---|---|---|---|"]
    for name, dtype in GEMMS.items():
        rates = [1e-9 * r["gemm_ops"] / r["gemms"][name] for r in rounds if r["gemms"].get(name)]
        errors = {r["errors"][name] for r in rounds if name in r.get("errors", {})}
        shown = ", ".join(f"{v:.0f}" for v in rates) if rates else "failed: " + "; ".join(sorted(errors))
        median = f"{statistics.median(rates):.0f}" if rates else "-"
        gemm_lines.append(f"| {name} | {dtype} | {shown} | {median} |")
    result = fractions(rounds, flops)
    net_lines = [
        "| network | GFLOP per frame (convolutions) | backend | forward ms | GFLOP/s "
        "| peak GOP/s of its data type | fraction of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for network, counted in flops.items():
        for name, _, dtype in BACKENDS:
            m = result.get((network, name))
            if m is None:
                net_lines.append(f"| {network} | {1e-9 * counted['total']:.2f} | {name} | failed | | | |")
                continue
            conv_share = 100 * counted["conv"] / counted["total"]
            net_lines.append(
                f"| {network} | {1e-9 * counted['total']:.2f} ({conv_share:.0f} %) | {name} | {m['ms']:.1f} "
                f"| {m['gflops']:.1f} | {m['peak']:.0f} ({dtype}) | "
                f"{100 * m['fraction']:.0f} % |"
            )
    load_line = load_phrase(load, "the peaks and fractions are lower than on a quiet CPU")
    lines = [
        SECTION,
        "",
        "How far each CPU backend is from what this CPU can do: a DepthNet forward pass's FLOPs (counted by "
        "torch.utils.flop_counter, 2 per multiply-add) against the matrix-multiply peak measured here, per "
        "data type; method in bench/ceiling.py.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}",
        f"- Date: {datetime.date.today().isoformat()}; {len(rounds)} rounds, each GEMM ({args.gemm_size}^3) "
        f"and each forward pass timed in a fresh process with {threads} threads, median of "
        f"{args.iterations} runs after {args.warmup} warm-up runs; wall time {wall_s / 60:.1f} min"
        + load_line,
        "- Model: random-weight DepthNet (default config, resnet18); int8: quantised as `fg-depth export "
        "--quantize int8` quantises it; batch 1",
        "",
        *gemm_lines,
        "",
        *net_lines,
        "",
        "A round's peak is the fastest GEMM of the data type in that round; the fraction is the backend's "
        "GFLOP/s over that round's peak, median over rounds. The int8 row's FLOPs include the parts it runs "
        "in float (ELU, the output head), so its fraction is an upper bound.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["640x192", "1024x320"], help="network sizes WxH")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every measurement")
    p.add_argument("--iterations", type=int, default=10, help="timed runs per measurement (median kept)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument("--gemm-size", type=int, default=2048, help="GEMM side n (n x n times n x n)")
    p.add_argument("--threads", type=int, default=0, help="threads; 0 = the usable cores")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = p.parse_args(argv)
    if min(args.rounds, args.iterations, args.gemm_size) < 1 or args.warmup < 0:
        sys.exit("ceiling: --rounds, --iterations and --gemm-size must be >= 1, --warmup >= 0")
    threads = args.threads or usable_cores()
    sizes = [parse_size(s, "--sizes") for s in args.sizes]
    load_before = load_average()
    started = time.time()
    flops = {f"{w}x{h}": count_flops(w, h) for w, h in sizes}
    for network, counted in flops.items():
        print(f"{network}: {1e-9 * counted['total']:.2f} GFLOP per frame", flush=True)
    rounds: List[Dict[str, Any]] = []
    common = {"threads": threads, "iterations": args.iterations, "warmup": args.warmup}
    with tempfile.TemporaryDirectory(prefix="fg-depth-ceiling-") as tmp:
        models = prepare_models(None, sizes, Path(tmp), need_onnx=True, need_int8=True)
        for index in range(args.rounds):
            record: Dict[str, Any] = {"gemm_ops": 2.0 * args.gemm_size**3, "gemms": {}, "backends": {}}
            record["errors"] = {}
            for name in GEMMS:
                got = measure({**common, "kind": "gemm", "name": name, "n": args.gemm_size})
                if "error" in got:
                    record["errors"][name] = got["error"]
                else:
                    record["gemms"][name] = got["seconds"]
                print(f"round {index + 1}: {name}: {got}", flush=True)
            for (w, h), paths in models.items():
                network = f"{w}x{h}"
                for name, key, _ in BACKENDS:
                    spec = {**common, "kind": "net", "model": str(paths[key]), "width": w, "height": h}
                    got = measure(spec)
                    if "error" not in got:
                        record["backends"].setdefault(network, {})[name] = got["seconds"]
                    print(f"round {index + 1}: {network} {name}: {got}", flush=True)
            rounds.append(record)
    load_after = load_average()
    command = " ".join(["python", "bench/ceiling.py", *map(shlex.quote, argv)])
    text = section(command, args, threads, rounds, flops, time.time() - started, (load_before, load_after))
    print()
    print(text)
    if not args.no_write:
        write_section(Path(args.results), SECTION, text)
        print(f"ceiling: section written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
