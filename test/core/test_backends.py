"""Backends: the selection logic and its errors, ONNX Runtime's providers, torch vs ONNX Runtime through
DepthEstimator, TorchScript, batch splitting."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch

from fg_depth_core.camera import Intrinsics
from fg_depth_core.data.render import render_stereo
from fg_depth_core.data.world import street_scene
from fg_depth_core.deploy import backends
from fg_depth_core.deploy.backends import (
    Backend,
    BackendError,
    BackendUnavailableError,
    Selection,
    create_backend,
    model_kind,
    probe_available,
    select_backend,
)
from fg_depth_core.deploy.backends.onnxruntime_backend import ort_providers
from fg_depth_core.deploy.backends.torch_backend import TorchBackend, is_torchscript, save_torchscript
from fg_depth_core.deploy.estimator import DepthEstimator
from fg_depth_core.deploy.export import export_onnx
from fg_depth_core.deploy.model_info import ModelInfo, ModelInfoError

NET_W, NET_H = 128, 64
CPU_ONLY = {"torch", "onnxruntime"}
EVERYTHING = {"torch", "cuda", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt"}


@pytest.fixture(scope="module")
def models(tmp_path_factory, write_depthnet_checkpoint):
    """A checkpoint and its ONNX export (dynamic batch) at 128x64."""
    folder = tmp_path_factory.mktemp("backends")
    pt = write_depthnet_checkpoint(folder / "net.pt", NET_W, NET_H, train_focal=74.2)
    onnx = folder / "net.onnx"
    export_onnx(pt, onnx)
    return {"pt": pt, "onnx": onnx}


# ---------------------------------------------------------------------------------------------- selection


@pytest.mark.parametrize(
    "requested, device, kind, available, expected",
    [
        # auto on an .onnx: tensorrt > onnxruntime on the GPU > onnxruntime on the CPU
        ("auto", "auto", "onnx", CPU_ONLY, ("onnxruntime", "cpu")),
        ("auto", "auto", "onnx", CPU_ONLY | {"onnxruntime-cuda"}, ("onnxruntime", "cpu")),  # no GPU here
        ("auto", "auto", "onnx", CPU_ONLY | {"onnxruntime-cuda", "cuda"}, ("onnxruntime", "cuda")),
        ("auto", "auto", "onnx", CPU_ONLY | {"onnxruntime-tensorrt", "cuda"}, ("onnxruntime", "cuda")),
        ("auto", "auto", "onnx", EVERYTHING, ("tensorrt", "cuda")),
        ("auto", "cuda:1", "onnx", EVERYTHING - {"tensorrt"}, ("onnxruntime", "cuda:1")),
        ("auto", "cpu", "onnx", EVERYTHING, ("onnxruntime", "cpu")),
        ("auto", "auto", "onnx", CPU_ONLY | {"tensorrt"}, ("onnxruntime", "cpu")),  # TensorRT, no CUDA
        # auto on a checkpoint: torch, on CUDA when there is one; on an engine: tensorrt
        ("auto", "auto", "torch", EVERYTHING, ("torch", "cuda")),
        ("auto", "auto", "torch", CPU_ONLY, ("torch", "cpu")),
        ("auto", "auto", "engine", {"tensorrt", "cuda"}, ("tensorrt", "cuda")),
        # explicit backends are never swapped for a faster one
        ("onnxruntime", "auto", "onnx", CPU_ONLY | {"tensorrt", "cuda"}, ("onnxruntime", "cpu")),
        ("onnxruntime", "cuda", "onnx", EVERYTHING, ("onnxruntime", "cuda")),
        ("torch", "cpu", "torch", EVERYTHING, ("torch", "cpu")),
        ("tensorrt", "cuda:0", "onnx", EVERYTHING, ("tensorrt", "cuda:0")),
    ],
)
def test_select_backend(requested, device, kind, available, expected):
    assert select_backend(requested, device, kind, available) == Selection(*expected)


@pytest.mark.parametrize(
    "requested, device, kind, available, error, message",
    [
        ("onnxruntime", "auto", "onnx", {"torch"}, BackendUnavailableError, "pip install onnxruntime"),
        ("tensorrt", "auto", "onnx", CPU_ONLY | {"cuda"}, BackendUnavailableError, "pip install tensorrt"),
        ("tensorrt", "auto", "engine", CPU_ONLY, BackendUnavailableError, "python3-libnvinfer"),
        ("tensorrt", "auto", "onnx", CPU_ONLY | {"tensorrt"}, BackendUnavailableError, "NVIDIA GPU"),
        ("tensorrt", "cpu", "onnx", EVERYTHING, BackendError, "CUDA devices only"),
        ("auto", "auto", "engine", CPU_ONLY | {"cuda"}, BackendUnavailableError, "pip install tensorrt"),
        ("auto", "auto", "onnx", {"torch", "cuda"}, BackendUnavailableError, "pip install onnxruntime"),
        ("auto", "cuda", "onnx", CPU_ONLY | {"cuda"}, BackendUnavailableError, "onnxruntime-gpu"),
        ("onnxruntime", "cuda", "onnx", CPU_ONLY | {"cuda"}, BackendUnavailableError, "onnxruntime-gpu"),
        ("auto", "cuda", "torch", CPU_ONLY, BackendUnavailableError, "NVIDIA GPU"),
        ("onnxruntime", "auto", "torch", EVERYTHING, BackendError, "export it first with fg-depth export"),
        ("tensorrt", "auto", "torch", EVERYTHING, BackendError, "export it first with fg-depth export"),
        ("torch", "auto", "onnx", EVERYTHING, BackendError, "cannot run an ONNX model"),
        ("onnxruntime", "auto", "engine", EVERYTHING, BackendError, "engines run only with tensorrt"),
        ("tflite", "auto", "onnx", EVERYTHING, BackendError, "backend: expected one of"),
        ("auto", "gpu", "onnx", EVERYTHING, BackendError, "device: expected auto, cpu, cuda or cuda:N"),
    ],
)
def test_select_backend_errors(requested, device, kind, available, error, message):
    with pytest.raises(error, match=message):
        select_backend(requested, device, kind, available, "M")


def test_probe_reports_what_is_importable_here():
    found = probe_available()
    assert {"torch", "onnxruntime"} <= found
    assert ("tensorrt" in found) == (importlib.util.find_spec("tensorrt") is not None)
    assert ("cuda" in found) == torch.cuda.is_available()
    assert "cuda" not in probe_available(cuda=False)


def test_model_kinds_by_suffix():
    assert [model_kind(p) for p in ("a.pt", "b.PTH", "c.ckpt", "d.onnx", "e.engine", "f.plan", "g.trt")] == [
        "torch", "torch", "torch", "onnx", "engine", "engine", "engine"
    ]  # fmt: skip
    with pytest.raises(BackendError, match=r"unknown model file type '.tflite'"):
        model_kind("m.tflite")


def test_create_backend_errors_name_the_file_and_what_to_do(models, tmp_path, monkeypatch):
    with pytest.raises(BackendError, match="missing.onnx: model file not found"):
        create_backend(tmp_path / "missing.onnx")
    with pytest.raises(
        BackendError, match=f"{models['pt']}: backend onnxruntime .* fg-depth export --checkpoint"
    ):
        create_backend(models["pt"], backend="onnxruntime")
    # An explicitly requested runtime that is absent is an error naming the package, never a fallback.
    monkeypatch.setattr(backends, "probe_available", lambda cuda=True: frozenset(CPU_ONLY))
    with pytest.raises(BackendUnavailableError, match="pip install tensorrt"):
        create_backend(models["onnx"], backend="tensorrt")
    with pytest.raises(BackendError, match="fp16 with backend torch needs a CUDA device"):
        create_backend(models["pt"], backend="torch", device="cpu", precision="fp16")
    with pytest.raises(BackendError, match="fp16 with backend onnxruntime needs a CUDA device"):
        create_backend(models["onnx"], backend="onnxruntime", device="cpu", precision="fp16")


# ------------------------------------------------------------------------------------ onnxruntime providers


def test_ort_providers_cpu_cuda_and_tensorrt_with_caches(tmp_path):
    assert ort_providers("cpu", "fp32", ["CPUExecutionProvider"]) == [("CPUExecutionProvider", {})]
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = ort_providers("cuda:1", "fp16", available, tmp_path, workspace_bytes=1 << 28)
    assert [name for name, _ in providers] == available
    trt = providers[0][1]
    assert trt["device_id"] == "1" and providers[1][1] == {"device_id": "1"}
    assert trt["trt_fp16_enable"] == "True" and trt["trt_max_workspace_size"] == str(1 << 28)
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_timing_cache_enable"] == "True"
    assert (
        trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path / "onnxruntime" / "fp16")
    )
    fp32 = ort_providers("cuda", "fp32", available, tmp_path)[0][1]
    assert fp32["trt_fp16_enable"] == "False" and fp32["device_id"] == "0"
    assert fp32["trt_engine_cache_path"] != trt["trt_engine_cache_path"]  # fp32 and fp16 engines coexist
    no_cache = ort_providers("cuda", "fp32", available)[0][1]
    assert no_cache["trt_engine_cache_enable"] == "False" and "trt_engine_cache_path" not in no_cache
    cuda_only = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert [n for n, _ in ort_providers("cuda", "fp32", cuda_only)] == cuda_only
    with pytest.raises(BackendUnavailableError, match="fp16 needs the TensorRT execution provider"):
        ort_providers("cuda", "fp16", cuda_only)
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        ort_providers("cuda", "fp32", ["CPUExecutionProvider"])
    with pytest.raises(BackendError, match="needs a CUDA device"):
        ort_providers("cpu", "fp16", available)


# ------------------------------------------------------------------------------ same depth, any backend


def test_onnxruntime_and_torch_give_the_same_depth(models):
    torch_est = DepthEstimator(models["pt"], backend="torch", device="cpu")
    ort_est = DepthEstimator(models["onnx"])  # auto on a CPU-only machine with onnxruntime
    assert (torch_est.backend_name, ort_est.backend_name) == ("torch", "onnxruntime")
    assert ort_est.info == torch_est.info  # exported at the training size: same input size and focal
    camera = Intrinsics(300.0, 300.0, 319.5, 179.5, 640, 360)
    image = render_stereo(street_scene(11), camera, 0.54, antialias=True).left
    a, b = torch_est.predict(image, camera), ort_est.predict(image, camera)
    assert a.shape == (360, 640)
    assert np.abs(a - b).max() / np.abs(a).max() <= 1e-4
    # A batch (dynamic batch axis of the export) of different images gives the per-image depths.
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (NET_H, NET_W, 3), dtype=np.uint8) for _ in range(3)]
    for x, y in zip(torch_est.predict_batch(images), ort_est.predict_batch(images)):
        assert np.abs(x - y).max() / np.abs(x).max() <= 1e-4
    spread = np.ptp([d.mean() for d in torch_est.predict_batch(images)])
    assert spread > 1e-3  # the images do give different depths, so the comparison means something


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # deprecated in torch 2.14, still supported
def test_torchscript_runs_like_the_checkpoint_and_carries_its_info(models, tmp_path):
    ts = tmp_path / "net.ts.pt"
    info = save_torchscript(models["pt"], ts)
    assert is_torchscript(ts) and not is_torchscript(models["pt"]) and not is_torchscript(models["onnx"])
    scripted, eager = TorchBackend(ts), TorchBackend(models["pt"])
    assert scripted.torchscript and not eager.torchscript
    assert scripted.info == eager.info == info
    x = np.random.default_rng(1).random((2, 3, NET_H, NET_W), dtype=np.float32)
    np.testing.assert_allclose(scripted.forward(x), eager.forward(x), rtol=1e-5)
    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(bare))
    with pytest.raises(ModelInfoError, match="TorchScript without fg-depth metadata"):
        TorchBackend(bare)


# ---------------------------------------------------------------------------------------------- Backend


class Recorder(Backend):
    """A backend returning the mean of each image as its depth, recording the batch sizes it is given."""

    name = "recorder"

    def __init__(self, limit=None, shape=None) -> None:
        super().__init__(ModelInfo(NET_W, NET_H, 0.1, 100.0, 74.2, 0.54), "cpu")
        self.batch_limit = limit
        self.calls: List[int] = []
        self.shape = shape

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        out = np.broadcast_to(batch.mean(axis=(1, 2, 3))[:, None, None, None], (len(batch), 1, NET_H, NET_W))
        return np.zeros(self.shape, np.float32) if self.shape else out.copy()


def test_forward_splits_batches_beyond_the_runtime_limit_in_order():
    x = np.random.default_rng(2).random((5, 3, NET_H, NET_W), dtype=np.float32)
    limited, free = Recorder(limit=2), Recorder()
    out = limited.forward(x)
    assert limited.calls == [2, 2, 1] and out.shape == (5, 1, NET_H, NET_W)
    np.testing.assert_allclose(out[:, 0, 0, 0], x.mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(free.forward(x), out)
    assert free.calls == [5]


def test_forward_checks_its_input_and_the_runtime_output():
    backend = Recorder()
    for bad, message in [
        (np.zeros((1, 3, 32, NET_W), np.float32), r"expected a batch \(B,3,64,128\)"),
        (np.zeros((3, NET_H, NET_W), np.float32), r"expected a batch"),
        (np.zeros((1, 3, NET_H, NET_W), np.float64), "float32 batch, got 1 images of float64"),
        (np.zeros((0, 3, NET_H, NET_W), np.float32), "non-empty"),
    ]:
        with pytest.raises(BackendError, match=message):
            backend.forward(bad)
    with pytest.raises(BackendError, match=r"returned shape \(1, 1, 32, 32\), expected \(1, 1, 64, 128\)"):
        Recorder(shape=(1, 1, 32, 32)).forward(np.zeros((1, 3, NET_H, NET_W), np.float32))


def test_estimator_from_a_backend_scales_its_output(tmp_path):
    # The recorder's depth is the image mean: a grey image of value v gives v/255 m before focal scaling.
    # Stretched 1280x720 -> 128x64: fx' = fy' = 148.4 px = 2 x 74.2 (fy 1669.5 px: 148.4 at 64 high).
    estimator = DepthEstimator.from_backend(Recorder(), "stretch")
    grey = np.full((720, 1280, 3), 51, np.uint8)
    camera = Intrinsics(1484.0, 1669.5, 639.5, 359.5, 1280, 720)
    np.testing.assert_allclose(estimator.predict(grey), 0.2, rtol=1e-6)
    np.testing.assert_allclose(estimator.predict(grey, camera), 0.4, rtol=1e-6)
    assert estimator.model_path == Path("<recorder backend>")


# ------------------------------------------------------------------------------------- fg-depth bench


@pytest.mark.slow
def test_fg_depth_bench_prints_the_table_and_keeps_the_rows_in_json(tmp_path, capsys):
    from fg_depth_core.cli import main
    from fg_depth_core.commands.bench import usable_cores

    out = tmp_path / "mine" / "bench.json"
    argv = ["bench", "--sizes", f"{NET_W}x{NET_H}", "--backends", "onnxruntime", "--no-gpu", "--threads", "1"]
    argv += ["--iterations", "2", "--warmup", "0", "--repeats", "1", "--image-size", "160x96"]
    argv += ["--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"| onnxruntime | cpu | fp32 | {NET_W}x{NET_H} |" in printed
    assert "target" not in printed  # the repository's issue targets are not the user's business
    kept = json.loads(out.read_text())
    (row,) = kept["rows"]
    assert "error" not in row, row
    assert (row["backend"], row["device"], row["threads"]) == ("onnxruntime", "cpu", 1)
    assert row["network"] == f"{NET_W}x{NET_H}"
    assert 0 < row["forward_ms"] <= row["p50_ms"] <= row["p95_ms"] and row["fps"] > 0
    assert (kept["iterations"], kept["warmup"], kept["repeats"], kept["image_size"]) == (2, 0, 1, [160, 96])
    assert kept["machine"]["cores"] == usable_cores() and kept["machine"]["onnxruntime"]


class _FakeDriver:
    """Stands in for libcuda (a system edge): cuInit's and cuDeviceGetCount's status codes and the count."""

    def __init__(self, init_status=0, count_status=0, count=0):
        self.init_status, self.count_status, self.count = init_status, count_status, count
        self.calls = []

    def cuInit(self, flags):
        self.calls.append(("cuInit", flags.value))
        return self.init_status

    def cuDeviceGetCount(self, pointer):
        self.calls.append(("cuDeviceGetCount",))
        pointer._obj.value = self.count
        return self.count_status


def test_the_cuda_probe_asks_the_driver_and_reads_failures_as_no_device():
    from fg_depth_core.deploy.cuda_probe import cuda_device_count

    two = _FakeDriver(count=2)
    assert cuda_device_count(lambda: two) == 2
    assert two.calls == [("cuInit", 0), ("cuDeviceGetCount",)]
    assert cuda_device_count(lambda: None) == 0  # no driver library
    assert cuda_device_count(lambda: _FakeDriver(init_status=100, count=2)) == 0  # CUDA_ERROR_NO_DEVICE
    assert cuda_device_count(lambda: _FakeDriver(count_status=3, count=2)) == 0  # not initialised
    # This machine has no NVIDIA driver: the real probe finds nothing, as torch does.
    assert (cuda_device_count() > 0) == torch.cuda.is_available()


def test_the_cuda_probe_for_a_pytorch_model_asks_torch(monkeypatch):
    monkeypatch.setattr(backends, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(backends, "_torch_cuda", lambda: False)  # e.g. a CPU build of torch beside a GPU
    assert "cuda" in probe_available() and "cuda" not in probe_available(torch_cuda=True)
