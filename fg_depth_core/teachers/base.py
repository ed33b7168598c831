"""The teacher interface: dense target->source correspondence with a validity mask, in both directions.

A teacher looks at a rectified stereo pair and returns the flow F from target to source, so that
I_t(p) ~ I_s(p + F(p)) (docs/METHOD.md, "Notation"). With the left image as target F = (-d, 0) for the image
disparity d = x_l - x_r; with the right image as target (the flip-swap augmentation) F = (+d, 0). A rig's
disparity offset doffs = cx_r - cx_l (fg_depth_core.camera.StereoRig) does not change the flow, which is an
image correspondence, but it shifts where d lives (d = f * B / Z - doffs): teachers that search a disparity
range (SGBM) take it per sample, and the cache keys on it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fg_depth_core.errors import FgDepthError
from fg_depth_core.geometry import flow_warp


class TeacherError(FgDepthError, RuntimeError):
    """A teacher cannot be built or run: missing weights, bad inputs; the message names the file or value."""


#: Disparity offsets of a batch: one number for every sample, or one per sample ((B,) tensor or sequence).
Doffs = Union[float, Sequence[float], torch.Tensor]


def per_sample_doffs(doffs: Doffs, batch: int) -> Tuple[float, ...]:
    """``doffs`` (pixels) as one float per sample of a batch of ``batch``; TeacherError for a wrong count or a
    non-finite value."""
    values = [float(v) for v in torch.as_tensor(doffs, dtype=torch.float64).reshape(-1)]
    if len(values) == 1:
        values = values * batch
    if len(values) != batch or not all(np.isfinite(values)):
        raise TeacherError(
            f"teacher doffs: expected one finite disparity offset (pixels) or one per sample of {batch}, got "
            f"{values}"
        )
    return tuple(values)


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

    #: Whether the teacher runs on the CPU only, so that DataLoader worker processes parallelise it (a GPU
    #: teacher stays in the training process).
    parallel_on_cpu = False

    def flow(
        self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool = True, doffs: Doffs = 0.0
    ) -> TeacherOutput:
        """Flow target->source (B,2,H,W, pixels) and validity (B,1,H,W bool), on the input's device, for pairs
        whose rig has the disparity offset ``doffs`` (pixels at this size; the same whichever view is the
        target, since flip-swap keeps it)."""
        check_pair(target, source)
        return self._flow(target, source, target_is_left, per_sample_doffs(doffs, target.shape[0]))

    def stereo(
        self, left: torch.Tensor, right: torch.Tensor, doffs: Doffs = 0.0
    ) -> Tuple[TeacherOutput, TeacherOutput]:
        """Both directions: (left->right output, right->left output).

        Subclasses that get both directions from one computation (RAFT's forward-backward check) override it.
        """
        return self.flow(left, right, True, doffs), self.flow(right, left, False, doffs)

    @abc.abstractmethod
    def _flow(
        self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool, doffs: Tuple[float, ...]
    ) -> TeacherOutput:
        """The computation behind :meth:`flow`, on validated inputs (``doffs``: one offset per sample)."""

    @abc.abstractmethod
    def identity(self) -> Dict[str, Any]:
        """A JSON-serialisable description of everything that determines the output (method, weights
        identity, sub-config): the teacher cache's key."""


def stereo_flows(
    teacher: Teacher, left: torch.Tensor, right: torch.Tensor, doffs: Doffs = 0.0
) -> Tuple[TeacherOutput, TeacherOutput]:
    """The teacher's (left->right, right->left) outputs for left/right images (B,3,H,W) in [0, 1] of rigs
    with disparity offset ``doffs`` (pixels)."""
    check_pair(left, right)
    return teacher.stereo(left, right, doffs)


def teacher_disparity(output: TeacherOutput, index: int = 0) -> np.ndarray:
    """Image disparity (H,W) float32 pixels of sample ``index``: -flow_x for a left target, +flow_x for a
    right target; NaN where the teacher is invalid. Its depth is f * B / (d + doffs)."""
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


def consistency_valid(forward: torch.Tensor, backward: Optional[torch.Tensor], cfg: Any) -> torch.Tensor:
    """Validity (B,1,H,W) of an optical-flow teacher's forward flow (B,2,H,W) given the backward flow of the
    same pair (pixels); ``cfg`` has ``fb_threshold`` and ``max_vertical_flow`` (RaftConfig, DisConfig).

    Valid where p + F(p) lies inside the source view, |F_y| <= cfg.max_vertical_flow and, when
    cfg.fb_threshold > 0, |F_fw(p) + F_bw(p + F_fw(p))| < cfg.fb_threshold (``backward`` is then required).
    """
    if cfg.fb_threshold > 0 and backward is None:
        raise TeacherError("teacher fb_threshold > 0 needs the backward flow")
    back_at_match, inside = flow_warp(forward if backward is None else backward, forward)
    valid = inside & (forward[:, 1:2].abs() <= cfg.max_vertical_flow)
    if cfg.fb_threshold > 0:
        error = torch.linalg.vector_norm(forward + back_at_match, dim=1, keepdim=True)
        valid = valid & (error < cfg.fb_threshold)
    return valid


class OpticalFlowTeacher(Teacher):
    """A teacher from a dense optical-flow method (RAFT, DIS): a subclass gives :meth:`raw_flow`; validity
    is :func:`consistency_valid` with the teacher's ``cfg`` (``fb_threshold``, ``max_vertical_flow``)."""

    cfg: Any

    @abc.abstractmethod
    def raw_flow(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """Flow target->source (B,2,H,W) pixels, I_t(p) ~ I_s(p + F(p)), for (B,3,H,W) images in [0, 1]."""

    def raw_flows(self, target: torch.Tensor, source: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Flows target->source and source->target (a subclass may compute both in one run)."""
        return self.raw_flow(target, source), self.raw_flow(source, target)

    def _flow(
        self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool, doffs: Tuple[float, ...]
    ) -> TeacherOutput:
        # Optical flow needs no disparity range: the offset only changes how its disparity becomes depth.
        if self.cfg.fb_threshold > 0:
            return self._both(target, source, target_is_left)[0]
        forward = self.raw_flow(target, source)
        return TeacherOutput(forward, consistency_valid(forward, None, self.cfg), target_is_left)

    def stereo(
        self, left: torch.Tensor, right: torch.Tensor, doffs: Doffs = 0.0
    ) -> Tuple[TeacherOutput, TeacherOutput]:
        return self._both(left, right, True)

    def _both(
        self, target: torch.Tensor, source: torch.Tensor, target_is_left: bool
    ) -> Tuple[TeacherOutput, TeacherOutput]:
        forward, backward = self.raw_flows(target, source)
        return (
            TeacherOutput(forward, consistency_valid(forward, backward, self.cfg), target_is_left),
            TeacherOutput(backward, consistency_valid(backward, forward, self.cfg), not target_is_left),
        )


def rescale_output(output: TeacherOutput, height: int, width: int) -> TeacherOutput:
    """A teacher output computed at another resolution, brought to (height, width): the flow's x and y scaled
    by the width and height ratios; each output pixel averages the valid flows of the input pixels it covers
    (area resampling) and is valid where at least half of them are. Same size: returned as is."""
    import torch.nn.functional as F

    h, w = output.flow.shape[-2:]
    if (h, w) == (height, width):
        return output
    valid = output.valid.float()
    flow = torch.where(output.valid, output.flow, torch.zeros_like(output.flow))
    share = F.interpolate(valid, size=(height, width), mode="area")
    mean = F.interpolate(flow * valid, size=(height, width), mode="area") / share.clamp(min=1e-6)
    scale = torch.tensor([width / w, height / h], dtype=mean.dtype, device=mean.device).reshape(1, 2, 1, 1)
    return TeacherOutput((mean * scale).float(), share >= 0.5, output.target_is_left)


def band_coverage(valid: np.ndarray, bands: int) -> List[float]:
    """The share of True pixels of ``valid`` (H,W) in each of ``bands`` vertical bands of equal width, left to
    right (the last band takes the remainder)."""
    width = valid.shape[1]
    edges = [round(i * width / bands) for i in range(bands + 1)]
    return [float(valid[:, a:b].mean()) if b > a else float("nan") for a, b in zip(edges[:-1], edges[1:])]
