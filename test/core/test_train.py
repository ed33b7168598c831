"""Training on the built-in world with config/train_tiny.yaml: the loss goes down on a fixed batch, a run
writes last.pt/best.pt/config.yaml/TensorBoard events, --resume continues exactly (same step, optimiser state,
data order and weights as an uninterrupted run), Ctrl-C saves and exits 130, a failing save keeps the old
file, and the ROS entry point is the same command."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import torch
import yaml

from fg_depth_core import cli
from fg_depth_core.config import ConfigError, load_config
from fg_depth_core.data.factory import resolve_package_path
from fg_depth_core.model.checkpoint import load_checkpoint, load_model
from fg_depth_core.train.checkpoint import save_checkpoint
from fg_depth_core.train.trainer import (
    Trainer,
    TrainError,
    check_resumable,
    collate_samples,
    weighted_median,
)
from fg_depth_ros.train import strip_ros_args

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "config" / "train_tiny.yaml"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a CPU shared with other jobs, OpenMP's spinning threads slow these tiny models
    down by 10x or more, while one thread is steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> List[str]:
    """Overrides that let every run of this module share one rendered world and one teacher cache."""
    base = tmp_path_factory.mktemp("shared")
    return [f"data.path={base / 'synth'}", f"teacher.cache_dir={base / 'teacher_cache'}"]


def tiny(shared: List[str], *extra: str):
    return load_config(TINY, [*shared, *extra])


def _train_cli(*args: str) -> int:
    return cli.main(["train", "--no-progress", *args])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared) -> Path:
    """config/train_tiny.yaml run to its end (6 steps) through the CLI."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    assert _train_cli("--config", str(TINY), "--out", str(run), *sum((["--set", s] for s in shared), [])) == 0
    return run


# ------------------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_on_a_fixed_batch_lowers_the_loss(tmp_path, shared):
    # Two frames at batch 2 and no augmentation: every step sees the same batch, so the loss must fall.
    cfg = tiny(
        shared,
        "data.synth.train_frames=2",
        "augment.flip_prob=0.0",
        "augment.graft_prob=0.0",
        "augment.jitter_prob=0.0",
        "train.max_steps=10",
        "train.checkpoint_every=100",
        "train.val_every=100",
        "train.image_every=0",
    )
    result = Trainer(cfg, tmp_path / "run", progress=False).run()
    losses = result.losses
    assert len(losses) == 10 and all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses


def test_cpu_threads_sets_the_torch_thread_count(tmp_path, shared):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        cfg = tiny(shared, "train.cpu_threads=2", "data.synth.train_frames=2")
        trainer = Trainer(cfg, tmp_path / "a", progress=False)
        assert torch.get_num_threads() == 2
        trainer.close()
        assert torch.get_num_threads() == 1  # the caller's count is back
        Trainer(tiny(shared, "data.synth.train_frames=2"), tmp_path / "b", progress=False).close()  # 0: as is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="train.cpu_threads: expected >= 0"):
        tiny(shared, "train.cpu_threads=-1")


def test_a_tiny_run_writes_checkpoints_config_and_tensorboard(tiny_run):
    cfg = load_config(tiny_run / "config.yaml")
    state = load_checkpoint(tiny_run / "last.pt")
    assert state["step"] == 6 and state["config"] == cfg.to_dict()
    assert cfg.train.max_steps == 6 and cfg.data.width == 128
    for key in ("optimizer", "scheduler", "scaler", "rng", "best"):
        assert key in state, key
    # The world renders at 128 px with f = 74.2 px, so the network input sees exactly that focal length.
    assert state["train_focal"] == pytest.approx(74.2, abs=1e-3)
    assert state["train_baseline"] == pytest.approx(0.54, abs=1e-6)
    assert state["input_size"] == [128, 64]
    assert state["optimizer"]["state"], "Adam has no moments: no step was taken"

    best = load_checkpoint(tiny_run / "best.pt")
    # The world has depth ground truth, so best is chosen by validation abs_rel (validated at steps 3 and 6).
    assert best["best"]["metric"] == "abs_rel" and best["best"]["step"] in (3, 6)
    assert best["step"] == best["best"]["step"] and state["best"] == best["best"]
    assert 0 < best["best"]["value"] < 10

    net, best_cfg, _ = load_model(tiny_run / "best.pt")
    depth = net.predict(torch.rand(1, 3, 64, 128))
    assert depth.shape == (1, 1, 64, 128) and best_cfg.to_dict() == cfg.to_dict()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tiny_run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in (
        "train/loss",
        "train/photometric",
        "train/dr",
        "train/fp",
        "train/fd",
        "train/smoothness",
        "train/lr",
        "val/loss",
        "val/abs_rel",
    ):
        assert tag in scalars, (tag, sorted(scalars))
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    images = set(acc.Tags()["images"])
    for tag in ("input", "depth", "teacher_disparity", "mask_prior_M_fp", "mask_photometric"):
        assert f"images/{tag}" in images, (tag, sorted(images))
    assert [e.step for e in acc.Images("images/depth")] == [3, 6]


# --------------------------------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_resume_continues_at_the_same_step_and_matches_an_uninterrupted_run(tmp_path, shared, tiny_run):
    cfg = tiny(shared)
    run = tmp_path / "run"
    first = Trainer(cfg, run, progress=False).run(max_new_steps=3)
    assert first.step == 3
    saved = load_checkpoint(run / "last.pt")
    assert saved["step"] == 3

    resumed = Trainer(cfg, run, resume=True, progress=False)
    assert resumed.step == 3
    _assert_same_state(resumed.optimizer.state_dict(), saved["optimizer"])
    _assert_same_state(resumed.scheduler.state_dict(), saved["scheduler"])
    _assert_same_state(resumed.net.state_dict(), saved["model"])
    assert resumed.best == saved["best"]
    second = resumed.run()
    assert second.step == 6 and len(second.losses) == 3

    # Same batches, same augmentation, same optimiser state: the weights of the run that was stopped at step
    # 3 and resumed equal those of the uninterrupted 6-step run.
    final, reference = load_checkpoint(run / "last.pt"), load_checkpoint(tiny_run / "last.pt")
    assert final["step"] == reference["step"] == 6
    for name, value in reference["model"].items():
        torch.testing.assert_close(final["model"][name], value, rtol=0, atol=1e-6, msg=name)
    _assert_same_state(final["optimizer"], reference["optimizer"], atol=1e-6)


@pytest.mark.slow
def test_resume_with_more_steps_reaches_the_new_max_steps(tmp_path, tiny_run):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "best.pt"):
        shutil.copy(tiny_run / name, run / name)
    # No --config: the config stored in last.pt, with the override.
    assert _train_cli("--out", str(run), "--resume", "--set", "train.max_steps=8") == 0
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == 8 and state["config"]["train"]["max_steps"] == 8
    # Step 8 is the new end, so it was validated; the scheduler follows the new milestones (0.75 * 8).
    assert state["best"]["step"] in (3, 6, 8)
    assert load_checkpoint(run / "best.pt")["step"] == state["best"]["step"]
    assert dict(state["scheduler"]["milestones"]) == {6: 1}
    assert load_config(run / "config.yaml").train.max_steps == 8


def test_resume_is_refused_without_a_checkpoint_or_with_another_model(tmp_path, shared, tiny_run, capsys):
    empty = tmp_path / "empty"
    assert _train_cli("--config", str(TINY), "--out", str(empty), "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err

    with pytest.raises(TrainError, match=r"model.encoder: 'resnet18' -> 'resnet34'"):
        Trainer(tiny(shared, "model.encoder=resnet34"), tiny_run, resume=True, progress=False)
    with pytest.raises(TrainError, match="pass --resume"):
        Trainer(tiny(shared), tiny_run, progress=False)
    assert load_checkpoint(tiny_run / "last.pt")["step"] == 6, "a refused run must not touch the checkpoint"

    stored = tiny(shared).to_dict()
    # Reading data with more workers or training longer is the same experiment; another data size is not.
    allowed = check_resumable(stored, tiny(shared, "data.num_workers=3", "train.max_steps=9"), "x")
    assert allowed == ["data.num_workers: 0 -> 3", "train.max_steps: 6 -> 9"]
    with pytest.raises(TrainError, match="data.width: 128 -> 160"):
        check_resumable(stored, tiny(shared, "data.width=160"), "x")
    with pytest.raises(ConfigError, match="--config is required"):
        from fg_depth_core.train.trainer import run_config

        run_config(empty, None, [], resume=False)


# ------------------------------------------------------------------------------------- interrupt & crashes


@pytest.mark.slow
def test_ctrl_c_saves_last_pt_and_exits_130(tmp_path, shared):
    run = tmp_path / "run"
    sets = [
        *shared,
        "train.max_steps=1000",
        "train.checkpoint_every=1000",
        "train.val_every=1000",
        "train.log_every=1",
    ]
    cmd = [sys.executable, "-m", "fg_depth_core", "train", "--config", str(TINY), "--out", str(run)]
    cmd += sum((["--set", s] for s in sets), [])
    with open(tmp_path / "stderr.txt", "w") as err:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        try:
            lines = []
            deadline = time.monotonic() + 120
            for line in proc.stdout:  # log lines are flushed per step
                lines.append(line)
                if line.startswith("step 1/1000") or time.monotonic() > deadline:
                    break
            assert any(line.startswith("step 1/1000") for line in lines), "".join(lines)
            assert not (run / "last.pt").exists(), "no periodic checkpoint is due before step 1000"
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "SIGINT: saved" in out
    state = load_checkpoint(run / "last.pt")
    assert 1 <= state["step"] < 1000
    assert f"at step {state['step']}" in out


def test_a_failing_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    old = {
        "model": {"w": torch.ones(3)},
        "config": {},
        "step": 1,
        "train_focal": 1.0,
        "train_baseline": 0.5,
        "input_size": [64, 64],
    }
    save_checkpoint(path, old)
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, f)  # some bytes reach the disk, then the "disk fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {**old, "step": 2, "model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "the temporary file must be removed"


def test_a_non_finite_loss_stops_training_without_overwriting_the_checkpoint(tmp_path, shared, monkeypatch):
    import fg_depth_core.train.trainer as trainer_module

    real_loss = trainer_module.total_loss

    def exploding(*args, **kwargs):
        loss, logs = real_loss(*args, **kwargs)
        return loss * float("nan"), logs

    monkeypatch.setattr(trainer_module, "total_loss", exploding)
    cfg = tiny(shared, "train.max_steps=2", "train.checkpoint_every=1")
    with pytest.raises(TrainError, match="step 1: the training loss is not finite"):
        Trainer(cfg, tmp_path / "run", progress=False).run()
    assert not (tmp_path / "run" / "last.pt").exists()


class _TwoCameras(torch.utils.data.Dataset):
    """The tiny world's frames, the last one claiming a 10% longer focal length (K and "focal")."""

    def __init__(self, base) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        sample = dict(self.base[index])
        if index == len(self.base) - 1:
            sample["K"] = sample["K"].clone()
            sample["K"][:2, :2] *= 1.1
            sample["focal"] = sample["K"][0, 0].clone()
        return sample


def test_a_varying_focal_length_warns_and_the_checkpoint_keeps_the_median(tmp_path, shared):
    from fg_depth_core.data.factory import build_dataset

    # The baseline preset needs no teacher, so the plain dataset can be used as is.
    cfg = tiny(
        shared,
        "loss.preset=baseline",
        "data.synth.train_frames=4",
        "train.batch_size=4",
        "train.max_steps=2",
        "train.val_every=100",
    )
    base = build_dataset(cfg.data, "train", path=cfg.data.path)
    data = _TwoCameras(base)
    with pytest.warns(UserWarning, match="focal length varies"):
        Trainer(cfg, tmp_path / "run", progress=False, datasets=(data, None)).run()
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    # Two steps of all four frames: 74.2 px six times, 81.62 px twice.
    assert state["focal_counts"] == [[74.2, 6], [81.62, 2]]
    assert state["train_focal"] == pytest.approx(74.2)


# ----------------------------------------------------------------------------------------------- pieces


def test_package_paths_resolve_inside_the_installed_package():
    split = resolve_package_path("pkg://fg_depth_core/data/splits/eigen/test_files.txt")
    assert Path(split).is_file() and Path(split).parent.parent.name == "splits"
    assert resolve_package_path("relative/file.txt") == "relative/file.txt"
    with pytest.raises(ConfigError, match="no such file inside package fg_depth_core"):
        resolve_package_path("pkg://fg_depth_core/data/splits/missing.txt")
    with pytest.raises(ConfigError, match="'no_such_package' is not a package"):
        resolve_package_path("pkg://no_such_package/x.txt")


def test_shipped_training_configs_load_and_name_packaged_splits():
    for name in ("train_tiny", "train_synth", "train_kitti_640x192", "train_kitti_1024x320"):
        cfg = load_config(ROOT / "config" / f"{name}.yaml")
        data = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
        assert "train" in data, name  # each one sets its own schedule
        if cfg.data.dataset == "kitti":
            for split in (cfg.data.train_split, cfg.data.val_split):
                assert split.startswith("pkg://fg_depth_core/data/splits/eigen_zhou/"), split
    assert load_config(ROOT / "config" / "train_kitti_1024x320.yaml").data.width == 1024


def test_collate_keeps_ground_truth_of_different_sizes_as_a_list():
    samples = [
        {"left": torch.zeros(3, 4, 8), "depth_left": torch.zeros(1, 5, 9)},
        {"left": torch.ones(3, 4, 8), "depth_left": torch.zeros(1, 6, 9)},
    ]
    batch = collate_samples(samples)
    assert batch["left"].shape == (2, 3, 4, 8) and float(batch["left"][1].mean()) == 1.0
    assert isinstance(batch["depth_left"], list) and [d.shape[1] for d in batch["depth_left"]] == [5, 6]


def test_weighted_median_of_focal_lengths():
    assert weighted_median({700.0: 3, 720.0: 1}) == 700.0
    assert weighted_median({700.0: 1, 720.0: 1, 721.0: 5}) == 721.0


def test_ros_entry_point_is_the_train_command_without_importing_rclpy():
    code = (
        "import sys\nfrom fg_depth_ros.train import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
        "print('RCLPY', 'rclpy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: fg-depth train" in done.stdout and "--resume" in done.stdout
    assert "EXIT 0" in done.stdout and "RCLPY False" in done.stdout
    assert strip_ros_args(["--out", "r", "--ros-args", "-r", "__node:=x", "--", "--resume"]) == [
        "--out",
        "r",
        "--resume",
    ]
    assert strip_ros_args(["--resume", "--ros-args", "-p", "a:=1"]) == ["--resume"]


def _assert_same_state(a, b, atol: float = 0.0) -> None:
    """Recursively equal containers; tensors equal within ``atol``."""
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=atol)
    elif isinstance(a, dict):
        assert set(a) == set(b), (sorted(a), sorted(b))
        for key in a:
            _assert_same_state(a[key], b[key], atol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_state(x, y, atol)
    else:
        assert a == b, (a, b)


def test_checkpoint_file_mode_follows_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        state = {
            "model": {},
            "config": {},
            "step": 0,
            "train_focal": 1.0,
            "train_baseline": 1.0,
            "input_size": [64, 64],
        }
        save_checkpoint(tmp_path / "c.pt", state)
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644


def test_the_log_and_the_checkpoint_state_the_loss_terms_in_effect(tmp_path, shared, capsys):
    # Issue 14: a run labelled by its preset must say what it optimised. default.yaml's explicit loss keys
    # with --set loss.preset=baseline used to train L_dr and L_fp under the name "baseline".
    cfg = load_config(
        ROOT / "config" / "default.yaml",
        [
            *shared,
            "loss.preset=baseline",
            "data.width=128",
            "data.height=64",
            "data.num_workers=0",
            "data.synth.width=128",
            "data.synth.height=64",
            "data.synth.focal=74.2",
            "data.synth.train_frames=2",
            "data.synth.val_frames=2",
            "train.batch_size=2",
            "train.max_steps=1",
            "train.device=cpu",
            "train.image_every=0",
        ],
    )
    Trainer(cfg, tmp_path / "run", progress=False).run()
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("loss (preset baseline): L_ph = 1 x pe over M_p;")
    assert "L_dr" not in first and "L_fp" not in first and "L_s = 0.001" in first
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert sorted(state["loss_terms"]) == ["L_ph", "L_s"]
    assert state["config"]["loss"]["use_dr"] is False


def test_every_preset_of_a_seed_starts_from_the_same_weights(tmp_path, shared):
    # bench/ablation.py pairs presets by seed: baseline (no teacher) and fgdepth (whose data building runs
    # the teacher) must start from identical weights, whatever building their data drew from the RNGs (a
    # DataLoader with workers, as the teacher cache is filled with, draws its base seed from torch's).
    nets = {}
    for preset in ("baseline", "fgdepth"):
        cfg = tiny(shared, f"loss.preset={preset}", "train.seed=3", "data.num_workers=1")
        trainer = Trainer(cfg, tmp_path / preset, progress=False)
        nets[preset] = {k: v.clone() for k, v in trainer.net.state_dict().items()}
        trainer.close()
    assert nets["baseline"].keys() == nets["fgdepth"].keys()
    assert all(torch.equal(nets["baseline"][k], nets["fgdepth"][k]) for k in nets["baseline"])
    other = Trainer(tiny(shared, "loss.preset=baseline", "train.seed=4"), tmp_path / "seed4", progress=False)
    assert not all(torch.equal(nets["baseline"][k], v) for k, v in other.net.state_dict().items())
    other.close()
