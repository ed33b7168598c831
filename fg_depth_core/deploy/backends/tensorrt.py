"""The native TensorRT backend (TensorRT >= 10 Python API, no pycuda): run engines on PyTorch CUDA tensors.

- A TensorRT engine (.engine/.plan/.trt) runs with the ``<engine>.json`` that deploy/tensorrt_build.py writes
  beside it.
- An .onnx is built into an engine on first use (:func:`fg_depth_core.deploy.tensorrt_build.build_engine`)
  and kept in a cache folder under a key made of the ONNX content hash, the TensorRT version, the GPU name and
  the precision (:func:`engine_cache_key`): an engine only runs on the TensorRT version and GPU it was built
  for.
- Inference: ``set_input_shape`` / ``set_tensor_address`` on torch tensors, ``execute_async_v3`` on torch's
  current CUDA stream.

``tensorrt`` and ``torch`` are imported lazily: the pure functions here run without them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from fg_depth_core.config import PRECISIONS
from fg_depth_core.deploy.backends.base import (
    INSTALL_HINTS,
    Backend,
    BackendError,
    BackendUnavailableError,
    check_precision,
    default_cache_dir,
    model_kind,
)
from fg_depth_core.deploy.model_info import INPUT_NAME, OUTPUT_NAME, ModelInfo
from fg_depth_core.deploy.tensorrt_build import (
    build_engine,
    engine_info_path,
    import_tensorrt,
    onnx_sha256,
    read_engine_info,
    trt_logger,
)


def engine_cache_key(onnx: Union[bytes, str], trt_version: str, gpu_name: str, precision: str) -> str:
    """A file-name-safe key of an engine: changes with the ONNX content (bytes or their hex SHA-256), the
    TensorRT version, the GPU name and the precision, and only with them."""
    if precision not in PRECISIONS:
        raise BackendError(f"tensorrt: precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if not str(trt_version).strip() or not str(gpu_name).strip():
        raise BackendError(
            "tensorrt: the engine key needs a TensorRT version and a GPU name, "
            f"got {trt_version!r}, {gpu_name!r}"
        )
    parts = [onnx_sha256(onnx), str(trt_version).strip(), str(gpu_name).strip(), precision]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24] + "-" + precision


def timing_cache_name(trt_version: str, gpu_name: str) -> str:
    """File name of the timing cache shared by every build for one TensorRT version and GPU."""

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "_", str(text).strip()).strip("_")

    return f"timing-{slug(trt_version)}-{slug(gpu_name)}.cache"


def engine_batch_limit(
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    info: ModelInfo,
    profile_max: Optional[Sequence[int]] = None,
    source: str = "engine",
) -> int:
    """Check an engine's I/O shapes (-1 = dynamic) against ``info``; the largest batch it takes.

    input (B,3,H,W) and output (B,1,H,W) with H, W = info's network size; a dynamic B needs the optimisation
    profile's max shape ``profile_max``.
    """
    input_shape, output_shape = [int(v) for v in input_shape], [int(v) for v in output_shape]
    h, w = info.height, info.width
    if len(input_shape) != 4 or input_shape[1:] != [3, h, w]:
        raise BackendError(f"{source}: input {INPUT_NAME!r} has shape {input_shape}, expected (B,3,{h},{w})")
    if len(output_shape) != 4 or any(o not in (-1, e) for o, e in zip(output_shape[1:], (1, h, w))):
        raise BackendError(
            f"{source}: output {OUTPUT_NAME!r} has shape {output_shape}, expected (B,1,{h},{w})"
        )
    if input_shape[0] > 0:
        return input_shape[0]
    if profile_max is None or len(profile_max) != 4 or int(profile_max[0]) < 1:
        raise BackendError(
            f"{source}: dynamic batch without an optimisation profile (max shape {profile_max})"
        )
    return int(profile_max[0])


class TensorRTBackend(Backend):
    """A TensorRT engine (.engine with its .json), or an .onnx built into a cached engine on first use.

    Args:
        path: .engine/.plan/.trt (precision as built) or .onnx (built at ``precision`` into ``cache_dir``).
        device: "cuda" or "cuda:N".
        cache_dir: engine and timing cache folder (default: :func:`default_cache_dir`).
        workspace_bytes: the builder's workspace limit.
    """

    name = "tensorrt"

    def __init__(
        self,
        path: Union[str, Path],
        device: str = "cuda",
        precision: str = "fp32",
        cache_dir: Optional[Union[str, Path]] = None,
        workspace_bytes: int = 1 << 30,
    ) -> None:
        import torch

        trt = import_tensorrt()
        check_precision(precision, device, self.name)
        if not torch.cuda.is_available():
            raise BackendUnavailableError(f"backend tensorrt: {INSTALL_HINTS['cuda']}")
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path}: model file not found")
        self.torch_device = torch.device(device)
        source = path
        if model_kind(path) == "onnx":
            path = self._cached_engine(
                trt, path, precision, Path(cache_dir or default_cache_dir()), workspace_bytes
            )
        info, record = read_engine_info(path)
        super().__init__(info, device, record["precision"])
        with torch.cuda.device(self.torch_device):
            self.logger = trt_logger(trt)  # kept alive as long as the runtime that logs to it
            self.runtime = trt.Runtime(self.logger)
            self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                raise BackendError(
                    f"{path}: TensorRT {trt.__version__} cannot load this engine (built with TensorRT "
                    f"{record.get('tensorrt_version')} or for another GPU?); rebuild it from the .onnx"
                )
            self.context = self.engine.create_execution_context()
            # A stream of our own: TensorRT warns that the legacy default stream costs extra synchronisation.
            self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if INPUT_NAME not in names or OUTPUT_NAME not in names:
            raise BackendError(f"{path}: expected tensors {INPUT_NAME!r} and {OUTPUT_NAME!r}, got {names}")
        input_shape = tuple(self.engine.get_tensor_shape(INPUT_NAME))
        profile_max = None
        if input_shape[0] < 0:
            profile_max = tuple(self.engine.get_tensor_profile_shape(INPUT_NAME, 0)[2])
        self.batch_limit = engine_batch_limit(
            input_shape, tuple(self.engine.get_tensor_shape(OUTPUT_NAME)), info, profile_max, str(path)
        )
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        try:
            self.input_dtype = dtypes[self.engine.get_tensor_dtype(INPUT_NAME)]
            self.output_dtype = dtypes[self.engine.get_tensor_dtype(OUTPUT_NAME)]
        except KeyError as exc:
            raise BackendError(f"{path}: unsupported I/O data type {exc}") from None
        self.engine_path = path
        self.source = source

    def _cached_engine(
        self, trt, onnx_path: Path, precision: str, cache_dir: Path, workspace_bytes: int
    ) -> Path:
        import torch

        gpu = torch.cuda.get_device_name(self.torch_device)
        key = engine_cache_key(onnx_path.read_bytes(), trt.__version__, gpu, precision)
        engine = cache_dir / f"{onnx_path.stem}-{key}.engine"
        if not (engine.is_file() and engine_info_path(engine).is_file()):
            with torch.cuda.device(self.torch_device):  # the builder times tactics on the current device
                build_engine(
                    onnx_path,
                    engine,
                    precision,
                    workspace_bytes,
                    cache_dir / timing_cache_name(trt.__version__, gpu),
                )
        return engine

    def run_tensor(self, image: "Any") -> "Any":
        """Depth (B,1,H,W) as a CUDA tensor from a (B,3,H,W) float tensor in [0, 1] (B <= batch_limit).

        Runs on the backend's stream, made torch's current stream (after the caller's current stream, so a
        tensor produced there is complete), and waits for it: the result is ready on return.
        """
        import torch

        with torch.cuda.device(self.torch_device):
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                return self._run_on_current_stream(image)

    def _run_on_current_stream(self, image: "Any") -> "Any":
        import torch

        stream = torch.cuda.current_stream()
        x = image.to(self.torch_device, self.input_dtype).contiguous()
        if not self.context.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise BackendError(f"tensorrt: input shape {tuple(x.shape)} is outside the engine's profile")
        shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))
        out = torch.empty(shape, dtype=self.output_dtype, device=self.torch_device)
        self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError("tensorrt: execute_async_v3 failed (see TensorRT's log)")
        stream.synchronize()  # x must outlive the execution, and the caller gets a finished result
        return out

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        return self.run_tensor(torch.from_numpy(batch)).float().cpu().numpy()
