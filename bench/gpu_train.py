#!/usr/bin/env python3
"""Training on a GPU with mixed precision: baseline and FG-Depth for a fixed number of steps at 640x192 on the
built-in world, with the throughput (steps/s, images/s), a check that the depth heads ran in float32 while
the rest of the network ran under autocast, and both models scored on the world's test split.

    .venv/bin/python bench/gpu_train.py                    # on a machine with a CUDA GPU (a few minutes)
    .venv/bin/python bench/gpu_train.py --device cpu --autocast bfloat16 --steps 3 --warmup 1 \\
        --width 128 --height 64 --train-frames 4 --test-frames 2 --no-write     # the same code on a CPU

Per preset, one process-local Trainer (fg_depth_core/train/trainer.py, the code `fg-depth train` runs) with
train.amp on: bfloat16 autocast where the GPU supports it, else float16 with a gradient scaler (--autocast
forces one, also on the CPU). Forward hooks record the dtype of every head's output and of the encoder's
first convolution's output in every training step; the script fails unless every head gave float32 and the
encoder ran in the autocast dtype. The timed steps exclude --warmup steps (cuDNN's algorithm search, the
teacher cache being read for the first time) and include data loading, as training does, but not the final
validation and checkpoint. Each last.pt is
scored by `fg-depth eval` on the world's test split. On CUDA the section "Training on a GPU" of
docs/RESULTS.md is written (unless --no-write); --json keeps everything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from fg_depth_core.config import load_config  # noqa: E402
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## Training on a GPU"
BASE_CONFIG = ROOT / "config" / "train_synth.yaml"
AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}


class HeadCheckError(RuntimeError):
    """A depth head ran in reduced precision, or autocast was not on where it should be."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train baseline and FG-Depth with AMP for a fixed number of steps; time and score them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--device", default="cuda", help="torch device to train on (cuda, cuda:N or cpu)")
    p.add_argument("--autocast", choices=("auto", *AUTOCAST), default="auto",
                   help="autocast dtype; auto: bfloat16 where the GPU supports it, else float16 (CUDA only)")
    p.add_argument("--presets", nargs="+", default=["baseline", "fgdepth"], help="loss presets to train")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per preset (warm-up included)")
    p.add_argument("--warmup", type=int, default=20, help="first steps left out of the timing")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    p.add_argument("--width", type=int, default=640, help="network input width")
    p.add_argument("--height", type=int, default=192, help="network input height")
    p.add_argument("--train-frames", type=int, default=200, help="training pairs of the world")
    p.add_argument("--test-frames", type=int, default=40, help="held-out test pairs scored")
    p.add_argument("--learning-rate", type=float, default=2e-4, help="Adam learning rate")
    p.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0, help="seed of the world and of training")
    p.add_argument("--out", default=str(ROOT / "outputs" / "gpu_train"), help="work folder")
    p.add_argument("--json", default=None, help="write the results as JSON here too")
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update (CUDA only)")
    p.add_argument("--no-write", action="store_true", help="do not touch the markdown file")
    return p.parse_args(argv)


def overrides(args: argparse.Namespace, out: Path) -> List[str]:
    """The settings every preset shares: the budget, the world, 640x192 with SGBM's range for that width."""
    # SGBM's range scales with the width: 96 disparities at 640 px, as config/train_synth.yaml says.
    disparities = max(16, round(96 * args.width / 640 / 16) * 16)
    return [
        f"data.width={args.width}",
        f"data.height={args.height}",
        f"data.path={out / 'world'}",
        f"data.num_workers={args.workers}",
        f"data.synth.seed={args.seed}",
        f"data.synth.train_frames={args.train_frames}",
        "data.synth.val_frames=4",
        f"data.synth.test_frames={args.test_frames}",
        f"teacher.sgbm.num_disparities={disparities}",
        f"teacher.cache_dir={out / 'teacher_cache'}",
        f"train.seed={args.seed}",
        f"train.max_steps={args.steps}",
        f"train.batch_size={args.batch_size}",
        f"train.learning_rate={args.learning_rate}",
        f"train.device={'cpu' if args.device == 'cpu' else 'cuda'}",
        "train.amp=true",
        f"train.checkpoint_every={args.steps}",
        f"train.val_every={args.steps}",
        f"train.log_every={max(1, args.steps // 10)}",
        "train.image_every=0",
    ]


def autocast_dtype(args: argparse.Namespace) -> Optional[torch.dtype]:
    """The dtype to force (None: the trainer's choice on CUDA); the CPU needs one named."""
    if args.autocast != "auto":
        return AUTOCAST[args.autocast]
    if args.device == "cpu":
        raise SystemExit("gpu_train: --device cpu needs --autocast bfloat16 (no automatic choice on a CPU)")
    return None


class PrecisionProbe:
    """Forward hooks on the training network: the output dtypes of the depth heads and of the encoder's first
    convolution, and the time each training step's forward pass began (validation, in eval mode, is not
    counted). The trainer reads the loss back every step, so those times follow the device's progress."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.heads: Dict[str, int] = {}
        self.encoder: Dict[str, int] = {}
        self.step_starts: List[float] = []
        self._handles = [head.register_forward_hook(self._record(self.heads)) for head in net.decoder.heads]
        self._handles.append(net.encoder.conv1.register_forward_hook(self._record(self.encoder, True)))

    def _record(self, counts: Dict[str, int], clock: bool = False) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if not module.training:
                return
            name = str(output.dtype).replace("torch.", "")
            counts[name] = counts.get(name, 0) + 1
            if clock:
                self.step_starts.append(time.perf_counter())

        return hook

    def rate(self, warmup: int) -> "tuple[int, float]":
        """(steps timed, seconds) from the start of step ``warmup`` + 1 to that of the last step."""
        starts = self.step_starts[warmup:]
        if len(starts) < 2:
            raise HeadCheckError(f"only {len(self.step_starts)} training steps ran; time needs warm-up + 2")
        return len(starts) - 1, starts[-1] - starts[0]

    def check(self, expected_autocast: torch.dtype) -> None:
        """HeadCheckError unless every head output was float32 and the encoder ran in the autocast dtype."""
        autocast = str(expected_autocast).replace("torch.", "")
        if set(self.heads) != {"float32"}:
            raise HeadCheckError(f"the depth heads ran in {self.heads} (dtype: calls), expected float32 only")
        if set(self.encoder) != {autocast}:
            raise HeadCheckError(f"the encoder ran in {self.encoder}, expected {autocast} (no autocast?)")

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def train_preset(args: argparse.Namespace, preset: str, sets: List[str], out: Path) -> Dict[str, Any]:
    """Train ``preset``, time the steps after the warm-up, check the heads' precision; its numbers."""
    from fg_depth_core.train.trainer import Trainer

    cfg = load_config(BASE_CONFIG, sets + [f"loss.preset={preset}"])
    run_dir = out / preset
    shutil.rmtree(run_dir, ignore_errors=True)
    trainer = Trainer(cfg, run_dir, progress=False, autocast_dtype=autocast_dtype(args))
    if trainer.amp_dtype is None:
        raise HeadCheckError(f"no autocast on {trainer.device}: train.amp acts on CUDA only")
    if trainer.device.type == "cuda" and args.device.startswith("cuda:"):
        torch.cuda.set_device(trainer.device)
    probe = PrecisionProbe(trainer.net)
    trainer.run()
    probe.remove()
    probe.check(trainer.amp_dtype)
    steps, seconds = probe.rate(args.warmup)
    result = {
        "preset": preset,
        "device": str(trainer.device),
        "autocast": str(trainer.amp_dtype).replace("torch.", ""),
        "timed_steps": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "images_per_s": steps * args.batch_size / seconds,
        "head_dtypes": probe.heads,
        "encoder_dtypes": probe.encoder,
    }
    if trainer.device.type == "cuda":
        result["peak_memory_mib"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        torch.cuda.reset_peak_memory_stats(trainer.device)
    return result


def evaluate(run_dir: Path, world: Path, device: str) -> Dict[str, float]:
    """`fg-depth eval` of RUN_DIR/last.pt on the world's test split (the checkpoint's protocol)."""
    from fg_depth_core import cli

    path = run_dir / "metrics.json"
    argv = ["eval", "--checkpoint", str(run_dir / "last.pt"), "--data", "synth", "--data-path", str(world),
            "--device", device, "--num-workers", "0", "--json", str(path)]
    if cli.main(argv) != 0:
        raise RuntimeError(f"gpu_train: fg-depth eval failed for {run_dir}")
    return json.loads(path.read_text())


def device_name(device: str) -> str:
    if device == "cpu" or not torch.cuda.is_available():
        return "CPU"
    return torch.cuda.get_device_name(torch.device(device))


def section(args: argparse.Namespace, results: List[Dict[str, Any]], argv: Sequence[str]) -> str:
    command = " ".join(["python", "bench/gpu_train.py", *map(shlex.quote, argv)])
    lines = [
        SECTION,
        "",
        "Baseline and FG-Depth trained with mixed precision (train.amp) on the built-in world, one Trainer "
        "per preset in one process; the timing leaves out the warm-up steps and includes data loading; the "
        "checks assert that every depth head ran in float32 while the encoder ran under autocast.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_description()}; device {device_name(args.device)}",
        f"- Date: {datetime.date.today().isoformat()}; {args.steps} steps per preset ({args.warmup} warm-up) "
        f"of batch {args.batch_size} at {args.width}x{args.height}, {args.train_frames} training pairs, "
        f"{args.workers} data workers, teacher sgbm",
        "",
        "| preset | autocast | head dtype | steps/s | images/s | peak GPU MiB | abs_rel | rmse | a1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["metrics"]
        memory = f"{r['peak_memory_mib']:.0f}" if "peak_memory_mib" in r else "-"
        lines.append(
            f"| {r['preset']} | {r['autocast']} | {', '.join(r['head_dtypes'])} | {r['steps_per_s']:.2f} | "
            f"{r['images_per_s']:.1f} | {memory} | {m['abs_rel']:.4f} | {m['rmse']:.3f} | {m['a1']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.warmup < 0 or args.steps < args.warmup + 2:
        raise SystemExit("gpu_train: --warmup must be >= 0 and --steps >= warm-up + 2")
    if args.device != "cpu" and not torch.cuda.is_available():
        raise SystemExit(f"gpu_train: --device {args.device} but CUDA is not available (try --device cpu)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sets = overrides(args, out)
    results = []
    for preset in args.presets:
        print(f"== {preset}", flush=True)
        r = train_preset(args, preset, sets, out)
        r["metrics"] = evaluate(out / preset, out / "world", args.device)
        results.append(r)
        print(
            f"   {preset}: {r['steps_per_s']:.2f} steps/s, {r['images_per_s']:.1f} images/s, autocast "
            f"{r['autocast']}, heads {r['head_dtypes']}; abs_rel {r['metrics']['abs_rel']:.4f}",
            flush=True,
        )
    text = section(args, results, argv)
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"argv": argv, "results": results}, indent=1) + "\n")
    if args.device != "cpu" and not args.no_write:
        write_section(Path(args.results), SECTION, text)
        print(f"gpu_train: section written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
