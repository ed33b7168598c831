"""How many CUDA devices this process can use, asked of the CUDA driver (libcuda) directly; and the
library loading that this probe and deploy/cuda_runtime.py share.

torch.cuda.is_available() answers the same question but imports torch (hundreds of MiB resident with a CUDA
build), which a node running an ONNX model on a Jetson cannot spare. The driver API's cuInit and
cuDeviceGetCount need nothing but the driver, honour CUDA_VISIBLE_DEVICES like every CUDA program, and fail
cleanly (0 devices) where there is no driver or no GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Callable, Iterable, Optional

#: Names of the driver library: the versioned soname first (what the NVIDIA driver and JetPack install).
DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
#: CUresult of a successful driver call.
CUDA_SUCCESS = 0


def open_library(name: str, loader: Callable[[str], Any] = ctypes.CDLL) -> Optional[Any]:
    """The shared library ``name`` (a soname searched the loader's usual way, or a path); None when it does
    not load."""
    try:
        return loader(name)
    except OSError:
        return None


def load_library(names: Iterable[str], loader: Callable[[str], Any] = ctypes.CDLL) -> Optional[Any]:
    """The first of ``names`` that loads (see :func:`open_library`); None when none does."""
    for name in names:
        library = open_library(name, loader)
        if library is not None:
            return library
    return None


def _load_driver() -> Optional[Any]:
    return load_library(DRIVER_LIBRARIES + tuple(filter(None, [ctypes.util.find_library("cuda")])))


def cuda_device_count(load_driver: Callable[[], Optional[Any]] = _load_driver) -> int:
    """Usable CUDA devices (0 without a driver, without a GPU, or when the driver fails to initialise)."""
    driver = load_driver()
    if driver is None:
        return 0
    if driver.cuInit(ctypes.c_uint(0)) != CUDA_SUCCESS:
        return 0
    count = ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != CUDA_SUCCESS:
        return 0
    return int(count.value)
