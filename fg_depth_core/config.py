"""The one typed configuration tree of fg-depth.

Every default of the method lives here (and is documented in docs/METHOD.md); nothing else in the package
holds a tunable number. Each key is declared with :func:`fg_depth_core.spec.setting`: its default, its help
and the values it allows, in one place that validation and docs/CONFIG.md (tools/config_doc.py) both read. A
config is loaded from YAML, validated at load time with errors that name the file and the key, can be
overridden with ``key.sub=value`` strings, and is dumped back to plain dicts for checkpoints and exported
models.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import yaml

from fg_depth_core.errors import FgDepthError
from fg_depth_core.spec import declared, field_problems, setting


class ConfigError(FgDepthError, ValueError):
    """A configuration value or file is invalid; the message names where and what."""


ENCODERS = ("resnet18", "resnet34", "resnet50")
TEACHER_METHODS = ("sgbm", "dis", "raft_small", "raft_large")
#: Where the teacher runs: on the views at the network input size, or at the dataset's own (camera) size with
#: its flow scaled to the network input afterwards.
TEACHER_RESOLUTIONS = ("input", "raw")
#: OpenCV DIS optical flow presets (speed against accuracy).
DIS_PRESETS = ("ultrafast", "fast", "medium")
#: OpenCV StereoSGBM modes: "sgbm" (5 paths), "hh" (8 paths), "sgbm_3way" or "hh4".
SGBM_MODES = ("sgbm", "hh", "sgbm_3way", "hh4")
#: RAFT's encoders work at 1/8 resolution, so its inputs must be multiples of this (an architecture fact).
RAFT_STRIDE = 8
PHOTOMETRIC_MASKS = ("none", "auto", "flow_prior", "flow_prior_auto")
#: The photometric masks that use the teacher's M_fp, and those that use the auto-mask M_p.
FLOW_PRIOR_MASKS = ("flow_prior", "flow_prior_auto")
AUTO_MASKS = ("auto", "flow_prior_auto")
DR_PENALTIES = ("log_l1", "l1", "inv_l1", "berhu")
#: What L_dr's residual x is measured in: depth in metres, depth in Monodepth2's units (metres / 5.4, as Depth
#: Hints and EPCDepth regress it), inverse depth (1/m) or depth relative to the teacher's ((D - D̂) / D̂).
DR_UNITS = ("metres", "monodepth2", "inverse", "relative")
#: Monodepth2 trains stereo with a nominal baseline of 0.1 for KITTI's 0.54 m, so its depth unit is 5.4 m
#: (it multiplies by 5.4 at evaluation); Depth Hints and EPCDepth apply their hint loss in that unit.
MONODEPTH2_DEPTH_UNIT = 5.4
#: The reading of M_fp's delta: a bound on the teacher's pseudo depth (metres), or on its disparity (pixels).
DELTA_READINGS = ("depth", "disparity")
#: Over which pixels L_ph is averaged when the auto-mask M_p is part of M: only those of M, or every pixel the
#: auto-mask decides (a rejected pixel adding its constant identity error, as Monodepth2 does).
AUTO_MASK_AVERAGES = ("mask", "all")
DATASETS = ("synth", "kitti", "folder", "bag")
#: KITTI depth ground truth: the raw velodyne scan projected into the image (the Eigen split's ground truth),
#: or the KITTI depth benchmark's improved maps (proj_depth/groundtruth).
KITTI_GT_SOURCES = ("velodyne", "improved")
#: The depth a projected velodyne point writes: its forward distance x in the velodyne frame (the published
#: Eigen ground truth) or its z in the rectified camera frame.
VELODYNE_DEPTHS = ("velodyne_x", "camera_z")
#: Rectification of bag images: "auto" when CameraInfo D or R say they are raw, or forced on or off.
RECTIFY_MODES = ("auto", "always", "never")
#: The encoder halves the resolution five times, so input sides must be multiples of 2^5.
INPUT_MULTIPLE = 32
#: Reflection padding needs at least 2 pixels at the coarsest (1/32) level, so sides must be >= 64.
MIN_INPUT_SIZE = 2 * INPUT_MULTIPLE
DEVICES = ("auto", "cpu", "cuda")
#: Inference backends ("auto" picks the fastest available one, see deploy/backends) and precisions.
INFERENCE_BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt", "openvino")
PRECISIONS = ("fp32", "fp16")
#: How an image of another aspect ratio meets the network input (fg_depth_core/deploy/fit.py).
INPUT_FITS = ("stretch", "crop", "pad")
#: Inference devices: a regular expression (full match) and the same in words.
INFERENCE_DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"
INFERENCE_DEVICE_WORDS = "auto, cpu, cuda or cuda:N"

_S = TypeVar("_S", bound="Section")


class Section:
    """Base of the config dataclasses. :meth:`validate` checks every key against the Spec it declares
    (:func:`fg_depth_core.spec.setting`), then the sub-sections, then :meth:`check_rules`: the rules that
    involve several keys or need code, each also written in its key's ``rule`` so the reference shows it."""

    def validate(self: _S, where: str) -> _S:
        """Raise ConfigError "WHERE.KEY: expected ..., got ..." for the first key that breaks a rule."""
        problems = field_problems(self)
        if problems:
            name, problem = problems[0]
            raise ConfigError(f"{where}.{name}: {problem}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value.validate(f"{where}.{f.name}")
        self.check_rules(where)
        return self

    def check_rules(self, where: str) -> None:
        """The section's rules that relate keys (none by default)."""

    def rule_error(self, where: str, key: str, **context: Any) -> ConfigError:
        """The error for ``key`` breaking its declared rule; ``context`` gives the other keys' values."""
        rule = dict(declared(type(self)))[key].rule
        shown = ", ".join(f"{k} = {v!r}" for k, v in context.items())
        return ConfigError(
            f"{where}.{key}: expected {rule}, got {getattr(self, key)!r}" + (f" ({shown})" if shown else "")
        )


@dataclass
class ModelConfig(Section):
    """DepthNet: ResNet encoder + multi-scale decoder predicting metric depth."""

    encoder: str = setting(
        "resnet18",
        "ResNet depth of the encoder (torchvision architecture); encoder_weights must be for the same one.",
        choices=ENCODERS,
    )
    encoder_weights: str = setting(
        "none",
        '"none" (random init, works offline), "imagenet" (torchvision cache only) or a path to a state dict.',
        pattern=r"(?s).+",
        pattern_help="'none', 'imagenet' or a file path",
    )
    min_depth: float = setting(
        0.1,
        "Near end (metres) of the output depth range: the sigmoid maps linearly to disparity in "
        "[1/max_depth, 1/min_depth], sigmoid 1 -> min_depth.",
        minimum=0,
        min_exclusive=True,
    )
    max_depth: float = setting(
        100.0, "Far end (metres) of the output depth range (sigmoid 0).", rule="> min_depth"
    )
    num_scales: int = setting(
        4, "Number of output scales (full, 1/2, 1/4, 1/8 resolution).", minimum=1, maximum=4
    )
    init_depth: float = setting(
        10.0,
        "Depth (metres) the untrained heads start at: their bias is set so that training begins at a "
        "plausible scene depth rather than near min_depth (Monodepth2's zero bias gives ~2 * min_depth). 0 "
        "keeps the zero bias. Our choice; it shortens CPU training and treats every loss preset alike.",
        rule="0 or a depth in (min_depth, max_depth)",
    )

    def check_rules(self, where: str) -> None:
        if self.max_depth <= self.min_depth:
            raise self.rule_error(where, "max_depth", min_depth=self.min_depth)
        if self.init_depth != 0 and not self.min_depth < self.init_depth < self.max_depth:
            raise self.rule_error(where, "init_depth", min_depth=self.min_depth, max_depth=self.max_depth)


@dataclass
class SgbmConfig(Section):
    """OpenCV StereoSGBM parameters (pixels at the teacher's working resolution)."""

    num_disparities: int = setting(
        96,
        "Disparity search range (pixels at the resolution the teacher runs at; the views are padded on the "
        "left so that every column can be matched). 96 covers depths from 2.1 m at 640 px KITTI-like width "
        "(f*B = 200 px*m); raise it for wider images or closer scenes.",
        minimum=0,
        min_exclusive=True,
        multiple_of=16,
        rule="fewer than the width of the images the teacher matches (checked when it runs)",
    )
    block_size: int = setting(
        5,
        "Side (pixels, odd) of the matched block; larger is smoother and less noisy but blurs edges.",
        minimum=1,
        odd=True,
    )
    p1_factor: int = setting(
        8,
        "P1 = p1_factor * channels * block_size^2 (OpenCV's documented recipe; channels = 1, grayscale): the "
        "smoothness penalty for a disparity change of 1 px between neighbours.",
    )
    p2_factor: int = setting(
        32,
        "P2 = p2_factor * channels * block_size^2: the penalty for larger disparity jumps (needs P2 > P1).",
    )
    uniqueness_ratio: int = setting(
        10,
        "Margin (percent) by which the best match cost must beat the second best; else the pixel is a hole.",
    )
    speckle_window_size: int = setting(
        100,
        "Largest connected region (pixels) of similar disparity treated as a speckle and invalidated; "
        "0 = off.",
    )
    speckle_range: int = setting(
        2, "Largest disparity variation (pixels) within one connected region in the speckle filter."
    )
    disp12_max_diff: int = setting(
        1,
        "Largest difference (pixels) allowed by the left-right disparity consistency check; < 0 disables it.",
    )
    pre_filter_cap: int = setting(
        63,
        "The x-derivative prefiltered image is clipped to [-pre_filter_cap, pre_filter_cap] before matching.",
    )
    mode: str = setting(
        "sgbm_3way", '"sgbm" (5 paths), "hh" (8 paths), "sgbm_3way" or "hh4".', choices=SGBM_MODES
    )


@dataclass
class RaftConfig(Section):
    """torchvision RAFT teacher."""

    num_flow_updates: int = setting(
        12, "Recurrent refinement iterations (torchvision's default is 12).", minimum=1
    )
    pad_multiple: int = setting(
        8,
        "Inputs are padded (replicate) to a multiple of this many pixels.",
        minimum=1,
        rule=f"a multiple of {RAFT_STRIDE} for RAFT (checked when the RAFT teacher is built)",
    )
    fb_threshold: float = setting(
        1.0,
        "Forward-backward consistency threshold in pixels; pixels above it are invalid. <= 0 disables "
        "the check.",
    )
    max_vertical_flow: float = setting(
        1.0, "Flow |v| (pixels) allowed for a rectified pair: larger vertical flow marks the pixel invalid.",
        minimum=0,
    )


@dataclass
class DisConfig(Section):
    """OpenCV DIS optical flow teacher (dense: a flow at every pixel, kept where it is consistent)."""

    preset: str = setting(
        "medium", "OpenCV's DIS preset: \"ultrafast\", \"fast\" or \"medium\" (slowest, most accurate).",
        choices=DIS_PRESETS,
    )
    fb_threshold: float = setting(
        1.0,
        "Forward-backward consistency threshold in pixels: a flow whose round trip misses by more is "
        "invalid. <= 0 disables the check.",
    )
    max_vertical_flow: float = setting(
        1.0, "Flow |v| (pixels) allowed for a rectified pair: larger vertical flow marks the pixel invalid.",
        minimum=0,
    )


@dataclass
class TeacherConfig(Section):
    """The pretrained correspondence teacher that guides training."""

    method: str = setting(
        "sgbm",
        '"sgbm" (OpenCV semi-global matching on the CPU, no weights: the offline default), "raft_small" or '
        '"raft_large" (torchvision RAFT optical flow, see weights), "dis" (OpenCV\'s dense inverse search '
        "optical flow on the CPU, no weights, with a forward-backward check).",
        choices=TEACHER_METHODS,
    )
    resolution: str = setting(
        "input",
        '"input": the teacher matches the views at the network input size (data.width x data.height); '
        '"raw": at the dataset\'s own size (the camera\'s, before resizing), its flow then scaled to the '
        "network input (pixel settings such as sgbm.num_disparities are at the resolution it runs at).",
        choices=TEACHER_RESOLUTIONS,
    )
    weights: str = setting(
        "cache",
        'For RAFT: a state-dict file, "cache" (torchvision\'s hub cache, never downloads) or "none" '
        '(random).',
    )
    cache_dir: str = setting("", 'Directory of the on-disk teacher cache; "" disables caching.')
    sgbm: SgbmConfig = field(default_factory=SgbmConfig)
    raft: RaftConfig = field(default_factory=RaftConfig)
    dis: DisConfig = field(default_factory=DisConfig)


#: The paper's ablation table: photometric mask, L_dr on/off, L_fp on/off.
LOSS_PRESETS: Dict[str, Dict[str, Any]] = {
    "baseline": {"photometric_mask": "auto", "use_dr": False, "use_fp": False},
    "mask": {"photometric_mask": "flow_prior", "use_dr": False, "use_fp": False},
    "dr": {"photometric_mask": "flow_prior", "use_dr": True, "use_fp": False},
    "fp": {"photometric_mask": "flow_prior", "use_dr": False, "use_fp": True},
    "fgdepth": {"photometric_mask": "flow_prior", "use_dr": True, "use_fp": True},
    # Our extension, not in the paper: FG-Depth with Monodepth2's auto-mask where the teacher has no output.
    "fgdepth_auto": {"photometric_mask": "flow_prior_auto", "use_dr": True, "use_fp": True},
}
#: The presets of the paper's ablation table, in its order (LOSS_PRESETS adds our extensions).
PAPER_PRESETS = ("baseline", "mask", "dr", "fp", "fgdepth")
#: Values of loss.preset: a row of LOSS_PRESETS, or "custom" (the keys as written, no preset expanded).
LOSS_PRESET_NAMES = (*LOSS_PRESETS, "custom")


@dataclass
class LossConfig(Section):
    """Loss terms and weights (docs/METHOD.md, "Losses and masks").

    ``preset`` names a row of the ablation table and stands for its photometric_mask, use_dr and use_fp: in
    YAML it is expanded first, keys it does not set (``lambda_fp: 0.5``) then apply, and a key that
    contradicts it is refused (``preset: custom`` takes the keys as written). A preset given with ``--set``
    replaces the file's three keys instead of contradicting them.
    """

    preset: str = setting(
        "fgdepth",
        "Row of the ablation table that sets photometric_mask, use_dr and use_fp; a section that also sets "
        'one of them to another value is refused. "custom" expands nothing (the three keys as written).',
        choices=LOSS_PRESET_NAMES,
        rule="photometric_mask, use_dr and use_fp as the preset sets them, unless custom",
    )
    ssim_alpha: float = setting(
        0.85, "Weight of SSIM in pe = alpha * (1 - SSIM) / 2 + (1 - alpha) * L1.", minimum=0, maximum=1
    )
    photometric_mask: str = setting(
        "flow_prior",
        'Mask M of L_ph: "auto" (M_p, Monodepth2\'s auto-mask), "flow_prior" (M_fp, needs the teacher), '
        '"flow_prior_auto" (M_fp, and M_p where the teacher has no valid output: our extension) or "none" '
        "(every pixel the depth warp keeps in view).",
        choices=PHOTOMETRIC_MASKS,
    )
    auto_mask_average: str = setting(
        "mask",
        'Where M includes the auto-mask M_p ("auto", "flow_prior_auto"): "mask" averages L_ph over the '
        'pixels of M; "all" over every pixel the auto-mask decides, a rejected pixel adding its identity '
        "error pe(I_t, I_s) (a constant), as Monodepth2 does (it weighs L_ph by the share of pixels kept).",
        choices=AUTO_MASK_AVERAGES,
    )
    lambda_ph: float = setting(
        1.0,
        "Weight of L_ph; 0 replaces the photometric loss by the flow distillation (the smoothness stays).",
        minimum=0,
    )
    delta_reading: str = setting(
        "depth",
        'What delta of M_fp bounds: "depth", the teacher\'s pseudo depth f*B/(d+doffs) < '
        'prior_mask_max_depth metres (drops the sky and far buildings); "disparity", its disparity '
        "f*B/D < prior_mask_max_disparity pixels at the network input (drops implausibly large matches, "
        "keeps the far).",
        choices=DELTA_READINGS,
    )
    prior_mask_max_depth: float = setting(
        80.0,
        'delta of M_fp with delta_reading "depth": teacher pseudo depth (metres) at or above which a pixel '
        "is dropped.",
        minimum=0,
        min_exclusive=True,
    )
    prior_mask_max_disparity: float = setting(
        80.0,
        'delta of M_fp with delta_reading "disparity": teacher disparity (pixels at the network input) at '
        "or above which a pixel is dropped.",
        minimum=0,
        min_exclusive=True,
    )
    use_dr: bool = setting(
        True, "Add the depth regression L_dr: DepthNet depth against the teacher's pseudo depth, over M_fp."
    )
    use_fp: bool = setting(
        True,
        "Add the flow-guided photometric loss L_fp: the depth warp against the teacher's flow warp, over "
        "M_fp.",
    )
    lambda_dr: float = setting(
        1.0,
        "Weight of L_dr in L_fd = lambda_dr * L_dr + lambda_fp * L_fp.",
        minimum=0,
    )
    lambda_fp: float = setting(1.0, "Weight of L_fp in L_fd.", minimum=0)
    dr_penalty: str = setting(
        "log_l1",
        "rho of L_dr on the residual x (in dr_units): log(1+|x|), |x|, berHu(x); inv_l1 is |1/D - 1/D̂| "
        "(the same as l1 with dr_units inverse).",
        choices=DR_PENALTIES,
    )
    dr_units: str = setting(
        "relative",
        "What L_dr's residual x is measured in: \"metres\" (D - D̂), \"monodepth2\" ((D - D̂) / "
        f"{MONODEPTH2_DEPTH_UNIT:g}, Monodepth2's stereo units, in which Depth Hints and EPCDepth apply "
        'log(1 + |x|)), "inverse" (1/D - 1/D̂, per metre) or "relative" ((D - D̂) / D̂; the default, '
        "chosen by docs/RESULTS.md, \"Ablation on the built-in world\").",
        choices=DR_UNITS,
        rule='"metres" when dr_penalty is inv_l1 (it fixes its own units)',
    )
    berhu_fraction: float = setting(
        0.2,
        "berHu switches from L1 to L2 at c = berhu_fraction * max|x| over the masked batch.",
        minimum=0,
        min_exclusive=True,
        maximum=1,
    )
    fp_horizontal_only: bool = setting(
        True,
        "L_fp compares the depth warp with the teacher's flow warp along x only (the vertical flow set to "
        "0), as the depth warp is horizontal; false warps with both components (a RAFT or DIS teacher's "
        "vertical flow then keeps L_fp from reaching 0). No effect with SGBM, whose flow is horizontal.",
    )
    smoothness_weight: float = setting(
        1e-3, "Edge-aware smoothness weight at scale 0; scale s uses smoothness_weight / 2^s.", minimum=0
    )

    def check_rules(self, where: str) -> None:
        conflicts = preset_conflicts(self.preset, vars(self))
        if conflicts:
            raise ConfigError(f"{where}.preset: {conflicts}")
        if self.dr_penalty == "inv_l1" and self.dr_units != "metres":
            raise self.rule_error(where, "dr_units", dr_penalty=self.dr_penalty)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "LossConfig":
        """The loss config of ablation preset ``name`` with optional field overrides (of keys the preset
        does not set; name "custom" to set those too)."""
        if name not in LOSS_PRESETS:
            raise ConfigError(f"loss.preset: expected one of {sorted(LOSS_PRESETS)}, got {name!r}")
        return cls(preset=name, **{**LOSS_PRESETS[name], **overrides})


def preset_conflicts(preset: Any, loss: Dict[str, Any]) -> str:
    """"" when the keys of ``loss`` (a loss section as a dict) agree with what ``preset`` sets, else a
    sentence naming each contradicting key, its value and the preset's, and the two ways out."""
    if not isinstance(preset, str) or preset not in LOSS_PRESETS:
        return ""
    wanted = LOSS_PRESETS[preset]
    bad = [key for key in wanted if key in loss and loss[key] != wanted[key]]
    if not bad:
        return ""
    shown = ", ".join(f"{key}: {loss[key]!r} (the preset's: {wanted[key]!r})" for key in bad)
    return (
        f"preset {preset!r} sets {', '.join(bad)} otherwise: {shown}; drop those keys to train the preset, "
        "or set loss.preset to custom to train them as written"
    )


@dataclass
class AugmentConfig(Section):
    """Training-time augmentation (docs/METHOD.md, "Data augmentation")."""

    graft_prob: float = setting(
        0.5, "Probability of vertical splicing (data grafting) per sample.", minimum=0, maximum=1
    )
    graft_ratios: List[float] = setting(
        [0.2, 0.4, 0.6, 0.8],
        "Split ratios r: rows below r*H come from another sample of the batch.",
        each=True,
        min_items=1,
        minimum=0,
        min_exclusive=True,
        maximum=1,
        max_exclusive=True,
    )
    graft_roll: bool = setting(True, "Roll the grafted image vertically by r*H.")
    flip_prob: float = setting(
        0.5,
        "Probability of a horizontal flip that mirrors both views and swaps their roles.",
        minimum=0,
        maximum=1,
    )
    jitter_prob: float = setting(
        0.8, "Probability of colour jitter (same parameters for both views).", minimum=0, maximum=1
    )
    brightness: float = setting(
        0.2, "Brightness factor drawn from [max(0, 1 - brightness), 1 + brightness].", minimum=0
    )
    contrast: float = setting(
        0.2,
        "Contrast factor drawn from [max(0, 1 - contrast), 1 + contrast] (blend with both views' grey mean).",
        minimum=0,
    )
    saturation: float = setting(
        0.2, "Saturation factor drawn from [max(0, 1 - saturation), 1 + saturation].", minimum=0
    )
    hue: float = setting(
        0.1,
        "Hue shift drawn from [-hue, hue], in turns of the colour wheel (0.5 = half a turn).",
        minimum=0,
        maximum=0.5,
    )


@dataclass
class SynthConfig(Section):
    """The built-in procedural stereo world (fg_depth_core.data.world); KITTI-like camera by default."""

    width: int = setting(
        640,
        "Rendering width (pixels); training resizes to data.width x data.height.",
        minimum=0,
        min_exclusive=True,
    )
    height: int = setting(192, "Rendering height (pixels).", minimum=0, min_exclusive=True)
    focal: float = setting(
        371.0,
        "Focal length (pixels) at ``width``; 720 px at 1242 px is KITTI's.",
        minimum=0,
        min_exclusive=True,
    )
    baseline: float = setting(
        0.54,
        "Stereo baseline (metres): the right camera sits at +baseline along x; 0.54 m is KITTI's.",
        minimum=0,
        min_exclusive=True,
    )
    train_frames: int = setting(
        200, "Frames of the train split (training).", minimum=0, min_exclusive=True
    )
    val_frames: int = setting(
        20, "Frames of the val split (validation during training).", minimum=0, min_exclusive=True
    )
    test_frames: int = setting(
        40,
        "Frames of the test split (scored against ground-truth depth by fg-depth eval).",
        minimum=0,
        min_exclusive=True,
    )
    seed: int = setting(
        0,
        "Seed of the world: the scenes of every split derive from it, and no two splits or seeds share a "
        "scene.",
        minimum=0,
    )
    right_gain_range: float = setting(
        0.2,
        "The right camera's exposure: gain drawn from [1 - right_gain_range, 1 + right_gain_range].",
        minimum=0,
        maximum=1,
        max_exclusive=True,
    )
    noise_std: float = setting(0.01, "Gaussian sensor noise (std, intensity in [0, 1]).", minimum=0)
    frames_per_scene: int = setting(
        4,
        "Each scene is a short forward-moving sequence of this many frames, frame_step metres apart.",
        minimum=0,
        min_exclusive=True,
    )
    frame_step: float = setting(
        2.0, "Distance (metres) the camera moves forward from one frame of a scene to the next.", minimum=0
    )


@dataclass
class BagConfig(Section):
    """Training pairs from a rosbag2 recording (data.dataset "bag", data.path the bag folder or file)."""

    left_topic: str = setting(
        "",
        "Image topic (sensor_msgs/Image or CompressedImage) of the left camera; required for the \"bag\" "
        "dataset.",
        rule='set when data.dataset is "bag" (or pass --left TOPIC)',
    )
    right_topic: str = setting(
        "",
        "Image topic of the right camera, likewise.",
        rule='set when data.dataset is "bag" (or pass --right TOPIC)',
    )
    left_info_topic: str = setting(
        "",
        'The left camera\'s CameraInfo topic; "" = the image topic\'s sibling "camera_info" (/cam0/image_raw '
        "-> /cam0/camera_info, /left/image_raw/compressed -> /left/camera_info).",
    )
    right_info_topic: str = setting(
        "", 'The right camera\'s CameraInfo topic; "" = derived from right_topic as for left_info_topic.'
    )
    slop: float = setting(
        0.01,
        "Left and right images pair when their header stamps differ by at most this (seconds).",
        minimum=0,
    )
    stride: int = setting(1, "Use every stride-th synchronised pair.", minimum=1)
    start: float = setting(
        0.0,
        "Skip the pairs of the first ``start`` seconds after the first pair.",
        minimum=0,
    )
    duration: float = setting(
        0.0, "Use the pairs of ``duration`` seconds from ``start`` on; 0 = to the end.", minimum=0
    )
    max_frames: int = setting(0, "Use at most this many of the selected pairs; 0 = all.", minimum=0)
    val_fraction: float = setting(
        0.1,
        "The last val_fraction of the selected pairs (in time) validate; the rest train.",
        minimum=0,
        min_exclusive=True,
        maximum=1,
        max_exclusive=True,
    )
    rectify: str = setting(
        "auto",
        '"auto" rectifies raw images (CameraInfo D != 0 or R != I), "always" or "never" force it.',
        choices=RECTIFY_MODES,
    )
    crop: bool = setting(True, "Cut rectified pairs to the rectangle both views fill (no black borders).")

    def require_topics(self, where: str) -> None:
        """Raise unless both image topics are set (the "bag" dataset needs them: the topics' rule)."""
        for key, flag in (("left_topic", "--left"), ("right_topic", "--right")):
            if not getattr(self, key):
                raise ConfigError(
                    f"{where}.{key}: the 'bag' dataset needs the {key.split('_')[0]} image topic; set it or "
                    f"pass {flag} TOPIC (fg-depth bag-info BAG lists the topics)"
                )


@dataclass
class DataConfig(Section):
    """Where training and validation pairs come from and the network input size."""

    dataset: str = setting(
        "synth",
        '"synth" (built-in world), "kitti" (KITTI raw layout), "folder" (stereo folder with calib.yaml) or '
        '"bag" (a rosbag2 recording, see data.bag).',
        choices=DATASETS,
    )
    path: str = setting(
        "",
        'Dataset root; for "synth" a directory the world is rendered into ("" = <run dir>/synth); for "bag" '
        "the bag (folder with metadata.yaml, or one .mcap / .db3 file).",
        rule='set for "kitti", "folder" and "bag" unless the command gets a path (checked when the dataset '
        "is built)",
    )
    train_split: str = setting(
        "",
        'Training split file (one frame per line, dataset-specific format); "" = the dataset\'s default '
        '(KITTI: Eigen-Zhou train; folder: every pair; bag: the earlier pairs). "synth" ignores split files.',
    )
    val_split: str = setting(
        "",
        'Validation split file, same format; "" = the dataset\'s default (KITTI: Eigen-Zhou val; folder: '
        "every pair; bag: its last val_fraction).",
    )
    width: int = setting(
        640,
        "Network input width (pixels); every dataset's samples come at width x height.",
        multiple_of=INPUT_MULTIPLE,
        minimum=MIN_INPUT_SIZE,
    )
    height: int = setting(
        192, "Network input height (pixels).", multiple_of=INPUT_MULTIPLE, minimum=MIN_INPUT_SIZE
    )
    num_workers: int = setting(
        2,
        "DataLoader worker processes for training, validation and evaluation (0 = the main process); with "
        'the "sgbm" teacher also the processes that fill the teacher cache.',
        minimum=0,
    )
    synth: SynthConfig = field(default_factory=SynthConfig)
    bag: BagConfig = field(default_factory=BagConfig)

    def check_rules(self, where: str) -> None:
        if self.dataset == "bag":
            self.bag.require_topics(f"{where}.bag")


@dataclass
class TrainConfig(Section):
    """The optimisation loop, checkpoints and logs."""

    batch_size: int = setting(
        8,
        "Stereo pairs per step and per process (with torchrun N processes the effective batch is N times "
        "it); validation uses the same batch size.",
        minimum=0,
        min_exclusive=True,
        rule="batch_size x processes <= the training pairs (checked when training starts)",
    )
    learning_rate: float = setting(
        1e-4, "Adam's initial learning rate (decayed at lr_milestones).", minimum=0, min_exclusive=True
    )
    max_steps: int = setting(20000, "Total optimiser steps.", minimum=0, min_exclusive=True)
    lr_milestones: List[float] = setting(
        [0.75],
        "The learning rate is multiplied by lr_gamma at each of these fractions of max_steps.",
        each=True,
        minimum=0,
        min_exclusive=True,
        maximum=1,
        max_exclusive=True,
    )
    lr_gamma: float = setting(
        0.1, "Factor applied to the learning rate at each milestone.", minimum=0, min_exclusive=True
    )
    grad_clip: float = setting(0.0, "Gradient-norm clipping; <= 0 disables it.")
    seed: int = setting(
        0,
        "Seeds Python, NumPy and torch, the sample order and each step's augmentation (a resumed run sees "
        "the same batches as an uninterrupted one).",
    )
    device: str = setting("auto", '"auto" (CUDA when available), "cpu" or "cuda".', choices=DEVICES)
    amp: bool = setting(True, "Mixed precision (bfloat16/float16 autocast); used on CUDA only.")
    cpu_threads: int = setting(
        0,
        "PyTorch CPU threads while training; 0 = PyTorch's default (one per core). On a CPU that other jobs "
        "share, fewer threads than cores avoid threads waiting on each other, which can slow steps "
        "severalfold.",
        minimum=0,
    )
    checkpoint_every: int = setting(
        500,
        "Steps between checkpoints (RUN_DIR/last.pt; also written at the end and on Ctrl-C/SIGTERM).",
        minimum=0,
        min_exclusive=True,
    )
    val_every: int = setting(
        500,
        "Steps between validations (val loss, and abs_rel where the val set has depth ground truth; the best "
        "one updates RUN_DIR/best.pt); also run at max_steps.",
        minimum=0,
        min_exclusive=True,
    )
    log_every: int = setting(
        50,
        "Steps between log lines and TensorBoard scalars (means over those steps).",
        minimum=0,
        min_exclusive=True,
    )
    image_every: int = setting(500, "Steps between TensorBoard image grids; <= 0 disables them.")


@dataclass
class EvalConfig(Section):
    """The evaluation protocol (docs/METHOD.md, "Evaluation"). The defaults are the KITTI Eigen protocol of
    the published tables, which ``fg-depth eval --data kitti`` applies whatever the checkpoint's section says;
    other datasets are scored with the checkpoint's section. Validation during training uses it too."""

    min_depth: float = setting(
        1e-3,
        "Ground-truth depths (metres) at or below this are ignored, and predictions are clamped up to it.",
        minimum=0,
        min_exclusive=True,
    )
    max_depth: float = setting(
        80.0,
        "Ground-truth depths (metres) at or above this are ignored, and predictions are clamped down to it.",
        rule="> min_depth",
    )
    garg_crop: bool = setting(
        True,
        "Score only inside Garg's crop of the ground truth (rows 40.8-99.2 %, columns 3.6-96.4 %), as the "
        "KITTI Eigen protocol does.",
    )
    median_scaling: bool = setting(
        False, "Scale each prediction by median(gt) / median(pred): for monocular-trained models only."
    )
    post_process: bool = setting(
        False,
        "fg-depth eval: average the disparity of the image and of its mirror image, with the mirror's alone "
        "at the image's left edge and the image's alone at its right edge (Monodepth2's post-processing, the "
        '"pp" rows of published tables); two forward passes per frame. Validation during training does not '
        "post-process.",
    )
    gt: str = setting(
        "velodyne",
        'KITTI ground truth, one source per run: "velodyne" (the raw scan projected into the image, the '
        'Eigen ground truth of the published tables) or "improved" (the depth benchmark\'s '
        "proj_depth/groundtruth maps). Frames without it are skipped and counted.",
        choices=KITTI_GT_SOURCES,
    )
    velodyne_depth: str = setting(
        "velodyne_x",
        'Depth a projected velodyne point writes into the KITTI ground truth: "velodyne_x" (its forward '
        "distance in the velodyne frame, as the published Eigen ground truth) or \"camera_z\" (its z in the "
        "rectified camera frame, about 0.27 m smaller nearby).",
        choices=VELODYNE_DEPTHS,
    )

    def check_rules(self, where: str) -> None:
        if self.max_depth <= self.min_depth:
            raise self.rule_error(where, "max_depth", min_depth=self.min_depth)


@dataclass
class InferenceConfig(Section):
    """Running a trained model (DepthEstimator, ``fg-depth predict``, the ROS node)."""

    backend: str = setting(
        "auto",
        '"auto" (the fastest available: tensorrt > onnxruntime on CUDA > onnxruntime on CPU for an .onnx; '
        'torch for a .pt; tensorrt for an .engine), "torch", "onnxruntime", "tensorrt" or "openvino" (an '
        '.onnx on the CPU; optional, pip install openvino; never chosen by auto).',
        choices=INFERENCE_BACKENDS,
    )
    device: str = setting(
        "auto",
        '"auto" (CUDA when available), "cpu", "cuda" or "cuda:N".',
        pattern=INFERENCE_DEVICE_PATTERN,
        pattern_help=INFERENCE_DEVICE_WORDS,
    )
    precision: str = setting(
        "fp32",
        '"fp32" or "fp16" (CUDA only: torch half, TensorRT, ONNX Runtime\'s TensorRT execution provider).',
        choices=PRECISIONS,
    )
    threads: int = setting(
        0, "CPU threads of torch / ONNX Runtime's intra-op pool; 0 keeps the library's default.", minimum=0
    )
    cache_dir: str = setting(
        "",
        "Folder of TensorRT engines and timing caches ('' = $XDG_CACHE_HOME/fg-depth/tensorrt, "
        "~/.cache/...).",
    )
    workspace_mb: int = setting(
        1024, "TensorRT builder workspace limit, MiB.", minimum=0, min_exclusive=True
    )
    input_fit: str = setting(
        "pad",
        "How an image whose aspect ratio differs from the network input's reaches it (docs/METHOD.md, "
        '"Scale"). "pad": scaled uniformly to fit inside, edge pixels repeated around it, the padding cut '
        'from the depth, so the depth covers the whole image; "crop": scaled uniformly to cover the input, '
        "the centre kept, so the depth (and its camera_info) covers only that window; \"stretch\": resized "
        "to the input size whatever the aspect (distorts the image; warns beyond 10 %). All three are the "
        "same for an image of the network's aspect.",
        choices=INPUT_FITS,
    )


@dataclass
class Config(Section):
    """Root of the configuration tree: drives training, export and the ROS node."""

    model: ModelConfig = field(default_factory=ModelConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def validate(self, where: str = "config") -> "Config":
        return super().validate(where)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- loading


#: What config_from_dict does with a loss section whose explicit keys contradict its preset.
PRESET_CONFLICT_MODES = ("error", "custom")


def config_from_dict(
    data: Optional[Dict[str, Any]], source: str = "config", preset_conflict: str = "error"
) -> Config:
    """Build and validate a :class:`Config` from nested dicts (as read from YAML).

    Args:
        data: nested mapping; missing keys take their defaults, unknown keys are an error.
        source: what to call the input in error messages (a file name, say).
        preset_conflict: a loss section that names a preset and also sets one of the preset's keys to
            another value is refused ("error", naming the keys) or kept as written and relabelled
            ``preset: custom`` with a warning ("custom": for configs stored by older versions, which let
            explicit keys win silently).
    """
    if preset_conflict not in PRESET_CONFLICT_MODES:
        raise ValueError(f"preset_conflict: expected one of {PRESET_CONFLICT_MODES}, got {preset_conflict!r}")
    data = dict(data or {})
    loss = data.get("loss")
    preset = loss.get("preset") if isinstance(loss, dict) else None
    if isinstance(preset, str) and preset in LOSS_PRESETS:  # any other value is refused by validation
        conflicts = preset_conflicts(preset, loss)
        if conflicts and preset_conflict == "custom":
            warnings.warn(f"{source}: loss.{conflicts}; read as preset custom", stacklevel=2)
            data["loss"] = {**loss, "preset": "custom"}
        elif conflicts:
            raise ConfigError(f"{source}: loss.{conflicts}")
        else:
            data["loss"] = {**LOSS_PRESETS[preset], **loss}
    try:
        cfg = _build(Config, data, "")
        cfg.validate("")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {str(exc).lstrip('.')}") from None
    return cfg


def load_config(path: Union[str, os.PathLike, None] = None, overrides: Optional[List[str]] = None) -> Config:
    """Load a YAML config (the defaults when ``path`` is None), then apply ``key.sub=value`` overrides.

    A preset given as an override (``loss.preset=baseline``) expands over the file's loss keys: the file's
    photometric_mask, use_dr and use_fp give way to the preset's, unless an override sets them too.
    """
    source = str(path) if path is not None else "defaults"
    data: Dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    apply_overrides(data, overrides or [])
    return config_from_dict(data, source)


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply ``key.sub=value`` overrides to nested dict ``data`` in place; an overriding ``loss.preset``
    removes the loss keys it sets from ``data`` (unless an override sets them too), so the preset expands
    over them instead of contradicting them."""
    set_keys = [apply_override(data, item) for item in overrides]
    if "loss.preset" not in set_keys:
        return
    loss = data["loss"]
    preset = loss["preset"]
    for key in LOSS_PRESETS.get(preset, ()) if isinstance(preset, str) else ():
        if f"loss.{key}" not in set_keys:
            loss.pop(key, None)


def apply_override(data: Dict[str, Any], item: str) -> str:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to nested dict ``data`` in place; returns
    the key ("a.b.c")."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {item!r}: empty key component")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {item!r}: {part} is not a section")
        node = nxt
    node[parts[-1]] = yaml.safe_load(raw)
    return ".".join(parts)


def dump_config(cfg: Config, path: Union[str, os.PathLike]) -> None:
    """Write ``cfg`` as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'top level'}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; expected one of {sorted(names)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (Union, getattr(types, "UnionType", Union)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin in (list, List, tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item_type = args[0] if args else Any
        return [_coerce(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads 1e-4 (no dot) as a string; accept what Python reads as a number.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


