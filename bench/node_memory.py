#!/usr/bin/env python3
"""depth_node's memory: the peak resident set (VmHWM) of the node process after it has served N camera frames,
with an ONNX model on ONNX Runtime (the torch-free path) and, for comparison, the same network as a PyTorch
checkpoint on the torch backend; writes the "depth_node memory" section of docs/RESULTS.md.

    .venv/bin/python bench/node_memory.py                       # 640x192 network, 20 KITTI frames, ~1 min
    .venv/bin/python bench/node_memory.py --frames 5 --no-results        # smoke

Method. A random-weight DepthNet (the default config's encoder; memory does not depend on the weights) is
saved as a checkpoint at the network size and exported to ONNX. For each model, three processes run in a
private ROS domain: depth_node (``python -m fg_depth_ros.depth_node``, mono), ``play`` publishing the camera
(KITTI raw 2011_09_26_drive_0048 from ../shared/data when present, 1242x375 rgb8; else the built-in world
rendered at 1242x375) and this script, which subscribes to ``depth``, ``points`` and ``depth/color`` (so the
node computes every mono output, as with rviz2 watching) and counts depth images. Once N have arrived, it
reads VmHWM and VmRSS from /proc/<node pid>/status, then stops the node.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from fg_depth_core.commands.bench import parse_size, prepare_models  # noqa: E402
from tools.results import RESULTS_MD, machine_description, write_section  # noqa: E402

SECTION = "## depth_node memory"
#: Issue 11's target: depth_node with an ONNX model at 640x192 after 20 frames of 1242x375 images.
PEAK_TARGET_MIB = 350.0
KITTI = ROOT.parent / "shared" / "data" / "kitti_raw_0048" / "2011_09_26" / "2011_09_26_drive_0048_sync"
CAMERA_SIZE = (1242, 375)
#: Seconds allowed for a node to start (model load, warm-up) and for all frames to arrive.
START_TIMEOUT_S = 120.0
FRAMES_TIMEOUT_S = 300.0


def proc_status_mib(pid: int) -> Dict[str, float]:
    """VmHWM (peak resident) and VmRSS of process ``pid`` in MiB (Linux /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024.0
    return out


def describe_checkout(path: Path) -> str:
    """``path``'s commit (short hash), or its name when it is not a git checkout."""
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return f"commit {done.stdout.strip()}" if done.returncode == 0 else path.name


def play_command(frames: int, rate: float) -> List[str]:
    """The ``play`` process publishing ``frames`` mono camera frames at ``rate`` Hz."""
    cmd = [sys.executable, "-m", "fg_depth_ros.play", "--ros-args", "-p", "mode:=mono", "-p", f"rate:={rate}"]
    cmd += ["-p", f"count:={frames}", "-p", "loop:=true"]
    if KITTI.is_dir():
        return cmd + ["-p", "dataset:=kitti", "-p", f"path:={KITTI}"]
    width, height = CAMERA_SIZE
    return cmd + ["-p", "dataset:=synth", "-p", f"width:={width}", "-p", f"height:={height}"]


def measure(
    model: Path, backend: str, frames: int, rate: float, domain: int, source: Path = ROOT
) -> Dict[str, float]:
    """Serve ``frames`` frames with depth_node (run from the checkout ``source``) on ``model``; returns the
    node's memory and frame count."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONPATH=str(source))
    node_cmd = [sys.executable, "-m", "fg_depth_ros.depth_node", "--ros-args", "-p", f"model:={model}"]
    node_cmd += ["-p", f"backend:={backend}", "-p", "device:=cpu"]
    # cwd = the checkout too: ``python -m`` puts the working directory first on sys.path.
    node = subprocess.Popen(
        node_cmd, cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    listener = Node("node_memory_bench", context=context)
    depth_stamps: List[int] = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    listener.create_subscription(Image, "depth/image", lambda m: depth_stamps.append(m.header.stamp.sec), qos)
    listener.create_subscription(PointCloud2, "points", lambda m: None, qos)
    listener.create_subscription(Image, "depth/color/image", lambda m: None, qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    threading.Thread(target=executor.spin, daemon=True).start()
    player = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listener.count_publishers("depth/image"):
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"depth_node did not start:\n{node.stdout.read()}")
            time.sleep(0.1)
        player = subprocess.Popen(play_command(frames, rate), cwd=source, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + FRAMES_TIMEOUT_S
        while len(depth_stamps) < frames:
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"only {len(depth_stamps)} of {frames} depth images came back")
            time.sleep(0.05)
        memory = proc_status_mib(node.pid)
        return {"peak_mib": memory["VmHWM"], "rss_mib": memory["VmRSS"], "frames": float(len(depth_stamps))}
    finally:
        if player is not None:
            player.terminate()
            player.wait(timeout=20)
        executor.shutdown()
        listener.destroy_node()
        rclpy.shutdown(context=context)
        node.terminate()
        try:
            node.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            node.communicate()


def section(rows: Dict[str, Dict[str, float]], notes: List[str], command: str, size: str) -> str:
    """The markdown section for docs/RESULTS.md."""
    onnx = rows["ONNX model, onnxruntime backend"]["peak_mib"]
    verdict = "met" if onnx <= PEAK_TARGET_MIB else "NOT met"
    lines = [
        SECTION,
        "",
        "Peak resident memory (VmHWM) of the depth_node process after serving camera frames; method in "
        "bench/node_memory.py.",
        "",
        f"- Command: `{command}`",
        *[f"- {n}" for n in notes],
        "",
        "| model | frames | peak RSS MiB | RSS at the end MiB |",
        "|---|---|---|---|",
        *[
            f"| {name} | {r['frames']:.0f} | {r['peak_mib']:.0f} | {r['rss_mib']:.0f} |"
            for name, r in rows.items()
        ],
        "",
        f"- Target (issue 11): at most {PEAK_TARGET_MIB:.0f} MiB with an ONNX model at {size}: {verdict} "
        f"({onnx:.0f} MiB). The torch row shows what serving a checkpoint costs (torch loaded).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="640x192", help="network size WxH (default: %(default)s)")
    p.add_argument("--frames", type=int, default=20, help="camera frames served (default: %(default)s)")
    p.add_argument("--rate", type=float, default=4.0, help="camera rate in Hz (default: %(default)s)")
    p.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also run the ONNX model with depth_node and play from this other source checkout (a git "
        "worktree of an older commit, say), to compare versions",
    )
    p.add_argument("--results", default=str(RESULTS_MD), help="markdown file to update")
    p.add_argument("--no-results", action="store_true", help="only print")
    args = p.parse_args(argv)
    width, height = parse_size(args.size, "--size")
    argv = sys.argv[1:] if argv is None else argv
    command = " ".join(["python bench/node_memory.py", *map(shlex.quote, argv)])
    started = time.time()
    domain = os.getpid() % 100 + 1
    with tempfile.TemporaryDirectory(prefix="fg-depth-node-memory-") as tmp:
        print(f"node_memory: saving and exporting a {width}x{height} DepthNet", flush=True)
        models = prepare_models(None, [(width, height)], Path(tmp), need_onnx=True)[(width, height)]
        rows = {}
        for name, model, backend in (
            ("ONNX model, onnxruntime backend", models["onnx"], "onnxruntime"),
            ("PyTorch checkpoint, torch backend", models["pt"], "torch"),
        ):
            print(f"node_memory: {name}", flush=True)
            rows[name] = measure(model, backend, args.frames, args.rate, domain)
        if args.compare:
            name = f"ONNX model, onnxruntime backend, node from {describe_checkout(Path(args.compare))}"
            print(f"node_memory: {name}", flush=True)
            rows[name] = measure(
                models["onnx"], "onnxruntime", args.frames, args.rate, domain, Path(args.compare)
            )
    camera = (
        f"KITTI raw {KITTI.name} image_02 ({CAMERA_SIZE[0]}x{CAMERA_SIZE[1]} rgb8)"
        if KITTI.is_dir()
        else f"the built-in world rendered at {CAMERA_SIZE[0]}x{CAMERA_SIZE[1]} (rgb8)"
    )
    notes = [
        f"Machine: {machine_description()}",
        f"Date: {datetime.date.today().isoformat()}; wall time {(time.time() - started) / 60:.1f} min",
        f"Network {width}x{height}, random weights (default config's encoder), on the CPU; camera: {camera}, "
        f"published by `play` at {args.rate:g} Hz; subscribed: depth, points, depth/color",
    ]
    text = section(rows, notes, command, args.size)
    print(text)
    if not args.no_results:
        write_section(Path(args.results), SECTION, text)
        print(f"results -> {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
