"""Subcommands of the ``fg-depth`` CLI: one module each, exposing ``register(subparsers)``.

Handlers import torch and friends lazily so that ``fg-depth --help`` stays fast.
"""

from __future__ import annotations

import argparse

#: How --set is documented wherever it is accepted.
SET_HELP = "override a config value, e.g. --set train.max_steps=1000 (repeatable; value parsed as YAML)"


def add_set_argument(parser: argparse.ArgumentParser, help: str = SET_HELP) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``: the config override every tool shares."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )

#: Module names (under fg_depth_core.commands) in the order ``--help`` lists them.
COMMAND_MODULES = (
    "synth",
    "bag_info",
    "train",
    "eval",
    "export_gt",
    "export",
    "predict",
    "bench",
    "teacher",
    "loss_curve",
)
