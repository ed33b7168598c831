"""Online scale correction of a monocular depth network from the stereo pair it runs on (``scale_source:
stereo`` of depth_node). ROS-free: numpy, OpenCV and fg_depth_core only, tested without ROS.

docs/METHOD.md, "Scale": a stereo-trained network predicts metric depth for its training camera, and on
another camera the node already applies the focal-length factor f' / f_train. What that factor cannot know
(another baseline seen in training, another lens, a domain gap) shows up as a global scale error. On a stereo
rig the same pair also gives a metric depth by semi-global matching, Z_s = f * B / (d + doffs) with the rig's
disparity offset doffs = cx_r - cx_l (fg_depth_core.camera.StereoRig), sparse and noisy but unbiased where it
is valid. One measurement is the robust median of Z_s / Z_pred over pixels where both are
valid and Z_s lies in a trusted range (SGBM's depth error grows with Z^2, so far pixels are left out);
measurements are smoothed over time with an exponential moving average and clamped, so that one bad pair (a
blank wall, motion blur) cannot swing the output.

Units: depths in metres, disparities and offsets in pixels, focal lengths in pixels, baselines in metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np

from fg_depth_core.camera import StereoRig
from fg_depth_core.config import SgbmConfig
from fg_depth_core.deploy.estimator import resize_image
from fg_depth_core.errors import FgDepthError
from fg_depth_core.geometry_np import depth_from_disparity
from fg_depth_core.stereo_matching import create_matcher, min_disparity_for, sgbm_disparity
from fg_depth_ros.worker import NewestOnlyWorker


class ScaleError(FgDepthError, ValueError):
    """Invalid scale estimator settings or inputs; the message names the value."""


@dataclass(frozen=True)
class ScaleSettings:
    """How stereo scale measurements are taken and smoothed.

    ema: weight of a new measurement in the moving average, in (0, 1] (1 = no smoothing).
    minimum, maximum: clamp of the smoothed scale (dimensionless, minimum < maximum).
    min_depth, max_depth: stereo depths (metres) outside this range are not used.
    min_valid_fraction: a measurement needs at least this fraction of the pixels valid, in (0, 1].
    """

    ema: float = 0.2
    minimum: float = 0.5
    maximum: float = 2.0
    min_depth: float = 0.5
    max_depth: float = 30.0
    min_valid_fraction: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 < self.ema <= 1.0:
            raise ScaleError(f"scale.ema: expected a weight in (0, 1], got {self.ema}")
        if not 0.0 < self.minimum < self.maximum or not np.isfinite(self.maximum):
            raise ScaleError(
                f"scale.min/scale.max: expected 0 < min < max (finite), got {self.minimum}, {self.maximum}"
            )
        if not 0.0 <= self.min_depth < self.max_depth or not np.isfinite(self.max_depth):
            raise ScaleError(
                f"scale depth range: expected 0 <= min < max metres (finite), got {self.min_depth}, "
                f"{self.max_depth}"
            )
        if not 0.0 < self.min_valid_fraction <= 1.0:
            raise ScaleError(
                f"scale.min_valid_fraction: expected a fraction in (0, 1], got {self.min_valid_fraction}"
            )


def scale_measurement(
    stereo_depth: np.ndarray,
    predicted_depth: np.ndarray,
    min_depth: float,
    max_depth: float,
    min_valid_fraction: float,
) -> Optional[float]:
    """One scale measurement: median of stereo_depth / predicted_depth (both (H,W) metres, same size) over
    pixels where the prediction is finite and > 0 and the stereo depth is finite and in [min_depth,
    max_depth]. None when fewer than ``min_valid_fraction`` of the pixels qualify (no measurement)."""
    stereo = np.asarray(stereo_depth, dtype=np.float64)
    predicted = np.asarray(predicted_depth, dtype=np.float64)
    if stereo.shape != predicted.shape or stereo.ndim != 2:
        raise ScaleError(
            f"scale measurement: stereo depth {stereo.shape} and prediction {predicted.shape} must be the "
            "same (H,W)"
        )
    with np.errstate(invalid="ignore"):
        valid = (
            np.isfinite(stereo)
            & (stereo >= min_depth)
            & (stereo <= max_depth)
            & np.isfinite(predicted)
            & (predicted > 0)
        )
    count = int(valid.sum())
    if count == 0 or count < min_valid_fraction * valid.size:
        return None
    return float(np.median(stereo[valid] / predicted[valid]))


class ScaleEstimator:
    """The smoothed, clamped scale: ``update(measurement)`` after each stereo measurement, ``value`` to
    multiply depths with. Starts at 1 (no correction); the first measurement replaces it (there is nothing
    to smooth against yet), later ones enter the moving average. Not thread-safe: one owner updates it.

    Attributes: value (the current scale), measurements (measurements used), rejected (updates without a
    measurement), last_measurement (the newest raw measurement, None before the first).
    """

    def __init__(self, settings: ScaleSettings) -> None:
        self.settings = settings
        self.value = 1.0
        self.measurements = 0
        self.rejected = 0
        self.last_measurement: Optional[float] = None

    def update(self, measurement: Optional[float]) -> float:
        """Fold ``measurement`` (None or non-finite/non-positive = no measurement) into the scale; returns
        the new value."""
        if measurement is None or not np.isfinite(measurement) or measurement <= 0:
            self.rejected += 1
            return self.value
        s = self.settings
        self.last_measurement = float(measurement)
        if self.measurements == 0:
            smoothed = float(measurement)
        else:
            smoothed = (1.0 - s.ema) * self.value + s.ema * float(measurement)
        self.value = float(np.clip(smoothed, s.minimum, s.maximum))
        self.measurements += 1
        return self.value


# ------------------------------------------------------------------------------------------------ SGBM


def fit_num_disparities(requested: int, width: int) -> int:
    """The SGBM search range for an image ``width`` pixels wide: ``requested`` (a positive multiple of 16),
    lowered to the largest multiple of 16 below width / 2 so that most of the image can be matched (SGBM
    cannot match the leftmost num_disparities columns). At least 16."""
    if requested <= 0 or requested % 16:
        raise ScaleError(f"scale.num_disparities: expected a positive multiple of 16, got {requested}")
    fitting = (max(width // 2 - 1, 16) // 16) * 16
    return max(16, min(int(requested), fitting))


class StereoDepth:
    """Metric depth of a rectified pair by OpenCV StereoSGBM (fg_depth_core.stereo_matching: the SGBM
    teacher's matcher and conventions), for scale measurements. ``num_disparities`` is fitted to each image
    width (:func:`fit_num_disparities`) and counts from the first disparity a rig's offset needs; matchers are
    cached per (range, start)."""

    def __init__(
        self, num_disparities: int = SgbmConfig().num_disparities, sgbm: Optional[SgbmConfig] = None
    ) -> None:
        fit_num_disparities(num_disparities, 10**6)  # validate now, not at the first frame
        self.num_disparities = int(num_disparities)
        self.sgbm = sgbm or SgbmConfig()
        self._matchers: dict = {}

    def _matcher(self, width: int, doffs: float):
        from dataclasses import replace

        key = (fit_num_disparities(self.num_disparities, width), min_disparity_for(doffs))
        if key not in self._matchers:
            self._matchers[key] = create_matcher(replace(self.sgbm, num_disparities=key[0]), key[1])
        return self._matchers[key]

    def depth(
        self, left: np.ndarray, right: np.ndarray, focal: float, baseline: float, doffs: float = 0.0
    ) -> np.ndarray:
        """(H,W) float32 metres from (H,W,3) uint8 RGB left/right views of a rig with ``focal`` (pixels, at
        this size), ``baseline`` (metres) and disparity offset ``doffs`` (pixels at this size); NaN where SGBM
        found no match."""
        import cv2

        if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
            raise ScaleError(
                f"stereo depth: expected two (H,W,3) views of one size, got {left.shape}, {right.shape}"
            )
        if not (np.isfinite(focal) and focal > 0 and np.isfinite(baseline) and baseline > 0):
            raise ScaleError(
                f"stereo depth: need focal > 0 pixels and baseline > 0 metres, got {focal}, {baseline}"
            )
        gray = [cv2.cvtColor(np.ascontiguousarray(v), cv2.COLOR_RGB2GRAY) for v in (left, right)]
        disparity = sgbm_disparity(self._matcher(left.shape[1], doffs), gray[0], gray[1], doffs)
        depth, valid = depth_from_disparity(disparity, focal, baseline, doffs)
        return np.where(valid, depth, np.float32(np.nan)).astype(np.float32)


# ------------------------------------------------------------------------------------------- the worker


class StereoScale:
    """The online scale correction of a stereo node: :meth:`submit` hands the newest pair and its predicted
    depth to a worker thread (fg_depth_ros.worker, newest item only, so matching never delays the depth),
    which measures by SGBM at the network resolution and updates :attr:`estimator`; :attr:`value` is the
    scale to apply now. ``on_error(exc)`` hears about failed measurements."""

    def __init__(
        self,
        settings: ScaleSettings,
        num_disparities: int,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.estimator = ScaleEstimator(settings)
        self.stereo = StereoDepth(num_disparities)
        self.worker = NewestOnlyWorker("depth_stereo_scale", self._measure, on_error)

    @classmethod
    def from_params(
        cls, params: Any, min_depth: float, on_error: Callable[[BaseException], None]
    ) -> "StereoScale":
        """From depth_node's ``scale.*`` parameters (fg_depth_ros.node_params.ScaleParams) and the lower end
        of the published depth range (metres)."""
        settings = ScaleSettings(
            ema=params.ema,
            minimum=params.min,
            maximum=params.max,
            min_depth=min_depth,
            max_depth=params.max_depth,
            min_valid_fraction=params.min_valid_fraction,
        )
        return cls(settings, params.num_disparities, on_error)

    @property
    def value(self) -> float:
        return self.estimator.value

    @property
    def measurements(self) -> int:
        return self.estimator.measurements

    def submit(self, left: np.ndarray, right: np.ndarray, rig: StereoRig, predicted: np.ndarray) -> None:
        """Queue one measurement: (H,W,3) uint8 views with their ``rig`` (at the views' size), and the
        prediction (h,w) metres at the network resolution, before any scale correction."""
        self.worker.submit((left, right, rig, predicted))

    def _measure(self, item: Tuple[Any, ...], submitted_at: float) -> None:
        left, right, rig, predicted = item
        height, width = predicted.shape
        views = [resize_image(v, width, height) for v in (left, right)]
        small = rig.resized(width, height)
        stereo = self.stereo.depth(views[0], views[1], small.intrinsics.fx, small.baseline, small.doffs)
        s = self.estimator.settings
        self.estimator.update(
            scale_measurement(stereo, predicted, s.min_depth, s.max_depth, s.min_valid_fraction)
        )
