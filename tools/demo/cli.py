"""``python -m tools.demo``: the demo's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from fg_depth_core.commands import add_set_argument
from fg_depth_core.errors import FgDepthError
from tools.checkout import ROOT
from tools.demo.settings import DEFAULT_CONFIG, DEFAULT_THREADS, QUICK_CONFIG, QUICK_STEPS, make_settings

#: Exit status after Ctrl-C (128 + SIGINT), as the fg-depth command line.
INTERRUPTED_STATUS = 130


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description="FG-Depth end to end on the built-in world: render, train, export, run depth_node and "
        "play on rclpy, and write PNGs, a point cloud view, metrics and latency to an output folder.",
    )
    p.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    p.add_argument(
        "--config", default=None, help=f"YAML config (default: {DEFAULT_CONFIG.relative_to(ROOT)})"
    )
    add_set_argument(p, "config override, e.g. train.max_steps=100 (repeatable)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"the whole pipeline at a tiny budget: {QUICK_CONFIG.relative_to(ROOT)}, {QUICK_STEPS} steps",
    )
    p.add_argument(
        "--domain-id", type=int, default=None, help="ROS domain of the demo's nodes (default: one of its own)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help="PyTorch CPU threads (default: %(default)s: steady on a shared machine; 2 train ~40%% faster "
        "on 2 idle cores, several times slower on busy ones)",
    )
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point; returns the exit status (1 with the reason on stderr for a bad setting or a
    failed stage)."""
    args = parse_args(argv)
    try:
        settings = make_settings(
            Path(args.out), args.config, args.overrides, args.quick, args.domain_id, args.threads
        )
        # The stages import torch, rclpy and the node: only once the settings are known to be good.
        from tools.demo.pipeline import run

        run(settings)
    except FgDepthError as exc:
        print(f"[demo] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"[demo] interrupted; what was written so far is in {args.out}", file=sys.stderr)
        return INTERRUPTED_STATUS
    return 0


if __name__ == "__main__":
    sys.exit(main())
