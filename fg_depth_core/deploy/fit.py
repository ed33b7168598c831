"""How a camera image meets the network input when their aspect ratios differ (``inference.input_fit``), and
the focal lengths the network then sees (docs/METHOD.md, "Scale").

Three fits, all the same for an image of the network's aspect (up to a pixel of rounding):

- ``stretch``: the whole image resized to the network size; non-uniform when the aspects differ, so the
  network sees the scene squashed or widened.
- ``crop``: the largest centred window of the network's aspect, resized to the network size (uniformly, up
  to rounding); the depth covers that window only.
- ``pad``: the whole image resized uniformly (up to rounding) to fit inside the network input, centred, the
  border filled by repeating the edge pixels; the depth of the border is cut away, so the depth covers the
  whole image.

A :class:`Fit` is pure integer geometry: ``window`` is the part of the image the network sees, in image
pixels, and ``content`` where that window lands in the network input after resizing. Every mapping between
the image, the network input and the published depth, and their intrinsics, follows from these two boxes
through :meth:`Intrinsics.cropped` and :meth:`Intrinsics.resized`, so rounding is always accounted for.
Pixels: integer coordinates are pixel centres (fg_depth_core.camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from fg_depth_core.camera import Intrinsics
from fg_depth_core.config import INPUT_FITS
from fg_depth_core.errors import FgDepthError

#: ``output`` choices: the image's pixel scale, or the network's.
OUTPUTS = ("input", "network")
#: How far (relative) the network may see the camera's aspect distorted against the training camera's
#: before :func:`aspect_note` says so: 10 %.
ASPECT_TOLERANCE = 0.10

Box = Tuple[int, int, int, int]


class FitError(FgDepthError, ValueError):
    """A fit mode or size is unusable; the message names the value."""


@dataclass(frozen=True)
class Fit:
    """Where an image of ``image`` = (W, H) pixels goes in a network input of ``network`` = (W_n, H_n).

    mode: one of :data:`fg_depth_core.config.INPUT_FITS`.
    window: (x0, y0, w, h), the part of the image the network sees, in image pixels (crop: a centred window
        of the network's aspect; stretch and pad: the whole image).
    content: (x0, y0, w, h), where that window lands in the network input after resizing, in network pixels
        (pad: a centred box, the rest is padding; stretch and crop: the whole input).
    """

    mode: str
    image: Tuple[int, int]
    network: Tuple[int, int]
    window: Box
    content: Box

    @property
    def padding(self) -> Tuple[int, int, int, int]:
        """(top, bottom, left, right) rows/columns of padding around the content, network pixels."""
        x0, y0, w, h = self.content
        return y0, self.network[1] - y0 - h, x0, self.network[0] - x0 - w

    def output_size(self, output: str) -> Tuple[int, int]:
        """(W, H) of the depth for ``output``: "input" -> the window at the image's pixel scale (the whole
        image except under crop); "network" -> the window at the network's pixel scale (the network size
        except under pad, where the padding is cut away)."""
        _check_output(output)
        box = self.window if output == "input" else self.content
        return box[2], box[3]

    def window_intrinsics(self, intrinsics: Intrinsics) -> Intrinsics:
        """Intrinsics of the window at the image's pixel scale; ``intrinsics`` describe the whole image."""
        self._check_camera(intrinsics)
        x0, y0, w, h = self.window
        return intrinsics if (w, h) == self.image else intrinsics.cropped(x0, y0, w, h)

    def network_intrinsics(self, intrinsics: Intrinsics) -> Intrinsics:
        """Intrinsics of the window as the network sees it: the content box, network pixels (without the
        padding offset: the box's own pixel grid)."""
        return self.window_intrinsics(intrinsics).resized(self.content[2], self.content[3])

    def output_intrinsics(self, intrinsics: Intrinsics, output: str) -> Intrinsics:
        """Intrinsics of the depth :meth:`output_size` gives for ``output``."""
        _check_output(output)
        if output == "input":
            return self.window_intrinsics(intrinsics)
        return self.network_intrinsics(intrinsics)

    def window_view(self, image: np.ndarray) -> np.ndarray:
        """The window of an (H,W,...) image of this fit's image size (a view, no copy)."""
        if (image.shape[1], image.shape[0]) != self.image:
            raise FitError(
                f"fit: planned for a {self.image[0]}x{self.image[1]} image, got "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        x0, y0, w, h = self.window
        return image[y0 : y0 + h, x0 : x0 + w]

    def content_view(self, network: np.ndarray) -> np.ndarray:
        """The content box of an (..., H_n, W_n) network-size array (a view): the padding cut away."""
        if (network.shape[-1], network.shape[-2]) != self.network:
            raise FitError(
                f"fit: planned for a {self.network[0]}x{self.network[1]} network output, got "
                f"{network.shape[-1]}x{network.shape[-2]}"
            )
        x0, y0, w, h = self.content
        return network[..., y0 : y0 + h, x0 : x0 + w]

    def _check_camera(self, intrinsics: Intrinsics) -> None:
        if (intrinsics.width, intrinsics.height) != self.image:
            raise FitError(
                f"fit: intrinsics describe a {intrinsics.width}x{intrinsics.height} image, the fit a "
                f"{self.image[0]}x{self.image[1]} one"
            )


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise FitError(f"output: expected one of {list(OUTPUTS)}, got {output!r}")


def _centred(outer: int, inner: int) -> int:
    return (outer - inner) // 2


def plan_fit(mode: str, width: int, height: int, net_width: int, net_height: int) -> Fit:
    """The :class:`Fit` of a ``width`` x ``height`` image in a ``net_width`` x ``net_height`` network
    input under ``mode`` (module docstring). Sizes in pixels, all > 0."""
    if mode not in INPUT_FITS:
        raise FitError(f"input_fit: expected one of {list(INPUT_FITS)}, got {mode!r}")
    if min(width, height, net_width, net_height) <= 0:
        raise FitError(
            f"fit: sizes must be > 0, got image {width}x{height}, network {net_width}x{net_height}"
        )
    whole_image = (0, 0, width, height)
    whole_net = (0, 0, net_width, net_height)
    # Compare aspects exactly in integers: width/height vs net_width/net_height.
    wider = width * net_height > net_width * height
    if mode == "stretch" or width * net_height == net_width * height:
        return Fit(mode, (width, height), (net_width, net_height), whole_image, whole_net)
    if mode == "crop":
        if wider:  # keep every row, the middle columns
            w = min(width, max(1, round(height * net_width / net_height)))
            window = (_centred(width, w), 0, w, height)
        else:
            h = min(height, max(1, round(width * net_height / net_width)))
            window = (0, _centred(height, h), width, h)
        return Fit(mode, (width, height), (net_width, net_height), window, whole_net)
    if wider:  # pad: the image fills the width, padding above and below
        h = min(net_height, max(1, round(net_width * height / width)))
        content = (0, _centred(net_height, h), net_width, h)
    else:
        w = min(net_width, max(1, round(net_height * width / height)))
        content = (_centred(net_width, w), 0, w, net_height)
    return Fit(mode, (width, height), (net_width, net_height), whole_image, content)


# ----------------------------------------------------------------------------------------------- focal


def training_aspect(network: Tuple[int, int], config: Optional[Mapping[str, Any]] = None) -> float:
    """Width / height of the network input the model was trained at: ``data.width/data.height`` of its
    configuration when it has them (an export may have another size), else the network's own."""
    data = (config or {}).get("data") or {}
    try:
        width, height = float(data["width"]), float(data["height"])
    except (KeyError, TypeError, ValueError):
        width, height = float(network[0]), float(network[1])
    if not (width > 0 and height > 0):
        width, height = float(network[0]), float(network[1])
    return width / height


def training_focals(
    train_focal: float, network: Tuple[int, int], config: Optional[Mapping[str, Any]] = None
) -> Tuple[float, float]:
    """(fx_t, fy_t), the training camera's focal lengths in pixels at the network input (W_n, H_n).

    ``train_focal`` is horizontal (ModelInfo). The training camera is taken to have square pixels at the
    training input size (exact for the built-in world; KITTI's are 0.7 % apart after its resize), so
    fy_t = fx_t at that size; an export at another aspect scales the two differently:
    fy_t = fx_t * A_train * H_n / W_n, A_train = :func:`training_aspect`.
    """
    fy = train_focal * training_aspect(network, config) * network[1] / network[0]
    return float(train_focal), float(fy)


def focal_factor(
    intrinsics: Optional[Intrinsics], fit: Fit, train_focal: float, config: Optional[Mapping[str, Any]] = None
) -> float:
    """D'/D for a camera with ``intrinsics`` (the whole image's) seen through ``fit`` by a network trained
    with ``train_focal`` (pixels at the network input): the geometric mean of the two focal ratios,
    sqrt((fx'/fx_t) * (fy'/fy_t)), with fx', fy' the camera's focal lengths at the network input
    (:meth:`Fit.network_intrinsics`) and fx_t, fy_t the training camera's (:func:`training_focals`).
    When the network sees the camera undistorted (fx'/fy' = fx_t/fy_t, every crop and pad of a square-pixel
    camera) both ratios are equal and this is exactly f'/f_train. 1 without intrinsics (no correction)."""
    if intrinsics is None:
        return 1.0
    seen = fit.network_intrinsics(intrinsics)
    fx_t, fy_t = training_focals(train_focal, fit.network, config)
    if not (math.isfinite(fx_t) and fx_t > 0 and math.isfinite(fy_t) and fy_t > 0):
        raise FitError(f"training focal length must be > 0, got {train_focal}")
    return math.sqrt((seen.fx / fx_t) * (seen.fy / fy_t))


def anisotropy(
    intrinsics: Optional[Intrinsics], fit: Fit, train_focal: float, config: Optional[Mapping[str, Any]] = None
) -> float:
    """How much wider (> 1) or narrower (< 1) the network sees the scene than the training camera showed it:
    (fx'/fy') / (fx_t/fy_t). Without intrinsics the camera is taken to have square pixels."""
    if intrinsics is None:
        w, h = fit.image
        intrinsics = Intrinsics(1.0, 1.0, (w - 1) / 2, (h - 1) / 2, w, h)
    seen = fit.network_intrinsics(intrinsics)
    fx_t, fy_t = training_focals(train_focal, fit.network, config)
    return (seen.fx / seen.fy) / (fx_t / fy_t)


def aspect_note(
    intrinsics: Optional[Intrinsics], fit: Fit, train_focal: float, config: Optional[Mapping[str, Any]] = None
) -> Optional[str]:
    """A warning when the network sees the camera's aspect distorted by more than :data:`ASPECT_TOLERANCE`
    against the training camera's (in practice: ``stretch`` with a camera of another aspect), else None.
    Meant to be shown once per camera, not per frame."""
    ratio = anisotropy(intrinsics, fit, train_focal, config)
    if max(ratio, 1.0 / ratio) <= 1.0 + ASPECT_TOLERANCE:
        return None
    (w, h), (wn, hn) = fit.image, fit.network
    shape = "wider" if ratio > 1 else "narrower"
    worst = math.sqrt(max(ratio, 1.0 / ratio))
    # crop and pad scale uniformly, so what remains is the camera's pixel aspect or the training camera's
    # (a network input of another aspect than the training images'): name the larger.
    pixel_aspect = intrinsics.fx / intrinsics.fy if intrinsics is not None else 1.0
    fx_t, fy_t = training_focals(train_focal, fit.network, config)
    if fit.mode == "stretch":
        remedy = "input_fit 'pad' or 'crop' keeps the camera's aspect"
    elif abs(math.log(pixel_aspect)) >= abs(math.log(fx_t / fy_t)):
        remedy = f"the camera's pixels are not square (fx/fy = {pixel_aspect:.2f})"
    else:
        remedy = "the model was exported at another aspect than it was trained at"
    return (
        f"input_fit '{fit.mode}': the network sees this {w}x{h} camera {max(ratio, 1 / ratio):.2f}x "
        f"{shape} than its training camera (network input {wn}x{hn}, training aspect "
        f"{training_aspect(fit.network, config):.2f}); the depth scale follows sqrt(fx*fy) and may be off by "
        f"up to {100 * (worst - 1):.0f} %; {remedy}"
    )
