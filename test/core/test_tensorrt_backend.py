"""TensorRT without TensorRT: the engine builder's logic (deploy/tensorrt_build.py: precision plans by
TensorRT version, the engine's metadata file, the fp16 ONNX conversion, the build against a stand-in), the
backend's (engine cache keys, I/O shape checks, and the whole engine run on stand-ins of TensorRT and
libcudart from test/gpu_fakes.py: shapes, addresses, copies, float16 I/O, buffer reuse, device choice,
freeing, CUDA errors) and their errors when TensorRT is missing; the real engine build and run only where
TensorRT and CUDA exist."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import sys
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from gpu_fakes import FakeCudart, FakeTensorRTRuntime, fake_depth, write_fake_engine
from onnx import TensorProto

from fg_depth_core.deploy import cuda_runtime, tensorrt_build
from fg_depth_core.deploy.backends import BackendError, BackendUnavailableError
from fg_depth_core.deploy.backends import tensorrt as trt_backend
from fg_depth_core.deploy.backends.tensorrt import engine_batch_limit, engine_cache_key, timing_cache_name
from fg_depth_core.deploy.cuda_probe import cuda_device_count
from fg_depth_core.deploy.cuda_runtime import CudaError
from fg_depth_core.deploy.export import export_onnx
from fg_depth_core.deploy.model_info import ModelInfo, ModelInfoError
from fg_depth_core.deploy.tensorrt_build import (
    build_engine,
    engine_info_path,
    import_tensorrt,
    onnx_to_fp16,
    precision_plan,
    read_engine_info,
    write_engine_info,
)

NET_W, NET_H = 128, 64
INFO = ModelInfo(NET_W, NET_H, 0.1, 100.0, 74.2, 0.54)
# The backend asks the CUDA driver and runtime, not torch: a CPU build of torch beside a GPU still runs it.
HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None and cuda_device_count() > 0


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, write_depthnet_checkpoint):
    folder = tmp_path_factory.mktemp("tensorrt")
    pt = write_depthnet_checkpoint(folder / "net.pt", NET_W, NET_H, train_focal=74.2)
    path = folder / "net.onnx"
    export_onnx(pt, path)
    return path


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``import tensorrt`` fail, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


# ---------------------------------------------------------------------------------------------- cache key

BASE = {
    "onnx": b"onnx model bytes",
    "trt_version": "10.13.0.35",
    "gpu_name": "NVIDIA H100",
    "precision": "fp32",
}


@pytest.mark.parametrize(
    "field, other",
    [
        ("onnx", b"onnx model bytes!"),
        ("trt_version", "10.13.2.6"),
        ("gpu_name", "NVIDIA H200"),
        ("precision", "fp16"),
    ],
)
def test_engine_cache_key_changes_with_each_of_its_inputs(field, other):
    assert engine_cache_key(**{**BASE, field: other}) != engine_cache_key(**BASE)


def test_engine_cache_key_is_stable_file_safe_and_takes_a_digest():
    key = engine_cache_key(**BASE)
    assert key == engine_cache_key(**dict(BASE))
    assert key.endswith("-fp32") and all(c.isalnum() or c == "-" for c in key)
    digest = hashlib.sha256(BASE["onnx"]).hexdigest()
    assert engine_cache_key(**{**BASE, "onnx": digest}) == key
    assert engine_cache_key(**{**BASE, "onnx": digest.upper()}) == key
    # Surrounding whitespace of version and GPU name is not part of their identity.
    assert engine_cache_key(**{**BASE, "gpu_name": " NVIDIA H100 "}) == key
    for bad, message in [
        ({"precision": "int8"}, "precision must be one of"),
        ({"gpu_name": ""}, "needs a TensorRT version and a GPU name"),
        ({"onnx": "not-a-digest"}, "expected ONNX bytes or a hex digest"),
    ]:
        with pytest.raises(BackendError, match=message):
            engine_cache_key(**{**BASE, **bad})


def test_timing_cache_name_is_per_tensorrt_version_and_gpu():
    name = timing_cache_name("10.13.0.35", "NVIDIA GeForce RTX 4090")
    assert name == "timing-10.13.0.35-NVIDIA_GeForce_RTX_4090.cache"
    assert timing_cache_name("10.12.0.36", "NVIDIA GeForce RTX 4090") != name
    assert timing_cache_name("10.13.0.35", "Orin (nvgpu)") == "timing-10.13.0.35-Orin_nvgpu.cache"


# ------------------------------------------------------------------------------------------ precision plan


@pytest.mark.parametrize(
    "version, precision, plan",
    [
        ("10.0.1.6", "fp32", (False, [])),
        ("10.0", "fp16", (False, ["FP16"])),
        ("10.11.0.33", "fp32", (False, [])),
        ("10.11", "fp16", (False, ["FP16"])),
        ("10.12.0.36", "fp32", (True, [])),
        ("10.12", "fp16", (True, [])),
        ("10.13.3.9", "fp32", (True, [])),
        ("10.13", "fp16", (True, [])),
        ("11.0.0", "fp16", (True, [])),
    ],
)
def test_precision_plan_by_tensorrt_version(version, precision, plan):
    assert precision_plan(version, precision) == plan


def test_precision_plan_errors():
    with pytest.raises(BackendUnavailableError, match="TensorRT 10 or newer"):
        precision_plan("8.6.1", "fp32")
    with pytest.raises(BackendError, match="cannot read the version"):
        precision_plan("ten", "fp32")
    with pytest.raises(BackendError, match="precision must be one of"):
        precision_plan("10.13", "bf16")


# ---------------------------------------------------------------------------------------------- shapes


def test_engine_batch_limit_from_fixed_and_dynamic_shapes():
    assert engine_batch_limit((1, 3, NET_H, NET_W), (1, 1, NET_H, NET_W), INFO) == 1
    assert engine_batch_limit((4, 3, NET_H, NET_W), (4, 1, NET_H, NET_W), INFO) == 4
    assert engine_batch_limit((-1, 3, NET_H, NET_W), (-1, 1, NET_H, NET_W), INFO, (8, 3, NET_H, NET_W)) == 8
    cases = [
        (((1, 3, NET_W, NET_H), (1, 1, NET_H, NET_W), None), r"input 'image' has shape \[1, 3, 128, 64\]"),
        (((1, 1, NET_H, NET_W), (1, 1, NET_H, NET_W), None), r"expected \(B,3,64,128\)"),
        (((1, 3, NET_H, NET_W), (1, 2, NET_H, NET_W), None), r"output 'depth' has shape"),
        (((1, 3, NET_H, NET_W), (1, NET_H, NET_W), None), r"output 'depth' has shape"),
        (
            ((-1, 3, NET_H, NET_W), (-1, 1, NET_H, NET_W), None),
            "dynamic batch without an optimisation profile",
        ),
    ]
    for (inp, out, profile), message in cases:
        with pytest.raises(BackendError, match=message):
            engine_batch_limit(inp, out, INFO, profile, "E.engine")


# ---------------------------------------------------------------------------------------- engine metadata


def test_engine_info_round_trips_beside_the_engine(tmp_path):
    engine = tmp_path / "net.engine"
    path = write_engine_info(engine, INFO, "fp16", "10.13.0.35", "ab" * 32)
    assert path == engine_info_path(engine) == tmp_path / "net.engine.json"
    info, record = read_engine_info(engine)
    assert info == INFO and info.train_focal == 74.2
    assert record["precision"] == "fp16" and record["tensorrt_version"] == "10.13.0.35"
    assert json.loads(path.read_text())["onnx_sha256"] == "ab" * 32


def test_engine_info_errors(tmp_path):
    engine = tmp_path / "net.engine"
    with pytest.raises(
        ModelInfoError, match="net.engine.json is missing .* fg-depth export --format tensorrt"
    ):
        read_engine_info(engine)
    engine_info_path(engine).write_text("{not json")
    with pytest.raises(ModelInfoError, match="not an fg-depth engine metadata file"):
        read_engine_info(engine)
    engine_info_path(engine).write_text(json.dumps({"fg_depth": INFO.to_metadata(), "precision": "int8"}))
    with pytest.raises(ModelInfoError, match="precision must be one of"):
        read_engine_info(engine)
    props = {k: v for k, v in INFO.to_metadata().items() if k != "fg_depth.train_focal"}
    engine_info_path(engine).write_text(json.dumps({"fg_depth": props, "precision": "fp32"}))
    with pytest.raises(ModelInfoError, match="'fg_depth.train_focal' is missing"):
        read_engine_info(engine)


# -------------------------------------------------------------------------------------------- fp16 ONNX


def test_onnx_to_fp16_keeps_float32_io_and_computes_in_half(onnx_path):
    model = onnx.load(str(onnx_path))
    half = onnx_to_fp16(model)
    io_types = [v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)]
    assert io_types == [TensorProto.FLOAT, TensorProto.FLOAT]
    resize_scales = {n.input[2] for n in half.graph.node if n.op_type == "Resize" and len(n.input) > 2}
    kinds = {(i.name in resize_scales, i.data_type) for i in half.graph.initializer}
    assert kinds <= {(False, TensorProto.FLOAT16), (False, TensorProto.INT64), (True, TensorProto.FLOAT)}
    assert (False, TensorProto.FLOAT16) in kinds
    # The input model is left as it was.
    assert any(
        i.data_type == TensorProto.FLOAT for i in model.graph.initializer if i.name not in resize_scales
    )
    x = np.random.default_rng(0).random((2, 3, NET_H, NET_W), dtype=np.float32)
    full = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    low = session.run(None, {"image": x})[0]
    assert low.dtype == np.float32 and low.shape == full.shape
    rel = np.abs(low - full) / full
    assert rel.max() < 1e-2  # fp16 keeps about 3 significant digits
    assert rel.max() > 1e-5  # and it did compute in fp16: fp32 agrees to ~1e-6


def test_onnx_to_fp16_refuses_a_graph_it_cannot_type(onnx_path):
    model = onnx.load(str(onnx_path))
    # A float32 constant used as Resize scales and computed from other floats: the conversion cannot keep it
    # float32 (it only keeps direct Resize inputs), and the type check says so.
    scales = next(n.input[2] for n in model.graph.node if n.op_type == "Resize")
    doubled = onnx.helper.make_node("Add", [scales, scales], ["scales_sum"])
    for node in model.graph.node:
        if node.op_type == "Resize":
            node.input[2] = "scales_sum"
    model.graph.node.insert(0, doubled)
    with pytest.raises(BackendError, match="fp16 graph does not type-check"):
        onnx_to_fp16(model)


# -------------------------------------------------------------------------------------- without TensorRT


def test_without_tensorrt_every_entry_point_names_what_to_install(no_tensorrt, onnx_path, tmp_path):
    expected = r"pip install tensorrt .*python3-libnvinfer"
    with pytest.raises(BackendUnavailableError, match=expected):
        import_tensorrt()
    with pytest.raises(BackendUnavailableError, match=expected):
        build_engine(onnx_path, tmp_path / "net.engine", "fp16")
    with pytest.raises(BackendUnavailableError, match=expected):
        trt_backend.TensorRTBackend(onnx_path)
    assert not (tmp_path / "net.engine").exists()


# ------------------------------------------------------------------------------- build_engine's decisions


class FakeTensorRT:
    """Just enough of the tensorrt module for build_engine, recording what it is asked to do (the real
    library cannot be installed here; this checks build_engine's own logic, not TensorRT)."""

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = 1

    class BuilderFlag:
        FP16 = "FP16"

    class MemoryPoolType:
        WORKSPACE = "WORKSPACE"

    def __init__(self, version: str) -> None:
        self.__version__ = version
        self.calls = {"flags": [], "profiles": []}
        fake = self

        class Input:
            name, shape = "image", (-1, 3, NET_H, NET_W)

        class Network:
            def get_input(self, index):
                return Input()

        class Cache:
            def __init__(self, data):
                self.data = data

            def serialize(self):
                return b"timings after the build"

        class Config:
            def set_memory_pool_limit(self, pool, size):
                fake.calls["workspace"] = (pool, size)

            def set_flag(self, flag):
                fake.calls["flags"].append(flag)

            def create_timing_cache(self, data):
                fake.calls["timing_in"] = bytes(data)
                return Cache(data)

            def set_timing_cache(self, cache, ignore_mismatch):
                return True

            def get_timing_cache(self):
                return Cache(b"")

            def add_optimization_profile(self, profile):
                fake.calls["profiles"].append(profile.shapes)

        class Profile:
            def set_shape(self, name, low, opt, high):
                self.shapes = (name, tuple(low), tuple(opt), tuple(high))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                fake.calls["network_flags"] = flags
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                return b"serialized engine"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                pass

            def parse(self, data):
                fake.calls["parsed"] = bytes(data)
                return True

        self.Builder, self.OnnxParser = Builder, OnnxParser


@pytest.mark.parametrize("version, strongly_typed", [("10.11.0.33", False), ("10.13.0.35", True)])
def test_build_engine_precision_timing_cache_profile_and_metadata(
    onnx_path, tmp_path, monkeypatch, version, strongly_typed
):
    fake = FakeTensorRT(version)
    monkeypatch.setattr(tensorrt_build, "import_tensorrt", lambda: fake)
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"timings from an earlier build")
    engine = build_engine(onnx_path, tmp_path / "net.engine", "fp16", 1 << 28, timing, max_batch=4)
    calls = fake.calls
    assert engine.read_bytes() == b"serialized engine"
    assert calls["timing_in"] == b"timings from an earlier build"
    assert timing.read_bytes() == b"timings after the build"
    assert calls["workspace"] == ("WORKSPACE", 1 << 28)
    shape = (3, NET_H, NET_W)
    assert calls["profiles"] == [("image", (1, *shape), (1, *shape), (4, *shape))]
    parsed = onnx.load_from_string(calls["parsed"])
    halves = sum(i.data_type == TensorProto.FLOAT16 for i in parsed.graph.initializer)
    if strongly_typed:  # 10.12+: no precision flags; the network parses an fp16 copy of the ONNX
        assert calls["network_flags"] == 1 << 1 and calls["flags"] == [] and halves > 0
    else:  # below 10.12: weak typing, the FP16 builder flag and the ONNX as it is
        assert calls["network_flags"] == 0 and calls["flags"] == ["FP16"] and halves == 0
        assert calls["parsed"] == onnx_path.read_bytes()
    info, record = read_engine_info(engine)
    assert info == INFO and record["precision"] == "fp16" and record["tensorrt_version"] == version
    assert record["onnx_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ the engine run


@pytest.mark.skipif(not HAVE_TENSORRT, reason="TensorRT is not installed (not installable on CI)")
def test_engine_build_cache_and_run_match_onnxruntime(onnx_path, tmp_path):
    backend = trt_backend.TensorRTBackend(onnx_path, "cuda", "fp32", cache_dir=tmp_path)
    engines = sorted(tmp_path.glob("*.engine"))
    assert len(engines) == 1 and engine_info_path(engines[0]).is_file()
    assert any(p.name.startswith("timing-") for p in tmp_path.iterdir())
    x = np.random.default_rng(0).random((3, 3, NET_H, NET_W), dtype=np.float32)
    reference = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"image": x}
    )[0]
    depth = backend.forward(x)
    assert np.abs(depth - reference).max() / reference.max() < 1e-2  # TF32 convolutions on recent GPUs
    if torch.cuda.is_available():  # the torch-tensor path, on the backend's stream
        on_gpu = backend.run_tensor(torch.from_numpy(x).to(f"cuda:{backend.device_index}"))
        assert on_gpu.is_cuda and tuple(on_gpu.shape) == depth.shape
        np.testing.assert_allclose(on_gpu.float().cpu().numpy(), depth, rtol=1e-5)
    np.testing.assert_allclose(backend.forward(x[:1]), depth[:1], rtol=1e-3)  # a smaller batch: same buffers
    stamp = engines[0].stat().st_mtime_ns
    again = trt_backend.TensorRTBackend(onnx_path, "cuda", "fp32", cache_dir=tmp_path)  # cache hit: no build
    assert engines[0].stat().st_mtime_ns == stamp
    np.testing.assert_allclose(again.forward(x), depth, rtol=1e-5)
    half = trt_backend.TensorRTBackend(onnx_path, "cuda", "fp16", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.engine"))) == 2 and half.precision == "fp16"
    assert np.abs(half.forward(x) - reference).max() / reference.max() < 2e-2
    for each in (backend, again, half):
        each.close()


# ------------------------------------------------------------- the engine run against stand-ins (no GPU)


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """make(devices=1, io_type="FLOAT", batch=-1, max_batch=4) -> (engine path, FakeCudart,
    FakeTensorRTRuntime): an engine file with its metadata, run by the stand-ins of TensorRT and libcudart
    (test/gpu_fakes.py)."""

    def make(devices=1, io_type="FLOAT", batch=-1, max_batch=4, count_status=0):
        cudart = FakeCudart(devices, count_status)
        fake_trt = FakeTensorRTRuntime(cudart, NET_H, NET_W, batch, max_batch, io_type)
        monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: fake_trt)
        monkeypatch.setattr(cuda_runtime, "load_cudart", lambda: (cudart, "fake libcudart"))
        engine = write_fake_engine(tmp_path / "net.engine", INFO, "fp16" if io_type == "HALF" else "fp32")
        return engine, cudart, fake_trt

    return make


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, NET_H, NET_W), dtype=np.float32)


def test_forward_sets_the_shape_and_addresses_runs_on_its_stream_and_copies_the_depth_back(fake_gpu):
    engine, cudart, fake_trt = fake_gpu()
    backend = trt_backend.TensorRTBackend(engine, "cuda")
    assert (backend.batch_limit, backend.precision, backend.info) == (4, "fp32", INFO)
    x = _batch(2)
    depth = backend.forward(x)
    assert depth.dtype == np.float32 and depth.shape == (2, 1, NET_H, NET_W)
    np.testing.assert_array_equal(depth, fake_depth(x))
    assert fake_trt.input_shapes == [(2, 3, NET_H, NET_W)]
    (run,) = fake_trt.runs
    image_bytes, depth_bytes = 2 * 3 * NET_H * NET_W * 4, 2 * NET_H * NET_W * 4
    assert sorted(cudart.called("cudaMalloc")) == sorted([("&", image_bytes), ("&", depth_bytes)])
    assert cudart.device[run["addresses"]["image"]].nbytes == image_bytes
    assert cudart.device[run["addresses"]["depth"]].nbytes == depth_bytes
    # Its own non-blocking stream (not the legacy default stream), synchronised before returning; the copies
    # went through page-locked memory.
    assert run["stream"] in cudart.streams and cudart.stream_flags[run["stream"]] == 1
    assert cudart.streams[run["stream"]] == []
    assert cudart.copies == [("to device", True, image_bytes), ("to host", True, depth_bytes)]
    # The result is the caller's: the next call reuses the buffers without touching it.
    kept = depth.copy()
    backend.forward(_batch(2, seed=1))
    np.testing.assert_array_equal(depth, kept)


def test_float16_engine_io_is_converted_on_the_host(fake_gpu):
    engine, cudart, fake_trt = fake_gpu(io_type="HALF")
    backend = trt_backend.TensorRTBackend(engine, "cuda")
    assert backend.input_dtype == np.float16 and backend.output_dtype == np.float16
    x = _batch(3)
    depth = backend.forward(x)
    assert depth.dtype == np.float32
    expected = fake_depth(x.astype(np.float16)).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(depth, expected)
    assert not np.array_equal(depth, fake_depth(x))  # it did go through half precision
    half_sizes = [3 * 3 * NET_H * NET_W * 2, 3 * NET_H * NET_W * 2]  # two bytes a value, in and out
    assert [n for _, _, n in cudart.copies] == half_sizes
    assert sorted(n for _, n in cudart.called("cudaMalloc")) == sorted(half_sizes)


def test_buffers_are_reused_and_grow_with_the_batch(fake_gpu):
    engine, cudart, fake_trt = fake_gpu()
    backend = trt_backend.TensorRTBackend(engine, "cuda")

    def allocations():
        return len(cudart.called("cudaMalloc")), len(cudart.called("cudaMallocHost"))

    for seed in range(2):
        x = _batch(1, seed)
        np.testing.assert_array_equal(backend.forward(x), fake_depth(x))
    assert allocations() == (2, 2)
    first = dict(fake_trt.runs[0]["addresses"])
    assert fake_trt.runs[1]["addresses"] == first
    x = _batch(3, 2)
    np.testing.assert_array_equal(backend.forward(x), fake_depth(x))
    assert allocations() == (4, 4)
    assert sorted(a for (a,) in cudart.called("cudaFree")) == sorted(first.values())  # the old ones freed
    assert cudart.held() == {"device": 2, "pinned": 2, "streams": 1}
    grown = dict(fake_trt.runs[-1]["addresses"])
    x = _batch(2, 3)  # smaller: the larger buffers serve it
    np.testing.assert_array_equal(backend.forward(x), fake_depth(x))
    assert allocations() == (4, 4) and fake_trt.runs[-1]["addresses"] == grown
    assert fake_trt.input_shapes[-1] == (2, 3, NET_H, NET_W)
    x = _batch(6, 4)  # above batch_limit 4: Backend.forward splits it into 4 + 2
    np.testing.assert_array_equal(backend.forward(x), fake_depth(x))
    assert fake_trt.input_shapes[-2:] == [(4, 3, NET_H, NET_W), (2, 3, NET_H, NET_W)]
    assert allocations() == (6, 6) and cudart.held() == {"device": 2, "pinned": 2, "streams": 1}


def test_close_frees_everything_and_a_closed_backend_refuses_to_run(fake_gpu):
    engine, cudart, fake_trt = fake_gpu()
    backend = trt_backend.TensorRTBackend(engine, "cuda")
    backend.forward(_batch(1))
    backend.close()
    assert cudart.held() == {"device": 0, "pinned": 0, "streams": 0}
    backend.close()  # twice is fine
    with pytest.raises(BackendError, match="closed"):
        backend.forward(_batch(1))
    other = trt_backend.TensorRTBackend(engine, "cuda")
    other.forward(_batch(2))
    assert cudart.held() == {"device": 2, "pinned": 2, "streams": 1}
    del other
    gc.collect()
    assert cudart.held() == {"device": 0, "pinned": 0, "streams": 0}


def test_cuda_failures_name_the_call_and_leak_nothing(fake_gpu):
    engine, cudart, fake_trt = fake_gpu()
    backend = trt_backend.TensorRTBackend(engine, "cuda")
    cudart.fail["cudaMallocHost"] = 2
    with pytest.raises(
        CudaError, match=r"cudaMallocHost\(\d+\) failed: out of memory \(cudaErrorMemoryAllocation"
    ):
        backend.forward(_batch(1))
    assert cudart.held() == {"device": 0, "pinned": 0, "streams": 1}  # the device buffers made before: freed
    cudart.fail["cudaStreamSynchronize"] = 700
    with pytest.raises(CudaError, match="cudaStreamSynchronize failed: an illegal memory access"):
        backend.forward(_batch(1))
    x = _batch(1, 5)  # the failures were passing: the backend works on
    np.testing.assert_array_equal(backend.forward(x), fake_depth(x))


def test_the_device_is_chosen_and_made_current_on_the_thread_that_runs(fake_gpu):
    engine, cudart, fake_trt = fake_gpu(devices=2)
    backend = trt_backend.TensorRTBackend(engine, "cuda:1")
    assert cudart.called("cudaSetDevice")[0] == (1,) and backend.device == "cuda:1"
    results = []
    worker = threading.Thread(target=lambda: results.append(backend.forward(_batch(1))))
    worker.start()
    worker.join()
    assert len(results) == 1 and fake_trt.runs[-1]["device"] == 1  # a new thread starts on device 0
    with pytest.raises(BackendError, match="device cuda:2 does not exist; CUDA sees 2 device"):
        trt_backend.TensorRTBackend(engine, "cuda:2")
    with pytest.raises(BackendError, match="device must be cuda or cuda:N, got 'cuda:x'"):
        trt_backend.TensorRTBackend(engine, "cuda:x")


@pytest.mark.parametrize(
    "status, says", [(100, "no CUDA-capable device"), (35, "driver version is insufficient")]
)
def test_without_a_usable_gpu_the_backend_says_why(fake_gpu, status, says):
    engine, cudart, fake_trt = fake_gpu(count_status=status)
    with pytest.raises(BackendUnavailableError, match=f"NVIDIA GPU with a working driver.*{says}"):
        trt_backend.TensorRTBackend(engine, "cuda")
    engine, cudart, fake_trt = fake_gpu(devices=0)
    with pytest.raises(BackendUnavailableError, match="no usable CUDA device"):
        trt_backend.TensorRTBackend(engine, "cuda")


def test_an_engine_tensorrt_cannot_load_or_with_wrong_io_is_refused_without_leaks(fake_gpu):
    engine, cudart, fake_trt = fake_gpu()
    engine.write_bytes(b"an engine from another TensorRT")
    with pytest.raises(BackendError, match="cannot load this engine .* rebuild it from the .onnx"):
        trt_backend.TensorRTBackend(engine, "cuda")
    engine, cudart, fake_trt = fake_gpu(io_type="INT8")
    with pytest.raises(BackendError, match="unsupported I/O data type"):
        trt_backend.TensorRTBackend(engine, "cuda")
    assert cudart.held() == {"device": 0, "pinned": 0, "streams": 0}


def test_an_onnx_is_built_once_under_a_key_with_the_gpu_name(fake_gpu, monkeypatch, onnx_path, tmp_path):
    engine, cudart, fake_trt = fake_gpu(devices=2)
    builds = []

    def fake_build(onnx, out, precision, workspace, timing):
        builds.append((onnx, out, precision, workspace, timing))
        out.parent.mkdir(parents=True, exist_ok=True)
        return write_fake_engine(out, INFO, precision, "cd" * 32)

    monkeypatch.setattr(trt_backend, "build_engine", fake_build)
    cache = tmp_path / "cache"
    backend = trt_backend.TensorRTBackend(
        onnx_path, "cuda:1", "fp16", cache_dir=cache, workspace_bytes=1 << 20
    )
    key = engine_cache_key(onnx_path.read_bytes(), fake_trt.__version__, "Fake GPU 1", "fp16")
    assert builds == [
        (
            onnx_path,
            cache / f"net-{key}.engine",
            "fp16",
            1 << 20,
            cache / timing_cache_name("10.13.0.35", "Fake GPU 1"),
        )
    ]
    assert backend.engine_path == cache / f"net-{key}.engine" and backend.source == onnx_path
    x = _batch(1)
    np.testing.assert_array_equal(backend.forward(x), fake_depth(x))
    trt_backend.TensorRTBackend(onnx_path, "cuda:1", "fp16", cache_dir=cache)  # cached: no second build
    assert len(builds) == 1
