"""The few CUDA runtime calls the TensorRT backend needs, without PyTorch: device selection, device and
page-locked host memory, asynchronous copies, streams, and errors that name the failing call.

Through ctypes on the CUDA runtime library (libcudart), not the cuda-python bindings:
- nothing to install: every CUDA toolkit and JetPack ship libcudart, and the CUDA wheels on PyPI (those
  PyTorch or TensorRT pull in) bring a copy under site-packages/nvidia; cuda-python is one more package whose
  version must match the CUDA major, and JetPack does not ship it for the system Python;
- the calls used here have kept their C signatures across CUDA 11-13. The one exception,
  cudaGetDeviceProperties, whose structure grew, is read only for the device name, its first field;
- PyTorch, which held these buffers and streams before, costs about 480 MiB resident, and a Jetson's GPU
  shares that memory with the rest of the robot.

Pointers (device memory, page-locked host memory, streams) are plain ints, as TensorRT's
``set_tensor_address`` and ``execute_async_v3`` take them. Every failed call raises :class:`CudaError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from fg_depth_core.deploy.backends.base import BackendError, BackendUnavailableError
from fg_depth_core.deploy.cuda_probe import open_library

#: Runtime library names, searched the loader's usual way: the unversioned development link (the toolkit
#: the system is set up with), then versioned sonames from the newest.
CUDART_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
#: Folders that hold libcudart without being on the loader's path: the CUDA wheels' (nvidia/cu13/lib,
#: nvidia/cuda_runtime/lib) and the toolkit's default prefix.
CUDART_GLOBS = ("*/lib/libcudart.so*",)
TOOLKIT_LIB = Path("/usr/local/cuda/lib64")
#: cudaError_t of a successful call.
CUDA_SUCCESS = 0
#: cudaMemcpyKind values.
HOST_TO_DEVICE, DEVICE_TO_HOST = 1, 2
#: cudaStreamCreateWithFlags: a stream that does not synchronise with the legacy default stream.
STREAM_NON_BLOCKING = 1
#: Bytes handed to cudaGetDeviceProperties: more than any CUDA version's cudaDeviceProp (about 1 KiB).
DEVICE_PROP_BYTES = 4096
#: Length of cudaDeviceProp.name, the structure's first field.
DEVICE_NAME_BYTES = 256


class CudaError(BackendError):
    """A CUDA runtime call failed; the message names the call, CUDA's error name and its explanation."""


def _wheel_folders() -> List[Path]:
    """Folders of the ``nvidia`` namespace package of the CUDA wheels (found without importing anything)."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def cudart_candidates() -> List[str]:
    """Names and paths to try for libcudart, in order (see :data:`CUDART_NAMES`, :data:`CUDART_GLOBS`)."""
    found = [*CUDART_NAMES, ctypes.util.find_library("cudart")]
    for folder in _wheel_folders():
        for pattern in CUDART_GLOBS:
            found += sorted((str(p) for p in folder.glob(pattern)), reverse=True)
    found += sorted((str(p) for p in TOOLKIT_LIB.glob("libcudart.so*")), reverse=True)
    return list(dict.fromkeys(name for name in found if name))


def _version(library: Any, function: str) -> int:
    value = ctypes.c_int(0)
    try:
        status = getattr(library, function)(ctypes.byref(value))
    except AttributeError:
        return 0
    return int(value.value) if status == CUDA_SUCCESS else 0


def load_cudart(
    candidates: Optional[List[str]] = None, loader: Callable[[str], Any] = ctypes.CDLL
) -> Tuple[Optional[Any], str]:
    """(library, name) of the first libcudart that loads and that the installed driver runs (the runtime's
    CUDA major not above the driver's); when none qualifies, the first that loads (its calls then say why),
    (None, "") when none loads. The error-string functions get their ``char *`` result types."""
    first: Tuple[Optional[Any], str] = (None, "")
    for name in cudart_candidates() if candidates is None else candidates:
        library = open_library(name, loader)
        if library is None:
            continue
        for function in ("cudaGetErrorName", "cudaGetErrorString"):
            getattr(library, function).restype = ctypes.c_char_p
        runtime = _version(library, "cudaRuntimeGetVersion")
        if runtime and runtime // 1000 <= _version(library, "cudaDriverGetVersion") // 1000:
            return library, name
        if first[0] is None:
            first = (library, name)
    return first


class CudaRuntime:
    """The CUDA runtime calls of the TensorRT backend on a loaded libcudart (or a stand-in with the same
    functions). Device selection is per thread in CUDA: call :meth:`set_device` on the thread that works."""

    def __init__(self, library: Any, name: str = "libcudart") -> None:
        self.library = library
        self.name = name

    @classmethod
    def load(cls) -> "CudaRuntime":
        """The system's CUDA runtime (:func:`load_cudart`); BackendUnavailableError says what to install."""
        library, name = load_cudart()
        if library is None:
            raise BackendUnavailableError(
                "the CUDA runtime library (libcudart) was not found: install the CUDA toolkit's runtime (on "
                "Jetson it comes with JetPack) or a CUDA wheel that ships it (pip install "
                "nvidia-cuda-runtime-cu12), or add its folder to LD_LIBRARY_PATH"
            )
        return cls(library, name)

    def _text(self, function: str, status: int) -> str:
        try:
            text = getattr(self.library, function)(ctypes.c_int(status))
        except Exception:  # a broken library must not hide the original failure
            return ""
        return text.decode(errors="replace") if isinstance(text, bytes) else str(text or "")

    def check(self, status: int, call: str) -> None:
        """Raise CudaError for a cudaError_t other than success, naming ``call``."""
        if status != CUDA_SUCCESS:
            name = self._text("cudaGetErrorName", status) or "unknown error"
            text = self._text("cudaGetErrorString", status) or "no description"
            raise CudaError(f"CUDA call {call} failed: {text} ({name}, code {status}; {self.name})")

    # ---------------------------------------------------------------------------------------- devices

    def device_count(self) -> int:
        """Devices the runtime sees (honours CUDA_VISIBLE_DEVICES); CudaError without driver or device."""
        count = ctypes.c_int(0)
        self.check(self.library.cudaGetDeviceCount(ctypes.byref(count)), "cudaGetDeviceCount")
        return int(count.value)

    def set_device(self, index: int) -> None:
        """Make device ``index`` current on the calling thread."""
        self.check(self.library.cudaSetDevice(ctypes.c_int(index)), f"cudaSetDevice({index})")

    def device_name(self, index: int) -> str:
        """The device's name as CUDA reports it (e.g. "NVIDIA GeForce RTX 4090", "Orin")."""
        props = ctypes.create_string_buffer(DEVICE_PROP_BYTES)
        # CUDA 12 exports the current layout as _v2 (the plain name has CUDA 11's); CUDA 13 only the plain.
        get = getattr(self.library, "cudaGetDeviceProperties_v2", None)
        get = get or self.library.cudaGetDeviceProperties
        self.check(get(props, ctypes.c_int(index)), f"cudaGetDeviceProperties({index})")
        return props.raw[:DEVICE_NAME_BYTES].split(b"\0", 1)[0].decode(errors="replace")

    # ----------------------------------------------------------------------------------------- memory

    def malloc(self, nbytes: int) -> int:
        """``nbytes`` of memory on the current device; its address."""
        pointer = ctypes.c_void_p()
        status = self.library.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(nbytes))
        self.check(status, f"cudaMalloc({nbytes})")
        return int(pointer.value or 0)

    def free(self, pointer: int) -> None:
        self.check(self.library.cudaFree(ctypes.c_void_p(pointer)), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        """``nbytes`` of page-locked host memory (asynchronous copies need it); its address."""
        pointer = ctypes.c_void_p()
        status = self.library.cudaMallocHost(ctypes.byref(pointer), ctypes.c_size_t(nbytes))
        self.check(status, f"cudaMallocHost({nbytes})")
        return int(pointer.value or 0)

    def free_host(self, pointer: int) -> None:
        self.check(self.library.cudaFreeHost(ctypes.c_void_p(pointer)), "cudaFreeHost")

    @staticmethod
    def host_array(pointer: int, shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
        """A numpy view of host memory at ``pointer`` (valid only until that memory is freed)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        raw = (ctypes.c_ubyte * (count * dtype.itemsize)).from_address(pointer)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    def copy_to_device(self, device: int, host: np.ndarray, stream: int) -> None:
        """Enqueue a copy of the C-contiguous array ``host`` to ``device`` on ``stream``."""
        self._copy(device, self._address(host), host.nbytes, HOST_TO_DEVICE, stream)

    def copy_to_host(self, host: np.ndarray, device: int, stream: int) -> None:
        """Enqueue a copy from ``device`` into the C-contiguous array ``host`` on ``stream``; ``host`` holds
        the data once the stream is synchronised."""
        self._copy(self._address(host), device, host.nbytes, DEVICE_TO_HOST, stream)

    @staticmethod
    def _address(array: np.ndarray) -> int:
        if not array.flags.c_contiguous:
            raise ValueError("CUDA copies need a C-contiguous array")
        return int(array.ctypes.data)

    def _copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        status = self.library.cudaMemcpyAsync(
            ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), ctypes.c_int(kind),
            ctypes.c_void_p(stream),
        )  # fmt: skip
        direction = "host to device" if kind == HOST_TO_DEVICE else "device to host"
        self.check(status, f"cudaMemcpyAsync({nbytes} bytes, {direction})")

    # ---------------------------------------------------------------------------------------- streams

    def stream_create(self) -> int:
        """A new non-blocking stream on the current device (no implicit synchronisation with stream 0)."""
        stream = ctypes.c_void_p()
        status = self.library.cudaStreamCreateWithFlags(
            ctypes.byref(stream), ctypes.c_uint(STREAM_NON_BLOCKING)
        )
        self.check(status, "cudaStreamCreateWithFlags")
        return int(stream.value or 0)

    def stream_synchronize(self, stream: int) -> None:
        """Wait until everything enqueued on ``stream`` is done (errors of that work surface here)."""
        self.check(self.library.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def stream_destroy(self, stream: int) -> None:
        self.check(self.library.cudaStreamDestroy(ctypes.c_void_p(stream)), "cudaStreamDestroy")
