"""The demo's five stages in order (render, train, export, ROS, results), each announced by a header line."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from tools.demo.figures import clear_frames, draw_cloud, draw_loss_curves, frame_png, save_png, side_by_side
from tools.demo.report import metrics_report, summary_lines
from tools.demo.ros_session import record
from tools.demo.scoring import display_range, score_frames, teacher_name
from tools.demo.settings import (
    METRICS_JSON,
    NODE_DEPTH_NPZ,
    POINTCLOUD_PNG,
    SPLITS,
    SUMMARY_MD,
    DemoError,
    Settings,
)

STAGES = 5


def stage(number: int, title: str) -> None:
    """The header line of a stage."""
    print(f"\n== [{number}/{STAGES}] {title}", flush=True)


def render_world(settings: Settings) -> Dict[str, int]:
    """Stage 1: render every split (fg_depth_core.data.synth) into OUT/world/<split>; frames rendered now."""
    from fg_depth_core.data.synth import render_split, split_folder

    synth = settings.cfg.data.synth
    folders = {split: split_folder(settings.world, split) for split in SPLITS}
    return {split: render_split(synth, split, folder, progress=True) for split, folder in folders.items()}


def fresh_run_dir(path: Path) -> None:
    """Empty OUT/run for a new training run; refuse a non-empty folder that is not a training run."""
    from fg_depth_core.train.trainer import CONFIG_NAME

    if path.is_dir() and any(path.iterdir()):
        if not (path / CONFIG_NAME).is_file():
            raise DemoError(
                f"{path}: exists and is not a training run (no {CONFIG_NAME}); the demo would replace it: "
                "choose another --out"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def train(settings: Settings) -> Any:
    """Stage 2: train from scratch into OUT/run; the TrainResult."""
    from fg_depth_core.train.trainer import Trainer

    fresh_run_dir(settings.run_dir)
    return Trainer(settings.cfg, settings.run_dir, progress=True).run()


def export(settings: Settings) -> Any:
    """Stage 3: OUT/run/last.pt -> OUT/run/depthnet.onnx at the training size; the model's ModelInfo."""
    from fg_depth_core.deploy.export import export_onnx
    from fg_depth_core.train.trainer import LAST

    return export_onnx(settings.run_dir / LAST, settings.model)


def run(settings: Settings) -> Dict[str, Any]:
    """All stages with ``settings.threads`` PyTorch threads (the caller's count is restored afterwards);
    returns the metrics report (also in OUT/metrics.json)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return run_stages(settings)
    finally:
        torch.set_num_threads(previous)


def run_stages(settings: Settings) -> Dict[str, Any]:
    """Stages 1-5 and the summary; the metrics report."""
    from fg_depth_core.data.world import split_frames
    from fg_depth_core.teachers import build_teacher

    start = time.perf_counter()
    seconds: Dict[str, float] = {}
    cfg = settings.cfg
    synth = cfg.data.synth
    settings.out.mkdir(parents=True, exist_ok=True)

    stage(1, f"render the built-in world at {synth.width}x{synth.height} into {settings.world}")
    t = time.perf_counter()
    rendered = render_world(settings)
    seconds["render"] = time.perf_counter() - t
    counts = ", ".join(f"{split} {split_frames(synth, split)} ({rendered[split]} new)" for split in SPLITS)
    print(f"frames: {counts}, in {seconds['render']:.1f} s")

    stage(
        2,
        f"train FG-Depth ({cfg.loss.preset} loss, teacher {cfg.teacher.method}) for {cfg.train.max_steps} "
        f"steps of batch {cfg.train.batch_size} at {cfg.data.width}x{cfg.data.height} into "
        f"{settings.run_dir} (PyTorch CPU threads: {settings.threads})",
    )
    t = time.perf_counter()
    result = train(settings)
    seconds["train"] = time.perf_counter() - t

    stage(3, f"export {settings.run_dir.name}/last.pt to ONNX")
    t = time.perf_counter()
    info = export(settings)
    seconds["export"] = time.perf_counter() - t
    print(f"{settings.model}: {info.width}x{info.height}, in {seconds['export']:.1f} s")

    stage(
        4,
        f"depth_node + play + recorder on rclpy (ROS domain {settings.domain_id}): {settings.frames} test "
        "frames through the node",
    )
    t = time.perf_counter()
    rec = record(settings)
    seconds["ros"] = time.perf_counter() - t
    print(
        f"recorded {len(rec.depths)} depth images and point clouds, stamps matching what play published, in "
        f"{seconds['ros']:.1f} s"
    )

    stage(5, f"results into {settings.out}")
    t = time.perf_counter()
    # The teacher as training used it, but computed afresh: the test frames are not in its cache.
    teacher = build_teacher(cfg.teacher, use_cache=False)
    frames = score_frames(settings, rec, teacher)
    depth_range = display_range(frames, cfg)
    clear_frames(settings.out)
    label = teacher_name(settings.cfg)
    for frame in frames:
        save_png(frame_png(settings.out, frame.name), side_by_side(frame, depth_range, label))
    np.savez_compressed(settings.out / NODE_DEPTH_NPZ, **{f.name: f.pred for f in frames})
    points = draw_cloud(settings.out / POINTCLOUD_PNG, rec.clouds[0], frames[0].name)
    draw_loss_curves(settings, rec.indices[0], teacher)
    seconds["results"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    report = metrics_report(settings, frames, rec, result, info, points, seconds)
    (settings.out / METRICS_JSON).write_text(json.dumps(report, indent=1))
    lines = summary_lines(settings, report)
    (settings.out / SUMMARY_MD).write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines), flush=True)
    return report
