"""The PyTorch backend: a training checkpoint or a TorchScript file, on CPU or CUDA, fp32 or fp16 (CUDA only).

A TorchScript file written by :func:`save_torchscript` carries its ModelInfo as the extra file
``fg_depth_info.json`` (the same key/value pairs as an ONNX model's metadata), so it needs nothing beside it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Union

import numpy as np
import torch

from fg_depth_core.deploy.backends.base import Backend, BackendError, check_precision
from fg_depth_core.deploy.model_info import ModelInfo, ModelInfoError

#: Name of the extra file holding ModelInfo.to_metadata() inside a TorchScript archive.
INFO_EXTRA_FILE = "fg_depth_info.json"


def is_torchscript(path: Union[str, Path]) -> bool:
    """True for a TorchScript archive (it holds compiled ``code/``), False for a torch.save checkpoint."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def save_torchscript(checkpoint: Union[str, Path], out: Union[str, Path]) -> ModelInfo:
    """Trace a checkpoint's DepthNet (full-resolution depth only) at its input size into TorchScript
    ``out``; returns the ModelInfo stored with it."""
    from fg_depth_core.model import DepthNetExport
    from fg_depth_core.model.checkpoint import load_model

    net, _, state = load_model(checkpoint, "cpu")
    info = ModelInfo.from_checkpoint(state)
    example = torch.rand(1, 3, info.height, info.width)
    with torch.no_grad():
        traced = torch.jit.trace(DepthNetExport(net).eval(), example)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(out), _extra_files={INFO_EXTRA_FILE: json.dumps(info.to_metadata())})
    return info


class TorchBackend(Backend):
    """Eager PyTorch (checkpoint) or TorchScript, under ``torch.inference_mode``.

    Args:
        path: a checkpoint written by training (.pt) or a TorchScript file from :func:`save_torchscript`.
        device: "cpu", "cuda" or "cuda:N".
        precision: "fp32", or "fp16" on CUDA (weights and activations in half; input/output stay float32).
        threads: torch's intra-op CPU threads (process-wide); 0 keeps torch's default.
    """

    name = "torch"

    def __init__(
        self, path: Union[str, Path], device: str = "cpu", precision: str = "fp32", threads: int = 0
    ) -> None:
        check_precision(precision, device, self.name)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"torch backend: device {device!r} asked for, but CUDA is not available here")
        if threads > 0:
            torch.set_num_threads(threads)
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path}: model file not found")
        self.torchscript = is_torchscript(path)
        module, info = _load_torchscript(path) if self.torchscript else _load_checkpoint(path)
        super().__init__(info, device, precision)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.module = module.to(device=device, dtype=self.dtype).eval()
        self.source = path

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, self.dtype, non_blocking=False)
        with torch.inference_mode():
            depth = self.module(x)
        return depth.float().cpu().numpy()


def _load_checkpoint(path: Path):
    from fg_depth_core.model import DepthNetExport
    from fg_depth_core.model.checkpoint import load_model

    net, _, state = load_model(path, "cpu")
    return DepthNetExport(net).eval(), ModelInfo.from_checkpoint(state)


def _load_torchscript(path: Path):
    extra = {INFO_EXTRA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError and friends for a damaged archive
        raise BackendError(f"{path}: not a loadable TorchScript file ({type(exc).__name__}: {exc})") from None
    if not extra[INFO_EXTRA_FILE]:
        raise ModelInfoError(
            f"{path}: TorchScript without fg-depth metadata (extra file {INFO_EXTRA_FILE!r}); write it with "
            "fg_depth_core.deploy.backends.torch_backend.save_torchscript"
        )
    try:
        props = json.loads(extra[INFO_EXTRA_FILE])
    except ValueError:
        raise ModelInfoError(f"{path}: extra file {INFO_EXTRA_FILE!r} is not JSON") from None
    return module, ModelInfo.from_metadata(props, str(path))
