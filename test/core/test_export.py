"""ONNX export against PyTorch through real ONNX Runtime (CPU), the metadata it carries (ModelInfo), its
errors and atomic writing, and `fg-depth export` end to end."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from model_helpers import save_random_depthnet
from onnx import TensorProto, helper

from fg_depth_core import __version__
from fg_depth_core.cli import main
from fg_depth_core.config import Config, InferenceConfig
from fg_depth_core.deploy import export, tensorrt_build
from fg_depth_core.deploy.export import (
    ExportError,
    check_export_size,
    check_opset,
    export_info,
    export_onnx,
    write_onnx,
)
from fg_depth_core.deploy.model_info import METADATA_PREFIX, NORMALIZATION, ModelInfo, ModelInfoError
from fg_depth_core.deploy.onnx_io import read_onnx_info
from fg_depth_core.model.checkpoint import CheckpointError, load_checkpoint, load_model

#: Training input (W, H), focal (px at that size) and baseline (m) of the test checkpoint.
TRAIN_SIZE = (128, 64)
TRAIN_FOCAL = 74.2
BASELINE = 0.54
#: Export sizes (H, W) and the batch sizes run on each: the fixture exports the training size through
#: `fg-depth export` with its defaults (dynamic batch), another size through export_onnx with a static batch.
SIZES = ((64, 128), (96, 160))
BATCHES = {SIZES[0]: (1, 2), SIZES[1]: (1,)}


def tiny_checkpoint(path: Path) -> Config:
    """A randomly initialised ResNet-18 DepthNet saved as a checkpoint for a 128x64 input."""
    cfg = Config()
    cfg.data.width, cfg.data.height = TRAIN_SIZE
    save_random_depthnet(path, cfg, train_focal=TRAIN_FOCAL, baseline=BASELINE)
    return cfg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "net.pt"
    tiny_checkpoint(path)
    return path


@dataclass
class Exported:
    path: Path
    #: What export_onnx returned (None for the CLI export), and what the CLI printed ("" for export_onnx).
    info: Optional[ModelInfo]
    printed: str


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Dict[Tuple[int, int], Exported]:
    """(H, W) -> the export at that size (see SIZES)."""
    ckpt = tmp_path_factory.mktemp("run") / "best.pt"
    shutil.copyfile(checkpoint, ckpt)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--checkpoint", str(ckpt)]) == 0
    h, w = SIZES[1]
    static = tmp_path_factory.mktemp("onnx") / f"net_{w}x{h}.onnx"
    return {
        SIZES[0]: Exported(ckpt.with_suffix(".onnx"), None, printed.getvalue()),  # the default output
        SIZES[1]: Exported(static, export_onnx(checkpoint, static, h, w, dynamic_batch=False), ""),
    }


def run_ort(path: Path, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["depth"], {"image": image})[0]


def trivial_onnx(input_name: str = "x", output_name: str = "y") -> onnx.ModelProto:
    """A one-node Identity model: a valid ONNX file that is not an fg-depth model."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, 64, 128])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 3, 64, 128])
    graph = helper.make_graph([helper.make_node("Identity", [input_name], [output_name])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def expected_info(h: int, w: int) -> ModelInfo:
    """What the export at (h, w) must store, computed here from the checkpoint's numbers: the training
    focal length scales with the export width (the image keeps its field of view)."""
    return ModelInfo(
        width=w,
        height=h,
        min_depth=0.1,
        max_depth=100.0,
        train_focal=TRAIN_FOCAL * w / TRAIN_SIZE[0],
        train_baseline=BASELINE,
        normalization=NORMALIZATION,
        version=__version__,
    )


# ---------------------------------------------------------------------------------- ONNX vs PyTorch


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def test_onnxruntime_equals_pytorch(checkpoint, exported, size):
    h, w = size
    path = exported[size].path
    net, _, _ = load_model(checkpoint)
    rng = np.random.default_rng(h)
    for batch in BATCHES[size]:
        image = rng.random((batch, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            reference = net.predict(torch.from_numpy(image)).numpy()
        got = run_ort(path, image)
        assert got.shape == (batch, 1, h, w) and got.dtype == np.float32
        assert np.abs(got - reference).max() / np.abs(reference).max() <= 1e-4
        assert (np.abs(got - reference) / np.abs(reference)).max() <= 1e-4
        # The comparison can fail: the network's output varies over the image and between images.
        assert reference.std() > 1e-3


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def test_model_proto_names_shapes_opset(exported, size):
    h, w = size
    model = onnx.load(str(exported[size].path))
    onnx.checker.check_model(model, full_check=True)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] == export.DEFAULT_OPSET >= 17
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    assert [v.name for v in inputs] == ["image"] and [v.name for v in model.graph.output] == ["depth"]
    for value, channels in ((inputs[0], 3), (model.graph.output[0], 1)):
        tensor = value.type.tensor_type
        assert tensor.elem_type == TensorProto.FLOAT
        batch = tensor.shape.dim[0]
        if BATCHES[size] == (1,):
            assert batch.dim_value == 1 and not batch.dim_param
        else:
            assert batch.dim_param == "batch" and not batch.dim_value
        assert [d.dim_value for d in tensor.shape.dim[1:]] == [channels, h, w]


# ------------------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def test_metadata_round_trips_with_the_focal_at_the_export_size(checkpoint, exported, size):
    h, w = size
    path = exported[size].path
    info = read_onnx_info(path)
    assert info == expected_info(h, w)
    if exported[size].info is not None:
        assert exported[size].info == info and exported[size].info.config == info.config
    assert info.config == load_checkpoint(checkpoint)["config"] and info.config["data"]["width"] == 128
    # 160 px wide: 74.2 * 160 / 128 = 92.75 px.
    assert info.train_focal == pytest.approx({128: 74.2, 160: 92.75}[w], rel=1e-12)
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert props[METADATA_PREFIX + "width"] == str(w) and props[METADATA_PREFIX + "height"] == str(h)


def test_export_info_is_the_checkpoint_info_at_the_export_size():
    state = {
        "input_size": [640, 192],
        "train_focal": 720.0,
        "train_baseline": 0.54,
        "config": {"model": {"min_depth": 0.5, "max_depth": 80.0}},
    }
    same = export_info(state, 192, 640)
    assert same == ModelInfo(640, 192, 0.5, 80.0, 720.0, 0.54)
    wider = export_info(state, 320, 1024)
    assert (wider.width, wider.height, wider.train_focal) == (1024, 320, 1152.0)
    # Only the width sets the focal ratio: a taller export keeps the training focal length.
    assert export_info(state, 256, 640).train_focal == 720.0


def test_model_info_metadata_round_trip_and_defaults():
    info = ModelInfo(160, 96, 0.1, 100.0, 92.75, 0.54, config={"model": {"encoder": "resnet18"}, "x": [1, 2]})
    props = info.to_metadata()
    assert all(isinstance(v, str) and k.startswith(METADATA_PREFIX) for k, v in props.items())
    back = ModelInfo.from_metadata(props)
    assert back == info and back.config == info.config
    # Floats survive exactly (repr round trip), not to a few digits.
    odd = dataclasses.replace(info, train_focal=1 / 3)
    assert ModelInfo.from_metadata(odd.to_metadata()).train_focal == 1 / 3
    # normalization, version and config have defaults; the sizes and camera do not.
    minimal = {
        k: v for k, v in props.items() if k.split(".")[1] not in ("normalization", "version", "config")
    }
    parsed = ModelInfo.from_metadata(minimal)
    assert parsed == info and parsed.config == {}


@pytest.mark.parametrize(
    "key", ["width", "height", "min_depth", "max_depth", "train_focal", "train_baseline"]
)
def test_model_info_missing_key(key):
    props = ModelInfo(160, 96, 0.1, 100.0, 92.75, 0.54).to_metadata()
    del props[METADATA_PREFIX + key]
    with pytest.raises(ModelInfoError, match=rf"m\.onnx: not an fg-depth model: metadata 'fg_depth\.{key}'"):
        ModelInfo.from_metadata(props, source="m.onnx")


@pytest.mark.parametrize(
    "key, raw, message",
    [
        ("width", "wide", r"metadata 'fg_depth\.width' is not valid: 'wide'"),
        ("width", "0", r"input size must be positive, got 0x96"),
        ("min_depth", "200", r"depth range must satisfy 0 < min < max, got 200.0..100.0"),
        ("train_focal", "-5", r"focal > 0 and baseline > 0, got -5.0, 0.54"),
        ("train_baseline", "nan", r"focal > 0 and baseline > 0, got 92.75, nan"),
        ("config", "{not json", r"metadata 'fg_depth\.config' is not valid"),
    ],
)
def test_model_info_invalid_values(key, raw, message):
    props = ModelInfo(160, 96, 0.1, 100.0, 92.75, 0.54).to_metadata()
    props[METADATA_PREFIX + key] = raw
    with pytest.raises(ModelInfoError, match=r"^m\.onnx: .*" + message):
        ModelInfo.from_metadata(props, source="m.onnx")


def test_model_info_from_checkpoint(checkpoint):
    _, _, state = load_model(checkpoint)
    info = ModelInfo.from_checkpoint(state)
    assert info == ModelInfo(128, 64, 0.1, 100.0, TRAIN_FOCAL, BASELINE)
    assert info.config == state["config"]


# ----------------------------------------------------------------------------------- reading errors


def test_read_onnx_info_rejects_foreign_corrupt_and_missing_files(tmp_path, exported):
    foreign = tmp_path / "identity.onnx"
    onnx.save(trivial_onnx(), str(foreign))
    with pytest.raises(
        ModelInfoError, match=rf"^{foreign}: not an fg-depth model: metadata 'fg_depth\.width'"
    ):
        read_onnx_info(foreign)

    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported[SIZES[0]].path.read_bytes()[:5000])
    with pytest.raises(ModelInfoError, match=rf"^{truncated}: not a readable ONNX model"):
        read_onnx_info(truncated)

    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelInfoError, match=rf"^{missing}: ONNX model not found"):
        read_onnx_info(missing)


def test_read_onnx_info_checks_tensor_names_and_sizes_against_the_metadata(tmp_path):
    info = ModelInfo(128, 64, 0.1, 100.0, 74.2, 0.54)
    renamed = write_onnx(trivial_onnx(), info, tmp_path / "renamed.onnx")
    with pytest.raises(ModelInfoError, match=r"expected tensors 'image' and 'depth', found \['x', 'y'\]"):
        read_onnx_info(renamed)
    # Right names, but a 3-channel output and a size the metadata does not state.
    wrong = write_onnx(
        trivial_onnx("image", "depth"), dataclasses.replace(info, width=160), tmp_path / "w.onnx"
    )
    with pytest.raises(
        ModelInfoError, match=r"tensor 'image' has shape \(1, 3, 64, 128\), .* \(B,3,64,160\)"
    ):
        read_onnx_info(wrong)
    fits = write_onnx(trivial_onnx("image", "depth"), info, tmp_path / "fits.onnx")
    with pytest.raises(
        ModelInfoError, match=r"tensor 'depth' has shape \(1, 3, 64, 128\), .* \(B,1,64,128\)"
    ):
        read_onnx_info(fits)


# --------------------------------------------------------------------------------- export errors, atomic


def test_export_size_and_opset_checks():
    check_export_size(64, 128)
    check_export_size(320, 1024)
    with pytest.raises(ExportError, match=r"multiples of 32 .* got height 100; e\.g\. height 96"):
        check_export_size(100, 128)
    with pytest.raises(ExportError, match=r"at least 64 pixels .* got width 32; e\.g\. width 64"):
        check_export_size(64, 32)
    with pytest.raises(ExportError, match=r"got height 65, width 150; e\.g\. height 64, width 160"):
        check_export_size(65, 150)
    check_opset(18)
    check_opset(onnx.defs.onnx_opset_version())
    for bad in (17, onnx.defs.onnx_opset_version() + 1):
        with pytest.raises(ExportError, match=rf"opset: expected 18\.\.\d+, got {bad}"):
            check_opset(bad)


def test_a_failing_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    info = ModelInfo(128, 64, 0.1, 100.0, 74.2, 0.54)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(ExportError, match=rf"^{out}: cannot write the model .*No space left"):
        write_onnx(trivial_onnx("image", "depth"), info, out)
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left
    monkeypatch.undo()
    # The same call without the fault replaces the file with a readable model.
    write_onnx(trivial_onnx("image", "depth"), info, out)
    assert {p.key for p in onnx.load(str(out)).metadata_props} == set(info.to_metadata())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_failing_exporter_or_checker_writes_nothing(checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "model.onnx"

    def broken_exporter(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::frobnicate\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken_exporter)
    with pytest.raises(ExportError, match=r"ONNX export at 128x64 \(opset 18\) failed: RuntimeError: unsup"):
        export_onnx(checkpoint, out)
    assert list(tmp_path.iterdir()) == []

    def rejecting_checker(model, full_check=False):
        raise onnx.checker.ValidationError("bad graph")

    monkeypatch.setattr(onnx.checker, "check_model", rejecting_checker)
    with pytest.raises(ExportError, match=rf"^{out}: the exported model fails onnx.checker: bad graph"):
        write_onnx(trivial_onnx("image", "depth"), ModelInfo(128, 64, 0.1, 100.0, 74.2, 0.54), out)
    assert list(tmp_path.iterdir()) == []


def test_export_onnx_argument_errors(checkpoint, tmp_path):
    with pytest.raises(ExportError, match="multiples of 32"):
        export_onnx(checkpoint, tmp_path / "m.onnx", 60, 128)
    with pytest.raises(ExportError, match="is a directory"):
        export_onnx(checkpoint, tmp_path, 64, 128)
    with pytest.raises(ExportError, match="would overwrite the checkpoint"):
        export_onnx(checkpoint, checkpoint, 64, 128)
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'none.pt'}: checkpoint not found"):
        export_onnx(tmp_path / "none.pt", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ fg-depth export


def test_cli_export_onnx_end_to_end(exported):
    # The fixture ran `fg-depth export --checkpoint RUN/best.pt`: defaults are the training size, a dynamic
    # batch and RUN/best.onnx; the tests above check that file against PyTorch and its metadata.
    out = exported[SIZES[0]].path
    assert out.name == "best.onnx" and (out.parent / "best.pt").is_file()
    printed = exported[SIZES[0]].printed
    assert f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): ONNX opset 18, float32" in printed
    assert "input  'image' (batch,3,64,128)" in printed and "output 'depth' (batch,1,64,128)" in printed
    assert "training camera at 128x64: focal 74.20 px, baseline 0.540 m\n" in printed
    assert "trained at" not in printed and "aspect ratio" not in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["best.onnx", "best.pt"]


def test_cli_export_summary_at_another_size(checkpoint, tmp_path, capsys, monkeypatch):
    # The exporter itself is covered above; here only what the command computes and prints around it.
    calls, quantized = [], []

    def fake_export_onnx(ckpt, out, height, width, opset, dynamic_batch, quantize, **calibration):
        calls.append((Path(ckpt), Path(out), height, width, opset, dynamic_batch))
        quantized.append((quantize, calibration["calibration"]))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(b"x" * 2_500_000)
        return expected_info(height, width)

    monkeypatch.setattr(export, "export_onnx", fake_export_onnx)
    out = tmp_path / "deploy" / "m.onnx"
    argv = ["export", "--checkpoint", str(checkpoint), "--height", "96", "--width", "224", "--out", str(out)]
    assert main(argv + ["--opset", "19"]) == 0
    assert calls == [(checkpoint, out, 96, 224, 19, True)]
    assert quantized == [("none", None)]  # float32 unless --quantize int8 is given
    printed = capsys.readouterr().out
    assert f"wrote {out} (2.5 MB): ONNX opset 19, float32" in printed
    assert (
        "training camera at 224x96: focal 129.85 px, baseline 0.540 m (trained at 128x64: focal 74.20 px)"
        in (printed)
    )
    assert "aspect ratio differs from training (128x64)" in printed


def test_cli_export_errors(checkpoint, tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert main(["export", "--checkpoint", str(missing)]) == 2
    assert f"fg-depth export: error: {missing}: checkpoint not found" in capsys.readouterr().err
    out = tmp_path / "m.onnx"
    base = ["export", "--checkpoint", str(checkpoint), "--out", str(out)]
    for extra, message in (
        (["--height", "100"], "got height 100; e.g. height 96"),
        (["--width", "200"], "got width 200; e.g. width 192"),
        (["--opset", "17"], "opset: expected 18.."),
        (["--precision", "fp16"], "--precision fp16 applies to --format tensorrt only"),
        (["--timing-cache", "t.cache"], "--timing-cache applies to --format tensorrt only"),
        (["--format", "tensorrt", "--static-batch"], "--static-batch applies to --format onnx only"),
        (["--format", "tensorrt", "--workspace", "0"], "--workspace: expected a positive number of MiB"),
    ):
        assert main(base + extra) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not out.exists()


# ------------------------------------------------------------------------- fg-depth export --format tensorrt


def test_cli_tensorrt_without_tensorrt_fails_first_and_names_the_package(
    checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(
        sys.modules, "tensorrt", None
    )  # `import tensorrt` raises ImportError, installed or not
    engine = tmp_path / "m.engine"
    assert (
        main(["export", "--checkpoint", str(checkpoint), "--format", "tensorrt", "--out", str(engine)]) == 2
    )
    err = capsys.readouterr().err
    assert (
        "fg-depth export: error: backend tensorrt is not installed" in err and "pip install tensorrt" in err
    )
    assert list(tmp_path.iterdir()) == []  # checked before the ONNX export: nothing written


def test_cli_tensorrt_exports_onnx_beside_the_engine_and_builds_it(
    checkpoint, exported, tmp_path, capsys, monkeypatch
):
    # TensorRT cannot be installed here: the engine build is replaced by a stand-in that checks what it is
    # given and writes what build_engine writes (engine + <engine>.json); the ONNX export is the fixture's.
    ckpt = tmp_path / "best.pt"
    shutil.copyfile(checkpoint, ckpt)
    exports, builds = [], []

    def fake_export_onnx(ckpt_path, out, height, width, opset, dynamic_batch):
        exports.append((Path(ckpt_path), Path(out), height, width, opset, dynamic_batch))
        shutil.copyfile(exported[SIZES[0]].path, out)
        return read_onnx_info(out)

    def fake_build_engine(onnx_path, engine_path, precision, workspace_bytes, timing_cache, **kwargs):
        builds.append((Path(onnx_path), Path(engine_path), precision, workspace_bytes, timing_cache, kwargs))
        info = read_onnx_info(onnx_path)  # the real one reads the ONNX's metadata the same way
        Path(engine_path).write_bytes(b"e" * 1_200_000)
        tensorrt_build.write_engine_info(engine_path, info, precision, "10.13.0", "ab" * 32)
        return Path(engine_path)

    monkeypatch.setattr(tensorrt_build, "import_tensorrt", lambda: None)
    monkeypatch.setattr(tensorrt_build, "build_engine", fake_build_engine)
    monkeypatch.setattr(export, "export_onnx", fake_export_onnx)
    argv = ["export", "--checkpoint", str(ckpt), "--format", "tensorrt", "--precision", "fp16"]
    argv += ["--workspace", "256", "--max-batch", "4", "--timing-cache", str(tmp_path / "t.cache")]
    assert main(argv) == 0
    engine, onnx_path = tmp_path / "best.engine", tmp_path / "best.onnx"
    assert exports == [(ckpt, onnx_path, 64, 128, 18, True)]
    assert builds == [(onnx_path, engine, "fp16", 256 * 2**20, str(tmp_path / "t.cache"), {"max_batch": 4})]
    info, record = tensorrt_build.read_engine_info(engine)
    assert info == expected_info(64, 128) and record["precision"] == "fp16"
    printed = capsys.readouterr().out
    assert f"wrote {engine} (1.2 MB): TensorRT engine, fp16" in printed
    assert f"metadata {tmp_path / 'best.engine.json'}" in printed
    assert f"ONNX model {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB), opset 18" in printed
    assert "training camera at 128x64: focal 74.20 px" in printed
    # Without --workspace and --max-batch: the inference config's workspace, the backend's profile default.
    builds.clear()
    assert main(argv[:7]) == 0
    assert builds[0][2:] == ("fp16", InferenceConfig().workspace_mb * 2**20, None, {})


def test_export_engine_argument_errors(checkpoint, tmp_path):
    for kwargs, message in (
        ({"precision": "int8"}, "precision: expected one of fp32, fp16, got 'int8'"),
        ({"workspace_bytes": 0}, "workspace: expected a positive number of bytes"),
        ({"max_batch": 0}, "max_batch: expected >= 1, got 0"),
        ({"onnx_path": tmp_path / "m.engine"}, "the engine and its ONNX model need different paths"),
        ({"height": 90, "width": 128}, "multiples of 32"),
    ):
        with pytest.raises(ExportError, match=re.escape(message)):
            export.export_engine(checkpoint, tmp_path / "m.engine", **kwargs)
    assert list(tmp_path.iterdir()) == []
