"""Stage 5 of the demo, scores: each recorded frame with the node's depth, the teacher's depth (as training
computed it) and the ground truth, scored with the config's eval protocol."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fg_depth_core.config import Config
from fg_depth_core.data.base import RawPair
from tools.demo import ros_adapter
from tools.demo.ros_session import Recording
from tools.demo.settings import DemoError, Settings


@dataclass
class FrameResult:
    """One recorded frame, ready to draw and score (all (H,W) metres at the camera's resolution)."""

    name: str
    rgb: np.ndarray
    pred: np.ndarray
    teacher: np.ndarray
    gt: np.ndarray
    metrics: Dict[str, float]
    teacher_metrics: Optional[Dict[str, float]]
    teacher_coverage: float


def teacher_depth(teacher: Any, pair: RawPair, width: int, height: int) -> np.ndarray:
    """The teacher's depth of ``pair``'s left view, computed as in training (at the network input size
    ``width`` x ``height``; Z = f * B / d) and brought back to the pair's size (nearest neighbour, so holes
    stay holes): (H,W) float32 metres, NaN where the teacher has no match."""
    import cv2
    import torch

    from fg_depth_core.data.base import to_sample
    from fg_depth_core.geometry import depth_from_disparity
    from fg_depth_core.teachers import teacher_disparity

    sample = to_sample(pair, width, height)
    with torch.no_grad():
        out = teacher.flow(
            sample["left"][None], sample["right"][None], target_is_left=True, doffs=float(sample["doffs"])
        )
    disparity = torch.from_numpy(teacher_disparity(out))[None, None]
    depth, valid = depth_from_disparity(disparity, sample["focal"], sample["baseline"], sample["doffs"])
    depth = torch.where(valid, depth, torch.full_like(depth, math.nan))[0, 0].numpy()
    h, w = pair.left.shape[:2]
    return cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)


def teacher_scores(
    gt: np.ndarray, teacher: np.ndarray, cfg: Config
) -> Tuple[Optional[Dict[str, float]], float]:
    """The teacher's metrics where it has a depth (clamped to the eval range) and the fraction of
    ground-truth pixels it covers; (None, 0) when it covers none."""
    from fg_depth_core.evaluate import valid_mask
    from fg_depth_core.metrics import depth_metrics

    truth = valid_mask(gt, cfg.eval)
    covered = truth & np.isfinite(teacher)
    if not covered.any():
        return None, 0.0
    clamped = np.clip(teacher[covered], cfg.eval.min_depth, cfg.eval.max_depth)
    return depth_metrics(gt[covered], clamped), float(covered.sum() / truth.sum())


def score_frames(settings: Settings, rec: Recording, teacher: Any) -> List[FrameResult]:
    """Each recorded frame with its input (as the node received it), the node's depth, ``teacher``'s depth
    and the ground truth (read from the folder play played), scored with the eval config."""
    from fg_depth_core.data.folder import StereoFolder
    from fg_depth_core.evaluate import as_depth_map, frame_metrics

    cfg = settings.cfg
    folder = StereoFolder(settings.played, cfg.data.width, cfg.data.height)
    results = []
    for k, index in enumerate(rec.indices):
        pair = folder.load(index)
        if pair.depth_left is None:
            raise DemoError(f"{folder.name(index)}: no ground-truth depth next to the played frame")
        node_depth = ros_adapter.image_to_depth(rec.depths[k], "depth")
        pred = as_depth_map(node_depth, f"the node's depth of frame {k}")
        metrics, _ = frame_metrics(pair.depth_left, pred, cfg.eval)
        if metrics is None:
            raise DemoError(f"{rec.names[k]}: no ground-truth pixel within the eval depth range")
        tdepth = teacher_depth(teacher, pair, cfg.data.width, cfg.data.height)
        tmetrics, coverage = teacher_scores(pair.depth_left, tdepth, cfg)
        results.append(
            FrameResult(
                rec.names[k],
                ros_adapter.image_to_rgb(rec.images[k], "image"),
                pred,
                tdepth,
                pair.depth_left,
                metrics,
                tmetrics,
                coverage,
            )
        )
    return results


def display_range(frames: Sequence[FrameResult], cfg: Config) -> Tuple[float, float]:
    """The depth range (metres) every depth panel is coloured with: the nearest ground truth of the shown
    frames (at least eval.min_depth) to eval.max_depth, so that the colours span the scene."""
    from fg_depth_core.evaluate import valid_mask

    nearest = min(float(f.gt[valid_mask(f.gt, cfg.eval)].min()) for f in frames)
    return max(nearest, cfg.eval.min_depth), cfg.eval.max_depth


def teacher_name(cfg: Config) -> str:
    """The teacher as figures name it: "SGBM", "RAFT_SMALL", ..."""
    return cfg.teacher.method.upper()
