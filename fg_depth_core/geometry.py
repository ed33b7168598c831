"""Pure tensor geometry for rectified stereo: depth <-> disparity, warps, back-projection.

Shapes: images (B,C,H,W); depth, disparity and masks (B,1,H,W); flow and pixel coordinates (B,2,H,W) with
channel 0 = x (pixels, right) and channel 1 = y (pixels, down); focal lengths (B,) pixels; baselines (B,)
metres; disparity offsets doffs = cx_r - cx_l (B,) pixels; K (B,3,3). Pixel centres sit at integer
coordinates. The right camera is at +B along x, so a point at left pixel x and depth Z appears in the right
image at x - d with the image disparity d = f * B / Z - doffs, and Z = f * B / (d + doffs)
(fg_depth_core.camera.StereoRig; docs/METHOD.md, "Notation"). doffs defaults to 0 (one K for both views).
"""

from __future__ import annotations

from typing import Tuple, Union

import torch
import torch.nn.functional as F

Scalar = Union[float, torch.Tensor]


def _nonzero(value: Scalar) -> bool:
    """False only for a plain number 0 (the default doffs): then the offset arithmetic is skipped."""
    return isinstance(value, torch.Tensor) or float(value) != 0.0


def _per_sample(value: Scalar, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or (B,) tensor to (B,1,1,1) on ``like``'s device and dtype."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.reshape(-1, 1, 1, 1) if t.ndim else t


def disparity_from_depth(
    depth: torch.Tensor, focal: Scalar, baseline: Scalar, doffs: Scalar = 0.0
) -> torch.Tensor:
    """Image disparity (pixels) d = x_l - x_r = f * B / Z - doffs from depth Z (metres), (B,1,H,W).

    With doffs = 0 this is f * B / Z, the inverse depth in pixels (what the smoothness term regularises).
    """
    disparity = _per_sample(focal, depth) * _per_sample(baseline, depth) / depth
    return disparity - _per_sample(doffs, depth) if _nonzero(doffs) else disparity


def depth_from_disparity(
    disparity: torch.Tensor, focal: Scalar, baseline: Scalar, doffs: Scalar = 0.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Depth Z = f * B / (d + doffs) (metres) from image disparity d, and its validity (d finite and
    d + doffs > 0), both (B,1,H,W).

    Invalid pixels hold depth 0 so that masked arithmetic stays finite.
    """
    shifted = disparity + _per_sample(doffs, disparity) if _nonzero(doffs) else disparity
    valid = torch.isfinite(shifted) & (shifted > 0)
    safe = torch.where(valid, shifted, torch.ones_like(shifted))
    depth = _per_sample(focal, disparity) * _per_sample(baseline, disparity) / safe
    return torch.where(valid, depth, torch.zeros_like(depth)), valid


def pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel-centre coordinates (1,2,H,W): channel 0 = x, channel 1 = y."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=like.dtype, device=like.device),
        torch.arange(width, dtype=like.dtype, device=like.device),
        indexing="ij",
    )
    return torch.stack((xs, ys)).unsqueeze(0)


def sample(image: torch.Tensor, coords: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly sample ``image`` (B,C,H,W) at pixel coordinates ``coords`` (B,2,H',W').

    Returns the samples (B,C,H',W'), border-padded outside the image, and a mask (B,1,H',W') that is True
    where the coordinate falls inside the image.
    """
    _, _, h, w = image.shape
    x = coords[:, 0]
    y = coords[:, 1]
    # align_corners=True maps -1/+1 to the centres of the outermost pixels, matching our pixel convention.
    gx = 2.0 * x / max(w - 1, 1) - 1.0
    gy = 2.0 * y / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out, in_view(coords, h, w)


def in_view(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """True (B,1,H',W') where pixel coordinates ``coords`` (B,2,H',W') fall inside a ``height`` x ``width``
    image (between the centres of its outermost pixels, inclusive)."""
    x = coords[:, 0]
    y = coords[:, 1]
    return ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)).unsqueeze(1)


def flow_from_disparity(disparity: torch.Tensor) -> torch.Tensor:
    """Target->source flow (B,2,H,W) of a left target and right source: F = (-d, 0)."""
    return torch.cat((-disparity, torch.zeros_like(disparity)), dim=1)


def flow_warp(source: torch.Tensor, flow: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Reconstruct the target from ``source`` with target->source flow: I(p) = I_s(p + F(p)).

    Returns the reconstruction (B,C,H,W) and the in-view mask (B,1,H,W).
    """
    _, _, h, w = flow.shape
    return sample(source, pixel_grid(h, w, flow) + flow)


def depth_warp(
    source: torch.Tensor, depth: torch.Tensor, focal: Scalar, baseline: Scalar, doffs: Scalar = 0.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Reconstruct the left target from the right ``source`` with target depth (metres):
    I_t^s(p) = I_s(x - f * B / D(p) + doffs, y), the right-image column of left pixel p. Returns (B,C,H,W)
    and the in-view mask (B,1,H,W)."""
    return flow_warp(source, flow_from_disparity(disparity_from_depth(depth, focal, baseline, doffs)))


def mirror(t: torch.Tensor) -> torch.Tensor:
    """Mirror an image-like tensor (..., W) horizontally."""
    return torch.flip(t, dims=(-1,))


def mirror_flow(flow: torch.Tensor) -> torch.Tensor:
    """The flow field (B,2,H,W) of horizontally mirrored images: mirror and negate x."""
    flipped = mirror(flow)
    return torch.cat((-flipped[:, :1], flipped[:, 1:]), dim=1)


def backproject(depth: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """3-D points (B,3,H,W) in the camera optical frame (metres) from depth (B,1,H,W) and K (B,3,3).

    X = (x - cx) * Z / fx, Y = (y - cy) * Z / fy, Z = depth.
    """
    _, _, h, w = depth.shape
    grid = pixel_grid(h, w, depth)
    fx = k[:, 0, 0].reshape(-1, 1, 1, 1)
    fy = k[:, 1, 1].reshape(-1, 1, 1, 1)
    cx = k[:, 0, 2].reshape(-1, 1, 1, 1)
    cy = k[:, 1, 2].reshape(-1, 1, 1, 1)
    x = (grid[:, :1] - cx) * depth / fx
    y = (grid[:, 1:] - cy) * depth / fy
    return torch.cat((x, y, depth), dim=1)


def project(points: torch.Tensor, k: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (B,2,...) and depth (B,1,...) of points (B,3,...) in the optical frame."""
    shape = points.shape
    flat = points.reshape(shape[0], 3, -1)
    uvw = torch.bmm(k.to(points.dtype), flat)
    z = uvw[:, 2:3]
    uv = uvw[:, :2] / z.clamp(min=torch.finfo(points.dtype).tiny)
    return uv.reshape(shape[0], 2, *shape[2:]), z.reshape(shape[0], 1, *shape[2:])


def resize_to(t: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize (B,C,H,W) to (B,C,height,width); bilinear without corner alignment (matches the K rule)."""
    if t.shape[-2:] == (height, width):
        return t
    if mode in ("nearest", "area"):
        # align_corners is only accepted by the interpolating modes.
        return F.interpolate(t, size=(height, width), mode=mode)
    return F.interpolate(t, size=(height, width), mode=mode, align_corners=False)
