"""colcon builds the package from a copy of the source, and the install space works on its own.

This is the path a ROS user takes (`colcon build`, source the workspace, `ros2 run fg_depth_ros fg-depth`),
minus ROS itself: the console script is found under lib/fg_depth_ros the way `ros2 run` looks it up and must
import fg_depth_core from the install space, not from the source tree.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

import fg_depth_core
from fg_depth_core.commands import COMMAND_MODULES

#: Builds and runs whole pipelines (seconds each): `make test-fast` leaves this module out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "fg_depth_ros"
# Never copied: environments, VCS data and products of earlier builds or runs.
SKIP_TOP = {".venv", ".git", "build", "install", "log", "outputs", "runs", ".pytest_cache", ".ruff_cache"}
SKIP_ANY = {"__pycache__"}
TIMEOUT_S = 240


def _colcon() -> List[str]:
    # `python -m colcon` with this interpreter: the installed scripts' shebang is then this venv's python.
    assert importlib.util.find_spec("colcon") is not None, "colcon is missing: run `make setup` (colcon-ros)"
    return [sys.executable, "-m", "colcon"]


def _command_names() -> List[str]:
    sub = argparse.ArgumentParser().add_subparsers()
    for name in COMMAND_MODULES:
        importlib.import_module(f"fg_depth_core.commands.{name}").register(sub)
    assert len(sub.choices) >= len(COMMAND_MODULES)
    return list(sub.choices)


def _source_files() -> List[Path]:
    """The package's source files: git's tracked and unignored files, or a filtered walk without git."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        done = subprocess.run(listing, cwd=ROOT, capture_output=True, timeout=TIMEOUT_S)
        if done.returncode == 0:
            names = [Path(n) for n in done.stdout.decode().split("\0") if n]
            return [n for n in names if (ROOT / n).is_file() and n.parts[0] not in SKIP_TOP]
    found = []
    for root, dirs, files in os.walk(ROOT):
        rel = Path(root).relative_to(ROOT)
        dirs[:] = [d for d in dirs if not (rel == Path(".") and d in SKIP_TOP) and d not in SKIP_ANY
                   and not d.endswith(".egg-info")]
        found.extend(rel / f for f in files if not f.endswith(".pyc"))
    return found


def _copy_source(dest: Path) -> None:
    files = _source_files()
    assert Path("package.xml") in files and Path("setup.py") in files
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)


def _sourced_environment(install_base: Path, env: Dict[str, str]) -> Dict[str, str]:
    """The environment after `. install/setup.sh` (what a user's shell gets from sourcing the workspace)."""
    script = '. "$1/setup.sh" >/dev/null && env -0'
    done = subprocess.run(["sh", "-c", script, "sh", str(install_base)], env=env, capture_output=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr.decode()
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Dict[str, Path]:
    base = tmp_path_factory.mktemp("colcon_ws")
    src = base / "src" / PACKAGE
    _copy_source(src)
    env = dict(os.environ)
    # A private colcon home: no user defaults or mixins. No stale overlay of this package from the shell.
    env["COLCON_HOME"] = str(base / "colcon_home")
    env.pop("PYTHONPATH", None)
    # The copy is the only package under src/: colcon must see it as a ROS ament_python package.
    listed = subprocess.run(_colcon() + ["--log-base", os.devnull, "list", "--base-paths", str(base / "src")],
                            cwd=base, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [PACKAGE, str(src), "(ros.ament_python)"], listed.stdout
    cmd = _colcon() + [
        "--log-base", str(base / "log"),
        "build",
        "--base-paths", str(base / "src"),
        "--build-base", str(base / "build"),
        "--install-base", str(base / "install"),
    ]
    done = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"colcon build failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    return {"base": base, "src": src, "install": base / "install", "env": env}


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
    env = _sourced_environment(workspace["install"], workspace["env"])
    site = [Path(p) for p in env["PYTHONPATH"].split(os.pathsep) if str(workspace["install"]) in p]
    assert len(site) == 1, env["PYTHONPATH"]
    for package in ("fg_depth_core", "fg_depth_ros"):
        expected = sorted(p.relative_to(workspace["src"]) for p in (workspace["src"] / package).rglob("*.py"))
        installed = sorted(p.relative_to(site[0]) for p in (site[0] / package).rglob("*.py"))
        assert installed == expected, package


def test_sourced_install_imports_fg_depth_core_from_the_install_space(workspace, tmp_path):
    env = _sourced_environment(workspace["install"], workspace["env"])
    code = "import fg_depth_core, fg_depth_ros; print(fg_depth_core.__file__); print(fg_depth_ros.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.split():
        assert Path(line).resolve().is_relative_to(workspace["install"].resolve()), line


def test_installed_console_script_runs_where_ros2_run_looks(workspace, tmp_path):
    env = _sourced_environment(workspace["install"], workspace["env"])
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
    env = _sourced_environment(workspace["install"], workspace["env"])
    env["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
    script = workspace["install"] / PACKAGE / "lib" / PACKAGE / "depth_node"
    assert os.access(script, os.X_OK), script
    missing = tmp_path / "missing.onnx"
    done = subprocess.run([str(script), "--ros-args", "-p", f"model:={missing}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 1, done.stderr
    assert f"[depth_node] error: cannot use the model (parameter 'model' = {missing})" in done.stderr
    assert "model file not found" in done.stderr and "Traceback" not in done.stderr
