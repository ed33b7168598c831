"""The evaluation protocol against hand computations and the built-in world's exact depth, and `fg-depth eval`
end to end on a tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch
from model_helpers import save_random_depthnet

from fg_depth_core.camera import Intrinsics, StereoRig
from fg_depth_core.cli import main
from fg_depth_core.config import Config, EvalConfig, SynthConfig
from fg_depth_core.data.base import RawPair, StereoDataset
from fg_depth_core.data.factory import build_dataset
from fg_depth_core.data.folder import write_stereo_folder
from fg_depth_core.data.render import render_stereo
from fg_depth_core.data.world import street_scene
from fg_depth_core.evaluate import (
    JSON_KEYS,
    EvaluationError,
    describe_protocol,
    evaluate,
    flip_average_disparity,
    format_table,
    frame_metrics,
    garg_crop_mask,
    metrics_json,
    mirror_sample,
    resize_depth,
    valid_mask,
)
from fg_depth_core.metrics import METRIC_NAMES, depth_metrics

#: Network input (W, H) and the ground truth's own resolution (W, H) of the small world below.
NET_SIZE = (192, 64)
GT_SIZE = (288, 96)


class WorldPairs(StereoDataset):
    """Frames of the built-in street world rendered at ``sizes[i]`` (W, H), with exact depth; frames listed in
    ``no_depth`` come without ground truth."""

    def __init__(self, sizes: List[Tuple[int, int]], no_depth: Tuple[int, ...] = (), net=NET_SIZE) -> None:
        super().__init__(*net)
        self.sizes = sizes
        self.no_depth = set(no_depth)
        self._cache: Dict[int, RawPair] = {}

    def __len__(self) -> int:
        return len(self.sizes)

    def name(self, index: int) -> str:
        return f"street {index}"

    def load(self, index: int) -> RawPair:
        if index not in self._cache:
            w, h = self.sizes[index]
            f = 371.0 * w / 640
            k = Intrinsics(f, f, (w - 1) / 2, (h - 1) / 2, w, h)
            frame = render_stereo(
                street_scene(100 + index), k, 0.54, right_gain=1.1, noise_std=0.01, seed=index
            )
            depth = None if index in self.no_depth else frame.depth_left
            self._cache[index] = RawPair(frame.left, frame.right, StereoRig(k, 0.54), depth)
        return self._cache[index]


def gt_at_input(sample: Dict[str, torch.Tensor]) -> np.ndarray:
    """The oracle: the sample's ground truth brought to the network input size, as a network would see it
    (area-averaged inverse depth, so pixel centres stay aligned); sky (0) becomes 100 m, which the
    protocol's 80 m range ignores."""
    gt = sample["depth_left"][0].numpy()
    w, h = sample["left"].shape[2], sample["left"].shape[1]
    inverse = np.where(gt > 0, 1.0 / np.maximum(gt, 1e-6), 0.01).astype(np.float32)
    if inverse.shape != (h, w):
        inverse = cv2.resize(inverse, (w, h), interpolation=cv2.INTER_AREA)
    return 1.0 / inverse


# --------------------------------------------------------------------------------------------- per frame


def test_garg_crop_bounds_by_hand():
    # 100 x 200: rows int(40.81)=40 .. int(99.19)=99, columns int(7.19)=7 .. int(192.81)=192 (exclusive).
    mask = garg_crop_mask(100, 200)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (40, 98, 7, 191)
    assert mask.sum() == (99 - 40) * (192 - 7)
    # KITTI's 375 x 1242: the well-known crop [153:371, 44:1197].
    mask = garg_crop_mask(375, 1242)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (153, 371, 44, 1197)
    assert mask.sum() == (371 - 153) * (1197 - 44)


def test_range_mask_and_clamping():
    cfg = EvalConfig(garg_crop=False)
    # The range is open, as the reference code selects ground truth (1e-3 < gt < 80): both ends are out.
    gt = np.array([[0.0, 5e-4, 1e-3, 2e-3, 10.0, 79.5, 80.0, 80.5, np.inf, np.nan]])
    expected_mask = [[False, False, False, True, True, True, False, False, False, False]]
    assert valid_mask(gt, cfg).tolist() == expected_mask
    # Predictions outside [1e-3, 80] are clamped before scoring: 0 -> 1e-3 and 200 -> 80.
    pred = np.array([[7.0, 7.0, 7.0, 0.0, 12.0, 200.0, 7.0, 7.0, 7.0, 7.0]])
    metrics, ratio = frame_metrics(gt, pred, cfg)
    assert ratio is None
    expected = depth_metrics(np.array([2e-3, 10.0, 79.5]), np.array([1e-3, 12.0, 80.0]))
    assert metrics == pytest.approx(expected)
    assert metrics["abs_rel"] == pytest.approx((0.5 + 0.2 + 0.5 / 79.5) / 3)
    # With the Garg crop on, a 1x10 frame has no row inside it: no valid pixel.
    assert frame_metrics(gt, pred, EvalConfig()) == (None, None)


def test_median_scaling_recovers_a_scaled_prediction_exactly():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2.0, 60.0, (40, 60))
    gt[::7] = 0.0  # unknown ground truth must not enter the medians
    pred = np.where(gt > 0, gt * 0.37, 123.0)
    plain, _ = frame_metrics(gt, pred, EvalConfig())
    assert plain["abs_rel"] == pytest.approx(0.63, abs=1e-6)
    scaled, ratio = frame_metrics(gt, pred, EvalConfig(median_scaling=True))
    assert ratio == pytest.approx(1 / 0.37, rel=1e-6)
    assert scaled["abs_rel"] < 1e-6 and scaled["rmse"] < 1e-4 and scaled["a1"] == 1.0


def test_prediction_is_resized_bilinearly_to_the_ground_truth():
    # A constant plane at 20 m predicted at a quarter of the resolution stays exactly 20 m after resizing,
    # and a prediction whose shape is not a depth map is refused.
    gt = np.full((48, 64), 20.0)
    metrics, _ = frame_metrics(gt, np.full((12, 16), 20.0, np.float32), EvalConfig())
    assert metrics["abs_rel"] < 1e-6

    class Bad:
        def __call__(self, sample):
            return np.ones((2, 3, 4))

    with pytest.raises(EvaluationError, match="expected an \\(H,W\\) depth map"):
        evaluate(Bad(), WorldPairs([GT_SIZE]), EvalConfig(), progress=False)


def test_prediction_is_resized_in_disparity_as_the_reference_does():
    # Two columns at 10 m and 20 m, upsampled to three: the middle pixel's centre falls halfway between the
    # source centres, where the reference interpolates disparity (1/10 + 1/20) / 2 = 0.075 -> 13.33 m, not
    # the 15 m of interpolated depth; the outer pixels clamp to the border values.
    resized = resize_depth(np.array([[10.0, 20.0]], np.float32), 1, 3)
    assert resized[0].tolist() == pytest.approx([10.0, 1 / 0.075, 20.0], rel=1e-6)
    assert resize_depth(np.full((2, 2), 7.0), 2, 2).dtype == np.float32
    with pytest.raises(EvaluationError, match="in disparity: expected depths > 0, got a minimum of 0.0"):
        resize_depth(np.array([[0.0, 5.0]]), 2, 4)


def test_post_processing_weights_by_hand():
    # 21 columns sit at 0, 0.05, ..., 1 of the width; the image's own disparity is 1, its mirror's 3.
    own, mirror = np.ones((2, 21)), np.full((2, 21), 3.0)
    combined = flip_average_disparity(own, mirror)
    assert combined.shape == (2, 21)
    # Columns 0 and 1 (<= 5 %): the mirror's alone; 19 and 20 (>= 95 %): the image's own alone; from 10 %
    # to 90 % the mean; halfway up the ramp (7.5 %, between columns 1 and 2) a half of each.
    assert combined[0, :2].tolist() == [3.0, 3.0] and combined[0, -2:].tolist() == [1.0, 1.0]
    assert combined[1, 2:19].tolist() == pytest.approx([2.0] * 17)
    ramp = flip_average_disparity(np.ones((1, 41)), np.full((1, 41), 3.0))[0]
    assert ramp[3] == pytest.approx(0.5 * 3.0 + 0.5 * 2.0)
    assert ramp[37] == pytest.approx(0.5 * 1.0 + 0.5 * 2.0)
    with pytest.raises(EvaluationError, match="two \\(..., H, W\\) disparity maps of one shape"):
        flip_average_disparity(np.ones((2, 3)), np.ones((2, 4)))


def test_mirror_sample_flips_the_image_and_the_principal_point():
    sample = WorldPairs([NET_SIZE])[0]
    sample["K"][0, 2] = 50.0  # off-centre, so that mirroring moves it
    mirrored = mirror_sample(sample)
    assert torch.equal(mirrored["left"], sample["left"].flip(-1))
    assert float(mirrored["K"][0, 2]) == pytest.approx(NET_SIZE[0] - 1 - 50.0)
    assert float(mirrored["K"][0, 0]) == float(sample["K"][0, 0]) and int(mirrored["index"]) == 0
    assert "depth_left" not in mirrored and "right" not in mirrored
    assert float(sample["K"][0, 2]) == 50.0  # the original is untouched


def test_post_processing_repairs_a_left_edge_artefact():
    # A predictor that knows the truth except on the left 5 % of whatever image it sees, where it predicts
    # three times too far (a stereo-trained network's left-edge weakness). Post-processing takes the mirror
    # image's prediction there, whose broken band lies on the other side: the result is the truth.
    data = WorldPairs([GT_SIZE] * 2)
    width = NET_SIZE[0]
    band = np.linspace(0.0, 1.0, width) <= 0.05
    calls: List[int] = []

    class EdgeBroken:
        def predict_batch(self, samples):
            calls.append(len(samples))
            out = []
            for s in samples:
                i = int(s["index"])
                truth = gt_at_input(data[i])
                if not torch.equal(s["left"], data[i]["left"]):
                    assert torch.equal(s["left"], data[i]["left"].flip(-1))
                    truth = truth[:, ::-1]
                broken = truth.copy()
                broken[:, band] *= 3.0
                out.append(broken)
            return out

    cfg = EvalConfig(garg_crop=False)
    oracle = evaluate(gt_at_input, data, cfg, progress=False)
    plain = evaluate(EdgeBroken(), data, cfg, batch_size=2, progress=False)
    assert calls == [2] and plain["abs_rel"] > oracle["abs_rel"] + 0.02
    calls.clear()
    cfg.post_process = True
    repaired = evaluate(EdgeBroken(), data, cfg, batch_size=2, progress=False)
    assert calls == [4]  # the two frames and their mirror images in one batch
    for name in METRIC_NAMES:
        assert repaired[name] == pytest.approx(oracle[name], rel=1e-5, abs=1e-7)


def test_strict_evaluation_refuses_a_frame_without_ground_truth():
    data = WorldPairs([GT_SIZE] * 3, no_depth=(1,))
    result = evaluate(gt_at_input, data, EvalConfig(), progress=False)
    assert result["skipped"] == 1 and result["skipped_frames"] == ["street 1"]
    with pytest.raises(EvaluationError, match=r"street 1: no ground truth \(strict evaluation refuses"):
        evaluate(gt_at_input, data, EvalConfig(), progress=False, strict=True)
    # Frames known to lack ground truth are skipped without being read (their files may not exist at all).
    class Unreadable(WorldPairs):
        def load(self, index):
            if index == 1:
                raise AssertionError("frame 1 was read")
            return super().load(index)

    unreadable = Unreadable([GT_SIZE] * 3)
    result = evaluate(gt_at_input, unreadable, EvalConfig(), progress=False, without_gt=[1], batch_size=2)
    assert (result["frames"], result["skipped"], result["skipped_frames"]) == (2, 1, ["street 1"])
    with pytest.raises(EvaluationError, match=r"street 1: no ground truth"):
        evaluate(gt_at_input, unreadable, EvalConfig(), progress=False, without_gt=[1], strict=True)
    with pytest.raises(EvaluationError, match=r"without_gt: expected frame indices in \[0, 3\), got \[3\]"):
        evaluate(gt_at_input, unreadable, EvalConfig(), progress=False, without_gt=[3])
    # A frame whose ground truth lies outside the range is refused too.
    far = EvalConfig(min_depth=500.0, max_depth=1000.0)
    with pytest.raises(EvaluationError, match=r"street 0: no ground truth within the protocol's depth range"):
        evaluate(gt_at_input, WorldPairs([GT_SIZE]), far, progress=False, strict=True)


# ------------------------------------------------------------------------------------- the built-in world


def test_ground_truth_oracle_on_the_built_in_world():
    # Ground truth at 288x96, network input 192x64: the oracle loses only what two resizes lose.
    result = evaluate(gt_at_input, WorldPairs([GT_SIZE] * 3), EvalConfig(), progress=False)
    assert result["frames"] == 3 and result["skipped"] == 0
    assert result["abs_rel"] < 0.03
    assert result["a1"] > 0.95
    assert set(METRIC_NAMES) <= set(result)
    # A network that sees nothing (a constant 15 m) scores far worse: the protocol can fail.
    flat = evaluate(
        lambda s: np.full((64, 192), 15.0), WorldPairs([GT_SIZE] * 3), EvalConfig(), progress=False
    )
    assert flat["abs_rel"] > 5 * result["abs_rel"] and flat["a1"] < 0.6


def test_scaled_oracle_gives_the_scale_error_exactly():
    # Ground truth at the network size: no resize error. The world reaches beyond 80 m, so the range is
    # widened to keep 1.1 x gt unclamped; abs_rel is then exactly 0.1 and median scaling removes it entirely.
    data = WorldPairs([NET_SIZE] * 2)
    cfg = EvalConfig(max_depth=1000.0)
    scaled = evaluate(lambda s: 1.1 * gt_at_input(s), data, cfg, progress=False)
    assert scaled["abs_rel"] == pytest.approx(0.1, abs=1e-6)
    assert scaled["a1"] == 1.0
    assert "median_scale_mean" not in scaled
    cfg.median_scaling = True
    fixed = evaluate(lambda s: 1.1 * gt_at_input(s), data, cfg, progress=False)
    assert fixed["abs_rel"] < 1e-6
    assert fixed["median_scale_mean"] == pytest.approx(1 / 1.1, rel=1e-6)
    assert fixed["median_scale_std"] < 1e-6
    # With the default 80 m range, clamping caps the far predictions: the error drops below 0.1.
    capped = evaluate(lambda s: 1.1 * gt_at_input(s), data, EvalConfig(), progress=False)
    assert 0.05 < capped["abs_rel"] < 0.1


def test_frames_mean_and_batched_predictor_agree():
    data = WorldPairs([NET_SIZE, GT_SIZE, NET_SIZE])
    rng = np.random.default_rng(1)
    noise = [rng.uniform(0.8, 1.2, (64, 192)) for _ in range(3)]

    def noisy(sample):
        return gt_at_input(sample) * noise[int(sample["index"])]

    one = evaluate(noisy, data, EvalConfig(), progress=False)
    # The dataset's result is the mean of the per-frame metrics (not a pixel-weighted mean).
    frames = [
        frame_metrics(data[i]["depth_left"][0].numpy(), noisy(data[i]), EvalConfig())[0] for i in range(3)
    ]
    for name in METRIC_NAMES:
        assert one[name] == pytest.approx(np.mean([f[name] for f in frames]))

    class Batched:
        calls: List[int] = []

        def predict_batch(self, samples):
            self.calls.append(len(samples))
            return [torch.from_numpy(noisy(s))[None, None] for s in samples]

    predictor = Batched()
    two = evaluate(predictor, data, EvalConfig(), batch_size=2, progress=False)
    assert predictor.calls == [2, 1]
    assert two.pop("skipped_frames") == one.pop("skipped_frames") == []
    assert two == pytest.approx(one)


def test_frames_without_ground_truth_are_skipped_and_none_is_an_error():
    result = evaluate(gt_at_input, WorldPairs([GT_SIZE] * 3, no_depth=(1,)), EvalConfig(), progress=False)
    assert result["frames"] == 2 and result["skipped"] == 1
    with pytest.raises(EvaluationError, match="none of the 2 frames has ground-truth depth"):
        evaluate(gt_at_input, WorldPairs([GT_SIZE] * 2, no_depth=(0, 1)), EvalConfig(), progress=False)


def test_save_pred_keys_order_and_shapes(tmp_path):
    sizes = [GT_SIZE, (192, 64), (384, 128)]
    data = WorldPairs(sizes, no_depth=(1,))
    out = tmp_path / "sub" / "pred.npz"
    result = evaluate(gt_at_input, data, EvalConfig(), save_pred=out, progress=False)
    assert result["frames"] == 2
    with np.load(out) as saved:
        assert sorted(saved.files) == ["000000", "000002"]
        for key in saved.files:
            i = int(key)
            pred = saved[key]
            gt = data[i]["depth_left"][0].numpy()
            assert pred.dtype == np.float32 and pred.shape == (sizes[i][1], sizes[i][0]) == gt.shape
            # Each key holds its own frame: it matches that frame's ground truth and not the other one.
            mask = valid_mask(gt, EvalConfig())
            own = np.median(np.abs(pred[mask] - gt[mask]) / gt[mask])
            assert own < 0.01
        other = cv2.resize(saved["000000"], (384, 128), interpolation=cv2.INTER_LINEAR)
        gt2 = data[2]["depth_left"][0].numpy()
        mask = valid_mask(gt2, EvalConfig())
        assert np.median(np.abs(other[mask] - gt2[mask]) / gt2[mask]) > 0.05
    # A failed evaluation leaves no partial file behind.
    bad = tmp_path / "bad.npz"
    with pytest.raises(EvaluationError):
        evaluate(
            gt_at_input, WorldPairs([GT_SIZE], no_depth=(0,)), EvalConfig(), save_pred=bad, progress=False
        )
    assert not bad.exists() and not list(tmp_path.glob(".bad.npz*"))


def test_json_and_table():
    result = {name: 0.5 + i for i, name in enumerate(METRIC_NAMES)}
    result.update(frames=7, skipped=2, skipped_frames=["a 1 l", "a 2 l"])
    protocol = describe_protocol(EvalConfig(), "kitti", "here", {"strict": False})
    saved = metrics_json(result, protocol)
    assert tuple(saved) == JSON_KEYS == METRIC_NAMES + ("frames", "skipped", "skipped_frames", "protocol")
    assert saved["skipped"] == 2 and saved["skipped_frames"] == ["a 1 l", "a 2 l"]
    assert saved["protocol"] == protocol and json.loads(json.dumps(saved)) == saved
    table = format_table(result).splitlines()
    assert table[0].split("|")[0].strip() == "abs_rel" and len(table[0].split("|")) == 7
    assert [float(v) for v in table[2].split("|")] == [0.5 + i for i in range(7)]
    assert table[3] == "frames scored: 7, skipped without ground truth: 2"


# ------------------------------------------------------------------------------------------ fg-depth eval


def tiny_checkpoint(path: Path, train_focal: float) -> Config:
    """A randomly initialised DepthNet saved as a checkpoint for a 128x64 input on a tiny built-in world."""
    cfg = Config()
    cfg.data.width, cfg.data.height, cfg.data.num_workers = 128, 64, 0
    cfg.data.synth = SynthConfig(width=128, height=64, focal=74.2, val_frames=1, test_frames=2)
    cfg.data.synth.train_frames = 1
    cfg.eval.garg_crop = False
    save_random_depthnet(path, cfg, train_focal=train_focal)
    return cfg


def test_cli_eval_on_the_built_in_world(tmp_path, capsys):
    cfg = tiny_checkpoint(tmp_path / "same.pt", train_focal=74.2)
    tiny_checkpoint(tmp_path / "half.pt", train_focal=74.2 / 2)
    world = tmp_path / "world"
    common = ["eval", "--data", "synth", "--data-path", str(world), "--device", "cpu"]
    runs = {}
    for name, batch in (("same", "2"), ("half", "1")):
        argv = common + ["--checkpoint", str(tmp_path / f"{name}.pt"), "--batch-size", batch]
        argv += ["--json", str(tmp_path / f"{name}.json"), "--save-pred", str(tmp_path / f"{name}.npz")]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "abs_rel |   sq_rel" in out and "frames scored: 2" in out
        assert ("depth multiplied by 2.0000..2.0000" in out) == (name == "half")
        metrics = json.loads((tmp_path / f"{name}.json").read_text())
        assert tuple(metrics) == JSON_KEYS and metrics["frames"] == 2
        with np.load(tmp_path / f"{name}.npz") as saved:
            runs[name] = (metrics, {k: saved[k] for k in saved.files})
    metrics, preds = runs["same"]
    assert sorted(preds) == ["000000", "000001"]
    # The JSON is the protocol applied to exactly the saved predictions, frame by frame, against the test
    # split's exact depth (rendered into world/test by the first run).
    data = build_dataset(cfg.data, "test", path=str(world))
    per_frame = []
    for i in range(2):
        gt = data[i]["depth_left"][0].numpy()
        assert preds[f"{i:06d}"].shape == gt.shape and preds[f"{i:06d}"].dtype == np.float32
        per_frame.append(frame_metrics(gt, preds[f"{i:06d}"], cfg.eval)[0])
    for name in METRIC_NAMES:
        assert metrics[name] == pytest.approx(np.mean([m[name] for m in per_frame]), rel=1e-6)
    # Trained at half the evaluation camera's focal length, the same network's depth doubles: D * f / f_train.
    for key, pred in preds.items():
        np.testing.assert_allclose(runs["half"][1][key], 2 * pred, rtol=1e-5)
    assert runs["half"][0]["abs_rel"] != pytest.approx(metrics["abs_rel"])


def test_cli_eval_errors(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    argv = ["eval", "--data", "folder", "--data-path", str(tmp_path), "--device", "cpu"]
    assert main(argv + ["--checkpoint", str(missing)]) == 2
    assert f"{missing}: checkpoint not found" in capsys.readouterr().err
    # A stereo folder without depth/: nothing to score.
    tiny_checkpoint(tmp_path / "net.pt", train_focal=74.2)
    k = Intrinsics(74.2, 74.2, 63.5, 31.5, 128, 64)
    pairs = []
    for i in range(2):
        frame = render_stereo(street_scene(7 + i), k, 0.54, seed=i)
        pairs.append((f"{i:06d}", RawPair(frame.left, frame.right, StereoRig(k, 0.54))))
    write_stereo_folder(tmp_path / "folder", pairs)
    argv = ["eval", "--data", "folder", "--data-path", str(tmp_path / "folder"), "--device", "cpu"]
    json_path = tmp_path / "m.json"
    assert main(argv + ["--checkpoint", str(tmp_path / "net.pt"), "--json", str(json_path)]) == 2
    assert "none of the 2 frames has ground-truth depth" in capsys.readouterr().err
    assert not json_path.exists()
