"""``ros2 run fg_depth_ros train``: the training entry point of fg_depth_core (``fg-depth train``) as a ROS
executable. Training needs no ROS graph, so nothing here imports rclpy; it accepts the same arguments and
ignores the ``--ros-args ... [--]`` block that ros2 launch appends."""

from __future__ import annotations

import sys
from typing import List, Optional


def strip_ros_args(argv: List[str]) -> List[str]:
    """``argv`` without ``--ros-args`` blocks (each up to a ``--`` or the end), as rclpy would strip them."""
    out: List[str] = []
    skipping = False
    for arg in argv:
        if arg == "--ros-args":
            skipping = True
        elif skipping and arg == "--":
            skipping = False
        elif not skipping:
            out.append(arg)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``fg-depth train`` with ``argv`` (default: the command line); returns the exit status."""
    from fg_depth_core.cli import main as cli_main

    args = strip_ros_args(sys.argv[1:] if argv is None else list(argv))
    return cli_main(["train", *args])


if __name__ == "__main__":
    sys.exit(main())
