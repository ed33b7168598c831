"""The inference path with an ONNX model or a TensorRT engine is free of PyTorch: a fresh interpreter that
converts a camera frame (camera_msgs), predicts with DepthEstimator on ONNX Runtime and colours the depth
(visualize) never imports torch; nor does one that selects, creates and runs the tensorrt backend on an engine
(TensorRT and libcudart stood in for). The suite itself imports torch, hence the child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fg_depth_core.camera_msgs import camera_info_to_intrinsics, image_to_rgb
from fg_depth_core.deploy.estimator import DepthEstimator
from fg_depth_core.deploy.export import export_onnx

ROOT = Path(__file__).resolve().parents[2]
#: The child's frame: a 250x75 bgr8 image and its camera (P of a rectified camera), as message fields.
FRAME_W, FRAME_H = 250, 75
P = [180.0, 0.0, 124.5, 0.0, 0.0, 180.0, 37.0, 0.0, 0.0, 0.0, 1.0, 0.0]

#: The start of each child script: a finder ahead of the real ones records the call stacks that look for torch
#: (imports, and find_spec probes such as the backend selection's), so a failure shows who asked for it.
WATCH_TORCH = """
import importlib.abc, json, sys, traceback

torch_lookups = []


class WatchTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch":
            torch_lookups.append("".join(traceback.format_stack()[:-1]))
        return None  # the ordinary finders go on looking


sys.meta_path.insert(0, WatchTorch())
"""

#: The frame path of a torch-free node, in a fresh interpreter.
CHILD = WATCH_TORCH + """

from types import SimpleNamespace

import numpy as np

import fg_depth_core.config
import fg_depth_core.errors
from fg_depth_core.camera_msgs import camera_info_to_intrinsics, image_to_rgb
from fg_depth_core.deploy.estimator import DepthEstimator
from fg_depth_core.visualize import colorize_depth

model, frame_json, out = sys.argv[1:4]
with open(frame_json) as f:
    frame = json.load(f)
image = SimpleNamespace(**frame["image"])
image.data = bytes(image.data)
info = SimpleNamespace(**frame["info"], roi=SimpleNamespace(**frame["roi"]))
estimator = DepthEstimator(model, "onnxruntime", "cpu")
depth = estimator.predict(image_to_rgb(image, "/camera"), camera_info_to_intrinsics(info, what="/camera"))
colour = colorize_depth(depth, estimator.info.min_depth, estimator.info.max_depth)
np.save(out, depth)
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
print(json.dumps({"torch_modules": loaded[:5], "torch_lookups": torch_lookups,
                  "colour": [list(colour.shape), str(colour.dtype)]}))
"""


def _frame() -> dict:
    """Message fields of one frame: a deterministic bgr8 image and its CameraInfo."""
    bgr = (np.arange(FRAME_H * FRAME_W * 3) * 7 % 251).astype(np.uint8)
    image = {
        "encoding": "bgr8", "height": FRAME_H, "width": FRAME_W, "step": FRAME_W * 3, "is_bigendian": 0,
        "data": bgr.tolist(),
    }  # fmt: skip
    info = {
        "width": FRAME_W, "height": FRAME_H, "k": P[:3] + P[4:7] + P[8:11], "p": P,
        "binning_x": 0, "binning_y": 0,
    }  # fmt: skip
    roi = {"x_offset": 0, "y_offset": 0, "width": 0, "height": 0}
    return {"image": image, "info": info, "roi": roi}


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, write_depthnet_checkpoint) -> Path:
    folder = tmp_path_factory.mktemp("torch_free")
    checkpoint = write_depthnet_checkpoint(folder / "net.pt", 128, 64, train_focal=74.2)
    path = folder / "net.onnx"
    export_onnx(checkpoint, path)
    return path


def _run_torch_free_child(script: str, *argv: str) -> dict:
    """``script`` in a fresh interpreter; its report (the JSON on its last line), after checking that it
    succeeded and never imported torch (the lookups of torch named if it did)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    lookups = "\n".join(report["torch_lookups"])
    assert report["torch_modules"] == [], f"torch was imported; the lookups of torch:\n{lookups}"
    return report


@pytest.mark.slow
def test_onnx_inference_converts_predicts_and_colours_without_importing_torch(onnx_model, tmp_path):
    frame = _frame()
    frame_json, out = tmp_path / "frame.json", tmp_path / "depth.npy"
    frame_json.write_text(json.dumps(frame))
    report = _run_torch_free_child(CHILD, str(onnx_model), str(frame_json), str(out))
    assert report["colour"] == [[FRAME_H, FRAME_W, 3], "uint8"]
    # The child predicted what this process predicts for the same frame (its own conversions included).
    image = SimpleNamespace(**frame["image"])
    image.data = bytes(image.data)
    info = SimpleNamespace(**frame["info"], roi=SimpleNamespace(**frame["roi"]))
    rgb, camera = image_to_rgb(image), camera_info_to_intrinsics(info)
    assert camera.fx == 180.0 and np.array_equal(
        rgb[..., ::-1].reshape(-1), np.asarray(frame["image"]["data"])
    )
    expected = DepthEstimator(onnx_model, "onnxruntime", "cpu").predict(rgb, camera)
    depth = np.load(out)
    assert depth.shape == (FRAME_H, FRAME_W) and np.all(depth > 0)
    np.testing.assert_allclose(depth, expected, rtol=1e-5)


#: The TensorRT path in a fresh interpreter: DepthEstimator selects and creates the tensorrt backend for an
#: engine and predicts, with the two system edges this machine lacks stood in for (test/gpu_fakes.py: TensorRT
#: through sys.modules, libcudart through load_cudart) and the driver's device count set to one GPU.
TENSORRT_CHILD = WATCH_TORCH + """
engine, test_dir, out = sys.argv[1:4]
sys.path.insert(0, test_dir)

import numpy as np
from gpu_fakes import install_fakes

import fg_depth_core.deploy.backends.tensorrt  # the backend module itself
from fg_depth_core.deploy.estimator import DepthEstimator

cudart, fake_trt = install_fakes(64, 128)
estimator = DepthEstimator(engine, "tensorrt", "cuda")
rgb = (np.arange(75 * 250 * 3) * 7 % 251).astype(np.uint8).reshape(75, 250, 3)
np.save(out, estimator.predict(rgb))
estimator.backend.close()
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
report = {"torch_modules": loaded[:5], "torch_lookups": torch_lookups, "backend": estimator.backend_name}
print(json.dumps({**report, "runs": len(fake_trt.runs), "held": cudart.held()}))
"""


def test_tensorrt_inference_on_an_engine_never_imports_torch(tmp_path):
    from gpu_fakes import fake_depth, write_fake_engine

    from fg_depth_core.config import InferenceConfig
    from fg_depth_core.deploy.estimator import postprocess, preprocess
    from fg_depth_core.deploy.fit import plan_fit
    from fg_depth_core.deploy.model_info import ModelInfo

    info = ModelInfo(128, 64, 0.1, 100.0, 74.2, 0.54)
    engine, out = tmp_path / "net.engine", tmp_path / "depth.npy"
    write_fake_engine(engine, info)
    report = _run_torch_free_child(TENSORRT_CHILD, str(engine), str(ROOT / "test"), str(out))
    assert report["backend"] == "tensorrt" and report["runs"] == 1
    assert report["held"] == {"device": 0, "pinned": 0, "streams": 0}
    rgb = (np.arange(75 * 250 * 3) * 7 % 251).astype(np.uint8).reshape(75, 250, 3)
    fit = plan_fit(InferenceConfig().input_fit, 250, 75, 128, 64)  # the estimator's default fit
    expected = postprocess(fake_depth(preprocess(rgb, 128, 64, fit)), 1.0, (250, 75), fit)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-6)
