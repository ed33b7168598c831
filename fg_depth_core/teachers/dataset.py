"""Teacher outputs per sample: a dataset wrapper that adds the teacher's flows to every stereo sample.

The teacher runs on the sample's views at the network input size (resolution "input"), or on the dataset's
pairs as stored, before resizing (resolution "raw", teacher.resolution; its flow is then brought to the
network input size by teachers.base.rescale_output), in both directions by default:

- "flow_lr" (2,H,W) float32 pixels, "valid_lr" (1,H,W) bool: left view as target, right as source (≈ -d);
- "flow_rl", "valid_rl": right view as target, left as source (≈ +d), for the flip-swap augmentation.

d is the image disparity; the sample's "doffs" (the rig's disparity offset, pixels) goes to the teacher, which
searches the disparity range it implies (SGBM).

With an on-disk cache (teacher.cache_dir, or a CachedTeacher) each pair is computed once, ever:
:func:`precompute_teacher` fills the cache with a progress bar, after which training only reads it.

Worker processes: the wrapper pickles (DataLoader workers started with "spawn", or any copy): an SGBM
teacher travels as its settings and is rebuilt there (its OpenCV matcher cannot be pickled), and a teacher
given as a TeacherConfig is built lazily in each process. A worker never initialises CUDA: a teacher built
from a config inside a worker runs on the CPU (fill the cache in the main process to use the GPU).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch

from fg_depth_core.config import TEACHER_RESOLUTIONS, TeacherConfig
from fg_depth_core.teachers.base import Teacher, TeacherError, TeacherOutput, rescale_output, stereo_flows
from fg_depth_core.teachers.cache import CachedTeacher

DIRECTIONS = ("lr", "rl")


def _in_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


class WithTeacher(torch.utils.data.Dataset):
    """``dataset``'s samples plus the teacher's outputs for ``directions`` ("lr" and/or "rl").

    teacher: a Teacher (used as given; wrap it in a CachedTeacher, or pass ``cache_dir``, to cache), or a
    TeacherConfig, built on first use in each process with build_teacher (cached when its cache_dir is set).
    cache_dir: wraps an uncached teacher in a CachedTeacher there. device: where a teacher built from a
    TeacherConfig runs (the CPU inside DataLoader workers). resolution: "input" (the teacher sees the
    sample's views) or "raw" (it sees the pair as the dataset stores it, ``load(index)`` of a StereoDataset,
    and its flow is scaled to the sample's size); default: the TeacherConfig's, else "input".
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        teacher: Union[Teacher, TeacherConfig],
        directions: Sequence[str] = DIRECTIONS,
        cache_dir: Optional[str] = None,
        device: Any = "cpu",
        resolution: Optional[str] = None,
    ) -> None:
        directions = tuple(directions)
        if resolution is None:
            resolution = teacher.resolution if isinstance(teacher, TeacherConfig) else "input"
        if resolution not in TEACHER_RESOLUTIONS:
            raise TeacherError(
                f"teacher resolution: expected one of {TEACHER_RESOLUTIONS}, got {resolution!r}"
            )
        if resolution == "raw":
            _stereo_base(dataset, None)  # fails now for a dataset without stored pairs
        self.resolution = resolution
        if (
            not directions
            or len(set(directions)) != len(directions)
            or not set(directions) <= set(DIRECTIONS)
        ):
            raise TeacherError(
                f"teacher directions: expected a non-empty subset of {DIRECTIONS}, got {directions}"
            )
        if not isinstance(teacher, (Teacher, TeacherConfig)):
            raise TeacherError(
                f"WithTeacher: expected a Teacher or a TeacherConfig, got {type(teacher).__name__}"
            )
        self.dataset = dataset
        self.directions = directions
        self.device = str(device)
        self._config: Optional[TeacherConfig] = None
        self._teacher: Optional[Teacher] = None
        if isinstance(teacher, TeacherConfig):
            self._config = teacher
            if cache_dir is not None:
                import dataclasses

                self._config = dataclasses.replace(teacher, cache_dir=str(cache_dir))
        elif cache_dir and not isinstance(teacher, CachedTeacher):
            self._teacher = CachedTeacher(teacher, cache_dir)
        else:
            self._teacher = teacher

    @property
    def teacher(self) -> Teacher:
        """The teacher of this process (built now when given as a config); its hits/misses count here."""
        if self._teacher is None:
            from fg_depth_core.teachers import build_teacher

            device = "cpu" if _in_worker() else self.device
            self._teacher = build_teacher(self._config, device)
        return self._teacher

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        if self.resolution == "raw":
            base, raw, base_index = _stored_pair(self.dataset, index)
            from fg_depth_core.data.base import to_sample
            from fg_depth_core.image_io import to_tensor

            sample = to_sample(raw, base.width, base.height, base_index)
            if raw.right is None:
                raise TeacherError(f"teacher: pair {base_index} has no right view")
            views = [to_tensor(raw.left)[0], to_tensor(raw.right)[0]]
            size = tuple(sample["left"].shape[-2:])
            sample.update(self.teacher_outputs(*views, float(raw.rig.doffs), size=size))
            return sample
        sample = dict(self.dataset[index])
        doffs = float(sample["doffs"]) if "doffs" in sample else 0.0
        sample.update(self.teacher_outputs(sample["left"], sample["right"], doffs))
        return sample

    @torch.no_grad()
    def teacher_outputs(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        doffs: float = 0.0,
        size: Optional[Tuple[int, int]] = None,
    ) -> Dict[str, torch.Tensor]:
        """Teacher keys for one pair of (3,H,W) views in [0, 1] whose rig has disparity offset ``doffs``
        (pixels at this size): flow_* (2,H,W) float32, valid_* (1,H,W) bool, on the CPU; with ``size``
        (H', W') the outputs are brought to that size (teachers.base.rescale_output)."""
        teacher = self.teacher
        target, source = left[None], right[None]
        outputs: Dict[str, TeacherOutput] = {}
        if len(self.directions) == 2:
            outputs["lr"], outputs["rl"] = stereo_flows(teacher, target, source, doffs)
        elif self.directions == ("lr",):
            outputs["lr"] = teacher.flow(target, source, target_is_left=True, doffs=doffs)
        else:
            outputs["rl"] = teacher.flow(source, target, target_is_left=False, doffs=doffs)
        out = {}
        for name, result in outputs.items():
            if size is not None:
                result = rescale_output(result, *size)
            out[f"flow_{name}"] = result.flow[0].detach().to("cpu", torch.float32)
            out[f"valid_{name}"] = result.valid[0].detach().cpu().bool()
        return out

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        if self._config is not None:
            state["_teacher"] = None  # rebuilt lazily in the receiving process
        return state


def precompute_teacher(
    dataset: torch.utils.data.Dataset, progress: bool = True, num_workers: int = 0
) -> Dict[str, int]:
    """Run the teacher once over every sample of ``dataset`` (a WithTeacher, or a Subset of one) so that
    its cache holds them all; returns {"samples": n, "computed": misses, "cached": hits} (the counts are
    known with num_workers=0 and a cached teacher; -1 otherwise).

    num_workers > 0 fills the cache from DataLoader workers in parallel (on the CPU: for SGBM).
    """
    from tqdm import tqdm

    teacher = _teacher_of(dataset)
    counting = num_workers == 0 and isinstance(teacher, CachedTeacher)
    hits0, misses0 = (teacher.hits, teacher.misses) if counting else (0, 0)
    n = len(dataset)
    with tqdm(total=n, desc="teacher cache", unit="pair", disable=not progress, dynamic_ncols=True) as bar:
        if num_workers > 0:
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=num_workers, collate_fn=_drop
            )
            for _ in loader:
                bar.update()
        else:
            for i in range(n):
                dataset[i]
                bar.update()
    if not counting:
        return {"samples": n, "computed": -1, "cached": -1}
    return {"samples": n, "computed": teacher.misses - misses0, "cached": teacher.hits - hits0}


def _stereo_base(dataset: torch.utils.data.Dataset, index: Optional[int]) -> Tuple[Any, Optional[int]]:
    """The StereoDataset under ``dataset``'s Subsets and its own index for ``index`` (None: not mapped)."""
    from fg_depth_core.data.base import StereoDataset

    while isinstance(dataset, torch.utils.data.Subset):
        index = None if index is None else int(dataset.indices[index])
        dataset = dataset.dataset
    if not isinstance(dataset, StereoDataset):
        raise TeacherError(
            "teacher.resolution 'raw': the teacher needs the dataset's stored pairs (a StereoDataset), got "
            f"{type(dataset).__name__}; use teacher.resolution 'input'"
        )
    return dataset, index


def _stored_pair(dataset: torch.utils.data.Dataset, index: int) -> Tuple[Any, Any, int]:
    """(the StereoDataset under ``dataset``'s Subsets, its stored pair for ``index``, its own index)."""
    base, own = _stereo_base(dataset, index)
    return base, base.load(own), own


def _drop(sample: Any) -> None:
    """Collate that discards a sample: precomputing only needs the cache files written."""
    return None


def _teacher_of(dataset: torch.utils.data.Dataset) -> Optional[Teacher]:
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    if not isinstance(dataset, WithTeacher):
        raise TeacherError(
            "precompute_teacher: expected a WithTeacher dataset (or a Subset of one), got "
            f"{type(dataset).__name__}"
        )
    return dataset.teacher
