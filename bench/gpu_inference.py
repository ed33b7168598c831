#!/usr/bin/env python3
"""GPU inference, prepared for a machine with a CUDA GPU: the DepthNet in PyTorch at batch 1 in float32 and
float16, eager and replayed from a CUDA graph; the cost of DepthEstimator's pre- and post-processing and of
the copies between host and GPU against the forward pass; and DepthEstimator's torch backend end to end.
Writes the "Inference on GPU: PyTorch (bench/gpu_inference.py)" section of docs/RESULTS.md, naming the GPU.

    .venv/bin/python bench/gpu_inference.py                    # on the GPU machine: ~1 min
    .venv/bin/python bench/gpu_inference.py --device cpu --size 128x64 --iterations 3 --no-write   # logic

Rows (each the median of --iterations timed runs after --warmup untimed ones, the GPU synchronised after
every run so that a time covers the work, not its launch):

- forward: the network alone on an input already on the device (``DepthNetExport``: depth only), float32
  and float16 (weights and input in half, as the torch backend's fp16), eager under inference_mode, and the
  same replayed from a CUDA graph captured once (static input and output buffers; CUDA only);
- the estimator's steps around it (float32): ``preprocess`` (fit and normalise on the host), the copy to the
  device, the forward pass, the copy back, ``postprocess`` (focal scaling, resize to the image);
- DepthEstimator(backend "torch").predict end to end, float32 and float16.

On the CPU (``--device cpu``) the float16 and CUDA-graph rows are skipped with the reason, so the logic can be
checked without a GPU (test/tools/test_perf_benches.py does). Without ``--checkpoint`` the model is a
random-weight DepthNet of the default config: timing does not depend on the weights.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands.bench import (  # noqa: E402
    RANDOM_MODEL,
    camera_image_intrinsics,
    machine_info,
    parse_size,
    prepare_models,
    world_images,
)
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## Inference on GPU: PyTorch (bench/gpu_inference.py)"
#: Forward-pass variants: (row name, precision, CUDA graph).
FORWARD_ROWS = (
    ("forward fp32, eager", "fp32", False),
    ("forward fp16, eager", "fp16", False),
    ("forward fp32, CUDA graph", "fp32", True),
    ("forward fp16, CUDA graph", "fp16", True),
)


class Timer:
    """Median milliseconds of a callable on ``device``: the GPU is synchronised after every call."""

    def __init__(self, device: Any, iterations: int, warmup: int) -> None:
        import torch

        self.cuda = device.type == "cuda"
        self.sync: Callable[[], None] = torch.cuda.synchronize if self.cuda else (lambda: None)
        self.iterations, self.warmup = iterations, warmup

    def samples(self, run: Callable[[], Any]) -> List[float]:
        """Milliseconds of each timed call."""
        for _ in range(self.warmup):
            run()
        self.sync()
        times = []
        for _ in range(self.iterations):
            start = time.perf_counter()
            run()
            self.sync()
            times.append(1e3 * (time.perf_counter() - start))
        return times

    def median(self, run: Callable[[], Any]) -> float:
        return statistics.median(self.samples(run))


def skip_reason(precision: str, graph: bool, device: Any) -> Optional[str]:
    """Why a forward row cannot run on ``device`` (None when it can)."""
    if device.type != "cuda" and precision == "fp16":
        return "fp16 needs CUDA"
    if device.type != "cuda" and graph:
        return "CUDA graphs need CUDA"
    return None


def graph_runner(module: Any, example: Any) -> Callable[[], Any]:
    """A CUDA graph of ``module(example)`` captured once (after warm-up runs on a side stream, as CUDA graph
    capture requires); the returned function replays it, filling the same output buffer."""
    import torch

    if example.device.type != "cuda":
        raise ValueError(f"CUDA graphs need a CUDA tensor, got one on {example.device}")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            module(example)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        module(example)
    return graph.replay


def forward_rows(checkpoint: Path, device: Any, timer: Timer) -> List[Dict[str, Any]]:
    """The network alone, per FORWARD_ROWS (skipped rows say why)."""
    import torch

    from fg_depth_core.deploy.backends.torch_backend import TorchBackend

    backend = TorchBackend(checkpoint, "cpu")
    info = backend.info
    rows = []
    for name, precision, graph in FORWARD_ROWS:
        reason = skip_reason(precision, graph, device)
        if reason:
            rows.append({"name": name, "skipped": reason})
            continue
        dtype = torch.float16 if precision == "fp16" else torch.float32
        module = backend.module.to(device=device, dtype=dtype).eval()
        example = torch.rand(1, 3, info.height, info.width, device=device, dtype=dtype)
        if graph:
            run = graph_runner(module, example)
        else:

            def run(module: Any = module, example: Any = example) -> Any:
                with torch.inference_mode():
                    return module(example)

        rows.append({"name": name, "ms": timer.median(run)})
    return rows


def pipeline_rows(checkpoint: Path, device: Any, timer: Timer, image: Any) -> List[Dict[str, Any]]:
    """The estimator's steps around a float32 forward pass: host pre-processing, copy in, forward, copy out,
    host post-processing."""
    import torch

    from fg_depth_core.deploy.backends.torch_backend import TorchBackend
    from fg_depth_core.deploy.estimator import DepthEstimator, postprocess, preprocess

    backend = TorchBackend(checkpoint, device.type if device.index is None else f"cuda:{device.index}")
    estimator = DepthEstimator.from_backend(backend)
    info = estimator.info
    h, w = image.shape[:2]
    fit = estimator.fit_for(w, h)
    factor = estimator.focal_factor(camera_image_intrinsics(w, h))
    batch = preprocess(image, info.width, info.height, fit)
    on_device = torch.from_numpy(batch).to(device)
    with torch.inference_mode():
        depth = backend.module(on_device)
    host = depth.float().cpu().numpy()

    def forward() -> Any:
        with torch.inference_mode():
            return backend.module(on_device)

    steps = (
        ("preprocess (host)", lambda: preprocess(image, info.width, info.height, fit)),
        ("copy to device", lambda: torch.from_numpy(batch).to(device)),
        ("forward", forward),
        ("copy to host", lambda: depth.float().cpu().numpy()),
        ("postprocess (host)", lambda: postprocess(host[0], factor, fit.output_size("input"), fit)),
    )
    return [{"name": name, "ms": timer.median(run)} for name, run in steps]


def estimator_rows(checkpoint: Path, device: Any, timer: Timer, image: Any) -> List[Dict[str, Any]]:
    """DepthEstimator(backend "torch").predict on the camera image, float32 and float16."""
    from fg_depth_core.deploy.estimator import DepthEstimator

    h, w = image.shape[:2]
    camera = camera_image_intrinsics(w, h)
    name_of = str(device) if device.type == "cuda" else "cpu"
    rows = []
    for precision in ("fp32", "fp16"):
        name = f"DepthEstimator.predict, torch backend, {precision}"
        reason = skip_reason(precision, False, device)
        if reason:
            rows.append({"name": name, "skipped": reason})
            continue
        estimator = DepthEstimator(checkpoint, "torch", name_of, precision)
        samples = timer.samples(lambda estimator=estimator: estimator.predict(image, camera))
        rows.append({"name": name, "ms": statistics.median(samples), "p95_ms": _p95(samples)})
    return rows


def _p95(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    """Every row at ``args.size`` on ``args.device``; the settings and the machine with them."""
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_inference: --device cuda, but torch sees no CUDA device here")
    width, height = parse_size(args.size, "--size")
    image_w, image_h = parse_size(args.image_size, "--image-size")
    timer = Timer(device, args.iterations, args.warmup)
    with tempfile.TemporaryDirectory(prefix="fg-depth-gpu-bench-") as tmp:
        checkpoint = prepare_models(args.checkpoint, [(width, height)], Path(tmp), False)[(width, height)]
        image = world_images(1, image_w, image_h)[0]
        rows = {
            "forward": forward_rows(checkpoint["pt"], device, timer),
            "pipeline": pipeline_rows(checkpoint["pt"], device, timer, image),
            "estimator": estimator_rows(checkpoint["pt"], device, timer, image),
        }
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "rows": rows,
        "device": str(device),
        "gpu": gpu,
        "size": [width, height],
        "image_size": [image_w, image_h],
        "iterations": args.iterations,
        "warmup": args.warmup,
        "model": f"checkpoint {args.checkpoint}" if args.checkpoint else RANDOM_MODEL,
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
    }


def section(result: Dict[str, Any], command: str) -> str:
    """The RESULTS.md section from :func:`measure`'s result."""
    rows = result["rows"]
    width, height = result["size"]

    def cell(row: Dict[str, Any]) -> str:
        return f"skipped: {row['skipped']}" if "skipped" in row else f"{row['ms']:.2f}"

    forward = {r["name"]: r for r in rows["forward"]}
    lines = [
        SECTION,
        "",
        "PyTorch on the GPU at batch 1: the network alone (eager and CUDA graph, float32 and float16), the "
        "estimator's steps around it, and DepthEstimator's torch backend end to end; method in "
        "bench/gpu_inference.py.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}; device {result['device']}"
        + (f" ({result['gpu']})" if result["gpu"] else ""),
        f"- Date: {result['date']}; network {width}x{height}, camera image {result['image_size'][0]}x"
        f"{result['image_size'][1]}; median of {result['iterations']} runs after {result['warmup']} warm-up "
        "runs, the device synchronised after each; model: " + result["model"],
        "",
        "| forward pass | ms |",
        "|---|---|",
        *[f"| {r['name']} | {cell(r)} |" for r in rows["forward"]],
        "",
        "| estimator step (fp32) | ms |",
        "|---|---|",
        *[f"| {r['name']} | {cell(r)} |" for r in rows["pipeline"]],
        "",
        "| end to end | p50 ms | p95 ms |",
        "|---|---|---|",
        *[
            f"| {r['name']} | {cell(r)} | " + (f"{r['p95_ms']:.2f} |" if "ms" in r else "|")
            for r in rows["estimator"]
        ],
    ]
    steps = {r["name"]: r["ms"] for r in rows["pipeline"]}
    around = sum(ms for name, ms in steps.items() if name != "forward")
    lines += [
        "",
        f"- Pre/post-processing and copies: {around:.2f} ms, {100 * around / steps['forward']:.0f} % of the "
        f"float32 forward pass ({steps['forward']:.2f} ms).",
    ]
    eager, graph = forward.get("forward fp16, eager", {}), forward.get("forward fp16, CUDA graph", {})
    if "ms" in eager and "ms" in graph:
        speedup = eager["ms"] / graph["ms"]
        lines.append(f"- A CUDA graph runs the fp16 forward pass {speedup:.2f}x as fast as eager.")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="torch device: cuda, cuda:N, or cpu to check the logic")
    p.add_argument("--size", default="640x192", help="network input WxH")
    p.add_argument("--image-size", default="1280x720", help="camera image WxH for the estimator rows")
    p.add_argument("--checkpoint", default=None, help="time this checkpoint (default: random weights)")
    p.add_argument("--iterations", type=int, default=100, help="timed runs per row")
    p.add_argument("--warmup", type=int, default=20, help="untimed runs first")
    p.add_argument("--json", default=None, help="also write the rows and settings to this JSON file")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        sys.exit("gpu_inference: --iterations must be >= 1 and --warmup >= 0")
    result = measure(args)
    command = " ".join(["python", "bench/gpu_inference.py", *map(shlex.quote, argv)])
    text = section(result, command)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if not args.no_write:
        if result["gpu"] is None:
            sys.exit("gpu_inference: not writing CPU numbers into the GPU section (use --no-write on a CPU)")
        write_section(Path(args.results), SECTION, text)
        print(f"gpu_inference: section written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
