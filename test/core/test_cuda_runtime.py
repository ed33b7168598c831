"""The CUDA runtime wrapper (deploy/cuda_runtime.py) against a stand-in of libcudart (test/gpu_fakes.py):
memory, asynchronous copies, streams, devices, errors that name the call, and which library is loaded. The
real libcudart is asked too where one loads (no GPU is needed for its error paths)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from gpu_fakes import FakeCudart

from fg_depth_core.deploy import cuda_runtime
from fg_depth_core.deploy.backends import BackendError, BackendUnavailableError
from fg_depth_core.deploy.cuda_probe import cuda_device_count, load_library, open_library
from fg_depth_core.deploy.cuda_runtime import (
    CudaError,
    CudaRuntime,
    cudart_candidates,
    load_cudart,
)


@pytest.fixture
def fake():
    return FakeCudart(devices=2)


@pytest.fixture
def cuda(fake):
    return CudaRuntime(fake, "fake libcudart")


def test_a_failed_call_raises_naming_the_call_cuda_error_and_library(cuda):
    cuda.check(0, "cudaFree")  # success: nothing
    with pytest.raises(CudaError) as caught:
        cuda.check(2, "cudaMalloc(64)")
    assert str(caught.value) == (
        "CUDA call cudaMalloc(64) failed: out of memory (cudaErrorMemoryAllocation, code 2; fake libcudart)"
    )
    assert isinstance(caught.value, BackendError)  # callers that handle backend errors handle these
    with pytest.raises(CudaError, match=r"failed: unknown error \(cudaErrorUnknown, code 12345"):
        cuda.check(12345, "cudaFree")


def test_device_and_page_locked_memory_and_a_round_trip_that_lands_only_at_synchronisation(fake, cuda):
    device = cuda.malloc(24)
    pinned = cuda.malloc_host(24)
    assert device in fake.device and fake.device[device].nbytes == 24
    assert pinned in fake.pinned and fake.pinned[pinned].nbytes == 24
    stream = cuda.stream_create()
    assert fake.stream_flags[stream] == 1  # non-blocking: no implicit sync with the legacy default stream
    source = CudaRuntime.host_array(pinned, (2, 3), np.float32)
    source[:] = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert fake.pinned[pinned].view(np.float32).tolist() == list(range(6))  # the view is that memory
    back = np.zeros((2, 3), np.float32)
    cuda.copy_to_device(device, source, stream)
    cuda.copy_to_host(back, device, stream)
    assert not back.any()  # asynchronous: nothing has run yet
    cuda.stream_synchronize(stream)
    np.testing.assert_array_equal(back, source)
    assert fake.copies == [("to device", True, 24), ("to host", False, 24)]
    copy = fake.called("cudaMemcpyAsync")[0]
    assert copy == (device, pinned, 24, 1, stream)
    cuda.free(device)
    cuda.free_host(pinned)
    cuda.stream_destroy(stream)
    assert fake.held() == {"device": 0, "pinned": 0, "streams": 0}


def test_memory_stream_and_copy_errors(fake, cuda):
    with pytest.raises(CudaError, match="cudaFree failed: invalid argument"):
        cuda.free(12345)
    with pytest.raises(CudaError, match="cudaFreeHost failed: invalid argument"):
        cuda.free_host(12345)
    fake.fail["cudaMalloc"] = 2
    with pytest.raises(CudaError, match=r"cudaMalloc\(1024\) failed: out of memory"):
        cuda.malloc(1024)
    fake.fail["cudaMallocHost"] = 2
    with pytest.raises(CudaError, match=r"cudaMallocHost\(8\) failed: out of memory"):
        cuda.malloc_host(8)
    device, stream = cuda.malloc(16), cuda.stream_create()
    with pytest.raises(
        CudaError, match=r"cudaMemcpyAsync\(32 bytes, host to device\) failed: invalid argument"
    ):
        cuda.copy_to_device(device, np.zeros(8, np.float32), stream)  # more than the allocation holds
    with pytest.raises(
        CudaError, match=r"cudaMemcpyAsync\(16 bytes, device to host\) failed: invalid resource"
    ):
        cuda.copy_to_host(np.zeros(4, np.float32), device, stream + 99)
    with pytest.raises(ValueError, match="C-contiguous"):
        cuda.copy_to_device(device, np.zeros((4, 4), np.float32)[:, 0], stream)
    cuda.stream_destroy(stream)
    with pytest.raises(CudaError, match="cudaStreamSynchronize failed: invalid resource handle"):
        cuda.stream_synchronize(stream)
    with pytest.raises(CudaError, match="cudaStreamDestroy failed: invalid resource handle"):
        cuda.stream_destroy(stream)


def test_devices_count_selection_and_names(fake, cuda):
    assert cuda.device_count() == 2
    cuda.set_device(1)
    assert fake.current_device == 1
    with pytest.raises(CudaError, match=r"cudaSetDevice\(2\) failed: invalid device ordinal"):
        cuda.set_device(2)
    assert cuda.device_name(1) == "Fake GPU 1"
    with pytest.raises(CudaError, match=r"cudaGetDeviceProperties\(5\) failed: invalid device ordinal"):
        cuda.device_name(5)
    no_device, old_driver = "no CUDA-capable device is detected", "CUDA driver version is insufficient"
    for status, text in [(100, no_device), (35, old_driver)]:
        with pytest.raises(CudaError, match=f"cudaGetDeviceCount failed: {text}"):
            CudaRuntime(FakeCudart(count_status=status)).device_count()


def test_device_names_come_from_the_current_structure_where_cuda_12_has_two(fake):
    class Cuda12(FakeCudart):
        """CUDA 12: cudaGetDeviceProperties keeps CUDA 11's layout; _v2 is the current one."""

        def cudaGetDeviceProperties(self, props, index):
            props.value = b"from the legacy call"
            return 0

        def cudaGetDeviceProperties_v2(self, props, index):
            props.value = f"Fake GPU {index.value} (v2)".encode()
            return 0

    assert CudaRuntime(Cuda12(devices=2)).device_name(1) == "Fake GPU 1 (v2)"


def test_load_cudart_takes_the_first_library_the_driver_can_run():
    libraries = {
        "too-new.so": FakeCudart(runtime_version=13000, driver_version=12080),
        "matching.so": FakeCudart(runtime_version=12060, driver_version=12080),
    }

    def loader(name):
        if name not in libraries:
            raise OSError(f"{name}: cannot open shared object file")
        return libraries[name]

    library, name = load_cudart(["missing.so", "too-new.so", "matching.so"], loader)
    assert (library, name) == (libraries["matching.so"], "matching.so")
    assert library.cudaGetErrorString.restype is ctypes.c_char_p  # char * results, not ints
    # None the driver can run: the first that loads, whose calls then say why.
    assert load_cudart(["missing.so", "too-new.so"], loader) == (libraries["too-new.so"], "too-new.so")
    assert load_cudart(["missing.so"], loader) == (None, "")


def test_without_libcudart_the_runtime_says_what_to_install(monkeypatch):
    monkeypatch.setattr(cuda_runtime, "load_cudart", lambda: (None, ""))
    with pytest.raises(BackendUnavailableError, match="libcudart.*was not found: install .*LD_LIBRARY_PATH"):
        CudaRuntime.load()


def test_candidates_cover_sonames_and_the_cuda_wheels(monkeypatch, tmp_path):
    wheel = tmp_path / "nvidia"
    for folder in ("cu13/lib", "cuda_runtime/lib"):
        (wheel / folder).mkdir(parents=True)
    (wheel / "cu13/lib/libcudart.so.13").touch()
    (wheel / "cuda_runtime/lib/libcudart.so.12").touch()
    (wheel / "cu13/lib/libcublas.so.13").touch()
    monkeypatch.setattr(cuda_runtime, "_wheel_folders", lambda: [wheel])
    found = cudart_candidates()
    assert found[:4] == ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
    assert str(wheel / "cu13/lib/libcudart.so.13") in found
    assert str(wheel / "cuda_runtime/lib/libcudart.so.12") in found
    assert not any("cublas" in name for name in found) and len(found) == len(set(found))


def test_the_library_loading_shared_with_the_driver_probe():
    def loader(name):
        if name != "second":
            raise OSError(name)
        return f"<{name}>"

    assert open_library("first", loader) is None and open_library("second", loader) == "<second>"
    assert load_library(["first", "second", "third"], loader) == "<second>"
    assert load_library(["first"], loader) is None


def test_the_real_libcudart_where_one_loads():
    library, name = load_cudart()
    if library is None:
        pytest.skip("no libcudart on this machine (the stand-in tests above cover the wrapper)")
    cuda = CudaRuntime(library, name)
    if cuda_device_count() == 0:  # no GPU or no driver: the runtime's own words, through the char * results
        with pytest.raises(
            CudaError, match=r"CUDA call cudaGetDeviceCount failed: \w.* \(cudaError\w+, code \d+"
        ):
            cuda.device_count()
        return
    cuda.set_device(0)
    assert cuda.device_count() >= 1 and cuda.device_name(0)
    data = np.arange(1000, dtype=np.float32)
    device, stream = cuda.malloc(data.nbytes), cuda.stream_create()
    try:
        back = np.zeros_like(data)
        cuda.copy_to_device(device, data, stream)
        cuda.copy_to_host(back, device, stream)
        cuda.stream_synchronize(stream)
        np.testing.assert_array_equal(back, data)
    finally:
        cuda.free(device)
        cuda.stream_destroy(stream)
