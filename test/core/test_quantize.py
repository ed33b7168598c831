"""int8 export (`fg-depth export --quantize int8`): ONNX Runtime's static QDQ quantisation of a DepthNet
calibrated on frames of the training data or of a given source, run with real ONNX Runtime through
DepthEstimator and `fg-depth predict`; the calibration sources; the int8 model's place in backend
selection."""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fg_depth_core.camera import Intrinsics
from fg_depth_core.cli import main
from fg_depth_core.config import Config
from fg_depth_core.data.folder import write_stereo_folder
from fg_depth_core.data.world import render_frame
from fg_depth_core.deploy.backends import BackendError, Selection, select_backend
from fg_depth_core.deploy.calibration import (
    CalibrationError,
    calibration_frames,
    path_frames,
    pick_indices,
    source_kind,
    training_frames,
)
from fg_depth_core.deploy.estimator import DepthEstimator
from fg_depth_core.deploy.export import export_onnx
from fg_depth_core.deploy.model_info import ModelInfo, ModelInfoError
from fg_depth_core.deploy.onnx_io import read_onnx_info
from fg_depth_core.deploy.quantize import QuantizationError, float_head, quantize_int8

NET_W, NET_H = 128, 64
EVERYTHING = {"torch", "cuda", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt"}


def world_folder(path: Path, frames: int = 3) -> Path:
    """A stereo folder of the built-in world's first train frames (640x192)."""
    cfg = Config().data.synth
    write_stereo_folder(path, ((f"{i:03d}", render_frame(cfg, "train", i)) for i in range(frames)))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, write_depthnet_checkpoint):
    """A random-weight DepthNet checkpoint (128x64), its float32 export and its int8 export through the CLI,
    calibrated on 3 frames of a stereo folder; and what the CLI printed."""
    folder = tmp_path_factory.mktemp("int8")
    pt = write_depthnet_checkpoint(folder / "run" / "best.pt", NET_W, NET_H)
    source = world_folder(folder / "pairs")
    float_path = folder / "float.onnx"
    export_onnx(pt, float_path)
    printed = io.StringIO()
    argv = ["export", "--checkpoint", str(pt), "--quantize", "int8", "--calibration", str(source)]
    with contextlib.redirect_stdout(printed):
        assert main(argv + ["--calibration-frames", "3"]) == 0
    return {"pt": pt, "float": float_path, "int8": pt.with_suffix(".onnx"), "printed": printed.getvalue()}


def _world_image(width: int = 320, height: int = 96) -> np.ndarray:
    import cv2

    return cv2.resize(render_frame(Config().data.synth, "test", 1).left, (width, height))


# ------------------------------------------------------------------------------------------- the model


def test_the_int8_export_is_marked_quantised_int8_and_carries_int8_weights(exported):
    assert "int8 (QDQ: per-channel int8 weights, uint8 activations" in exported["printed"]
    assert "calibrating int8 quantisation on 3 of 3 frames of stereo folder" in exported["printed"]
    info = read_onnx_info(exported["int8"])
    assert info.quantization == "int8" and (info.width, info.height) == (NET_W, NET_H)
    assert read_onnx_info(exported["float"]).quantization == "none"
    model = onnx.load(str(exported["int8"]))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    # Conv weights are int8 with one scale per output channel; activations carry uint8 zero points.
    int8_kernels = [w for w in weights.values() if w.dtype == np.int8 and w.ndim == 4]
    assert len(int8_kernels) >= 30
    scales = [
        weights[n.input[1]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and weights.get(n.input[0]) is not None
        and weights[n.input[0]].ndim == 4
    ]
    assert scales and all(s.ndim == 1 and len(s) > 1 for s in scales)
    assert any(w.dtype == np.uint8 for w in weights.values())
    assert exported["int8"].stat().st_size < 0.35 * exported["float"].stat().st_size


def test_the_output_head_stays_float(exported):
    # From the output back to the last convolution no tensor is quantised: 256 levels of disparity would
    # collapse every far depth into one value.
    model = onnx.load(str(exported["int8"]))
    producer = {o: n for n in model.graph.node for o in n.output}
    node = producer["depth"]
    chain = []
    while node.op_type != "Conv":
        chain.append(node.op_type)
        node = producer[node.input[0]]
    assert chain == ["Reciprocal", "Add", "Mul", "Sigmoid"]
    head_conv = node
    weights = {t.name: t for t in model.graph.initializer}
    assert numpy_helper.to_array(weights[head_conv.input[1]]).dtype == np.float32  # the head conv is float
    consumers = [n.op_type for n in model.graph.node if head_conv.output[0] in n.input]
    assert consumers == ["Sigmoid"]  # and its output is not quantised
    # float_head finds exactly that head in the float model.
    float_model = onnx.load(str(exported["float"]))
    names = {n.name: n.op_type for n in float_model.graph.node}
    head = float_head(float_model)
    assert sorted(names[n] for n in head) == ["Add", "Conv", "Mul", "Reciprocal", "Sigmoid"]


def test_estimator_runs_the_int8_model_close_to_float32(exported):
    image = _world_image()
    camera = Intrinsics(185.5, 185.5, 159.5, 47.5, 320, 96)
    quantised = DepthEstimator(exported["int8"])
    reference = DepthEstimator(exported["float"])
    assert (quantised.backend_name, quantised.device) == ("onnxruntime", "cpu")
    assert quantised.info.quantization == "int8"
    assert "quantization='int8'" in repr(quantised)
    got, expected = quantised.predict(image, camera), reference.predict(image, camera)
    assert got.shape == expected.shape == (96, 320) and np.all(np.isfinite(got))
    relative = np.abs(got - expected) / expected
    assert float(np.mean(relative)) < 0.02 and not np.array_equal(got, expected)
    # The dynamic batch axis survives quantisation.
    batch = np.random.default_rng(0).random((2, 3, NET_H, NET_W), dtype=np.float32)
    assert quantised.backend.forward(batch).shape == (2, 1, NET_H, NET_W)


def test_predict_cli_runs_the_int8_model(exported, tmp_path):
    import cv2

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), cv2.cvtColor(_world_image(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(exported["int8"]), "--image", str(image), "--out", str(out)]) == 0
    depth = np.load(out / "frame.npy")
    expected = DepthEstimator(exported["int8"]).predict(_world_image())
    np.testing.assert_allclose(depth, expected, rtol=1e-5)


def test_the_benchmarks_int8_model_is_the_exporters_quantisation(exported, tmp_path):
    from fg_depth_core.commands.bench import BENCH_CALIBRATION_FRAMES, quantize_for_bench, world_images

    out = quantize_for_bench(exported["float"], tmp_path / "bench_int8.onnx")
    assert read_onnx_info(out).quantization == "int8"
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    images = world_images(BENCH_CALIBRATION_FRAMES, NET_W, NET_H)
    assert len(images) == BENCH_CALIBRATION_FRAMES and images[0].shape == (NET_H, NET_W, 3)
    assert not np.array_equal(images[0], images[1])  # different scenes


@pytest.mark.slow
def test_default_calibration_uses_the_checkpoints_training_data(exported, tmp_path):
    # The checkpoint's config names the built-in world: its train split is rendered on the fly.
    lines = []
    out = tmp_path / "default.onnx"
    info = export_onnx(exported["pt"], out, quantize="int8", calibration_frames=2, log=lines.append)
    assert info.quantization == "int8" and read_onnx_info(out) == info
    assert lines == [
        "calibrating int8 quantisation on 2 of 200 frames of the built-in world's train split (seed 0, "
        "rendered at 640x192)"
    ]


# ------------------------------------------------------------------------------------ calibration sources


def test_pick_indices_spreads_frames_evenly():
    assert pick_indices(10, 3) == [0, 4, 9] or pick_indices(10, 3) == [0, 5, 9]
    assert pick_indices(5, 10) == [0, 1, 2, 3, 4]
    assert pick_indices(7, 1) == [3]
    assert pick_indices(100, 4) == [0, 33, 66, 99]
    with pytest.raises(CalibrationError, match="expected >= 1, got 0"):
        pick_indices(10, 0)
    with pytest.raises(CalibrationError, match="holds no frames"):
        pick_indices(0, 3)


def test_source_kinds_are_told_apart_by_their_layout(tmp_path):
    from kitti_helpers import DRIVE, write_date, write_frame

    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    mcap = tmp_path / "run.mcap"
    mcap.write_bytes(b"")
    folder = world_folder(tmp_path / "folder", frames=1)
    synth = tmp_path / "synth"
    shutil.copytree(folder, synth / "train")
    kitti = tmp_path / "kitti"
    write_date(kitti)
    write_frame(kitti / DRIVE[:10] / DRIVE, 0, {2: np.zeros((8, 8, 3), np.uint8)})
    assert [source_kind(p) for p in (bag, mcap, folder, synth, kitti)] == [
        "bag", "bag", "folder", "synth", "kitti"
    ]  # fmt: skip
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    for path, message in (
        (tmp_path / "missing", "not found"),
        (tmp_path / "notes.txt", "not a rosbag2 storage file"),
        (tmp_path / "empty", "not a calibration source; expected a rosbag2 recording"),
    ):
        with pytest.raises(CalibrationError, match=message):
            source_kind(path)


def test_path_frames_read_the_left_views_of_folders_synth_and_kitti(tmp_path):
    from kitti_helpers import DRIVE, write_date, write_frame

    folder = world_folder(tmp_path / "folder", frames=3)
    frames = path_frames(folder, 2)
    images = list(frames.images())
    assert frames.description.startswith("2 of 3 frames of stereo folder")
    np.testing.assert_array_equal(images[1], render_frame(Config().data.synth, "train", 2).left)
    shutil.copytree(folder, tmp_path / "synth" / "train")
    assert len(list(path_frames(tmp_path / "synth", 5).images())) == 3
    kitti = tmp_path / "kitti"
    write_date(kitti)
    views = {i: np.full((10, 20, 3), 10 * i, np.uint8) for i in range(4)}
    for index in range(4):
        write_frame(kitti / DRIVE[:10] / DRIVE, index, {2: views[index]})  # no right view: not needed
    kitti_frames = path_frames(kitti, 2)
    assert [int(img[0, 0, 0]) for img in kitti_frames.images()] == [0, 30]


@pytest.mark.slow
def test_a_bag_is_rectified_into_a_temporary_folder_and_sampled(tmp_path, exported):
    from bag_helpers import BagSpec, render_frames, write_stereo_bag

    bag = write_stereo_bag(tmp_path / "bag", render_frames(4), BagSpec(frames=4))
    with calibration_frames(exported["pt"], {}, count=2, path=bag) as frames:
        images = list(frames.images())
        work = frames.root
        assert work is not None and (work / "calib.yaml").is_file()
    # Every 2nd of the 4 pairs was rectified, into a folder that is gone once the block ends.
    assert frames.description.startswith("2 of 2 frames of bag") and len(images) == 2
    assert images[0].ndim == 3 and images[0].dtype == np.uint8 and images[0].shape[0] > 100
    assert not work.exists()


def test_training_data_that_is_not_here_names_the_data_and_the_way_out(tmp_path):
    cfg = Config()
    cfg.data.dataset, cfg.data.path = "kitti", str(tmp_path / "kitti_raw")
    message = r"training data \(kitti at .*kitti_raw\) cannot be read here.*--calibration PATH"
    with pytest.raises(CalibrationError, match=message):
        training_frames(cfg.to_dict(), tmp_path, 4)
    cfg.data.dataset, cfg.data.path = "folder", str(world_folder(tmp_path / "pairs", frames=2))
    frames = training_frames(cfg.to_dict(), tmp_path, 4)
    assert frames.description.startswith("2 of 2 frames of the training data (folder")


def test_cli_argument_errors(exported, tmp_path, capsys):
    pt = str(exported["pt"])
    cases = [
        (["--calibration", str(tmp_path)], "--calibration applies to --quantize int8 only"),
        (["--calibration-frames", "4"], "--calibration-frames applies to --quantize int8 only"),
        (["--quantize", "int8", "--calibration-frames", "0"], "--calibration-frames: expected >= 1, got 0"),
        (["--quantize", "int8", "--format", "tensorrt"], "--quantize int8 applies to --format onnx only"),
        (["--quantize", "int8", "--calibration", str(tmp_path / "nowhere")], "nowhere: not found"),
    ]
    for extra, message in cases:
        assert main(["export", "--checkpoint", pt, "--out", str(tmp_path / "x.onnx"), *extra]) != 0
        assert message in capsys.readouterr().err, extra
    assert not (tmp_path / "x.onnx").exists()


def test_quantize_int8_refuses_missing_or_misshapen_calibration_images(exported):
    model = onnx.load(str(exported["float"]))
    info = read_onnx_info(exported["float"])
    with pytest.raises(QuantizationError, match="no images were given"):
        quantize_int8(model, [], info)
    message = r"expected float32 \(1, 3, 64, 128\), got float32 \(1, 3, 32, 64\)"
    with pytest.raises(QuantizationError, match=message):
        quantize_int8(model, [np.zeros((1, 3, 32, 64), np.float32)], info)
    with pytest.raises(QuantizationError, match="activations: expected one of"):
        quantize_int8(model, [np.zeros((1, 3, 64, 128), np.float32)], info, activations="int4")


# --------------------------------------------------------------------------------------------- metadata


def test_quantization_metadata_round_trips_and_is_checked():
    info = ModelInfo(160, 96, 0.1, 100.0, 92.75, 0.54, quantization="int8")
    assert ModelInfo.from_metadata(info.to_metadata()).quantization == "int8"
    older = {k: v for k, v in info.to_metadata().items() if not k.endswith("quantization")}
    assert ModelInfo.from_metadata(older).quantization == "none"  # models exported before int8 existed
    with pytest.raises(ModelInfoError, match=r"quantization must be one of \['none', 'int8'\], got 'int4'"):
        ModelInfo(160, 96, 0.1, 100.0, 92.75, 0.54, quantization="int4")


# -------------------------------------------------------------------------------------- backend choice


@pytest.mark.parametrize(
    "requested, device, available, expected",
    [
        ("auto", "auto", EVERYTHING, ("onnxruntime", "cpu")),  # not tensorrt, not the GPU
        ("auto", "cpu", EVERYTHING, ("onnxruntime", "cpu")),
        ("onnxruntime", "auto", EVERYTHING, ("onnxruntime", "cpu")),
        ("auto", "auto", {"onnxruntime"}, ("onnxruntime", "cpu")),
    ],
)
def test_an_int8_model_is_run_by_onnxruntime_on_the_cpu(requested, device, available, expected):
    assert select_backend(requested, device, "onnx", available, "m.onnx", "int8") == Selection(*expected)


@pytest.mark.parametrize(
    "requested, device, message",
    [
        (
            "tensorrt",
            "cuda",
            "quantised for CPUs and runs with backend onnxruntime or openvino on device cpu",
        ),
        ("auto", "cuda", "runs on device cpu, not cuda"),
        ("onnxruntime", "cuda:1", "runs on device cpu, not cuda:1"),
        ("torch", "cpu", "cannot run an ONNX model"),
    ],
)
def test_an_int8_model_on_a_gpu_path_is_refused_with_what_to_run(requested, device, message):
    with pytest.raises(BackendError, match=message):
        select_backend(requested, device, "onnx", EVERYTHING, "m.onnx", "int8")


def test_tensorrt_refuses_an_int8_model_before_building(exported, monkeypatch):
    from fg_depth_core.deploy import tensorrt_build

    monkeypatch.setattr(tensorrt_build, "import_tensorrt", lambda: object())  # the system edge
    with pytest.raises(BackendError, match="int8 model is quantised for CPUs.*float32 .onnx"):
        tensorrt_build.build_engine(exported["int8"], exported["int8"].with_suffix(".engine"))
    assert not exported["int8"].with_suffix(".engine").exists()


# ------------------------------------------------------------------------------------------- openvino


@pytest.mark.parametrize(
    "requested, device, available, quantization, expected",
    [
        ("openvino", "auto", {"onnxruntime", "openvino"}, "none", ("openvino", "cpu")),
        ("openvino", "cpu", EVERYTHING | {"openvino"}, "none", ("openvino", "cpu")),
        ("openvino", "auto", {"openvino"}, "int8", ("openvino", "cpu")),
        # auto never picks it: an installed package does not change which runtime serves a model
        ("auto", "auto", {"onnxruntime", "openvino"}, "none", ("onnxruntime", "cpu")),
        ("auto", "cpu", {"onnxruntime", "openvino"}, "int8", ("onnxruntime", "cpu")),
    ],
)
def test_openvino_runs_an_onnx_model_on_the_cpu_when_asked_for(
    requested, device, available, quantization, expected
):
    chosen = select_backend(requested, device, "onnx", available, "m.onnx", quantization)
    assert chosen == Selection(*expected)


@pytest.mark.parametrize(
    "device, kind, available, message",
    [
        ("auto", "onnx", {"onnxruntime"}, "backend openvino is not installed: install the OpenVINO runtime"),
        ("cuda", "onnx", EVERYTHING | {"openvino"}, "runs on the CPU here, got device 'cuda'"),
        ("auto", "torch", EVERYTHING | {"openvino"}, "export it first with fg-depth export"),
        ("auto", "engine", EVERYTHING | {"openvino"}, "engines run only with tensorrt"),
    ],
)
def test_openvino_refusals_say_what_to_do(device, kind, available, message):
    with pytest.raises(BackendError, match=message):
        select_backend("openvino", device, kind, available, "m.onnx")


#: The OpenVINO side of the comparison below, in a child process: with OpenVINO's CPU runtime loaded and run
#: in the pytest process, a later test's subprocess launch died of SIGSEGV in the parent right after vfork
#: (whole test/core run, not reproducible alone); a child keeps OpenVINO's native threads out of the tests.
OPENVINO_CHILD = r"""
import json, sys
import numpy as np
from fg_depth_core.deploy.estimator import DepthEstimator
from fg_depth_core.deploy.onnx_io import read_onnx_info

float_path, int8_path, inputs, out = sys.argv[1:5]
given = np.load(inputs)
report, arrays = {}, {}
for key, path in (("float", float_path), ("int8", int8_path)):
    estimator = DepthEstimator(path, backend="openvino", device="cpu", threads=1)
    report[key] = {
        "backend": type(estimator.backend).__name__,
        "device": estimator.device,
        "same_info": estimator.info == read_onnx_info(path),
        "batch_limit": estimator.backend.batch_limit,
    }
    arrays[key] = estimator.backend.forward(given["batch"])
arrays["predict"] = DepthEstimator(float_path, backend="openvino").predict(given["image"])
np.savez(out, **arrays)
print(json.dumps(report))
"""


def test_openvino_backend_runs_the_float32_and_int8_models_like_onnxruntime(exported, tmp_path):
    pytest.importorskip("openvino")
    import json
    import subprocess

    from fg_depth_core.deploy.backends.onnxruntime_backend import OnnxRuntimeBackend

    batch = np.random.default_rng(3).random((3, 3, NET_H, NET_W), dtype=np.float32)
    image = _world_image()
    inputs, out = tmp_path / "inputs.npz", tmp_path / "openvino.npz"
    np.savez(inputs, batch=batch, image=image)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            OPENVINO_CHILD,
            str(exported["float"]),
            str(exported["int8"]),
            str(inputs),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    openvino = np.load(out)
    for key, rtol in (("float", 1e-4), ("int8", 0.05)):
        assert report[key]["backend"] == "OpenVinoBackend" and report[key]["device"] == "cpu"
        assert report[key]["same_info"]  # the metadata, read by OpenVINO itself
        assert report[key]["batch_limit"] == 1  # compiled for batch 1; larger batches are split
        got = openvino[key]
        expected = OnnxRuntimeBackend(exported[key]).forward(batch)
        assert got.shape == (3, 1, NET_H, NET_W) and got.dtype == np.float32
        assert float(np.mean(np.abs(got - expected) / expected)) < rtol, key
        assert not np.array_equal(got[0], got[1])  # each image of the batch got its own depth
    np.testing.assert_allclose(
        openvino["predict"],
        DepthEstimator(exported["float"], backend="onnxruntime").predict(image),
        rtol=1e-3,
    )


def test_openvino_backend_errors_name_the_file_and_what_to_do(exported, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from fg_depth_core.deploy.backends.openvino_backend import OpenVinoBackend

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not an onnx model\xff" * 10)
    with pytest.raises(BackendError, match=r"corrupt.onnx: not a readable ONNX model \(OpenVINO"):
        OpenVinoBackend(corrupt)
    with pytest.raises(BackendError, match="runs on the CPU here, got device 'cuda'"):
        OpenVinoBackend(exported["float"], device="cuda")
    with pytest.raises(BackendError, match="missing.onnx: model file not found"):
        OpenVinoBackend(tmp_path / "missing.onnx")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(BackendError, match=r"not installed: install the OpenVINO runtime: pip install"):
        OpenVinoBackend(exported["float"])
