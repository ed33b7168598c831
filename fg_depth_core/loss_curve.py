"""The paper's Fig. 3 as a diagnostic: each loss as a function of a constant depth hypothesis at a pixel.

For a pixel p and hypotheses z_1..z_N, the target window around p is given constant depth z_i and every loss
term is evaluated there with the same functions training uses (fg_depth_core.losses). A loss whose minimum
sits far from the true depth is one that can mislead training at that pixel: typically the photometric loss
in textureless regions or under an exposure change, while the flow-based losses stay anchored to the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from fg_depth_core import geometry
from fg_depth_core.config import LossConfig
from fg_depth_core.errors import FgDepthError
from fg_depth_core.losses import cfg_prior_flow_mask, dr_penalty, fp_teacher_flow, pe, pseudo_depth

#: The curves reported per pixel, in plotting order.
CURVE_NAMES = ("photometric", "dr", "fp", "fd")
#: The kinds of pixel :func:`pick_pixels` chooses, in its order.
PIXEL_KINDS = ("road", "textureless", "nearest object")
#: Side (pixels) of the box over which pick_pixels measures local texture (intensity standard deviation).
TEXTURE_WINDOW = 9
#: Depth band (metres) a "textureless" pixel is taken from: off the near road, short of the far background.
TEXTURELESS_DEPTH_RANGE = (5.0, 40.0)
#: Fraction of the image height above which the "nearest object" is searched (the road's near rows and
#: the facades at the image border would otherwise always be nearest).
OBJECT_BAND_BOTTOM = 0.6


class LossCurveError(FgDepthError):
    """A pixel, window or depth range that the loss curve cannot be computed for."""


@dataclass
class PixelCurve:
    """The losses at pixel (u, v) for each depth hypothesis (metres); NaN where a term is undefined
    (no valid teacher pixel in the window)."""

    u: int
    v: int
    depths: np.ndarray
    losses: Dict[str, np.ndarray]
    gt_depth: Optional[float] = None
    argmin: Dict[str, Optional[float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {
            "u": self.u,
            "v": self.v,
            "depths": [float(z) for z in self.depths],
            "losses": {k: [_json_float(x) for x in v] for k, v in self.losses.items()},
            "argmin": self.argmin,
        }
        if self.gt_depth is not None:
            out["gt_depth"] = self.gt_depth
        return out


def _json_float(x: float) -> Optional[float]:
    return float(x) if np.isfinite(x) else None


def depth_hypotheses(depth_min: float, depth_max: float, steps: int) -> np.ndarray:
    """``steps`` depths (metres) evenly spaced in [depth_min, depth_max]."""
    if not 0 < depth_min < depth_max:
        raise LossCurveError(f"--depth-min/--depth-max: expected 0 < min < max, got {depth_min}, {depth_max}")
    if steps < 2:
        raise LossCurveError(f"--steps: expected >= 2, got {steps}")
    return np.linspace(depth_min, depth_max, steps)


def check_pixels(pixels: Sequence[Tuple[int, int]], width: int, height: int, window: int) -> int:
    """Check the window size and that every window fits in the image; returns the margin (pixels) needed
    around each pixel: the window's half size plus the one-pixel reach of SSIM."""
    if window < 1 or window % 2 == 0:
        raise LossCurveError(f"--window: expected an odd size >= 1, got {window}")
    margin = window // 2 + 1
    for u, v in pixels:
        if not (margin <= u < width - margin and margin <= v < height - margin):
            raise LossCurveError(
                f"--pixel {u},{v}: expected a pixel at least {margin} px inside the {width}x{height} image"
            )
    return margin


def loss_curves(
    target: torch.Tensor,
    source: torch.Tensor,
    focal: float,
    baseline: float,
    teacher_flow: torch.Tensor,
    teacher_valid: torch.Tensor,
    pixels: Sequence[Tuple[int, int]],
    depths: np.ndarray,
    cfg: LossConfig,
    window: int = 5,
    gt_depths: Optional[Sequence[Optional[float]]] = None,
    doffs: float = 0.0,
) -> List[PixelCurve]:
    """Sweep constant depth hypotheses over a ``window`` x ``window`` patch around each pixel.

    Args:
        target, source: (1,3,H,W) images in [0, 1] (left target, right source).
        focal: pixels; baseline: metres.
        teacher_flow: (1,2,H,W) target->source flow; teacher_valid: (1,1,H,W) bool.
        pixels: (u, v) pixel coordinates (column, row).
        depths: (N,) hypotheses in metres.
        cfg: the loss configuration (alpha, delta, rho, lambdas).
        window: odd window size in pixels; each loss is averaged over it.
        gt_depths: optional true depth per pixel (metres), reported alongside.
        doffs: the rig's disparity offset cx_r - cx_l (pixels; fg_depth_core.camera.StereoRig).
    """
    _, _, h, w = target.shape
    margin = check_pixels(pixels, w, h, window)
    half = window // 2
    pseudo, _ = pseudo_depth(teacher_flow, focal, baseline, doffs)
    # The targets exactly as training builds them (losses.total_loss): delta's reading, L_fp's flow.
    fp_mask = cfg_prior_flow_mask(teacher_flow, teacher_valid, focal, baseline, cfg, doffs)
    flow_recon, _ = geometry.flow_warp(source, fp_teacher_flow(teacher_flow, cfg))
    z = torch.as_tensor(depths, dtype=target.dtype).reshape(-1, 1, 1, 1)
    curves = []
    for i, (u, v) in enumerate(pixels):
        rows = slice(v - margin, v + margin + 1)
        cols = slice(u - margin, u + margin + 1)
        n = z.shape[0]
        crop_t = target[:, :, rows, cols].expand(n, -1, -1, -1)
        size = 2 * margin + 1
        coords = geometry.pixel_grid(size, size, target)
        coords = coords + torch.tensor([u - margin, v - margin], dtype=target.dtype).reshape(1, 2, 1, 1)
        disparity = geometry.disparity_from_depth(z.expand(n, 1, size, size), focal, baseline, doffs)
        depth_recon, _ = geometry.sample(
            source.expand(n, -1, -1, -1), coords + geometry.flow_from_disparity(disparity)
        )
        inner = (
            slice(None),
            slice(None),
            slice(margin - half, margin + half + 1),
            slice(margin - half, margin + half + 1),
        )
        photometric = pe(crop_t, depth_recon, cfg.ssim_alpha)[inner].mean(dim=(1, 2, 3))
        crop_mask = fp_mask[:, :, rows, cols].expand(n, -1, -1, -1)
        mask = crop_mask[inner]
        count = mask.sum(dim=(1, 2, 3)).to(target.dtype)
        nan = torch.full_like(photometric, float("nan"))
        dr_map = dr_penalty(
            z.expand(n, 1, size, size),
            pseudo[:, :, rows, cols].expand(n, -1, -1, -1),
            cfg.dr_penalty,
            cfg.berhu_fraction,
            mask=crop_mask,
            units=cfg.dr_units,
        )[inner]
        fp_map = pe(depth_recon, flow_recon[:, :, rows, cols].expand(n, -1, -1, -1), cfg.ssim_alpha)[inner]
        dr = torch.where(count > 0, (dr_map * mask).sum(dim=(1, 2, 3)) / count.clamp(min=1), nan)
        fp = torch.where(count > 0, (fp_map * mask).sum(dim=(1, 2, 3)) / count.clamp(min=1), nan)
        fd = cfg.lambda_dr * dr + cfg.lambda_fp * fp
        losses = {
            name: t.detach().cpu().double().numpy() for name, t in zip(CURVE_NAMES, (photometric, dr, fp, fd))
        }
        gt = None if gt_depths is None else gt_depths[i]
        curves.append(
            PixelCurve(
                u=int(u),
                v=int(v),
                depths=np.asarray(depths, dtype=np.float64),
                losses=losses,
                gt_depth=None if gt is None else float(gt),
                argmin={name: _argmin(depths, values) for name, values in losses.items()},
            )
        )
    return curves


def pick_pixels(rgb: np.ndarray, depth: np.ndarray, margin: int) -> List[Tuple[str, int, int]]:
    """Three telling pixels of a street scene, (kind, u, v) in :data:`PIXEL_KINDS` order, each at least
    ``margin`` pixels inside the image: the road at the bottom centre, the most textureless pixel with a
    depth in TEXTURELESS_DEPTH_RANGE (with any known depth when none lies there), and a pixel inside the
    nearest object of the image's central upper band.

    Args:
        rgb: (H,W,3) uint8 left view.
        depth: (H,W) metres of that view, 0 or non-finite where unknown (sky).
        margin: pixels to keep from the border (:func:`check_pixels`'s margin).
    """
    import cv2

    h, w = depth.shape
    if rgb.shape[:2] != (h, w) or min(h, w) <= 2 * margin:
        raise LossCurveError(
            f"pick_pixels: expected an image and a depth map of one size, more than twice the margin "
            f"({margin} px) on each side, got {rgb.shape[:2]} and {depth.shape}"
        )
    with np.errstate(invalid="ignore"):
        known = np.isfinite(depth) & (depth > 0)
    inner = np.zeros((h, w), dtype=bool)
    inner[margin : h - margin, margin : w - margin] = True
    finite = known & inner
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    box = (TEXTURE_WINDOW, TEXTURE_WINDOW)
    local_std = np.sqrt(np.maximum(cv2.blur(grey**2, box) - cv2.blur(grey, box) ** 2, 0.0))
    near, far = TEXTURELESS_DEPTH_RANGE
    with np.errstate(invalid="ignore"):
        flat_score = np.where(finite & (depth > near) & (depth < far), local_std, np.inf)
    if not np.isfinite(flat_score).any():
        flat_score = np.where(finite, local_std, np.inf)
    fv, fu = np.unravel_index(np.argmin(flat_score), depth.shape)
    band = np.zeros_like(finite)
    band[margin : max(margin + 1, int(h * OBJECT_BAND_BOTTOM)), w // 4 : 3 * w // 4] = True
    # The farthest depth in the loss window around each pixel: small only inside an object, not on its edge.
    window_far = cv2.dilate(
        np.where(known, depth, np.finfo(np.float32).max).astype(np.float32),
        np.ones((margin * 2 + 1,) * 2, np.uint8),
    )
    nv, nu = np.unravel_index(np.argmin(np.where(finite & band, window_far, np.inf)), depth.shape)
    return [
        (PIXEL_KINDS[0], w // 2, h - margin - 1),
        (PIXEL_KINDS[1], int(fu), int(fv)),
        (PIXEL_KINDS[2], int(nu), int(nv)),
    ]


def _argmin(depths: np.ndarray, values: np.ndarray) -> Optional[float]:
    if not np.isfinite(values).any():
        return None
    return float(depths[int(np.nanargmin(values))])


def plot_curves(curves: Sequence[PixelCurve], path: str, titles: Optional[Sequence[str]] = None) -> None:
    """Write a PNG with one panel per pixel; each curve is min-max normalised so shapes compare. ``titles``
    (one per curve) name the pixels, e.g. by kind; the pixel's coordinates follow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if titles is not None and len(titles) != len(curves):
        raise LossCurveError(f"plot_curves: expected {len(curves)} titles, got {len(titles)}")
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for i, (ax, curve) in enumerate(zip(axes[0], curves)):
        for name in CURVE_NAMES:
            values = curve.losses[name]
            if not np.isfinite(values).any():
                continue
            lo, hi = np.nanmin(values), np.nanmax(values)
            norm = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
            (line,) = ax.plot(curve.depths, norm, label=f"{name} (min {curve.argmin[name]:.2f} m)")
            ax.axvline(curve.argmin[name], color=line.get_color(), linestyle=":", linewidth=1)
        if curve.gt_depth is not None:
            ax.axvline(curve.gt_depth, color="k", linewidth=1.5, label=f"GT {curve.gt_depth:.2f} m")
        prefix = f"{titles[i]}: " if titles is not None else ""
        ax.set_title(f"{prefix}pixel ({curve.u}, {curve.v})")
        ax.set_xlabel("depth hypothesis [m]")
        ax.set_ylabel("normalised loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
