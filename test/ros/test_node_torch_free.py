"""With an ONNX model, depth_node never imports torch (issue 11): on a Jetson the GPU shares its memory with
the rest of the robot, and torch alone costs about 480 MiB resident."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from depth_node_helpers import write_linear_model

TEST_DIR = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 96, 48


@pytest.mark.slow
def test_depth_node_serving_an_onnx_model_never_imports_torch(tmp_path):
    model = write_linear_model(tmp_path / "linear.onnx", 64, 32)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TEST_DIR), str(TEST_DIR.parent)])}
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    run = subprocess.run(
        [sys.executable, str(TEST_DIR / "torch_free_node.py"), str(model), str(WIDTH), str(HEIGHT)],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["published"] == {"mono": 3, "stereo": 3}
    assert result["torch"] is False, "depth_node imported torch while serving an ONNX model"
