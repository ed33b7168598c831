"""Multi-process training: the sharded, resumable sample order, and a real two-process DDP run on gloo (CPU)
with the tiny config: it completes, both ranks end with identical weights, and only rank 0 writes files."""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from fg_depth_core.model.checkpoint import load_checkpoint
from fg_depth_core.train.distributed import (
    DistContext,
    DistributedError,
    ResumableShardSampler,
    cleanup,
    epoch_permutation,
    init_distributed,
    seed_for,
    shard_indices,
)
from fg_depth_core.train.trainer import Trainer, run_config

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "config" / "train_tiny.yaml"


def _take(sampler: ResumableShardSampler, n: int) -> list:
    return list(itertools.islice(iter(sampler), n))


def test_shards_of_an_epoch_are_disjoint_whole_batches_of_the_seeded_permutation():
    n, batch, world = 11, 2, 2  # 2 steps per epoch per rank; 3 pairs of each epoch are dropped
    shards = [ResumableShardSampler(n, batch, seed=5, rank=r, world_size=world) for r in range(world)]
    assert shards[0].steps_per_epoch == 2
    epoch0 = [_take(s, 4) for s in shards]
    perm = epoch_permutation(n, 5, 0)
    assert epoch0[0] == perm[0:8:2] and epoch0[1] == perm[1:8:2]
    assert not set(epoch0[0]) & set(epoch0[1])
    # The next epoch is a different permutation (another seed stream), still sharded the same way.
    epoch1 = _take(shards[0], 8)[4:]
    assert epoch1 == epoch_permutation(n, 5, 1)[0:8:2]
    assert epoch_permutation(n, 5, 1) != perm


@pytest.mark.parametrize("start", [1, 2, 5])
def test_a_sampler_started_at_step_s_continues_the_uninterrupted_stream(start):
    batch = 3
    full = _take(ResumableShardSampler(10, batch, seed=1, rank=1, world_size=2), 3 * 8)
    resumed = _take(ResumableShardSampler(10, batch, seed=1, rank=1, world_size=2, start_step=start), 9)
    assert resumed == full[start * batch : start * batch + 9]


def test_a_training_set_smaller_than_one_global_batch_is_refused_with_the_numbers():
    with pytest.raises(
        DistributedError, match=r"3 pairs, fewer than train.batch_size \(2\) x processes \(2\)"
    ):
        ResumableShardSampler(3, 2, seed=0, world_size=2)


def test_evaluation_shards_cover_every_index_once():
    parts = [shard_indices(7, DistContext(rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(7))


def test_seed_for_separates_ranks_and_steps():
    seeds = {seed_for(0, rank, step) for rank in range(2) for step in range(50)}
    assert len(seeds) == 100 and all(0 <= s < 2**63 for s in seeds)


def test_without_torchrun_variables_the_context_is_a_single_cpu_process(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed, ctx.initialized) == (
        0,
        1,
        True,
        False,
        False,
    )
    assert ctx.device == torch.device("cpu")


def test_a_world_without_rendezvous_address_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR is not set"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedError, match="RANK=2, WORLD_SIZE=2"):
        init_distributed("cpu")


# ------------------------------------------------------------------------------------ two-process DDP run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, run_dir: str, out_dir: str) -> None:
    """One torchrun-like rank: the environment torchrun would set, then what `fg-depth train` does."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    cfg = run_config(run_dir, str(TINY), ["train.max_steps=4", "train.image_every=2"])
    ctx = init_distributed(cfg.train.device)
    try:
        assert ctx.initialized and torch.distributed.get_backend() == "gloo"
        trainer = Trainer(cfg, run_dir, ctx=ctx, progress=False)
        initial = {k: v.detach().clone() for k, v in trainer.net.named_parameters()}
        result = trainer.run()
        torch.save(
            {
                "params": {k: v.detach().clone() for k, v in trainer.net.named_parameters()},
                "initial": initial,
                "step": result.step,
                "losses": result.losses,
                "val": result.validations,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        cleanup(ctx)


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync_and_only_rank_0_writes(tmp_path):
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    # Spawned, not forked: earlier tests of the suite leave threads (rclpy, ONNX Runtime, tqdm) in this
    # process, and a forked child can deadlock on a lock one of them held. Each rank joins the process group,
    # builds its data, model and DDP wrapper itself, as under torchrun.
    mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(run_dir), str(out_dir)),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    ranks = [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 4
    # Both ranks report the same globally averaged losses and validation (all-reduced over the two shards).
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 4
    assert ranks[0]["val"] == ranks[1]["val"]
    moved = 0.0
    for name, value in ranks[0]["params"].items():
        torch.testing.assert_close(ranks[1]["params"][name], value, rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(ranks[1]["initial"][name], ranks[0]["initial"][name], rtol=0, atol=0)
        moved = max(moved, float((value - ranks[0]["initial"][name]).abs().max()))
    assert moved > 1e-5, "the weights did not change: no optimiser step happened"
    # One writer: rank 0's checkpoint holds the synchronised weights; no second copy or stray temp file.
    state = load_checkpoint(run_dir / "last.pt")
    assert state["step"] == 4 and state["world_size"] == 2
    for name, value in ranks[0]["params"].items():
        torch.testing.assert_close(state["model"][name], value, rtol=0, atol=0)
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["best.pt", "last.pt"]
    assert not list(run_dir.glob(".*.tmp"))
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
