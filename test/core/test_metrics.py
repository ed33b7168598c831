"""The standard depth metrics against values computed by hand."""

import math

import numpy as np
import pytest

from fg_depth_core.errors import FgDepthError
from fg_depth_core.metrics import METRIC_NAMES, depth_metrics


def test_metrics_match_hand_computation():
    gt = np.array([2.0, 4.0, 10.0, 20.0])
    pred = np.array([2.0, 5.0, 8.0, 40.0])
    m = depth_metrics(gt, pred)
    # |d|/gt: 0, 0.25, 0.2, 1.0
    assert m["abs_rel"] == pytest.approx((0 + 0.25 + 0.2 + 1.0) / 4)
    # d^2/gt: 0, 1/4, 4/10, 400/20
    assert m["sq_rel"] == pytest.approx((0 + 0.25 + 0.4 + 20.0) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 4 + 400) / 4))
    logs = [0.0, math.log(4 / 5), math.log(10 / 8), math.log(0.5)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(x * x for x in logs) / 4))
    # ratios: 1, 1.25, 1.25, 2 -> strict < 1.25 keeps only the first
    assert m["a1"] == pytest.approx(0.25)
    assert m["a2"] == pytest.approx(0.75)
    assert m["a3"] == pytest.approx(0.75)
    assert tuple(m) == METRIC_NAMES


def test_perfect_prediction():
    gt = np.linspace(1, 80, 50)
    m = depth_metrics(gt, gt.copy())
    assert m["abs_rel"] == 0 and m["rmse"] == 0 and m["a1"] == 1.0


@pytest.mark.parametrize(
    "gt, pred, fragment",
    [([1.0, 2.0], [1.0], "equal sizes"), ([], [], "no valid"), ([1.0, 0.0], [1.0, 1.0], "> 0")],
)
def test_bad_inputs(gt, pred, fragment):
    with pytest.raises(FgDepthError, match=fragment):
        depth_metrics(np.array(gt), np.array(pred))
