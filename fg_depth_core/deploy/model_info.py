"""What a runtime needs to know about a trained DepthNet, stored inside every exported model.

An exported .onnx file carries these fields as ONNX metadata_props (keys prefixed ``fg_depth.``), so the file
alone is enough to run the node; a TensorRT engine keeps them in a JSON file beside it (``<engine>.json``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

from fg_depth_core import __version__
from fg_depth_core.errors import FgDepthError

#: Tensor names of exported models: input (B,3,H,W) float RGB in [0, 1]; output (B,1,H,W) float metres.
INPUT_NAME = "image"
OUTPUT_NAME = "depth"
#: The input convention: the ImageNet normalisation happens inside the model.
NORMALIZATION = "rgb_float_0_1_nchw"
METADATA_PREFIX = "fg_depth."
#: How the weights and activations of an exported model are stored: "none" (float32) or "int8" (ONNX Runtime
#: static QDQ quantisation: per-channel int8 weights, uint8 activations; deploy/quantize.py).
QUANTIZATIONS = ("none", "int8")


class ModelInfoError(FgDepthError):
    """An exported model lacks fg-depth metadata or carries invalid values; the message names the model."""


@dataclass(frozen=True)
class ModelInfo:
    """Input size (pixels), depth range and training camera of a DepthNet.

    train_focal: focal length in pixels at the network input size (width x height) of the training camera;
    train_baseline: its stereo baseline in metres. Depth on another camera scales by f' / train_focal.
    quantization: one of :data:`QUANTIZATIONS`; "int8" marks a model quantised for the CPU.
    """

    width: int
    height: int
    min_depth: float
    max_depth: float
    train_focal: float
    train_baseline: float
    normalization: str = NORMALIZATION
    version: str = __version__
    quantization: str = "none"
    config: Dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ModelInfoError(f"input size must be positive, got {self.width}x{self.height}")
        if not 0 < self.min_depth < self.max_depth:
            raise ModelInfoError(
                f"depth range must satisfy 0 < min < max, got {self.min_depth}..{self.max_depth}"
            )
        if not (self.train_focal > 0 and self.train_baseline > 0):
            raise ModelInfoError(
                "training camera must have focal > 0 and baseline > 0, "
                f"got {self.train_focal}, {self.train_baseline}"
            )
        if self.quantization not in QUANTIZATIONS:
            raise ModelInfoError(
                f"quantization must be one of {list(QUANTIZATIONS)}, got {self.quantization!r}"
            )

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> "ModelInfo":
        """From a training checkpoint dict (see fg_depth_core.model.checkpoint)."""
        width, height = (int(v) for v in state["input_size"])
        model = state["config"]["model"]
        return cls(
            width=width,
            height=height,
            min_depth=float(model["min_depth"]),
            max_depth=float(model["max_depth"]),
            train_focal=float(state["train_focal"]),
            train_baseline=float(state["train_baseline"]),
            config=dict(state["config"]),
        )

    def to_metadata(self) -> Dict[str, str]:
        """String key/value pairs for ONNX metadata_props."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[METADATA_PREFIX + f.name] = json.dumps(value) if f.name == "config" else str(value)
        return out

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str = "model") -> "ModelInfo":
        """Parse what :meth:`to_metadata` wrote; ``source`` names the model in errors."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: Dict[str, Any] = {}
        for name, f in fields.items():
            key = METADATA_PREFIX + name
            if key not in props:
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    continue
                raise ModelInfoError(
                    f"{source}: not an fg-depth model: metadata {key!r} is missing "
                    "(export it with fg-depth export)"
                )
            raw = props[key]
            try:
                if name == "config":
                    values[name] = json.loads(raw)
                elif name in ("width", "height"):
                    values[name] = int(raw)
                elif name in ("normalization", "version", "quantization"):
                    values[name] = raw
                else:
                    values[name] = float(raw)
            except ValueError:
                raise ModelInfoError(f"{source}: metadata {key!r} is not valid: {raw!r}") from None
        try:
            return cls(**values)
        except ModelInfoError as exc:
            raise ModelInfoError(f"{source}: {exc}") from None
