"""The teacher interface: dense target->source correspondence with a validity mask, in both directions.

A teacher looks at a rectified stereo pair and returns the flow F from target to source, so that
I_t(p) ~ I_s(p + F(p)) (docs/METHOD.md, "Notation"). With the left image as target F = (-d, 0) for disparity
d; with the right image as target (the flip-swap augmentation) F = (+d, 0).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np
import torch

from fg_depth_core.errors import FgDepthError


class TeacherError(FgDepthError, RuntimeError):
    """A teacher cannot be built or run: missing weights, bad inputs; the message names the file or value."""


@dataclass
class TeacherOutput:
    """A teacher's answer for a batch of pairs.

    flow: (B,2,H,W) float32, target->source in pixels at the input resolution (x then y).
    valid: (B,1,H,W) bool, True where the flow is trusted.
    target_is_left: which view was the target (decides the sign of disparity = -flow_x or +flow_x).
    """

    flow: torch.Tensor
    valid: torch.Tensor
    target_is_left: bool = True

    def to(self, device: Any) -> "TeacherOutput":
        return TeacherOutput(self.flow.to(device), self.valid.to(device), self.target_is_left)


def check_pair(target: torch.Tensor, source: torch.Tensor) -> None:
    """Raise TeacherError unless target and source are float (B,3,H,W) tensors of one shape."""
    for name, image in (("target", target), ("source", source)):
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise TeacherError(f"teacher {name}: expected a (B,3,H,W) tensor, got {shape}")
        if not image.is_floating_point():
            raise TeacherError(f"teacher {name}: expected float images in [0, 1], got dtype {image.dtype}")
    if target.shape != source.shape:
        raise TeacherError(
            f"teacher: target and source must have the same shape, got {tuple(target.shape)} and "
            f"{tuple(source.shape)}"
        )


class Teacher(abc.ABC):
    """Dense correspondence on rectified stereo pairs; images are (B,3,H,W) float in [0, 1]."""

    def flow(self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool = True) -> TeacherOutput:
        """Flow target->source (B,2,H,W, pixels) and validity (B,1,H,W bool), on the input's device."""
        check_pair(target, source)
        return self._flow(target, source, target_is_left)

    def stereo(self, left: torch.Tensor, right: torch.Tensor) -> Tuple[TeacherOutput, TeacherOutput]:
        """Both directions: (left->right output, right->left output).

        Subclasses that get both directions from one computation (RAFT's forward-backward check) override it.
        """
        return self.flow(left, right, True), self.flow(right, left, False)

    @abc.abstractmethod
    def _flow(self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool) -> TeacherOutput:
        """The computation behind :meth:`flow`, on validated inputs."""

    @abc.abstractmethod
    def identity(self) -> Dict[str, Any]:
        """A JSON-serialisable description of everything that determines the output (method, weights
        identity, sub-config): the teacher cache's key."""


def stereo_flows(
    teacher: Teacher, left: torch.Tensor, right: torch.Tensor
) -> Tuple[TeacherOutput, TeacherOutput]:
    """The teacher's (left->right, right->left) outputs for left/right images (B,3,H,W) in [0, 1]."""
    check_pair(left, right)
    return teacher.stereo(left, right)


def teacher_disparity(output: TeacherOutput, index: int = 0) -> np.ndarray:
    """Disparity (H,W) float32 pixels of sample ``index``: -flow_x for a left target, +flow_x for a right
    target; NaN where the teacher is invalid."""
    flow_x = output.flow[index, 0].detach().float().cpu().numpy()
    valid = output.valid[index, 0].detach().cpu().numpy().astype(bool)
    disparity = -flow_x if output.target_is_left else flow_x
    return np.where(valid, disparity, np.nan).astype(np.float32)


def disparity_output(disparity: torch.Tensor, valid: torch.Tensor, target_is_left: bool) -> TeacherOutput:
    """The output of a disparity-only teacher: disparity (B,1,H,W) pixels of the target view, valid (B,1,H,W).

    A left target's match lies at x - d (F = (-d, 0)); a right target's at x + d (F = (+d, 0)).
    """
    flow_x = -disparity if target_is_left else disparity
    flow = torch.cat((flow_x, torch.zeros_like(flow_x)), dim=1)
    return TeacherOutput(flow.float(), valid.bool(), target_is_left)
