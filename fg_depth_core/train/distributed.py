"""Multi-process training (torchrun + DistributedDataParallel) and the resumable, sharded sample order.

``torchrun --nproc_per_node=N -m fg_depth_core train ...`` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK in their environment; :func:`init_distributed` reads them (a plain run is a world of one) and joins
the process group: NCCL when training on CUDA, gloo on the CPU. Every process trains on its own shard of the
data with ``train.batch_size`` pairs per step (the effective batch is N times that); gradients are averaged by
DDP, and only rank 0 writes checkpoints, logs and progress bars.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional

import torch
import torch.distributed as dist

from fg_depth_core.errors import FgDepthError

#: How long a rank waits for the others at a collective. Generous, because a rank may wait at a barrier while
#: another fills the teacher cache.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=6)


class DistributedError(FgDepthError):
    """The torchrun environment or the requested device does not allow distributed training."""


@dataclass
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    #: True when this process joined a process group (and must leave it, see :func:`cleanup`).
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedError(f"environment variable {name}: expected an integer, got {raw!r}") from None


def select_device(preference: str, local_rank: int = 0) -> torch.device:
    """The training device for ``train.device`` ("auto", "cpu", "cuda"): auto is CUDA when available; with
    CUDA each local rank takes its own GPU."""
    if preference not in ("auto", "cpu", "cuda"):
        raise DistributedError(f"train.device: expected 'auto', 'cpu' or 'cuda', got {preference!r}")
    use_cuda = torch.cuda.is_available() if preference == "auto" else preference == "cuda"
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DistributedError("train.device: 'cuda' was asked for, but torch sees no CUDA device")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DistributedError(
            f"LOCAL_RANK {local_rank}: expected < the number of visible CUDA devices ({count}); start at "
            f"most {count} processes per node"
        )
    return torch.device("cuda", local_rank)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (absent: a single process) and, for a world larger than
    one, join the default process group (NCCL on CUDA, gloo on the CPU; MASTER_ADDR/MASTER_PORT from the
    environment, as torchrun sets them)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world_size < 1 or not 0 <= rank < world_size:
        raise DistributedError(f"RANK={rank}, WORLD_SIZE={world_size}: expected 0 <= RANK < WORLD_SIZE")
    device = select_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    ctx = DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
    if world_size > 1 and not dist.is_initialized():
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(key):
                raise DistributedError(f"WORLD_SIZE={world_size} but {key} is not set: start with torchrun")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world_size, timeout=PROCESS_GROUP_TIMEOUT
        )
        ctx.initialized = True
    return ctx


def cleanup(ctx: DistContext) -> None:
    """Leave the process group joined by :func:`init_distributed` (no-op for a single process)."""
    if ctx.initialized and dist.is_initialized():
        dist.destroy_process_group()
        ctx.initialized = False


def barrier(ctx: DistContext) -> None:
    """Wait until every rank gets here (no-op for a single process)."""
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise sum of ``values`` over all ranks (the tensor itself for a single process)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


@contextlib.contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Run the block on rank 0 first and on the others after it (e.g. rank 0 renders a dataset that the
    others then read); every rank runs it, so all of them leave with the same objects."""
    if not ctx.is_main:
        barrier(ctx)
    yield
    if ctx.is_main:
        barrier(ctx)


def wrap_model(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel for a world larger than one (DDP broadcasts rank 0's
    parameters and buffers at construction, so all ranks start identical); the model itself otherwise."""
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints store)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


# ------------------------------------------------------------------------------------------ sample order


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> List[int]:
    """The shuffled order of ``num_samples`` indices in ``epoch``: a pure function of (seed, epoch)."""
    generator = torch.Generator()
    generator.manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(num_samples, generator=generator).tolist()


class ResumableShardSampler(torch.utils.data.Sampler):
    """Sample order for training: an endless stream of epochs, each a seeded permutation of the dataset cut
    into ``world_size`` disjoint shards (this rank takes every world_size-th index) of whole batches.

    Each epoch holds ``steps_per_epoch = len(dataset) // (batch_size * world_size)`` batches per rank; the
    remainder of the permutation is dropped, like DistributedSampler with drop_last. Because the order is
    a pure function of (seed, epoch, rank), a run resumed at optimiser step s starts at ``start_step=s`` and
    sees exactly the batches an uninterrupted run would have seen from step s on.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        if batch_size < 1:
            raise DistributedError(f"batch size: expected >= 1, got {batch_size}")
        self.steps_per_epoch = num_samples // (batch_size * world_size)
        if self.steps_per_epoch < 1:
            raise DistributedError(
                f"the training set has {num_samples} pairs, fewer than train.batch_size ({batch_size}) x "
                f"processes ({world_size}) = {batch_size * world_size} needed for one step"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        per_epoch = self.steps_per_epoch * self.batch_size * self.world_size
        while True:
            epoch, offset = divmod(step, self.steps_per_epoch)
            order = epoch_permutation(self.num_samples, self.seed, epoch)[:per_epoch]
            shard = order[self.rank :: self.world_size]
            yield from shard[offset * self.batch_size :]
            step = (epoch + 1) * self.steps_per_epoch

    def __len__(self) -> int:
        # Endless; a length keeps DataLoader's bookkeeping happy and is never reached.
        return 2**62


def shard_indices(num_samples: int, ctx: DistContext) -> List[int]:
    """This rank's share of ``range(num_samples)`` for evaluation (every world_size-th index, no padding,
    so each sample is counted exactly once over all ranks)."""
    return list(range(ctx.rank, num_samples, ctx.world_size))


def seed_for(seed: int, *parts: Optional[int]) -> int:
    """A 63-bit seed mixing ``seed`` with ``parts`` (rank, step, ...): distinct parts, unrelated streams."""
    value = int(seed) & (2**63 - 1)
    for part in parts:
        value = (value * 6364136223846793005 + 1442695040888963407 + int(part or 0)) % 2**63
    return value
