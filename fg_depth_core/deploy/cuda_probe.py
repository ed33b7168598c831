"""How many CUDA devices this process can use, asked of the CUDA driver (libcuda) directly.

torch.cuda.is_available() answers the same question but imports torch (hundreds of MiB resident with a CUDA
build), which a node running an ONNX model on a Jetson cannot spare. The driver API's cuInit and
cuDeviceGetCount need nothing but the driver, honour CUDA_VISIBLE_DEVICES like every CUDA program, and fail
cleanly (0 devices) where there is no driver or no GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Callable, Optional

#: Names of the driver library: the versioned soname first (what the NVIDIA driver and JetPack install).
DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
#: CUresult of a successful driver call.
CUDA_SUCCESS = 0


def _load_driver() -> Optional[Any]:
    for name in DRIVER_LIBRARIES + tuple(filter(None, [ctypes.util.find_library("cuda")])):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


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
