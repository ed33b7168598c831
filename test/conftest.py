"""Suite-wide settings and shared fixtures.

Tests are grouped by area: test/core (fg_depth_core, no ROS), test/ros (the ROS 2 package, real rclpy) and
test/tools (repository tooling). Each test is marked with its folder's name, so ``pytest -m core`` runs one
area; ``slow`` marks the tests that take seconds (``make test-fast`` runs the others).
"""

from pathlib import Path

import pytest
import torch

# The suite's tensors are tiny: with several OpenMP threads on a loaded 2-core machine, thread hand-offs cost
# more than the arithmetic (steps slow down 10x and more), so tests run single-threaded.
torch.set_num_threads(1)

#: Test folders whose name is also the marker of every test in them (declared in pytest.ini).
AREAS = ("core", "ros", "tools")


def pytest_collection_modifyitems(config, items):
    for item in items:
        area = item.path.parent.name
        if area in AREAS:
            item.add_marker(getattr(pytest.mark, area))


@pytest.fixture(scope="session")
def write_depthnet_checkpoint():
    """A function writing a seeded random-weight DepthNet (the default config's encoder) checkpoint for a
    ``width`` x ``height`` network input: ``write(path, width=128, height=64, train_focal=74.2, seed=0)``."""

    def write(path, width: int = 128, height: int = 64, train_focal: float = 74.2, seed: int = 0) -> Path:
        from model_helpers import save_random_depthnet

        from fg_depth_core.config import Config

        cfg = Config()
        cfg.data.width, cfg.data.height = width, height
        return save_random_depthnet(path, cfg, train_focal=train_focal, seed=seed)

    return write
