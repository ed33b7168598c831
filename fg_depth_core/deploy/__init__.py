"""Deployment: export (ONNX, TensorRT), the inference API (DepthEstimator) and its backends."""
