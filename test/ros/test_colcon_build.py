"""colcon builds the package from a copy of the source, and the install space works on its own.

This is the path a ROS user takes (`colcon build`, source the workspace, `ros2 run fg_depth_ros fg-depth`),
minus ROS itself: the console script is found under lib/fg_depth_ros the way `ros2 run` looks it up and must
import fg_depth_core from the install space, not from the source tree.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from colcon_helpers import PACKAGE, TIMEOUT_S, sourced_environment

import fg_depth_core
from fg_depth_core.commands import COMMAND_MODULES

#: Builds and runs whole pipelines (seconds each): `make test-fast` leaves this module out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _command_names() -> List[str]:
    sub = argparse.ArgumentParser().add_subparsers()
    for name in COMMAND_MODULES:
        importlib.import_module(f"fg_depth_core.commands.{name}").register(sub)
    assert len(sub.choices) >= len(COMMAND_MODULES)
    return list(sub.choices)


def test_install_space_has_the_manifest_the_index_marker_and_share_files(workspace):
    prefix = workspace["install"] / PACKAGE
    assert (prefix / "share" / PACKAGE / "package.xml").read_bytes() == (ROOT / "package.xml").read_bytes()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    for folder in ("launch", "config", "rviz"):
        source = workspace["src"] / folder
        for path in sorted(source.rglob("*")) if source.is_dir() else []:
            if path.is_file():
                installed = prefix / "share" / PACKAGE / path.relative_to(workspace["src"])
                assert installed.read_bytes() == path.read_bytes(), installed


def test_install_space_holds_every_module_of_both_libraries(workspace):
    env = sourced_environment(workspace["install"], workspace["env"])
    site = [Path(p) for p in env["PYTHONPATH"].split(os.pathsep) if str(workspace["install"]) in p]
    assert len(site) == 1, env["PYTHONPATH"]
    for package in ("fg_depth_core", "fg_depth_ros"):
        expected = sorted(p.relative_to(workspace["src"]) for p in (workspace["src"] / package).rglob("*.py"))
        installed = sorted(p.relative_to(site[0]) for p in (site[0] / package).rglob("*.py"))
        assert installed == expected, package


def test_sourced_install_imports_fg_depth_core_from_the_install_space(workspace, tmp_path):
    env = sourced_environment(workspace["install"], workspace["env"])
    code = "import fg_depth_core, fg_depth_ros; print(fg_depth_core.__file__); print(fg_depth_ros.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.split():
        assert Path(line).resolve().is_relative_to(workspace["install"].resolve()), line


def test_installed_console_script_runs_where_ros2_run_looks(workspace, tmp_path):
    env = sourced_environment(workspace["install"], workspace["env"])
    # `ros2 run PKG EXE` runs <prefix>/lib/PKG/EXE for the AMENT_PREFIX_PATH entry that has PKG in its index.
    prefixes = [Path(p) for p in env["AMENT_PREFIX_PATH"].split(os.pathsep) if p]
    owners = [p for p in prefixes if (p / "share/ament_index/resource_index/packages" / PACKAGE).is_file()]
    assert owners and owners[0] == workspace["install"] / PACKAGE, env["AMENT_PREFIX_PATH"]
    script = owners[0] / "lib" / PACKAGE / "fg-depth"
    assert os.access(script, os.X_OK), script

    done = subprocess.run([str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    for command in _command_names():
        assert re.search(rf"^\s+{re.escape(command)}\s", done.stdout, re.MULTILINE), done.stdout

    done = subprocess.run([str(script), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0 and done.stdout.strip() == f"fg-depth {fg_depth_core.__version__}"


def test_installed_depth_node_exits_1_with_a_clear_message_for_a_missing_model(workspace, tmp_path):
    env = sourced_environment(workspace["install"], workspace["env"])
    env["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
    script = workspace["install"] / PACKAGE / "lib" / PACKAGE / "depth_node"
    assert os.access(script, os.X_OK), script
    missing = tmp_path / "missing.onnx"
    done = subprocess.run([str(script), "--ros-args", "-p", f"model:={missing}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 1, done.stderr
    assert f"[depth_node] error: cannot use the model (parameter 'model' = {missing})" in done.stderr
    assert "model file not found" in done.stderr and "Traceback" not in done.stderr
