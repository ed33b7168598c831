"""Stage 5 of the demo, numbers: metrics.json (depth metrics, latency, training run) and the closing summary
(summary.md, also printed)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from fg_depth_core.camera_msgs import stamp_ns
from tools.demo.figures import frame_png
from tools.demo.ros_session import Recording
from tools.demo.scoring import FrameResult, teacher_name
from tools.demo.settings import (
    FRAMES_DIR,
    LOSS_CURVES_JSON,
    LOSS_CURVES_PNG,
    METRICS_JSON,
    MODEL_NAME,
    NODE_DEPTH_NPZ,
    POINTCLOUD_PNG,
    RUN_DIR,
    WORLD_DIR,
    Settings,
)


def _stats_ms(seconds: Sequence[float]) -> Dict[str, Any]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "per_frame": [round(float(v), 3) for v in ms],
        "p50": float(np.percentile(ms, 50)),
        "max": float(ms.max()),
        "mean": float(ms.mean()),
    }


def metrics_report(
    settings: Settings,
    frames: List[FrameResult],
    rec: Recording,
    result: Any,
    info: Any,
    cloud_points: int,
    seconds: Dict[str, float],
) -> Dict[str, Any]:
    """The content of metrics.json."""
    from fg_depth_core.evaluate import aggregate

    cfg = settings.cfg
    scored = [f.teacher_metrics for f in frames if f.teacher_metrics is not None]
    return {
        "depth": {
            "what": "depth_node's published depth against the world's exact depth, mean over the frames",
            **aggregate([f.metrics for f in frames]),
            "frames": len(frames),
            "eval": {
                "min_depth": cfg.eval.min_depth,
                "max_depth": cfg.eval.max_depth,
                "garg_crop": cfg.eval.garg_crop,
                "median_scaling": cfg.eval.median_scaling,
            },
        },
        "teacher": {
            "what": f"the {teacher_name(cfg)} teacher's depth (as in training, at the network input size) "
            "where it has one",
            **(aggregate(scored) if scored else {}),
            "coverage": float(np.mean([f.teacher_coverage for f in frames])),
        },
        "latency_ms": {
            "node_receive_to_publish": {
                "what": "depth_node's own timing (its node_latency window, also in /diagnostics): frame "
                "handed to its worker -> depth published",
                **_stats_ms(rec.node_latency_s),
            },
            "node_inference": {
                "what": "depth_node's DepthEstimator.predict alone",
                **_stats_ms(rec.inference_s),
            },
            "node_processing": {
                "what": "depth_node's worker for the whole frame (conversion, inference, depth, cloud)",
                **_stats_ms(rec.processing_s),
            },
            "stamp_to_receive": {
                "what": "header stamp (play's clock at publishing) -> depth message received by the recorder",
                **_stats_ms(rec.stamp_to_receive_s),
            },
            "diagnostics": rec.diagnostics,
        },
        "frames": [
            {
                "name": f.name,
                "index": index,
                "image_stamp_ns": stamp_ns(image),
                "depth_stamp_ns": stamp_ns(depth),
                "depth_size": [int(depth.width), int(depth.height)],
                "png": str(frame_png(settings.out, f.name).relative_to(settings.out)),
                **f.metrics,
                "teacher_abs_rel": None if f.teacher_metrics is None else f.teacher_metrics["abs_rel"],
                "teacher_coverage": f.teacher_coverage,
                "node_receive_to_publish_ms": 1e3 * node_s,
            }
            for f, index, image, depth, node_s in zip(
                frames, rec.indices, rec.images, rec.depths, rec.node_latency_s
            )
        ],
        "point_cloud": {"frame": frames[0].name, "points": cloud_points, "png": POINTCLOUD_PNG},
        "node": rec.node,
        "training": {
            "config": settings.config_name,
            "loss_preset": cfg.loss.preset,
            "network_input": [cfg.data.width, cfg.data.height],
            "train_frames": cfg.data.synth.train_frames,
            "batch_size": cfg.train.batch_size,
            "learning_rate": cfg.train.learning_rate,
            "torch_threads": settings.threads,
            "steps": result.step,
            "loss_first": result.losses[0] if result.losses else None,
            "loss_last": result.losses[-1] if result.losses else None,
            "validations": result.validations,
        },
        "model": {"onnx": MODEL_NAME, "train_focal": info.train_focal, "size": [info.width, info.height]},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "ros_domain_id": settings.domain_id,
    }


def summary_lines(settings: Settings, report: Dict[str, Any]) -> List[str]:
    """The closing summary (markdown; printed as is): what each file is and where to look next."""
    out = settings.out
    depth, lat, tr = report["depth"], report["latency_ms"], report["training"]
    node = lat["node_receive_to_publish"]
    teacher = report["teacher"]
    total = report["seconds"]["total"]
    frames = report["frames"]
    model = (out / RUN_DIR / MODEL_NAME).resolve()
    played = settings.played.resolve()
    lines = [
        f"# fg-depth demo: {total / 60:.1f} min, results in {out}/",
        "",
        f"- Trained FG-Depth ({tr['loss_preset']} loss) for {tr['steps']} steps of batch {tr['batch_size']} "
        f"at {tr['network_input'][0]}x{tr['network_input'][1]} on {tr['train_frames']} rendered pairs "
        f"(loss {tr['loss_first']:.3f} -> {tr['loss_last']:.3f}), exported it to ONNX, and played "
        f"{depth['frames']} consecutive frames of the world's test split (scenes never trained on) through "
        f"depth_node ({report['node']['backend']} on {report['node']['device']}).",
        f"- Node depth vs ground truth ({depth['frames']} frames, {depth['eval']['min_depth']:g}-"
        f"{depth['eval']['max_depth']:g} m): AbsRel {depth['abs_rel']:.3f}, SqRel {depth['sq_rel']:.3f}, "
        f"RMSE {depth['rmse']:.2f} m, d<1.25 {depth['a1']:.3f}"
        + (
            f"; the {teacher_name(settings.cfg)} teacher, where it matches ({teacher['coverage']:.0%} of "
            f"pixels): AbsRel {teacher['abs_rel']:.3f}."
            if "abs_rel" in teacher
            else "."
        ),
        f"- Node latency, frame received -> depth published (the node's own timing): p50 "
        f"{node['p50']:.1f} ms, max {node['max']:.1f} ms; header stamp -> depth received here: p50 "
        f"{lat['stamp_to_receive']['p50']:.1f} ms.",
        "",
        "Where to look:",
        "",
        f"- `{FRAMES_DIR}/*.png` ({len(frames)} files, e.g. `{frames[0]['png']}`): input | depth_node's "
        f"depth | {teacher_name(settings.cfg)} teacher depth | ground truth, one colour scale (bar below, "
        "metres), per-frame metrics in the titles",
        f"- `{POINTCLOUD_PNG}`: the point cloud depth_node published for {report['point_cloud']['frame']} "
        f"({report['point_cloud']['points']} points), seen from behind and above the camera",
        f"- `{LOSS_CURVES_PNG}` (`{LOSS_CURVES_JSON}`): the paper's Fig. 3, each loss against a depth "
        "hypothesis at three pixels of the first test frame",
        f"- `{METRICS_JSON}`: all numbers above, per frame and per stage; `{NODE_DEPTH_NPZ}`: the node's "
        "depth maps (float32 metres, one key per frame)",
        f"- `{RUN_DIR}/last.pt`, `{RUN_DIR}/best.pt`: checkpoints; `{RUN_DIR}/{MODEL_NAME}`: the ONNX model "
        f"the node ran; `{RUN_DIR}/config.yaml`: the full config; `{WORLD_DIR}/`: the rendered data",
        f"- TensorBoard: `.venv/bin/tensorboard --logdir {out / RUN_DIR / 'tensorboard'}`",
        f"- On a ROS 2 system: `ros2 launch fg_depth_ros depth.launch.py model:={model} rviz:=true` and, to "
        "feed it these test frames: `ros2 run fg_depth_ros play --ros-args -p dataset:=folder -p "
        f"path:={played} -p mode:=mono`",
    ]
    return lines
