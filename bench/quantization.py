#!/usr/bin/env python3
"""int8's accuracy cost: a DepthNet trained at the ablation budget (bench/ablation.py's defaults, preset
fgdepth, on the built-in world), exported to ONNX in float32 and quantised to int8 (``fg-depth export
--quantize int8``, calibrated on frames of its training data), each scored on the world's held-out test split
with the checkpoint's evaluation protocol; writes the "int8 quantisation: accuracy" section of
docs/RESULTS.md with the verdict on issue 16's target (int8 at most 2 % relative AbsRel above float32).

    .venv/bin/python bench/quantization.py                    # trains first (about 5 min on 2 free cores)
    .venv/bin/python bench/quantization.py --calibration-frames 8 32 128     # one int8 model per count
    .venv/bin/python bench/quantization.py --steps 2 --train-frames 4 --test-frames 2 \\
        --calibration-frames 2 --out /tmp/q --results /tmp/r.md                    # smoke

Training goes to OUT/fgdepth (``fg-depth train`` in a fresh process, as the ablation runs it); a run there
whose stored configuration is the one this budget asks for is reused. The three models see the same test
frames at the network's input size, and their depth is rescaled by the same focal ratio; the ONNX models run
in ONNX Runtime on the CPU (fg_depth_core.deploy.backends), the checkpoint in PyTorch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from bench import ablation  # noqa: E402
from fg_depth_core.config import load_config  # noqa: E402
from fg_depth_core.deploy.calibration import DEFAULT_CALIBRATION_FRAMES  # noqa: E402
from fg_depth_core.metrics import METRIC_NAMES  # noqa: E402
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## int8 quantisation: accuracy on the built-in world"
PRESET = "fgdepth"
#: Issue 16's target: int8's AbsRel at most this much (relative) above the float32 model's.
ABS_REL_TARGET = 0.02


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    defaults = ablation.parse_args([])
    p = argparse.ArgumentParser(
        description="Train at the ablation budget, export float32 and int8 ONNX, score them on the test set.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=str(ROOT / "outputs" / "quantization"), help="work folder")
    p.add_argument("--checkpoint", default=None, help="score this checkpoint instead of training one")
    p.add_argument(
        "--calibration-frames",
        type=int,
        nargs="+",
        default=[DEFAULT_CALIBRATION_FRAMES],
        help="frames of the training data to calibrate on; one int8 model per count",
    )
    for name in ("steps", "batch_size", "train_frames", "test_frames", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    return p.parse_args(argv)


def budget(args: argparse.Namespace, out: Path) -> List[str]:
    """bench/ablation.py's overrides for this budget, and the preset."""
    argv = ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    argv += ["--train-frames", str(args.train_frames), "--test-frames", str(args.test_frames)]
    return ablation.config_overrides(ablation.parse_args(argv), out, args.seed) + [f"loss.preset={PRESET}"]


def train(overrides: List[str], out: Path) -> Dict[str, Any]:
    """OUT/fgdepth/last.pt trained with ``overrides``, reusing a finished run with the same configuration."""
    import torch

    run_dir = out / PRESET
    wanted = load_config(ablation.BASE_CONFIG, overrides).to_dict()
    last = run_dir / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state.get("config") == wanted and int(state.get("step", -1)) == wanted["train"]["max_steps"]:
            print(f"quantization: reusing {last} (same configuration, step {state['step']})", flush=True)
            return {"checkpoint": last, "train_s": None}
    run_dir.mkdir(parents=True, exist_ok=True)
    sets: List[str] = []
    for item in overrides:
        sets += ["--set", item]
    seconds = ablation.run_cli(
        ["train", "--config", str(ablation.BASE_CONFIG), "--out", str(run_dir), "--no-progress", *sets],
        out / "train.log",
        ablation.threads_per_job(1),
        echo=True,
    )
    return {"checkpoint": last, "train_s": seconds}


class BackendPredictor:
    """An exported model as an evaluate() predictor: the sample's network-size image through the backend,
    then the focal scaling D' = D * f / f_train (as fg-depth eval does for a checkpoint)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def predict_batch(self, samples: List[Dict[str, Any]]) -> List[Any]:
        import numpy as np

        from fg_depth_core.camera import focal_scale

        images = np.stack([s["left"].numpy() for s in samples]).astype(np.float32)
        depth = self.backend.forward(images)
        train_focal = self.backend.info.train_focal
        return [d[0] * focal_scale(float(s["focal"]), train_focal) for s, d in zip(samples, depth)]

    def __call__(self, sample: Dict[str, Any]) -> Any:
        return self.predict_batch([sample])[0]


def score(checkpoint: Path, out: Path, frame_counts: List[int]) -> Tuple[Dict[str, Dict[str, Any]], Any]:
    """Metrics of the checkpoint (PyTorch), its float32 .onnx and one int8 .onnx per calibration count, and
    the checkpoint's configuration."""
    import dataclasses

    import torch

    from fg_depth_core.commands.eval import NetworkPredictor
    from fg_depth_core.data.factory import build_dataset
    from fg_depth_core.deploy.backends.onnxruntime_backend import OnnxRuntimeBackend
    from fg_depth_core.deploy.export import export_onnx
    from fg_depth_core.evaluate import evaluate
    from fg_depth_core.model.checkpoint import load_model

    net, cfg, state = load_model(checkpoint, "cpu")
    width, height = (int(v) for v in state["input_size"])
    data_cfg = dataclasses.replace(cfg.data, width=width, height=height)
    dataset = build_dataset(data_cfg, "test", path=cfg.data.path)
    results: Dict[str, Dict[str, Any]] = {}

    def run(name: str, predictor: Any, extra: Dict[str, Any]) -> None:
        start = time.time()
        metrics = evaluate(predictor, dataset, cfg.eval, batch_size=4, progress=False)
        results[name] = {**metrics, **extra, "eval_s": time.time() - start}
        print(f"   {name}: abs_rel {metrics['abs_rel']:.4f}, a1 {metrics['a1']:.4f}", flush=True)

    run("PyTorch checkpoint", NetworkPredictor(net, torch.device("cpu"), float(state["train_focal"])), {})
    float_path = out / "model_fp32.onnx"
    export_onnx(checkpoint, float_path)
    run("ONNX float32", BackendPredictor(OnnxRuntimeBackend(float_path)), {"path": str(float_path)})
    for count in frame_counts:
        path = out / f"model_int8_{count}.onnx"
        lines: List[str] = []
        start = time.time()
        export_onnx(checkpoint, path, quantize="int8", calibration_frames=count, log=lines.append)
        extra = {"path": str(path), "calibration": lines[-1], "export_s": time.time() - start}
        used = lines[-1].split(" on ", 1)[-1].split()[0]  # "N of M frames of ...": fewer when M < count
        run(f"ONNX int8, {used} calibration frames", BackendPredictor(OnnxRuntimeBackend(path)), extra)
    return results, cfg


def section(
    command: str,
    cfg: Any,
    results: Dict[str, Dict[str, Any]],
    train_s: Optional[float],
    total_s: float,
    given: Optional[str] = None,
) -> str:
    """The RESULTS.md section: command, machine, model (``given``: the --checkpoint scored instead of a
    model trained here), the table and the verdicts."""
    rows = ["| model | " + " | ".join(METRIC_NAMES) + " |", "|---" * (len(METRIC_NAMES) + 1) + "|"]
    for name, m in results.items():
        rows.append(f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in METRIC_NAMES) + " |")
    reference = results["ONNX float32"]
    verdicts = []
    for name, m in results.items():
        if not name.startswith("ONNX int8"):
            continue
        change = (m["abs_rel"] - reference["abs_rel"]) / reference["abs_rel"]
        met = "met" if change <= ABS_REL_TARGET else "NOT met"
        verdicts.append(
            f"- {name}: abs_rel {reference['abs_rel']:.4f} -> {m['abs_rel']:.4f} ({100 * change:+.2f} % "
            f"relative to float32; target <= +{100 * ABS_REL_TARGET:.0f} %: {met}); "
            f"a1 {reference['a1']:.4f} -> {m['a1']:.4f}; calibration: {m['calibration'].split(' on ', 1)[-1]}"
        )
    if given is not None:
        trained = f"{given}, given by --checkpoint: its configuration below"
    elif train_s is None:
        trained = "reused from an earlier run"
    else:
        trained = f"trained in {train_s:.0f} s"
    lines = [
        SECTION,
        "",
        "What int8 quantisation (`fg-depth export --quantize int8`) costs in accuracy: one DepthNet trained "
        "at the ablation budget, scored as a PyTorch checkpoint, as its float32 ONNX export and as int8 "
        "exports calibrated on frames of its training data, all on the same held-out test frames with the "
        "same protocol. The ONNX models run in ONNX Runtime on the CPU.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()} (only accuracy is reported, so the CPU's load does not matter)",
        f"- Date: {datetime.date.today().isoformat()}; wall time {total_s / 60:.1f} min (model {trained})",
        f"- Model: preset {cfg.loss.preset} (L_dr in {cfg.loss.dr_units}), {cfg.train.max_steps} steps of "
        f"batch {cfg.train.batch_size} at "
        f"{cfg.data.width}x{cfg.data.height}, Adam lr {cfg.train.learning_rate:g}, {cfg.model.encoder}, seed "
        f"{cfg.train.seed}; {cfg.data.synth.train_frames} training pairs of config/train_synth.yaml's world, "
        f"teacher {cfg.teacher.method} (bench/ablation.py's budget)",
        f"- Evaluation: {next(iter(results.values()))['frames']} test frames at the network size "
        f"{cfg.data.width}x{cfg.data.height}, ground truth at "
        f"{cfg.data.synth.width}x{cfg.data.synth.height}, "
        f"depths in [{cfg.eval.min_depth:g}, {cfg.eval.max_depth:g}] m, no Garg crop, no median scaling",
        "",
        *rows,
        "",
        *verdicts,
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if min(args.calibration_frames) < 1:
        sys.exit("quantization: --calibration-frames must be >= 1")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.checkpoint:
        trained = {"checkpoint": Path(args.checkpoint), "train_s": None}
    else:
        overrides = budget(args, out)
        ablation.prepare(overrides, out)
        trained = train(overrides, out)
    results, cfg = score(trained["checkpoint"], out, args.calibration_frames)
    (out / "quantization.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    command = " ".join(["python", "bench/quantization.py", *map(shlex.quote, argv)])
    text = section(command, cfg, results, trained["train_s"], time.time() - start, args.checkpoint)
    print()
    print(text)
    if not args.no_write:
        write_section(Path(args.results), SECTION, text)
        print(f"quantization: section written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
