"""Fixtures of the ROS tests."""

from pathlib import Path
from typing import Dict

import pytest
import rclpy
from colcon_helpers import build_workspace
from depth_node_helpers import make_context


@pytest.fixture
def context():
    """An rclpy context of its own in this test process's ROS domain (depth_node_helpers.DOMAIN)."""
    ctx = make_context()
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Dict[str, Path]:
    """This package colcon-built into a temporary workspace (once per test session)."""
    return build_workspace(tmp_path_factory.mktemp("colcon_ws"))
