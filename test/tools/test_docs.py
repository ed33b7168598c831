"""The documentation agrees with the code.

- docs/CONFIG.md, config/default.yaml and docs/NODE.md are exactly what their generators (tools.config_doc,
  tools.node_doc) write now, and name every config key and every node parameter.
- Everything README.md's code blocks run exists: each `make` target in the Makefile; each `fg-depth ...`
  (also `ros2 run fg_depth_ros fg-depth`, `python -m fg_depth_core`, `torchrun ... -m fg_depth_core`) parses
  with the real CLI parser, subcommand and options included; each `ros2 run fg_depth_ros EXE` is a console
  script of setup.py, and its `-p`/`-r` arguments are parameters/inputs of that executable; each `ros2
  launch fg_depth_ros FILE a:=b` names a launch file here and its declared arguments; each `ros2 param set`
  a dynamic parameter; each `python -m MODULE` of ours (fg_depth_core, fg_depth_ros, tools) an importable
  module.
- Every config/*.yaml named anywhere in README.md exists and loads, every relative link points to a file
  that exists (docs/CONFIG.md, docs/NODE.md and docs/RESULTS.md among them), and every number in the tables
  of the Results section appears in docs/RESULTS.md.

The checkers are plain functions returning a list of problems; the tests at the end feed them broken text to
show that they fail when they should.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib.util
import io
import re
import shlex
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest
import yaml

from fg_depth_core.cli import build_parser
from fg_depth_core.config import Config, ConfigError, load_config
from fg_depth_core.spec import Spec, setting, spec_of
from fg_depth_ros import play
from fg_depth_ros.node_params import PARAMETERS
from fg_depth_ros.topics import TOPIC
from fg_depth_ros.train import strip_ros_args
from tools import config_doc, node_doc
from tools.config_doc import REGENERATE as CONFIG_REGENERATE
from tools.config_doc import render as render_config
from tools.docgen import check

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIG_MD = ROOT / "docs" / "CONFIG.md"
NODE_MD = ROOT / "docs" / "NODE.md"
RESULTS_MD = ROOT / "docs" / "RESULTS.md"
#: Files README.md must link to.
REQUIRED_LINKS = ("docs/CONFIG.md", "docs/NODE.md", "docs/RESULTS.md")
PACKAGE = "fg_depth_ros"
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}


# ------------------------------------------------------------------------------------------ generated docs


def _flat_keys(tree: Dict, prefix: str = "") -> List[str]:
    keys = []
    for name, value in tree.items():
        key = f"{prefix}.{name}" if prefix else name
        keys.extend(_flat_keys(value, key) if isinstance(value, dict) else [key])
    return keys


def test_config_reference_is_current():
    problem = check(CONFIG_MD, render_config(), CONFIG_REGENERATE)
    assert problem is None, problem


def test_node_reference_is_current():
    problem = check(NODE_MD, node_doc.render(), node_doc.REGENERATE)
    assert problem is None, problem


def test_config_reference_names_every_key():
    text = CONFIG_MD.read_text(encoding="utf-8")
    keys = _flat_keys(Config().to_dict())
    assert len(keys) > 50
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"docs/CONFIG.md lacks {missing}; regenerate it with: {CONFIG_REGENERATE}"


def test_node_reference_names_every_parameter_topic_and_argument():
    text = NODE_MD.read_text(encoding="utf-8")
    names = list(PARAMETERS) + list(play.PARAMETERS) + list(TOPIC)
    names += [arg["name"] for arg in node_doc.launch_arguments()]
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/NODE.md lacks {missing}; regenerate it with: {node_doc.REGENERATE}"


def test_default_yaml_is_current():
    problem = check(ROOT / config_doc.DEFAULT_YAML, config_doc.render_default_yaml(), CONFIG_REGENERATE)
    assert problem is None, problem


def _declared_keys(obj: Any, prefix: str = "") -> List[Tuple[str, Spec]]:
    """(dotted key, Spec) of each leaf of a config tree, read from the fields, not through the generator."""
    out = []
    for f in dataclasses.fields(obj):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += _declared_keys(value, key)
        else:
            spec = spec_of(f)
            assert spec is not None, f"{key} declares no Spec"
            out.append((key, spec))
    return out


def test_config_reference_has_every_declared_help_choice_and_rule():
    """Read the declarations independently of the generator: each key's help, each of its choices and its rule
    show up in that key's row of docs/CONFIG.md."""
    lines = CONFIG_MD.read_text(encoding="utf-8").splitlines()
    rows = {m.group(1): line for line in lines if (m := re.match(r"^\| `([\w.]+)` \|", line))}
    declared = _declared_keys(Config())
    assert len(declared) > 50
    with_choices = [key for key, spec in declared if spec.choices]
    assert len(with_choices) >= 5
    with_rules = [key for key, spec in declared if spec.rule]
    assert {"model.max_depth", "model.init_depth", "eval.max_depth", "data.bag.left_topic"} <= set(with_rules)
    problems = []
    for key, spec in declared:
        row = rows.get(key)
        if row is None:
            problems.append(f"{key}: no row")
            continue
        texts = [spec.help.replace("``", "`"), spec.rule, *(f"`{c}`" for c in spec.choices)]
        shown = [" ".join(text.split()).replace("|", "\\|") for text in texts]
        problems += [f"{key}: {text!r} missing" for text in shown if text not in row]
    assert not problems, f"docs/CONFIG.md (regenerate with {CONFIG_REGENERATE}): {problems}"


# ------------------------------------------------------------------------------------------ README parsing


def code_blocks(text: str) -> List[str]:
    """The contents of the fenced code blocks of a Markdown text."""
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)


def commands(block: str) -> List[List[str]]:
    """Shell command lines of a code block as argument lists: continuation lines joined, comments dropped,
    split at && || ; | (each side a command), leading VAR=value assignments and sudo removed."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes: not a command line
            continue
        argv: List[str] = []
        for token in [*tokens, ";"]:
            if token in SHELL_OPERATORS:
                while argv and (re.match(r"^[A-Za-z_]\w*=", argv[0]) or argv[0] == "sudo"):
                    argv.pop(0)
                if argv:
                    out.append(argv)
                argv = []
            else:
                argv.append(token)
    return out


def makefile_targets(path: Path = ROOT / "Makefile") -> Set[str]:
    targets = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?![:=])", line)
        if match and not line.startswith("\t"):
            targets.update(match.group(1).split())
    return targets


def console_scripts(path: Path = ROOT / "setup.py") -> Dict[str, str]:
    """{script: module:function} of setup.py's console_scripts entry points (read with ast)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            entry_points = ast.literal_eval(node.value)
            return {
                name.strip(): target.strip()
                for name, target in (item.split("=", 1) for item in entry_points.get("console_scripts", []))
            }
    return {}


def _parse_cli(argv: List[str]) -> Optional[str]:
    """None if ``fg-depth ARGV`` parses with the real parser (nothing runs), else the parser's complaint."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else str(exc)
    return None


def _ros_args(argv: List[str]) -> Dict[str, List[str]]:
    """The ``-p name:=value`` parameters and ``-r from:=to`` remappings after ``--ros-args``."""
    found: Dict[str, List[str]] = {"params": [], "remaps": []}
    if "--ros-args" not in argv:
        return found
    rest = argv[argv.index("--ros-args") + 1 :]
    for flag, value in zip(rest, rest[1:]):
        if flag in ("-p", "--param") and ":=" in value:
            found["params"].append(value.split(":=", 1)[0])
        elif flag in ("-r", "--remap") and ":=" in value:
            found["remaps"].append(value.split(":=", 1)[0])
    return found


def check_command(argv: List[str]) -> List[str]:
    """Problems with one README command line (empty when it is fine or not one of ours)."""
    shown = " ".join(argv)
    exe = Path(argv[0]).name
    problems: List[str] = []
    scripts = console_scripts()
    if exe == "make":
        targets = makefile_targets()
        for target in argv[1:]:
            if not target.startswith("-") and "=" not in target and target not in targets:
                problems.append(f"`{shown}`: no make target {target!r} in the Makefile")
    elif exe == "fg-depth":
        if (problem := _parse_cli(argv[1:])) is not None:
            problems.append(f"`{shown}`: {problem}")
    elif exe in ("python", "python3", "torchrun") and "-m" in argv:
        module_at = argv.index("-m") + 1
        module = argv[module_at] if module_at < len(argv) else ""
        if module == "fg_depth_core":
            if (problem := _parse_cli(argv[module_at + 1 :])) is not None:
                problems.append(f"`{shown}`: {problem}")
        elif module.startswith(("fg_depth_core.", "fg_depth_ros.", "tools.")):
            if importlib.util.find_spec(module) is None:
                problems.append(f"`{shown}`: no module {module}")
    elif exe == "ros2" and argv[1:3] == ["run", PACKAGE] and len(argv) > 3:
        name, args = argv[3], argv[4:]
        if name not in scripts:
            problems.append(f"`{shown}`: {PACKAGE} has no executable {name!r} (setup.py: {sorted(scripts)})")
        elif name == "fg-depth":
            if (problem := _parse_cli(args)) is not None:
                problems.append(f"`{shown}`: {problem}")
        elif name == "train":
            if (problem := _parse_cli(["train", *strip_ros_args(args)])) is not None:
                problems.append(f"`{shown}`: {problem}")
        elif name in ("depth_node", "play"):
            declared = PARAMETERS if name == "depth_node" else play.PARAMETERS
            inputs = set(TOPIC) if name == "depth_node" else set(play.MONO_TOPICS) | set(play.STEREO_TOPICS)
            ros_args = _ros_args(args)
            problems += [f"`{shown}`: {name} has no parameter {p!r}" for p in ros_args["params"]
                         if p not in declared]
            problems += [f"`{shown}`: {name} has no topic {r!r} to remap" for r in ros_args["remaps"]
                         if not r.startswith("__") and r not in inputs]
    elif exe == "ros2" and argv[1:3] == ["launch", PACKAGE] and len(argv) > 3:
        launch_file = ROOT / "launch" / argv[3]
        if not launch_file.is_file():
            problems.append(f"`{shown}`: no launch file launch/{argv[3]}")
        else:
            declared = {arg["name"] for arg in node_doc.launch_arguments(launch_file)}
            for arg in argv[4:]:
                if ":=" in arg and arg.split(":=", 1)[0] not in declared:
                    problems.append(f"`{shown}`: {argv[3]} declares no argument {arg.split(':=', 1)[0]!r}")
    elif exe == "ros2" and argv[1:3] == ["param", "set"] and len(argv) > 4:
        name = argv[4]
        if name not in PARAMETERS:
            problems.append(f"`{shown}`: depth_node has no parameter {name!r}")
        elif not PARAMETERS[name].dynamic:
            problems.append(f"`{shown}`: parameter {name!r} is read-only, `ros2 param set` is refused")
    return problems


def check_readme(text: str, root: Path = ROOT) -> List[str]:
    """Every problem of a README text: commands, config files, links, result numbers."""
    problems: List[str] = []
    for block in code_blocks(text):
        for argv in commands(block):
            problems += check_command(argv)
    for name in sorted(set(re.findall(r"\bconfig/[\w.-]+\.ya?ml\b", text))):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: named in README.md but missing")
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        ros_file = isinstance(data, dict) and any(
            isinstance(v, dict) and "ros__parameters" in v for v in data.values()
        )
        if ros_file:
            continue  # a ROS parameter file (config/depth.yaml): test_launch_params.py checks its keys
        if (problem := config_file_problem(path)) is not None:
            problems.append(f"{name}: does not load: {problem}")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link.split("#", 1)[0] for link in links if not re.match(r"^(https?:|mailto:|#)", link)]
    problems += [f"link to {link}: no such file" for link in local if not (root / link).exists()]
    problems += [f"README.md does not link to {req}" for req in REQUIRED_LINKS if req not in local]
    problems += check_result_numbers(text, RESULTS_MD.read_text(encoding="utf-8"))
    return problems


def config_file_problem(path: Path) -> Optional[str]:
    """None if the training config at ``path`` loads. A file meant to be completed on the command line (such
    as config/train_bag.yaml, whose image topics come from --left/--right) passes when the only complaint is
    about a key the file does not set; a bad value of a key it sets, an unknown key or bad YAML fails."""
    try:
        load_config(path)
    except ConfigError as exc:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        match = re.match(rf"^{re.escape(str(path))}: ([\w.]+):", str(exc))
        if match and "unknown key" not in str(exc) and match.group(1) not in _flat_keys(data):
            return None
        return str(exc)
    return None


def check_result_numbers(readme: str, results: str) -> List[str]:
    """Every number in the table rows of README's Results section also appears in RESULTS.md."""
    match = re.search(r"^## Results\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if not match:
        return ["README.md has no '## Results' section"]
    lines = match.group(1).splitlines()
    rows = [line for line in lines if line.startswith("|") and not line.startswith("|--")]
    if not rows:
        return ["README.md's Results section has no table"]
    problems = []
    for row in rows:
        for number in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])|(?<![\w.])\d{2,}(?![\w.])", row):
            if not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", results):
                problems.append(f"Results: {number} (in `{row.strip()}`) does not appear in docs/RESULTS.md")
    return problems


# ------------------------------------------------------------------------------------------ the README


def test_readme_is_consistent_with_the_code():
    problems = check_readme(README.read_text(encoding="utf-8"))
    assert not problems, "README.md:\n" + "\n".join(problems)


def test_readme_commands_were_found():
    """The parser sees the commands the README is about (a broken parser would leave nothing to check)."""
    found = [argv for block in code_blocks(README.read_text(encoding="utf-8")) for argv in commands(block)]
    exes = {Path(argv[0]).name for argv in found}
    assert {"make", "fg-depth", "ros2"} <= exes
    ros = {tuple(argv[:2]) for argv in found if argv[0] == "ros2"}
    assert {("ros2", "launch"), ("ros2", "run")} <= ros


# ------------------------------------------------------------------------------------------ the checkers fail


BROKEN = {
    "make nosuchtarget": "no make target 'nosuchtarget'",
    "fg-depth nosuchcommand --out x": "invalid choice: 'nosuchcommand'",
    "fg-depth train --out runs/x --no-such-option": "unrecognized arguments: --no-such-option",
    ".venv/bin/fg-depth eval --checkpoint c.pt": "the following arguments are required",
    "ros2 run fg_depth_ros nosuchexe": "has no executable 'nosuchexe'",
    "ros2 run fg_depth_ros train --out runs/x --bogus 1": "unrecognized arguments",
    "ros2 run fg_depth_ros depth_node --ros-args -p nosuchparam:=1": "has no parameter 'nosuchparam'",
    "ros2 run fg_depth_ros depth_node --ros-args -r nosuchtopic:=/x": "has no topic 'nosuchtopic'",
    "ros2 run fg_depth_ros play --ros-args -p points.enabled:=false": "play has no parameter",
    "ros2 launch fg_depth_ros depth.launch.py nosucharg:=1": "declares no argument 'nosucharg'",
    "ros2 launch fg_depth_ros nosuch.launch.py": "no launch file",
    "ros2 param set /depth_node mode stereo": "is read-only",
    "python -m fg_depth_core.nosuchmodule": "no module fg_depth_core.nosuchmodule",
    "python -m tools.nosuchmodule": "no module tools.nosuchmodule",
}


@pytest.mark.parametrize("line", sorted(BROKEN))
def test_command_checker_catches(line):
    problems = [p for argv in commands(line) for p in check_command(argv)]
    assert any(BROKEN[line] in p for p in problems), problems


def test_command_checker_accepts_real_commands():
    good = """
make test PYTHON=python3.12 && make help
fg-depth train --config config/train_tiny.yaml --out runs/tiny --set train.max_steps=2   # comment
ros2 run fg_depth_ros play --ros-args -p dataset:=synth -r image:=/cam/image
ros2 launch fg_depth_ros depth.launch.py model:=/m.onnx \\
    rviz:=true
ros2 param set /depth_node points.decimation 4
torchrun --nproc_per_node=2 -m fg_depth_core train --out runs/x
"""
    problems = [p for argv in commands(good) for p in check_command(argv)]
    assert not problems, problems
    assert len(commands(good)) == 7


def test_readme_checker_catches_files_links_and_numbers():
    text = README.read_text(encoding="utf-8")
    broken = text.replace("docs/NODE.md", "docs/NOSUCH.md") + "\nUse config/nosuch.yaml.\n"
    broken = broken.replace("| 0.3025 ± ", "| 0.3026 ± ", 1)
    problems = "\n".join(check_readme(broken))
    assert "link to docs/NOSUCH.md: no such file" in problems
    assert "does not link to docs/NODE.md" in problems
    assert "config/nosuch.yaml: named in README.md but missing" in problems
    assert "0.3026" in problems


def test_readme_checker_catches_a_config_that_does_not_load(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "bad.yaml").write_text("train:\n  max_stepz: 3\n")
    for name in REQUIRED_LINKS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    text = "Train with config/bad.yaml.\n" + "".join(f"[x]({n}) " for n in REQUIRED_LINKS)
    text += "\n## Results\n\n| a | b |\n|---|---|\n| x | 0.2662 |\n"
    problems = check_readme(text, tmp_path)
    assert len(problems) == 1 and "config/bad.yaml: does not load" in problems[0], problems


def test_generated_doc_check_catches_drift(tmp_path):
    stale = tmp_path / "CONFIG.md"
    stale.write_text(render_config().replace("Total optimiser steps.", "Steps."), encoding="utf-8")
    problem = check(stale, render_config(), CONFIG_REGENERATE)
    assert problem is not None and CONFIG_REGENERATE in problem and "Total optimiser steps." in problem
    assert check(tmp_path / "missing.md", "x", CONFIG_REGENERATE) is not None


def test_config_doc_follows_new_sections():
    """A section added anywhere in the tree (here: a nested dataclass on the fly) is documented unchanged."""

    @dataclasses.dataclass
    class Extra:
        """An extra section."""

        widgets: int = setting(3, "Number of widgets.", minimum=1, rule="fewer than gadgets")

    @dataclasses.dataclass
    class Root:
        extra: Extra = dataclasses.field(default_factory=Extra)

    text = render_config(Root())
    assert "## `extra`" in text and "An extra section." in text
    row = next(line for line in text.splitlines() if line.startswith("| `extra.widgets` |"))
    assert "Number of widgets." in row and ">= 1; fewer than gadgets" in row and "`3`" in row


def test_config_doc_refuses_a_key_without_help():
    @dataclasses.dataclass
    class Bare:
        """A section whose key says nothing."""

        widgets: int = 3

    @dataclasses.dataclass
    class Root:
        bare: Bare = dataclasses.field(default_factory=Bare)

    with pytest.raises(config_doc.UndeclaredKey, match=r"Bare.widgets \(bare.widgets\): declares no help"):
        render_config(Root())


def test_cli_help_parses():
    """The parser used above is the real one (argparse, with the subcommands of COMMAND_MODULES)."""
    assert isinstance(build_parser(), argparse.ArgumentParser)
    assert _parse_cli(["--help"]) is None
