"""The one typed configuration tree of fg-depth.

Every default of the method lives here (and is documented in METHOD.md); nothing else in the package holds
a tunable number. A config is loaded from YAML, validated at load time with errors that name the file and the
key, can be overridden with ``key.sub=value`` strings, and is dumped back to plain dicts for checkpoints and
exported models.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import yaml

from fg_depth_core.errors import FgDepthError


class ConfigError(FgDepthError, ValueError):
    """A configuration value or file is invalid; the message names where and what."""


ENCODERS = ("resnet18", "resnet34", "resnet50")
TEACHER_METHODS = ("sgbm", "raft_small", "raft_large")
PHOTOMETRIC_MASKS = ("none", "auto", "flow_prior", "flow_prior_auto")
#: The photometric masks that use the teacher's M_fp, and those that use the auto-mask M_p.
FLOW_PRIOR_MASKS = ("flow_prior", "flow_prior_auto")
AUTO_MASKS = ("auto", "flow_prior_auto")
DR_PENALTIES = ("log_l1", "l1", "inv_l1", "berhu")
DATASETS = ("synth", "kitti", "folder", "bag")
#: Rectification of bag images: "auto" when CameraInfo D or R say they are raw, or forced on or off.
RECTIFY_MODES = ("auto", "always", "never")
#: The encoder halves the resolution five times, so input sides must be multiples of 2^5.
INPUT_MULTIPLE = 32
#: Reflection padding needs at least 2 pixels at the coarsest (1/32) level, so sides must be >= 64.
MIN_INPUT_SIZE = 2 * INPUT_MULTIPLE
DEVICES = ("auto", "cpu", "cuda")
#: Inference backends ("auto" picks the fastest available one, see deploy/backends) and precisions.
INFERENCE_BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16")


@dataclass
class ModelConfig:
    """DepthNet: ResNet encoder + multi-scale decoder predicting metric depth."""

    #: ResNet depth of the encoder (torchvision architecture); encoder_weights must be for the same one.
    encoder: str = "resnet18"
    #: "none" (random init, works offline), "imagenet" (torchvision cache only) or a path to a state dict.
    encoder_weights: str = "none"
    #: Near end (metres) of the output depth range: the sigmoid maps linearly to disparity in
    #: [1/max_depth, 1/min_depth], sigmoid 1 -> min_depth.
    min_depth: float = 0.1
    #: Far end (metres) of the output depth range (sigmoid 0).
    max_depth: float = 100.0
    #: Number of output scales (full, 1/2, 1/4, 1/8 resolution).
    num_scales: int = 4
    #: Depth (metres) the untrained heads start at: their bias is set so that training begins at a plausible
    #: scene depth rather than near min_depth (Monodepth2's zero bias gives ~2 * min_depth). 0 keeps the zero
    #: bias. Our choice; it shortens CPU training and treats every loss preset alike.
    init_depth: float = 10.0

    def validate(self, where: str) -> None:
        _choice(where, "encoder", self.encoder, ENCODERS)
        if not self.encoder_weights:
            raise ConfigError(f"{where}.encoder_weights: expected 'none', 'imagenet' or a file path, got ''")
        _positive(where, "min_depth", self.min_depth)
        if self.max_depth <= self.min_depth:
            raise ConfigError(
                f"{where}.max_depth: expected > min_depth ({self.min_depth}), got {self.max_depth}"
            )
        if self.init_depth != 0 and not self.min_depth < self.init_depth < self.max_depth:
            raise ConfigError(
                f"{where}.init_depth: expected 0 or a depth in ({self.min_depth}, {self.max_depth}), "
                f"got {self.init_depth}"
            )
        if not 1 <= self.num_scales <= 4:
            raise ConfigError(f"{where}.num_scales: expected 1..4, got {self.num_scales}")


@dataclass
class SgbmConfig:
    """OpenCV StereoSGBM parameters (pixels at the teacher's working resolution)."""

    #: Disparity search range; SGBM cannot match the leftmost num_disparities columns. 96 covers depths from
    #: 2.1 m at 640 px KITTI-like width (f*B = 200 px*m); raise it for wider images or closer scenes.
    num_disparities: int = 96
    #: Side (pixels, odd) of the matched block; larger is smoother and less noisy but blurs edges.
    block_size: int = 5
    #: P1 = p1_factor * channels * block_size^2 (OpenCV's documented recipe; channels = 1, grayscale): the
    #: smoothness penalty for a disparity change of 1 px between neighbours.
    p1_factor: int = 8
    #: P2 = p2_factor * channels * block_size^2: the penalty for larger disparity jumps (needs P2 > P1).
    p2_factor: int = 32
    #: Margin (percent) by which the best match cost must beat the second best; else the pixel is a hole.
    uniqueness_ratio: int = 10
    #: Largest connected region (pixels) of similar disparity treated as a speckle and invalidated; 0 = off.
    speckle_window_size: int = 100
    #: Largest disparity variation (pixels) within one connected region in the speckle filter.
    speckle_range: int = 2
    #: Largest difference (pixels) allowed by the left-right disparity consistency check; < 0 disables it.
    disp12_max_diff: int = 1
    #: The x-derivative prefiltered image is clipped to [-pre_filter_cap, pre_filter_cap] before matching.
    pre_filter_cap: int = 63
    #: "sgbm" (5 paths), "hh" (8 paths), "sgbm_3way" or "hh4".
    mode: str = "sgbm_3way"

    def validate(self, where: str) -> None:
        if self.num_disparities <= 0 or self.num_disparities % 16:
            raise ConfigError(
                f"{where}.num_disparities: expected a positive multiple of 16, got {self.num_disparities}"
            )
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ConfigError(f"{where}.block_size: expected an odd number >= 1, got {self.block_size}")
        _choice(where, "mode", self.mode, ("sgbm", "hh", "sgbm_3way", "hh4"))


@dataclass
class RaftConfig:
    """torchvision RAFT teacher."""

    #: Recurrent refinement iterations (torchvision's default is 12).
    num_flow_updates: int = 12
    #: Inputs are padded (replicate) to a multiple of this many pixels.
    pad_multiple: int = 8
    #: Forward-backward consistency threshold in pixels; pixels above it are invalid. <= 0 disables the check.
    fb_threshold: float = 1.0
    #: Flow |v| (pixels) allowed for a rectified pair: larger vertical flow marks the pixel invalid.
    max_vertical_flow: float = 1.0

    def validate(self, where: str) -> None:
        if self.num_flow_updates < 1:
            raise ConfigError(f"{where}.num_flow_updates: expected >= 1, got {self.num_flow_updates}")
        if self.pad_multiple < 1:
            raise ConfigError(f"{where}.pad_multiple: expected >= 1, got {self.pad_multiple}")


@dataclass
class TeacherConfig:
    """The pretrained correspondence teacher that guides training."""

    #: "sgbm" (OpenCV semi-global matching on the CPU, no weights: the offline default), "raft_small" or
    #: "raft_large" (torchvision RAFT optical flow, see weights).
    method: str = "sgbm"
    #: For RAFT: a state-dict file, "cache" (torchvision's hub cache, never downloads) or "none" (random).
    weights: str = "cache"
    #: Directory of the on-disk teacher cache; "" disables caching.
    cache_dir: str = ""
    sgbm: SgbmConfig = field(default_factory=SgbmConfig)
    raft: RaftConfig = field(default_factory=RaftConfig)

    def validate(self, where: str) -> None:
        _choice(where, "method", self.method, TEACHER_METHODS)
        self.sgbm.validate(f"{where}.sgbm")
        self.raft.validate(f"{where}.raft")


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


@dataclass
class LossConfig:
    """Loss terms and weights (METHOD.md, 'Losses').

    ``preset`` names a row of the ablation table; in YAML it is expanded first and explicit keys then
    override it, so ``{preset: fgdepth, lambda_fp: 0.5}`` works as expected.
    """

    preset: str = "fgdepth"
    #: Weight of SSIM in pe = alpha * (1 - SSIM) / 2 + (1 - alpha) * L1.
    ssim_alpha: float = 0.85
    #: Mask M of L_ph: "auto" (M_p, Monodepth2's auto-mask), "flow_prior" (M_fp, needs the teacher),
    #: "flow_prior_auto" (M_fp, and M_p where the teacher has no valid output: our extension) or "none"
    #: (every pixel the depth warp keeps in view).
    photometric_mask: str = "flow_prior"
    #: delta of M_fp: teacher pseudo depth (metres) at or above which a pixel is dropped.
    prior_mask_max_depth: float = 80.0
    #: Add the depth regression L_dr: DepthNet depth against the teacher's pseudo depth, over M_fp.
    use_dr: bool = True
    #: Add the flow-guided photometric loss L_fp: the depth warp against the teacher's flow warp, over M_fp.
    use_fp: bool = True
    #: Weight of L_dr in L_fd = lambda_dr * L_dr + lambda_fp * L_fp.
    lambda_dr: float = 1.0
    #: Weight of L_fp in L_fd.
    lambda_fp: float = 1.0
    #: rho of L_dr: log(1+|x|) on depth, L1 on depth, L1 on inverse depth, or berHu on depth.
    dr_penalty: str = "log_l1"
    #: berHu switches from L1 to L2 at c = berhu_fraction * max|x| over the masked batch.
    berhu_fraction: float = 0.2
    #: Edge-aware smoothness weight at scale 0; scale s uses smoothness_weight / 2^s.
    smoothness_weight: float = 1e-3

    def validate(self, where: str) -> None:
        _choice(where, "preset", self.preset, tuple(LOSS_PRESETS) + ("custom",))
        _choice(where, "photometric_mask", self.photometric_mask, PHOTOMETRIC_MASKS)
        _choice(where, "dr_penalty", self.dr_penalty, DR_PENALTIES)
        if not 0.0 <= self.ssim_alpha <= 1.0:
            raise ConfigError(f"{where}.ssim_alpha: expected a value in [0, 1], got {self.ssim_alpha}")
        _positive(where, "prior_mask_max_depth", self.prior_mask_max_depth)
        for key in ("lambda_dr", "lambda_fp", "smoothness_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{where}.{key}: expected >= 0, got {getattr(self, key)}")
        if not 0.0 < self.berhu_fraction <= 1.0:
            raise ConfigError(
                f"{where}.berhu_fraction: expected a value in (0, 1], got {self.berhu_fraction}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "LossConfig":
        """The loss config of ablation preset ``name`` with optional field overrides."""
        if name not in LOSS_PRESETS:
            raise ConfigError(f"loss.preset: expected one of {sorted(LOSS_PRESETS)}, got {name!r}")
        return cls(preset=name, **{**LOSS_PRESETS[name], **overrides})


@dataclass
class AugmentConfig:
    """Training-time augmentation (METHOD.md, 'Data augmentation')."""

    #: Probability of vertical splicing (data grafting) per sample.
    graft_prob: float = 0.5
    #: Split ratios r: rows below r*H come from another sample of the batch.
    graft_ratios: List[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    #: Roll the grafted image vertically by r*H.
    graft_roll: bool = True
    #: Probability of a horizontal flip that mirrors both views and swaps their roles.
    flip_prob: float = 0.5
    #: Probability of colour jitter (same parameters for both views).
    jitter_prob: float = 0.8
    #: Brightness factor drawn from [max(0, 1 - brightness), 1 + brightness].
    brightness: float = 0.2
    #: Contrast factor drawn from [max(0, 1 - contrast), 1 + contrast] (blend with both views' grey mean).
    contrast: float = 0.2
    #: Saturation factor drawn from [max(0, 1 - saturation), 1 + saturation].
    saturation: float = 0.2
    #: Hue shift drawn from [-hue, hue], in turns of the colour wheel (0.5 = half a turn).
    hue: float = 0.1

    def validate(self, where: str) -> None:
        for key in ("graft_prob", "flip_prob", "jitter_prob"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{where}.{key}: expected a probability in [0, 1], got {value}")
        if not self.graft_ratios or any(not 0.0 < r < 1.0 for r in self.graft_ratios):
            raise ConfigError(
                f"{where}.graft_ratios: expected a non-empty list in (0, 1), got {self.graft_ratios}"
            )
        for key in ("brightness", "contrast", "saturation"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{where}.{key}: expected >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ConfigError(f"{where}.hue: expected a value in [0, 0.5], got {self.hue}")


@dataclass
class SynthConfig:
    """The built-in procedural stereo world (fg_depth_core.data.world); KITTI-like camera by default."""

    #: Rendering size (pixels); training resizes to data.width x data.height.
    width: int = 640
    height: int = 192
    #: Focal length (pixels) at ``width``; 720 px at 1242 px is KITTI's.
    focal: float = 371.0
    #: Stereo baseline (metres): the right camera sits at +baseline along x; 0.54 m is KITTI's.
    baseline: float = 0.54
    #: Frames per split and the seed of split 0; splits use disjoint scene seeds.
    train_frames: int = 200
    #: Frames of the val split (validation during training).
    val_frames: int = 20
    #: Frames of the test split (scored against ground-truth depth by fg-depth eval).
    test_frames: int = 40
    seed: int = 0
    #: The right camera's exposure: gain drawn from [1 - right_gain_range, 1 + right_gain_range].
    right_gain_range: float = 0.2
    #: Gaussian sensor noise (std, intensity in [0, 1]).
    noise_std: float = 0.01
    #: Each scene is a short forward-moving sequence of this many frames, frame_step metres apart.
    frames_per_scene: int = 4
    frame_step: float = 2.0

    def validate(self, where: str) -> None:
        for key in ("width", "height", "train_frames", "val_frames", "test_frames", "frames_per_scene"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}.{key}: expected > 0, got {getattr(self, key)}")
        if self.seed < 0:
            raise ConfigError(f"{where}.seed: expected >= 0, got {self.seed}")
        if self.frame_step < 0:
            raise ConfigError(f"{where}.frame_step: expected metres >= 0, got {self.frame_step}")
        _positive(where, "focal", self.focal)
        _positive(where, "baseline", self.baseline)
        if not 0.0 <= self.right_gain_range < 1.0:
            raise ConfigError(
                f"{where}.right_gain_range: expected a value in [0, 1), got {self.right_gain_range}"
            )
        if self.noise_std < 0:
            raise ConfigError(f"{where}.noise_std: expected >= 0, got {self.noise_std}")


@dataclass
class BagConfig:
    """Training pairs from a rosbag2 recording (data.dataset "bag", data.path the bag folder or file)."""

    #: Image topic (sensor_msgs/Image or CompressedImage) of the left camera; required for the "bag" dataset.
    left_topic: str = ""
    #: Image topic of the right camera, likewise.
    right_topic: str = ""
    #: The left camera's CameraInfo topic; "" = the image topic's sibling "camera_info" (/cam0/image_raw ->
    #: /cam0/camera_info, /left/image_raw/compressed -> /left/camera_info).
    left_info_topic: str = ""
    #: The right camera's CameraInfo topic; "" = derived from right_topic as for left_info_topic.
    right_info_topic: str = ""
    #: Left and right images pair when their header stamps differ by at most this (seconds).
    slop: float = 0.01
    #: Use every stride-th pair, from ``start`` seconds after the first pair for ``duration`` seconds
    #: (0 = to the end), at most max_frames pairs (0 = all).
    stride: int = 1
    start: float = 0.0
    duration: float = 0.0
    max_frames: int = 0
    #: The last val_fraction of the selected pairs (in time) validate; the rest train.
    val_fraction: float = 0.1
    #: "auto" rectifies raw images (CameraInfo D != 0 or R != I), "always" or "never" force it.
    rectify: str = "auto"
    #: Cut rectified pairs to the rectangle both views fill (no black borders).
    crop: bool = True

    def validate(self, where: str) -> None:
        _choice(where, "rectify", self.rectify, RECTIFY_MODES)
        if self.slop < 0:
            raise ConfigError(f"{where}.slop: expected seconds >= 0, got {self.slop}")
        for key in ("start", "duration"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{where}.{key}: expected seconds >= 0, got {getattr(self, key)}")
        if self.stride < 1:
            raise ConfigError(f"{where}.stride: expected >= 1, got {self.stride}")
        if self.max_frames < 0:
            raise ConfigError(f"{where}.max_frames: expected >= 0 (0 = all), got {self.max_frames}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{where}.val_fraction: expected a value in (0, 1), got {self.val_fraction}")

    def require_topics(self, where: str) -> None:
        """Raise unless both image topics are set (the "bag" dataset needs them)."""
        for key, flag in (("left_topic", "--left"), ("right_topic", "--right")):
            if not getattr(self, key):
                raise ConfigError(
                    f"{where}.{key}: the 'bag' dataset needs the {key.split('_')[0]} image topic; set it or "
                    f"pass {flag} TOPIC (fg-depth bag-info BAG lists the topics)"
                )


@dataclass
class DataConfig:
    """Where training and validation pairs come from and the network input size."""

    #: "synth" (built-in world), "kitti" (KITTI raw layout), "folder" (stereo folder with calib.yaml) or
    #: "bag" (a rosbag2 recording, see data.bag).
    dataset: str = "synth"
    #: Dataset root; for "synth" a directory the world is rendered into ("" = <run dir>/synth); for "bag"
    #: the bag (folder with metadata.yaml, or one .mcap / .db3 file).
    path: str = ""
    #: Training split file (one frame per line, dataset-specific format); "" = the dataset's default
    #: (KITTI: Eigen-Zhou train; folder: every pair; bag: the earlier pairs). "synth" ignores split files.
    train_split: str = ""
    #: Validation split file, same format; "" = the dataset's default (KITTI: Eigen-Zhou val; folder: every
    #: pair; bag: its last val_fraction).
    val_split: str = ""
    #: Network input width (pixels); every dataset's samples come at width x height.
    width: int = 640
    #: Network input height (pixels).
    height: int = 192
    #: DataLoader worker processes for training, validation and evaluation (0 = the main process); with the
    #: "sgbm" teacher also the processes that fill the teacher cache.
    num_workers: int = 2
    synth: SynthConfig = field(default_factory=SynthConfig)
    bag: BagConfig = field(default_factory=BagConfig)

    def validate(self, where: str) -> None:
        _choice(where, "dataset", self.dataset, DATASETS)
        for key in ("width", "height"):
            value = getattr(self, key)
            if value < MIN_INPUT_SIZE or value % INPUT_MULTIPLE:
                raise ConfigError(
                    f"{where}.{key}: expected a multiple of {INPUT_MULTIPLE} that is >= {MIN_INPUT_SIZE}, "
                    f"got {value}"
                )
        if self.num_workers < 0:
            raise ConfigError(f"{where}.num_workers: expected >= 0, got {self.num_workers}")
        self.synth.validate(f"{where}.synth")
        self.bag.validate(f"{where}.bag")
        if self.dataset == "bag":
            self.bag.require_topics(f"{where}.bag")


@dataclass
class TrainConfig:
    """The optimisation loop, checkpoints and logs."""

    #: Stereo pairs per step and per process (with torchrun N processes the effective batch is N times it);
    #: validation uses the same batch size.
    batch_size: int = 8
    #: Adam's initial learning rate (decayed at lr_milestones).
    learning_rate: float = 1e-4
    #: Total optimiser steps.
    max_steps: int = 20000
    #: The learning rate is multiplied by lr_gamma at each of these fractions of max_steps.
    lr_milestones: List[float] = field(default_factory=lambda: [0.75])
    lr_gamma: float = 0.1
    #: Gradient-norm clipping; <= 0 disables it.
    grad_clip: float = 0.0
    #: Seeds Python, NumPy and torch, the sample order and each step's augmentation (a resumed run sees the
    #: same batches as an uninterrupted one).
    seed: int = 0
    #: "auto" (CUDA when available), "cpu" or "cuda".
    device: str = "auto"
    #: Mixed precision (bfloat16/float16 autocast); used on CUDA only.
    amp: bool = True
    #: PyTorch CPU threads while training; 0 = PyTorch's default (one per core). On a CPU that other jobs
    #: share, fewer threads than cores avoid threads waiting on each other, which can slow steps severalfold.
    cpu_threads: int = 0
    #: Steps between checkpoints (RUN_DIR/last.pt; also written at the end and on Ctrl-C/SIGTERM).
    checkpoint_every: int = 500
    #: Steps between validations (val loss, and abs_rel where the val set has depth ground truth; the best
    #: one updates RUN_DIR/best.pt); also run at max_steps.
    val_every: int = 500
    #: Steps between log lines and TensorBoard scalars (means over those steps).
    log_every: int = 50
    #: Steps between TensorBoard image grids; <= 0 disables them.
    image_every: int = 500

    def validate(self, where: str) -> None:
        for key in ("batch_size", "max_steps", "checkpoint_every", "val_every", "log_every"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}.{key}: expected > 0, got {getattr(self, key)}")
        _positive(where, "learning_rate", self.learning_rate)
        if any(not 0.0 < m < 1.0 for m in self.lr_milestones):
            raise ConfigError(
                f"{where}.lr_milestones: expected fractions in (0, 1), got {self.lr_milestones}"
            )
        _positive(where, "lr_gamma", self.lr_gamma)
        _choice(where, "device", self.device, DEVICES)
        if self.cpu_threads < 0:
            raise ConfigError(
                f"{where}.cpu_threads: expected >= 0 (0 = PyTorch's default), got {self.cpu_threads}"
            )


@dataclass
class EvalConfig:
    """The evaluation protocol (METHOD.md, Evaluation)."""

    #: Ground-truth depths (metres) below this are ignored, and predictions are clamped up to it.
    min_depth: float = 1e-3
    #: Ground-truth depths (metres) above this are ignored, and predictions are clamped down to it.
    max_depth: float = 80.0
    #: Score only inside Garg's crop of the ground truth (rows 40.8-99.2 %, columns 3.6-96.4 %), as the
    #: KITTI Eigen protocol does.
    garg_crop: bool = True
    #: Scale each prediction by median(gt) / median(pred): for monocular-trained models only.
    median_scaling: bool = False

    def validate(self, where: str) -> None:
        _positive(where, "min_depth", self.min_depth)
        if self.max_depth <= self.min_depth:
            raise ConfigError(
                f"{where}.max_depth: expected > min_depth ({self.min_depth}), got {self.max_depth}"
            )


@dataclass
class InferenceConfig:
    """Running a trained model (DepthEstimator, ``fg-depth predict``, the ROS node)."""

    #: "auto" (the fastest available: tensorrt > onnxruntime on CUDA > onnxruntime on CPU for an .onnx; torch
    #: for a .pt; tensorrt for an .engine), "torch", "onnxruntime" or "tensorrt".
    backend: str = "auto"
    #: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    #: "fp32" or "fp16" (CUDA only: torch half, TensorRT, ONNX Runtime's TensorRT execution provider).
    precision: str = "fp32"
    #: CPU threads of torch / ONNX Runtime's intra-op pool; 0 keeps the library's default.
    threads: int = 0
    #: Folder of TensorRT engines and timing caches ('' = $XDG_CACHE_HOME/fg-depth/tensorrt, ~/.cache/...).
    cache_dir: str = ""
    #: TensorRT builder workspace limit, MiB.
    workspace_mb: int = 1024

    def validate(self, where: str) -> None:
        _choice(where, "backend", self.backend, INFERENCE_BACKENDS)
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", self.device):
            raise ConfigError(f"{where}.device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        _choice(where, "precision", self.precision, PRECISIONS)
        if self.threads < 0:
            raise ConfigError(f"{where}.threads: expected >= 0 (0 = library default), got {self.threads}")
        _positive(where, "workspace_mb", self.workspace_mb)


@dataclass
class Config:
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
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate(f"{where}.{f.name}")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- loading


def config_from_dict(data: Optional[Dict[str, Any]], source: str = "config") -> Config:
    """Build and validate a :class:`Config` from nested dicts (as read from YAML).

    Args:
        data: nested mapping; missing keys take their defaults, unknown keys are an error.
        source: what to call the input in error messages (a file name, say).
    """
    data = dict(data or {})
    loss = data.get("loss")
    if isinstance(loss, dict) and "preset" in loss and loss["preset"] != "custom":
        preset = loss["preset"]
        if preset not in LOSS_PRESETS:
            raise ConfigError(
                f"{source}: loss.preset: expected one of {sorted(LOSS_PRESETS)}, got {preset!r}"
            )
        data["loss"] = {**LOSS_PRESETS[preset], **loss}
    try:
        cfg = _build(Config, data, "")
        cfg.validate("")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {str(exc).lstrip('.')}") from None
    return cfg


def load_config(path: Union[str, os.PathLike, None] = None, overrides: Optional[List[str]] = None) -> Config:
    """Load a YAML config (the defaults when ``path`` is None), then apply ``key.sub=value`` overrides."""
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
    for item in overrides or []:
        apply_override(data, item)
    return config_from_dict(data, source)


def apply_override(data: Dict[str, Any], item: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to nested dict ``data`` in place."""
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


def _choice(where: str, key: str, value: Any, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}.{key}: expected one of {list(choices)}, got {value!r}")


def _positive(where: str, key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{where}.{key}: expected > 0, got {value}")
