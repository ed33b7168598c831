"""The Backend interface: one forward pass of an exported or trained DepthNet, whatever runs it.

A backend takes a float32 batch (B,3,H,W) of RGB in [0, 1] at the network input size (``info.width`` x
``info.height``) and returns metric depth (B,1,H,W) float32 metres. Pre- and post-processing (resizing, focal
scaling) are not its business: deploy/estimator.py does them once for all backends.
"""

from __future__ import annotations

import abc
import os
import re
from pathlib import Path
from typing import Optional, Union

import numpy as np

from fg_depth_core.config import PRECISIONS
from fg_depth_core.deploy.model_info import ModelInfo
from fg_depth_core.errors import FgDepthError

#: Model kinds by file suffix: a training checkpoint or TorchScript file, an ONNX model, a TensorRT engine.
MODEL_SUFFIXES = {
    ".pt": "torch",
    ".pth": "torch",
    ".ckpt": "torch",
    ".onnx": "onnx",
    ".engine": "engine",
    ".plan": "engine",
    ".trt": "engine",
}

#: What to install for each optional runtime (shown whenever one is asked for and missing).
INSTALL_HINTS = {
    "onnxruntime": "install ONNX Runtime: pip install onnxruntime (CPU), or onnxruntime-gpu for the CUDA and "
    "TensorRT execution providers",
    "onnxruntime-gpu": "install onnxruntime-gpu (it provides the CUDA and TensorRT execution providers; "
    "uninstall the CPU-only onnxruntime first) and an NVIDIA driver",
    "tensorrt": "install TensorRT's Python bindings: pip install tensorrt (the wheel matching your CUDA "
    "version, e.g. tensorrt-cu12), or on Jetson JetPack's python3-libnvinfer (apt)",
    "openvino": "install the OpenVINO runtime: pip install openvino (or the extra: pip install "
    "'fg_depth_ros[openvino]')",
    "cuda": "it needs an NVIDIA GPU with a working driver, and for a PyTorch model a CUDA build of PyTorch "
    "(no usable CUDA device was found here)",
}


def default_cache_dir() -> Path:
    """Where TensorRT engines and timing caches go by default: $XDG_CACHE_HOME/fg-depth/tensorrt."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fg-depth" / "tensorrt"


class BackendError(FgDepthError):
    """A backend cannot load or run a model; the message names the model, the backend and what to do."""


class BackendUnavailableError(BackendError):
    """The requested backend (or device) is not installed or usable here; the message says what to install."""


def cuda_device_index(device: str, backend: str) -> int:
    """The CUDA device ordinal of "cuda" (0) or "cuda:N" (N); another device is refused, naming
    ``backend``."""
    match = re.fullmatch(r"cuda(?::(\d+))?", str(device))
    if not match:
        raise BackendError(f"backend {backend}: device must be cuda or cuda:N, got {device!r}")
    return int(match.group(1) or 0)


def model_kind(path: Union[str, Path]) -> str:
    """The kind of a model file by its suffix: "torch" (.pt/.pth/.ckpt: checkpoint or TorchScript), "onnx"
    (.onnx) or "engine" (.engine/.plan/.trt)."""
    suffix = Path(path).suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise BackendError(
            f"{path}: unknown model file type {suffix or '(no suffix)'!r}; expected a checkpoint or "
            "TorchScript (.pt, .pth, .ckpt), an ONNX model (.onnx) or an engine (.engine, .plan, .trt)"
        )
    return MODEL_SUFFIXES[suffix]


def check_precision(precision: str, device: str, backend: str) -> None:
    """fp16 runs on CUDA only (CPU kernels in half precision are slow or missing)."""
    if precision not in PRECISIONS:
        raise BackendError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and not device.startswith("cuda"):
        raise BackendError(
            f"precision fp16 with backend {backend} needs a CUDA device, got device {device!r}; "
            "use fp32 on CPU"
        )


class Backend(abc.ABC):
    """One loaded model on one device.

    Attributes:
        name: "torch", "onnxruntime" or "tensorrt".
        device: "cpu", "cuda" or "cuda:N".
        precision: "fp32" or "fp16" (the arithmetic; inputs and outputs are float32 either way).
        info: input size, depth range and training camera of the model.
        batch_limit: largest batch one call of the runtime takes (None: any); :meth:`forward` splits larger
            batches.
    """

    name: str = "backend"

    def __init__(self, info: ModelInfo, device: str, precision: str = "fp32") -> None:
        self.info = info
        self.device = device
        self.precision = precision
        self.batch_limit: Optional[int] = None
        #: The model file it was loaded from (None when built in memory).
        self.source: Optional[Path] = None

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Depth (B,1,H,W) float32 metres from RGB (B,3,H,W) float32 in [0, 1] at the network input size."""
        self.check_batch(batch)
        limit = self.batch_limit or len(batch)
        parts = [
            self._forward(np.ascontiguousarray(batch[i : i + limit])) for i in range(0, len(batch), limit)
        ]
        depth = parts[0] if len(parts) == 1 else np.concatenate(parts)
        expected = (len(batch), 1, self.info.height, self.info.width)
        if depth.shape != expected:
            raise BackendError(
                f"{self.name} backend: the model returned shape {depth.shape}, expected {expected} "
                "(B,1,H,W): not an fg-depth DepthNet export?"
            )
        return depth.astype(np.float32, copy=False)

    @abc.abstractmethod
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """The runtime's forward pass on at most ``batch_limit`` images; returns (B,1,H,W)."""

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise BackendError unless ``batch`` is float32 (B,3,H,W) at the network size, B >= 1."""
        expected = (3, self.info.height, self.info.width)
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            got = tuple(batch.shape) if isinstance(batch, np.ndarray) else type(batch).__name__
            raise BackendError(
                f"{self.name} backend: expected a batch (B,{expected[0]},{expected[1]},{expected[2]}) at the "
                f"network input size {self.info.width}x{self.info.height}, got {got}"
            )
        if batch.dtype != np.float32 or len(batch) == 0:
            raise BackendError(
                f"{self.name} backend: expected a non-empty float32 batch, got {len(batch)} images of "
                f"{batch.dtype}"
            )

    def __repr__(self) -> str:
        quantized = f", quantization={self.info.quantization!r}" if self.info.quantization != "none" else ""
        return (
            f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r}{quantized}, "
            f"input={self.info.width}x{self.info.height})"
        )
