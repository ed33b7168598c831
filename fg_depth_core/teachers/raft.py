"""RAFT optical-flow teacher (torchvision ``raft_small`` / ``raft_large``).

The C_T_V2 weights (FlyingChairs + FlyingThings3D) are the closest to the paper's SceneFlow-pretrained
FlowNet. Weights come from a file or from torchvision's hub cache; nothing here ever downloads.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from fg_depth_core.config import RAFT_STRIDE, RaftConfig
from fg_depth_core.teachers.base import OpticalFlowTeacher, TeacherError

#: Seed of the random initialisation for weights="none", so that such a teacher is reproducible (and
#: cacheable) and building one leaves the global RNG untouched.
RANDOM_INIT_SEED = 0


def _architectures() -> Dict[str, Tuple[Callable[..., torch.nn.Module], Any]]:
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights, raft_large, raft_small

    return {
        "raft_small": (raft_small, Raft_Small_Weights.C_T_V2),
        "raft_large": (raft_large, Raft_Large_Weights.C_T_V2),
    }


def _architecture(method: str) -> Tuple[Callable[..., torch.nn.Module], Any]:
    architectures = _architectures()
    if method not in architectures:
        raise TeacherError(f"teacher.method: expected one of {sorted(architectures)}, got {method!r}")
    return architectures[method]


def hub_checkpoint_path(method: str) -> Path:
    """Where torchvision keeps ``method``'s C_T_V2 weights: <torch.hub.get_dir()>/checkpoints/<file>."""
    _, weights = _architecture(method)
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a bad file; all mean "unreadable"
        raise TeacherError(f"{path}: cannot read RAFT weights ({type(exc).__name__}: {exc})") from None
    # Accept training checkpoints that nest the state dict.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise TeacherError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def resolve_weights(method: str, weights: str) -> Tuple[str, Optional[Path]]:
    """(kind, file) for a ``teacher.weights`` value: ("none", None), ("file", path) or ("cache", path).

    Raises TeacherError naming the file when it is missing; never downloads.
    """
    if weights == "none":
        return "none", None
    if weights == "cache":
        path = hub_checkpoint_path(method)
        if not path.is_file():
            _, entry = _architecture(method)
            raise TeacherError(
                f"teacher.weights='cache': {method} C_T_V2 weights not found at {path} (nothing is "
                f"downloaded). Fetch {entry.url} on a machine with internet and copy it to that path "
                f"(TORCH_HOME moves the cache), or pass the file with --weights / teacher.weights."
            )
        return "cache", path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise TeacherError(f"{path}: RAFT weights file not found (teacher.weights)")
    return "file", path


def build_raft(method: str, weights: str) -> torch.nn.Module:
    """An eval-mode RAFT of architecture ``method`` with weights "none" (seeded random), "cache" or a file."""
    factory, _ = _architecture(method)
    _, path = resolve_weights(method, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = factory(weights=None)
    if path is not None:
        try:
            model.load_state_dict(_read_state_dict(path))
        except RuntimeError as exc:
            raise TeacherError(f"{path}: not {method} weights: {str(exc).splitlines()[0]}") from None
    return model.eval()


def padded_size(height: int, width: int, multiple: int, minimum: int) -> Tuple[int, int]:
    """Smallest (H', W') >= (height, width) and >= minimum, both multiples of ``multiple``."""

    def up(n: int) -> int:
        return max(math.ceil(n / multiple) * multiple, math.ceil(minimum / multiple) * multiple)

    return up(height), up(width)


class RaftTeacher(OpticalFlowTeacher):
    """torchvision RAFT on rectified pairs; forward-backward checked when ``cfg.fb_threshold > 0``."""

    def __init__(self, method: str, weights: str, cfg: RaftConfig, device: Any = "cpu") -> None:
        if cfg.pad_multiple % RAFT_STRIDE:
            raise TeacherError(
                f"teacher.raft.pad_multiple: RAFT needs a multiple of {RAFT_STRIDE}, got {cfg.pad_multiple}"
            )
        self.method = method
        self.weights = weights
        self.cfg = cfg
        self.device = torch.device(device)
        self._weights_kind, self._weights_path = resolve_weights(method, weights)
        self.model = build_raft(method, weights).to(self.device)
        # Coarsest correlation level must keep >= 2 cells: feature maps of 2^num_levels at 1/8 resolution.
        self._min_size = RAFT_STRIDE * 2 ** self.model.corr_block.num_levels

    def identity(self) -> Dict[str, Any]:
        if self._weights_path is None:
            weights: Any = {"kind": "none", "seed": RANDOM_INIT_SEED}
        else:
            st = self._weights_path.stat()
            weights = {
                "kind": self._weights_kind,
                "path": str(self._weights_path.resolve()),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
            }
        return {"method": self.method, "weights": weights, "raft": dataclasses.asdict(self.cfg)}

    @torch.no_grad()
    def raw_flow(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """RAFT's flow target->source (B,2,H,W) pixels, for images (B,3,H,W) in [0, 1] of any size."""
        h, w = target.shape[-2:]
        hp, wp = padded_size(h, w, self.cfg.pad_multiple, self._min_size)
        # Pad right/bottom only, so that pixel coordinates (and so the flow) are unchanged by the padding.
        pad = (0, wp - w, 0, hp - h)

        def prepare(image: torch.Tensor) -> torch.Tensor:
            image = image.to(self.device, torch.float32) * 2.0 - 1.0
            return F.pad(image, pad, mode="replicate")

        self.model.eval()
        predictions = self.model(prepare(target), prepare(source), num_flow_updates=self.cfg.num_flow_updates)
        return predictions[-1][:, :, :h, :w].to(target.device)

    def raw_flows(self, target: torch.Tensor, source: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Flows target->source and source->target from one batched RAFT run."""
        b = target.shape[0]
        flows = self.raw_flow(torch.cat((target, source)), torch.cat((source, target)))
        return flows[:b], flows[b:]
