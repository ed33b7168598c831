"""The ``fg-depth`` command line: one entry point with subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from fg_depth_core import __version__
from fg_depth_core.commands import COMMAND_MODULES
from fg_depth_core.errors import FgDepthError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fg-depth",
        description="FG-Depth: flow-guided self-supervised monocular metric depth.",
    )
    parser.add_argument("--version", action="version", version=f"fg-depth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"fg_depth_core.commands.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FgDepthError as exc:
        print(f"fg-depth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fg-depth {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
