"""Console entry points of the node executables (``ros2 run fg_depth_ros depth_node``,
``depth_lifecycle_node``, ``play``).

Ctrl-C or SIGTERM (``ros2 launch`` stopping, ``kill``, systemd) may come at any moment, also while the node's
libraries (rclpy, numpy, OpenCV, ONNX Runtime) are still being imported, before any node code could catch
it. This module imports nothing heavy: it turns SIGTERM into the KeyboardInterrupt that SIGINT already is,
then imports and runs the node's ``main``, so that every stop ends quietly with status 0. (A signal in the
first milliseconds, while Python itself starts, is Python's to handle.)
"""

from __future__ import annotations

import importlib
import signal
from typing import Callable, List, Optional


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run(main: Callable[[Optional[List[str]]], int], args: Optional[List[str]] = None) -> int:
    """``main(args)`` with SIGTERM raising KeyboardInterrupt, and a stop before main handles it: status 0."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return main(args)
    except KeyboardInterrupt:
        return 0


def _entry(module: str) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        return 0
    return run(main)


def depth_node() -> int:
    """``ros2 run fg_depth_ros depth_node``."""
    return _entry("fg_depth_ros.depth_node")


def depth_lifecycle_node() -> int:
    """``ros2 run fg_depth_ros depth_lifecycle_node``."""
    return _entry("fg_depth_ros.depth_lifecycle_node")


def play() -> int:
    """``ros2 run fg_depth_ros play``."""
    return _entry("fg_depth_ros.play")
