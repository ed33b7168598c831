"""The training loop: data + teacher cache -> augmentation -> DepthNet -> FG-Depth losses -> Adam, with atomic
checkpoints, validation, resume, Ctrl-C handling, TensorBoard and DDP (train/distributed.py).

A run lives in one directory RUN_DIR:

- ``config.yaml``: the run's full config, written at start (and again on resume);
- ``last.pt``: every ``train.checkpoint_every`` steps, at the end, and on Ctrl-C/SIGTERM; ``best.pt``: at the
  best validation (val abs_rel when the val set has depth ground truth, else the val loss). Both hold the
  whole training state (see checkpoint.py) plus "best", "focal_counts", "world_size" and "loss_terms" (the
  terms the loss put into the total, losses.loss_terms; the log's first line says the same).
- ``tensorboard/``: scalars (every loss term, lr, validation) and image grids; ``teacher_cache/`` (unless
  ``teacher.cache_dir`` is set); for the built-in world ``synth/`` (unless ``data.path`` is set), for a bag
  ``bag_frames/`` (its rectified pairs).

Resume (``resume=True``) restores model, optimiser, scheduler, grad scaler, step, best value and RNG states
from ``last.pt``. The data order is exact: batches come from ResumableShardSampler, a pure function of
(seed, epoch, rank), and each step's augmentation draws from a generator seeded by (seed, rank, step), so
an interrupted and resumed run sees the same batches with the same augmentation as an uninterrupted one.
The only exceptions are changed settings: a different ``train.max_steps`` recomputes the learning-rate
milestones (decays already applied stay applied), and a different number of processes reshards the data.

Split files may be given as ``pkg://fg_depth_core/data/splits/...``: a path inside the installed package
(see :func:`fg_depth_core.data.factory.resolve_package_path`), so shipped configs work from any working
directory and installation.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fg_depth_core.augment import augment
from fg_depth_core.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
)
from fg_depth_core.errors import FgDepthError
from fg_depth_core.losses import describe_loss, loss_terms, needs_teacher, total_loss
from fg_depth_core.model.checkpoint import CheckpointError, checkpoint_config, load_checkpoint
from fg_depth_core.train.checkpoint import save_checkpoint
from fg_depth_core.train.distributed import (
    DistContext,
    ResumableShardSampler,
    all_reduce_sum,
    barrier,
    main_first,
    seed_for,
    shard_indices,
    wrap_model,
)

LAST = "last.pt"
BEST = "best.pt"
CONFIG_NAME = "config.yaml"
TENSORBOARD_DIR = "tensorboard"
TEACHER_CACHE_DIR = "teacher_cache"
SYNTH_DIR = "synth"
#: Where a bag's rectified pairs are extracted to (data.dataset "bag").
BAG_FRAMES_DIR = "bag_frames"
#: Config sections whose change makes a checkpoint a different experiment: --resume refuses them.
RESUME_LOCKED_SECTIONS = ("model", "data")
#: ...except these keys, which change how data is read, not what is read.
RESUME_FREE_KEYS = ("data.num_workers",)
#: Keys of a sample that a training step uses; ground-truth depth (at its own resolution) stays out.
TRAIN_KEYS = (
    "left",
    "right",
    "K",
    "focal",
    "baseline",
    "doffs",
    "flow_lr",
    "valid_lr",
    "flow_rl",
    "valid_rl",
)
#: Samples drawn in each TensorBoard image grid.
IMAGE_SAMPLES = 4


class TrainError(FgDepthError):
    """Training cannot start or continue: a run directory in the wrong state, a diverging loss, bad data."""


@dataclass
class TrainResult:
    """What a call of :meth:`Trainer.run` did."""

    #: Optimiser steps done in total (over all runs of this RUN_DIR).
    step: int
    #: Mean training loss over all ranks of each step this call ran, in order.
    losses: List[float] = field(default_factory=list)
    #: The best validation so far: {"metric", "value", "step"} (None before the first validation).
    best: Optional[Dict[str, Any]] = None
    #: Each validation of this call: {"step", "loss", and "abs_rel" when there is ground truth}.
    validations: List[Dict[str, float]] = field(default_factory=list)
    interrupted: bool = False


# ----------------------------------------------------------------------------------------- config & paths


def run_config(
    run_dir: Union[str, Path],
    config_path: Optional[str] = None,
    overrides: Optional[Sequence[str]] = None,
    resume: bool = False,
) -> Config:
    """The config of a training run: ``config_path`` with ``overrides`` (``key.sub=value``); on resume
    without a config file, the config stored in RUN_DIR/last.pt with the overrides applied."""
    if config_path is not None:
        return load_config(config_path, list(overrides or []))
    if not resume:
        raise ConfigError("train: --config is required (it may be left out with --resume or --bag)")
    last = Path(run_dir) / LAST
    state = _load_last(last)
    data = checkpoint_config(state, last).to_dict()
    apply_overrides(data, list(overrides or []))
    return config_from_dict(data, f"{last} (stored config with --set)")


def _load_last(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"{path}: nothing to resume (no checkpoint there); run without --resume to start training in "
            f"{path.parent}"
        )
    return load_checkpoint(path)


def config_differences(old: Dict[str, Any], new: Dict[str, Any], prefix: str = "") -> List[str]:
    """'key: old -> new' for every leaf that differs between two config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        where = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_differences(a, b, where + "."))
        elif a != b:
            out.append(f"{where}: {a!r} -> {b!r}")
    return out


def check_resumable(stored: Dict[str, Any], cfg: Config, path: Union[str, Path]) -> List[str]:
    """Raise TrainError if ``cfg`` differs from the checkpoint's config in a model or data key; return the
    (allowed) differences elsewhere."""
    diffs = config_differences(stored, cfg.to_dict())
    locked = [
        d
        for d in diffs
        if d.split(":")[0].split(".")[0] in RESUME_LOCKED_SECTIONS and d.split(":")[0] not in RESUME_FREE_KEYS
    ]
    if locked:
        raise TrainError(
            f"{path}: cannot resume with a different model or data config (start a new run directory "
            "instead):\n  " + "\n  ".join(locked)
        )
    return diffs


# ------------------------------------------------------------------------------------------ small helpers


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> Dict[str, Any]:
    """The global RNG states (CPU, and ``device``'s when it is a GPU) as plain containers and tensors,
    loadable with weights_only. Only the training GPU is read: touching the others would open a CUDA
    context on each of them in every process."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def set_rng_state(state: Dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` captured (the GPU state only when training on a GPU again)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"][0], device)
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def collate_samples(samples: List[Dict[str, torch.Tensor]]) -> Dict[str, Any]:
    """Stack sample dicts into a batch; a key whose tensors differ in shape (ground truth at each frame's own
    resolution) becomes a list."""
    batch: Dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) == 1:
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def weighted_median(counts: Dict[float, int]) -> float:
    """The median of values given as {value: count}."""
    items = sorted(counts.items())
    total = sum(n for _, n in items)
    seen = 0
    for value, n in items:
        seen += n
        if 2 * seen >= total:
            return float(value)
    raise TrainError("weighted_median: no values")


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a flag that the loop checks between steps (so the model is never
    saved half-updated); a second signal gets the previous handler, e.g. an immediate KeyboardInterrupt."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: Dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


# ----------------------------------------------------------------------------------------------- trainer


class Trainer:
    """One training run in ``run_dir``; everything is built in the constructor, :meth:`run` trains.

    Args:
        cfg: the run's validated config.
        run_dir: the run directory (created).
        resume: continue from run_dir/last.pt (refused when it is missing or its model/data config differs);
            without it, a run_dir that already holds last.pt is refused.
        ctx: this process's place in a torchrun world (train/distributed.py); default: a single process on
            the device ``cfg.train.device`` selects.
        progress: tqdm bars and log lines on rank 0.
        datasets: (train, val) datasets to use instead of building them from ``cfg.data`` (sample dicts as in
            data/base.py, teacher keys included when the loss needs them).
        autocast_dtype: autocast the network in this dtype on any device, the CPU included (bfloat16 there),
            whatever ``train.amp`` says; None: ``train.amp``'s choice (on CUDA only). bench/gpu_train.py
            uses it to run its GPU code path on a CPU.
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Union[str, Path],
        resume: bool = False,
        ctx: Optional[DistContext] = None,
        progress: bool = True,
        datasets: Optional[Tuple[Any, Any]] = None,
        autocast_dtype: Optional[torch.dtype] = None,
    ) -> None:
        from fg_depth_core.train.distributed import select_device

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ctx = ctx or DistContext(device=select_device(cfg.train.device))
        self.device = self.ctx.device
        # A process-wide setting: close() puts the caller's back.
        self._caller_threads = torch.get_num_threads()
        if cfg.train.cpu_threads > 0:
            torch.set_num_threads(cfg.train.cpu_threads)
        self.progress = progress
        self.step = 0
        self.best: Optional[Dict[str, Any]] = None
        self.focal_counts: Counter = Counter()
        self.baseline_counts: Counter = Counter()
        self._focal_warned = False
        self._updating = False
        self._saved_step: Optional[int] = None
        self._start_time = time.time()

        resume_state = self._prepare_run_dir(resume)
        # First, before anything else is printed: what this run optimises (the preset's name alone can hide
        # what a hand-edited section switches on).
        self._say(describe_loss(cfg.loss))
        seed_everything(cfg.train.seed)
        self.needs_teacher = needs_teacher(cfg.loss)
        if datasets is None:
            datasets = self._build_datasets()
        self.train_set, self.val_set = datasets

        from fg_depth_core.model import build_depthnet

        # Seeded again here: building the data (the teacher, rendering) draws a different amount of
        # randomness per loss preset, and every preset of a seed must start from the same weights.
        seed_everything(cfg.train.seed)
        # Encoder weights (ImageNet, a file) matter only for a fresh run; a resume loads the whole net.
        self.net = build_depthnet(cfg.model, load_weights=resume_state is None).to(self.device)
        self.model = wrap_model(self.net, self.ctx)
        # The fused kernel (CPU and CUDA) is many times faster than the per-tensor loop on small models.
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=cfg.train.learning_rate, fused=self.device.type in ("cpu", "cuda")
        )
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=self._milestones(), gamma=cfg.train.lr_gamma
        )
        self.amp_dtype = autocast_dtype if autocast_dtype is not None else self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        if resume_state is not None:
            self._restore(resume_state)
        self.writer = self._make_writer()

    # ---------------------------------------------------------------------------------------------- setup

    def _milestones(self) -> List[int]:
        return sorted({max(1, round(m * self.cfg.train.max_steps)) for m in self.cfg.train.lr_milestones})

    def _amp_dtype(self) -> Optional[torch.dtype]:
        """bfloat16 autocast where the GPU supports it, else float16 (with a GradScaler); none on the CPU."""
        if self.device.type != "cuda" or not self.cfg.train.amp:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _prepare_run_dir(self, resume: bool) -> Optional[Dict[str, Any]]:
        last = self.run_dir / LAST
        state = None
        if resume:
            state = _load_last(last)
            diffs = check_resumable(state["config"], self.cfg, last)
            if diffs and self.ctx.is_main:
                self._say("resuming with changed settings:\n  " + "\n  ".join(diffs))
        elif last.exists():
            raise TrainError(
                f"{last} exists: pass --resume to continue that run, or choose another --out directory"
            )
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            dump_config(self.cfg, self.run_dir / CONFIG_NAME)
        barrier(self.ctx)
        return state

    def _data_path(self) -> Optional[str]:
        if self.cfg.data.path:
            return self.cfg.data.path
        if self.cfg.data.dataset == "synth":
            return str(self.run_dir / SYNTH_DIR)
        return None

    def _build_datasets(self) -> Tuple[Any, Any]:
        """Train and val datasets from cfg.data, with the teacher's outputs attached (cache filled first)."""
        from fg_depth_core.data.factory import build_dataset

        data = self.cfg.data
        path = self._data_path()
        # Rank 0 first: the built-in world is rendered into the run directory once, then read by all ranks.
        with main_first(self.ctx):
            sets = [
                build_dataset(
                    data,
                    split,
                    path=path,
                    split_file=split_file or None,
                    work_dir=str(self.run_dir / BAG_FRAMES_DIR),
                    log=self._say if self.ctx.is_main and split == "train" else None,
                    progress=self.progress and self.ctx.is_main,
                    eval_cfg=self.cfg.eval,
                )
                for split, split_file in (("train", data.train_split), ("val", data.val_split))
            ]
        if self.needs_teacher:
            sets = self._attach_teacher(sets)
        return sets[0], sets[1]

    def _attach_teacher(self, sets: List[Any]) -> List[Any]:
        """Wrap the datasets with the cached teacher and fill its cache: each rank computes its shard (cache
        files are written atomically, so concurrent writers are harmless), then all ranks wait for each
        other."""
        import dataclasses

        from fg_depth_core.teachers import build_teacher
        from fg_depth_core.teachers.dataset import WithTeacher, precompute_teacher

        cache_dir = self.cfg.teacher.cache_dir or str(self.run_dir / TEACHER_CACHE_DIR)
        teacher_cfg = dataclasses.replace(self.cfg.teacher, cache_dir=cache_dir)
        teacher = build_teacher(teacher_cfg, self.device)
        wrapped = [WithTeacher(ds, teacher, resolution=teacher_cfg.resolution) for ds in sets]
        workers = self.cfg.data.num_workers if teacher.parallel_on_cpu else 0
        for ds in wrapped:
            part = (
                torch.utils.data.Subset(ds, shard_indices(len(ds), self.ctx)) if self.ctx.distributed else ds
            )
            precompute_teacher(part, progress=self.progress and self.ctx.is_main, num_workers=workers)
        barrier(self.ctx)
        return wrapped

    def _restore(self, state: Dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        if "optimizer" not in state or "scheduler" not in state:
            raise CheckpointError(f"{self.run_dir / LAST}: has no optimiser state to resume from")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The milestones follow the current max_steps (the stored ones would follow the old one).
        self.scheduler.milestones = Counter(self._milestones())
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self._saved_step = self.step
        self.best = state.get("best")
        self.focal_counts = Counter({float(f): int(n) for f, n in state.get("focal_counts", [])})
        self.baseline_counts = Counter({float(b): int(n) for b, n in state.get("baseline_counts", [])})
        if state.get("rng"):
            set_rng_state(state["rng"], self.device)

    def _make_writer(self) -> Any:
        if not self.ctx.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a crashed run logged after the checkpoint we resume from.
        return SummaryWriter(
            log_dir=str(self.run_dir / TENSORBOARD_DIR), purge_step=self.step if self.step else None
        )

    # ------------------------------------------------------------------------------------------- the loop

    def _loader(self, dataset: Any, sampler: Any, batch_size: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.cfg.data.num_workers,
            collate_fn=collate_samples,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _batches(self) -> Iterator[Dict[str, Any]]:
        sampler = ResumableShardSampler(
            len(self.train_set),
            self.cfg.train.batch_size,
            self.cfg.train.seed,
            self.ctx.rank,
            self.ctx.world_size,
            start_step=self.step,
        )
        return iter(self._loader(self.train_set, sampler, self.cfg.train.batch_size))

    def run(self, max_new_steps: Optional[int] = None) -> TrainResult:
        """Train until ``train.max_steps`` (or for ``max_new_steps`` more steps, for tests and benchmarks).

        On SIGINT/SIGTERM the step in flight is dropped, last.pt is written at the last completed step and
        KeyboardInterrupt is raised (the CLI exits with 130). Other errors leave the last periodic checkpoint.
        """
        from tqdm import tqdm

        tc = self.cfg.train
        target = tc.max_steps if max_new_steps is None else min(tc.max_steps, self.step + max_new_steps)
        result = TrainResult(step=self.step, best=self.best)
        if self.step >= target:
            self._say(f"nothing to do: already at step {self.step} of {tc.max_steps} (train.max_steps)")
            self.close()
            return result
        self._say(
            f"training {self.run_dir}: steps {self.step} -> {target} of {tc.max_steps} on {self.device}"
            + (f" ({self.ctx.world_size} processes)" if self.ctx.distributed else "")
            + (f", autocast {str(self.amp_dtype).replace('torch.', '')}" if self.amp_dtype else "")
        )
        start_step = self.step
        bar = tqdm(
            total=tc.max_steps,
            initial=self.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not (self.progress and self.ctx.is_main),
        )
        window: Dict[str, List[float]] = {}
        batches = self._batches()
        self.model.train()
        try:
            with StopRequest() as stop:
                while self.step < target:
                    batch = self._next_batch(batches, stop)
                    if batch is not None:
                        loss, logs, batch_aug, depths = self._forward(batch)
                        stats = (loss.detach().float(), (~torch.isfinite(loss.detach())).float())
                    else:
                        stats = (torch.zeros((), device=self.device), torch.zeros((), device=self.device))
                    # Every rank joins this reduction each step, so all of them stop at the same step.
                    stopping = torch.tensor(float(stop.requested or batch is None), device=self.device)
                    flags = all_reduce_sum(torch.stack((*stats, stopping)), self.ctx).tolist()
                    if flags[2] > 0:  # a rank was signalled: all stop before this update
                        break
                    if flags[1] > 0:
                        saved = "none" if self._saved_step is None else f"step {self._saved_step}"
                        raise TrainError(
                            f"step {self.step + 1}: the training loss is not finite; last.pt keeps the "
                            f"state of {saved} (lower train.learning_rate or set train.grad_clip)"
                        )
                    self._update(loss)
                    mean_loss = flags[0] / self.ctx.world_size
                    result.losses.append(mean_loss)
                    self._track_camera(batch)
                    for key, value in logs.items():
                        if value.ndim == 0:
                            window.setdefault(key, []).append(float(value))
                    bar.update(1)
                    bar.set_postfix(loss=f"{mean_loss:.4f}")
                    if self.step % tc.log_every == 0 or self.step == target:
                        self._log_scalars(window)
                        window = {}
                    if tc.image_every > 0 and self.step % tc.image_every == 0 and self.writer is not None:
                        self._log_images(batch_aug, depths, logs)
                    if self.step % tc.val_every == 0 or self.step == tc.max_steps:
                        result.validations.append(self._validate())
                    if self.step % tc.checkpoint_every == 0 or self.step == target:
                        self._save(LAST)
                if stop.requested:
                    result.interrupted = True
                    if self.step > start_step:
                        self._save(LAST)
                        self._say(
                            f"{stop.signal_name}: saved {self.run_dir / LAST} at step {self.step}; continue "
                            "with --resume"
                        )
                    else:
                        self._say(f"{stop.signal_name}: stopped before any step of this run; nothing saved")
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            # A signal that bypassed StopRequest (a second Ctrl-C, a non-main thread): save unless it hit
            # mid-update, where the weights may be half-stepped (last.pt then keeps the previous checkpoint).
            if not self._updating and not result.interrupted and self.step > start_step:
                self._save(LAST)
                self._say(f"interrupted: saved {self.run_dir / LAST} at step {self.step}")
            raise
        finally:
            bar.close()
            del batches
            self.close()
        result.step = self.step
        result.best = self.best
        self._say(f"done: step {self.step}, {time.time() - self._start_time:.0f} s" + self._best_text())
        return result

    @staticmethod
    def _next_batch(batches: Iterator[Dict[str, Any]], stop: StopRequest) -> Optional[Dict[str, Any]]:
        """The next training batch; None when a stop was requested and the loader died of the same signal
        (Ctrl-C in a terminal reaches the DataLoader workers too)."""
        try:
            return next(batches)
        except Exception:
            if stop.requested:
                return None
            raise

    def _forward(
        self, batch: Dict[str, Any]
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Dict[str, torch.Tensor], List[torch.Tensor]]:
        """Augment a batch and compute the loss: the net sees the jittered left view, the losses the plain
        views (autocast for the net only; the warps and losses run in float32)."""
        non_blocking = self.device.type == "cuda"
        moved = {k: batch[k].to(self.device, non_blocking=non_blocking) for k in TRAIN_KEYS if k in batch}
        generator = torch.Generator()
        generator.manual_seed(seed_for(self.cfg.train.seed, self.ctx.rank, self.step))
        aug = augment(moved, self.cfg.augment, generator)
        with self._autocast():
            depths = self.model(aug["left_aug"])
        depths = [d.float() for d in depths]
        loss, logs = total_loss(
            depths,
            aug["left"],
            aug["right"],
            aug.get("flow_lr"),
            aug.get("valid_lr"),
            aug["focal"],
            aug["baseline"],
            self.cfg.loss,
            aug.get("doffs", 0.0),
        )
        return loss, logs, aug, depths

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _update(self, loss: torch.Tensor) -> None:
        self._updating = True
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self._updating = False

    def _track_camera(self, batch: Dict[str, Any]) -> None:
        """Count the focal lengths (pixels at the network input) and baselines trained on; the checkpoint
        stores their medians, with a warning when the focal length varies (the depth scale then does too)."""
        self.focal_counts.update(round(float(f), 4) for f in batch["focal"])
        self.baseline_counts.update(round(float(b), 6) for b in batch["baseline"])
        if len(self.focal_counts) > 1 and not self._focal_warned and self.ctx.is_main:
            self._focal_warned = True
            warnings.warn(
                f"the training focal length varies across the dataset ({sorted(self.focal_counts)[:4]} px "
                "...); checkpoints store the median as train_focal, so metric scale is approximate",
                stacklevel=2,
            )

    # --------------------------------------------------------------------------------------- validation

    def _validate(self) -> Dict[str, float]:
        """Val loss (no augmentation) and, where the val set has depth ground truth, abs_rel under the eval
        protocol (cfg.eval), over the whole val set split across ranks; updates best.pt."""
        from fg_depth_core.evaluate import frame_metrics

        out: Dict[str, float] = {"step": self.step}
        if self.val_set is None or len(self.val_set) == 0:
            return out
        subset = torch.utils.data.Subset(self.val_set, shard_indices(len(self.val_set), self.ctx))
        loader = self._loader(subset, None, self.cfg.train.batch_size)
        # [loss sum, frames, abs_rel sum, frames with ground truth]
        sums = torch.zeros(4, dtype=torch.float64)
        self.net.eval()
        try:
            with torch.no_grad():
                for batch in loader:
                    moved = {k: batch[k].to(self.device) for k in TRAIN_KEYS if k in batch}
                    with self._autocast():
                        depths = self.net(moved["left"])
                    depths = [d.float() for d in depths]
                    loss, _ = total_loss(
                        depths,
                        moved["left"],
                        moved["right"],
                        moved.get("flow_lr"),
                        moved.get("valid_lr"),
                        moved["focal"],
                        moved["baseline"],
                        self.cfg.loss,
                        moved.get("doffs", 0.0),
                    )
                    n = moved["left"].shape[0]
                    sums[0] += float(loss) * n
                    sums[1] += n
                    for i, gt in enumerate(_as_list(batch.get("depth_left"))):
                        pred = depths[0][i, 0].cpu().numpy()
                        metrics, _ = frame_metrics(gt[0].numpy(), pred, self.cfg.eval)
                        if metrics is not None:
                            sums[2] += metrics["abs_rel"]
                            sums[3] += 1
        finally:
            self.net.train()
        sums = all_reduce_sum(sums.to(self.device), self.ctx).cpu()
        if sums[1] > 0:
            out["loss"] = float(sums[0] / sums[1])
        if sums[3] > 0:
            out["abs_rel"] = float(sums[2] / sums[3])
        metric = "abs_rel" if "abs_rel" in out else "loss"
        if metric in out:
            if self.writer is not None:
                for key in ("loss", "abs_rel"):
                    if key in out:
                        self.writer.add_scalar(f"val/{key}", out[key], self.step)
            improved = (
                self.best is None or self.best.get("metric") != metric or out[metric] < self.best["value"]
            )
            if improved:
                self.best = {"metric": metric, "value": out[metric], "step": self.step}
                self._save(BEST)
            shown = ", ".join(f"{k} {out[k]:.4f}" for k in ("loss", "abs_rel") if k in out)
            self._say(f"step {self.step}: val {shown}" + (" (best)" if improved else ""), step_log=True)
        return out

    # --------------------------------------------------------------------------------- checkpoints & logs

    def training_camera(self) -> Tuple[float, float]:
        """(train_focal pixels at the network input, train_baseline metres): medians over the pairs seen."""
        if not self.focal_counts:
            raise TrainError("no training step has run yet: the training camera is unknown")
        return weighted_median(self.focal_counts), weighted_median(self.baseline_counts)

    def state(self) -> Dict[str, Any]:
        """The checkpoint dict (see checkpoint.py) of the current training state."""
        focal, baseline = self.training_camera()
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "config": self.cfg.to_dict(),
            "loss_terms": loss_terms(self.cfg.loss),
            "train_focal": focal,
            "train_baseline": baseline,
            "input_size": [self.cfg.data.width, self.cfg.data.height],
            "rng": rng_state(self.device),
            "best": self.best,
            "focal_counts": [[f, n] for f, n in sorted(self.focal_counts.items())],
            "baseline_counts": [[b, n] for b, n in sorted(self.baseline_counts.items())],
            "world_size": self.ctx.world_size,
        }

    def _save(self, name: str) -> None:
        """Write RUN_DIR/``name`` (rank 0 only; every rank calls this at the same steps)."""
        if name == LAST:
            self._saved_step = self.step
        if not self.ctx.is_main:
            return
        save_checkpoint(self.run_dir / name, self.state())
        if self.writer is not None:
            self.writer.flush()

    def _log_scalars(self, window: Dict[str, List[float]]) -> None:
        keys = sorted(window)
        if not keys:
            return
        means = torch.tensor([sum(window[k]) / len(window[k]) for k in keys], dtype=torch.float64)
        means = all_reduce_sum(means.to(self.device), self.ctx).cpu() / self.ctx.world_size
        if self.writer is None:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        for key, value in zip(keys, means.tolist()):
            self.writer.add_scalar(f"train/{key}", value, self.step)
        self.writer.add_scalar("train/lr", lr, self.step)
        values = dict(zip(keys, means.tolist()))
        terms = ", ".join(f"{k} {values[k]:.4f}" for k in keys if k != "loss")
        self._say(
            f"step {self.step}/{self.cfg.train.max_steps}: loss {values.get('loss', float('nan')):.4f} "
            f"({terms}), lr {lr:.3g}",
            step_log=True,
        )

    def _log_images(
        self, batch: Dict[str, torch.Tensor], depths: List[torch.Tensor], logs: Dict[str, torch.Tensor]
    ) -> None:
        """Image grids of the first samples: network input, predicted depth, teacher disparity, M_fp, M_p."""
        from torchvision.utils import make_grid

        from fg_depth_core.visualize import colorize_depth, colorize_disparity

        n = min(IMAGE_SAMPLES, batch["left"].shape[0])
        lo, hi = self.cfg.model.min_depth, self.cfg.model.max_depth

        def rgb(images: List[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0

        grids = {
            "input": batch["left_aug"][:n].detach().float().cpu().clamp(0, 1),
            "depth": rgb([colorize_depth(depths[0][i, 0].detach().cpu().numpy(), lo, hi) for i in range(n)]),
        }
        if "flow_lr" in batch:
            disparity = -batch["flow_lr"][:n, 0].detach().float().cpu()
            valid = batch["valid_lr"][:n, 0].detach().cpu().bool()
            disparity = torch.where(valid, disparity, torch.full_like(disparity, float("nan"))).numpy()
            finite = disparity[np.isfinite(disparity) & (disparity > 0)]
            top = max(float(np.percentile(finite, 99)) if finite.size else 1.0, 1e-3)
            grids["teacher_disparity"] = rgb([colorize_disparity(disparity[i], top) for i in range(n)])
        for key, tag in (("mask_prior", "mask_prior_M_fp"), ("mask_photometric", "mask_photometric")):
            if key in logs:
                grids[tag] = logs[key][:n].detach().float().cpu().expand(-1, 3, -1, -1)
        for tag, images in grids.items():
            self.writer.add_image(f"images/{tag}", make_grid(images, nrow=1, padding=2), self.step)

    def _say(self, text: str, step_log: bool = False) -> None:
        """Print a line on rank 0 (above the progress bar); per-step log lines only with ``progress``."""
        if self.ctx.is_main and (self.progress or not step_log):
            from tqdm import tqdm

            tqdm.write(text)
            sys.stdout.flush()

    def _best_text(self) -> str:
        if not self.best:
            return ""
        return f"; best val {self.best['metric']} {self.best['value']:.4f} at step {self.best['step']}"

    def close(self) -> None:
        """Flush and close the TensorBoard writer; restore the caller's PyTorch thread count."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        torch.set_num_threads(self._caller_threads)


def _as_list(value: Any) -> List[torch.Tensor]:
    if value is None:
        return []
    return list(value)


def train(
    cfg: Config,
    run_dir: Union[str, Path],
    resume: bool = False,
    ctx: Optional[DistContext] = None,
    progress: bool = True,
) -> TrainResult:
    """Build a :class:`Trainer` and run it to ``cfg.train.max_steps``."""
    return Trainer(cfg, run_dir, resume=resume, ctx=ctx, progress=progress).run()
