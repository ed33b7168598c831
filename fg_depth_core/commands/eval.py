"""``fg-depth eval``: score a checkpoint on a dataset's test split with the standard depth protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List

from fg_depth_core.config import DATASETS
from fg_depth_core.errors import FgDepthError

if TYPE_CHECKING:
    import torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint: AbsRel, SqRel, RMSE, RMSE_log, delta<1.25^k on a test split",
        description="Predict depth for every frame of the test split at the checkpoint's input size, rescale "
        "it to the evaluation camera's focal length (D' = D * f / f_train), resize it to the ground truth's "
        "resolution and score it: Garg crop, depths in [eval.min_depth, eval.max_depth] (the checkpoint's "
        "eval section, 1e-3..80 m by default), predictions clamped to that range, mean over frames.",
    )
    p.add_argument(
        "--checkpoint", required=True, help="checkpoint written by fg-depth train (last.pt, best.pt)"
    )
    p.add_argument(
        "--data",
        required=True,
        choices=DATASETS,
        help="dataset kind: kitti (raw layout), folder (stereo folder with depth/), synth (a "
        "directory written by fg-depth synth)",
    )
    p.add_argument("--data-path", required=True, help="dataset root")
    p.add_argument("--split-file", default=None, help="test split file (default: the dataset's test split)")
    p.add_argument(
        "--median-scaling",
        action="store_true",
        help="scale each prediction by median(gt)/median(pred) (monocular-trained models only)",
    )
    p.add_argument(
        "--save-pred",
        default=None,
        metavar="PRED.npz",
        help="write each frame's predicted depth (float32 m, at the ground truth's resolution) under "
        "keys 000000, 000001, ... in the split's order",
    )
    p.add_argument("--json", default=None, metavar="METRICS.json", help="write the metrics and frame count")
    p.add_argument("--batch-size", type=int, default=4, help="frames per forward pass (default: 4)")
    p.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="data-loading processes (default: the checkpoint's data.num_workers)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.set_defaults(func=run)


def resolve_device(spec: str) -> "torch.device":
    """``auto`` -> CUDA when available, else CPU; anything else must name an available torch device."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise FgDepthError(f"--device: expected auto, cpu, cuda or cuda:N, got {spec!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FgDepthError(f"--device {spec}: CUDA is not available on this machine")
    return device


class NetworkPredictor:
    """A DepthNet as an evaluate() predictor: batched forward at the network input size, then the focal
    scaling D' = D * f / f_train per frame (f from the sample's intrinsics at that size)."""

    def __init__(self, net: "torch.nn.Module", device: "torch.device", train_focal: float) -> None:
        self.net = net
        self.device = device
        self.train_focal = float(train_focal)
        #: The focal factor applied to each frame, in order (for the report).
        self.factors: List[float] = []

    def predict_batch(self, samples: List[Dict[str, Any]]) -> List[Any]:
        import torch

        from fg_depth_core.camera import focal_scale

        images = torch.stack([s["left"] for s in samples]).to(self.device)
        with torch.inference_mode():
            depth = self.net.predict(images).float().cpu()
        out = []
        for sample, d in zip(samples, depth):
            factor = focal_scale(float(sample["focal"]), self.train_focal)
            self.factors.append(factor)
            out.append((d[0] * factor).numpy() if factor != 1.0 else d[0].numpy())
        return out

    def __call__(self, sample: Dict[str, Any]) -> Any:
        return self.predict_batch([sample])[0]


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from fg_depth_core.data.factory import build_dataset
    from fg_depth_core.evaluate import evaluate, format_table, metrics_json
    from fg_depth_core.model.checkpoint import load_model

    if args.batch_size < 1:
        raise FgDepthError(f"--batch-size: expected >= 1, got {args.batch_size}")
    if args.num_workers is not None and args.num_workers < 0:
        raise FgDepthError(f"--num-workers: expected >= 0, got {args.num_workers}")
    device = resolve_device(args.device)
    net, cfg, state = load_model(args.checkpoint, device)
    width, height = (int(v) for v in state["input_size"])
    data_cfg = dataclasses.replace(
        cfg.data, dataset=args.data, width=width, height=height, path=args.data_path
    )
    dataset = build_dataset(data_cfg, split="test", path=args.data_path, split_file=args.split_file)
    eval_cfg = dataclasses.replace(cfg.eval, median_scaling=cfg.eval.median_scaling or args.median_scaling)
    num_workers = cfg.data.num_workers if args.num_workers is None else args.num_workers

    predictor = NetworkPredictor(net, device, float(state["train_focal"]))
    print(
        f"evaluating {args.checkpoint} (step {state['step']}, input {width}x{height}) on {len(dataset)} "
        f"{args.data} frames from {args.data_path} [{device}]"
    )
    result = evaluate(
        predictor,
        dataset,
        eval_cfg,
        save_pred=args.save_pred,
        batch_size=args.batch_size,
        num_workers=num_workers,
    )
    factors = np.asarray(predictor.factors)
    if factors.size and np.any(np.abs(factors - 1.0) > 1e-6):
        print(
            f"focal scaling: train focal {float(state['train_focal']):.2f} px; depth multiplied by "
            f"{factors.min():.4f}..{factors.max():.4f} (eval focal / train focal at {width}x{height})"
        )
    print(format_table(result))
    if args.save_pred:
        print(f"predictions -> {args.save_pred}")
    if args.json:
        path = Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics_json(result), indent=1) + "\n")
        except OSError as exc:
            raise FgDepthError(f"--json {path}: cannot write ({exc})") from None
        print(f"metrics -> {path}")
    return 0
