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


def is_stop(error: BaseException) -> bool:
    """Whether ``error`` is a stop (KeyboardInterrupt), or was raised by one: the interpreter wraps what
    interrupts some of its own steps (a class body's ``__set_name__`` becomes a RuntimeError whose cause is
    the KeyboardInterrupt), so the stop is looked for along the chain of causes."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def run(main: Callable[[Optional[List[str]]], int], args: Optional[List[str]] = None) -> int:
    """``main(args)`` with SIGTERM raising KeyboardInterrupt, and a stop before main handles it: status 0."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return main(args)
    except BaseException as error:
        if is_stop(error):
            return 0
        raise


def _entry(module: str) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main = importlib.import_module(module).main
    except BaseException as error:
        if is_stop(error):
            return 0
        raise
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
