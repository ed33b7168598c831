"""Subcommands of the ``fg-depth`` CLI: one module each, exposing ``register(subparsers)``.

Handlers import torch and friends lazily so that ``fg-depth --help`` stays fast.
"""

#: Module names (under fg_depth_core.commands) in the order ``--help`` lists them.
COMMAND_MODULES = (
    "synth",
    "bag_info",
    "train",
    "eval",
    "export",
    "predict",
    "bench",
    "teacher",
    "loss_curve",
)
