"""DepthNet: ResNet encoder + Monodepth2-style decoder predicting metric depth at several scales.

Input: RGB image (B,3,H,W) float in [0, 1], H and W multiples of 32 (the ImageNet normalisation happens
inside). Output in training: metric depth (metres) [(B,1,H/2^s,W/2^s) for s in range(num_scales)], each a
sigmoid disparity mapped into [min_depth, max_depth] (docs/METHOD.md, "Depth mapping"). For deployment,
:meth:`DepthNet.predict` and :class:`DepthNetExport` give only the full-resolution depth (B,1,H,W).

Encoder weights (``ModelConfig.encoder_weights``) never come from the network: "none" is a random init,
"imagenet" reads torchvision's file from torch's hub cache, anything else is a path to a state-dict file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn
import torchvision

from fg_depth_core.config import ModelConfig
from fg_depth_core.errors import FgDepthError
from fg_depth_core.model.layers import (
    ENCODER_CHANNELS,
    INPUT_MULTIPLE,
    MIN_INPUT_SIZE,
    Conv3x3,
    ConvBlock,
    ImageNormalize,
    ResnetEncoder,
    make_resnet,
    upsample2,
)

# Decoder widths per level (level k works at 1/2^k of the input): Monodepth2's architecture. Changing them
# changes the checkpoint format, so they are a property of the network, not a tunable.
DECODER_CHANNELS = (16, 32, 64, 128, 256)

# torchvision weight enums per encoder, in order of preference: the first file present in the hub cache wins.
_IMAGENET_WEIGHTS = {
    "resnet18": ("ResNet18_Weights", ("IMAGENET1K_V1",)),
    "resnet34": ("ResNet34_Weights", ("IMAGENET1K_V1",)),
    "resnet50": ("ResNet50_Weights", ("IMAGENET1K_V1", "IMAGENET1K_V2")),
}

# Keys a state-dict file may nest the weights under (training checkpoints of common frameworks).
_NESTED_KEYS = ("state_dict", "model")
_DATA_PARALLEL_PREFIX = "module."


class ModelError(FgDepthError, ValueError):
    """The DepthNet cannot be built or run: missing/corrupt weights, wrong input shape."""


# ------------------------------------------------------------------------------------------- depth mapping


def sigmoid_to_depth(sigmoid: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Metric depth (metres) from a sigmoid output in [0, 1], any shape.

    disp = 1/max_depth + (1/min_depth - 1/max_depth) * sigmoid, depth = 1/disp: sigmoid 0 -> max_depth,
    sigmoid 1 -> min_depth, strictly decreasing in between.
    """
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    return 1.0 / (min_disp + (max_disp - min_disp) * sigmoid)


def depth_to_sigmoid(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Inverse of :func:`sigmoid_to_depth`: the sigmoid of a depth (m); in [0, 1] for depths in range."""
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    return (1.0 / depth - min_disp) / (max_disp - min_disp)


# ----------------------------------------------------------------------------------------------- weights


def imagenet_weights_candidates(encoder: str) -> List[Tuple[str, Path]]:
    """(url, expected cache path) of torchvision's ImageNet weights for ``encoder``, preferred first.

    The cache path is ``torch.hub.get_dir()/checkpoints/<basename of url>``, where torchvision itself would
    store the download (``TORCH_HOME`` moves it).
    """
    enum_name, members = _IMAGENET_WEIGHTS[encoder]
    enum = getattr(torchvision.models, enum_name)
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    out = []
    for member in members:
        url = getattr(enum, member).url
        out.append((url, checkpoints / os.path.basename(url)))
    return out


def imagenet_weights_path(encoder: str) -> Path:
    """Path of the cached ImageNet weights of ``encoder``; ModelError saying how to provide them if absent."""
    candidates = imagenet_weights_candidates(encoder)
    for _, path in candidates:
        if path.is_file():
            return path
    url, path = candidates[0]
    raise ModelError(
        f"model.encoder_weights='imagenet': torchvision's ImageNet weights for {encoder} are not in torch's "
        f"hub cache: missing file {path}. fg-depth never downloads. Copy {path.name} (published at {url}) "
        f"into {path.parent} (or point TORCH_HOME at a directory whose hub/checkpoints holds it), or set "
        f"model.encoder_weights to the file's path, or to 'none' for a random init."
    )


def read_encoder_state(path: os.PathLike, resnet: nn.Module) -> Dict[str, torch.Tensor]:
    """Read a torchvision-ResNet state dict from ``path`` and check it against ``resnet``.

    Accepts a plain state dict or one nested under "state_dict"/"model"; strips a "module." prefix
    (DataParallel); drops ``fc.*`` (the classifier is not used). Raises ModelError naming the file for a
    missing, unreadable or mismatched file. BatchNorm's ``num_batches_tracked`` may be absent.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(
            f"model.encoder_weights: file not found: {path} (expected 'none', 'imagenet' or a file path)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails in many ways (pickle, zip, EOF): all mean a bad file
        raise ModelError(f"{path}: cannot read encoder weights ({type(exc).__name__}: {exc})") from None
    for key in _NESTED_KEYS:
        if isinstance(data, Mapping) and key in data and isinstance(data[key], Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping):
        raise ModelError(
            f"{path}: expected a state dict (a mapping of names to tensors), got {type(data).__name__}"
        )
    state: Dict[str, torch.Tensor] = {}
    for key, value in data.items():
        key = str(key)
        if key.startswith(_DATA_PARALLEL_PREFIX):
            key = key[len(_DATA_PARALLEL_PREFIX):]
        if key.startswith("fc."):
            continue
        state[key] = value
    expected = {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        raise ModelError(
            f"{path}: keys do not match a torchvision {type(resnet).__name__} "
            f"({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]})"
        )
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != expected[key].shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ModelError(
                f"{path}: {key} has shape {got}, expected {tuple(expected[key].shape)} "
                f"(weights of a different encoder?)"
            )
    return state


def load_encoder_weights(resnet: nn.Module, spec: str, encoder: str) -> None:
    """Fill ``resnet`` (a torchvision ResNet) from ``spec``: "none", "imagenet" or a file path. No network."""
    if spec == "none":
        return
    path = imagenet_weights_path(encoder) if spec == "imagenet" else Path(spec)
    state = read_encoder_state(path, resnet)
    resnet.load_state_dict(state, strict=False)


# ----------------------------------------------------------------------------------------------- network


def check_input(image: torch.Tensor) -> None:
    """Raise ModelError unless ``image`` is (B,3,H,W) with H and W multiples of 32 and at least 64."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ModelError(f"DepthNet input: expected an RGB batch (B,3,H,W), got shape {tuple(image.shape)}")
    h, w = int(image.shape[2]), int(image.shape[3])
    if h % INPUT_MULTIPLE or w % INPUT_MULTIPLE or h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
        def fit(side: int) -> int:
            return max(MIN_INPUT_SIZE, side // INPUT_MULTIPLE * INPUT_MULTIPLE)

        raise ModelError(
            f"DepthNet input: height and width must be multiples of {INPUT_MULTIPLE} and at least "
            f"{MIN_INPUT_SIZE}, got {h}x{w} (HxW); resize or crop the image, e.g. to {fit(h)}x{fit(w)}"
        )


def _autocast_enabled(device_type: str) -> bool:
    """True inside a torch.autocast region for ``device_type`` ("cpu", "cuda", ...)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())


def full_precision(like: torch.Tensor) -> "contextlib.AbstractContextManager[None]":
    """A context in which ops on ``like``'s device run in float32 even inside autocast (nothing otherwise).

    The heads, sigmoid and depth mapping run in it: in bfloat16 (8 mantissa bits) the sigmoid's output
    would step by 2^-9 around its 0.009 start and the depth, an inverse of it, by 2-3 %: a handful of
    distinct depths per image, which would erase the sub-pixel detail the distillation teaches.
    """
    if _autocast_enabled(like.device.type):
        return torch.autocast(device_type=like.device.type, enabled=False)
    return contextlib.nullcontext()


def _is_tracing() -> bool:
    """True while torch.jit / torch.export / torch.compile trace the model (shapes may be symbolic)."""
    compiler = getattr(torch, "compiler", None)
    is_compiling = getattr(compiler, "is_compiling", None)
    return torch.jit.is_tracing() or bool(is_compiling and is_compiling())


class DepthDecoder(nn.Module):
    """Monodepth2-style decoder: per level, conv, 2x upsample, concat the encoder skip, conv; sigmoid heads.

    ``forward(features, num_outputs)`` takes the encoder's five maps and returns the sigmoid disparities
    [(B,1,H/2^s,W/2^s) for s in range(num_outputs)], num_outputs <= num_scales, always float32: under
    autocast the heads and the sigmoid run in full precision (:func:`full_precision`).
    """

    def __init__(
        self, encoder_channels: Sequence[int], num_scales: int, channels: Sequence[int] = DECODER_CHANNELS
    ) -> None:
        super().__init__()
        levels = len(channels)
        self.num_scales = num_scales
        self.upconv0 = nn.ModuleList()
        self.upconv1 = nn.ModuleList()
        # Built from the coarsest level (1/32 -> 1/16) down to level 0 (1/2 -> full resolution).
        for level in reversed(range(levels)):
            in_ch = encoder_channels[-1] if level == levels - 1 else channels[level + 1]
            skip = encoder_channels[level - 1] if level > 0 else 0
            self.upconv0.append(ConvBlock(in_ch, channels[level]))
            self.upconv1.append(ConvBlock(channels[level] + skip, channels[level]))
        self.heads = nn.ModuleList(Conv3x3(channels[s], 1) for s in range(num_scales))

    def forward(self, features: List[torch.Tensor], num_outputs: int) -> List[torch.Tensor]:
        levels = len(self.upconv0)
        x = features[-1]
        outputs: Dict[int, torch.Tensor] = {}
        for i, (conv0, conv1) in enumerate(zip(self.upconv0, self.upconv1)):
            level = levels - 1 - i
            x = upsample2(conv0(x))
            if level > 0:
                x = torch.cat([x, features[level - 1]], dim=1)
            x = conv1(x)
            if level < num_outputs:
                # The convolutions before may run in reduced precision; the heads never do.
                with full_precision(x):
                    outputs[level] = torch.sigmoid(self.heads[level](x.float()))
        return [outputs[s] for s in range(num_outputs)]


class DepthNet(nn.Module):
    """Monocular metric-depth network (docs/METHOD.md, "DepthNet").

    Args:
        cfg: encoder, encoder weights, depth range and number of scales.
        load_weights: when False the encoder stays randomly initialised whatever ``cfg.encoder_weights``
            says: use it when a full DepthNet state dict (a checkpoint) is loaded right after.
    """

    def __init__(self, cfg: ModelConfig, load_weights: bool = True) -> None:
        super().__init__()
        cfg.validate("model")
        self.cfg = cfg
        self.min_depth = float(cfg.min_depth)
        self.max_depth = float(cfg.max_depth)
        self.num_scales = int(cfg.num_scales)
        resnet = make_resnet(cfg.encoder)
        if load_weights:
            load_encoder_weights(resnet, cfg.encoder_weights, cfg.encoder)
        channels = ENCODER_CHANNELS[cfg.encoder]
        self.normalize = ImageNormalize()
        self.encoder = ResnetEncoder(resnet, channels)
        self.decoder = DepthDecoder(channels, self.num_scales)
        if cfg.init_depth:
            start = depth_to_sigmoid(torch.tensor(float(cfg.init_depth)), self.min_depth, self.max_depth)
            with torch.no_grad():
                for head in self.decoder.heads:
                    head.conv.bias.fill_(float(torch.logit(start)))

    def _sigmoids(self, image: torch.Tensor, num_outputs: int) -> List[torch.Tensor]:
        if not _is_tracing():
            check_input(image)
        return self.decoder(self.encoder(self.normalize(image)), num_outputs)

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        """Depth (m) [(B,1,H/2^s,W/2^s) for s in range(num_scales)] from an image (B,3,H,W) in [0, 1]."""
        sigmoids = self._sigmoids(image, self.num_scales)
        with full_precision(image):
            return [sigmoid_to_depth(s.float(), self.min_depth, self.max_depth) for s in sigmoids]

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """Full-resolution depth (m) (B,1,H,W) only; skips the coarser heads."""
        sigmoid = self._sigmoids(image, 1)[0]
        with full_precision(image):
            return sigmoid_to_depth(sigmoid.float(), self.min_depth, self.max_depth)


class DepthNetExport(nn.Module):
    """Single-output deployment wrapper: (B,3,H,W) RGB in [0,1] -> depth (m) (B,1,H,W). For ONNX/TensorRT."""

    def __init__(self, net: DepthNet) -> None:
        super().__init__()
        self.net = net
        # A fresh module starts in training mode; exporters restore the wrapper's mode on exit, which would
        # silently switch the wrapped net's BatchNorm back to training. Inherit the net's mode instead.
        self.train(net.training)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.predict(image)


def build_depthnet(cfg: ModelConfig, load_weights: bool = True) -> DepthNet:
    """A :class:`DepthNet` for ``cfg`` (see its ``load_weights``)."""
    return DepthNet(cfg, load_weights=load_weights)
