"""Inference backends and the choice between them.

``backend="auto"`` takes the fastest one that is installed and can run the model file:
- .engine (TensorRT engine): tensorrt (needs TensorRT and CUDA);
- .onnx: tensorrt (TensorRT and CUDA; builds and caches an engine on first use) > onnxruntime on the GPU
  (its TensorRT or CUDA execution provider, CUDA present) > onnxruntime on the CPU;
- .pt (checkpoint or TorchScript): torch (CUDA when available);
- an int8 .onnx (``fg-depth export --quantize int8``): onnxruntime on the CPU; it is quantised for CPU
  kernels (uint8 activations with zero points, which TensorRT does not take), and on a GPU the float32
  .onnx is the model to run.
The openvino backend (optional package; .onnx, float32 or int8, on the CPU) runs only when asked for: it
measured faster than ONNX Runtime on an x86 CPU, but an installed package should not silently change which
runtime serves a model (docs/RESULTS.md, "Inference on CPU: OpenVINO against ONNX Runtime").
An explicitly requested backend that is missing, or that cannot run the file, is an error naming what to
install or do; only ``auto`` ever falls back. Which runtimes are present is probed when a backend is created
(:func:`probe_available`); the decision itself (:func:`select_backend`) is a pure function of that.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Iterable, Optional, Union

from fg_depth_core.config import INFERENCE_BACKENDS
from fg_depth_core.deploy.backends.base import (
    INSTALL_HINTS,
    Backend,
    BackendError,
    BackendUnavailableError,
    default_cache_dir,
    model_kind,
)
from fg_depth_core.deploy.cuda_probe import cuda_device_count

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Selection",
    "create_backend",
    "model_kind",
    "probe_available",
    "select_backend",
]

#: Capabilities :func:`probe_available` reports: the torch package, a usable CUDA device, the onnxruntime
#: package and its GPU execution providers, the tensorrt package, the openvino package.
TORCH, CUDA, ORT, ORT_CUDA, ORT_TENSORRT, TENSORRT, OPENVINO = (
    "torch", "cuda", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "openvino"
)  # fmt: skip

#: Which backends run which model kinds, and what to tell someone who asks for another combination.
RUNS = {"torch": ("torch",), "onnxruntime": ("onnx",), "tensorrt": ("onnx", "engine"), "openvino": ("onnx",)}
_KIND_NAMES = {
    "torch": "a PyTorch checkpoint/TorchScript",
    "onnx": "an ONNX model",
    "engine": "a TensorRT engine",
}


@dataclass(frozen=True)
class Selection:
    """A backend and the device it will run on ("cpu", "cuda" or "cuda:N")."""

    backend: str
    device: str


def probe_available(cuda: bool = True, torch_cuda: bool = False) -> FrozenSet[str]:
    """What is installed and usable here (see the capability names above).

    ``cuda=False`` skips the CUDA probe. The probe asks the CUDA driver (fg_depth_core.deploy.cuda_probe), so
    an ONNX or TensorRT model never loads torch for it; ``torch_cuda=True`` asks torch instead, which is
    what counts for a PyTorch model (a CPU build of torch cannot use the GPU the driver sees).
    """
    found = set()
    if importlib.util.find_spec("torch") is not None:
        found.add(TORCH)
    if importlib.util.find_spec("openvino") is not None:  # found, not imported: that costs a second
        found.add(OPENVINO)
    try:
        import onnxruntime

        found.add(ORT)
        providers = set(onnxruntime.get_available_providers())
        if "CUDAExecutionProvider" in providers:
            found.add(ORT_CUDA)
        if "TensorrtExecutionProvider" in providers:
            found.add(ORT_TENSORRT)
    except ImportError:
        pass
    try:
        import tensorrt  # noqa: F401

        found.add(TENSORRT)
    except ImportError:
        pass
    if cuda:
        if torch_cuda:
            usable = TORCH in found and _torch_cuda()
        else:
            usable = cuda_device_count() > 0
        if usable:
            found.add(CUDA)
    return frozenset(found)


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cannot_run(backend: str, kind: str, path: str) -> str:
    if kind == "torch":
        return (
            f"{path}: backend {backend} cannot run {_KIND_NAMES[kind]}; export it first with "
            f"fg-depth export --checkpoint {path} --format onnx (or --format tensorrt), or use backend torch"
        )
    if kind == "engine":
        return f"{path}: backend {backend} cannot run {_KIND_NAMES[kind]}; engines run only with tensorrt"
    return (
        f"{path}: backend {backend} cannot run {_KIND_NAMES[kind]}; use backend onnxruntime or tensorrt, "
        "or give it the training checkpoint (.pt)"
    )


def select_backend(
    requested: str,
    device: str,
    kind: str,
    available: Iterable[str],
    path: str = "model",
    quantization: str = "none",
) -> Selection:
    """The backend and device for a model of ``kind`` ("torch", "onnx", "engine") given ``available``
    capabilities; ``requested`` is a backend name or "auto", ``device`` "auto", "cpu", "cuda" or "cuda:N";
    ``quantization`` is the model's (ModelInfo.quantization): an int8 model runs on the CPU only.

    Raises BackendError for a combination that cannot work and BackendUnavailableError (naming what to
    install) for a missing runtime; never falls back unless ``requested == "auto"``.
    """
    have = frozenset(available)
    if requested not in INFERENCE_BACKENDS:
        raise BackendError(f"backend: expected one of {list(INFERENCE_BACKENDS)}, got {requested!r}")
    if device != "auto" and device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise BackendError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    if quantization == "int8":
        return _select_int8(requested, device, kind, have, path)
    if device.startswith("cuda") and CUDA not in have:
        raise BackendUnavailableError(f"device {device}: {INSTALL_HINTS['cuda']}")
    gpu = device if device.startswith("cuda") else "cuda"
    ort_gpu = ORT in have and bool({ORT_CUDA, ORT_TENSORRT} & have) and CUDA in have

    if requested == "auto":
        if kind == "torch":
            requested = "torch"
        elif kind == "engine":
            requested = "tensorrt"
        elif device != "cpu" and TENSORRT in have and CUDA in have:
            return Selection("tensorrt", gpu)
        elif device != "cpu" and ort_gpu:
            return Selection("onnxruntime", gpu)
        elif device in ("auto", "cpu") and ORT in have:
            return Selection("onnxruntime", "cpu")
        elif device.startswith("cuda"):
            raise BackendUnavailableError(
                f"{path}: no installed backend runs {_KIND_NAMES[kind]} on {device}: "
                f"{INSTALL_HINTS['onnxruntime-gpu']}; or {INSTALL_HINTS['tensorrt']}"
            )
        else:
            raise BackendUnavailableError(
                f"{path}: no installed backend runs {_KIND_NAMES[kind]}: {INSTALL_HINTS['onnxruntime']}; or "
                f"{INSTALL_HINTS['tensorrt']}"
            )

    if kind not in RUNS[requested]:
        raise BackendError(_cannot_run(requested, kind, path))
    if requested == "torch":
        if TORCH not in have:
            raise BackendUnavailableError("backend torch: PyTorch is not installed: pip install torch")
        return Selection("torch", ("cuda" if CUDA in have else "cpu") if device == "auto" else device)
    if requested == "onnxruntime":
        if ORT not in have:
            raise BackendUnavailableError(
                f"backend onnxruntime is not installed: {INSTALL_HINTS['onnxruntime']}"
            )
        if device.startswith("cuda") and not ort_gpu:
            raise BackendUnavailableError(
                f"backend onnxruntime on {device}: this ONNX Runtime has no CUDA or TensorRT execution "
                f"provider; {INSTALL_HINTS['onnxruntime-gpu']}"
            )
        return Selection("onnxruntime", (gpu if ort_gpu else "cpu") if device == "auto" else device)
    if requested == "openvino":
        return _select_openvino(device, have)
    # tensorrt
    if TENSORRT not in have:
        raise BackendUnavailableError(f"backend tensorrt is not installed: {INSTALL_HINTS['tensorrt']}")
    if device == "cpu":
        raise BackendError("backend tensorrt runs on CUDA devices only, got device 'cpu'")
    if CUDA not in have:
        raise BackendUnavailableError(f"backend tensorrt: {INSTALL_HINTS['cuda']}")
    return Selection("tensorrt", gpu)


def _select_openvino(device: str, have: FrozenSet[str]) -> Selection:
    if OPENVINO not in have:
        raise BackendUnavailableError(f"backend openvino is not installed: {INSTALL_HINTS['openvino']}")
    if device.startswith("cuda"):
        raise BackendError(f"backend openvino runs on the CPU here, got device {device!r}")
    return Selection("openvino", "cpu")


def _select_int8(requested: str, device: str, kind: str, have: FrozenSet[str], path: str) -> Selection:
    """An int8 .onnx: openvino or onnxruntime on the CPU, or an error saying what to run instead."""
    if requested not in ("auto", "onnxruntime", "openvino"):
        if kind not in RUNS[requested]:
            raise BackendError(_cannot_run(requested, kind, path))
        raise BackendError(
            f"{path}: an int8 model is quantised for CPUs and runs with backend onnxruntime or openvino on "
            f"device cpu; for {requested} on a GPU export the float32 model (fg-depth export without "
            "--quantize)"
        )
    if device.startswith("cuda"):
        raise BackendError(
            f"{path}: an int8 model is quantised for CPUs (uint8 activations, which TensorRT does not take) "
            f"and runs on device cpu, not {device}; on a GPU run the float32 model (fg-depth export without "
            "--quantize), or a TensorRT engine in fp16"
        )
    if requested == "openvino":
        return _select_openvino(device, have)
    if ORT not in have:
        raise BackendUnavailableError(
            f"{path}: an int8 model runs with onnxruntime: {INSTALL_HINTS['onnxruntime']}"
        )
    return Selection("onnxruntime", "cpu")


def model_quantization(path: Path) -> str:
    """The quantization an .onnx file's metadata states; "none" also when the onnx package that reads it is
    missing (a runtime with only onnxruntime then selects as for a float model) and for a file it cannot
    read (the backend that loads it says what is wrong)."""
    from fg_depth_core.deploy.model_info import ModelInfoError
    from fg_depth_core.deploy.onnx_io import read_onnx_info

    try:
        return read_onnx_info(path).quantization
    except (ImportError, ModelInfoError):
        return "none"


def create_backend(
    path: Union[str, Path],
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    threads: int = 0,
    cache_dir: Optional[Union[str, Path]] = None,
    workspace_bytes: int = 1 << 30,
) -> Backend:
    """Load ``path`` with the selected backend (see :func:`select_backend`); ``cache_dir`` None or '' means
    :func:`default_cache_dir` (TensorRT engines, the TensorRT execution provider's caches)."""
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"{path}: model file not found")
    kind = model_kind(path)
    have = probe_available(cuda=False)
    quantization = "none"
    gpu_runtimes = bool({TENSORRT, ORT_CUDA, ORT_TENSORRT} & have)
    if device != "cpu" and (kind == "torch" or gpu_runtimes):
        have = probe_available(cuda=True, torch_cuda=kind == "torch")
    if kind == "onnx" and (
        backend == "tensorrt" or (device != "cpu" and (gpu_runtimes or device.startswith("cuda")))
    ):
        # Only where a GPU path could be chosen: reading the file costs time and memory (the onnx package).
        quantization = model_quantization(path)
    choice = select_backend(backend, device, kind, have, str(path), quantization)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if choice.backend == "torch":
        from fg_depth_core.deploy.backends.torch_backend import TorchBackend

        return TorchBackend(path, choice.device, precision, threads)
    if choice.backend == "openvino":
        from fg_depth_core.deploy.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(path, choice.device, precision, threads)
    if choice.backend == "onnxruntime":
        from fg_depth_core.deploy.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, choice.device, precision, threads, cache, workspace_bytes)
    from fg_depth_core.deploy.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(path, choice.device, precision, cache, workspace_bytes)
