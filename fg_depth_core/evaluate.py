"""The depth evaluation protocol (docs/METHOD.md, "Evaluation") and the loop that applies it to a dataset.

Per frame: the prediction (metres, at the network input size) is resized bilinearly to the ground truth's own
resolution; pixels count where the ground truth is finite and in [min_depth, max_depth] and, with the Garg
crop, inside the crop; optionally the prediction is scaled by median(gt) / median(pred) over those pixels;
predictions are clamped to [min_depth, max_depth]; metrics.depth_metrics scores them. The dataset's result is
the mean over frames of the per-frame metrics (the standard protocol), with the number of frames scored.

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
#: Keys of the metrics JSON written by ``fg-depth eval --json``.
JSON_KEYS = METRIC_NAMES + ("frames",)

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
    """(H,W) bool: ground truth finite and in [cfg.min_depth, cfg.max_depth] metres, within the Garg crop
    when cfg.garg_crop. Unknown ground truth (0, inf, NaN) is never valid."""
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt >= cfg.min_depth) & (gt <= cfg.max_depth)
    if cfg.garg_crop:
        mask &= garg_crop_mask(*gt.shape)
    return mask


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a (h,w) depth map (metres) to (height, width), float32."""
    import cv2

    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape == (height, width):
        return depth
    return cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)


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
    batch = getattr(predict_fn, "predict_batch", None)
    if batch is not None:
        out = list(batch(samples))
        if len(out) != len(samples):
            raise EvaluationError(f"predict_batch returned {len(out)} predictions for {len(samples)} samples")
        return out
    return [predict_fn(s) for s in samples]


def evaluate(
    predict_fn: PredictFn,
    dataset: Any,
    cfg: EvalConfig,
    save_pred: Union[str, os.PathLike, None] = None,
    batch_size: int = 1,
    num_workers: int = 0,
    progress: bool = True,
) -> Dict[str, Any]:
    """Evaluate a depth predictor on every frame of ``dataset`` (docs/METHOD.md, "Evaluation").

    Args:
        predict_fn: sample dict (data.base layout) -> (H,W) depth in metres at the network input size (numpy
            or torch). An object may also offer ``predict_batch(list of samples) -> list`` (see
            predict_samples).
        dataset: a map-style dataset of sample dicts; frames with "depth_left" are scored.
        cfg: the protocol's options (depth range, Garg crop, median scaling).
        save_pred: optional .npz path; the prediction of frame i, resized to its ground truth's resolution
            (float32 metres), is stored under key f"{i:06d}" (the split's order). Frames without a depth map
            have no ground-truth resolution and get no key.
        batch_size, num_workers: DataLoader settings for reading the frames.
        progress: show a tqdm bar.

    Returns:
        The seven mean metrics, "frames" (frames scored), "skipped" (frames without valid ground truth), and
        with median scaling "median_scale_mean" / "median_scale_std" (over the per-frame ratios).
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
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate_list
    )
    writer = PredictionWriter(save_pred) if save_pred is not None else None
    per_frame: List[Dict[str, float]] = []
    ratios: List[float] = []
    skipped = 0
    index = 0
    ok = False
    try:
        with tqdm(total=total, desc="eval", unit="frame", disable=not progress, dynamic_ncols=True) as bar:
            for samples in loader:
                has_depth = [s for s in samples if "depth_left" in s]
                preds = iter(predict_samples(predict_fn, has_depth) if has_depth else [])
                for sample in samples:
                    frame = int(sample["index"]) if "index" in sample else index
                    index += 1
                    bar.update(1)
                    if "depth_left" not in sample:
                        skipped += 1
                        continue
                    gt = np.asarray(sample["depth_left"], dtype=np.float32).reshape(
                        sample["depth_left"].shape[-2:]
                    )
                    pred = resize_depth(as_depth_map(next(preds), f"frame {frame} prediction"), *gt.shape)
                    if writer is not None:
                        writer.add(frame, pred)
                    metrics, ratio = frame_metrics(gt, pred, cfg)
                    if metrics is None:
                        skipped += 1
                        continue
                    per_frame.append(metrics)
                    if ratio is not None:
                        ratios.append(ratio)
                bar.set_postfix(
                    abs_rel=f"{np.mean([m['abs_rel'] for m in per_frame]):.4f}" if per_frame else "-"
                )
        if not per_frame:
            raise EvaluationError(
                f"none of the {total} frames has ground-truth depth in [{cfg.min_depth}, {cfg.max_depth}] m"
                + (" inside the Garg crop" if cfg.garg_crop else "")
            )
        ok = True
    finally:
        if writer is not None:
            writer.close(keep=ok)
    result: Dict[str, Any] = aggregate(per_frame)
    result["frames"] = len(per_frame)
    result["skipped"] = skipped
    if cfg.median_scaling:
        result["median_scale_mean"] = float(np.mean(ratios))
        result["median_scale_std"] = float(np.std(ratios))
    return result


def metrics_json(result: Dict[str, Any]) -> Dict[str, Any]:
    """The keys ``fg-depth eval --json`` writes: the seven metrics and "frames"."""
    return {key: result[key] for key in JSON_KEYS}


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
