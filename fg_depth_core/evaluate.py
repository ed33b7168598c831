"""The depth evaluation protocol (docs/METHOD.md, "Evaluation") and the loop that applies it to a dataset.

Per frame: optionally the prediction is averaged with that of the mirrored image (post-processing, in
disparity); the prediction (metres, at the network input size) is resized bilinearly in disparity (1/depth)
to the ground truth's own resolution; pixels count where the ground truth lies strictly between min_depth and
max_depth and, with the Garg crop, inside the crop; optionally the prediction is scaled by median(gt) /
median(pred) over those pixels; predictions are clamped to [min_depth, max_depth]; metrics.depth_metrics
scores them. The dataset's result is the mean over frames of the per-frame metrics (the standard protocol),
with the number of frames scored and of those skipped for want of ground truth.

Everything here is numpy; the model enters only through ``predict_fn``, so any depth source (a network, the
ground truth itself in tests, a baseline) can be evaluated the same way.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.config import EvalConfig
from fg_depth_core.errors import FgDepthError
from fg_depth_core.metrics import METRIC_NAMES, depth_metrics

#: Garg et al.'s crop of the KITTI Eigen split, as fractions: rows [top, bottom), columns [left, right).
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
#: Keys of the metrics JSON written by ``fg-depth eval --json``: the metrics, the frames scored, the number
#: and names of the frames skipped (no ground truth), and the protocol in effect (:func:`describe_protocol`).
JSON_KEYS = METRIC_NAMES + ("frames", "skipped", "skipped_frames", "protocol")
#: Monodepth2's post-processing blends the two predictions near the image's sides: the mirror's prediction
#: alone up to this fraction of the width from the left edge, then linearly towards the plain average ...
POST_PROCESS_EDGE = 0.05
#: ... which it reaches at this fraction (and symmetrically on the right, with the plain prediction alone).
POST_PROCESS_RAMP_END = 0.10

#: A sample dict (data.base) -> (H,W) depth in metres at the network input size.
PredictFn = Callable[[Dict[str, Any]], Any]


class EvaluationError(FgDepthError):
    """Evaluation cannot proceed: no ground truth, a malformed prediction, an unwritable output."""


# ----------------------------------------------------------------------------------------- per-frame protocol


def garg_crop_mask(height: int, width: int) -> np.ndarray:
    """(height, width) bool: True inside Garg's crop (bounds truncated to integers, as the reference code)."""
    top, bottom, left, right = (
        int(GARG_CROP[0] * height),
        int(GARG_CROP[1] * height),
        int(GARG_CROP[2] * width),
        int(GARG_CROP[3] * width),
    )
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def valid_mask(gt: np.ndarray, cfg: EvalConfig) -> np.ndarray:
    """(H,W) bool: ground truth finite and strictly between cfg.min_depth and cfg.max_depth metres (as the
    reference code selects it), within the Garg crop when cfg.garg_crop. Unknown ground truth (0, inf, NaN)
    is never valid."""
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt > cfg.min_depth) & (gt < cfg.max_depth)
    if cfg.garg_crop:
        mask &= garg_crop_mask(*gt.shape)
    return mask


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (h,w) depth map (metres, > 0) at (height, width), float32: its disparity 1/depth is resized
    bilinearly and inverted back, as the reference evaluation resizes a network's disparity. A map already
    at that size is returned as it is."""
    import cv2

    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape == (height, width):
        return depth
    if not np.all(depth > 0):
        raise EvaluationError(
            f"resizing a predicted depth map to {width}x{height} in disparity: expected depths > 0, got a "
            f"minimum of {float(np.min(depth))}"
        )
    disparity = cv2.resize(1.0 / depth, (width, height), interpolation=cv2.INTER_LINEAR)
    return (1.0 / disparity).astype(np.float32)


def flip_average_disparity(disparity: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Monodepth2's post-processing of two (..., H, W) disparity maps of one image: ``disparity`` predicted
    for the image, ``mirrored`` predicted for its mirror image and mirrored back. Their mean, except near the
    sides: from the left edge to POST_PROCESS_EDGE of the width only ``mirrored`` counts (the image's own
    prediction sees no match there in stereo training), on the right side only ``disparity``, with linear
    ramps up to POST_PROCESS_RAMP_END. Column j sits at j / (W - 1) of the width."""
    disparity = np.asarray(disparity, dtype=np.float64)
    mirrored = np.asarray(mirrored, dtype=np.float64)
    if disparity.shape != mirrored.shape or disparity.ndim < 2:
        raise EvaluationError(
            f"post-processing: expected two (..., H, W) disparity maps of one shape, got {disparity.shape} "
            f"and {mirrored.shape}"
        )
    position = np.linspace(0.0, 1.0, disparity.shape[-1])
    ramp = (position - POST_PROCESS_EDGE) / (POST_PROCESS_RAMP_END - POST_PROCESS_EDGE)
    left_weight = 1.0 - np.clip(ramp, 0.0, 1.0)  # weight of ``mirrored`` alone, near the left edge
    right_weight = left_weight[::-1]  # weight of ``disparity`` alone, near the right edge
    mean = 0.5 * (disparity + mirrored)
    return right_weight * disparity + left_weight * mirrored + (1.0 - left_weight - right_weight) * mean


def post_process_depth(depth: np.ndarray, mirrored_depth: np.ndarray) -> np.ndarray:
    """(H,W) depth in metres from the depth predicted for an image and the one predicted for its mirror
    image (as predicted, not mirrored back): :func:`flip_average_disparity` of their disparities, inverted."""
    depth = as_depth_map(depth, "post-processing: the prediction")
    mirrored_depth = as_depth_map(mirrored_depth, "post-processing: the mirror image's prediction")
    if not (np.all(depth > 0) and np.all(mirrored_depth > 0)):
        raise EvaluationError("post-processing: expected predicted depths > 0 (it averages 1/depth)")
    combined = flip_average_disparity(1.0 / depth, 1.0 / mirrored_depth[:, ::-1])
    return (1.0 / combined).astype(np.float32)


def as_depth_map(pred: Any, where: str = "prediction") -> np.ndarray:
    """A prediction (numpy or torch; (H,W), (1,H,W) or (1,1,H,W)) as a finite (H,W) float32 array."""
    if hasattr(pred, "detach"):
        pred = pred.detach().float().cpu().numpy()
    pred = np.asarray(pred, dtype=np.float32)
    while pred.ndim > 2 and pred.shape[0] == 1:
        pred = pred[0]
    if pred.ndim != 2:
        raise EvaluationError(f"{where}: expected an (H,W) depth map, got shape {pred.shape}")
    bad = int(np.count_nonzero(~np.isfinite(pred)))
    if bad:
        raise EvaluationError(f"{where}: {bad} of {pred.size} predicted depths are not finite")
    return pred


def frame_metrics(
    gt: np.ndarray, pred: np.ndarray, cfg: EvalConfig
) -> Tuple[Optional[Dict[str, float]], Optional[float]]:
    """Score one frame.

    Args:
        gt: (H,W) ground-truth depth in metres at its own resolution (0, inf or NaN where unknown).
        pred: (h,w) predicted depth in metres, at any resolution (resized to (H,W) here).
        cfg: depth range, Garg crop, median scaling.

    Returns:
        (metrics, ratio): the seven metrics, and median(gt)/median(pred) when cfg.median_scaling (else None);
        (None, None) when the frame has no valid ground-truth pixel.
    """
    gt = np.asarray(gt, dtype=np.float64)
    mask = valid_mask(gt, cfg)
    if not mask.any():
        return None, None
    pred = resize_depth(pred, *gt.shape)[mask].astype(np.float64)
    gt = gt[mask]
    ratio = None
    if cfg.median_scaling:
        pred_median = float(np.median(pred))
        if not pred_median > 0:
            raise EvaluationError(
                f"median scaling: the predicted median depth is {pred_median}, expected > 0"
            )
        ratio = float(np.median(gt)) / pred_median
        pred = pred * ratio
    pred = np.clip(pred, cfg.min_depth, cfg.max_depth)
    return depth_metrics(gt, pred), ratio


def aggregate(per_frame: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """Mean of each metric over frames (the standard protocol: every frame weighs the same)."""
    if not per_frame:
        raise EvaluationError("no frame was scored")
    return {name: float(np.mean([m[name] for m in per_frame])) for name in METRIC_NAMES}


# ------------------------------------------------------------------------------------------------ predictions


class PredictionWriter:
    """Streams per-frame depth maps into an .npz archive (keys ``000000``, ``000001``, ...), frame by frame
    so that a long split never sits in memory; the file appears atomically when closed."""

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
        except OSError as exc:
            raise EvaluationError(f"{self.path}: cannot write predictions ({exc})") from None
        os.close(fd)
        self._zip: Optional[zipfile.ZipFile] = zipfile.ZipFile(self._tmp, "w", allowZip64=True)

    def add(self, index: int, depth: np.ndarray) -> None:
        """Store ``depth`` (H,W) metres as float32 under the key of frame ``index``."""
        assert self._zip is not None, "PredictionWriter is closed"
        with self._zip.open(f"{index:06d}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.ascontiguousarray(depth, dtype=np.float32), allow_pickle=False)

    def close(self, keep: bool = True) -> None:
        """Finish the archive and move it into place (``keep``) or delete it."""
        if self._zip is None:
            return
        self._zip.close()
        self._zip = None
        if keep:
            os.replace(self._tmp, self.path)
        else:
            Path(self._tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------- the loop


def _collate_list(samples: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    # Ground truth sizes differ between frames (KITTI), so batches stay lists of samples.
    return samples


def predict_samples(predict_fn: PredictFn, samples: List[Dict[str, Any]]) -> List[Any]:
    """Predictions for a list of samples: ``predict_fn.predict_batch(samples)`` when it has one (a network
    predicting a whole batch at once), otherwise ``predict_fn(sample)`` for each."""
    if not samples:
        return []
    batch = getattr(predict_fn, "predict_batch", None)
    if batch is not None:
        out = list(batch(samples))
        if len(out) != len(samples):
            raise EvaluationError(f"predict_batch returned {len(out)} predictions for {len(samples)} samples")
        return out
    return [predict_fn(s) for s in samples]


def mirror_sample(sample: Dict[str, Any]) -> Dict[str, Any]:
    """The sample of the mirror image of ``sample``'s target view, for post-processing: "left" flipped
    left-right and K's principal point at cx' = W - 1 - cx; the other views and the ground truth are left
    out (nothing predicts from them)."""
    import torch

    left = torch.as_tensor(sample["left"])
    mirrored = {k: v for k, v in sample.items() if k not in ("left", "right", "depth_left", "K")}
    mirrored["left"] = torch.flip(left, dims=[-1])
    if "K" in sample:
        k = torch.as_tensor(sample["K"]).clone()
        k[0, 2] = left.shape[-1] - 1 - k[0, 2]
        mirrored["K"] = k
    return mirrored


def frame_name(dataset: Any, index: int) -> str:
    """``dataset.name(index)`` where the dataset names its frames (a split line, a file stem), else
    "frame <index>"."""
    name = getattr(dataset, "name", None)
    try:
        return str(name(index)) if callable(name) else f"frame {index}"
    except (IndexError, KeyError, TypeError):
        return f"frame {index}"


def evaluate(
    predict_fn: PredictFn,
    dataset: Any,
    cfg: EvalConfig,
    save_pred: Union[str, os.PathLike, None] = None,
    batch_size: int = 1,
    num_workers: int = 0,
    progress: bool = True,
    strict: bool = False,
    without_gt: Sequence[int] = (),
) -> Dict[str, Any]:
    """Evaluate a depth predictor on every frame of ``dataset`` (docs/METHOD.md, "Evaluation").

    Args:
        predict_fn: sample dict (data.base layout) -> (H,W) depth in metres at the network input size (numpy
            or torch). An object may also offer ``predict_batch(list of samples) -> list`` (see
            predict_samples). With cfg.post_process it also receives each frame's mirror image
            (:func:`mirror_sample`), in the same batch.
        dataset: a map-style dataset of sample dicts; frames with "depth_left" are scored.
        cfg: the protocol's options (depth range, Garg crop, median scaling, post-processing).
        save_pred: optional .npz path; the prediction of frame i, resized to its ground truth's resolution
            (float32 metres, after post-processing), is stored under key f"{i:06d}" (the split's order).
            Frames without a depth map have no ground-truth resolution and get no key.
        batch_size, num_workers: DataLoader settings for reading the frames.
        progress: show a tqdm bar.
        strict: refuse (EvaluationError) a frame that cannot be scored instead of skipping it.
        without_gt: indices of frames known to have no ground truth (e.g. KittiRaw.frames_without_gt()):
            skipped (or refused) without being read, so that their images need not exist either.

    Returns:
        The seven mean metrics, "frames" (frames scored), "skipped" and "skipped_frames" (the number and
        names of the frames without valid ground truth), and with median scaling "median_scale_mean" /
        "median_scale_std" (over the per-frame ratios).
    """
    import torch
    from tqdm import tqdm

    if batch_size < 1 or num_workers < 0:
        raise EvaluationError(
            f"expected batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
        )
    total = len(dataset)
    if total == 0:
        raise EvaluationError("the evaluation dataset is empty")
    excluded = sorted({int(i) for i in without_gt})
    if excluded and not 0 <= excluded[0] <= excluded[-1] < total:
        raise EvaluationError(f"without_gt: expected frame indices in [0, {total}), got {excluded}")
    kept = sorted(set(range(total)) - set(excluded))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, kept) if excluded else dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate_list,
    )
    writer = PredictionWriter(save_pred) if save_pred is not None else None
    per_frame: List[Dict[str, float]] = []
    ratios: List[float] = []
    skipped: List[Tuple[int, str]] = []
    positions = iter(kept)
    ok = False

    def skip(frame: int, why: str) -> None:
        name = frame_name(dataset, frame)
        if strict:
            raise EvaluationError(f"{name}: {why} (strict evaluation refuses frames it cannot score)")
        skipped.append((frame, name))

    try:
        for frame in excluded:
            skip(frame, "no ground truth")
        with tqdm(
            total=len(kept), desc="eval", unit="frame", disable=not progress, dynamic_ncols=True
        ) as bar:
            for samples in loader:
                has_depth = [s for s in samples if "depth_left" in s]
                mirrored = [mirror_sample(s) for s in has_depth] if cfg.post_process else []
                outputs = predict_samples(predict_fn, has_depth + mirrored)
                preds = iter(outputs[: len(has_depth)])
                mirror_preds = iter(outputs[len(has_depth) :])
                for sample in samples:
                    position = next(positions)
                    frame = int(sample["index"]) if "index" in sample else position
                    bar.update(1)
                    if "depth_left" not in sample:
                        skip(frame, "no ground truth")
                        continue
                    gt = np.asarray(sample["depth_left"], dtype=np.float32).reshape(
                        sample["depth_left"].shape[-2:]
                    )
                    pred = as_depth_map(next(preds), f"frame {frame} prediction")
                    if cfg.post_process:
                        pred = post_process_depth(pred, next(mirror_preds))
                    pred = resize_depth(pred, *gt.shape)
                    if writer is not None:
                        writer.add(frame, pred)
                    metrics, ratio = frame_metrics(gt, pred, cfg)
                    if metrics is None:
                        skip(frame, "no ground truth within the protocol's depth range and crop")
                        continue
                    per_frame.append(metrics)
                    if ratio is not None:
                        ratios.append(ratio)
                bar.set_postfix(
                    abs_rel=f"{np.mean([m['abs_rel'] for m in per_frame]):.4f}" if per_frame else "-"
                )
        if not per_frame:
            raise EvaluationError(
                f"none of the {total} frames has ground-truth depth in ({cfg.min_depth}, {cfg.max_depth}) m"
                + (" inside the Garg crop" if cfg.garg_crop else "")
            )
        ok = True
    finally:
        if writer is not None:
            writer.close(keep=ok)
    result: Dict[str, Any] = aggregate(per_frame)
    result["frames"] = len(per_frame)
    result["skipped"] = len(skipped)
    result["skipped_frames"] = [name for _, name in sorted(skipped)]
    if cfg.median_scaling:
        result["median_scale_mean"] = float(np.mean(ratios))
        result["median_scale_std"] = float(np.std(ratios))
    return result


# ------------------------------------------------------------------------------------------------ reporting


def describe_protocol(
    cfg: EvalConfig, dataset: str, origin: str, extra: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """The protocol in effect as a JSON-ready dict: the dataset kind, where the settings came from
    (``origin``), the ground truth, each setting of ``cfg`` that applies, and the fixed rules (resizing,
    clamping, averaging); ``extra`` entries (split, strictness) are added at the end."""
    kitti = dataset == "kitti"
    # KITTI offers two sources (eval.gt); any other dataset has its own depth maps ("dataset").
    ground_truth = cfg.gt if kitti else "dataset"
    protocol: Dict[str, Any] = {"dataset": dataset, "origin": origin, "ground_truth": ground_truth}
    if kitti and cfg.gt == "velodyne":
        protocol["velodyne_depth"] = cfg.velodyne_depth
    protocol.update(
        garg_crop=cfg.garg_crop,
        min_depth=cfg.min_depth,
        max_depth=cfg.max_depth,
        median_scaling=cfg.median_scaling,
        post_process=cfg.post_process,
        resize="bilinear, in disparity (1/depth), to the ground truth's resolution",
        predictions_clamped=True,
        aggregate="mean over frames",
    )
    protocol.update(extra or {})
    return protocol


def format_protocol(protocol: Dict[str, Any]) -> str:
    """One line saying how the table below it was computed."""
    gt = f"{protocol['ground_truth']} ground truth"
    if "velodyne_depth" in protocol:
        gt += f" (depth = {protocol['velodyne_depth'].replace('_', ' ')})"
    source = f"{protocol['origin']}, --data {protocol['dataset']}"
    if protocol.get("overrides"):
        source += ", overridden: " + " ".join(protocol["overrides"])
    parts = [
        gt,
        "Garg crop" if protocol["garg_crop"] else "no Garg crop",
        f"depths in ({protocol['min_depth']:g}, {protocol['max_depth']:g}) m, predictions clamped",
        "median scaling" if protocol["median_scaling"] else "no median scaling",
        "post-processed" if protocol["post_process"] else "no post-processing",
        "mean over frames",
    ]
    if protocol.get("strict"):
        parts.append("strict")
    return f"protocol ({source}): " + ", ".join(parts)


def metrics_json(result: Dict[str, Any], protocol: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What ``fg-depth eval --json`` writes (JSON_KEYS): the seven metrics, "frames", "skipped",
    "skipped_frames" and the protocol in effect (None when not given)."""
    out = {key: result[key] for key in JSON_KEYS if key != "protocol"}
    out["protocol"] = protocol
    return out


def format_table(result: Dict[str, Any]) -> str:
    """The seven metrics as a two-line aligned table, then a line with the frame counts."""
    header = " | ".join(f"{name:>8}" for name in METRIC_NAMES)
    values = " | ".join(f"{result[name]:8.4f}" for name in METRIC_NAMES)
    lines = [header, "-" * len(header), values]
    tail = f"frames scored: {result['frames']}"
    if result.get("skipped"):
        tail += f", skipped without ground truth: {result['skipped']}"
    if "median_scale_mean" in result:
        tail += f", median scale {result['median_scale_mean']:.4f} +- {result['median_scale_std']:.4f}"
    lines.append(tail)
    return "\n".join(lines)
