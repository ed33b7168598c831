"""DepthEstimator: metric depth from one RGB image with any backend (docs/ARCHITECTURE.md, "A frame in the
node").

predict = :func:`preprocess` (fit the image to the network input by ``input_fit``: stretch, crop or pad,
fg_depth_core/deploy/fit.py; float [0, 1] NCHW) -> backend forward -> :func:`postprocess` (cut the padding
away, focal scaling, resize back to the image or its cropped window).
Pre- and post-processing are pure functions shared by every backend, the benchmark and the ROS node.

Scale (docs/METHOD.md, "Scale"): the network predicts depth for its training camera, whose focal length at
the network input size is ``info.train_focal``. An image of another camera, fitted to the network input, has
focal lengths fx', fy' there (:meth:`Fit.network_intrinsics`), and its depth is D * sqrt(fx' fy' / (fx_t
fy_t)), which is D * f' / f_train whenever the fit keeps the camera's aspect (crop, pad). Without
intrinsics the factor is 1: the image is taken to show the scene as the training camera would at the
network input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from fg_depth_core.camera import Intrinsics
from fg_depth_core.config import INPUT_FITS, InferenceConfig
from fg_depth_core.deploy import fit as fitting
from fg_depth_core.deploy.backends import Backend, create_backend
from fg_depth_core.deploy.fit import OUTPUTS, Fit, plan_fit
from fg_depth_core.deploy.model_info import ModelInfo
from fg_depth_core.errors import FgDepthError

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


def preprocess(rgb: np.ndarray, width: int, height: int, fit: Optional[Fit] = None) -> np.ndarray:
    """(H,W,3) uint8 RGB -> (1,3,height,width) float32 in [0, 1] at the network input size.

    ``fit`` (planned for this image and network size, :func:`fg_depth_core.deploy.fit.plan_fit`) says how
    the image gets there; None stretches it. Under pad the border repeats the content's edge pixels: no
    artificial edge at the content's border (where a network tends to put a depth edge), and each padded row
    continues its own colours, so cues that depend on the row stay as they were; that depth is cut away."""
    import cv2

    check_image(rgb)
    if fit is None:
        rgb = resize_image(rgb, width, height)
    else:
        if fit.network != (width, height):
            raise InputError(
                f"fit: planned for a {fit.network[0]}x{fit.network[1]} network input, not {width}x{height}"
            )
        _, _, content_w, content_h = fit.content
        rgb = resize_image(fit.window_view(rgb), content_w, content_h)
        top, bottom, left, right = fit.padding
        if top or bottom or left or right:
            rgb = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_REPLICATE)
    # HWC -> CHW on uint8 (a quarter of the bytes of float), then one conversion pass with the scale.
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    return np.multiply(chw, np.float32(1.0 / 255.0), dtype=np.float32)[None]


def focal_factor(intrinsics: Optional[Intrinsics], info: ModelInfo, fit: Optional[Fit] = None) -> float:
    """D'/D for a camera (intrinsics of the whole image) seen through ``fit`` (None: stretched to the network
    size): sqrt((fx'/fx_t) (fy'/fy_t)) at the network input (fg_depth_core.deploy.fit.focal_factor); 1
    without intrinsics."""
    if intrinsics is None:
        return 1.0
    if fit is None:
        fit = plan_fit("stretch", intrinsics.width, intrinsics.height, info.width, info.height)
    return fitting.focal_factor(intrinsics, fit, info.train_focal, info.config)


def postprocess(
    depth: np.ndarray, factor: float, size: Optional[Tuple[int, int]] = None, fit: Optional[Fit] = None
) -> np.ndarray:
    """Network depth (H_net,W_net) or (1,1,H_net,W_net) metres -> (H,W) float32 metres: the padding cut
    away when ``fit`` pads (leaving the content box, network pixels), multiplied by the focal ``factor``,
    then resized bilinearly to ``size`` = (W, H) when given and different."""
    import cv2

    depth = np.asarray(depth, dtype=np.float32).reshape(depth.shape[-2:])
    if fit is not None:
        depth = fit.content_view(depth)
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
        input_fit: "pad", "crop" or "stretch": how an image of another aspect meets the network input
            (fg_depth_core/deploy/fit.py).
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
        input_fit: str = _DEFAULTS.input_fit,
    ) -> None:
        if workspace_mb <= 0:
            raise InputError(f"workspace_mb: expected > 0 MiB, got {workspace_mb}")
        self.input_fit = _check_fit(input_fit)
        self.model_path = Path(model_path)
        self.backend: Backend = create_backend(
            self.model_path, backend, device, precision, threads, cache_dir or None, workspace_mb << 20
        )

    @classmethod
    def from_config(cls, model_path: Union[str, Path], cfg: InferenceConfig) -> "DepthEstimator":
        """An estimator with the settings of a config's ``inference`` section."""
        cfg.validate("inference")
        return cls(
            model_path,
            cfg.backend,
            cfg.device,
            cfg.precision,
            cfg.threads,
            cfg.cache_dir,
            cfg.workspace_mb,
            cfg.input_fit,
        )

    @classmethod
    def from_backend(cls, backend: Backend, input_fit: str = _DEFAULTS.input_fit) -> "DepthEstimator":
        """An estimator around an already loaded backend (shared by several users, or a test double)."""
        estimator = cls.__new__(cls)
        estimator.input_fit = _check_fit(input_fit)
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

    def _for_camera(self, slot: str, key: Tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, kept in ``slot`` while ``key`` stays the same: a camera's per-image plans are
        computed once, not per frame (only the newest key is kept)."""
        cached = self.__dict__.get(slot)
        if cached is None or cached[0] != key:
            cached = (key, compute())
            self.__dict__[slot] = cached
        return cached[1]

    def fit_for(self, width: int, height: int) -> Fit:
        """How a ``width`` x ``height`` image meets the network input under :attr:`input_fit`."""
        info = self.info
        key = (self.input_fit, int(width), int(height))
        return self._for_camera(
            "_fit", key, lambda: plan_fit(self.input_fit, int(width), int(height), info.width, info.height)
        )

    def focal_factor(self, intrinsics: Optional[Intrinsics]) -> float:
        """The depth scale factor for a camera (1 without intrinsics): see :func:`focal_factor`."""
        if intrinsics is None:
            return 1.0
        return focal_factor(intrinsics, self.info, self.fit_for(intrinsics.width, intrinsics.height))

    def output_intrinsics(self, intrinsics: Intrinsics, output: str = "input") -> Intrinsics:
        """Intrinsics of the depth :meth:`predict` returns for an image with ``intrinsics`` and ``output``:
        the image's (stretch, pad) or its cropped window's (crop) at "input"; at "network" those resized to
        the network's pixel scale (the network size, or the unpadded box under pad)."""
        fit = self.fit_for(intrinsics.width, intrinsics.height)
        return fit.output_intrinsics(intrinsics, output)

    def aspect_note(self, intrinsics: Optional[Intrinsics], width: int = 0, height: int = 0) -> Optional[str]:
        """A warning (show it once per camera) when the network sees this camera's aspect distorted by more
        than 10 % against its training camera's, else None; without intrinsics give the image size."""
        if intrinsics is not None:
            width, height = intrinsics.width, intrinsics.height
        info = self.info
        fit = self.fit_for(width, height)
        return self._for_camera(
            "_aspect_note",
            (self.input_fit, intrinsics, int(width), int(height)),
            lambda: fitting.aspect_note(intrinsics, fit, info.train_focal, info.config),
        )

    def predict(
        self, rgb: np.ndarray, intrinsics: Optional[Intrinsics] = None, output: str = "input"
    ) -> np.ndarray:
        """Metric depth (float32 metres) of an (H,W,3) uint8 RGB image.

        Args:
            rgb: the image, any size (it is fitted to the network input by :attr:`input_fit`).
            intrinsics: the camera at this image's size; None: no focal scaling (module docstring).
            output: "input" -> (H,W) at the image's resolution, or (h,w) of the centred window under crop;
                "network" -> at the network's pixel scale: (H_net,W_net), or the unpadded (h,w) under pad.
                :meth:`output_intrinsics` describes either.
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
        fits = [self.fit_for(rgb.shape[1], rgb.shape[0]) for rgb in images]
        inputs = [preprocess(rgb, info.width, info.height, fit) for rgb, fit in zip(images, fits)]
        batch = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        depth = self.backend.forward(batch)
        return [
            postprocess(d, focal_factor(camera, info, fit), fit.output_size(output), fit)
            for d, fit, camera in zip(depth, fits, cameras)
        ]

    def __repr__(self) -> str:
        return (
            f"DepthEstimator({str(self.model_path)!r}, backend={self.backend!r}, "
            f"input_fit={self.input_fit!r})"
        )


def _check_fit(input_fit: str) -> str:
    if input_fit not in INPUT_FITS:
        raise InputError(f"input_fit: expected one of {list(INPUT_FITS)}, got {input_fit!r}")
    return input_fit
