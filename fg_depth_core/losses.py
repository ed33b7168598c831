"""FG-Depth's training losses (docs/METHOD.md, "Losses and masks"): pe/SSIM, the masks M_p and M_fp, L_ph,
L_dr, L_fp, edge-aware smoothness and the multi-scale total.

Pure tensor functions. Shapes: images (B,3,H,W) in [0, 1]; depth, disparity and masks (B,1,H,W) (masks are
bool); flow (B,2,H,W) target->source in pixels (x, y); focal (B,) pixels; baseline (B,) metres; doffs (B,)
pixels, the disparity offset cx_r - cx_l (0 by default). The target I_t is the left view, the source I_s the
right view. Every weight and threshold comes from a LossConfig.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from fg_depth_core.config import AUTO_MASKS, FLOW_PRIOR_MASKS, MONODEPTH2_DEPTH_UNIT, LossConfig
from fg_depth_core.errors import FgDepthError
from fg_depth_core.geometry import (
    Scalar,
    depth_from_disparity,
    depth_warp,
    disparity_from_depth,
    flow_warp,
    in_view,
    pixel_grid,
    resize_to,
)

# SSIM's stabilising constants (Wang et al. 2004): C1 = (K1 L)^2, C2 = (K2 L)^2 with K1 = 0.01, K2 = 0.03
# and dynamic range L = 1 for images in [0, 1]. Part of SSIM's definition, not a tunable.
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
# Numerical guard of the smoothness term's mean normalisation (Monodepth2 uses the same value).
_NORM_EPS = 1e-7


class LossError(FgDepthError, ValueError):
    """A loss was asked for something its inputs cannot give (a term needing a missing teacher, say)."""


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (B,C,H,W) of two images (B,C,H,W) over 3x3 windows (reflection padding, box
    averaging), clamped to [-1, 1]."""
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(x, 3, 1)
    mu_y = F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x * mu_x
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y * mu_y
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    den = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return (num / den).clamp(-1.0, 1.0)


def pe(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Photometric error (B,1,H,W): alpha * (1 - SSIM(a, b)) / 2 + (1 - alpha) * |a - b|, mean over colour."""
    err = alpha * (1.0 - ssim(a, b)) / 2.0 + (1.0 - alpha) * (a - b).abs()
    return err.mean(dim=1, keepdim=True)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the True pixels of ``mask`` (broadcastable to x): a scalar.

    An empty mask gives 0, still connected to ``x`` so that backward works; values outside the mask (even
    inf or NaN) contribute neither to the value nor to the gradient.
    """
    mask = mask.expand_as(x)
    total = torch.where(mask, x, torch.zeros_like(x)).sum()
    return total / mask.sum().clamp(min=1).to(x.dtype)


# ----------------------------------------------------------------------------------------------- masks


def auto_mask(pe_warped: torch.Tensor, pe_identity: torch.Tensor) -> torch.Tensor:
    """M_p (B,1,H,W): True where warping beats not warping, pe(I_t, I_t^s) < pe(I_t, I_s) (Monodepth2)."""
    return pe_warped < pe_identity


def pseudo_depth(
    teacher_flow: torch.Tensor, focal: Scalar, baseline: Scalar, doffs: Scalar = 0.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Teacher pseudo depth D̂ = f * B / (d̂ + doffs) with the image disparity d̂ = -F_x (metres, (B,1,H,W))
    and its validity (d̂ + doffs > 0, finite).

    Invalid pixels hold depth 0.
    """
    return depth_from_disparity(-teacher_flow[:, :1], focal, baseline, doffs)


def prior_flow_mask(
    teacher_flow: torch.Tensor,
    teacher_valid: torch.Tensor,
    focal: Scalar,
    baseline: Scalar,
    max_depth: float,
    doffs: Scalar = 0.0,
    max_disparity: Optional[float] = None,
) -> torch.Tensor:
    """M_fp (B,1,H,W): the teacher is valid, d̂ + doffs > 0 (d̂ = -F_x), p + F(p) falls inside the source
    image (same size as the flow), and delta holds: D̂ = f * B / (d̂ + doffs) < ``max_depth`` (metres), or,
    when ``max_disparity`` is given, d̂ + doffs = f * B / D̂ < ``max_disparity`` (pixels) instead."""
    depth, ok = pseudo_depth(teacher_flow, focal, baseline, doffs)
    _, _, h, w = teacher_flow.shape
    inside = in_view(pixel_grid(h, w, teacher_flow) + teacher_flow, h, w)
    finite = torch.isfinite(teacher_flow).all(dim=1, keepdim=True)
    if max_disparity is None:
        delta = depth < max_depth
    else:
        # f * B / D̂ = d̂ + doffs, the teacher's disparity as a rig without offset would see it.
        safe = torch.where(ok, depth, torch.ones_like(depth))
        delta = disparity_from_depth(safe, focal, baseline) < max_disparity
    return teacher_valid.bool() & ok & delta & inside & finite


def cfg_prior_flow_mask(
    teacher_flow: torch.Tensor,
    teacher_valid: torch.Tensor,
    focal: Scalar,
    baseline: Scalar,
    cfg: LossConfig,
    doffs: Scalar = 0.0,
) -> torch.Tensor:
    """:func:`prior_flow_mask` with delta read as ``cfg.delta_reading`` says."""
    max_disparity = cfg.prior_mask_max_disparity if cfg.delta_reading == "disparity" else None
    return prior_flow_mask(
        teacher_flow, teacher_valid, focal, baseline, cfg.prior_mask_max_depth, doffs, max_disparity
    )


def fp_teacher_flow(teacher_flow: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """The teacher flow (B,2,H,W) pixels that L_fp's flow warp uses: its vertical component set to 0 when
    ``cfg.fp_horizontal_only`` (the depth warp is horizontal), else the flow as it is."""
    if not cfg.fp_horizontal_only:
        return teacher_flow
    return torch.cat((teacher_flow[:, :1], torch.zeros_like(teacher_flow[:, 1:])), dim=1)


# ----------------------------------------------------------------------------------------------- terms


def dr_residual(pred: torch.Tensor, target: torch.Tensor, units: str) -> torch.Tensor:
    """L_dr's residual x (B,1,H,W) of depth ``pred`` against pseudo depth ``target`` (metres, > 0):
    "metres" D - D̂; "monodepth2" (D - D̂) / 5.4 (Monodepth2's stereo depth unit); "inverse" 1/D - 1/D̂
    (1/m); "relative" (D - D̂) / D̂ (no unit)."""
    if units == "metres":
        return pred - target
    if units == "monodepth2":
        return (pred - target) / MONODEPTH2_DEPTH_UNIT
    if units == "inverse":
        return 1.0 / pred - 1.0 / target
    if units == "relative":
        return (pred - target) / target
    raise LossError(f"dr_units: expected metres, monodepth2, inverse or relative, got {units!r}")


def dr_penalty(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: str,
    berhu_fraction: float,
    mask: Optional[torch.Tensor] = None,
    units: str = "metres",
) -> torch.Tensor:
    """Per-pixel depth-regression penalty rho(x) (B,1,H,W) of predicted depth ``pred`` against the
    teacher's pseudo depth ``target`` (metres), x the residual in ``units`` (:func:`dr_residual`).

    kind: "log_l1" log(1 + |x|); "l1" |x|; "inv_l1" |1/D - 1/D̂| (``units`` must be metres); "berhu" |x| for
    |x| <= c else (x^2 + c^2) / (2c) with c = berhu_fraction * max|x| over ``mask`` (detached).
    Pixels outside ``mask`` (default: all pixels count) get penalty 0, so invalid targets never leak in.
    """
    if mask is not None:
        target = torch.where(mask, target, pred.detach())
    if kind == "inv_l1":
        if units != "metres":
            raise LossError(
                f"dr_penalty 'inv_l1' fixes its own units; expected dr_units metres, got {units!r}"
            )
        return dr_residual(pred, target, "inverse").abs()
    x = dr_residual(pred, target, units)
    if kind == "log_l1":
        return torch.log1p(x.abs())
    if kind == "l1":
        return x.abs()
    if kind == "berhu":
        x = x.abs()
        # The threshold is a statistic of the batch, not something to optimise; the clamp keeps the unused
        # quadratic branch finite when every residual is 0.
        c = (berhu_fraction * x.detach().max()).clamp(min=torch.finfo(x.dtype).eps)
        return torch.where(x <= c, x, (x * x + c * c) / (2.0 * c))
    raise LossError(f"dr_penalty: expected kind in log_l1, l1, inv_l1, berhu, got {kind!r}")


def smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness (scalar) of disparity ``disp`` (B,1,H,W) guided by ``image`` (B,3,H,W):
    mean |dx d*| exp(-|dx I|) + mean |dy d*| exp(-|dy I|), d* = d / mean(d) per image, image gradients
    averaged over colour (Monodepth2)."""
    norm = disp / (disp.mean(dim=(2, 3), keepdim=True) + _NORM_EPS)
    dx_d = (norm[..., :, :-1] - norm[..., :, 1:]).abs()
    dy_d = (norm[..., :-1, :] - norm[..., 1:, :]).abs()
    dx_i = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(dim=1, keepdim=True)
    dy_i = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(dim=1, keepdim=True)
    return (dx_d * torch.exp(-dx_i)).mean() + (dy_d * torch.exp(-dy_i)).mean()


def photometric_mask(
    kind: str,
    pe_warped: torch.Tensor,
    pe_identity: Optional[torch.Tensor],
    warp_inside: torch.Tensor,
    prior_mask: Optional[torch.Tensor],
    teacher_valid: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The mask M of L_ph by config name: "auto" -> M_p, "flow_prior" -> M_fp, "flow_prior_auto" -> M_fp
    where the teacher is valid and M_p where it is not, "none" -> the depth warp's in-view pixels. All
    (B,1,H,W) bool.

    "flow_prior_auto" is our extension: M_fp alone leaves the teacher's holes (textureless areas, occlusions
    for SGBM) without any photometric supervision; there the auto-mask decides, as in the baseline. Pixels
    the teacher saw as farther than delta (sky) stay out, as in M_fp.
    """
    if kind in AUTO_MASKS and pe_identity is None:
        raise LossError(f"photometric_mask {kind!r} needs pe(I_t, I_s)")
    if kind in FLOW_PRIOR_MASKS and prior_mask is None:
        raise LossError(f"photometric_mask {kind!r} needs the teacher flow")
    if kind == "auto":
        return auto_mask(pe_warped, pe_identity)
    if kind == "flow_prior":
        return prior_mask
    if kind == "flow_prior_auto":
        if teacher_valid is None:
            raise LossError("photometric_mask 'flow_prior_auto' needs the teacher's validity")
        return prior_mask | (~teacher_valid.bool() & auto_mask(pe_warped, pe_identity))
    if kind == "none":
        return warp_inside
    raise LossError(f"photometric_mask: expected auto, flow_prior, flow_prior_auto or none, got {kind!r}")


def loss_terms(cfg: LossConfig) -> Dict[str, str]:
    """The loss terms ``cfg`` puts into the total, as {term: its settings}; a term that is off is absent.
    Training logs it and stores it in every checkpoint ("loss_terms"), so a run says what it optimised."""
    terms: Dict[str, str] = {}
    if cfg.lambda_ph > 0:
        mask = {"auto": "M_p", "flow_prior": "M_fp", "flow_prior_auto": "M_fp + M_p in the teacher's holes",
                "none": "all in view"}[cfg.photometric_mask]
        average = (
            ", averaged over all pixels (Monodepth2)"
            if cfg.photometric_mask in AUTO_MASKS and cfg.auto_mask_average == "all"
            else ""
        )
        terms["L_ph"] = f"{cfg.lambda_ph:g} x pe over {mask}{average}"
    delta = (
        f"D̂ < {cfg.prior_mask_max_depth:g} m"
        if cfg.delta_reading == "depth"
        else f"f*B/D̂ < {cfg.prior_mask_max_disparity:g} px"
    )
    if cfg.use_dr and cfg.lambda_dr > 0:
        units = "" if cfg.dr_penalty == "inv_l1" else f", residual in {cfg.dr_units}"
        terms["L_dr"] = f"{cfg.lambda_dr:g} x {cfg.dr_penalty}{units}, over M_fp ({delta})"
    if cfg.use_fp and cfg.lambda_fp > 0:
        flow = "horizontal flow" if cfg.fp_horizontal_only else "full flow"
        terms["L_fp"] = f"{cfg.lambda_fp:g} x pe(depth warp, {flow} warp), over M_fp ({delta})"
    if cfg.smoothness_weight > 0:
        terms["L_s"] = f"{cfg.smoothness_weight:g} / 2^s x edge-aware smoothness"
    return terms


def describe_loss(cfg: LossConfig) -> str:
    """One line: the preset and the terms in effect (:func:`loss_terms`)."""
    terms = loss_terms(cfg)
    body = "; ".join(f"{k} = {v}" for k, v in terms.items()) or "no term"
    return f"loss (preset {cfg.preset}): {body}"


def needs_teacher(cfg: LossConfig) -> bool:
    """True when the loss config uses the teacher (M_fp, L_dr or L_fp)."""
    return cfg.photometric_mask in FLOW_PRIOR_MASKS or cfg.use_dr or cfg.use_fp


def total_loss(
    depths: Sequence[torch.Tensor],
    target: torch.Tensor,
    source: torch.Tensor,
    teacher_flow: Optional[torch.Tensor],
    teacher_valid: Optional[torch.Tensor],
    focal: Scalar,
    baseline: Scalar,
    cfg: LossConfig,
    doffs: Scalar = 0.0,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """L = mean over scales of lambda_ph L_ph(M) + lambda_dr L_dr + lambda_fp L_fp + smoothness_weight / 2^s
    L_s (docs/METHOD.md; :func:`loss_terms` says in words which terms a config switches on).

    Args:
        depths: DepthNet depths (metres), scale s is (B,1,H/2^s,W/2^s); each is upsampled (bilinear) to
            (H,W) for the photometric and flow-distillation terms; smoothness uses its own resolution.
        target, source: I_t (left) and I_s (right), (B,3,H,W) in [0, 1]; the losses see un-jittered views.
        teacher_flow, teacher_valid: teacher target->source flow (B,2,H,W) and validity (B,1,H,W); may be
            None only when the config uses neither M_fp, L_dr nor L_fp (the "baseline" preset).
        focal, baseline: (B,) pixels at (H,W) and metres.
        cfg: which terms are on and their weights.
        doffs: (B,) disparity offsets cx_r - cx_l, pixels at (H,W) (the depth warp and the pseudo depth use
            them; smoothness regularises f * B / D, which does not depend on them).

    Returns:
        (loss, logs): the scalar loss and detached logs: "loss", "photometric", "smoothness", and when on
        "dr", "fp", "fd" (scalars averaged over scales); masks at scale 0: "mask_photometric" and, with a
        teacher, "mask_prior" (B,1,H,W) bool.
    """
    if not depths:
        raise LossError("total_loss: expected at least one depth scale, got none")
    if needs_teacher(cfg) and (teacher_flow is None or teacher_valid is None):
        raise LossError(
            f"loss.preset {cfg.preset!r} (photometric_mask={cfg.photometric_mask!r}, use_dr={cfg.use_dr}, "
            f"use_fp={cfg.use_fp}) needs the teacher flow and validity, got none"
        )
    _, _, h, w = target.shape
    alpha = cfg.ssim_alpha

    prior = target_depth = flow_recon = None
    with torch.no_grad():
        if teacher_flow is not None and teacher_valid is not None:
            prior = cfg_prior_flow_mask(teacher_flow, teacher_valid, focal, baseline, cfg, doffs)
            target_depth, _ = pseudo_depth(teacher_flow, focal, baseline, doffs)
            if cfg.use_fp:
                flow_recon, _ = flow_warp(source, fp_teacher_flow(teacher_flow, cfg))
        pe_identity = pe(target, source, alpha) if cfg.photometric_mask in AUTO_MASKS else None
        # Monodepth2's averaging: every pixel the auto-mask decides counts, a rejected one with its identity
        # error (a constant); M_fp pixels of flow_prior_auto always count with their warped error.
        ph_region = None
        if cfg.auto_mask_average == "all" and cfg.photometric_mask in AUTO_MASKS:
            ph_region = torch.ones_like(target[:, :1], dtype=torch.bool)
            if cfg.photometric_mask == "flow_prior_auto":
                ph_region = prior | ~teacher_valid.bool()

    sums: Dict[str, torch.Tensor] = {}
    masks: Dict[str, torch.Tensor] = {}
    total = target.new_zeros(())
    for scale, depth_s in enumerate(depths):
        depth = resize_to(depth_s, h, w)
        recon, inside = depth_warp(source, depth, focal, baseline, doffs)
        pe_warped = pe(target, recon, alpha)
        mask = photometric_mask(
            cfg.photometric_mask, pe_warped.detach(), pe_identity, inside, prior, teacher_valid
        )
        if ph_region is None:
            terms = {"photometric": masked_mean(pe_warped, mask)}
        else:
            terms = {"photometric": masked_mean(torch.where(mask, pe_warped, pe_identity), ph_region)}
        distill = []
        if cfg.use_dr:
            rho = dr_penalty(depth, target_depth, cfg.dr_penalty, cfg.berhu_fraction, prior, cfg.dr_units)
            terms["dr"] = masked_mean(rho, prior)
            distill.append(cfg.lambda_dr * terms["dr"])
        if cfg.use_fp:
            terms["fp"] = masked_mean(pe(recon, flow_recon, alpha), prior)
            distill.append(cfg.lambda_fp * terms["fp"])
        if distill:
            terms["fd"] = sum(distill)
        image_s = resize_to(target, depth_s.shape[-2], depth_s.shape[-1], mode="area")
        terms["smoothness"] = smoothness(disparity_from_depth(depth_s, focal, baseline), image_s)
        smooth_weight = cfg.smoothness_weight / 2**scale
        total = (
            total
            + cfg.lambda_ph * terms["photometric"]
            + terms.get("fd", 0.0)
            + smooth_weight * terms["smoothness"]
        )
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value.detach()
        if scale == 0:
            masks["mask_photometric"] = mask.detach()
    n = len(depths)
    loss = total / n
    logs: Dict[str, torch.Tensor] = {"loss": loss.detach()}
    logs.update({key: value / n for key, value in sums.items()})
    if prior is not None:
        masks["mask_prior"] = prior
    logs.update(masks)
    return loss, logs
