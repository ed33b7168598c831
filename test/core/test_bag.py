"""Training from a rosbag2 recording: bags written here from the built-in world, with a known lens distortion
and rectifying rotation, in sqlite3 and MCAP, as Image and CompressedImage."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from bag_helpers import WORLD, BagSpec, projections, render_frames, write_stereo_bag

from fg_depth_core.cli import main as cli_main
from fg_depth_core.config import BagConfig, ConfigError, SgbmConfig, load_config
from fg_depth_core.data.bag import (
    BagError,
    TopicStats,
    default_info_topic,
    extract_bag,
    guess_stereo_topics,
    pair_stamps,
    select_pairs,
    split_names,
    suggest_input_size,
)
from fg_depth_core.data.base import DatasetError
from fg_depth_core.data.factory import build_dataset
from fg_depth_core.data.folder import StereoFolder
from fg_depth_core.teachers import stereo_flows, teacher_disparity
from fg_depth_core.teachers.sgm import SgbmTeacher

LEFT, RIGHT = "/stereo/left/image_raw", "/stereo/right/image_raw"
SGBM = SgbmConfig(num_disparities=64)
MS = 1_000_000


@pytest.fixture(scope="module")
def frames():
    return render_frames(4)


def _cfg(**kw) -> BagConfig:
    return BagConfig(left_topic=kw.pop("left", LEFT), right_topic=kw.pop("right", RIGHT), **kw)


def _teacher_vs_truth(folder, frame) -> dict:
    """SGBM disparity of the first extracted pair against the rendered truth, in the extracted crop."""
    pair = StereoFolder(folder, WORLD.width, WORLD.height).load(0)
    k = pair.rig.intrinsics
    # The crop shifts the principal point: recover the offset from the rendered camera's.
    x0, y0 = int(round((WORLD.width - 1) / 2 - k.cx)), int(round((WORLD.height - 1) / 2 - k.cy))
    h, w = pair.left.shape[:2]
    truth = frame.disparity_left[y0 : y0 + h, x0 : x0 + w]

    def tensor(a):
        return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0

    lr, _ = stereo_flows(SgbmTeacher(SGBM), tensor(pair.left), tensor(pair.right))
    disparity = teacher_disparity(lr)
    valid = np.isfinite(disparity) & np.isfinite(truth)
    err = np.abs(disparity - truth)[valid]
    return {"valid": valid.mean(), "median": float(np.median(err)), "within_1px": float((err <= 1.0).mean())}


# ------------------------------------------------------------------------------------------ rectification


def test_rectification_recovers_the_true_geometry(frames, tmp_path):
    bag = write_stereo_bag(tmp_path / "raw", frames, BagSpec(frames=2))
    rectified = extract_bag(bag, _cfg(), tmp_path / "rect")
    as_recorded = extract_bag(bag, _cfg(rectify="never"), tmp_path / "never")
    good, bad = _teacher_vs_truth(rectified, frames[0]), _teacher_vs_truth(as_recorded, frames[0])
    # Rectified raw images match as well as the rendered ideal pair does (median ~0.2 px).
    assert good["valid"] > 0.6 and good["median"] < 0.35 and good["within_1px"] > 0.85, good
    # The same images left distorted and rotated are not a stereo pair: the teacher is lost.
    assert bad["within_1px"] < 0.3, bad
    # The extracted calibration is the rectified camera: P's focal length and the baseline from P_right.
    pair = StereoFolder(rectified, WORLD.width, WORLD.height).load(0)
    assert pair.rig.baseline == pytest.approx(WORLD.baseline, rel=1e-6)
    assert pair.rig.intrinsics.fx == pytest.approx(WORLD.focal)
    manifest = json.loads((rectified / "bag.json").read_text())
    assert "rectified (plumb_bob)" in manifest["rectification"]


def test_already_rectified_bag_is_used_as_recorded(frames, tmp_path):
    bag = write_stereo_bag(tmp_path / "clean", frames, BagSpec(frames=2, distort=False, encoding="mono8"))
    folder = extract_bag(bag, _cfg(), tmp_path / "out")
    pair = StereoFolder(folder, WORLD.width, WORLD.height).load(0)
    assert pair.left.shape == (WORLD.height, WORLD.width, 3)  # no crop, no remap
    grey = (frames[0].left.astype(np.float32) @ np.array([0.299, 0.587, 0.114])).round()
    assert np.abs(pair.left[:, :, 0].astype(np.float32) - grey).max() <= 1.0
    assert _teacher_vs_truth(folder, frames[0])["median"] < 0.35


def test_a_usb_camera_bag_in_yuyv_is_decoded_to_its_colours(frames, tmp_path):
    # yuv422_yuy2, as usb_cam and v4l2_camera record it; the bytes come from the test's own BT.601 encoder.
    bag = write_stereo_bag(tmp_path / "usb", frames, BagSpec(frames=2, distort=False, encoding="yuv422_yuy2"))
    folder = extract_bag(bag, _cfg(), tmp_path / "out")
    pair = StereoFolder(folder, WORLD.width, WORLD.height).load(0)
    assert pair.left.shape == (WORLD.height, WORLD.width, 3)
    error = np.abs(pair.left.astype(np.float32) - frames[0].left)
    # Luma is per pixel, chroma per pixel pair: small on average, larger only at sharp colour edges.
    assert error.mean() < 1.5 and np.percentile(error, 90) <= 3.0, (error.mean(), np.percentile(error, 90))
    assert _teacher_vs_truth(folder, frames[0])["median"] < 0.35


@pytest.mark.parametrize("storage,compressed", [("mcap", "png"), ("sqlite3", "jpeg"), ("mcap", None)])
def test_both_storages_and_image_types(frames, tmp_path, storage, compressed):
    spec = BagSpec(frames=3, storage=storage, compressed=compressed, encoding="bgr8")
    bag = write_stereo_bag(tmp_path / "bag", frames, spec)
    suffix = "/compressed" if compressed else ""
    cfg = _cfg(left=LEFT + suffix, right=RIGHT + suffix)
    folder = extract_bag(bag, cfg, tmp_path / "out")
    assert len(StereoFolder(folder, 320, 192, split_file="train.txt")) == 2
    assert len(StereoFolder(folder, 320, 192, split_file="val.txt")) == 1
    # Colour order survives bgr8 / BGR-encoded compression: JPEG loses detail, not channels.
    stats = _teacher_vs_truth(folder, frames[0])
    assert stats["median"] < (0.6 if compressed == "jpeg" else 0.35), stats


# ------------------------------------------------------------------------------------------ pairing


def test_pairing_tolerates_jitter_and_drops_unmatched_frames():
    left = np.arange(6) * 50 * MS
    right = left + np.array([0, 2, -3, 40, 1, 0]) * MS
    right = np.delete(right, 4)  # left 4 lost its partner
    pairs = pair_stamps(left, right, slop_ns=5 * MS)
    # 3 is 40 ms off (beyond the slop), 4 has no partner, 5 pairs with the right image at index 4.
    assert pairs.tolist() == [[0, 0], [1, 1], [2, 2], [5, 4]]
    # One to one: two lefts close to one right never share it.
    assert pair_stamps(np.array([0, 1 * MS]), np.array([0]), 5 * MS).tolist() == [[0, 0]]
    assert pair_stamps(np.array([], dtype=np.int64), right, 5 * MS).shape == (0, 2)


def test_selection_window_stride_and_cap():
    left = np.arange(20) * 100 * MS  # 10 Hz over 1.9 s
    pairs = np.stack([np.arange(20), np.arange(20)], axis=1)
    chosen = select_pairs(pairs, left, BagConfig(start=0.5, duration=1.0, stride=2))
    assert chosen[:, 0].tolist() == [5, 7, 9, 11, 13, 15]
    assert select_pairs(pairs, left, BagConfig(stride=3, max_frames=4))[:, 0].tolist() == [0, 3, 6, 9]
    train, val = split_names([str(i) for i in range(10)], 0.25)
    assert (train, val) == ([str(i) for i in range(7)], ["7", "8", "9"])
    with pytest.raises(BagError, match="not enough"):
        split_names(["a"], 0.1)


def test_extraction_applies_sync_and_selection(frames, tmp_path):
    spec = BagSpec(frames=4, right_offsets_ns=[0, 3 * MS, 0, 0], drop_right=[2], compressed="png")
    bag = write_stereo_bag(tmp_path / "bag", frames, spec)
    cfg = _cfg(left=LEFT + "/compressed", right=RIGHT + "/compressed", slop=0.005)
    folder = extract_bag(bag, cfg, tmp_path / "out")
    names = json.loads((folder / "bag.json").read_text())["frames"]
    assert len(names) == 3  # frame 2 has no right image
    strict = extract_bag(bag, _cfg(left=cfg.left_topic, right=cfg.right_topic, slop=0.001), tmp_path / "o2")
    assert len(json.loads((strict / "bag.json").read_text())["frames"]) == 2  # frame 1 is 3 ms off


def test_extraction_is_a_cache(frames, tmp_path):
    bag = write_stereo_bag(tmp_path / "bag", frames, BagSpec(frames=3))
    out = tmp_path / "out"
    lines = []
    extract_bag(bag, _cfg(), out, log=lines.append)
    first = sorted((out / "left").iterdir())
    stamps = {p.name: p.stat().st_mtime_ns for p in first}
    extract_bag(bag, _cfg(val_fraction=0.5), out, log=lines.append)
    assert "reusing 3" in lines[-1]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "left").iterdir()} == stamps
    assert len((out / "val.txt").read_text().split()) == 2  # only the split changed
    # An interrupted extraction (manifest not complete, one pair missing) completes without redoing others.
    manifest = json.loads((out / "bag.json").read_text())
    (out / "bag.json").write_text(json.dumps({"key": manifest["key"], "complete": False}))
    first[1].unlink()
    extract_bag(bag, _cfg(), out, log=lines.append)
    assert "continuing" in lines[-2]
    assert sorted(p.name for p in (out / "left").iterdir()) == sorted(stamps)
    assert first[0].stat().st_mtime_ns == stamps[first[0].name]
    # Other settings rebuild the folder.
    extract_bag(bag, _cfg(max_frames=2), out, log=lines.append)
    assert "rebuilding" in lines[-2] and len(list((out / "left").iterdir())) == 2


# ------------------------------------------------------------------------------------------ errors


def test_clear_errors_for_bad_topics_encodings_and_calibration(frames, tmp_path):
    bag = write_stereo_bag(tmp_path / "bag", frames, BagSpec(frames=2))
    with pytest.raises(BagError, match=r"no topic '/cam0/image_raw' for the left images.*/stereo/left/"):
        extract_bag(bag, _cfg(left="/cam0/image_raw"), tmp_path / "a")
    with pytest.raises(BagError, match=r"'/stereo/left/camera_info' \(left images\) is sensor_msgs/msg/Cam"):
        extract_bag(bag, _cfg(left="/stereo/left/camera_info"), tmp_path / "b")
    with pytest.raises(BagError, match="not found"):
        extract_bag(tmp_path / "nothing", _cfg(), tmp_path / "c")

    odd = write_stereo_bag(tmp_path / "nv21", frames, BagSpec(frames=2, encoding="nv21"))
    with pytest.raises(BagError, match=r"/stereo/left/image_raw message 0: unsupported image encoding 'nv21"):
        extract_bag(odd, _cfg(), tmp_path / "d")

    # Right camera P with the same sign of Tx as a left camera: the cameras are swapped or not a pair.
    swapped = projections()["right"].copy()
    swapped[0, 3] = -swapped[0, 3]
    not_pair = write_stereo_bag(tmp_path / "swap", frames, BagSpec(frames=2, p_override={"right": swapped}))
    with pytest.raises(BagError, match=r"camera_info.*baseline"):
        extract_bag(not_pair, _cfg(), tmp_path / "e")
    other_fx = projections()["right"].copy()
    other_fx[0, 0] *= 1.2
    mismatched = write_stereo_bag(tmp_path / "fx", frames, BagSpec(frames=2, p_override={"right": other_fx}))
    with pytest.raises(BagError, match="P matrices differ in fx"):
        extract_bag(mismatched, _cfg(), tmp_path / "f")


def test_topic_helpers():
    assert default_info_topic("/cam0/image_raw") == "/cam0/camera_info"
    assert default_info_topic("/left/image_rect/compressed") == "/left/camera_info"
    image, info = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
    topics = [("/zed/left/image", image), ("/zed/right/image", image), ("/zed/depth", image), ("/x/ci", info)]
    stats = {n: TopicStats(n, t, 10, 20.0) for n, t in topics}
    assert guess_stereo_topics(stats) == ("/zed/left/image", "/zed/right/image")
    three = {n: TopicStats(n, image, 1, 0.0) for n in ("/a", "/b", "/c")}
    assert guess_stereo_topics(three) is None
    assert suggest_input_size(752, 479, 640, 32) == (640, 416)


def test_bag_config_is_validated():
    with pytest.raises(ConfigError, match=r"data.bag.left_topic: the 'bag' dataset needs the left image top"):
        load_config(None, ["data.dataset=bag"])
    with pytest.raises(ConfigError, match=r"data.bag.rectify"):
        load_config(None, ["data.bag.rectify=maybe"])
    with pytest.raises(ConfigError, match=r"data.bag.val_fraction"):
        load_config(None, ["data.bag.val_fraction=0"])


# ------------------------------------------------------------------------------------------ commands


def test_bag_info_reports_topics_sync_and_baseline(frames, tmp_path, capsys):
    spec = BagSpec(frames=3, storage="mcap", right_offsets_ns=[0, MS, 2 * MS])
    bag = write_stereo_bag(tmp_path / "bag", frames, spec)
    assert cli_main(["bag-info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert f"stereo pair (guessed from the names): {LEFT} + {RIGHT}" in out
    assert "3 left, 3 right images -> 3 pairs" in out
    assert "median 1.000 ms, max 2.000 ms" in out
    assert f"baseline: {WORLD.baseline:.4f} m" in out
    assert "left: 320x192 plumb_bob, raw" in out
    assert f"fg-depth train --bag {bag} --left {LEFT} --right {RIGHT}" in out
    # The printed command runs as it stands (here with a tiny budget and a run folder in tmp_path).
    printed = out.split("train on it with:")[1].split()
    assert printed[:2] == ["fg-depth", "train"] and "--config" not in printed
    out_at = printed.index("--out")
    printed[out_at + 1] = str(tmp_path / "run")
    tiny = ["--set", "data.width=128", "--set", "data.height=64", "--set", "train.max_steps=1",
            "--set", "train.batch_size=1", "--set", "data.num_workers=0", "--no-progress"]  # fmt: skip
    assert cli_main([*printed[1:], *tiny]) == 0
    assert (tmp_path / "run" / "last.pt").is_file()

    assert cli_main(["bag-info", str(bag), "--left", "/nope", "--right", RIGHT]) == 2
    assert "no topic '/nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_train_starts_from_a_bag(frames, tmp_path, capsys):
    from fg_depth_ros.train import main as ros2_run_train

    bag = write_stereo_bag(tmp_path / "bag", frames, BagSpec(frames=4, storage="mcap", compressed="jpeg"))
    common = [
        "--bag", str(bag), "--left", LEFT + "/compressed", "--right", RIGHT + "/compressed",
        "--config", os.path.join(os.path.dirname(__file__), "..", "..", "config", "train_bag.yaml"),
        "--set", "data.width=128", "--set", "data.height=64", "--set", "data.bag.stride=1",
        "--set", "train.batch_size=2", "--set", "train.max_steps=1", "--set", "data.num_workers=0",
        "--set", "train.device=cpu", "--no-progress",
    ]  # fmt: skip
    run = tmp_path / "run"
    assert cli_main(["train", *common, "--out", str(run)]) == 0
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 1
    assert state["config"]["data"]["dataset"] == "bag"
    assert state["config"]["data"]["bag"]["left_topic"] == LEFT + "/compressed"
    assert state["baseline_counts"][0][0] == pytest.approx(WORLD.baseline, rel=1e-6)
    assert len(list((run / "bag_frames" / "left").iterdir())) == 4
    assert any((run / "teacher_cache").iterdir())
    # ros2 run fg_depth_ros train takes the same arguments (and ignores the --ros-args block).
    run2 = tmp_path / "run2"
    assert ros2_run_train([*common, "--out", str(run2), "--ros-args", "-r", "__node:=train"]) == 0
    assert (run2 / "last.pt").is_file()


def test_factory_needs_a_work_dir_for_bags(frames, tmp_path):
    bag = write_stereo_bag(tmp_path / "bag", frames, BagSpec(frames=2))
    data = load_config(None, ["data.dataset=bag", f"data.path={bag}", f"data.bag.left_topic={LEFT}",
                              f"data.bag.right_topic={RIGHT}", "data.width=128", "data.height=64"]).data
    with pytest.raises(DatasetError, match="work directory"):
        build_dataset(data, "train")
    with pytest.raises(DatasetError, match="no depth ground truth"):
        build_dataset(data, "test", work_dir=str(tmp_path / "w"))
    train = build_dataset(data, "train", work_dir=str(tmp_path / "w"))
    val = build_dataset(data, "val", work_dir=str(tmp_path / "w"))
    assert len(train) == 1 and len(val) == 1 and train.name(0) < val.name(0)  # split in time
    sample = train[0]
    assert sample["left"].shape == (3, 64, 128) and float(sample["baseline"]) == pytest.approx(WORLD.baseline)
