"""Fixtures of the ROS tests."""

from pathlib import Path
from typing import Dict

import pytest
from colcon_helpers import build_workspace


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Dict[str, Path]:
    """This package colcon-built into a temporary workspace (once per test session)."""
    return build_workspace(tmp_path_factory.mktemp("colcon_ws"))
