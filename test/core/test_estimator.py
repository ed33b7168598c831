"""DepthEstimator: pre/post-processing against hand computations, the focal scaling of docs/METHOD.md,
"Scale", on rendered scenes, batch prediction, input errors, and `fg-depth predict` end to end. Most tests
here stretch (the 1280x720 test camera is 16:9, the network 2:1); the three input fits are
test_input_fit.py's."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from fg_depth_core.camera import Intrinsics
from fg_depth_core.cli import main
from fg_depth_core.config import ConfigError, InferenceConfig
from fg_depth_core.data.render import render_stereo
from fg_depth_core.data.world import street_scene
from fg_depth_core.deploy.estimator import (
    DepthEstimator,
    InputError,
    focal_factor,
    postprocess,
    preprocess,
    resize_interpolation,
)
from fg_depth_core.deploy.model_info import ModelInfo

NET_W, NET_H = 128, 64
#: Training focal length at the network size: half the focal of the test camera there, so scaling is 2x.
TRAIN_FOCAL = 35.0
#: The test camera: 1280x720, fx = fy = 700 px -> fx = 70 px at the 128x64 network input.
CAMERA = Intrinsics(700.0, 700.0, 639.5, 359.5, 1280, 720)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, write_depthnet_checkpoint) -> Path:
    path = tmp_path_factory.mktemp("estimator") / "net.pt"
    return write_depthnet_checkpoint(path, NET_W, NET_H, train_focal=TRAIN_FOCAL)


@pytest.fixture(scope="module")
def estimator(checkpoint) -> DepthEstimator:
    return DepthEstimator(checkpoint, backend="torch", device="cpu", input_fit="stretch")


@pytest.fixture(scope="module")
def street():
    """One street scene rendered by the test camera (1280x720) and by that camera scaled to the network
    size (its intrinsics resized as an image resize changes them)."""
    patches = street_scene(5)
    small_k = CAMERA.resized(NET_W, NET_H)
    big = render_stereo(patches, CAMERA, 0.54, antialias=True).left
    small = render_stereo(patches, small_k, 0.54, antialias=True).left
    return big, small, small_k


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------- pre/post-processing


def test_preprocess_at_the_network_size_is_the_image_in_nchw_over_255():
    rgb = random_image(NET_H, NET_W)
    x = preprocess(rgb, NET_W, NET_H)
    assert x.shape == (1, 3, NET_H, NET_W) and x.dtype == np.float32 and x.flags.c_contiguous
    for c in range(3):
        np.testing.assert_allclose(x[0, c], rgb[:, :, c] / 255.0, atol=1e-7)


def test_preprocess_shrinks_by_area_averaging():
    # A 3x reduction: area averaging is the mean of each 3x3 block, which bilinear sampling (the block's
    # centre pixel) or nearest would not give on random pixels.
    rgb = random_image(3 * NET_H, 3 * NET_W, seed=1)
    x = preprocess(rgb, NET_W, NET_H)
    blocks = rgb.reshape(NET_H, 3, NET_W, 3, 3).astype(np.float64).mean(axis=(1, 3))
    expected = np.round(blocks).transpose(2, 0, 1) / 255.0  # OpenCV rounds back to uint8
    assert np.abs(x[0] - expected).max() <= 1.0 / 255.0 + 1e-6
    centre = rgb[1::3, 1::3].transpose(2, 0, 1) / 255.0
    assert np.abs(x[0] - centre).mean() > 20.0 / 255.0


def test_preprocess_enlarges_bilinearly_and_the_interpolation_rule():
    assert resize_interpolation((256, 128), (128, 64)) == cv2.INTER_AREA
    assert resize_interpolation((128, 64), (128, 64)) == cv2.INTER_AREA
    assert resize_interpolation((100, 50), (128, 64)) == cv2.INTER_LINEAR
    assert resize_interpolation((256, 32), (128, 64)) == cv2.INTER_LINEAR  # one side grows
    # A horizontal ramp enlarged 2x: bilinear with pixel-centre alignment puts output pixel u at source
    # x = (u + 0.5) / 2 - 0.5, so the interior is that linear function exactly (up to uint8 rounding).
    ramp = np.tile((np.arange(NET_W // 2) * 3).astype(np.uint8)[None, :, None], (NET_H // 2, 1, 3))
    x = preprocess(ramp, NET_W, NET_H)[0, 0] * 255.0
    u = np.arange(2, NET_W - 2)
    np.testing.assert_allclose(
        x[:, 2:-2], np.broadcast_to(3 * ((u + 0.5) / 2 - 0.5), x[:, 2:-2].shape), atol=0.51
    )


def test_postprocess_scales_then_resizes_bilinearly():
    ramp = np.tile(1.0 + np.arange(16, dtype=np.float32)[None, :], (8, 1))
    out = postprocess(ramp[None, None], 2.0, (32, 16))
    assert out.shape == (16, 32) and out.dtype == np.float32
    u = np.arange(1, 31)
    np.testing.assert_allclose(
        out[:, 1:31], np.broadcast_to(2.0 * (1.0 + (u + 0.5) / 2 - 0.5), (16, 30)), rtol=1e-6
    )
    same = postprocess(ramp, 1.0, None)
    np.testing.assert_array_equal(same, ramp)
    assert postprocess(ramp, 3.0, (16, 8)) == pytest.approx(3.0 * ramp)


def test_focal_factor_is_the_geometric_mean_of_fx_and_fy_at_the_network_input_size():
    info = ModelInfo(NET_W, NET_H, 0.1, 100.0, TRAIN_FOCAL, 0.54)
    assert focal_factor(None, info) == 1.0
    # Stretched 1280x720 -> 128x64: fx' = 700 * 128/1280 = 70, fy' = 700 * 64/720 = 62.2 px.
    fx_net, fy_net = 700.0 * NET_W / 1280, 700.0 * NET_H / 720
    assert focal_factor(CAMERA, info) == pytest.approx(np.sqrt(fx_net * fy_net) / TRAIN_FOCAL)
    # fy now takes part: a camera with fy = 300 instead of 700 scales by sqrt(300/700) less.
    other_fy = Intrinsics(700.0, 300.0, 639.5, 359.5, 1280, 720)
    assert focal_factor(other_fy, info) == pytest.approx(focal_factor(CAMERA, info) * np.sqrt(300 / 700))
    # A camera that the stretch leaves square (fy' = fx') scales by exactly f'/f_train, as before.
    square = Intrinsics(700.0, 70.0 * 720 / NET_H, 639.5, 359.5, 1280, 720)
    assert focal_factor(square, info) == pytest.approx(70.0 / TRAIN_FOCAL)


# ----------------------------------------------------------------------------------------- metric scale


def test_a_1280x720_image_and_its_intrinsics_give_the_depth_of_the_same_scene_at_the_network_size(
    estimator, street
):
    big, small, small_k = street
    d_big = estimator.predict(big, CAMERA, output="network")
    d_small = estimator.predict(small, small_k, output="network")
    assert d_big.shape == d_small.shape == (NET_H, NET_W)
    rel = np.abs(d_big - d_small) / d_small
    assert np.median(rel) < 0.005 and rel.max() < 0.05
    # Both are sqrt(fx' fy') / f_train = sqrt(70 * 62.2) / 35 times what the network says for its training
    # camera: with the wrong focal (the 1280x720 fx, or none) the comparison above could not hold at 0.5%.
    unscaled = estimator.predict(small, None, output="network")
    expected = np.sqrt(70.0 * 700.0 * NET_H / 720) / TRAIN_FOCAL
    assert np.median(d_small / unscaled) == pytest.approx(expected, rel=1e-5)
    # At the input resolution the depth is the network's, resized back: area-averaging it to the network
    # size returns it (up to resampling).
    full = estimator.predict(big, CAMERA)
    assert full.shape == (720, 1280) and full.dtype == np.float32
    back = cv2.resize(full, (NET_W, NET_H), interpolation=cv2.INTER_AREA)
    assert np.median(np.abs(back - d_big) / d_big) < 0.002


def test_twice_the_focal_length_gives_exactly_twice_the_depth(estimator, street):
    big = street[0]
    wide = estimator.predict(big, CAMERA)
    k2 = Intrinsics(2 * CAMERA.fx, 2 * CAMERA.fy, CAMERA.cx, CAMERA.cy, CAMERA.width, CAMERA.height)
    np.testing.assert_allclose(estimator.predict(big, k2), 2.0 * wide, rtol=1e-6)
    # Twice fx alone is half of that change, in logarithms: sqrt(2).
    kx = Intrinsics(2 * CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy, CAMERA.width, CAMERA.height)
    np.testing.assert_allclose(estimator.predict(big, kx), np.sqrt(2.0) * wide, rtol=1e-6)


def test_without_intrinsics_the_image_is_the_training_camera_scaled_to_it(estimator):
    rgb = random_image(90, 200, seed=3)
    # The training camera stretched to 200x90: fx = TRAIN_FOCAL at 128 px wide, fy at 64 px high.
    training = Intrinsics(TRAIN_FOCAL * 200 / NET_W, TRAIN_FOCAL * 90 / NET_H, 99.5, 44.5, 200, 90)
    np.testing.assert_allclose(estimator.predict(rgb), estimator.predict(rgb, training), rtol=1e-6)
    assert estimator.focal_factor(training) == pytest.approx(1.0)


def test_predict_batch_equals_one_by_one_with_mixed_sizes_and_cameras(estimator):
    images = [random_image(64, 128, 4), random_image(100, 300, 5), random_image(720, 1280, 6)]
    cameras = [None, Intrinsics(150.0, 150.0, 150.0, 50.0, 300, 100), CAMERA]
    batch = estimator.predict_batch(images, cameras)
    for image, camera, depth in zip(images, cameras, batch):
        assert depth.shape == image.shape[:2]
        np.testing.assert_allclose(depth, estimator.predict(image, camera), rtol=1e-5)
    shared = estimator.predict_batch(images[2:] * 2, CAMERA, output="network")
    assert len(shared) == 2 and shared[0].shape == (NET_H, NET_W)
    np.testing.assert_allclose(shared[0], shared[1], rtol=1e-6)


def test_estimator_properties_and_config_defaults(estimator, checkpoint):
    assert estimator.backend_name == "torch" and estimator.device == "cpu"
    assert estimator.input_fit == "stretch" and "input_fit='stretch'" in repr(estimator)
    default = DepthEstimator(checkpoint, backend="torch", device="cpu")
    assert default.input_fit == InferenceConfig().input_fit == "pad"
    assert DepthEstimator.from_backend(estimator.backend).input_fit == "pad"
    assert DepthEstimator.from_backend(estimator.backend, "crop").input_fit == "crop"
    with pytest.raises(InputError, match=r"input_fit: expected one of \[.stretch., .crop., .pad.\], got"):
        DepthEstimator(checkpoint, backend="torch", device="cpu", input_fit="fill")
    with pytest.raises(InputError, match="input_fit: expected one of"):
        DepthEstimator.from_backend(estimator.backend, "zoom")
    assert (estimator.info.width, estimator.info.height, estimator.info.train_focal) == (
        NET_W,
        NET_H,
        TRAIN_FOCAL,
    )
    cfg = InferenceConfig(backend="torch", device="cpu")
    from_cfg = DepthEstimator.from_config(checkpoint, cfg)
    rgb = random_image(64, 128, 7)
    # An image of the network's aspect: every fit is the same resize.
    np.testing.assert_array_equal(from_cfg.predict(rgb), estimator.predict(rgb))
    with pytest.raises(ConfigError, match="inference.device: expected auto, cpu, cuda or cuda:N"):
        DepthEstimator.from_config(checkpoint, InferenceConfig(device="gpu"))
    cropping = DepthEstimator.from_config(checkpoint, InferenceConfig(device="cpu", input_fit="crop"))
    assert cropping.input_fit == "crop"
    with pytest.raises(ConfigError, match=r"inference.input_fit: expected one of \[.stretch., .crop., .pad"):
        DepthEstimator.from_config(checkpoint, InferenceConfig(input_fit="letterbox"))
    wrapped = DepthEstimator.from_backend(estimator.backend)
    assert wrapped.model_path == checkpoint and wrapped.info == estimator.info


@pytest.mark.parametrize(
    "image, camera, output, message",
    [
        (np.zeros((64, 128, 3), np.float32), None, "input", "expected dtype uint8"),
        (np.zeros((64, 128), np.uint8), None, "input", r"expected shape \(H,W,3\)"),
        (np.zeros((64, 128, 4), np.uint8), None, "input", r"expected shape \(H,W,3\)"),
        (np.zeros((0, 128, 3), np.uint8), None, "input", "H, W > 0"),
        ([[1, 2, 3]], None, "input", "expected a numpy array"),
        (
            np.zeros((720, 1280, 3), np.uint8),
            CAMERA.resized(640, 360),
            "input",
            "describe a 640x360 image but",
        ),
        (np.zeros((64, 128, 3), np.uint8), (1.0, 2.0), "input", "expected fg_depth_core.camera.Intrinsics"),
        (np.zeros((64, 128, 3), np.uint8), None, "full", "output: expected one of"),
    ],
)
def test_bad_input_is_a_clear_error(estimator, image, camera, output, message):
    with pytest.raises(InputError, match=message):
        estimator.predict(image, camera, output)


def test_batch_input_errors(estimator):
    with pytest.raises(InputError, match="at least one image"):
        estimator.predict_batch([])
    with pytest.raises(InputError, match=r"one per image \(2\), got 1"):
        estimator.predict_batch([random_image(64, 128)] * 2, [None])
    with pytest.raises(InputError, match="image 1: expected dtype uint8"):
        estimator.predict_batch([random_image(64, 128), np.zeros((64, 128, 3), np.int16)])


# ------------------------------------------------------------------------------------- fg-depth predict


def test_cli_predict_writes_metric_depth_and_a_colour_image_per_image(checkpoint, tmp_path, capsys):
    images = {"wide": random_image(90, 200, 8), "small": random_image(50, 70, 9)}
    images["small2"] = random_image(50, 70, 10)
    paths = []
    for name, rgb in images.items():
        path = tmp_path / "in" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    base = ["predict", "--model", str(checkpoint), "--backend", "torch", "--device", "cpu", "--image", *paths]
    assert main(base + ["--out", str(tmp_path / "plain")]) == 0
    out = capsys.readouterr().out
    assert "no intrinsics given (--fx): assuming the training camera scaled to each image" in out
    assert "backend torch on cpu" in out and "input fit pad" in out and "warning" not in out
    assert main(base + ["--out", str(tmp_path / "camera"), "--fx", "100"]) == 0
    assert "no intrinsics given" not in capsys.readouterr().out
    assert main(base + ["--out", str(tmp_path / "stretch"), "--fx", "100", "--input-fit", "stretch"]) == 0
    out = capsys.readouterr().out
    # Stretched into 128x64 (2:1), 70x50 (1.4:1) looks 2/1.4 = 1.43x wider, 200x90 (2.22:1) 1.11x narrower:
    # each warned about once, however many images of that camera.
    assert out.count("warning: input_fit 'stretch': the network sees this 70x50 camera 1.43x wider") == 1
    assert out.count("warning: input_fit 'stretch': the network sees this 200x90 camera 1.11x narrower") == 1
    assert out.count("warning") == 2 and "may be off by up to 20 %" in out
    reference = DepthEstimator(checkpoint, backend="torch", device="cpu")
    # Under pad the 200x90 image fills 128x58 of the input, the 70x50 one 90x64 (by hand: fit the long side).
    content = {"wide": (128, 58), "small": (90, 64), "small2": (90, 64)}
    for name, rgb in images.items():
        h, w = rgb.shape[:2]
        depth = np.load(tmp_path / "plain" / f"{name}.npy")
        assert depth.shape == rgb.shape[:2] and depth.dtype == np.float32
        np.testing.assert_allclose(depth, reference.predict(rgb), rtol=1e-6)
        png = cv2.imread(str(tmp_path / "plain" / f"{name}.png"))
        assert png.shape == rgb.shape and png.std() > 0
        # --fx = --fy = 100 on a W x H image padded into a cw x ch box: fx' = 100 cw / W, fy' = 100 ch / H.
        cw, ch = content[name]
        scaled = np.load(tmp_path / "camera" / f"{name}.npy")
        factor = np.sqrt(100.0 * cw / w * 100.0 * ch / h) / TRAIN_FOCAL
        np.testing.assert_allclose(scaled, factor * depth, rtol=1e-5)
        # Stretched: fx' = 100 * 128 / W, fy' = 100 * 64 / H.
        stretched = np.load(tmp_path / "stretch" / f"{name}.npy")
        unscaled = DepthEstimator(checkpoint, backend="torch", device="cpu", input_fit="stretch").predict(rgb)
        factor = np.sqrt(100.0 * NET_W / w * 100.0 * NET_H / h) / TRAIN_FOCAL
        np.testing.assert_allclose(stretched, factor * unscaled, rtol=1e-5)


def test_cli_predict_errors(checkpoint, tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), random_image(64, 128))
    other = tmp_path / "b" / "a.png"
    other.parent.mkdir()
    cv2.imwrite(str(other), random_image(64, 128))
    common = ["predict", "--model", str(checkpoint), "--out", str(tmp_path / "out")]
    cases = [
        (["--image", str(image), "--fy", "100"], "--fy/--cx/--cy need --fx"),
        (["--image", str(tmp_path / "missing.png")], "missing.png: file not found"),
        (["--image", str(image), str(other)], "would both write a.npy"),
        (["--image", str(image), "--backend", "onnxruntime"], "export it first with fg-depth export"),
        (["--image", str(image), "--fx", "-5"], "focal lengths must be > 0"),
        (["--image", str(image), "--device", "cpu", "--precision", "fp16"], "fp16 .* needs a CUDA device"),
    ]
    for extra, message in cases:
        assert main(common + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("fg-depth predict: error:") and re.search(message, err), err
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses a choice itself
        main(common + ["--image", str(image), "--input-fit", "zoom"])
    assert exit_info.value.code == 2
    assert "argument --input-fit: invalid choice: 'zoom'" in capsys.readouterr().err
