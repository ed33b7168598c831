"""What a demo run does: its config (config/demo.yaml, or config/train_tiny.yaml with ``--quick``) with the
data pointed into the output folder, the layout of that folder, and the error that stops a run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from fg_depth_core.config import Config, load_config
from fg_depth_core.errors import FgDepthError
from tools.checkout import ROOT, require

#: The demo's config, and the tiny one of ``--quick``.
DEFAULT_CONFIG = ROOT / "config" / "demo.yaml"
QUICK_CONFIG = ROOT / "config" / "train_tiny.yaml"
#: Training steps of ``--quick``: enough to write a checkpoint, nothing more.
QUICK_STEPS = 2
#: PyTorch CPU threads (--threads). One, although the machine may have more cores: with config/demo.yaml on
#: 2 cores, two threads take 1.0 s per training step while the cores are idle but 6.9 s while another job
#: uses them (the threads wait for each other); one thread takes 1.6-1.8 s either way, which keeps the demo
#: near 7 minutes instead of anywhere between 5 and 30.
DEFAULT_THREADS = 1
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
#: The ROS domain the demo's nodes talk in, unless --domain-id: one of its own (from the process id), so
#: that parallel runs, tests and robots on the same network never hear each other.
DOMAIN_SPAN = 100
#: The largest ROS domain ID rclpy accepts on Linux (DDS derives the UDP ports from it).
MAX_DOMAIN_ID = 232


class DemoError(FgDepthError):
    """The demo cannot go on: a bad setting, a node that does not answer; the message says what to do."""


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
    if config is not None:
        path = Path(config)
    else:
        path = require(QUICK_CONFIG if quick else DEFAULT_CONFIG, "the demo")
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
