"""Packaging invariants: package.xml and setup.py agree, dependencies are declared, the CLI entry points
resolve and ``python -m fg_depth_core --help`` lists every subcommand. Which way the imports point (no ROS in
fg_depth_core, no cycles): test/core/test_layering.py."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

import fg_depth_core
from fg_depth_core.commands import COMMAND_MODULES

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"fg_depth_core", "fg_depth_ros"}

# Every third-party module the installed packages import: (rosdep key in package.xml or None when pip-only,
# requirement name in requirements.txt or None when only ROS provides it). A new import must be added here,
# to package.xml and/or to requirements.txt (and, if pip-only, to README.md's install line).
THIRD_PARTY: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    "numpy": ("python3-numpy", "numpy"),
    "cv2": ("python3-opencv", "opencv-python-headless"),
    "yaml": ("python3-yaml", "pyyaml"),
    "tqdm": ("python3-tqdm", "tqdm"),
    "matplotlib": ("python3-matplotlib", "matplotlib"),
    "torch": (None, "torch"),
    "torchvision": (None, "torchvision"),
    "onnx": (None, "onnx"),
    "onnxruntime": (None, "onnxruntime"),
    "onnxscript": (None, "onnxscript"),
    "rosbags": (None, "rosbags"),
    "tensorboard": (None, "tensorboard"),
    "rclpy": ("rclpy", "ros-rclpy"),
    "std_msgs": ("std_msgs", "ros-std-msgs"),
    "sensor_msgs": ("sensor_msgs", "ros-sensor-msgs"),
    "stereo_msgs": ("stereo_msgs", "ros-stereo-msgs"),
    "geometry_msgs": ("geometry_msgs", "ros-geometry-msgs"),
    "diagnostic_msgs": ("diagnostic_msgs", "ros-diagnostic-msgs"),
    "rcl_interfaces": ("rcl_interfaces", "ros-rcl-interfaces"),
    "message_filters": ("message_filters", None),
    "cv_bridge": ("cv_bridge", None),
    "launch": ("launch", None),
    "launch_ros": ("launch_ros", None),
}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _imports(tree: ast.AST) -> Iterator[Tuple[str, int, bool]]:
    """(absolute top-level module, line, optional) for every import anywhere in ``tree``, lazy ones included.

    ``optional`` is True inside a ``try`` whose handlers catch ImportError or ModuleNotFoundError.
    """

    def visit(node: ast.AST, optional: bool) -> Iterator[Tuple[str, int, bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno, optional
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno, optional
        if isinstance(node, ast.Try):
            caught: Set[str] = set()
            for handler in node.handlers:
                kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                caught.update(k.id for k in kinds if isinstance(k, ast.Name))
            guarded = optional or bool(caught & _IMPORT_ERRORS)
            for child in node.body:
                yield from visit(child, guarded)
            for child in node.handlers + node.orelse + node.finalbody:
                yield from visit(child, optional)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, optional)

    yield from visit(tree, False)


def _python_files(package: str) -> List[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def _package_xml() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


_SETUP_DUMP = """
import json, setuptools
from distutils.core import run_setup
dist = run_setup("setup.py", stop_after="init")
print(json.dumps({"name": dist.get_name(), "version": dist.get_version(), "packages": dist.packages,
                  "data_files": dist.data_files, "entry_points": dist.entry_points}))
"""


@pytest.fixture(scope="module")
def setup_metadata() -> dict:
    """What setup.py hands to setuptools, evaluated by setuptools itself in the repository root."""
    done = subprocess.run([sys.executable, "-c", _SETUP_DUMP], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _requirement_names() -> Set[str]:
    names = set()
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("_", "-"))
    return names


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fg_depth_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_package_xml_is_an_ament_python_format3_manifest_with_the_library_version():
    root = _package_xml()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "fg_depth_ros"
    assert root.findtext("export/build_type") == "ament_python"
    assert root.findtext("license") == "Apache-2.0"
    assert root.find("maintainer").get("email"), "maintainer needs an email attribute"
    assert len(root.findtext("description").split()) >= 10, "package.xml needs a real description"
    assert root.findtext("version") == fg_depth_core.__version__


def test_package_xml_passes_catkin_pkg_validation_as_colcon_and_rosdep_read_it():
    from catkin_pkg.package import parse_package

    package = parse_package(str(ROOT))
    package.validate()
    assert package.get_build_type() == "ament_python"
    exec_depends = {d.name for d in package.exec_depends}
    assert {"rclpy", "sensor_msgs", "stereo_msgs", "cv_bridge", "launch_ros", "python3-numpy"} <= exec_depends
    assert {d.name for d in package.test_depends} == {"python3-pytest"}


def test_setup_py_has_the_package_name_and_the_library_version(setup_metadata):
    assert setup_metadata["name"] == "fg_depth_ros"
    assert setup_metadata["version"] == fg_depth_core.__version__


def test_setup_installs_both_libraries_with_all_subpackages_and_no_tests(setup_metadata):
    expected = sorted(
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in sorted(FIRST_PARTY)
        for init in (ROOT / package).rglob("__init__.py")
    )
    assert "fg_depth_core" in expected and "fg_depth_ros" in expected
    assert sorted(setup_metadata["packages"]) == expected
    # Repository tooling (tools/: doc generators, demo, bench helpers) is a package of the checkout only.
    assert (ROOT / "tools" / "__init__.py").is_file()
    assert not [p for p in setup_metadata["packages"] if p.split(".")[0] == "tools"]


def test_setup_installs_the_ament_index_marker_the_manifest_and_share_folders(setup_metadata):
    data_files = dict(setup_metadata["data_files"])
    assert data_files["share/ament_index/resource_index/packages"] == ["resource/fg_depth_ros"]
    assert data_files["share/fg_depth_ros"] == ["package.xml"]
    marker = ROOT / "resource" / "fg_depth_ros"
    assert marker.is_file() and marker.stat().st_size == 0
    for folder in ("launch", "config", "rviz"):
        on_disk = sorted(
            str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", "~"))
        )
        installed = sorted(src for dest, sources in data_files.items()
                           if dest.startswith(f"share/fg_depth_ros/{folder}") for src in sources)
        assert installed == on_disk, folder
        for dest, sources in data_files.items():
            for src in sources:
                if src.startswith(folder + "/"):
                    assert dest == str(Path("share/fg_depth_ros") / Path(src).parent)


def test_import_collector_sees_lazy_and_optional_imports():
    source = (
        "import os.path\nfrom sensor_msgs.msg import Image\nfrom . import sibling\n"
        "def f():\n    import rclpy\n"
        "try:\n    import tensorrt\nexcept (ImportError, OSError):\n    tensorrt = None\n"
    )
    assert sorted(_imports(ast.parse(source))) == [
        ("os", 1, False), ("rclpy", 5, False), ("sensor_msgs", 2, False), ("tensorrt", 7, True)
    ]


def test_every_third_party_import_is_declared_for_rosdep_or_pip():
    depends = {e.text.strip() for e in _package_xml() if e.tag in ("depend", "exec_depend")}
    requirements = _requirement_names()
    problems = []
    for package in sorted(FIRST_PARTY):
        for path in _python_files(package):
            for module, line, optional in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if module in FIRST_PARTY or module in sys.stdlib_module_names or optional:
                    continue
                where = f"{path.relative_to(ROOT)}:{line} imports {module}"
                if module not in THIRD_PARTY:
                    problems.append(f"{where}: undeclared (add it to THIRD_PARTY, package.xml/requirements)")
                    continue
                rosdep_key, pip_name = THIRD_PARTY[module]
                if rosdep_key is not None and rosdep_key not in depends:
                    problems.append(f"{where}: package.xml lacks <exec_depend>{rosdep_key}</exec_depend>")
                if rosdep_key is None and pip_name not in requirements:
                    problems.append(f"{where}: requirements.txt lacks {pip_name}")
    assert not problems, "\n".join(problems)


def test_console_scripts_resolve_to_callables(setup_metadata):
    scripts = setup_metadata["entry_points"]["console_scripts"]
    names = [spec.split("=")[0].strip() for spec in scripts]
    assert "fg-depth" in names and len(set(names)) == len(names)
    for spec in scripts:
        name, target = (part.strip() for part in spec.split("="))
        module_name, _, attr = target.partition(":")
        assert attr, f"console script {name}: expected module:function, got {target}"
        function = getattr(importlib.import_module(module_name), attr)
        assert callable(function), f"console script {name}: {target} is not callable"


def _registered_commands() -> List[str]:
    """The names each module in COMMAND_MODULES adds to a fresh subparsers object."""
    sub = argparse.ArgumentParser().add_subparsers()
    for name in COMMAND_MODULES:
        before = set(sub.choices)
        importlib.import_module(f"fg_depth_core.commands.{name}").register(sub)
        assert set(sub.choices) - before, f"fg_depth_core.commands.{name}.register added no subcommand"
    return list(sub.choices)


def test_module_help_lists_every_subcommand():
    commands = _registered_commands()
    done = _run_cli("--help")
    assert done.returncode == 0, done.stderr
    listed = [c for c in commands if re.search(rf"^\s+{re.escape(c)}\s", done.stdout, re.MULTILINE)]
    assert listed == commands, done.stdout


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_each_subcommand_help_exits_zero(module):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(f"fg_depth_core.commands.{module}").register(sub)
    for command in sub.choices:
        done = _run_cli(command, "--help")
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout and command in done.stdout


def test_version_flag_prints_the_library_version():
    done = _run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"fg-depth {fg_depth_core.__version__}"


def test_building_the_cli_parser_does_not_import_torch():
    # The commands package promises lazy heavy imports so that `fg-depth --help` stays fast.
    code = "import sys; from fg_depth_core import cli; cli.build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
