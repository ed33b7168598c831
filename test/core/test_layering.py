"""Layering of the runtime packages, read from the source (every import: module level, inside functions, under
TYPE_CHECKING): no import cycle among the modules of fg_depth_core and fg_depth_ros; fg_depth_core never
imports ROS, the ROS adapter or the repository's tooling; no runtime module imports the tooling; the inference
backends reach neither the exporter nor training code.

An import names one module exactly: ``from a.b import c`` is an edge to a.b.c when that is a module, else to
a.b; the parent packages Python also runs on the way are not edges. So a package's __init__ importing its
submodules is no cycle unless one of them imports the package itself back. Which third-party modules the
packages may import, and their declaration for rosdep and pip, is test/ros/test_package.py's business.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("fg_depth_core", "fg_depth_ros")
#: The top-level folder of repository tooling (demo, doc generators, bench helpers): never installed.
TOOLS = "tools"
# Top-level modules that only exist in a ROS installation; fg_depth_core must stay usable without them.
ROS_ONLY_MODULES = {
    "rclpy", "rcl_interfaces", "message_filters", "cv_bridge", "launch", "launch_ros", "ament_index_python",
    "rosidl_runtime_py", "rosbag2_py", "tf2_ros", "image_transport", "fg_depth_ros",
}  # fmt: skip
ROS_INTERFACE_SUFFIXES = ("_msgs", "_srvs", "_interfaces")
BACKENDS = "fg_depth_core.deploy.backends"
#: What an inference backend must not reach, directly or through other modules.
NOT_FOR_BACKENDS = ("fg_depth_core.deploy.export", "fg_depth_core.train")


#: Module -> the modules it imports.
Graph = Dict[str, Set[str]]


@dataclass(frozen=True)
class Import:
    """``source`` imports ``target`` at ``where`` (path:line); ``internal``: target is a module of the
    packages read (then its exact name), else the dotted name as written."""

    source: str
    target: str
    where: str
    internal: bool


def module_names(root: Path, packages: Iterable[str]) -> Dict[str, Path]:
    """Dotted module name -> file for every .py under ``root``/<package> (a package is its __init__)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _written_imports(
    tree: ast.AST, module: str, is_package: bool
) -> Iterator[Tuple[str, Optional[str], int]]:
    """(imported module, name imported from it or None, line) for every import statement anywhere in
    ``tree``; relative imports are made absolute against ``module``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield base, alias.name, node.lineno


def _resolve(name: str, known: Set[str]) -> Optional[str]:
    """The longest prefix of ``name`` that is a known module (None when there is none)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def read_imports(root: Path, packages: Iterable[str]) -> List[Import]:
    """Every import of every module of ``packages`` under ``root``."""
    modules = module_names(root, packages)
    known = set(modules)
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for base, name, line in _written_imports(tree, module, path.name == "__init__.py"):
            where = f"{path.relative_to(root)}:{line}"
            submodule = f"{base}.{name}" if name and name != "*" else None
            target = submodule if submodule in known else _resolve(base, known)
            if target is None:
                found.append(Import(module, base, where, internal=False))
            else:
                found.append(Import(module, target, where, internal=True))
    return found


def _strongly_connected(graph: Graph) -> List[List[str]]:
    """Tarjan's strongly connected components of ``graph`` (node -> successors)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _graph(imports: Iterable[Import]) -> Tuple[Graph, Dict[Tuple[str, str], str]]:
    """The internal import graph (module -> modules it imports) and where each edge is first made."""
    graph: Graph = {}
    lines: Dict[Tuple[str, str], str] = {}
    for imp in imports:
        if imp.internal:
            graph.setdefault(imp.source, set()).add(imp.target)
            lines.setdefault((imp.source, imp.target), imp.where)
    return graph, lines


def _shortest(
    graph: Graph, start: str, is_goal: Callable[[str], bool], within: Optional[Set[str]] = None
) -> Optional[List[str]]:
    """A shortest chain start -> ... -> goal of at least one edge (breadth first, only through ``within``
    when given); a goal equal to ``start`` gives a cycle."""
    previous: Dict[str, Optional[str]] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if within is not None and nxt not in within:
                    continue
                if is_goal(nxt):
                    chain = [nxt, node]
                    while previous[chain[-1]] is not None:
                        chain.append(previous[chain[-1]])
                    return chain[::-1]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return None


def _describe(chain: List[str], lines: Dict[Tuple[str, str], str]) -> str:
    edges = ", ".join(f"{lines[a, b]} imports {b}" for a, b in zip(chain, chain[1:]))
    return f"{' -> '.join(chain)} ({edges})"


def import_cycles(imports: Iterable[Import]) -> List[str]:
    """One line per import cycle among internal modules: the modules around it, each edge with the line that
    makes it, and the whole group of modules that import each other (one cycle shown per group)."""
    graph, lines = _graph(imports)
    found = []
    for component in _strongly_connected(graph):
        head = component[0]
        if len(component) == 1 and head not in graph.get(head, ()):
            continue
        cycle = _shortest(graph, head, head.__eq__, set(component))
        assert cycle is not None
        found.append(f"{_describe(cycle, lines)}; the group: {', '.join(component)}")
    return found


def reaching(imports: Iterable[Import], sources: Iterable[str], forbidden: Tuple[str, ...]) -> List[str]:
    """For each module of ``sources`` that reaches a forbidden module (one named, or inside a package named)
    through internal imports: a shortest chain of imports that gets there."""
    graph, lines = _graph(imports)

    def bad(module: str) -> bool:
        return any(module == f or module.startswith(f + ".") for f in forbidden)

    chains = (_shortest(graph, source, bad) for source in sorted(set(sources)))
    return [_describe(chain, lines) for chain in chains if chain]


@pytest.fixture(scope="module")
def runtime_imports() -> List[Import]:
    imports = read_imports(ROOT, RUNTIME_PACKAGES)
    assert len({i.source for i in imports}) > 50, "the runtime packages were not found"
    return imports


# -------------------------------------------------------------------------------------- the rules


def test_no_import_cycle_among_runtime_modules(runtime_imports):
    cycles = import_cycles(runtime_imports)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_fg_depth_core_never_imports_ros_the_ros_adapter_or_tools(runtime_imports):
    offenders = []
    for imp in runtime_imports:
        top = imp.target.split(".")[0]
        if imp.source.split(".")[0] == "fg_depth_core" and (
            top in ROS_ONLY_MODULES or top.endswith(ROS_INTERFACE_SUFFIXES) or top == TOOLS
        ):
            offenders.append(f"{imp.where} imports {imp.target}")
    assert not offenders, "fg_depth_core must run without ROS and without the repository:\n" + "\n".join(
        offenders
    )


def test_no_runtime_module_imports_the_repository_tooling(runtime_imports):
    offenders = [
        f"{imp.where} imports {imp.target}" for imp in runtime_imports if imp.target.split(".")[0] == TOOLS
    ]
    assert not offenders, f"{TOOLS}/ is not installed; runtime code cannot import it:\n" + "\n".join(
        offenders
    )


def test_inference_backends_reach_neither_the_exporter_nor_training(runtime_imports):
    backends = [
        i.source for i in runtime_imports if i.source == BACKENDS or i.source.startswith(BACKENDS + ".")
    ]
    assert f"{BACKENDS}.onnxruntime_backend" in backends
    chains = reaching(runtime_imports, backends, NOT_FOR_BACKENDS)
    assert not chains, "backends must only run models:\n" + "\n".join(chains)


# ---------------------------------------------------------------------- the checks can fail


def _package(root: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_reader_resolves_lazy_relative_and_from_imports_to_exact_modules(tmp_path):
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub import thing\n",
            "pkg/sub/__init__.py": "from . import leaf\nfrom .leaf import VALUE\n",
            "pkg/sub/leaf.py": "import numpy as np\nVALUE = 1\n",
            "pkg/sub/user.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..sub import leaf\n"
                "def f():\n    from pkg import sub\n    import pkg.sub.leaf\n    from .. import other\n"
            ),
            "pkg/other.py": "from sensor_msgs.msg import Image\n",
        },
    )
    found = {(i.source, i.target, i.internal) for i in read_imports(tmp_path, ["pkg"])}
    assert found == {
        ("pkg", "pkg.sub", True),  # `thing` is not a module: the edge goes to the package that holds it
        ("pkg.sub", "pkg.sub.leaf", True),
        ("pkg.sub.leaf", "numpy", False),
        ("pkg.sub.user", "typing", False),
        ("pkg.sub.user", "pkg.sub.leaf", True),
        ("pkg.sub.user", "pkg.sub", True),
        ("pkg.sub.user", "pkg.other", True),
        ("pkg.other", "sensor_msgs.msg", False),
    }


def test_a_cycle_through_a_lazy_import_is_found_and_named(tmp_path):
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import g\n",
            "pkg/b.py": "def g():\n    from pkg.c import h\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "import pkg.a\n",
        },
    )
    cycles = import_cycles(read_imports(tmp_path, ["pkg"]))
    assert cycles == [
        "pkg.a -> pkg.b -> pkg.c -> pkg.a (pkg/a.py:1 imports pkg.b, pkg/b.py:2 imports pkg.c, "
        "pkg/c.py:1 imports pkg.a); the group: pkg.a, pkg.b, pkg.c"
    ]


def test_an_init_importing_its_submodules_is_a_cycle_only_if_one_imports_the_package_back(tmp_path):
    files = {
        "pkg/__init__.py": "from pkg.base import Base\n\ndef make():\n    from pkg.impl import Impl\n",
        "pkg/base.py": "class Base: ...\n",
        "pkg/impl.py": "from pkg.base import Base\n",
    }
    assert import_cycles(read_imports(_package(tmp_path / "one", files), ["pkg"])) == []
    files["pkg/impl.py"] = "from pkg import Base\n"
    cycles = import_cycles(read_imports(_package(tmp_path / "two", files), ["pkg"]))
    assert len(cycles) == 1 and cycles[0].startswith("pkg -> pkg.impl -> pkg (")


def test_reaching_follows_chains_into_forbidden_packages(tmp_path):
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/run/__init__.py": "",
            "pkg/run/fast.py": "from pkg import shared\n",
            "pkg/run/clean.py": "import numpy\n",
            "pkg/shared.py": "def f():\n    from pkg.train.loop import step\n",
            "pkg/train/__init__.py": "",
            "pkg/train/loop.py": "",
        },
    )
    imports = read_imports(tmp_path, ["pkg"])
    assert reaching(imports, ["pkg.run.fast", "pkg.run.clean"], ("pkg.train",)) == [
        "pkg.run.fast -> pkg.shared -> pkg.train.loop (pkg/run/fast.py:1 imports pkg.shared, "
        "pkg/shared.py:2 imports pkg.train.loop)"
    ]
