"""tools/ is repository tooling: the demo reaches the ROS adapter through one module, ``python -m tools.demo``
runs from the repository root, and a missing checkout file is named. (That the installed packages never
import tools/ is test/core/test_layering.py's.)"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from tools.checkout import ROOT, CheckoutError, require

#: The one module of tools/demo that imports fg_depth_ros.
ROS_ADAPTER = ROOT / "tools" / "demo" / "ros_adapter.py"


def _imported(path: Path) -> Iterator[Tuple[str, int]]:
    """(absolute module, line) of every import in ``path``, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def _offenders(folders, top_level: str, allowed=()) -> list:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in allowed
        for module, line in _imported(path)
        if module.split(".")[0] == top_level
    ]


def test_the_import_reader_sees_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from tools.demo import cli\n")
    assert sorted(_imported(source)) == [("os", 1), ("tools.demo", 4)]


def test_the_demo_imports_the_ros_adapter_package_in_one_module_only():
    assert any(module.startswith("fg_depth_ros.") for module, _ in _imported(ROS_ADAPTER))
    offenders = _offenders(("tools/demo",), "fg_depth_ros", allowed=(ROS_ADAPTER,))
    assert not offenders, "import fg_depth_ros in tools/demo/ros_adapter.py only:\n" + "\n".join(offenders)


def test_python_m_tools_demo_runs_from_the_repository_root(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--out", str(out), "--quick", "--threads", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "[demo] error: --threads: expected >= 1, got 0" in done.stderr
    assert not out.exists()


def test_a_missing_checkout_file_is_named_with_what_needs_it():
    assert require(ROOT / "config" / "demo.yaml", "the demo") == ROOT / "config" / "demo.yaml"
    missing = ROOT / "config" / "no_such.yaml"
    with pytest.raises(CheckoutError, match=r"config/no_such.yaml: not found: the demo runs from a source"):
        require(missing, "the demo")
