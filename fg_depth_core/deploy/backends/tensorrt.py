"""The native TensorRT backend (TensorRT >= 10 Python API, no pycuda, no torch): run engines on buffers of
the CUDA runtime (deploy/cuda_runtime.py).

- A TensorRT engine (.engine/.plan/.trt) runs with the ``<engine>.json`` that deploy/tensorrt_build.py writes
  beside it.
- An .onnx is built into an engine on first use (:func:`fg_depth_core.deploy.tensorrt_build.build_engine`)
  and kept in a cache folder under a key made of the ONNX content hash, the TensorRT version, the GPU name and
  the precision (:func:`engine_cache_key`): an engine only runs on the TensorRT version and GPU it was built
  for.
- Inference on numpy (:meth:`TensorRTBackend.forward`): the batch is converted to the engine's input type
  (float32 or float16) in page-locked host memory, copied to the device, run with ``set_input_shape`` /
  ``set_tensor_address`` / ``execute_async_v3`` on the backend's own stream, and copied back; the result is
  float32. Host and device buffers are made for the largest batch seen so far and reused.
- :meth:`TensorRTBackend.run_tensor` serves callers that hold CUDA tensors already (PyTorch); only it imports
  torch.

``tensorrt`` is imported when a backend is created: the pure functions here run without it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.config import PRECISIONS
from fg_depth_core.deploy.backends.base import (
    INSTALL_HINTS,
    Backend,
    BackendError,
    BackendUnavailableError,
    check_precision,
    cuda_device_index,
    default_cache_dir,
    model_kind,
)
from fg_depth_core.deploy.cuda_runtime import CudaError, CudaRuntime
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


@dataclass
class _Buffers:
    """Device and page-locked host memory for up to ``batch`` images: input and output of the engine."""

    batch: int
    input_bytes: int  # per image
    output_bytes: int  # per image
    device_input: int = 0
    device_output: int = 0
    host_input: int = 0
    host_output: int = 0


class TensorRTBackend(Backend):
    """A TensorRT engine (.engine with its .json), or an .onnx built into a cached engine on first use.

    Args:
        path: .engine/.plan/.trt (precision as built) or .onnx (built at ``precision`` into ``cache_dir``).
        device: "cuda" or "cuda:N".
        cache_dir: engine and timing cache folder (default: :func:`default_cache_dir`).
        workspace_bytes: the builder's workspace limit.

    Holds device memory and a CUDA stream until :meth:`close` (or garbage collection). One call runs at a
    time (a lock): an execution context and its buffers serve one inference at once.
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
        self._stream: Optional[int] = None
        self._buffers: Optional[_Buffers] = None
        self._lock = threading.Lock()
        trt = import_tensorrt()
        check_precision(precision, device, self.name)
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path}: model file not found")
        self.device_index = cuda_device_index(device, "tensorrt")
        self.cuda = self._open_device(device)
        source = path
        if model_kind(path) == "onnx":
            path = self._cached_engine(
                trt, path, precision, Path(cache_dir or default_cache_dir()), workspace_bytes
            )
        info, record = read_engine_info(path)
        super().__init__(info, device, record["precision"])
        self.logger = trt_logger(trt)  # kept alive as long as the runtime that logs to it
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendError(
                f"{path}: TensorRT {trt.__version__} cannot load this engine (built with TensorRT "
                f"{record.get('tensorrt_version')} or for another GPU?); rebuild it from the .onnx"
            )
        self.context = self.engine.create_execution_context()
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
        dtypes = {trt.DataType.FLOAT: np.dtype(np.float32), trt.DataType.HALF: np.dtype(np.float16)}
        try:
            # numpy types of the engine's input and output. fg-depth's engines keep float32 I/O at either
            # precision; one built elsewhere may take or give float16, converted on the host.
            self.input_dtype = dtypes[self.engine.get_tensor_dtype(INPUT_NAME)]
            self.output_dtype = dtypes[self.engine.get_tensor_dtype(OUTPUT_NAME)]
        except KeyError as exc:
            raise BackendError(f"{path}: unsupported I/O data type {exc}") from None
        # A stream of our own: TensorRT warns that the legacy default stream costs extra synchronisation.
        self._stream = self.cuda.stream_create()
        self.engine_path = path
        self.source = source

    def _open_device(self, device: str) -> CudaRuntime:
        """The CUDA runtime with ``device_index`` current, or BackendUnavailableError/BackendError saying why
        the device is unusable."""
        try:
            cuda = CudaRuntime.load()
            count = cuda.device_count()
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(f"backend tensorrt: {exc}") from None
        except CudaError as exc:
            raise BackendUnavailableError(f"backend tensorrt: {INSTALL_HINTS['cuda']} ({exc})") from None
        if count == 0:
            raise BackendUnavailableError(f"backend tensorrt: {INSTALL_HINTS['cuda']}")
        if self.device_index >= count:
            raise BackendError(
                f"backend tensorrt: device {device} does not exist; CUDA sees {count} device(s)"
            )
        # The builder, the engine and the context use the current device.
        cuda.set_device(self.device_index)
        return cuda

    def _cached_engine(
        self, trt, onnx_path: Path, precision: str, cache_dir: Path, workspace_bytes: int
    ) -> Path:
        gpu = self.cuda.device_name(self.device_index)
        key = engine_cache_key(onnx_path.read_bytes(), trt.__version__, gpu, precision)
        engine = cache_dir / f"{onnx_path.stem}-{key}.engine"
        if not (engine.is_file() and engine_info_path(engine).is_file()):
            build_engine(
                onnx_path,
                engine,
                precision,
                workspace_bytes,
                cache_dir / timing_cache_name(trt.__version__, gpu),
            )
        return engine

    # ------------------------------------------------------------------------------------------ numpy

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            stream = self._open_stream()
            self.cuda.set_device(self.device_index)  # CUDA's current device is per thread
            out_shape = self._set_input_shape(batch.shape)
            buffers = self._reserve(len(batch), out_shape)
            host_input = CudaRuntime.host_array(buffers.host_input, batch.shape, self.input_dtype)
            host_output = CudaRuntime.host_array(buffers.host_output, out_shape, self.output_dtype)
            np.copyto(host_input, batch, casting="same_kind")  # float32 -> the engine's type
            self.cuda.copy_to_device(buffers.device_input, host_input, stream)
            self._execute(buffers.device_input, buffers.device_output, stream)
            self.cuda.copy_to_host(host_output, buffers.device_output, stream)
            self.cuda.stream_synchronize(stream)
            return host_output.astype(np.float32)  # a copy: the next call overwrites the buffer

    def _open_stream(self) -> int:
        if self._stream is None:
            raise BackendError("tensorrt backend: it was closed")
        return self._stream

    def _set_input_shape(self, shape: Sequence[int]) -> Tuple[int, ...]:
        """Set the input shape of the context; the output shape that follows from it."""
        shape = tuple(int(v) for v in shape)
        if not self.context.set_input_shape(INPUT_NAME, shape):
            raise BackendError(f"tensorrt: input shape {shape} is outside the engine's profile")
        out_shape = tuple(int(v) for v in self.context.get_tensor_shape(OUTPUT_NAME))
        if len(out_shape) != 4 or out_shape[0] != shape[0] or min(out_shape) < 1:
            raise BackendError(f"tensorrt: for input {shape} the engine gives output shape {out_shape}")
        return out_shape

    def _execute(self, input_address: int, output_address: int, stream: int) -> None:
        self.context.set_tensor_address(INPUT_NAME, input_address)
        self.context.set_tensor_address(OUTPUT_NAME, output_address)
        if not self.context.execute_async_v3(stream):
            raise BackendError("tensorrt: execute_async_v3 failed (see TensorRT's log)")

    def _reserve(self, batch: int, out_shape: Tuple[int, ...]) -> _Buffers:
        """Buffers for ``batch`` images: those held when they are large enough, else new ones in their place.

        They grow to the largest batch seen and never shrink: freeing device memory waits for the whole
        device, which a caller alternating batch sizes would otherwise pay on every call.
        """
        input_bytes = 3 * self.info.height * self.info.width * self.input_dtype.itemsize
        output_bytes = int(np.prod(out_shape[1:])) * self.output_dtype.itemsize
        held = self._buffers
        if (
            held
            and held.batch >= batch
            and held.input_bytes == input_bytes
            and held.output_bytes == output_bytes
        ):
            return held
        self._release_buffers()
        buffers = _Buffers(batch, input_bytes, output_bytes)
        try:
            buffers.device_input = self.cuda.malloc(batch * input_bytes)
            buffers.device_output = self.cuda.malloc(batch * output_bytes)
            buffers.host_input = self.cuda.malloc_host(batch * input_bytes)
            buffers.host_output = self.cuda.malloc_host(batch * output_bytes)
        except CudaError:
            self._free(buffers)
            raise
        self._buffers = buffers
        return buffers

    def _free(self, buffers: _Buffers) -> None:
        for pointer, free in [
            (buffers.device_input, self.cuda.free),
            (buffers.device_output, self.cuda.free),
            (buffers.host_input, self.cuda.free_host),
            (buffers.host_output, self.cuda.free_host),
        ]:
            if pointer:
                free(pointer)

    def _release_buffers(self) -> None:
        buffers, self._buffers = self._buffers, None
        if buffers is not None:
            self._free(buffers)

    def close(self) -> None:
        """Free the buffers and the stream and drop the engine; the backend runs nothing afterwards."""
        with self._lock:
            try:
                self._release_buffers()
            finally:
                stream, self._stream = self._stream, None
                # The context before its engine, the engine before its runtime.
                for name in ("context", "engine", "runtime"):
                    if hasattr(self, name):
                        setattr(self, name, None)
                if stream is not None:
                    self.cuda.stream_destroy(stream)

    def __del__(self) -> None:
        try:
            if getattr(self, "_lock", None) is not None:
                self.close()
        except Exception:  # at interpreter exit CUDA may be gone already; nothing is left to free then
            pass

    # ------------------------------------------------------------------------------------------ torch

    def run_tensor(self, image: "Any") -> "Any":
        """Depth (B,1,H,W) as a CUDA tensor of the engine's output type from a (B,3,H,W) float tensor in
        [0, 1] (B <= batch_limit), for callers that hold torch tensors (the only path that imports torch).

        Runs on the backend's stream after the caller's current stream (so a tensor produced there is
        complete), and waits for it: the result is ready on return.
        """
        import torch

        dtypes = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}
        device = torch.device("cuda", self.device_index)
        with self._lock, torch.cuda.device(device):
            stream = torch.cuda.ExternalStream(self._open_stream(), device=device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                x = image.to(device, dtypes[self.input_dtype]).contiguous()
                out_shape = self._set_input_shape(tuple(x.shape))
                out = torch.empty(out_shape, dtype=dtypes[self.output_dtype], device=device)
                self._execute(x.data_ptr(), out.data_ptr(), stream.cuda_stream)
            stream.synchronize()  # x must outlive the execution, and the caller gets a finished result
            return out
