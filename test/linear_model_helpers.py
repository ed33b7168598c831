"""A fixture model whose output is a known function of its input: a real fg-depth ONNX file (metadata and
all, run by ONNX Runtime through DepthEstimator) giving depth = offset + gain * R metres, R the red channel
of the network input in [0, 1]. Used by the estimator's tests (no ROS) and the node's
(test/depth_node_helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from fg_depth_core.deploy.model_info import INPUT_NAME, OUTPUT_NAME, ModelInfo


def write_linear_model(
    path: Path,
    width: int,
    height: int,
    offset: float = 2.0,
    gain: float = 8.0,
    train_focal: float = 50.0,
    min_depth: float = 0.1,
    max_depth: float = 100.0,
    config: Optional[Mapping[str, Any]] = None,
) -> Path:
    """An fg-depth ONNX model (real file, metadata and all, run by ONNX Runtime through DepthEstimator) whose
    depth is ``offset + gain * R`` metres, R the red channel of the network input in [0, 1]: a known output
    that :func:`expected_network_depth` reproduces. ``config``: the training configuration stored with it
    (its data.width/height set the training aspect, fg_depth_core/deploy/fit.py)."""
    import onnx
    from onnx import TensorProto, helper

    from fg_depth_core.deploy.export import write_onnx

    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, height, width])
    depth = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, height, width])
    initializers = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]),
    ]
    nodes = [
        helper.make_node("Slice", [INPUT_NAME, "starts", "ends", "axes"], ["red"]),
        helper.make_node("Mul", ["red", "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(nodes, "linear_depth", [image], [depth], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9  # readable by every ONNX Runtime of the last years
    info = ModelInfo(width, height, min_depth, max_depth, train_focal, 0.54, config=dict(config or {}))
    write_onnx(model, info, path)
    assert isinstance(onnx.load(str(path)), onnx.ModelProto)
    return Path(path)


def expected_network_depth(
    rgb_net: np.ndarray,
    camera_focal_at_net: float,
    offset: float = 2.0,
    gain: float = 8.0,
    train_focal: float = 50.0,
) -> np.ndarray:
    """What the linear model gives for an image already at the network size, focal-scaled (float32 steps of
    DepthEstimator: x = R * (1/255), depth = offset + gain * x, times f'/f_train, f' the camera's focal
    length at the network input: sqrt(fx' * fy'), which is fx' for square pixels)."""
    x = rgb_net[:, :, 0].astype(np.float32) * np.float32(1.0 / 255.0)
    depth = np.float32(offset) + np.float32(gain) * x
    return depth * np.float32(camera_focal_at_net / train_focal)


def write_fixed_depth_model(
    path: Path, depth: np.ndarray, train_focal: float, min_depth: float = 0.1, max_depth: float = 100.0
) -> Path:
    """An fg-depth ONNX model that answers every image with ``depth`` ((h,w) metres, finite; its size is the
    network input): a known output, e.g. a rendered scene's exact depth. With the camera's sqrt(fx * fy) at
    the network size as ``train_focal``, DepthEstimator's focal scaling leaves it as it is."""
    from onnx import TensorProto, helper, numpy_helper

    from fg_depth_core.deploy.export import write_onnx

    height, width = depth.shape
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, height, width])
    out = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, height, width])
    initializers = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        numpy_helper.from_array(np.asarray(depth, np.float32)[None, None], "fixed"),
    ]
    nodes = [  # 0 * red channel + depth: the input's batch shape, the fixed values
        helper.make_node("Slice", [INPUT_NAME, "starts", "ends", "axes"], ["red"]),
        helper.make_node("Mul", ["red", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "fixed"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(nodes, "fixed_depth", [image], [out], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    write_onnx(model, ModelInfo(width, height, min_depth, max_depth, train_focal, 0.54), path)
    return Path(path)
