"""The ONNX Runtime backend: an exported .onnx on the CPU, CUDA or TensorRT execution providers.

On CUDA the TensorRT execution provider comes first when ONNX Runtime has it (it builds a TensorRT engine per
model at session start and caches it, with its timing cache, under the cache folder), then the CUDA provider,
then the CPU provider for any node the GPU providers do not take. The session always runs with every graph
optimisation (ORT_ENABLE_ALL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.deploy.backends.base import (
    INSTALL_HINTS,
    Backend,
    BackendError,
    BackendUnavailableError,
    check_precision,
    cuda_device_index,
)
from fg_depth_core.deploy.model_info import INPUT_NAME, OUTPUT_NAME, ModelInfo

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

ProviderList = List[Tuple[str, Dict[str, str]]]


def ort_providers(
    device: str,
    precision: str,
    available: Sequence[str],
    cache_dir: Optional[Union[str, Path]] = None,
    workspace_bytes: int = 1 << 30,
) -> ProviderList:
    """Execution providers with their options, in priority order, for ``device`` ("cpu", "cuda", "cuda:N").

    ``available`` is what ``onnxruntime.get_available_providers()`` lists. fp16 needs the TensorRT provider
    (its ``trt_fp16_enable``); the CUDA provider runs the model's own (fp32) precision.
    """
    check_precision(precision, device, "onnxruntime")
    if device == "cpu":
        return [(CPU, {})]
    index = str(cuda_device_index(device, "onnxruntime"))
    providers: ProviderList = []
    if TENSORRT in available:
        # The engine and timing caches depend on the precision: one folder each, so fp32 and fp16 coexist.
        cache = str(Path(cache_dir) / "onnxruntime" / precision) if cache_dir else ""
        options = {
            "device_id": index,
            "trt_fp16_enable": "True" if precision == "fp16" else "False",
            "trt_max_workspace_size": str(int(workspace_bytes)),
            "trt_engine_cache_enable": "True" if cache else "False",
            "trt_timing_cache_enable": "True" if cache else "False",
        }
        if cache:
            options["trt_engine_cache_path"] = cache
            options["trt_timing_cache_path"] = cache
        providers.append((TENSORRT, options))
    elif precision == "fp16":
        raise BackendUnavailableError(
            "onnxruntime: precision fp16 needs the TensorRT execution provider, which this ONNX Runtime "
            f"lacks (it has {list(available)}); use fp32, or the torch or tensorrt backend for fp16"
        )
    if CUDA in available:
        providers.append((CUDA, {"device_id": index}))
    if not providers:
        raise BackendUnavailableError(
            f"onnxruntime: device {device!r} needs the CUDA or TensorRT execution provider; this ONNX "
            f"Runtime has only {list(available)}: {INSTALL_HINTS['onnxruntime-gpu']}"
        )
    providers.append((CPU, {}))
    return providers


def import_onnxruntime():
    """The onnxruntime module, or BackendUnavailableError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailableError(
            f"backend onnxruntime is not installed: {INSTALL_HINTS['onnxruntime']}"
        ) from None
    return onnxruntime


class OnnxRuntimeBackend(Backend):
    """An .onnx exported by ``fg-depth export`` in an ONNX Runtime session.

    Args:
        path: the .onnx model (its metadata gives input size, depth range and training camera).
        device: "cpu", "cuda" or "cuda:N".
        precision: "fp32", or "fp16" through the TensorRT execution provider.
        threads: intra-op threads; 0 keeps ONNX Runtime's default (one per physical core).
        cache_dir: folder for the TensorRT execution provider's engine and timing caches (None: no cache).
        workspace_bytes: the TensorRT execution provider's workspace limit.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: Union[str, Path],
        device: str = "cpu",
        precision: str = "fp32",
        threads: int = 0,
        cache_dir: Optional[Union[str, Path]] = None,
        workspace_bytes: int = 1 << 30,
    ) -> None:
        ort = import_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path}: model file not found")
        providers = ort_providers(
            device, precision, ort.get_available_providers(), cache_dir, workspace_bytes
        )
        for _, options in providers:
            for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
                if key in options:
                    Path(options[key]).mkdir(parents=True, exist_ok=True)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if device == "cpu":
            # The memory pattern pre-plans one block for all of a run's intermediate tensors on top of the
            # arena: for a DepthNet at 640x192 it held 33-48 MiB more for no measurable speed (interleaved
            # runs on 2 cores), memory a robot's node cannot spare (bench/node_memory.py).
            so.enable_mem_pattern = False
        if threads > 0:
            so.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path),
                sess_options=so,
                providers=[name for name, _ in providers],
                provider_options=[options for _, options in providers],
            )
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise BackendError(
                f"{path}: not a readable ONNX model (ONNX Runtime: {type(exc).__name__}: {exc})"
            ) from None
        # The metadata from the session, not from onnx.load: parsing the file again in Python would hold a
        # second copy of the weights (and the onnx package) in memory for the model's lifetime.
        info = ModelInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map, source=str(path))
        super().__init__(info, device, precision)
        # ORT falls back to the CPU when a GPU provider fails to initialise (missing CUDA libraries): refuse
        # that, since the caller asked for the GPU.
        if providers[0][0] not in self.session.get_providers():
            raise BackendUnavailableError(
                f"onnxruntime: {providers[0][0]} failed to initialise for device {device!r} (ONNX Runtime "
                f"fell back to {self.session.get_providers()}); check the CUDA/cuDNN/TensorRT libraries that "
                "onnxruntime-gpu needs"
            )
        self.providers = self.session.get_providers()
        self.batch_limit = _check_io(self.session, info, path)
        self.source = path

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def _check_io(session, info, path: Path) -> Optional[int]:
    """Check the session's input/output names and input size; the fixed batch size, or None if dynamic."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise BackendError(
            f"{path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, got inputs {sorted(inputs)} "
            f"and outputs {outputs}: export the model with fg-depth export"
        )
    shape = list(inputs[INPUT_NAME].shape)
    if len(shape) != 4:
        raise BackendError(f"{path}: input {INPUT_NAME!r} has shape {shape}, expected (B,3,H,W)")
    expected = [3, info.height, info.width]
    for got, want, what in zip(shape[1:], expected, ("channels", "height", "width")):
        if isinstance(got, int) and got != want:
            raise BackendError(
                f"{path}: input {what} is {got} but the metadata says {want} (input {shape}, metadata "
                f"{info.width}x{info.height})"
            )
    return shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
