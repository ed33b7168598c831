"""``make demo``: FG-Depth end to end on the built-in world, through the ROS node, into one folder.

    python -m fg_depth_ros.demo --out outputs/demo          # config/demo.yaml: minutes on a 2-core CPU
    python -m fg_depth_ros.demo --out /tmp/demo --quick     # the whole pipeline at a tiny budget (the test)

Stages, each announced by a header line:

1. render: the built-in world's train, val and test splits as stereo folders with exact depth (OUT/world;
   frames already there are kept, so a second run renders nothing).
2. train: FG-Depth with :class:`~fg_depth_core.train.trainer.Trainer` (teacher cache, tqdm bars, TensorBoard,
   ``last.pt``/``best.pt`` in OUT/run, rebuilt from scratch on every run).
3. export: ``last.pt`` -> OUT/run/depthnet.onnx (:func:`~fg_depth_core.deploy.export.export_onnx`).
4. ROS: depth_node (the ONNX model), play (the world's test split, a mono camera) and a recorder, three nodes
   on one executor in this process, on an rclpy context of a private ROS domain. play publishes one frame
   and the demo waits for the node's depth and point cloud before the next, so no frame is dropped and each
   latency is one inference, not a queue.
5. results: per recorded frame a side-by-side PNG (input | node depth | SGBM teacher depth | ground truth),
   a rendered view of the node's point cloud, the loss curves of the paper's Fig. 3 at three pixels,
   metrics.json (depth metrics against ground truth, the node's latency, the training run), the node's
   depth maps (node_depth.npz) and summary.md, which is also printed.

Every number printed or written is measured in this run. The settings are config/demo.yaml (keys that differ
from config/default.yaml; ``data.synth.test_frames`` is the number of frames played); ``--quick`` uses
config/train_tiny.yaml with QUICK_STEPS training steps instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from fg_depth_core.camera_msgs import stamp_ns
from fg_depth_core.commands import add_set_argument
from fg_depth_core.config import Config, load_config
from fg_depth_core.data.base import RawPair
from fg_depth_core.errors import FgDepthError

#: The source tree's root (config/ lives there; ``make demo`` runs from it).
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "config" / "demo.yaml"
QUICK_CONFIG = ROOT / "config" / "train_tiny.yaml"
#: Training steps of ``--quick``: enough to write a checkpoint, nothing more.
QUICK_STEPS = 2
#: PyTorch CPU threads (--threads). One, although the machine may have more cores: with config/demo.yaml on
#: 2 cores, two threads take 1.0 s per training step while the cores are idle but 6.9 s while another job
#: uses them (the threads wait for each other); one thread takes 1.6-1.8 s either way, which keeps the demo
#: near 7 minutes instead of anywhere between 5 and 30.
DEFAULT_THREADS = 1
#: Exit status after Ctrl-C (128 + SIGINT), as the fg-depth command line.
INTERRUPTED_STATUS = 130
#: Sub-folders and files of OUT.
WORLD_DIR = "world"
RUN_DIR = "run"
TEACHER_CACHE_DIR = "teacher_cache"
FRAMES_DIR = "frames"
MODEL_NAME = "depthnet.onnx"
POINTCLOUD_PNG = "pointcloud.png"
LOSS_CURVES_PNG = "loss_curves.png"
LOSS_CURVES_JSON = "loss_curves.json"
METRICS_JSON = "metrics.json"
NODE_DEPTH_NPZ = "node_depth.npz"
SUMMARY_MD = "summary.md"
#: The splits of the built-in world the demo renders: train and val for training, test to play.
SPLITS = ("train", "val", "test")
PLAYED_SPLIT = "test"
STAGES = 5

#: Seconds to wait for the nodes to discover each other, and for one frame's depth and cloud to come back
#: (generous: a loaded 2-core machine; a frame normally takes tens of milliseconds).
MATCH_TIMEOUT_S = 60.0
FRAME_TIMEOUT_S = 60.0
#: /diagnostics periods to wait for a message that counts every frame.
DIAGNOSTICS_PERIODS = 5
#: History of the recorder's subscriptions (more than the frames in flight at any time: one).
RECORD_QUEUE = 10
#: Executor spin granularity, seconds.
SPIN_S = 0.01
#: The ROS domain the demo's nodes talk in, unless --domain-id: one of its own (from the process id), so
#: that parallel runs, tests and robots on the same network never hear each other.
DOMAIN_SPAN = 100
#: The largest ROS domain ID rclpy accepts on Linux (DDS derives the UDP ports from it).
MAX_DOMAIN_ID = 232

#: Depth labels under the colour bar of the side-by-side PNGs (about one per half panel at 640 px).
COLORBAR_TICKS = 9
#: The loss curves (paper Fig. 3): depth hypotheses (metres), their number, and the loss window (pixels).
LOSS_CURVE_DEPTHS = (1.0, 60.0)
LOSS_CURVE_STEPS = 240
LOSS_CURVE_WINDOW = 5
#: The virtual camera of pointcloud.png, in the node's camera frame (x right, y down, z forward, metres):
#: behind and above the camera, looking down the street, so the road, cars and facades read in 3-D.
CLOUD_EYE = (0.0, -8.0, -12.0)
CLOUD_TARGET = (0.0, 0.0, 25.0)
CLOUD_IMAGE_SIZE = (960, 540)
CLOUD_HFOV_DEG = 60.0
CLOUD_POINT_SIZE = 2


class DemoError(FgDepthError):
    """The demo cannot go on: a bad setting, a node that does not answer; the message says what to do."""


# ---------------------------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """What a demo run does: the validated config (paths already pointed into ``out``) and where it writes."""

    cfg: Config
    config_name: str
    out: Path
    domain_id: int
    #: PyTorch CPU threads for this run (training, export, teacher).
    threads: int = DEFAULT_THREADS

    @property
    def world(self) -> Path:
        return self.out / WORLD_DIR

    @property
    def run_dir(self) -> Path:
        return self.out / RUN_DIR

    @property
    def played(self) -> Path:
        """The stereo folder of the world's split that play sends to the node."""
        from fg_depth_core.data.synth import split_folder

        return Path(split_folder(self.world, PLAYED_SPLIT))

    @property
    def model(self) -> Path:
        return self.run_dir / MODEL_NAME

    @property
    def frames(self) -> int:
        """Frames of the world's test split that play sends to the node."""
        return self.cfg.data.synth.test_frames


def make_settings(
    out: Path,
    config: Optional[str],
    overrides: Sequence[str],
    quick: bool,
    domain_id: Optional[int],
    threads: int = DEFAULT_THREADS,
) -> Settings:
    """The run's Settings: ``config`` (default config/demo.yaml; config/train_tiny.yaml with QUICK_STEPS
    steps for ``quick``) with ``overrides`` (``key.sub=value``); data and teacher cache go under ``out``."""
    if threads < 1:
        raise DemoError(f"--threads: expected >= 1, got {threads}")
    if quick and config is not None:
        raise DemoError("--quick and --config: choose one (--quick is config/train_tiny.yaml, a tiny budget)")
    path = Path(config) if config is not None else (QUICK_CONFIG if quick else DEFAULT_CONFIG)
    sets = [f"train.max_steps={QUICK_STEPS}"] if quick else []
    sets += list(overrides)
    sets += [f"data.path={out / WORLD_DIR}", f"teacher.cache_dir={out / TEACHER_CACHE_DIR}"]
    cfg = load_config(path, sets)
    if cfg.data.dataset != "synth":
        raise DemoError(
            f"{path}: data.dataset is {cfg.data.dataset!r}; the demo trains on the built-in world ('synth')"
        )
    domain = os.getpid() % DOMAIN_SPAN + 1 if domain_id is None else int(domain_id)
    if not 0 <= domain <= MAX_DOMAIN_ID:
        raise DemoError(f"--domain-id: expected a ROS domain 0..{MAX_DOMAIN_ID}, got {domain}")
    return Settings(cfg, str(path), Path(out), domain, threads)


# ----------------------------------------------------------------------------------------------- stages


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


# -------------------------------------------------------------------------------------------------- ROS


class Recorder(Node):
    """Keeps every message play and depth_node publish on the demo's topics, with its arrival time
    (nanoseconds of this node's clock, the clock play stamps with)."""

    TOPICS = {
        "image": Image,
        "depth": Image,
        "depth/camera_info": CameraInfo,
        "points": PointCloud2,
        "/diagnostics": DiagnosticArray,
    }

    def __init__(self, context: Any) -> None:
        super().__init__("demo_recorder", context=context)
        self.messages: Dict[str, List[Any]] = {topic: [] for topic in self.TOPICS}
        self.arrival_ns: Dict[str, List[int]] = {topic: [] for topic in self.TOPICS}
        qos = QoSProfile(depth=RECORD_QUEUE, reliability=ReliabilityPolicy.RELIABLE)
        for topic, kind in self.TOPICS.items():
            self.create_subscription(kind, topic, partial(self._store, topic), qos)

    def _store(self, topic: str, msg: Any) -> None:
        self.arrival_ns[topic].append(self.get_clock().now().nanoseconds)
        self.messages[topic].append(msg)

    def count(self, topic: str) -> int:
        return len(self.messages[topic])


@dataclass
class Recording:
    """What the ROS stage saw. Lists are per played frame, in order."""

    indices: List[int]
    names: List[str]
    images: List[Image]
    depths: List[Image]
    clouds: List[PointCloud2]
    #: depth message arrival minus its header stamp (play's clock now at publishing), seconds.
    stamp_to_receive_s: List[float]
    #: The node's own timing per frame (LatencyWindow values): frame received -> depth published, the
    #: backend's predict alone, and the worker's whole frame (conversion, inference, every output), seconds.
    node_latency_s: List[float]
    inference_s: List[float]
    processing_s: List[float]
    #: The node's last /diagnostics key/values, and its settings.
    diagnostics: Dict[str, str] = field(default_factory=dict)
    node: Dict[str, Any] = field(default_factory=dict)


def node_parameters(settings: Settings) -> Dict[str, Any]:
    """depth_node's parameters: the ONNX model with the config's inference settings, mono camera, outputs at
    the camera's resolution; the cloud keeps points within the evaluation range (farther predictions, such
    as the sky at the model's maximum depth, would stand as a wall behind the scene)."""
    inference = settings.cfg.inference
    return {
        "model": str(settings.model),
        "backend": inference.backend,
        "device": inference.device,
        "threads": inference.threads,
        "mode": "mono",
        "output_resolution": "input",
        "points.max_range": float(settings.cfg.eval.max_depth),
    }


def player_parameters(settings: Settings) -> Dict[str, Any]:
    """play's parameters: the rendered test split as a mono camera, stamped with the clock's now."""
    return {
        "dataset": "folder",
        "path": str(settings.played),
        "mode": "mono",
        "count": settings.frames,
        "clock": "now",
        "qos": "reliable",
    }


def all_matched(player: Any, node: Any) -> bool:
    """True once every publisher of play and depth_node is matched with its subscriptions: play's with the
    node's (and ``image`` also with the recorder's), the node's outputs with the recorder's. Matched, not
    merely discovered, so that no message of the first frame is lost."""
    inputs = all(
        pub.get_subscription_count() >= 1 + (topic in Recorder.TOPICS)
        for topic, pub in player.publishers_by_topic.items()
    )
    outputs = (node.outputs.depth, node.outputs.info, node.outputs.points, node.outputs.diagnostics)
    return inputs and all(pub.get_subscription_count() > 0 for pub in outputs)


class RosSession:
    """depth_node, play and the recorder as three nodes on one executor of a private rclpy context (in the
    demo's ROS domain), spun from this thread; the node infers on its own worker thread. A context manager:
    entering starts the nodes and waits until they are matched, leaving destroys them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nodes: List[Node] = []

    def __enter__(self) -> "RosSession":
        from fg_depth_ros.depth_node import DepthNode
        from fg_depth_ros.play import DatasetPlayer

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.settings.domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        try:
            self.node = self._add(DepthNode(parameters=node_parameters(self.settings), context=self.context))
            self.player = self._add(
                DatasetPlayer(
                    parameters=player_parameters(self.settings), autostart=False, context=self.context
                )
            )
            self.recorder = self._add(Recorder(self.context))
            self.spin_until(
                lambda: all_matched(self.player, self.node),
                MATCH_TIMEOUT_S,
                "play, depth_node and the recorder to discover each other",
            )
        except BaseException:
            self.__exit__()
            raise
        return self

    def _add(self, node: Any) -> Any:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def __exit__(self, *exc: Any) -> None:
        self.executor.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []
        rclpy.try_shutdown(context=self.context)
        # Break the nodes' reference cycles now, not in a process forked later (see DepthNode.destroy_node).
        gc.collect()

    def spin_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Spin until ``condition()``; DemoError after ``timeout`` seconds naming ``what``, or as soon as the
        node drops a frame."""
        deadline = time.monotonic() + timeout
        while not condition():
            node = getattr(self, "node", None)
            if node is not None and (node.errors or node.rejected):
                raise DemoError(f"depth_node dropped a frame: {node.last_problem}")
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=SPIN_S)

    def play_all(self) -> List[int]:
        """Publish the frames one at a time, each once the node's depth and cloud of the previous one are
        back; returns the dataset indices played."""
        indices: List[int] = []
        for k in range(self.settings.frames):
            index = self.player.publish_next()
            if index is None:
                raise DemoError(f"play ran out of frames after {k} of {self.settings.frames}")
            indices.append(index)
            self.spin_until(
                lambda k=k: min(self.recorder.count(t) for t in ("image", "depth", "points")) > k,
                FRAME_TIMEOUT_S,
                f"the node's depth and point cloud of frame {k} (test frame {index})",
            )
        # The node times a frame after publishing it: let its worker finish the last one.
        if not self.node.wait_idle(FRAME_TIMEOUT_S):
            raise DemoError(f"depth_node's worker still busy after {FRAME_TIMEOUT_S:.0f} s")
        return indices

    def diagnostics(self) -> Dict[str, str]:
        """The key/values of the node's first /diagnostics message that counts every played frame."""
        from fg_depth_ros.diagnostics import status_values

        name = f"{self.node.get_fully_qualified_name()}: depth"
        frames = str(self.settings.frames)

        def latest() -> Dict[str, str]:
            messages = self.recorder.messages["/diagnostics"]
            try:
                return status_values(messages[-1], name) if messages else {}
            except KeyError:
                return {}

        period = self.node.settings.diagnostics.period
        self.spin_until(
            lambda: latest().get("frames_published") == frames,
            DIAGNOSTICS_PERIODS * period,
            f"a /diagnostics message of {name} counting {frames} frames",
        )
        return latest()

    def recording(self, indices: List[int], diagnostics: Dict[str, str]) -> Recording:
        """What the recorder and the node's timing windows hold now."""
        messages, arrival = self.recorder.messages, self.recorder.arrival_ns
        return Recording(
            indices=indices,
            names=[f"{PLAYED_SPLIT}/{self.player.source.name(i)}" for i in indices],
            images=list(messages["image"]),
            depths=list(messages["depth"]),
            clouds=list(messages["points"]),
            stamp_to_receive_s=[
                (t - stamp_ns(m)) * 1e-9 for m, t in zip(messages["depth"], arrival["depth"])
            ],
            node_latency_s=list(self.node.node_latency.values()),
            inference_s=list(self.node.inference.values()),
            processing_s=list(self.node.processing.values()),
            diagnostics=diagnostics,
            node={
                "backend": self.node.estimator.backend_name,
                "device": self.node.estimator.device,
                "parameters": node_parameters(self.settings),
            },
        )


def record(settings: Settings) -> Recording:
    """Stage 4: every test frame through depth_node; the checked Recording."""
    with RosSession(settings) as ros:
        indices = ros.play_all()
        recording = ros.recording(indices, ros.diagnostics())
    check_recording(recording, settings.frames)
    return recording


def check_recording(rec: Recording, frames: int) -> None:
    """Every played frame came back once from the node, in order, with the stamp play gave it."""
    counts = {
        "published images": len(rec.images),
        "depth images": len(rec.depths),
        "point clouds": len(rec.clouds),
        "node latencies": len(rec.node_latency_s),
        "node inference times": len(rec.inference_s),
        "node processing times": len(rec.processing_s),
    }
    if any(n != frames for n in counts.values()):
        raise DemoError(f"expected {frames} of each, got {counts}")
    for k, (image, depth, cloud) in enumerate(zip(rec.images, rec.depths, rec.clouds)):
        if not stamp_ns(image) == stamp_ns(depth) == stamp_ns(cloud):
            raise DemoError(
                f"frame {k}: the node's depth ({stamp_ns(depth)}) and cloud ({stamp_ns(cloud)}) do not carry "
                f"the stamp play published ({stamp_ns(image)})"
            )


# ---------------------------------------------------------------------------------------------- results


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
        out = teacher.flow(sample["left"][None], sample["right"][None], target_is_left=True)
    disparity = torch.from_numpy(teacher_disparity(out))[None, None]
    depth, valid = depth_from_disparity(disparity, sample["focal"], sample["baseline"])
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
    from fg_depth_ros.conversions import image_to_depth, image_to_rgb

    cfg = settings.cfg
    folder = StereoFolder(settings.played, cfg.data.width, cfg.data.height)
    results = []
    for k, index in enumerate(rec.indices):
        pair = folder.load(index)
        if pair.depth_left is None:
            raise DemoError(f"{folder.name(index)}: no ground-truth depth next to the played frame")
        pred = as_depth_map(image_to_depth(rec.depths[k], "depth"), f"the node's depth of frame {k}")
        metrics, _ = frame_metrics(pair.depth_left, pred, cfg.eval)
        if metrics is None:
            raise DemoError(f"{rec.names[k]}: no ground-truth pixel within the eval depth range")
        tdepth = teacher_depth(teacher, pair, cfg.data.width, cfg.data.height)
        tmetrics, coverage = teacher_scores(pair.depth_left, tdepth, cfg)
        results.append(
            FrameResult(
                rec.names[k],
                image_to_rgb(rec.images[k], "image"),
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


def side_by_side(frame: FrameResult, depth_range: Tuple[float, float], teacher_label: str) -> np.ndarray:
    """input | node depth | teacher depth | ground truth, labelled, over one colour bar: (H', W', 3) uint8."""
    from fg_depth_core.visualize import colorize_depth, depth_colorbar, labelled, panel_row

    m = frame.metrics
    teacher = f"{teacher_label} teacher: no match anywhere"
    if frame.teacher_metrics is not None:
        teacher = (
            f"{teacher_label} teacher (black: no match): AbsRel {frame.teacher_metrics['abs_rel']:.3f} on "
            f"{frame.teacher_coverage:.0%} of pixels"
        )
    panels = [
        labelled(frame.rgb, f"input {frame.name}"),
        labelled(
            colorize_depth(frame.pred, *depth_range),
            f"depth_node: AbsRel {m['abs_rel']:.3f}, RMSE {m['rmse']:.2f} m, d<1.25 {m['a1']:.2f}",
        ),
        labelled(colorize_depth(frame.teacher, *depth_range), teacher),
        labelled(colorize_depth(frame.gt, *depth_range), "ground truth (black: unknown, i.e. sky)"),
    ]
    row = panel_row(panels)
    return np.vstack((row, depth_colorbar(row.shape[1], *depth_range, ticks=COLORBAR_TICKS)))


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Write an (H,W,3) uint8 RGB image as PNG; DemoError if OpenCV cannot."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise DemoError(f"{path}: cannot write the image")


def frame_png(out: Path, name: str) -> Path:
    """OUT/frames/<name with '/' as '_'>.png."""
    return out / FRAMES_DIR / (name.replace("/", "_") + ".png")


def clear_frames(out: Path) -> None:
    """Remove the side-by-side PNGs of an earlier run (it may have played other frames)."""
    for old in (out / FRAMES_DIR).glob("*.png"):
        old.unlink()


def cloud_view() -> Any:
    from fg_depth_core.visualize import CloudView

    width, height = CLOUD_IMAGE_SIZE
    return CloudView(CLOUD_EYE, CLOUD_TARGET, width, height, CLOUD_HFOV_DEG, CLOUD_POINT_SIZE)


def draw_cloud(path: Path, cloud: PointCloud2, name: str) -> int:
    """pointcloud.png: the node's PointCloud2 of frame ``name`` in its own colours, from the virtual camera
    of :func:`cloud_view`; returns the number of points."""
    from fg_depth_core.visualize import labelled, render_point_cloud
    from fg_depth_ros.conversions import pointcloud_to_rgb, pointcloud_to_xyz

    xyz = pointcloud_to_xyz(cloud, "points")
    if not len(xyz):
        raise DemoError(f"the node's point cloud of {name} is empty")
    rgb = pointcloud_to_rgb(cloud, "points")
    view = cloud_view()
    title = (
        f"depth_node's point cloud of {name}: {len(xyz)} points, coloured by the camera image; seen from "
        f"{-view.eye[2]:g} m behind and {-view.eye[1]:g} m above the camera"
    )
    save_png(path, labelled(render_point_cloud(xyz, rgb, view), title))
    return int(len(xyz))


def draw_loss_curves(settings: Settings, index: int, teacher: Any) -> List[Dict[str, Any]]:
    """The paper's Fig. 3 on test frame ``index`` as training sees it (network input size, ``teacher``, the
    config's loss): loss_curves.png and .json at three pixels (fg_depth_core.loss_curve.pick_pixels)."""
    import cv2
    import torch

    from fg_depth_core.data.base import to_sample
    from fg_depth_core.data.folder import StereoFolder
    from fg_depth_core.loss_curve import check_pixels, depth_hypotheses, loss_curves, pick_pixels, plot_curves

    cfg = settings.cfg
    w, h = cfg.data.width, cfg.data.height
    pair = StereoFolder(settings.played, w, h).load(index)
    sample = to_sample(pair, w, h)
    target, source = sample["left"][None], sample["right"][None]
    rgb = np.ascontiguousarray((sample["left"].permute(1, 2, 0) * 255).round().byte().numpy())
    gt = cv2.resize(pair.depth_left, (w, h), interpolation=cv2.INTER_NEAREST)
    pixels = pick_pixels(rgb, gt, check_pixels([], w, h, LOSS_CURVE_WINDOW))
    focal, baseline = float(sample["focal"]), float(sample["baseline"])
    with torch.no_grad():
        out = teacher.flow(target, source, target_is_left=True)
        curves = loss_curves(
            target,
            source,
            focal,
            baseline,
            out.flow,
            out.valid,
            [(u, v) for _, u, v in pixels],
            depth_hypotheses(*LOSS_CURVE_DEPTHS, LOSS_CURVE_STEPS),
            cfg.loss,
            LOSS_CURVE_WINDOW,
            [float(gt[v, u]) for _, u, v in pixels],
        )
    plot_curves(curves, str(settings.out / LOSS_CURVES_PNG), [kind for kind, _, _ in pixels])
    table = [{"kind": kind, **c.to_json()} for (kind, _, _), c in zip(pixels, curves)]
    (settings.out / LOSS_CURVES_JSON).write_text(json.dumps({"frame": index, "pixels": table}, indent=1))
    return table


# ---------------------------------------------------------------------------------------------- reports


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


# ------------------------------------------------------------------------------------------------- main


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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m fg_depth_ros.demo",
        description="FG-Depth end to end on the built-in world: render, train, export, run depth_node and "
        "play on rclpy, and write PNGs, a point cloud view, metrics and latency to an output folder.",
    )
    p.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    p.add_argument(
        "--config", default=None, help=f"YAML config (default: {DEFAULT_CONFIG.relative_to(ROOT)})"
    )
    add_set_argument(p, "config override, e.g. train.max_steps=100 (repeatable)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"the whole pipeline at a tiny budget: {QUICK_CONFIG.relative_to(ROOT)}, {QUICK_STEPS} steps",
    )
    p.add_argument(
        "--domain-id", type=int, default=None, help="ROS domain of the demo's nodes (default: one of its own)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help="PyTorch CPU threads (default: %(default)s: steady on a shared machine; 2 train ~40%% faster "
        "on 2 idle cores, several times slower on busy ones)",
    )
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point; returns the exit status (1 with the reason on stderr for a bad setting or a
    failed stage)."""
    args = parse_args(argv)
    try:
        settings = make_settings(
            Path(args.out), args.config, args.overrides, args.quick, args.domain_id, args.threads
        )
        run(settings)
    except FgDepthError as exc:
        print(f"[demo] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"[demo] interrupted; what was written so far is in {args.out}", file=sys.stderr)
        return INTERRUPTED_STATUS
    return 0


if __name__ == "__main__":
    sys.exit(main())
