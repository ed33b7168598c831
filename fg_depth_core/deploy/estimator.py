"""DepthEstimator: metric depth from one RGB image with any backend (docs/ARCHITECTURE.md, "A frame in the
node").

predict = :func:`preprocess` (resize to the network size, float [0, 1] NCHW) -> backend forward ->
:func:`postprocess` (focal scaling D' = D * f' / f_train, docs/METHOD.md, "Scale"; resize back to the
image).
Pre- and post-processing are pure functions shared by every backend, the benchmark and the ROS node.

Scale: the network predicts depth for its training camera, whose focal length at the network input size is
``info.train_focal``. An image of another camera, resized to the network input, has focal length
f' = intrinsics.resized(W_net, H_net).fx there, and its depth is D * f' / f_train. Without intrinsics the
image is assumed to come from the training camera scaled to the image size (factor 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.camera import Intrinsics, focal_scale
from fg_depth_core.config import InferenceConfig
from fg_depth_core.deploy.backends import Backend, create_backend
from fg_depth_core.deploy.model_info import ModelInfo
from fg_depth_core.errors import FgDepthError

#: ``output`` choices of :meth:`DepthEstimator.predict`: the image's resolution or the network's.
OUTPUTS = ("input", "network")
_DEFAULTS = InferenceConfig()


class InputError(FgDepthError, ValueError):
    """An image or intrinsics handed to the estimator are unusable; the message says what was expected."""


def check_image(rgb: np.ndarray, what: str = "image") -> None:
    """Raise InputError unless ``rgb`` is a non-empty (H,W,3) uint8 array."""
    if not isinstance(rgb, np.ndarray):
        raise InputError(f"{what}: expected a numpy array (H,W,3) uint8 RGB, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f"{what}: expected shape (H,W,3) RGB with H, W > 0, got {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise InputError(f"{what}: expected dtype uint8 (0..255), got {rgb.dtype}")


def resize_interpolation(src_size: Tuple[int, int], dst_size: Tuple[int, int]) -> int:
    """OpenCV interpolation for resizing an image from ``src_size`` to ``dst_size`` (W, H): area averaging
    when neither side grows (no aliasing), bilinear otherwise (area is nearest-like when enlarging)."""
    import cv2

    shrinks = dst_size[0] <= src_size[0] and dst_size[1] <= src_size[1]
    return cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR


def resize_image(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """An (H,W,C) image resized to ``width`` x ``height`` by :func:`resize_interpolation`'s rule (itself
    when the size already matches)."""
    import cv2

    src = (rgb.shape[1], rgb.shape[0])
    if src == (width, height):
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=resize_interpolation(src, (width, height)))


def preprocess(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H,W,3) uint8 RGB -> (1,3,height,width) float32 in [0, 1] at the network input size."""
    check_image(rgb)
    rgb = resize_image(rgb, width, height)
    # HWC -> CHW on uint8 (a quarter of the bytes of float), then one conversion pass with the scale.
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    return np.multiply(chw, np.float32(1.0 / 255.0), dtype=np.float32)[None]


def focal_factor(intrinsics: Optional[Intrinsics], info: ModelInfo) -> float:
    """D'/D = f'/f_train with f' the camera's fx at the network input size; 1 without intrinsics."""
    if intrinsics is None:
        return 1.0
    return focal_scale(intrinsics.resized(info.width, info.height).fx, info.train_focal)


def postprocess(depth: np.ndarray, factor: float, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Network depth (H_net,W_net) or (1,1,H_net,W_net) metres -> (H,W) float32 metres: multiplied by the
    focal ``factor``, then resized bilinearly to ``size`` = (W, H) when given and different."""
    import cv2

    depth = np.asarray(depth, dtype=np.float32).reshape(depth.shape[-2:])
    if factor != 1.0:
        depth = depth * np.float32(factor)
    if size is not None and (depth.shape[1], depth.shape[0]) != tuple(size):
        depth = cv2.resize(depth, tuple(int(v) for v in size), interpolation=cv2.INTER_LINEAR)
    return depth


def check_intrinsics(intrinsics: Optional[Intrinsics], rgb: np.ndarray, what: str = "intrinsics") -> None:
    """Intrinsics must describe an image of exactly this image's size."""
    if intrinsics is None:
        return
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"{what}: expected fg_depth_core.camera.Intrinsics, got {type(intrinsics).__name__}")
    h, w = rgb.shape[:2]
    if (intrinsics.width, intrinsics.height) != (w, h):
        raise InputError(
            f"{what}: they describe a {intrinsics.width}x{intrinsics.height} image but the image is {w}x{h}; "
            "use intrinsics.resized()/cropped() to match the image"
        )


class DepthEstimator:
    """Metric depth from RGB images with a checkpoint (.pt), an ONNX model (.onnx) or a TensorRT engine.

    Args:
        model_path: the model file; its kind decides which backends can run it (deploy/backends).
        backend: "auto" (the fastest installed: see deploy/backends), "torch", "onnxruntime" or "tensorrt".
        device: "auto" (CUDA when the backend can use it), "cpu", "cuda" or "cuda:N".
        precision: "fp32" or "fp16" (CUDA only).
        threads: CPU threads of torch / ONNX Runtime; 0 keeps the library's default.
        cache_dir: TensorRT engine and timing caches ('' or None: $XDG_CACHE_HOME/fg-depth/tensorrt).
        workspace_mb: TensorRT builder workspace limit.
    Defaults are those of :class:`fg_depth_core.config.InferenceConfig`.
    """

    def __init__(
        self,
        model_path: Union[str, Path],
        backend: str = _DEFAULTS.backend,
        device: str = _DEFAULTS.device,
        precision: str = _DEFAULTS.precision,
        threads: int = _DEFAULTS.threads,
        cache_dir: Optional[Union[str, Path]] = _DEFAULTS.cache_dir,
        workspace_mb: int = _DEFAULTS.workspace_mb,
    ) -> None:
        if workspace_mb <= 0:
            raise InputError(f"workspace_mb: expected > 0 MiB, got {workspace_mb}")
        self.model_path = Path(model_path)
        self.backend: Backend = create_backend(
            self.model_path, backend, device, precision, threads, cache_dir or None, workspace_mb << 20
        )

    @classmethod
    def from_config(cls, model_path: Union[str, Path], cfg: InferenceConfig) -> "DepthEstimator":
        """An estimator with the settings of a config's ``inference`` section."""
        cfg.validate("inference")
        return cls(
            model_path, cfg.backend, cfg.device, cfg.precision, cfg.threads, cfg.cache_dir, cfg.workspace_mb
        )

    @classmethod
    def from_backend(cls, backend: Backend) -> "DepthEstimator":
        """An estimator around an already loaded backend (shared by several users, or a test double)."""
        estimator = cls.__new__(cls)
        estimator.model_path = backend.source or Path(f"<{backend.name} backend>")
        estimator.backend = backend
        return estimator

    @property
    def info(self) -> ModelInfo:
        """Network input size, depth range and training camera."""
        return self.backend.info

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def device(self) -> str:
        return self.backend.device

    def focal_factor(self, intrinsics: Optional[Intrinsics]) -> float:
        """The depth scale factor for a camera (1 without intrinsics): see :func:`focal_factor`."""
        return focal_factor(intrinsics, self.info)

    def predict(
        self, rgb: np.ndarray, intrinsics: Optional[Intrinsics] = None, output: str = "input"
    ) -> np.ndarray:
        """Metric depth (float32 metres) of an (H,W,3) uint8 RGB image.

        Args:
            rgb: the image, any size (it is resized to the network input).
            intrinsics: the camera at this image's size; None assumes the training camera scaled to the image.
            output: "input" -> (H,W) at the image's resolution; "network" -> (H_net,W_net).
        """
        return self.predict_batch([rgb], [intrinsics], output)[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        intrinsics: Union[None, Intrinsics, Sequence[Optional[Intrinsics]]] = None,
        output: str = "input",
    ) -> List[np.ndarray]:
        """:meth:`predict` for several images in one forward pass (images may differ in size); ``intrinsics``
        is None, one Intrinsics for all, or one per image."""
        if output not in OUTPUTS:
            raise InputError(f"output: expected one of {list(OUTPUTS)}, got {output!r}")
        images = list(images)
        if not images:
            raise InputError("images: expected at least one image, got none")
        if intrinsics is None or isinstance(intrinsics, Intrinsics):
            cameras = [intrinsics] * len(images)
        else:
            cameras = list(intrinsics)
            if len(cameras) != len(images):
                raise InputError(f"intrinsics: expected one per image ({len(images)}), got {len(cameras)}")
        info = self.info
        for i, (rgb, camera) in enumerate(zip(images, cameras)):
            name = "image" if len(images) == 1 else f"image {i}"
            check_image(rgb, name)
            check_intrinsics(camera, rgb, "intrinsics" if len(images) == 1 else f"intrinsics of {name}")
        inputs = [preprocess(rgb, info.width, info.height) for rgb in images]
        batch = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        depth = self.backend.forward(batch)
        return [
            postprocess(
                d, focal_factor(camera, info), (rgb.shape[1], rgb.shape[0]) if output == "input" else None
            )
            for d, rgb, camera in zip(depth, images, cameras)
        ]

    def __repr__(self) -> str:
        return f"DepthEstimator({str(self.model_path)!r}, backend={self.backend!r})"
