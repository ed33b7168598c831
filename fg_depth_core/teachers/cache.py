"""On-disk teacher cache: a teacher's output is a pure function of the pair and the teacher, so compute once.

One ``.npz`` file per sample and direction, named by a SHA-256 of the images (bytes and shapes), the teacher's
identity (method, weights identity, sub-config), the direction, the rig's disparity offset (when not 0, so
that earlier caches of pairs without one stay valid) and the package version. Files are written to
a temporary name in the same directory and renamed, so concurrent workers never read a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from fg_depth_core import __version__
from fg_depth_core.atomic_io import atomic_write_with
from fg_depth_core.teachers.base import (
    Doffs,
    Teacher,
    TeacherError,
    TeacherOutput,
    check_pair,
    per_sample_doffs,
)

FLOW_DTYPES = ("float32", "float16")


def cache_key(
    target: torch.Tensor,
    source: torch.Tensor,
    identity: Dict[str, Any],
    target_is_left: bool,
    doffs: float = 0.0,
) -> str:
    """Hex SHA-256 key of one pair: images (3,H,W) hashed as float32 bytes with their shapes, the teacher's
    identity, the direction, the disparity offset (pixels; left out when 0) and the package version."""
    digest = hashlib.sha256()
    header = {
        "version": __version__,
        "teacher": identity,
        "target_is_left": bool(target_is_left),
        "shapes": [list(target.shape), list(source.shape)],
    }
    if doffs:
        header["doffs"] = float(doffs)
    digest.update(json.dumps(header, sort_keys=True).encode())
    for image in (target, source):
        digest.update(np.ascontiguousarray(image.detach().to("cpu", torch.float32).numpy()).tobytes())
    return digest.hexdigest()


class CachedTeacher(Teacher):
    """Wraps any Teacher with a per-sample on-disk cache; ``hits``/``misses`` count samples.

    ``flow_dtype`` ("float32" or "float16") is the storage precision of the flow; a miss returns the flow
    rounded to that precision too, so a hit and a miss give identical arrays.
    """

    def __init__(
        self, teacher: Teacher, cache_dir: Union[str, os.PathLike], flow_dtype: str = "float32"
    ) -> None:
        if flow_dtype not in FLOW_DTYPES:
            raise TeacherError(
                f"teacher cache flow_dtype: expected one of {list(FLOW_DTYPES)}, got {flow_dtype!r}"
            )
        if not str(cache_dir):
            raise TeacherError("teacher cache directory is empty (teacher.cache_dir='' disables the cache)")
        self.teacher = teacher
        self.cache_dir = Path(cache_dir)
        self.flow_dtype = flow_dtype
        self.hits = 0
        self.misses = 0
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TeacherError(f"{self.cache_dir}: cannot create the cache directory: {exc}") from None

    @property
    def parallel_on_cpu(self) -> bool:  # type: ignore[override]
        return self.teacher.parallel_on_cpu

    def __reduce__(self) -> Tuple[Any, ...]:
        # A copy (a DataLoader worker's) counts its own hits and misses from zero.
        return (type(self), (self.teacher, str(self.cache_dir), self.flow_dtype))

    def identity(self) -> Dict[str, Any]:
        return self.teacher.identity()

    def path_for(self, key: str) -> Path:
        """The cache file of ``key`` (two-level fan-out keeps directories small)."""
        return self.cache_dir / key[:2] / f"{key}.npz"

    # ------------------------------------------------------------------------------------------- lookups

    def _flow(
        self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool, doffs: Tuple[float, ...]
    ) -> TeacherOutput:
        identity = self.identity()
        keys = [cache_key(t, s, identity, target_is_left, o) for t, s, o in zip(target, source, doffs)]
        found = [self._load(k, target.shape[-2:]) for k in keys]
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            idx = torch.tensor(missing, device=target.device)
            computed = self.teacher.flow(
                target[idx], source[idx], target_is_left, [doffs[i] for i in missing]
            )
            for j, i in enumerate(missing):
                found[i] = self._store(keys[i], computed.flow[j], computed.valid[j])
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return self._assemble(found, target.device, target_is_left)

    def stereo(
        self, left: torch.Tensor, right: torch.Tensor, doffs: Doffs = 0.0
    ) -> Tuple[TeacherOutput, TeacherOutput]:
        check_pair(left, right)
        offsets = per_sample_doffs(doffs, left.shape[0])
        identity = self.identity()
        keys = [
            (cache_key(lf, rt, identity, True, o), cache_key(rt, lf, identity, False, o))
            for lf, rt, o in zip(left, right, offsets)
        ]
        found = [[self._load(k, left.shape[-2:]) for k in pair] for pair in keys]
        missing = [i for i, pair in enumerate(found) if any(e is None for e in pair)]
        absent = sum(e is None for pair in found for e in pair)
        self.hits += 2 * len(keys) - absent
        self.misses += absent
        if missing:
            idx = torch.tensor(missing, device=left.device)
            # The inner teacher may get both directions from one run (RAFT's forward-backward check).
            outputs = self.teacher.stereo(left[idx], right[idx], [offsets[i] for i in missing])
            for j, i in enumerate(missing):
                for d, out in enumerate(outputs):
                    if found[i][d] is None:
                        found[i][d] = self._store(keys[i][d], out.flow[j], out.valid[j])
        return (
            self._assemble([f[0] for f in found], left.device, True),
            self._assemble([f[1] for f in found], left.device, False),
        )

    # --------------------------------------------------------------------------------------------- files

    def _load(self, key: str, size: Tuple[int, int]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                flow, valid = data["flow"], data["valid"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None  # unreadable (e.g. a foreign or damaged file): recompute and overwrite
        h, w = size
        if flow.shape != (2, h, w) or valid.shape != (1, h, w) or valid.dtype != np.bool_:
            return None
        return flow, valid

    def _store(self, key: str, flow: torch.Tensor, valid: torch.Tensor) -> Tuple[np.ndarray, np.ndarray]:
        flow_np = flow.detach().to("cpu", torch.float32).numpy().astype(self.flow_dtype)
        valid_np = valid.detach().cpu().numpy().astype(bool)
        # No fsync: a lost cache entry is recomputed, while a sync per sample would slow the first epoch.
        atomic_write_with(
            self.path_for(key), lambda f: np.savez(f, flow=flow_np, valid=valid_np), fsync=False
        )
        return flow_np, valid_np

    @staticmethod
    def _assemble(
        entries: List[Optional[Tuple[np.ndarray, np.ndarray]]], device: torch.device, target_is_left: bool
    ) -> TeacherOutput:
        flow = torch.from_numpy(np.stack([e[0] for e in entries]).astype(np.float32)).to(device)
        valid = torch.from_numpy(np.stack([e[1] for e in entries])).to(device)
        return TeacherOutput(flow, valid, target_is_left)
