"""`make demo` end to end at a tiny budget (``--quick``): the real pipeline (rendering, Trainer, ONNX export,
depth_node and play on rclpy with ONNX Runtime) must produce every file it promises, made from what the node
published."""

import contextlib
import dataclasses
import io
import json
import math
import re

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image, PointCloud2

from fg_depth_core.config import load_config
from fg_depth_core.data.folder import StereoFolder
from fg_depth_core.deploy.estimator import DepthEstimator
from fg_depth_core.metrics import METRIC_NAMES
from fg_depth_core.visualize import BACKGROUND, LABEL_HEIGHT, PANEL_GAP
from fg_depth_ros.pipeline import limit_depth
from tools.demo import cli, figures, pipeline, ros_session
from tools.demo import settings as demo_settings

#: Builds and runs whole pipelines (seconds each): `make test-fast` leaves this module out.
pytestmark = pytest.mark.slow

#: --quick trains on config/train_tiny.yaml's world.
TINY = load_config(demo_settings.QUICK_CONFIG).data.synth


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run for all the checks below: (output folder, printed text, exit status)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(["--out", str(out), "--quick"])
    return out, printed.getvalue(), status


def test_the_quick_demo_writes_every_promised_file(quick_run):
    out, printed, status = quick_run
    assert status == 0, printed
    frames = sorted((out / demo_settings.FRAMES_DIR).glob("*.png"))
    assert [f.name for f in frames] == [f"test_{i:06d}.png" for i in range(TINY.test_frames)]
    for name in (
        demo_settings.POINTCLOUD_PNG,
        demo_settings.LOSS_CURVES_PNG,
        demo_settings.LOSS_CURVES_JSON,
        demo_settings.METRICS_JSON,
        demo_settings.NODE_DEPTH_NPZ,
        demo_settings.SUMMARY_MD,
        f"{demo_settings.RUN_DIR}/last.pt",
        f"{demo_settings.RUN_DIR}/best.pt",
        f"{demo_settings.RUN_DIR}/{demo_settings.MODEL_NAME}",
        f"{demo_settings.RUN_DIR}/config.yaml",
    ):
        assert (out / name).stat().st_size > 0, name
    assert any((out / demo_settings.RUN_DIR / "tensorboard").iterdir())


def test_images_have_the_promised_layout(quick_run):
    out, _, _ = quick_run
    for path in sorted((out / demo_settings.FRAMES_DIR).glob("*.png")):
        image = cv2.imread(str(path))
        # Four labelled panels at the camera's size side by side, a two-strip colour bar below.
        assert image.shape == (
            LABEL_HEIGHT + TINY.height + 2 * LABEL_HEIGHT,
            4 * TINY.width + 3 * PANEL_GAP,
            3,
        )
    cloud = cv2.cvtColor(cv2.imread(str(out / demo_settings.POINTCLOUD_PNG)), cv2.COLOR_BGR2RGB)
    width, height = figures.CLOUD_IMAGE_SIZE
    assert cloud.shape == (LABEL_HEIGHT + height, width, 3)
    drawn = np.any(cloud[LABEL_HEIGHT:] != np.array(BACKGROUND, np.uint8), axis=2)
    assert drawn.mean() > 0.01  # points were drawn, not just the background
    curves = cv2.imread(str(out / demo_settings.LOSS_CURVES_PNG))
    assert curves.shape[0] > 100 and curves.shape[1] > 300


def test_metrics_are_finite_and_complete(quick_run):
    out, _, _ = quick_run
    report = json.loads((out / demo_settings.METRICS_JSON).read_text())
    depth = report["depth"]
    assert depth["frames"] == TINY.test_frames
    for name in METRIC_NAMES:
        assert math.isfinite(depth[name]), name
    assert depth["abs_rel"] > 0 and 0 <= depth["a1"] <= depth["a2"] <= depth["a3"] <= 1
    assert 0 < report["teacher"]["coverage"] <= 1
    latency = report["latency_ms"]
    for key in ("node_receive_to_publish", "node_inference", "node_processing", "stamp_to_receive"):
        values = latency[key]["per_frame"]
        assert len(values) == TINY.test_frames and all(0 < v < 60_000 for v in values), (key, values)
    # The node's inference is part of its receive-to-publish time.
    node, inference = latency["node_receive_to_publish"]["per_frame"], latency["node_inference"]["per_frame"]
    assert all(i <= n for i, n in zip(inference, node))
    assert latency["diagnostics"]["frames_published"] == str(TINY.test_frames)
    assert report["training"]["steps"] == demo_settings.QUICK_STEPS
    assert report["point_cloud"]["points"] > 0


def test_the_recorded_depth_is_what_the_node_published_for_what_play_published(quick_run):
    out, _, _ = quick_run
    report = json.loads((out / demo_settings.METRICS_JSON).read_text())
    frames = report["frames"]
    assert [f["index"] for f in frames] == list(range(TINY.test_frames))
    stamps = [f["image_stamp_ns"] for f in frames]
    assert [f["depth_stamp_ns"] for f in frames] == stamps  # each depth answers the frame play published
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert all(f["depth_size"] == [TINY.width, TINY.height] for f in frames)
    # The node's depth maps are the exported model's prediction for the played images (same backend), so
    # they came from the node running this run's model, not from anywhere else.
    recorded = np.load(out / demo_settings.NODE_DEPTH_NPZ)
    assert sorted(recorded.files) == sorted(f["name"] for f in frames)
    estimator = DepthEstimator(out / demo_settings.RUN_DIR / demo_settings.MODEL_NAME, "onnxruntime", "cpu")
    info = estimator.info
    folder = StereoFolder(out / demo_settings.WORLD_DIR / "test", TINY.width, TINY.height)
    for f in frames:
        pair = folder.load(f["index"])
        predicted = estimator.predict(pair.left, pair.rig.intrinsics)
        expected = limit_depth(predicted, info.min_depth, info.max_depth, "clamp")
        np.testing.assert_allclose(recorded[f["name"]], expected, rtol=1e-4, atol=1e-4)


def test_the_summary_says_where_to_look(quick_run):
    out, printed, _ = quick_run
    summary = (out / demo_settings.SUMMARY_MD).read_text()
    assert summary.strip() in printed  # the printed summary is the file
    for needle in (
        demo_settings.POINTCLOUD_PNG,
        demo_settings.METRICS_JSON,
        f"{demo_settings.RUN_DIR}/last.pt",
        "tensorboard --logdir",
        "ros2 launch fg_depth_ros depth.launch.py model:=",
    ):
        assert needle in summary, needle
    report = json.loads((out / demo_settings.METRICS_JSON).read_text())
    # Numbers in the summary are this run's.
    assert f"AbsRel {report['depth']['abs_rel']:.3f}" in summary
    assert re.search(r"^== \[5/5\] ", printed, re.MULTILINE)


def test_a_second_run_into_the_same_folder_starts_training_afresh(quick_run, tmp_path):
    out, _, _ = quick_run
    settings = demo_settings.make_settings(out, None, [], quick=True, domain_id=None)
    stale = out / demo_settings.RUN_DIR / "stale.txt"
    stale.write_text("from an earlier run")
    pipeline.fresh_run_dir(settings.run_dir)
    assert not any(settings.run_dir.iterdir())
    foreign = tmp_path / "mine"
    (foreign / "notes.txt").parent.mkdir()
    (foreign / "notes.txt").write_text("not a run")
    with pytest.raises(demo_settings.DemoError, match="is not a training run"):
        pipeline.fresh_run_dir(foreign)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--quick", "--set", "data.dataset=kitti"], r"data.dataset is 'kitti'; the demo trains on the"),
        (["--quick", "--config", "config/demo_settings.yaml"], r"--quick and --config: choose one"),
        (["--quick", "--domain-id", "300"], r"--domain-id: expected a ROS domain 0..232, got 300"),
        (["--config", "/no/such.yaml"], r"/no/such.yaml: config file not found"),
        (["--quick", "--threads", "0"], r"--threads: expected >= 1, got 0"),
    ],
)
def test_bad_settings_stop_before_any_work_with_the_reason(tmp_path, capsys, argv, message):
    assert cli.main(["--out", str(tmp_path / "out"), *argv]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def _stamped(kind, ns):
    msg = kind()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    return msg


def test_a_recording_with_a_missing_frame_or_a_foreign_stamp_is_refused():
    one = [0.01]
    rec = ros_session.Recording(
        indices=[0],
        names=["test/000000"],
        images=[_stamped(Image, 5)],
        depths=[_stamped(Image, 5)],
        clouds=[_stamped(PointCloud2, 5)],
        stamp_to_receive_s=one,
        node_latency_s=one,
        inference_s=one,
        processing_s=one,
    )
    ros_session.check_recording(rec, 1)
    with pytest.raises(demo_settings.DemoError, match=r"expected 2 of each, got \{'published images': 1"):
        ros_session.check_recording(rec, 2)
    foreign = dataclasses.replace(rec, depths=[_stamped(Image, 6)])
    with pytest.raises(
        demo_settings.DemoError, match=r"frame 0: the node's depth \(6\) .* the stamp play published \(5\)"
    ):
        ros_session.check_recording(foreign, 1)
