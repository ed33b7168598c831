"""Building blocks of the DepthNet: input normalisation, the ResNet encoder and the decoder's conv blocks.

Shapes: images (B,3,H,W) RGB float in [0, 1]; feature maps (B,C,H/2^k,W/2^k).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from fg_depth_core.config import INPUT_MULTIPLE, MIN_INPUT_SIZE  # noqa: F401 (re-exported)

# ImageNet statistics (RGB, for images in [0, 1]) that torchvision's pretrained ResNets were trained with.
# They belong to the encoder's weights, not to the method, so they are not a config option; keeping the
# normalisation inside the network lets exported models take plain [0, 1] images.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Channels of the encoder's five feature maps (strides 2, 4, 8, 16, 32) for each torchvision ResNet.
ENCODER_CHANNELS = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
}


class ImageNormalize(nn.Module):
    """(x - mean) / std per channel for RGB images in [0, 1], (B,3,H,W) -> (B,3,H,W)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        # Non-persistent: they follow .to(device) but stay out of checkpoints (they are not learnt).
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1), False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1), False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std


def make_resnet(name: str) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet (``resnet18``, ``resnet34`` or ``resnet50``); no download."""
    if name not in ENCODER_CHANNELS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODER_CHANNELS)}")
    return getattr(torchvision.models, name)(weights=None)


class ResnetEncoder(nn.Module):
    """The convolutional trunk of a torchvision ResNet, returning its five feature maps.

    Submodule names match torchvision's (``conv1``, ``bn1``, ``layer1`` ... ``layer4``), so the encoder's
    state dict is the torchvision state dict without ``fc.*``. Input: normalised image (B,3,H,W); output:
    [(B,C_k,H/2^(k+1),W/2^(k+1)) for k in 0..4] with C_k = ``num_channels[k]``.
    """

    def __init__(self, resnet: torchvision.models.ResNet, num_channels: Sequence[int]) -> None:
        super().__init__()
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.num_channels = tuple(num_channels)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


class Conv3x3(nn.Module):
    """3x3 convolution with reflection padding (no border artefacts in depth), same spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 followed by ELU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling, (B,C,H,W) -> (B,C,2H,2W)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
