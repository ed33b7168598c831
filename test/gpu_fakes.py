"""Stand-ins for the two system edges of the TensorRT backend that this machine and CI lack: the CUDA runtime
library (libcudart, as ctypes loads it) and TensorRT's engine runtime. They check what the callers hand them
the way the real ones would fail (unknown pointers, too-small buffers, unknown streams, shapes outside the
profile) and run asynchronous work only when its stream is synchronised. Imports neither torch nor
tensorrt, so a torch-free child process can use them.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

#: cudaError_t -> (name, explanation), as cudaGetErrorName / cudaGetErrorString report them.
ERRORS = {
    0: ("cudaSuccess", "no error"),
    1: ("cudaErrorInvalidValue", "invalid argument"),
    2: ("cudaErrorMemoryAllocation", "out of memory"),
    35: ("cudaErrorInsufficientDriver", "CUDA driver version is insufficient for CUDA runtime version"),
    100: ("cudaErrorNoDevice", "no CUDA-capable device is detected"),
    101: ("cudaErrorInvalidDevice", "invalid device ordinal"),
    400: ("cudaErrorInvalidResourceHandle", "invalid resource handle"),
    700: ("cudaErrorIllegalAddress", "an illegal memory access was encountered"),
}
INVALID_VALUE, INVALID_DEVICE, INVALID_HANDLE = 1, 101, 400
#: First fake device address (device memory is not host memory: these addresses are never dereferenced).
DEVICE_BASE = 0x7F00_0000_0000


def _plain(arg: Any) -> Any:
    """A call argument as recorded: the value of a ctypes scalar, "&" for an output pointer."""
    if isinstance(arg, (ctypes.c_int, ctypes.c_uint, ctypes.c_size_t, ctypes.c_void_p)):
        return arg.value
    return "&"


class _Symbol:
    """One exported function of the fake library: records each call; takes ``restype`` like a ctypes one."""

    def __init__(self, owner: "FakeCudart", name: str, impl: Callable[..., int]) -> None:
        self.owner, self.name, self.impl = owner, name, impl
        self.restype: Any = ctypes.c_int

    def __call__(self, *args: Any) -> Any:
        self.owner.calls.append((self.name, tuple(_plain(a) for a in args)))
        status = self.owner.fail.pop(self.name, None)  # an injected failure hits the next call only
        if status is not None:
            return status
        return self.impl(*args)


class FakeCudart:
    """libcudart with ``devices`` GPUs named ``"Fake GPU <i>"``. Device memory lives in a dict of numpy
    buffers under made-up addresses; page-locked host memory is real numpy memory at its real address.

    Attributes:
        calls: (function, plain arguments) of every call, in order.
        fail: function name -> cudaError_t that its next call returns instead of doing its work.
        copies: (direction, host memory was page-locked, bytes) of every copy when it ran.
    """

    def __init__(
        self,
        devices: int = 1,
        count_status: int = 0,
        runtime_version: int = 12060,
        driver_version: int = 12080,
    ) -> None:
        self.devices, self.count_status = devices, count_status
        self.runtime_version, self.driver_version = runtime_version, driver_version
        self.device: Dict[int, np.ndarray] = {}
        self.pinned: Dict[int, np.ndarray] = {}
        self.streams: Dict[int, List[Callable[[], None]]] = {}
        self.stream_flags: Dict[int, int] = {}
        self.calls: List[Tuple[str, tuple]] = []
        self.fail: Dict[str, int] = {}
        self.copies: List[Tuple[str, bool, int]] = []
        self._thread = threading.local()  # CUDA's current device is per thread (0 until set)
        self._next = DEVICE_BASE
        for name in dir(type(self)):
            if name.startswith("cuda"):
                setattr(self, name, _Symbol(self, name, getattr(self, name)))

    # ----------------------------------------------------------------------------------- inspection

    @property
    def current_device(self) -> int:
        return getattr(self._thread, "device", 0)

    def called(self, name: str) -> List[tuple]:
        """Arguments of every call of ``name``."""
        return [args for function, args in self.calls if function == name]

    def held(self) -> Dict[str, int]:
        """What is still allocated: device buffers, page-locked buffers, streams."""
        return {"device": len(self.device), "pinned": len(self.pinned), "streams": len(self.streams)}

    def locate(
        self, table: Dict[int, np.ndarray], address: Optional[int], nbytes: int
    ) -> Optional[np.ndarray]:
        """The ``nbytes`` at ``address`` inside one allocation of ``table``; None when they are not."""
        for base, buffer in table.items():
            if address is not None and base <= address and address + nbytes <= base + buffer.nbytes:
                return buffer[address - base : address - base + nbytes]
        return None

    def enqueue(self, stream: Optional[int], work: Callable[[], None]) -> bool:
        """Add work to a stream (False for an unknown stream); it runs when the stream is synchronised."""
        if stream not in self.streams:
            return False
        self.streams[stream].append(work)
        return True

    # ------------------------------------------------------------------------------ the functions

    def cudaGetErrorName(self, status):
        return ERRORS.get(status.value, ("cudaErrorUnknown", ""))[0].encode()

    def cudaGetErrorString(self, status):
        return ERRORS.get(status.value, ("", "unknown error"))[1].encode()

    def cudaRuntimeGetVersion(self, out):
        out._obj.value = self.runtime_version
        return 0

    def cudaDriverGetVersion(self, out):
        out._obj.value = self.driver_version
        return 0

    def cudaGetDeviceCount(self, out):
        if self.count_status:
            return self.count_status
        out._obj.value = self.devices
        return 0

    def cudaSetDevice(self, index):
        if not 0 <= index.value < self.devices:
            return INVALID_DEVICE
        self._thread.device = index.value
        return 0

    def cudaGetDeviceProperties(self, props, index):
        if not 0 <= index.value < self.devices:
            return INVALID_DEVICE
        props.value = f"Fake GPU {index.value}".encode()
        return 0

    def cudaMalloc(self, out, nbytes):
        address = self._next
        self._next += (nbytes.value + 255) // 256 * 256 + 256
        self.device[address] = np.zeros(nbytes.value, np.uint8)
        out._obj.value = address
        return 0

    def cudaFree(self, pointer):
        return 0 if self.device.pop(pointer.value, None) is not None else INVALID_VALUE

    def cudaMallocHost(self, out, nbytes):
        buffer = np.zeros(nbytes.value, np.uint8)
        self.pinned[buffer.ctypes.data] = buffer
        out._obj.value = buffer.ctypes.data
        return 0

    def cudaFreeHost(self, pointer):
        return 0 if self.pinned.pop(pointer.value, None) is not None else INVALID_VALUE

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        n = nbytes.value
        device_address, host_address = (dst.value, src.value) if kind.value == 1 else (src.value, dst.value)
        device = self.locate(self.device, device_address, n)
        if device is None or not host_address or kind.value not in (1, 2):
            return INVALID_VALUE
        pinned = self.locate(self.pinned, host_address, n) is not None

        def copy() -> None:  # reads and writes the memory when the stream gets to it, as the GPU does
            if kind.value == 1:
                device[:] = np.frombuffer(ctypes.string_at(host_address, n), np.uint8)
            else:
                ctypes.memmove(host_address, device.ctypes.data, n)
            self.copies.append(("to device" if kind.value == 1 else "to host", pinned, n))

        return 0 if self.enqueue(stream.value, copy) else INVALID_HANDLE

    def cudaStreamCreateWithFlags(self, out, flags):
        handle = 0x5000 + len(self.stream_flags) + 1
        self.streams[handle] = []
        self.stream_flags[handle] = flags.value
        out._obj.value = handle
        return 0

    def cudaStreamSynchronize(self, stream):
        if stream.value not in self.streams:
            return INVALID_HANDLE
        work, self.streams[stream.value] = self.streams[stream.value], []
        for step in work:
            step()
        return 0

    def cudaStreamDestroy(self, stream):
        return 0 if self.streams.pop(stream.value, None) is not None else INVALID_HANDLE


def fake_depth(x: np.ndarray) -> np.ndarray:
    """The fake engine's network: (B,3,H,W) -> (B,1,H,W), 1 + 2 R + G - B, computed in float32."""
    x = x.astype(np.float32)
    return 1.0 + 2.0 * x[:, 0:1] + x[:, 1:2] - x[:, 2:3]


class FakeTensorRTRuntime:
    """Just enough of the tensorrt module to load and run an fg-depth engine on :class:`FakeCudart` memory.

    The engine (file content ``ENGINE_BYTES``) has input "image" (B,3,H,W) and output "depth" (B,1,H,W) of
    ``io_type`` ("FLOAT" or "HALF"), B fixed (``batch`` > 0) or dynamic up to ``max_batch``; it computes
    :func:`fake_depth`. Running records, per call: the input shape set, the tensor addresses, the stream and
    the current CUDA device.
    """

    ENGINE_BYTES = b"fake serialized engine"
    __version__ = "10.13.0.35"

    class DataType:
        FLOAT, HALF, INT8 = "FLOAT", "HALF", "INT8"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    def __init__(
        self,
        cudart: FakeCudart,
        height: int,
        width: int,
        batch: int = -1,
        max_batch: int = 4,
        io_type: str = "FLOAT",
    ) -> None:
        self.runs: List[Dict[str, Any]] = []
        self.input_shapes: List[tuple] = []
        self.contexts: List[Any] = []
        fake = self
        numpy_type = {"FLOAT": np.float32, "HALF": np.float16}.get(io_type)

        class Context:
            def __init__(self) -> None:
                self.shape: Optional[tuple] = None
                self.addresses: Dict[str, int] = {}

            def set_input_shape(self, name, shape):
                shape = tuple(shape)
                fake.input_shapes.append(shape)
                limit = max_batch if batch < 0 else batch
                ok = name == "image" and shape[1:] == (3, height, width)
                ok = ok and (1 <= shape[0] <= limit if batch < 0 else shape[0] == batch)
                if ok:
                    self.shape = shape
                return ok

            def get_tensor_shape(self, name):
                b = self.shape[0] if self.shape else -1
                return (b, 3, height, width) if name == "image" else (b, 1, height, width)

            def set_tensor_address(self, name, address):
                self.addresses[name] = int(address)
                return True

            def execute_async_v3(self, stream):
                b = self.shape[0]
                item = np.dtype(numpy_type).itemsize
                src = cudart.locate(cudart.device, self.addresses.get("image"), b * 3 * height * width * item)
                dst = cudart.locate(cudart.device, self.addresses.get("depth"), b * height * width * item)
                if src is None or dst is None:
                    return False
                fake.runs.append({
                    "shape": self.shape, "addresses": dict(self.addresses), "stream": stream,
                    "device": cudart.current_device,
                })  # fmt: skip

                def run() -> None:
                    x = src.view(numpy_type).reshape(b, 3, height, width)
                    dst.view(numpy_type)[:] = fake_depth(x).astype(numpy_type).reshape(-1)

                return cudart.enqueue(stream, run)

        class Engine:
            num_io_tensors = 2

            def get_tensor_name(self, index):
                return ("image", "depth")[index]

            def get_tensor_shape(self, name):
                return (batch, 3, height, width) if name == "image" else (batch, 1, height, width)

            def get_tensor_profile_shape(self, name, profile):
                one = (1, 3, height, width)
                return [one, one, (max_batch, 3, height, width)]

            def get_tensor_dtype(self, name):
                return io_type

            def create_execution_context(self):
                context = Context()
                fake.contexts.append(context)
                return context

        class Runtime:
            def __init__(self, logger):
                self.logger = logger

            def deserialize_cuda_engine(self, data):
                return Engine() if bytes(data) == fake.ENGINE_BYTES else None

        self.Runtime = Runtime


def install_fakes(height: int, width: int) -> Tuple[FakeCudart, FakeTensorRTRuntime]:
    """In this process: the stand-ins in place of TensorRT (what ``import tensorrt`` finds) and libcudart
    (``load_cudart``), and one GPU by the driver's count, for engines of a (height, width) network. For a
    fresh interpreter; a test in the pytest process patches with monkeypatch instead."""
    import sys

    from fg_depth_core.deploy import backends, cuda_runtime

    cudart = FakeCudart()
    fake = FakeTensorRTRuntime(cudart, height, width)
    sys.modules["tensorrt"] = fake  # type: ignore[assignment]
    backends.cuda_device_count = lambda: 1
    cuda_runtime.load_cudart = lambda: (cudart, "fake libcudart")
    return cudart, fake


def write_fake_engine(path: Any, info: Any, precision: str = "fp32", digest: str = "ab" * 32) -> Any:
    """An engine file the stand-in runtime deserialises, with fg-depth's metadata of ``info`` (ModelInfo)
    beside it, as built by the stand-in's TensorRT version from an ONNX whose digest is ``digest``."""
    from fg_depth_core.deploy.tensorrt_build import write_engine_info

    path.write_bytes(FakeTensorRTRuntime.ENGINE_BYTES)
    write_engine_info(path, info, precision, FakeTensorRTRuntime.__version__, digest)
    return path
