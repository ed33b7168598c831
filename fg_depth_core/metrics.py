"""The seven standard depth metrics (Eigen et al.), on valid ground-truth pixels.

All inputs are metres. Masking (Garg crop, depth range) and clamping are the evaluation protocol's job
(docs/METHOD.md, "Evaluation"); these functions take the already-selected pixels.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from fg_depth_core.errors import FgDepthError

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
#: Thresholds of the accuracy metrics a1, a2, a3: max(D/D*, D*/D) < 1.25^k.
DELTA_BASE = 1.25


def depth_metrics(gt: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """AbsRel, SqRel, RMSE (m), RMSE_log, and delta < 1.25, 1.25^2, 1.25^3 of ``pred`` against ``gt``.

    Args:
        gt, pred: (N,) positive depths in metres at the same pixels.
    """
    gt = np.asarray(gt, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if gt.shape != pred.shape:
        raise FgDepthError(f"depth_metrics: expected equal sizes, got {gt.size} gt and {pred.size} predicted")
    if gt.size == 0:
        raise FgDepthError("depth_metrics: no valid ground-truth pixels")
    if not (np.all(gt > 0) and np.all(pred > 0)):
        raise FgDepthError("depth_metrics: depths must be > 0 metres (mask and clamp before calling)")
    ratio = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(ratio < DELTA_BASE)),
        "a2": float(np.mean(ratio < DELTA_BASE**2)),
        "a3": float(np.mean(ratio < DELTA_BASE**3)),
    }
