"""inference.input_fit (fg_depth_core/deploy/fit.py): the stretch, crop and pad geometry against hand
computations, focal scaling with fx != fy, the one-time aspect note, and end to end through DepthEstimator
with the linear ONNX model (depth a known function of the input pixel): a 4:3 camera's published depth,
back-projected with the published K, lands on the right 3-D points in every mode and at both resolutions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from linear_model_helpers import write_linear_model

from fg_depth_core.camera import Intrinsics
from fg_depth_core.config import ConfigError, load_config
from fg_depth_core.deploy.estimator import DepthEstimator, postprocess, preprocess
from fg_depth_core.deploy.fit import (
    FitError,
    anisotropy,
    aspect_note,
    focal_factor,
    plan_fit,
    training_focals,
)

NET_W, NET_H = 64, 32
TRAIN_FOCAL = 50.0
OFFSET, GAIN = 2.0, 25.5  # the linear model: depth = 2 + 25.5 * R / 255 metres, 0.1 m per red level
#: A 4:3 camera whose pixels are not square, so that fx and fy scale the depth differently.
CAMERA = Intrinsics(100.0, 90.0, 79.5, 59.5, 160, 120)

# By hand for CAMERA (160x120) in the 64x32 network input (2:1):
#   stretch: the whole image to 64x32: fx' = 100 * 64/160 = 40, fy' = 90 * 32/120 = 24.
#   crop: the 2:1 window 160x80 at rows 20..99 (cy 59.5 -> 39.5), to 64x32: fx' = 40, fy' = 36.
#   pad: the whole image to round(32 * 160/120) = 43 x 32, columns 10..52: fx' = 100 * 43/160 = 26.875.
# Output intrinsics (fx, fy, cx, cy, W, H); resizing maps cx to (cx + 0.5) * s - 0.5.
EXPECTED = {
    "stretch": {
        "factor": math.sqrt(40.0 * 24.0) / TRAIN_FOCAL,
        "input": (100.0, 90.0, 79.5, 59.5, 160, 120),
        "network": (40.0, 24.0, 31.5, 15.5, 64, 32),
    },
    "crop": {
        "factor": math.sqrt(40.0 * 36.0) / TRAIN_FOCAL,
        "input": (100.0, 90.0, 79.5, 39.5, 160, 80),
        "network": (40.0, 36.0, 31.5, 15.5, 64, 32),
    },
    "pad": {
        "factor": math.sqrt(26.875 * 24.0) / TRAIN_FOCAL,
        "input": (100.0, 90.0, 79.5, 59.5, 160, 120),
        "network": (26.875, 24.0, 21.0, 15.5, 43, 32),
    },
}


# ------------------------------------------------------------------------------------------- geometry


def test_the_three_fits_of_a_4_3_camera_in_a_kitti_sized_input_by_hand():
    stretch = plan_fit("stretch", 640, 480, 640, 192)
    assert stretch.window == (0, 0, 640, 480) and stretch.content == (0, 0, 640, 192)
    crop = plan_fit("crop", 640, 480, 640, 192)  # every column, the middle 192 rows
    assert crop.window == (0, 144, 640, 192) and crop.content == (0, 0, 640, 192)
    assert crop.output_size("input") == (640, 192) and crop.output_size("network") == (640, 192)
    pad = plan_fit("pad", 640, 480, 640, 192)  # 0.4x: 256x192 in the middle, 192 columns each side
    assert pad.window == (0, 0, 640, 480) and pad.content == (192, 0, 256, 192)
    assert pad.padding == (0, 0, 192, 192)
    assert pad.output_size("input") == (640, 480) and pad.output_size("network") == (256, 192)
    # KITTI's 1242x375 is a little narrower than 640x192: two columns of padding, or two rows cropped.
    assert plan_fit("pad", 1242, 375, 640, 192).content == (2, 0, 636, 192)
    assert plan_fit("crop", 1242, 375, 640, 192).window == (0, 1, 1242, 373)
    # A wide image: crop keeps the middle columns (100 * 640/192 = 333 of them), pad adds rows.
    assert plan_fit("crop", 1000, 100, 640, 192).window == (333, 0, 333, 100)
    assert plan_fit("pad", 1000, 100, 640, 192).content == (0, 64, 640, 64)
    # The network's aspect: all three are one resize.
    for mode in ("stretch", "crop", "pad"):
        same = plan_fit(mode, 1280, 384, 640, 192)
        assert same.window == (0, 0, 1280, 384) and same.content == (0, 0, 640, 192)


def test_output_intrinsics_of_each_fit_by_hand():
    for mode, expected in EXPECTED.items():
        fit = plan_fit(mode, 160, 120, NET_W, NET_H)
        for output in ("input", "network"):
            k = fit.output_intrinsics(CAMERA, output)
            got = (k.fx, k.fy, k.cx, k.cy, k.width, k.height)
            assert got == pytest.approx(expected[output], abs=1e-9), (mode, output)
            assert (k.width, k.height) == fit.output_size(output)


def test_bad_modes_sizes_and_cameras_are_refused():
    with pytest.raises(FitError, match=r"input_fit: expected one of \['stretch', 'crop', 'pad'\], got .fill"):
        plan_fit("fill", 160, 120, NET_W, NET_H)
    with pytest.raises(FitError, match="sizes must be > 0, got image 0x120"):
        plan_fit("pad", 0, 120, NET_W, NET_H)
    fit = plan_fit("crop", 160, 120, NET_W, NET_H)
    with pytest.raises(FitError, match="intrinsics describe a 320x240 image, the fit a 160x120 one"):
        fit.output_intrinsics(CAMERA.resized(320, 240), "input")
    with pytest.raises(FitError, match="output: expected one of"):
        fit.output_size("full")
    with pytest.raises(FitError, match="planned for a 160x120 image, got 120x160"):
        fit.window_view(np.zeros((160, 120, 3), np.uint8))


def test_input_fit_config_key_and_its_validation(tmp_path):
    assert load_config().inference.input_fit == "pad"
    assert load_config(overrides=["inference.input_fit=crop"]).inference.input_fit == "crop"
    with pytest.raises(ConfigError, match=r"inference.input_fit: expected one of \['stretch', 'crop', 'pad"):
        load_config(overrides=["inference.input_fit=letterbox"])


# ------------------------------------------------------------------------------------ pre/post-processing


def test_preprocess_pads_by_repeating_edges_and_crops_the_centre():
    rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    pad = plan_fit("pad", 160, 120, NET_W, NET_H)
    x = (preprocess(rgb, NET_W, NET_H, pad)[0] * 255.0).round().astype(np.uint8).transpose(1, 2, 0)
    assert x.shape == (NET_H, NET_W, 3)
    inner = x[:, 10:53]
    np.testing.assert_array_equal(x[:, :10], np.repeat(inner[:, :1], 10, axis=1))
    np.testing.assert_array_equal(x[:, 53:], np.repeat(inner[:, -1:], 11, axis=1))
    whole = preprocess(rgb, 43, 32)[0]  # the whole image at the content size
    np.testing.assert_array_equal(inner, (whole * 255.0).round().astype(np.uint8).transpose(1, 2, 0))
    crop = plan_fit("crop", 160, 120, NET_W, NET_H)
    np.testing.assert_array_equal(preprocess(rgb, NET_W, NET_H, crop), preprocess(rgb[20:100], NET_W, NET_H))
    with pytest.raises(ValueError, match="planned for a 64x32 network input, not 128x64"):
        preprocess(rgb, 128, 64, crop)


def test_postprocess_cuts_the_padding_away_before_resizing():
    pad = plan_fit("pad", 160, 120, NET_W, NET_H)
    network = np.full((NET_H, NET_W), 100.0, np.float32)
    network[:, 10:53] = 3.0  # the content; the padding's depth must not leak into the image
    out = postprocess(network, 2.0, (160, 120), pad)
    assert out.shape == (120, 160)
    np.testing.assert_allclose(out, 6.0)
    assert postprocess(network, 1.0, None, pad).shape == (32, 43)


# ------------------------------------------------------------------------------------------- focal scale


def test_focal_factor_of_each_fit_with_fx_not_fy():
    for mode, expected in EXPECTED.items():
        fit = plan_fit(mode, 160, 120, NET_W, NET_H)
        assert focal_factor(CAMERA, fit, TRAIN_FOCAL) == pytest.approx(expected["factor"], rel=1e-12), mode
        assert focal_factor(None, fit, TRAIN_FOCAL) == 1.0
    # Crop and pad keep the camera's aspect: a square-pixel camera scales by exactly f'/f_train.
    square = Intrinsics(100.0, 100.0, 79.5, 59.5, 160, 120)
    assert focal_factor(square, plan_fit("crop", 160, 120, NET_W, NET_H), TRAIN_FOCAL) == pytest.approx(0.8)
    pad = plan_fit("pad", 160, 120, NET_W, NET_H)  # 43 columns for 160 (0.26875), 32 rows for 120 (0.2667)
    assert focal_factor(square, pad, TRAIN_FOCAL) == pytest.approx(
        math.sqrt(100 * 43 / 160 * 100 * 32 / 120) / TRAIN_FOCAL
    )


def test_the_training_focal_lengths_follow_the_training_aspect_of_an_export():
    # Trained at 640x192 with f = 370 px, exported at 640x320 (train_focal stays horizontal: 370): the
    # export stretches the training camera vertically by 320/192, so fy_t = 370 * 320/192.
    config = {"data": {"width": 640, "height": 192}}
    fx_t, fy_t = training_focals(370.0, (640, 320), config)
    assert (fx_t, fy_t) == pytest.approx((370.0, 370.0 * 320 / 192))
    assert training_focals(370.0, (640, 320)) == pytest.approx((370.0, 370.0))  # no config: square
    # A 2:1 camera scaled uniformly into that export looks 320/192 times wider than the training camera did
    # there; at the training size a camera of the training aspect looks as the training camera did.
    camera = Intrinsics(740.0, 740.0, 639.5, 319.5, 1280, 640)
    fit = plan_fit("pad", 1280, 640, 640, 320)
    assert anisotropy(camera, fit, 370.0, config) == pytest.approx(320 / 192)
    assert "the model was exported at another aspect than it was trained at" in aspect_note(
        camera, fit, 370.0, config
    )
    same = Intrinsics(740.0, 740.0, 639.5, 191.5, 1280, 384)
    assert anisotropy(same, plan_fit("stretch", 1280, 384, 640, 192), 370.0, config) == pytest.approx(1.0)


def test_the_aspect_note_beyond_ten_percent_under_stretch_only():
    fit = plan_fit("stretch", 640, 480, 640, 192)
    note = aspect_note(None, fit, 370.0)
    assert note is not None and "this 640x480 camera 2.50x wider than its training camera" in note
    assert "may be off by up to 58 %" in note and "'pad' or 'crop'" in note
    for mode in ("crop", "pad"):
        assert aspect_note(None, plan_fit(mode, 640, 480, 640, 192), 370.0) is None
    # KITTI's own images (0.6 % off) and anything within 10 %: no note; beyond: a note.
    assert aspect_note(None, plan_fit("stretch", 1242, 375, 640, 192), 370.0) is None
    assert aspect_note(None, plan_fit("stretch", 620, 200, 640, 192), 370.0) is None  # 1.075
    beyond = aspect_note(None, plan_fit("stretch", 600, 200, 640, 192), 370.0)  # 1.111
    assert beyond is not None and "1.11x wider" in beyond
    assert "1.11x narrower" in aspect_note(None, plan_fit("stretch", 740, 200, 640, 192), 370.0)
    # Non-square pixels count: a 10:3 image whose fy is 1.5 fx is seen 1.5x narrower even in crop.
    tall = Intrinsics(200.0, 300.0, 319.5, 95.5, 640, 192)
    assert "1.50x narrower" in aspect_note(tall, plan_fit("crop", 640, 192, 640, 192), 370.0)


# --------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory):
    return write_linear_model(
        tmp_path_factory.mktemp("fit") / "linear.onnx", NET_W, NET_H, OFFSET, GAIN, TRAIN_FOCAL
    )


def ramp_image(axis: str) -> np.ndarray:
    """CAMERA's image whose red level is 40 + the pixel's column (axis "x") or row ("y"): each published
    depth then says which camera pixel the network saw there."""
    cols, rows = np.meshgrid(np.arange(160), np.arange(120))
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[:, :, 0] = 40 + (cols if axis == "x" else rows)
    rgb[:, :, 1] = 128
    return rgb


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
@pytest.mark.parametrize("output", ["input", "network"])
@pytest.mark.parametrize("axis", ["x", "y"])
def test_published_depth_back_projects_to_the_scene_point_through_the_published_k(
    linear_model, mode, output, axis
):
    estimator = DepthEstimator(linear_model, "onnxruntime", "cpu", input_fit=mode)
    depth = estimator.predict(ramp_image(axis), CAMERA, output=output)
    k = estimator.output_intrinsics(CAMERA, output)
    fx, fy, cx, cy, width, height = EXPECTED[mode][output]
    assert depth.shape == (height, width)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == pytest.approx((fx, fy, cx, cy, width, height))
    # Each published pixel back-projected with the published K: a point P = depth * K^-1 (u, v, 1).
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([(u - k.cx) / k.fx * depth, (v - k.cy) / k.fy * depth, depth], axis=-1)
    # The camera pixel P projects to, and the scene's depth there: the linear model saw red 40 + x (or y)
    # at that pixel, scaled by the hand-computed focal factor of this fit.
    x = CAMERA.fx * points[..., 0] / points[..., 2] + CAMERA.cx
    y = CAMERA.fy * points[..., 1] / points[..., 2] + CAMERA.cy
    red = 40.0 + (x if axis == "x" else y)
    truth = (OFFSET + GAIN * red / 255.0) * EXPECTED[mode]["factor"]
    # Away from the border (resampling clamps there); the input's red levels are rounded to integers when
    # the image is resized, so a point may be off by half a level (0.05 m before the factor).
    margin = 4 if output == "input" else 1
    inner = (slice(margin, height - margin), slice(margin, width - margin))
    error = (depth - truth)[inner] / (GAIN / 255.0 * EXPECTED[mode]["factor"])  # in red levels = pixels
    assert np.abs(error).max() <= 0.55, (mode, output, axis)
    # No systematic shift: a principal point or crop window off by a quarter pixel would show here.
    assert abs(float(np.mean(error))) < 0.1, (mode, output, axis)
    # The 3-D points themselves: the scene point along each camera ray through (x, y).
    scene = np.stack(
        [(x - CAMERA.cx) / CAMERA.fx * truth, (y - CAMERA.cy) / CAMERA.fy * truth, truth], axis=-1
    )
    np.testing.assert_allclose(points[inner], scene[inner], atol=0.55 * GAIN / 255.0 * 2.0)


def test_the_estimator_output_follows_its_fit_and_batches_mix_sizes(linear_model):
    crop = DepthEstimator(linear_model, "onnxruntime", "cpu", input_fit="crop")
    images = [ramp_image("x"), np.zeros((32, 64, 3), np.uint8)]
    depths = crop.predict_batch(images, [CAMERA, None])
    assert depths[0].shape == (80, 160) and depths[1].shape == (32, 64)
    np.testing.assert_allclose(depths[0], crop.predict(images[0], CAMERA), rtol=1e-6)
    assert crop.fit_for(160, 120).window == (0, 20, 160, 80)
    # Crop keeps the aspect: square pixels give no note; CAMERA's fx/fy = 1.11 does, and says why.
    assert crop.aspect_note(None, 160, 120) is None
    assert "1.11x wider" in crop.aspect_note(CAMERA) and "pixels are not square" in crop.aspect_note(CAMERA)
    stretch = DepthEstimator(linear_model, "onnxruntime", "cpu", input_fit="stretch")
    assert "1.50x wider" in stretch.aspect_note(None, 160, 120)  # 2 / (4/3), square pixels assumed
    assert "1.67x wider" in stretch.aspect_note(CAMERA)  # fx' / fy' = 40 / 24
