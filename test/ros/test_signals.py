"""depth_node and play end cleanly (status 0, no traceback) on SIGINT or SIGTERM at any moment: while Python
starts and imports, while the model loads, idle, and with frames in flight.

The programs run as their installed console scripts do (``from fg_depth_ros.entry import depth_node;
sys.exit(depth_node())``), printing one line once the entry module is imported (a signal in Python's own
start-up, before any line of the package runs, is Python's to handle). A sweep of delays from that line puts
the signal into each phase; the node's log says which phase a run reached, and the test checks that every
phase was hit at least once, so a faster or slower machine cannot silently skip one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from linear_model_helpers import write_linear_model

#: Processes with several threads and rclpy: seconds each.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: Seconds after the line at which a signal is sent: the node's imports take about one second. (Not less
#: than a quarter second: on a loaded machine the script's own few instructions between the line and the
#: entry point, which are no part of the package, can wait that long for the CPU.)
DELAYS_S = (0.25, 0.5, 0.75, 1.0, 1.3, 1.6, 2.2, 3.5)
#: The console script's body, with a line once it has imported fg_depth_ros.entry (which imports nothing
#: heavy): before that, a signal meets Python's own start-up, which no program can make quiet.
SCRIPT = "import sys; from fg_depth_ros.entry import {0}; print('python up', flush=True); sys.exit({0}())"
EXIT_TIMEOUT_S = 30.0
#: The log line that ends start-up (the model is loaded and warmed up): "<mode> depth from <model> (...".
READY = "depth from"


def _env(tmp_path: Path) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ROS_LOG_DIR=str(tmp_path / "ros_log"))
    env["ROS_DOMAIN_ID"] = str(os.getpid() % 90 + 5)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_and_signal(
    cmd: List[str], env: Dict[str, str], delay: float, sig: int, cwd: Path
) -> Tuple[int, str]:
    process = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    first = process.stdout.readline()
    assert first.strip() == "python up", first
    time.sleep(delay)
    process.send_signal(sig)
    try:
        output = process.communicate(timeout=EXIT_TIMEOUT_S)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        pytest.fail(
            f"{cmd[2][-30:]} did not exit within {EXIT_TIMEOUT_S} s of {signal.Signals(sig).name}:\n{output}"
        )
    return process.returncode, output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_depth_node_exits_cleanly_on_a_signal_in_every_phase(tmp_path, sig):
    model = write_linear_model(tmp_path / "linear.onnx", 64, 32)
    env = _env(tmp_path)
    node = [sys.executable, "-c", SCRIPT.format("depth_node"), "--ros-args", "-p", f"model:={model}"]
    node += ["-p", "backend:=onnxruntime", "-p", "device:=cpu", "-p", "diagnostics.period:=0.05"]
    # A camera at 50 Hz keeps frames in flight once the node is up.
    camera = [sys.executable, "-m", "fg_depth_ros.play", "--ros-args", "-p", "mode:=mono", "-p", "rate:=50.0"]
    camera += ["-p", "loop:=true", "-p", "width:=320", "-p", "height:=96", "-p", "count:=4"]
    player = subprocess.Popen(
        camera, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    phases = set()
    try:
        for delay in DELAYS_S:
            code, output = _run_and_signal(node, env, delay, sig, tmp_path)
            name = signal.Signals(sig).name
            assert code == 0, f"exit status {code} after {name} at {delay} s:\n{output}"
            assert "Traceback" not in output and "RCLError" not in output, f"{name} at {delay} s:\n{output}"
            assert "error" not in output.lower(), f"{name} at {delay} s:\n{output}"
            phases.add("running" if READY in output else "starting")
    finally:
        player.terminate()
        player.wait(timeout=EXIT_TIMEOUT_S)
    assert phases == {"starting", "running"}, f"the sweep missed a phase: {phases}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_play_exits_cleanly_on_a_signal(tmp_path, sig):
    camera = [sys.executable, "-c", SCRIPT.format("play"), "--ros-args", "-p", "mode:=stereo"]
    camera += ["-p", "loop:=true", "-p", "width:=160", "-p", "height:=64"]
    for delay in (0.3, 2.5):
        code, output = _run_and_signal(camera, _env(tmp_path), delay, sig, tmp_path)
        assert code == 0 and "Traceback" not in output, f"{signal.Signals(sig).name} at {delay} s:\n{output}"


def test_a_stop_wrapped_by_the_interpreter_is_still_a_stop():
    """A signal while a class is being created: Python up to 3.11 raises RuntimeError("Error calling
    __set_name__ ...") caused by the KeyboardInterrupt. The entry point must end quietly then too (it once
    exited with status 1 on SIGTERM during an import)."""
    from fg_depth_ros.entry import _interrupt, is_stop, run

    class Interrupting:
        def __set_name__(self, owner, name):
            _interrupt(signal.SIGTERM, None)

    def main(args):
        type("Params", (), {"period": Interrupting()})
        return 3

    with pytest.raises(BaseException) as raised:  # RuntimeError up to 3.11, KeyboardInterrupt from 3.12
        main(None)
    assert is_stop(raised.value) and not is_stop(RuntimeError("no stop"))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert run(main) == 0
        with pytest.raises(ValueError):  # any other failure still fails
            run(lambda args: int("x"))
    finally:
        signal.signal(signal.SIGTERM, previous)  # run() installed its handler in this process
