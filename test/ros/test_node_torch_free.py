"""With an ONNX model or a TensorRT engine, depth_node never imports torch (issue 11): on a Jetson the GPU
shares its memory with the rest of the robot, and torch alone costs about 480 MiB resident."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from depth_node_helpers import write_linear_model
from gpu_fakes import write_fake_engine

from fg_depth_core.deploy.model_info import ModelInfo

TEST_DIR = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 96, 48


def _serve(model: Path, tmp_path: Path, *mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TEST_DIR), str(TEST_DIR.parent)])}
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    run = subprocess.run(
        [sys.executable, str(TEST_DIR / "torch_free_node.py"), str(model), str(WIDTH), str(HEIGHT), *mode],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_depth_node_serving_an_onnx_model_never_imports_torch(tmp_path):
    model = write_linear_model(tmp_path / "linear.onnx", 64, 32)
    result = _serve(model, tmp_path)
    assert result["published"] == {"mono": 3, "stereo": 3}
    assert result["torch"] is False, "depth_node imported torch while serving an ONNX model"


@pytest.mark.slow
def test_depth_node_serving_a_tensorrt_engine_never_imports_torch(tmp_path):
    # The engine runs on stand-ins of TensorRT and libcudart (test/gpu_fakes.py): neither exists here.
    engine = tmp_path / "net.engine"
    write_fake_engine(engine, ModelInfo(64, 32, 0.1, 100.0, 50.0, 0.54))
    result = _serve(engine, tmp_path, "tensorrt")
    assert result["published"] == {"mono": 3, "stereo": 3}
    assert result["engine_runs"] >= 6  # every frame went through the engine
    assert result["torch"] is False, "depth_node imported torch while serving a TensorRT engine"
