"""Packaging invariants: package.xml and setup.py agree, dependencies match the imports both ways (exec and
test), rviz2 stays optional, the LICENSE is the declared one, README's pip line keeps numpy below 2, the CLI
entry points resolve and ``python -m fg_depth_core --help`` lists every subcommand. Which way the imports
point (no ROS in fg_depth_core, no cycles): test/core/test_layering.py."""

from __future__ import annotations

import argparse
import ast
import configparser
import hashlib
import importlib
import json
import re
import shlex
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
    "lifecycle_msgs": ("lifecycle_msgs", "ros-lifecycle-msgs"),
    "builtin_interfaces": ("builtin_interfaces", "ros-builtin-interfaces"),
    "rosgraph_msgs": ("rosgraph_msgs", "ros-rosgraph-msgs"),
    "ament_index_python": ("ament_index_python", "ros-ament-index-python"),
    "message_filters": ("message_filters", None),
    "cv_bridge": ("cv_bridge", None),
    "launch": ("launch", None),
    "launch_ros": ("launch_ros", None),
}
# Installed Python that imports things: both libraries and the launch files (share/fg_depth_ros/launch).
INSTALLED_SOURCES = ("fg_depth_core", "fg_depth_ros", "launch")
# exec_depends that no installed file imports, each with what needs it at run time.
NEEDED_WITHOUT_IMPORT: Dict[str, str] = {
    "ros2launch": "`ros2 launch fg_depth_ros depth.launch.py` (the launch file's command)",
}
# pip-only libraries the installed code needs without importing them by name: {pip name: who loads it}.
PIP_WITHOUT_IMPORT: Dict[str, str] = {
    "tensorboard": "torch.utils.tensorboard (training logs, fg_depth_core/train/trainer.py)",
    "onnxscript": "torch.onnx.export(dynamo=True) (fg_depth_core/deploy/export.py)",
}
# Third-party modules only the tests import: (rosdep key for <test_depend>, name in requirements-dev.txt).
TEST_THIRD_PARTY: Dict[str, Tuple[str, str]] = {
    "pytest": ("python3-pytest", "pytest"),
    "catkin_pkg": ("python3-catkin-pkg-modules", "catkin-pkg"),
}
# pytest.ini options that need a plugin: (rosdep key for <test_depend>, name in requirements-dev.txt). Without
# the plugin, --strict-config stops pytest (and `colcon test`) with "Unknown config option: timeout".
PYTEST_INI_PLUGINS: Dict[str, Tuple[str, str]] = {
    "timeout": ("python3-pytest-timeout", "pytest-timeout"),
}
# SHA-256 of the Apache License 2.0 as apache.org publishes it (www.apache.org/licenses/LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
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
    files = sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)
    assert files, f"no Python files under {package}/"
    return files


def _third_party_imports(folders, optional_too: bool = False) -> Iterator[Tuple[str, str]]:
    """(module, "path:line imports module") for each import of a module that is neither ours nor the standard
    library, in every Python file under ``folders``; imports guarded by ``except ImportError`` only with
    ``optional_too``."""
    for folder in folders:
        for path in _python_files(folder):
            for module, line, optional in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                ours_or_stdlib = module in FIRST_PARTY or module in sys.stdlib_module_names
                if ours_or_stdlib or (optional and not optional_too):
                    continue
                yield module, f"{path.relative_to(ROOT)}:{line} imports {module}"


def _package_xml() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


def _depends(*tags: str) -> Set[str]:
    return {e.text.strip() for e in _package_xml() if e.tag in tags}


_SETUP_DUMP = """
import json, setuptools
from distutils.core import run_setup
dist = run_setup("setup.py", stop_after="init")
print(json.dumps({"name": dist.get_name(), "version": dist.get_version(), "packages": dist.packages,
                  "data_files": dist.data_files, "entry_points": dist.entry_points,
                  "license": dist.get_license()}))
"""


@pytest.fixture(scope="module")
def setup_metadata() -> dict:
    """What setup.py hands to setuptools, evaluated by setuptools itself in the repository root."""
    done = subprocess.run([sys.executable, "-c", _SETUP_DUMP], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[; ]", spec.strip())[0].lower().replace("_", "-")


def _requirement_names(name: str = "requirements.txt") -> Set[str]:
    """Requirement names of a requirements file, following ``-r`` includes."""
    names = set()
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= _requirement_names(line[3:].strip())
        elif line and not line.startswith("-"):
            names.add(_requirement_name(line))
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
    assert {"rclpy", "sensor_msgs", "stereo_msgs", "message_filters", "launch_ros", "python3-numpy"} \
        <= exec_depends
    # Nothing imports cv_bridge (the node converts images itself, README.md "Build"); rviz2 is optional.
    assert not {"cv_bridge", "rviz2"} & exec_depends
    assert {d.name for d in package.test_depends} == {
        "python3-pytest", "python3-pytest-timeout", "python3-catkin-pkg-modules", "rosgraph_msgs"
    }
    assert [(str(lic), lic.file) for lic in package.licenses] == [("Apache-2.0", "LICENSE")]


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
    depends = _depends("depend", "exec_depend")
    requirements = _requirement_names()
    problems = []
    for module, where in _third_party_imports(INSTALLED_SOURCES):
        if module not in THIRD_PARTY:
            problems.append(f"{where}: undeclared (add it to THIRD_PARTY, package.xml/requirements)")
            continue
        rosdep_key, pip_name = THIRD_PARTY[module]
        if rosdep_key is not None and rosdep_key not in depends:
            problems.append(f"{where}: package.xml lacks <exec_depend>{rosdep_key}</exec_depend>")
        if rosdep_key is None and pip_name not in requirements:
            problems.append(f"{where}: requirements.txt lacks {pip_name}")
    assert not problems, "\n".join(problems)


def test_every_exec_depend_is_imported_or_needed_at_run_time():
    # An optional import counts: message_filters is used where installed (fg_depth_ros/sync.py).
    imported = {m for m, _ in _third_party_imports(INSTALLED_SOURCES, optional_too=True)}
    imported_keys = {THIRD_PARTY[m][0] for m in imported & set(THIRD_PARTY)}
    assert {"rclpy", "sensor_msgs", "message_filters", "launch_ros", "python3-numpy"} <= imported_keys
    unused = sorted(_depends("depend", "exec_depend") - imported_keys - set(NEEDED_WITHOUT_IMPORT))
    assert not unused, (
        f"package.xml declares {unused}, which nothing installed imports (fg_depth_core, fg_depth_ros, "
        "launch/): drop them, or add them to NEEDED_WITHOUT_IMPORT with what needs them"
    )


def test_rviz2_is_not_a_dependency_of_any_kind():
    # rviz2 pulls Qt onto headless robots: `rviz:=true` is optional and the README says how to install it.
    tags = ("depend", "exec_depend", "build_depend", "build_export_depend", "test_depend")
    assert "rviz2" not in _depends(*tags)
    assert "sudo apt install ros-$ROS_DISTRO-rviz2" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_test_depends_cover_what_the_tests_import_and_pytest_ini_needs():
    test_depends = _depends("test_depend")
    run_depends = _depends("depend", "exec_depend")
    dev_requirements = _requirement_names("requirements-dev.txt")
    # The repository folders the tests import from the root (pytest.ini puts it on the path): not installed.
    local = {p.stem for p in (ROOT / "test").rglob("*.py")} | {"tools", "bench"}
    problems, needed = [], set()
    for module, where in _third_party_imports(["test"]):
        if module in local:
            continue
        if module in TEST_THIRD_PARTY:
            rosdep_key, pip_name = TEST_THIRD_PARTY[module]
            needed.add(rosdep_key)
            if rosdep_key not in test_depends:
                problems.append(f"{where}: package.xml lacks <test_depend>{rosdep_key}</test_depend>")
            if pip_name not in dev_requirements:
                problems.append(f"{where}: requirements-dev.txt lacks {pip_name}")
        elif module in THIRD_PARTY:
            rosdep_key, pip_name = THIRD_PARTY[module]
            if rosdep_key in test_depends:
                needed.add(rosdep_key)  # a ROS package only the tests use (rosgraph_msgs: /clock)
            if rosdep_key is not None and rosdep_key not in run_depends | test_depends:
                problems.append(f"{where}: package.xml lacks <test_depend>{rosdep_key}</test_depend>")
            if rosdep_key is None and pip_name not in dev_requirements:
                problems.append(f"{where}: requirements(-dev).txt lacks {pip_name}")
        else:
            problems.append(f"{where}: undeclared (add it to TEST_THIRD_PARTY and package.xml)")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "pytest.ini", encoding="utf-8")
    assert ini.has_option("pytest", "timeout"), "pytest.ini no longer sets timeout: update PYTEST_INI_PLUGINS"
    for option, (rosdep_key, pip_name) in PYTEST_INI_PLUGINS.items():
        if ini.has_option("pytest", option):
            needed.add(rosdep_key)
            if rosdep_key not in test_depends:
                problems.append(f"pytest.ini sets {option}: package.xml lacks <test_depend>{rosdep_key}<...>")
            if pip_name not in dev_requirements:
                problems.append(f"pytest.ini sets {option}: requirements-dev.txt lacks {pip_name}")
    problems += [f"<test_depend>{key}</test_depend>: no test imports it, pytest.ini needs no plugin from it"
                 for key in sorted(test_depends - needed)]
    assert not problems, "\n".join(problems)


def test_license_file_is_the_apache_2_text_the_manifest_and_setup_py_declare(setup_metadata):
    license_element = _package_xml().find("license")
    assert license_element.text.strip() == "Apache-2.0" == setup_metadata["license"]
    path = ROOT / license_element.get("file")
    assert path.name == "LICENSE" and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # Verbatim: a legal text, byte for byte as published.
    assert hashlib.sha256(path.read_bytes()).hexdigest() == APACHE_2_SHA256


def _readme_pip_installs() -> List[List[str]]:
    """The ``pip install`` commands in README.md's code blocks, as argument lists (comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            try:
                argv = shlex.split(line, comments=True)
            except ValueError:
                continue
            if argv[:2] == ["pip", "install"]:
                found.append(argv[2:])
    return found


def _numpy_below_2(args: List[str]) -> bool:
    """True if a ``numpy`` requirement among ``args`` is bounded by < 2 (``numpy<2``, ``numpy<2.0``)."""
    specs = [a for a in args if _requirement_name(a) == "numpy"]
    clauses = [c.strip() for spec in specs for c in spec[len("numpy"):].split(",")]
    return any(re.fullmatch(r"<\s*2(\.0)*", c) for c in clauses)


def test_readme_pip_line_installs_every_pip_only_dependency_with_numpy_below_2():
    installs = [args for args in _readme_pip_installs() if "torch" in {_requirement_name(a) for a in args}]
    assert len(installs) == 1, f"expected one `pip install ... torch ...` line in README.md, got {installs}"
    args = installs[0]
    listed = {_requirement_name(a) for a in args if not a.startswith("-")}
    pip_only = {THIRD_PARTY[m][1] for m, _ in _third_party_imports(INSTALLED_SOURCES, optional_too=True)
                if m in THIRD_PARTY and THIRD_PARTY[m][0] is None and THIRD_PARTY[m][1] is not None}
    pip_only |= set(PIP_WITHOUT_IMPORT)
    assert {"torch", "onnxruntime", "tensorboard", "onnxscript"} <= pip_only
    assert not pip_only - listed, f"README.md's pip line lacks {sorted(pip_only - listed)}"
    assert set(PIP_WITHOUT_IMPORT) <= _requirement_names()
    # Apt's OpenCV and cv_bridge on Humble, Jazzy, Kilted and JetPack 6 are built against NumPy 1.x.
    assert _numpy_below_2(args), f"README.md's pip line must keep numpy below 2: {args}"


def test_numpy_bound_check_tells_bounds_apart():
    assert _numpy_below_2(['numpy<2', "torch"]) and _numpy_below_2(["numpy>=1.23,<2.0"])
    assert not _numpy_below_2(["numpy"]) and not _numpy_below_2(["numpy<2.1"])
    assert not _numpy_below_2(["numpy>=2"]) and not _numpy_below_2(["torch<2"])


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
