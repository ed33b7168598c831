"""``fg-depth bench``: inference latency, throughput and peak memory per backend and network size, with pre-
and post-processing timed apart from the forward pass.

Each row (backend, device, precision, network size) runs in a fresh Python process, so that its peak resident
memory (VmHWM, Linux) is its own: interpreter + libraries + model + buffers. A row loads the model with
DepthEstimator, renders one camera image of the built-in world (default 1280x720, a KITTI-like focal length),
runs ``--warmup`` untimed predictions, then ``--iterations`` timed ones, each split into
:func:`~fg_depth_core.deploy.estimator.preprocess` (the image fitted to the network input as ``predict``
fits it: input_fit pad by default), the backend's forward pass and
:func:`~fg_depth_core.deploy.estimator.postprocess` (focal scaling and the resize back to the image). Batch 1,
one frame after another: throughput = frames / total time.

Without ``--checkpoint`` the model is a randomly initialised DepthNet (model.encoder of the default config):
latency does not depend on the weights. The int8 row runs the .onnx quantised as ``fg-depth export --quantize
int8`` quantises it (deploy/quantize.py), calibrated on :data:`BENCH_CALIBRATION_FRAMES` frames of the
built-in world (its speed does not depend on which frames).

Rows run one after another in rounds (``--repeats``): each round times every row of a size once, so that
rows of one round share the machine's load of that minute; :func:`round_ratio` compares two rows round by
round. The table is printed; ``--json FILE`` also keeps the rows, the
settings and the machine in a file of the user's. In a source checkout, ``bench/inference.py`` runs the same
measurement (:func:`run_benchmark`) and writes it into docs/RESULTS.md (tools/inference_report.py).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from fg_depth_core.errors import FgDepthError

DEFAULT_SIZES = ("640x192", "1024x320")
#: (backend, device, precision) rows; GPU rows run only where CUDA (and the runtime) is available, openvino
#: rows where the optional openvino package is installed. Precision "int8" is the model quantised by
#: ``fg-depth export --quantize int8``, run in float32 mode.
CPU_ROWS = (
    ("torch", "cpu", "fp32"),
    ("onnxruntime", "cpu", "fp32"),
    ("onnxruntime", "cpu", "int8"),
    ("openvino", "cpu", "fp32"),
    ("openvino", "cpu", "int8"),
)
GPU_ROWS = (
    ("torch", "cuda", "fp32"),
    ("torch", "cuda", "fp16"),
    ("onnxruntime", "cuda", "fp32"),
    ("tensorrt", "cuda", "fp32"),
    ("tensorrt", "cuda", "fp16"),
)
DESCRIPTION = (
    "Time DepthEstimator.predict per backend and network size (batch 1): latency p50/p95, throughput, "
    "pre/forward/post-processing separately and peak memory, each row in a fresh process; print the table "
    "and optionally keep it, with the settings and the machine, in a JSON file (--json)."
)
#: How a run names the model when no --checkpoint is given.
RANDOM_MODEL = "random-weight DepthNet (default config)"
#: Precisions a row can have: the runtime's fp32/fp16, and the int8-quantised model.
ROW_PRECISIONS = ("fp32", "fp16", "int8")
#: Built-in world frames the benchmark's int8 models are calibrated on.
BENCH_CALIBRATION_FRAMES = 8
_CHILD = (
    "import json, sys; from fg_depth_core.commands.bench import measure; "
    "print(json.dumps(measure(json.loads(sys.argv[1]))))"
)


def add_arguments(p: argparse.ArgumentParser, precisions: Sequence[str] = ("fp32", "fp16")) -> None:
    """The measurement's options (shared by ``fg-depth bench`` and ``bench/inference.py``); ``precisions``:
    the default of --precisions (int8 costs a quantisation first, so ``fg-depth bench`` asks for it)."""
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint to time (re-targeted to each --sizes entry); default: a random-weight DepthNet",
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        default=list(DEFAULT_SIZES),
        help="network input sizes WxH (default: %(default)s)",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        default=["torch", "onnxruntime", "tensorrt", "openvino"],
        choices=["torch", "onnxruntime", "tensorrt", "openvino"],
        help="backends to time (GPU rows only where CUDA and the runtime exist, openvino where installed)",
    )
    p.add_argument(
        "--precisions",
        nargs="+",
        default=list(precisions),
        choices=ROW_PRECISIONS,
        help="precisions to time: fp32, fp16 (CUDA only) and int8 (the ONNX model quantised as fg-depth "
        "export --quantize int8 does, CPU only) (default: %(default)s)",
    )
    p.add_argument("--no-gpu", action="store_true", help="CPU rows only, even where CUDA is available")
    p.add_argument("--image-size", default="1280x720", help="camera image WxH that is pre/post-processed")
    p.add_argument("--iterations", type=int, default=30, help="timed predictions per row (default: 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed predictions first (default: 5)")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of every row, interleaved; the table keeps each row's run with the lowest p50 (the least "
        "disturbed by other processes) and shows the range of p50 over the runs (default: %(default)s)",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch and ONNX Runtime; 0 = every core usable"
    )
    p.add_argument("--work", default=None, help="folder for the models (default: a temporary folder)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="time inference per backend and network size: latency p50/p95, throughput, peak memory",
        description=DESCRIPTION,
    )
    add_arguments(p)
    p.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="also write the rows, the settings and the machine to this JSON file (default: only print)",
    )
    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------------- helpers


def parse_size(text: str, what: str) -> Tuple[int, int]:
    """ "640x192" -> (640, 192)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise FgDepthError(f"{what}: expected WIDTHxHEIGHT such as 640x192, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() where that is unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def peak_rss_mib() -> Optional[float]:
    """This process's peak resident set size (VmHWM of /proc/self/status) in MiB; None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def summarize(pre: Sequence[float], forward: Sequence[float], post: Sequence[float]) -> Dict[str, float]:
    """Per-frame timings (seconds) -> p50/p95 latency (ms), frames/s and p50 of each stage (ms)."""
    import numpy as np

    pre_a, fwd_a, post_a = (np.asarray(v, dtype=np.float64) for v in (pre, forward, post))
    total = pre_a + fwd_a + post_a
    return {
        "p50_ms": float(np.percentile(total, 50) * 1e3),
        "p95_ms": float(np.percentile(total, 95) * 1e3),
        "fps": float(len(total) / total.sum()),
        "pre_ms": float(np.median(pre_a) * 1e3),
        "forward_ms": float(np.median(fwd_a) * 1e3),
        "post_ms": float(np.median(post_a) * 1e3),
    }


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Time one row (run in a fresh process by :func:`run_row`): see the module docstring."""
    import numpy as np

    from fg_depth_core.deploy.estimator import DepthEstimator, postprocess, preprocess
    from fg_depth_core.image_io import read_rgb

    threads = int(spec["threads"])
    cuda = spec["device"].startswith("cuda")
    # torch only where the row needs it: importing it costs ~0.7 GB of resident memory (CUDA build), which
    # would be counted against an ONNX Runtime row's peak.
    torch = None
    if spec["backend"] in ("torch", "tensorrt") or cuda:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    # An int8 row runs the quantised model; the runtime itself works in float32 around its int8 kernels.
    runtime_precision = "fp32" if spec["precision"] == "int8" else spec["precision"]
    estimator = DepthEstimator(
        spec["model"],
        spec["backend"],
        spec["device"],
        runtime_precision,
        threads,
        spec.get("cache_dir") or None,
    )
    load_s = time.perf_counter() - start
    rgb = read_rgb(spec["image"])
    h, w = rgb.shape[:2]
    camera = camera_image_intrinsics(w, h)
    info, backend = estimator.info, estimator.backend
    fit = estimator.fit_for(w, h)  # what predict does: the configured input_fit (default pad)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times: List[List[float]] = [[], [], []]
    for i in range(int(spec["warmup"]) + int(spec["iterations"])):
        t0 = time.perf_counter()
        batch = preprocess(rgb, info.width, info.height, fit)
        t1 = time.perf_counter()
        depth = backend.forward(batch)
        t2 = time.perf_counter()
        out = postprocess(depth[0], estimator.focal_factor(camera), fit.output_size("input"), fit)
        t3 = time.perf_counter()
        if i >= int(spec["warmup"]):
            for bucket, value in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                bucket.append(value)
    if out.shape != (fit.window[3], fit.window[2]) or not np.all(np.isfinite(out)):
        raise FgDepthError(f"bench: {spec['backend']} returned depth {out.shape} with non-finite values")
    row = {
        "backend": estimator.backend_name,
        "device": estimator.device,
        "precision": info.quantization if info.quantization != "none" else backend.precision,
        "network": f"{info.width}x{info.height}",
        "load_s": load_s,
        **summarize(*times),
        "peak_rss_mib": peak_rss_mib(),
        "threads": threads,
        "providers": getattr(backend, "providers", None),
    }
    if cuda and estimator.backend_name != "onnxruntime":  # ORT's CUDA arena is invisible to torch
        row["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def camera_image_intrinsics(width: int, height: int):
    """A KITTI-like camera (fx = fy = 0.58 W, centred principal point) of a ``width`` x ``height`` image."""
    from fg_depth_core.camera import Intrinsics

    return Intrinsics(0.58 * width, 0.58 * width, (width - 1) / 2, (height - 1) / 2, width, height)


def render_camera_image(path: Path, width: int, height: int) -> Path:
    """Write the benchmark's camera image: the built-in street seen by :func:`camera_image_intrinsics`."""
    import cv2

    from fg_depth_core.data.render import render_stereo
    from fg_depth_core.data.world import street_scene

    rgb = render_stereo(street_scene(7), camera_image_intrinsics(width, height), 0.54, antialias=True).left
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise FgDepthError(f"{path}: cannot write the benchmark image")
    return path


def run_row(spec: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`measure` in a fresh interpreter; a failure becomes {"error": message}."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)], capture_output=True, text=True, env=env, check=False
    )
    return child_result(done)


def child_result(done: "subprocess.CompletedProcess[str]") -> Dict[str, Any]:
    """A measuring child's report: the JSON object on its last line of output, or {"error": its last line
    of error output} when it failed."""
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare_models(
    checkpoint: Optional[str],
    sizes: List[Tuple[int, int]],
    work: Path,
    need_onnx: bool,
    need_int8: bool = False,
) -> Dict[Tuple[int, int], Dict[str, Path]]:
    """A checkpoint (and, if needed, an .onnx and its int8 quantisation, keys "pt", "onnx", "int8") per
    network size in ``work``: the given checkpoint re-targeted to the size (input_size, and train_focal scaled
    with the width), or a random-weight DepthNet."""
    import torch

    from fg_depth_core.config import Config
    from fg_depth_core.deploy.export import export_onnx
    from fg_depth_core.model import build_depthnet
    from fg_depth_core.model.checkpoint import load_checkpoint
    from fg_depth_core.train.checkpoint import save_checkpoint

    if checkpoint:
        base = load_checkpoint(checkpoint)
    else:
        cfg = Config()
        torch.manual_seed(0)
        base = {
            "model": build_depthnet(cfg.model, load_weights=False).state_dict(),
            "config": cfg.to_dict(),
            "step": 0,
            "train_focal": 0.58 * cfg.data.width,
            "train_baseline": 0.54,
            "input_size": [cfg.data.width, cfg.data.height],
        }
    models = {}
    for w, h in sizes:
        config = json.loads(json.dumps(base["config"]))
        config.setdefault("data", {}).update(width=w, height=h)
        state = {
            **{k: base[k] for k in ("model", "step", "train_baseline")},
            "config": config,
            "train_focal": float(base["train_focal"]) * w / float(base["input_size"][0]),
            "input_size": [w, h],
        }
        pt = work / f"depthnet_{w}x{h}.pt"
        save_checkpoint(pt, state)
        models[(w, h)] = {"pt": pt}
        if need_onnx or need_int8:
            onnx = work / f"depthnet_{w}x{h}.onnx"
            export_onnx(pt, onnx, h, w)
            models[(w, h)]["onnx"] = onnx
        if need_int8:
            models[(w, h)]["int8"] = quantize_for_bench(onnx, work / f"depthnet_{w}x{h}_int8.onnx")
    return models


def world_images(count: int, width: int, height: int) -> List[Any]:
    """``count`` camera images (H,W,3) uint8 of the built-in street, seeds 0.., seen by
    :func:`camera_image_intrinsics`."""
    from fg_depth_core.data.render import render_stereo
    from fg_depth_core.data.world import street_scene

    camera = camera_image_intrinsics(width, height)
    return [render_stereo(street_scene(seed), camera, 0.54).left for seed in range(count)]


def quantize_for_bench(onnx_path: Path, out: Path, activations: str = "uint8") -> Path:
    """The int8 model of an fg-depth .onnx as ``fg-depth export --quantize int8`` makes it, calibrated on
    :data:`BENCH_CALIBRATION_FRAMES` built-in world frames at the network size."""
    import onnx

    from fg_depth_core.deploy.export import write_int8_onnx
    from fg_depth_core.deploy.onnx_io import onnx_info

    model = onnx.load(str(onnx_path))
    info = onnx_info(model, str(onnx_path))
    images = world_images(BENCH_CALIBRATION_FRAMES, info.width, info.height)
    write_int8_onnx(model, images, info, "stretch", out, activations)
    return out


def machine_info() -> Dict[str, Any]:
    """Where a benchmark ran: usable cores, CPU model, Python, torch and onnxruntime versions (None where not
    installed), GPU name (None without CUDA)."""
    import torch

    try:
        import onnxruntime

        ort_version: Optional[str] = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cores": usable_cores(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# ------------------------------------------------------------------------------------------- reporting

_COLUMNS = (
    "backend | device | precision | network | load s | p50 ms | p95 ms | p50 of runs ms | frames/s | "
    "pre ms | forward ms | post ms | (pre+post)/forward | peak RSS MiB"
)


def best_run(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Of repeated runs of one row, the one with the lowest p50 (other processes only ever add time), with
    ``p50_runs_ms`` = [min, max] of the successful runs' p50; the last error if every run failed."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    best = dict(min(ok, key=lambda r: r["p50_ms"]))
    best["p50_runs_ms"] = [min(r["p50_ms"] for r in ok), max(r["p50_ms"] for r in ok)]
    best["runs"] = len(ok)
    best["fps_by_round"] = {int(r["round"]): r["fps"] for r in ok if "round" in r}
    return best


def round_ratio(faster: Dict[str, Any], slower: Dict[str, Any]) -> Optional[Dict[str, float]]:
    """Throughput of row ``faster`` over row ``slower`` in each round both ran (rows of :func:`best_run`):
    {"median", "min", "max", "rounds"}; None when they share no round. Rows of one round ran within the
    same minutes, so each round's ratio sees one load of a shared machine."""
    ratios = round_ratios(faster, slower)
    if not ratios:
        return None
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "rounds": len(ratios),
    }


def round_ratios(faster: Dict[str, Any], slower: Dict[str, Any]) -> List[float]:
    """Throughput of row ``faster`` over row ``slower`` in each round both ran, in round order."""
    a, b = faster.get("fps_by_round") or {}, slower.get("fps_by_round") or {}
    return [a[k] / b[k] for k in sorted(set(a) & set(b))]


def table(rows: List[Dict[str, Any]]) -> List[str]:
    """Markdown table of measured rows (failed rows show their error)."""
    lines = [f"| {_COLUMNS} |", "|---" * (_COLUMNS.count("|") + 1) + "|"]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['backend']} | {r['device']} | {r['precision']} | {r['network']} | "
                f"failed: {r['error']} |"
            )
            continue
        share = (r["pre_ms"] + r["post_ms"]) / r["forward_ms"]
        rss = f"{r['peak_rss_mib']:.0f}" if r.get("peak_rss_mib") is not None else "n/a"
        if r.get("peak_cuda_mib") is not None:
            rss += f" (CUDA {r['peak_cuda_mib']:.0f})"
        spread = r.get("p50_runs_ms")
        runs = f"{spread[0]:.0f}-{spread[1]:.0f} ({r['runs']})" if spread else "-"
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['precision']} | {r['network']} | {r['load_s']:.2f} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {runs} | {r['fps']:.2f} | {r['pre_ms']:.2f} | "
            f"{r['forward_ms']:.1f} | {r['post_ms']:.2f} | {100 * share:.1f}% | {rss} |"
        )
    return lines


@dataclass
class BenchRun:
    """One benchmark: the rows (best run of each, see :func:`best_run`) and what they were measured with."""

    rows: List[Dict[str, Any]]
    #: The command line that ran it, as the user typed it.
    command: str
    date: str
    threads: int
    iterations: int
    warmup: int
    repeats: int
    #: Camera image (width, height) that is pre- and post-processed.
    image_size: Tuple[int, int]
    #: "checkpoint PATH" or the random-weight DepthNet.
    model: str
    wall_s: float
    #: 1-minute load average before and after (None where the OS has none): others sharing the CPU.
    load_before: Optional[float]
    load_after: Optional[float]


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def run_benchmark(args: argparse.Namespace, command: str) -> BenchRun:
    """Every planned row (:data:`CPU_ROWS`, and :data:`GPU_ROWS` where CUDA is usable) x ``args.sizes``, each
    ``args.repeats`` times interleaved, progress printed per run; FgDepthError for bad options."""
    import torch

    sizes = [parse_size(s, "--sizes") for s in args.sizes]
    image_size = parse_size(args.image_size, "--image-size")
    if args.iterations < 1 or args.warmup < 0 or args.repeats < 1:
        raise FgDepthError(
            "--iterations and --repeats must be >= 1 and --warmup >= 0, got "
            f"{args.iterations}, {args.repeats}, {args.warmup}"
        )
    if args.threads < 0:
        raise FgDepthError(f"--threads: expected >= 0, got {args.threads}")
    threads = args.threads or usable_cores()
    cuda = torch.cuda.is_available() and not args.no_gpu
    precisions = args.precisions
    openvino = importlib.util.find_spec("openvino") is not None
    plan = [
        r
        for r in CPU_ROWS + (GPU_ROWS if cuda else ())
        if r[0] in args.backends and r[2] in precisions and (r[0] != "openvino" or openvino)
    ]
    if not plan:
        raise FgDepthError(f"--backends {' '.join(args.backends)}: nothing to time on this machine")
    load_before = load_average()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fg-depth-bench-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"bench: preparing models for {', '.join(args.sizes)} in {work}", flush=True)
        models = prepare_models(
            args.checkpoint,
            sizes,
            work,
            need_onnx=any(b != "torch" and p != "int8" for b, _, p in plan),
            need_int8=any(p == "int8" for _, _, p in plan),
        )
        image = render_camera_image(work / "camera.png", *image_size)
        runs: Dict[Tuple[Any, ...], List[Dict[str, Any]]] = {}
        for repeat, size, (backend, device, precision) in (
            (r, size, row) for r in range(args.repeats) for size in sizes for row in plan
        ):
            model = models[size]["pt" if backend == "torch" else "int8" if precision == "int8" else "onnx"]
            spec = {
                "model": str(model),
                "backend": backend,
                "device": device,
                "precision": precision,
                "threads": threads,
                "image": str(image),
                "iterations": args.iterations,
                "warmup": args.warmup,
                "cache_dir": str(work / "tensorrt"),
            }
            row = run_row(spec)
            row.setdefault("backend", backend)
            row.setdefault("device", device)
            row.setdefault("precision", precision)
            row.setdefault("network", f"{size[0]}x{size[1]}")
            row["round"] = repeat
            runs.setdefault((size, backend, device, precision), []).append(row)
            print(f"run {repeat + 1}/{args.repeats}: " + table([row])[2], flush=True)
    return BenchRun(
        rows=[best_run(r) for r in runs.values()],
        command=command,
        date=datetime.date.today().isoformat(),
        threads=threads,
        iterations=args.iterations,
        warmup=args.warmup,
        repeats=args.repeats,
        image_size=image_size,
        model=f"checkpoint {args.checkpoint}" if args.checkpoint else RANDOM_MODEL,
        wall_s=time.time() - started,
        load_before=load_before,
        load_after=load_average(),
    )


def write_json(path: Path, bench: BenchRun) -> None:
    """``bench`` (rows and settings) and :func:`machine_info` as one JSON object in ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**asdict(bench), "machine": machine_info()}, indent=1) + "\n")


# ------------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    """``fg-depth bench``: measure, print the table, write ``--json``."""
    command = "fg-depth bench " + " ".join(map(shlex.quote, sys.argv[2:]))
    bench = run_benchmark(args, command)
    print("\n".join(["", *table(bench.rows)]))
    if args.json:
        write_json(Path(args.json), bench)
        print(f"rows -> {args.json}")
    return 0
