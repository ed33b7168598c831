"""The DepthNet: ResNet encoder + multi-scale decoder predicting metric depth from one RGB image."""

from fg_depth_core.model.depthnet import (
    DECODER_CHANNELS,
    DepthDecoder,
    DepthNet,
    DepthNetExport,
    ModelError,
    build_depthnet,
    check_input,
    depth_to_sigmoid,
    imagenet_weights_path,
    load_encoder_weights,
    read_encoder_state,
    sigmoid_to_depth,
)
from fg_depth_core.model.layers import (
    ENCODER_CHANNELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_MULTIPLE,
    MIN_INPUT_SIZE,
)

__all__ = [
    "DECODER_CHANNELS",
    "ENCODER_CHANNELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_MULTIPLE",
    "MIN_INPUT_SIZE",
    "DepthDecoder",
    "DepthNet",
    "DepthNetExport",
    "ModelError",
    "build_depthnet",
    "check_input",
    "depth_to_sigmoid",
    "imagenet_weights_path",
    "load_encoder_weights",
    "read_encoder_state",
    "sigmoid_to_depth",
]
