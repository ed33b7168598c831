"""Building this package with colcon into a temporary workspace, the way a ROS user does, for the tests of
the install space and of the ROS 2 command-line tools (test/ros/conftest.py's ``workspace`` fixture)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "fg_depth_ros"
# Never copied: environments, VCS data and products of earlier builds or runs.
SKIP_TOP = {".venv", ".git", "build", "install", "log", "outputs", "runs", ".pytest_cache", ".ruff_cache"}
SKIP_ANY = {"__pycache__"}
TIMEOUT_S = 240


def _colcon() -> List[str]:
    # `python -m colcon` with this interpreter: the installed scripts' shebang is then this venv's python.
    assert importlib.util.find_spec("colcon") is not None, "colcon is missing: run `make setup` (colcon-ros)"
    return [sys.executable, "-m", "colcon"]


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


def sourced_environment(install_base: Path, env: Dict[str, str]) -> Dict[str, str]:
    """The environment after `. install/setup.sh` (what a user's shell gets from sourcing the workspace)."""
    script = '. "$1/setup.sh" >/dev/null && env -0'
    done = subprocess.run(["sh", "-c", script, "sh", str(install_base)], env=env, capture_output=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr.decode()
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)


def build_workspace(base: Path) -> Dict[str, Path]:
    """Copy the source into ``base``/src, colcon-build it there; paths and the build's environment."""
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


