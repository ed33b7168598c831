"""``fg-depth eval``: score a checkpoint on a dataset's test split with the standard depth protocol.

The protocol belongs to the data: ``--data kitti`` applies the KITTI Eigen protocol of the published tables
(EvalConfig's defaults) whatever the checkpoint was trained with; other datasets use the checkpoint's eval
section. ``--set eval.KEY=VALUE`` and the protocol flags override either, and the protocol in effect is
printed above the table and written into the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from fg_depth_core.config import DATASETS, KITTI_GT_SOURCES, VELODYNE_DEPTHS
from fg_depth_core.errors import FgDepthError

if TYPE_CHECKING:
    import torch

    from fg_depth_core.config import EvalConfig

#: Where the protocol comes from, by dataset kind (any other: the checkpoint's eval section).
KITTI_ORIGIN = "the KITTI Eigen protocol"
CHECKPOINT_ORIGIN = "the checkpoint's eval section"
#: The protocol flags: each is both the argparse destination and the eval key it overrides.
PROTOCOL_FLAGS = (
    "gt", "velodyne_depth", "garg_crop", "min_depth", "max_depth", "median_scaling", "post_process"
)
#: Eval keys that only KITTI reads.
KITTI_ONLY_KEYS = ("gt", "velodyne_depth")
#: Frames named in an error about missing ground truth, at most.
LISTED_FRAMES = 5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint: AbsRel, SqRel, RMSE, RMSE_log, delta<1.25^k on a test split",
        description="Predict depth for every frame of the test split at the checkpoint's input size, rescale "
        "it to the evaluation camera's focal length (D' = D * f / f_train), resize it in disparity to the "
        "ground truth's resolution and score it. --data kitti uses the KITTI Eigen protocol of the "
        "published tables whatever the checkpoint was trained with: velodyne ground truth (depth = the "
        "point's velodyne x), Garg crop, ground truth in (1e-3, 80) m, predictions clamped to that range, "
        "mean over frames, no median scaling, no post-processing; only the target camera's image is read. "
        "Other datasets use the checkpoint's eval section. The flags below and --set eval.KEY=VALUE "
        "override either; the protocol in effect is printed above the table and written into the JSON. "
        "Frames without ground truth are skipped and counted (or refused with --strict).",
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
    add_protocol_arguments(p)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="eval.KEY=VALUE",
        help="override a protocol setting, e.g. --set eval.max_depth=50 (repeatable; value parsed as YAML; "
        "docs/CONFIG.md lists the eval keys); the flags above win over it",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to evaluate when a frame has no ground truth (default: skip it and count it)",
    )
    p.add_argument(
        "--save-pred",
        default=None,
        metavar="PRED.npz",
        help="write each frame's predicted depth (float32 m, at the ground truth's resolution) under "
        "keys 000000, 000001, ... in the split's order",
    )
    p.add_argument(
        "--json",
        default=None,
        metavar="METRICS.json",
        help="write the metrics, the frames scored and skipped, and the protocol",
    )
    p.add_argument("--batch-size", type=int, default=4, help="frames per forward pass (default: 4)")
    p.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="data-loading processes (default: the checkpoint's data.num_workers)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.set_defaults(func=run)


def add_protocol_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that override single protocol settings (eval.*); None when not given."""
    p.add_argument(
        "--gt",
        choices=KITTI_GT_SOURCES,
        default=None,
        help="KITTI ground truth, one source for every frame: velodyne (the raw scan projected, as the "
        "published tables) or improved (the depth benchmark's proj_depth maps) (eval.gt)",
    )
    p.add_argument(
        "--velodyne-depth",
        choices=VELODYNE_DEPTHS,
        default=None,
        help="what a velodyne point writes into the KITTI ground truth: velodyne_x (the published "
        "convention) or camera_z (eval.velodyne_depth)",
    )
    p.add_argument(
        "--garg-crop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score only inside Garg's crop (eval.garg_crop)",
    )
    p.add_argument(
        "--min-depth",
        type=float,
        default=None,
        metavar="M",
        help="near end of the ground truth range, metres; predictions are clamped up to it (eval.min_depth)",
    )
    p.add_argument(
        "--max-depth",
        type=float,
        default=None,
        metavar="M",
        help="far end of the ground truth range, metres; predictions are clamped down to it (eval.max_depth)",
    )
    p.add_argument(
        "--median-scaling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="scale each prediction by median(gt)/median(pred), for monocular-trained models only "
        "(eval.median_scaling)",
    )
    p.add_argument(
        "--post-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average with the mirrored image's prediction in disparity, Monodepth2's post-processing "
        "(eval.post_process); two forward passes per frame",
    )


def resolve_protocol(
    checkpoint_eval: "EvalConfig", data: str, overrides: List[str], flags: Dict[str, Any]
) -> Tuple["EvalConfig", Dict[str, Any]]:
    """The protocol of an evaluation of ``data``: KITTI's (EvalConfig's defaults) for "kitti", else
    ``checkpoint_eval``; then ``overrides`` ("eval.KEY=VALUE") and then ``flags`` (eval key -> value, None
    = not given). Returns the validated EvalConfig and the protocol's record (describe_protocol) with the
    overrides that were applied."""
    import dataclasses

    from fg_depth_core.config import ConfigError, EvalConfig, apply_override, config_from_dict
    from fg_depth_core.evaluate import describe_protocol

    base = EvalConfig() if data == "kitti" else checkpoint_eval
    tree: Dict[str, Any] = {"eval": dataclasses.asdict(base)}
    applied = []
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not key.startswith("eval."):
            raise ConfigError(
                f"--set {item!r}: fg-depth eval takes only protocol settings, eval.KEY=VALUE (the "
                "model's own settings are the checkpoint's)"
            )
        apply_override(tree, item)
        applied.append(item.strip())
    for key, value in flags.items():
        if value is not None:
            tree["eval"][key] = value
            applied.append(f"eval.{key}={json.dumps(value)}")
    cfg = config_from_dict(tree, "fg-depth eval").eval
    if data != "kitti":
        changed = [k for k in KITTI_ONLY_KEYS if getattr(cfg, k) != getattr(base, k)]
        if changed:
            flag = "--" + changed[0].replace("_", "-")
            raise FgDepthError(
                f"eval.{changed[0]} ({flag}) chooses KITTI ground truth; --data {data} scores the dataset's "
                "own depth maps"
            )
    origin = KITTI_ORIGIN if data == "kitti" else CHECKPOINT_ORIGIN
    return cfg, describe_protocol(cfg, data, origin, {"overrides": applied})


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


def frames_without_gt(dataset: Any, strict: bool) -> List[int]:
    """Before predicting, the frames of a dataset that can tell (``frames_without_gt``: KITTI) that have no
    ground-truth file, with a note of how many will be skipped. FgDepthError naming the first few and the
    files they lack when ``strict``, or when no frame has ground truth at all."""
    missing_of = getattr(dataset, "frames_without_gt", None)
    missing = list(missing_of()) if missing_of is not None else []
    if not missing:
        return []
    if strict:
        raise FgDepthError(f"--strict: {missing_gt_message(dataset, missing)}")
    if len(missing) == len(dataset):
        raise FgDepthError(f"nothing to score: {missing_gt_message(dataset, missing)}")
    print(f"note: {len(missing)} of {len(dataset)} frames have no {dataset.gt} ground truth; skipped")
    return missing


def missing_gt_message(dataset: Any, missing: List[int]) -> str:
    """"N of M frames have no <source> ground truth: <frame> (<expected file>); ..." for a KITTI dataset
    and the indices of its frames without ground truth (the first LISTED_FRAMES named)."""
    listed = "; ".join(f"{dataset.name(i)} ({dataset.gt_path(i)})" for i in missing[:LISTED_FRAMES])
    more = f" and {len(missing) - LISTED_FRAMES} more" if len(missing) > LISTED_FRAMES else ""
    return f"{len(missing)} of {len(dataset)} frames have no {dataset.gt} ground truth: {listed}{more}"


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from fg_depth_core.data.factory import build_dataset
    from fg_depth_core.evaluate import evaluate, format_protocol, format_table, metrics_json
    from fg_depth_core.model.checkpoint import load_model

    if args.batch_size < 1:
        raise FgDepthError(f"--batch-size: expected >= 1, got {args.batch_size}")
    if args.num_workers is not None and args.num_workers < 0:
        raise FgDepthError(f"--num-workers: expected >= 0, got {args.num_workers}")
    device = resolve_device(args.device)
    net, cfg, state = load_model(args.checkpoint, device)
    flags = {key: getattr(args, key) for key in PROTOCOL_FLAGS}
    eval_cfg, protocol = resolve_protocol(cfg.eval, args.data, args.overrides, flags)
    width, height = (int(v) for v in state["input_size"])
    data_cfg = dataclasses.replace(
        cfg.data, dataset=args.data, width=width, height=height, path=args.data_path
    )
    dataset = build_dataset(
        data_cfg, split="test", path=args.data_path, split_file=args.split_file, eval_cfg=eval_cfg
    )
    protocol["split"] = args.split_file or "the dataset's test split"
    protocol["strict"] = bool(args.strict)
    num_workers = cfg.data.num_workers if args.num_workers is None else args.num_workers

    predictor = NetworkPredictor(net, device, float(state["train_focal"]))
    print(
        f"evaluating {args.checkpoint} (step {state['step']}, input {width}x{height}) on {len(dataset)} "
        f"{args.data} frames from {args.data_path} [{device}]"
    )
    without_gt = frames_without_gt(dataset, args.strict)
    result = evaluate(
        predictor,
        dataset,
        eval_cfg,
        save_pred=args.save_pred,
        batch_size=args.batch_size,
        num_workers=num_workers,
        strict=args.strict,
        without_gt=without_gt,
    )
    factors = np.asarray(predictor.factors)
    if factors.size and np.any(np.abs(factors - 1.0) > 1e-6):
        print(
            f"focal scaling: train focal {float(state['train_focal']):.2f} px; depth multiplied by "
            f"{factors.min():.4f}..{factors.max():.4f} (eval focal / train focal at {width}x{height})"
        )
    print(format_protocol(protocol))
    print(format_table(result))
    if args.save_pred:
        print(f"predictions -> {args.save_pred}")
    if args.json:
        path = Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics_json(result, protocol), indent=1) + "\n")
        except OSError as exc:
            raise FgDepthError(f"--json {path}: cannot write ({exc})") from None
        print(f"metrics -> {path}")
    return 0
