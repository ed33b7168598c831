"""depth_node serves an int8 model (`fg-depth export --quantize int8`) like any .onnx: a DepthNet quantised by
ONNX Runtime's tools, run by the node on real rclpy with real ONNX Runtime, publishes what DepthEstimator
predicts with that model."""

from __future__ import annotations

import numpy as np
import pytest
from depth_node_helpers import Harness, camera_messages, stamp_of

from fg_depth_core.camera import Intrinsics
from fg_depth_core.config import Config
from fg_depth_core.data.folder import write_stereo_folder
from fg_depth_core.data.world import render_frame
from fg_depth_core.deploy.estimator import DepthEstimator, postprocess
from fg_depth_core.deploy.export import export_onnx
from fg_depth_ros.conversions import image_to_depth
from fg_depth_ros.pipeline import limit_depth

NET_W, NET_H = 128, 64


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, write_depthnet_checkpoint):
    folder = tmp_path_factory.mktemp("int8_node")
    pt = write_depthnet_checkpoint(folder / "best.pt", NET_W, NET_H)
    synth = Config().data.synth
    frames = ((f"{i}", render_frame(synth, "train", i)) for i in range(2))
    pairs = write_stereo_folder(folder / "pairs", frames)
    assert pairs == 2
    model = folder / "best_int8.onnx"
    info = export_onnx(pt, model, quantize="int8", calibration=folder / "pairs", calibration_frames=2)
    assert info.quantization == "int8"
    return model


@pytest.mark.slow
def test_the_node_publishes_the_int8_models_depth(context, int8_model):
    rgb = render_frame(Config().data.synth, "test", 0).left[::2, ::2].copy()  # 320x96
    intr = Intrinsics(185.5, 185.5, 159.5, 47.5, 320, 96)
    harness = Harness(context, {"model": str(int8_model), "backend": "onnxruntime", "device": "cpu"})
    try:
        assert harness.node.estimator.info.quantization == "int8"
        image, info = camera_messages(rgb, intr, 5_000_000_000)
        harness.publish(camera_info=info)
        harness.spin_for(0.1)
        harness.publish(image=image)
        (msg,) = harness.wait_outputs("depth/image", 1)
        assert stamp_of(msg) == 5_000_000_000
        estimator = DepthEstimator(int8_model, "onnxruntime", "cpu")
        network = estimator.predict(rgb, intr, output="network")
        expected = limit_depth(postprocess(network, 1.0, (320, 96)), 0.1, 100.0, "clamp")
        np.testing.assert_allclose(image_to_depth(msg), expected, rtol=1e-5)
        assert harness.node.errors == 0 and harness.node.rejected == 0
    finally:
        harness.close()
