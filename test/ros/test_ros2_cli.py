"""The package as a ROS user runs it, with the real ROS 2 command-line tools: colcon build into a workspace,
then ``ros2 run``, ``ros2 launch``, ``ros2 param`` against it, play as the camera, in mono and in stereo (the
stereo pair synchronised by the real message_filters).

The tools come from a ROS installation (sourced) or from the wheels of ``make setup ROS2_CLI_WHEELS=DIR``
(CI points DIR at ../shared/ros2-cli/wheels). Without either, these tests skip and say so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest
import rclpy
from colcon_helpers import sourced_environment
from diagnostic_msgs.msg import DiagnosticArray
from linear_model_helpers import write_linear_model
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from fg_depth_ros.diagnostics import status_values

#: colcon builds and processes that start in seconds.
pytestmark = pytest.mark.slow

#: Seconds for a launched node to start, for outputs to arrive, and for a process to end after a signal.
START_TIMEOUT_S, OUTPUT_TIMEOUT_S, EXIT_TIMEOUT_S = 60.0, 60.0, 30.0
# How long a CLI call without the daemon may keep missing a running node in discovery (seconds).
DISCOVERY_TIMEOUT_S = 30.0
NET_W, NET_H = 64, 32
#: play's camera: the built-in world at this size (rendered in memory).
CAMERA_W, CAMERA_H = 128, 64


def _ros2_executable() -> str:
    found = shutil.which("ros2", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        pytest.skip(
            "the ROS 2 command-line tools are not installed: source a ROS 2 installation, or "
            "`make setup ROS2_CLI_WHEELS=DIR` with the ros2cli/launch wheels"
        )
    return found


@pytest.fixture(scope="module")
def ros2(workspace, tmp_path_factory) -> Dict[str, str]:
    """The environment of a shell that sourced the workspace, with the ROS 2 tools on PATH and a ROS domain
    of this module's own."""
    ros2_bin = _ros2_executable()
    env = sourced_environment(workspace["install"], workspace["env"])
    env["PATH"] = os.pathsep.join([str(Path(ros2_bin).parent), env.get("PATH", "")])
    # The wheels' packages (ros2cli's verbs, launch_ros) are found through the venv's ament index.
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([env.get("AMENT_PREFIX_PATH", ""), sys.prefix]).strip(
        os.pathsep
    )
    env["ROS_DOMAIN_ID"] = str(os.getpid() % 80 + 10)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_linear_model(tmp_path_factory.mktemp("model") / "linear.onnx", NET_W, NET_H)


class Process:
    """A command in the background whose output is collected on a thread (a full pipe cannot block it)."""

    def __init__(self, cmd: List[str], env: Dict[str, str], cwd: Path) -> None:
        self.cmd = cmd
        self.popen = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, start_new_session=True)  # fmt: skip
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        """SIGINT to the whole process group (as Ctrl-C in a terminal), then wait; the exit status."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
        try:
            self.popen.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            pytest.fail(f"{' '.join(self.cmd[:4])} did not stop on SIGINT:\n{self.output}")
        self._reader.join(timeout=EXIT_TIMEOUT_S)
        return self.popen.returncode


class Listener:
    """An rclpy node of the test in the same ROS domain, collecting messages of the given topics."""

    def __init__(self, env: Dict[str, str], topics: Dict[str, type]) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.node = Node("cli_test_listener", context=self.context)
        self.got: Dict[str, list] = {topic: [] for topic in topics}
        qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_type in topics.items():
            self.node.create_subscription(msg_type, topic, self.got[topic].append, qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def wait(self, condition, what: str, process: Process, timeout: float = OUTPUT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or process.popen.poll() is not None:
                pytest.fail(
                    f"no {what}; received { {k: len(v) for k, v in self.got.items()} }:\n{process.output}"
                )
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _run(cmd: List[str], env: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)


def _run_on_node(cmd: List[str], env: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs a ``ros2 param|lifecycle`` call on a running node, again while it cannot discover the node.

    Without the daemon each call discovers the graph afresh within its --spin-time; on a busy CPU (the
    node inferring on 2 cores) that can miss a node that is there, which the CLI answers with "Node not
    found". Only that answer is retried: any other failure is returned to the test.
    """
    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while True:
        done = _run(cmd, env, cwd)
        if "Node not found" not in done.stderr + done.stdout or time.monotonic() > deadline:
            return done


#: ``ros2 param`` without the daemon, spinning long enough to discover the node (a new domain's daemon
#: answers "Node not found" until its own discovery has run).
PARAM = ["ros2", "param", "{verb}", "--no-daemon", "--spin-time", "3"]


def _param(verb: str, *args: str) -> List[str]:
    return [part.format(verb=verb) for part in PARAM] + list(args)


def test_ros2_pkg_lists_the_executables_and_play_help_prints_usage(ros2, tmp_path):
    done = _run(["ros2", "pkg", "executables", "fg_depth_ros"], ros2, tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {tuple(line.split()) for line in done.stdout.splitlines()}
    executables = {"depth_node", "depth_lifecycle_node", "fg-depth", "play", "train"}
    assert listed == {("fg_depth_ros", name) for name in executables}
    for executable, parameter in (
        ("play", "rate"), ("depth_node", "points.decimation"), ("depth_lifecycle_node", "model")
    ):  # fmt: skip
        done = _run(["ros2", "run", "fg_depth_ros", executable, "--help"], ros2, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: ros2 run fg_depth_ros {executable} [--ros-args")
        assert f"  {parameter} (" in done.stdout


def _camera(ros2: Dict[str, str], tmp_path: Path, mode: str) -> Process:
    cmd = ["ros2", "run", "fg_depth_ros", "play", "--ros-args", "-p", f"mode:={mode}", "-p", "rate:=5.0"]
    cmd += ["-p", "loop:=true", "-p", f"width:={CAMERA_W}", "-p", f"height:={CAMERA_H}", "-p", "count:=3"]
    return Process(cmd, ros2, tmp_path)


def test_launch_mono_with_play_as_camera_and_set_a_parameter_at_run_time(ros2, model, tmp_path):
    launch = Process(["ros2", "launch", "fg_depth_ros", "depth.launch.py", f"model:={model}"], ros2, tmp_path)
    camera = _camera(ros2, tmp_path, "mono")
    topics = {"depth/image": Image, "depth/camera_info": CameraInfo, "points": PointCloud2}
    listener = Listener(ros2, topics)
    try:
        for topic in topics:
            listener.wait(lambda t=topic: len(listener.got[t]) >= 1, topic, launch)
        depth = listener.got["depth/image"][-1]
        assert (depth.width, depth.height, depth.encoding) == (CAMERA_W, CAMERA_H, "32FC1")
        # points.decimation 2 (config/depth.yaml) -> 4: a quarter of the points, once the change is in.
        assert listener.got["points"][-1].width == (CAMERA_W // 2) * (CAMERA_H // 2)
        done = _run_on_node(_param("set", "/depth_node", "points.decimation", "4"), ros2, tmp_path)
        assert done.returncode == 0 and "Set parameter successful" in done.stdout, done.stdout + done.stderr
        quarter = (CAMERA_W // 4) * (CAMERA_H // 4)
        listener.wait(lambda: listener.got["points"][-1].width == quarter, "a decimated cloud", launch)
        done = _run_on_node(_param("get", "/depth_node", "points.decimation"), ros2, tmp_path)
        assert done.stdout.split()[-1] == "4", done.stdout
        # A read-only parameter is refused with the node's reason.
        done = _run_on_node(_param("set", "/depth_node", "mode", "stereo"), ros2, tmp_path)
        assert "read-only" in done.stdout + done.stderr
    finally:
        listener.close()
        camera.stop()
        status = launch.stop()
    assert status == 0 and "Traceback" not in launch.output, launch.output


def test_launch_stereo_synchronises_through_message_filters(ros2, model, tmp_path):
    launch = Process(
        ["ros2", "launch", "fg_depth_ros", "depth.launch.py", f"model:={model}", "mode:=stereo"],
        ros2,
        tmp_path,
    )
    camera = _camera(ros2, tmp_path, "stereo")
    listener = Listener(ros2, {"depth/image": Image, "disparity": DisparityImage})
    try:
        listener.wait(lambda: len(listener.got["disparity"]) >= 2, "stereo outputs", launch)
        depth, disparity = listener.got["depth/image"][-1], listener.got["disparity"][-1]
        assert (depth.width, depth.height) == (CAMERA_W, CAMERA_H)
        assert disparity.t == pytest.approx(0.54, rel=1e-6)  # the built-in world's KITTI-like baseline
    finally:
        listener.close()
        camera.stop()
        launch.stop()
    assert "synchronised by message_filters" in launch.output, launch.output


def test_rviz_without_rviz2_stops_the_launch_before_anything_starts(ros2, model, tmp_path):
    env = dict(ros2)
    # rviz2 is not installed here; on a ROS machine, hide it by an index without it (the test's point).
    prefixes = [p for p in env["AMENT_PREFIX_PATH"].split(os.pathsep)
                if not (Path(p) / "share/ament_index/resource_index/packages/rviz2").exists()]  # fmt: skip
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(prefixes)
    cmd = ["ros2", "launch", "fg_depth_ros", "depth.launch.py", f"model:={model}", "rviz:=true"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "rviz:=true needs rviz2, which is not installed here" in output
    assert "depth from" not in output and "process started" not in output  # depth_node never started


def _replay_with_clock(bag: Path, env: Dict[str, str]) -> None:
    """Publish the recording's messages at their pace and its time on /clock, as ``ros2 bag play --clock``
    does (rosbag2's player is C++ and not installable without ROS; the recipe is the same with it)."""
    from rosbags.highlevel import AnyReader
    from rosgraph_msgs.msg import Clock

    from fg_depth_core.camera_msgs import stamp_ns

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env["ROS_DOMAIN_ID"]))
    node = Node("bag_player", context=context)
    types = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo}
    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    clock = node.create_publisher(Clock, "/clock", 10)
    try:
        with AnyReader([bag]) as reader:
            conns = [c for c in reader.connections if c.topic.startswith("/stereo/left/")]
            pubs = {c.topic: node.create_publisher(types[c.msgtype], c.topic, qos) for c in conns}
            deadline = time.monotonic() + START_TIMEOUT_S
            while not all(p.get_subscription_count() for p in pubs.values()):
                assert time.monotonic() < deadline, "the node never subscribed to the recording's topics"
                time.sleep(0.05)
            start, first = time.monotonic(), None
            for conn, timestamp, raw in reader.messages(connections=conns):
                first = timestamp if first is None else first
                time.sleep(max(0.0, start + (timestamp - first) * 1e-9 - time.monotonic()))
                msg = reader.deserialize(raw, conn.msgtype)
                out = types[conn.msgtype]()
                for field in out.get_fields_and_field_types():
                    _copy_field(out, msg, field)
                clock_msg = Clock()
                clock_msg.clock.sec, clock_msg.clock.nanosec = divmod(timestamp, 1_000_000_000)
                clock.publish(clock_msg)
                pubs[conn.topic].publish(out)
                if conn.msgtype.endswith("Image"):
                    assert stamp_ns(out) == timestamp
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def _copy_field(out, msg, field: str) -> None:
    """One field of a rosbags message into the rclpy message of the same type (nested headers, arrays)."""
    value = getattr(msg, field)
    if field == "header":
        out.header.frame_id = value.frame_id
        out.header.stamp.sec, out.header.stamp.nanosec = value.stamp.sec, value.stamp.nanosec
    elif field == "roi":
        for name in ("x_offset", "y_offset", "height", "width", "do_rectify"):
            setattr(out.roi, name, getattr(value, name))
    elif hasattr(value, "tolist"):
        setattr(out, field, value.tolist() if field != "data" else value.tobytes())
    else:
        setattr(out, field, value)


def test_a_recording_replayed_with_its_clock_and_use_sim_time(ros2, model, tmp_path):
    """The README's recipe: ``ros2 bag play --clock`` and ``use_sim_time:=true``. The node's clock follows
    the recording's, so the depth's latency (its clock minus the image stamp) is a fraction of a second,
    although the recording's stamps lie years in the past."""
    from bag_helpers import BagSpec, render_frames, write_stereo_bag

    # 40 frames at 20 Hz: two seconds of recording time, so the node's 1 s diagnostics timer (on /clock)
    # reports while frames come.
    frames = 40
    bag = write_stereo_bag(tmp_path / "recording", render_frames(frames), BagSpec(frames=frames))
    cmd = ["ros2", "launch", "fg_depth_ros", "depth.launch.py", f"model:={model}", "use_sim_time:=true"]
    cmd += ["image:=/stereo/left/image_raw", "camera_info:=/stereo/left/camera_info"]
    launch = Process(cmd, ros2, tmp_path)
    listener = Listener(ros2, {"depth/image": Image, "/diagnostics": DiagnosticArray})
    try:
        # The node infers only for subscribers: let it see this one before the recording plays.
        listener.wait(
            lambda: listener.node.count_publishers("/depth/image") > 0, "the node's outputs", launch
        )
        listener.executor.spin_once(timeout_sec=0.5)
        _replay_with_clock(bag, ros2)
        listener.wait(lambda: len(listener.got["depth/image"]) >= 10, "depth from the recording", launch)
        done = _run_on_node(_param("get", "/depth_node", "use_sim_time"), ros2, tmp_path)
        assert "Boolean value is: True" in done.stdout, done.stdout + done.stderr
        stamps = [m.header.stamp.sec for m in listener.got["depth/image"]]
        assert all(s < time.time() - 3600 for s in stamps)  # the recording's time, not now
        # The node measures latency on its clock, /clock: under a second, not the years since the recording.
        # (Its diagnostics timer runs on that clock too: reports come while the recording's time advances.)
        reports = [status_values(m, "depth_node: depth") for m in listener.got["/diagnostics"]]
        latencies = [float(r["latency_p50_ms"]) for r in reports if r["latency_p50_ms"] != "nan"]
        assert latencies and 0.0 <= latencies[-1] < 1000.0, reports[-1:]
    finally:
        listener.close()
        launch.stop()
    assert "Traceback" not in launch.output, launch.output


def _lifecycle(verb: str, *args: str) -> List[str]:
    return ["ros2", "lifecycle", verb, "--no-daemon", "--spin-time", "3", *args]


def test_the_lifecycle_node_is_driven_by_ros2_lifecycle_set(ros2, model, tmp_path):
    node = Process(
        ["ros2", "run", "fg_depth_ros", "depth_lifecycle_node", "--ros-args", "-p", f"model:={model}"],
        ros2, tmp_path,
    )  # fmt: skip
    camera = _camera(ros2, tmp_path, "mono")
    listener = Listener(ros2, {"depth/image": Image})
    try:
        listener.wait(lambda: _run(_lifecycle("get", "/depth_node"), ros2, tmp_path).stdout.startswith(
            "unconfigured"), "the node, unconfigured", node)  # fmt: skip
        for transition, state in (("configure", "inactive"), ("activate", "active")):
            done = _run_on_node(_lifecycle("set", "/depth_node", transition), ros2, tmp_path)
            assert done.returncode == 0 and "Transitioning successful" in done.stdout, (
                done.stdout + done.stderr
            )
            assert _run_on_node(_lifecycle("get", "/depth_node"), ros2, tmp_path).stdout.startswith(state)
        listener.wait(lambda: len(listener.got["depth/image"]) >= 2, "depth once active", node)
        done = _run_on_node(_lifecycle("set", "/depth_node", "deactivate"), ros2, tmp_path)
        assert done.returncode == 0 and "Transitioning successful" in done.stdout, done.stdout + done.stderr
        assert _run_on_node(_lifecycle("get", "/depth_node"), ros2, tmp_path).stdout.startswith("inactive")
        # Take what was queued before the transition, then nothing more may come (play keeps sending at 5 Hz).
        deactivated = time.time()
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            listener.executor.spin_once(timeout_sec=0.05)
        late = [
            m
            for m in listener.got["depth/image"]
            if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 > deactivated
        ]
        assert late == [], f"{len(late)} depth images of frames sent after deactivate"
    finally:
        listener.close()
        camera.stop()
        status = node.stop()
    assert status == 0 and "Traceback" not in node.output, node.output
