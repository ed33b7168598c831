"""Training-time augmentation of rectified stereo batches (docs/METHOD.md, "Data augmentation"): flip-swap,
vertical grafting (EPCDepth) and colour jitter. Every random draw comes from the given torch.Generator, so a
seed reproduces an augmentation exactly.

Batch layout (a dict of tensors on one device; B samples of H x W pixels; right camera at +B along x):

- "left", "right": (B,3,H,W) float in [0, 1]; the views the losses compare.
- "flow_lr", "valid_lr": teacher flow (B,2,H,W) pixels (x, y) with the left view as target and the right as
  source (≈ -disparity), and its validity (B,1,H,W) (bool or float 0/1).
- "flow_rl", "valid_rl": the same with the right view as target and the left as source (≈ +disparity).
- "depth_left", "depth_right": optional ground-truth depth (B,1,H,W) metres.
- "K": (B,3,3) intrinsics of the left view at (H,W); "focal": (B,) pixels; "baseline": (B,) metres; "doffs":
  (B,) pixels, the disparity offset cx_r - cx_l (optional, 0 when absent; the right view's K is K with
  cx + doffs).
- Added by :func:`color_jitter`: "left_aug", "right_aug" (B,3,H,W), the jittered views the network sees.

Teacher and depth keys are optional (a preset without a teacher has none), but come in complete pairs.
Other keys pass through untouched. Functions return a new dict and never modify their input.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torchvision.transforms.v2.functional as TF

from fg_depth_core.config import AugmentConfig
from fg_depth_core.errors import FgDepthError
from fg_depth_core.geometry import mirror, mirror_flow

Batch = Dict[str, torch.Tensor]

#: Keys holding per-pixel tensors (B,C,H,W) that grafting splices and rolls.
SPATIAL_KEYS = (
    "left",
    "right",
    "flow_lr",
    "valid_lr",
    "flow_rl",
    "valid_rl",
    "depth_left",
    "depth_right",
    "left_aug",
    "right_aug",
)
#: (flow key, its validity key).
FLOW_KEYS = (("flow_lr", "valid_lr"), ("flow_rl", "valid_rl"))
#: Left/right pairs that flip-swap exchanges; flows additionally have their x component negated.
SWAP_PAIRS = (
    ("left", "right"),
    ("valid_lr", "valid_rl"),
    ("depth_left", "depth_right"),
    ("left_aug", "right_aug"),
)


class AugmentError(FgDepthError, ValueError):
    """A batch lacks what an augmentation needs; the message names the key."""


def _batch_size(batch: Batch) -> int:
    if "left" not in batch or "right" not in batch:
        raise AugmentError(f"augment: the batch needs 'left' and 'right' images, got keys {sorted(batch)}")
    return int(batch["left"].shape[0])


def _rand(n: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """n uniform draws in [0, 1) on the CPU (the generator's device), float64."""
    return torch.rand(n, generator=generator, dtype=torch.float64)


def _select(flag: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample: a where ``flag`` (B,) else b."""
    return torch.where(flag.to(a.device).reshape(-1, *([1] * (a.ndim - 1))), a, b)


# ----------------------------------------------------------------------------------------------- flip


def flip_swap(batch: Batch, cfg: AugmentConfig, generator: Optional[torch.Generator] = None) -> Batch:
    """Horizontally flip each sample with probability ``cfg.flip_prob``, swapping the views' roles.

    A flipped sample has left' = mirror(right), right' = mirror(left), flow_lr' = mirror_flow(flow_rl),
    flow_rl' = mirror_flow(flow_lr) (validity mirrored and swapped likewise), depths mirrored and swapped, and
    K's cx -> W - 1 - cx_r = W - 1 - (cx + doffs) (the mirrored right view is the new left one); f, B and
    "doffs" stay (fg_depth_core.camera.StereoRig.flip_swapped).

    Why this is again a rectified pair with the right camera at +B: mirroring the image is mirroring the
    world, x -> -x. In the mirrored world the old right camera sits at -B and the old left at 0, so the old
    right camera is now the left one and the old left camera sits +B to its right. The cameras stay parallel
    with the same f, B and rows, a point's disparity keeps its sign and value, and the teacher's right->left
    flow (+d) becomes, mirrored (x negated), the new left->right flow (-d). Each mirrored image is seen by a
    pinhole with cx' = W - 1 - cx of its own camera (pixel centres at integers), so the offset cx_r - cx_l
    keeps its value.
    """
    n = _batch_size(batch)
    pairs = SWAP_PAIRS + (("flow_lr", "flow_rl"),)
    # Checked whatever the draw, so that an incomplete batch fails on its first use, not by chance later.
    for a, b in pairs:
        if (a in batch) != (b in batch):
            have, missing = (a, b) if a in batch else (b, a)
            raise AugmentError(f"flip_swap: the batch has {have!r} but not {missing!r}; a flip needs both")
    flip = _rand(n, generator) < cfg.flip_prob
    out = dict(batch)
    if not bool(flip.any()):
        return out
    for a, b in pairs:
        if a not in batch:
            continue
        mirror_fn = mirror_flow if a.startswith("flow") else mirror
        out[a] = _select(flip, mirror_fn(batch[b]), batch[a])
        out[b] = _select(flip, mirror_fn(batch[a]), batch[b])
    if "K" in batch:
        k = batch["K"].clone()
        width = batch["left"].shape[-1]
        cx = k[:, 0, 2]
        cx_right = cx + batch["doffs"].to(cx) if "doffs" in batch else cx
        k[:, 0, 2] = _select(flip, (width - 1) - cx_right, cx)
        out["K"] = k
    return out


# ----------------------------------------------------------------------------------------------- graft


def _same_rig(batch: Batch, i: int, j: int) -> bool:
    """Samples i and j share focal length, baseline and disparity offset (exact equality: both come from the
    same file)."""
    for key in ("focal", "baseline", "doffs"):
        if key in batch and bool(batch[key][i] != batch[key][j]):
            return False
    return True


def _seam_valid(flow: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """(1,H,W) bool: the rows that bilinear sampling at y + F_y reads lie in the same splice ``segment``
    (H,) as the pixel's own row, so a flow with a vertical component never points across a seam."""
    h = flow.shape[-2]
    rows = torch.arange(h, device=flow.device, dtype=flow.dtype).reshape(h, 1)
    y = (rows + flow[1]).nan_to_num(0.0).clamp(0, h - 1)
    seg = segment.to(flow.device)
    own = seg.reshape(h, 1)
    return ((seg[y.floor().long()] == own) & (seg[y.ceil().long()] == own)).unsqueeze(0)


def graft(batch: Batch, cfg: AugmentConfig, generator: Optional[torch.Generator] = None) -> Batch:
    """Vertical splicing (data grafting): with probability ``cfg.graft_prob`` per sample pick r from
    ``cfg.graft_ratios`` and replace rows y >= round(r H) of every per-pixel key (both views, teacher flows
    and validity, depths) with the same rows of another sample of the batch; with ``cfg.graft_roll`` then roll
    all of them vertically by -round(r H) rows (the grafted rows move to the top).

    Whole rows move identically in both views, so the horizontal stereo geometry stays exact, provided both
    samples share focal length, baseline and disparity offset: a sample is only grafted with a partner of
    equal "focal", "baseline" and "doffs" (when those keys exist), and stays unchanged if it has none.
    Teacher validity is cleared where a flow's vertical component would sample across a seam. "K" is left as
    is: the depth warp uses only f, B, doffs and rows, while a grafted image is no longer a single pinhole
    view vertically.
    """
    n = _batch_size(batch)
    height = batch["left"].shape[-2]
    # A fixed number of draws per call keeps the random stream independent of the batch's content.
    apply = _rand(n, generator) < cfg.graft_prob
    ratio_index = torch.randint(len(cfg.graft_ratios), (n,), generator=generator)
    partner_draw = _rand(n, generator)
    out = dict(batch)
    keys = [key for key in SPATIAL_KEYS if key in batch]
    cloned = False
    for i in range(n):
        if not apply[i]:
            continue
        partners: List[int] = [j for j in range(n) if j != i and _same_rig(batch, i, j)]
        if not partners:
            continue
        j = partners[int(partner_draw[i] * len(partners))]
        cut = min(max(round(cfg.graft_ratios[int(ratio_index[i])] * height), 1), height - 1)
        if not cloned:
            out.update({key: batch[key].clone() for key in keys})
            cloned = True
        segment = torch.zeros(height, dtype=torch.long)
        segment[cut:] = 1
        shift = -cut if cfg.graft_roll else 0
        segment = torch.roll(segment, shift)
        for key in keys:
            spliced = torch.cat((batch[key][i, :, :cut], batch[key][j, :, cut:]), dim=-2)
            out[key][i] = torch.roll(spliced, shift, dims=-2)
        for flow_key, valid_key in FLOW_KEYS:
            if flow_key in out and valid_key in out:
                ok = _seam_valid(out[flow_key][i], segment)
                valid = out[valid_key][i]
                out[valid_key][i] = valid & ok if valid.dtype == torch.bool else valid * ok.to(valid.dtype)
    return out


# ----------------------------------------------------------------------------------------------- jitter


def _jitter_pair(
    pair: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float
) -> torch.Tensor:
    """Jitter both views (2,3,H,W) of one sample with the same colour map: brightness, contrast, saturation,
    hue in that order. Contrast blends with the grey mean of both views together (torchvision uses each
    image's own mean), so a colour maps to the same colour in either view."""
    out = TF.adjust_brightness(pair, brightness)
    mean = TF.rgb_to_grayscale(out).mean()
    out = (contrast * out + (1.0 - contrast) * mean).clamp(0.0, 1.0)
    out = TF.adjust_saturation(out, saturation)
    return TF.adjust_hue(out, hue)


def color_jitter(batch: Batch, cfg: AugmentConfig, generator: Optional[torch.Generator] = None) -> Batch:
    """Colour jitter for the network input: "left_aug"/"right_aug" get, with probability ``cfg.jitter_prob``
    per sample, brightness/contrast/saturation factors drawn uniformly from [max(0, 1 - v), 1 + v] and a hue
    shift from [-hue, hue], the same for both views of a sample; otherwise plain copies.

    "left"/"right" and all geometry keys are untouched: as in Monodepth2 the network sees jittered images
    while the losses compare the original ones.
    """
    n = _batch_size(batch)
    apply = _rand(n, generator) < cfg.jitter_prob
    params = _rand(4 * n, generator).reshape(n, 4)
    left = batch["left"].clone()
    right = batch["right"].clone()
    for i in range(n):
        if not apply[i]:
            continue
        u = params[i]
        factors = [
            max(0.0, 1.0 - spread) + float(u[k]) * (1.0 + spread - max(0.0, 1.0 - spread))
            for k, spread in enumerate((cfg.brightness, cfg.contrast, cfg.saturation))
        ]
        hue = (2.0 * float(u[3]) - 1.0) * cfg.hue
        jittered = _jitter_pair(torch.stack((left[i], right[i])), *factors, hue)
        left[i], right[i] = jittered[0], jittered[1]
    out = dict(batch)
    out["left_aug"] = left
    out["right_aug"] = right
    return out


def augment(batch: Batch, cfg: AugmentConfig, generator: Optional[torch.Generator] = None) -> Batch:
    """The training augmentation: :func:`flip_swap`, then :func:`graft` (so grafts mix flipped and unflipped
    pairs, both valid), then :func:`color_jitter` into "left_aug"/"right_aug" (network input), keeping
    "left"/"right" un-jittered for the losses."""
    out = flip_swap(batch, cfg, generator)
    out = graft(out, cfg, generator)
    return color_jitter(out, cfg, generator)
