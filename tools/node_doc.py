"""The node reference, ``docs/NODE.md``, rendered from what the code defines, so that it cannot drift:

- depth_node's topics from its topic table (name, message type, direction, modes, content), their QoS from
  the profiles the node really creates (``topic_qos`` with the parameter defaults);
- depth_node's parameters from its parameter table (type, default, constraints, read-only or dynamic,
  description);
- the launch arguments of launch/depth.launch.py, read with ``ast`` (launch is not importable outside a ROS
  installation): name, default, choices, description, and the parameter or input each one sets;
- the dataset player's parameters and topics.

The tables are imported in one block below (``THE NODE'S TABLES``); that is the place to repoint when the
node's modules move.

    python -m tools.node_doc            # writes docs/NODE.md
    python -m tools.node_doc --check    # exit status 1 if it is out of date
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

# The node's tables: topics, parameters and their check, QoS profiles, the player's tables.
from fg_depth_ros import play
from fg_depth_ros.node_params import PARAMETERS, NodeParams, check_settings
from fg_depth_ros.params import ROS_TYPES
from fg_depth_ros.qos import profile
from fg_depth_ros.topics import TOPIC, TOPICS, Topic, topic_qos
from tools.docgen import ROOT, anchor, format_default, run_cli, table_cell

NODE_MD = "docs/NODE.md"
REGENERATE = "python -m tools.node_doc"
#: The launch file, in a source checkout (the installed copy lives in share/fg_depth_ros/launch).
LAUNCH_FILE = ROOT / "launch" / "depth.launch.py"


def call_name(call: ast.Call) -> str:
    """The called function's name of ``call`` (f(...) -> "f", a.b.f(...) -> "f")."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def msg_type_name(msg_type: type) -> str:
    """``package/Message`` of a message class (sensor_msgs.msg._image.Image -> sensor_msgs/Image)."""
    return f"{msg_type.__module__.split('.')[0]}/{msg_type.__name__}"


def describe_qos(profile: Any) -> str:
    """A QoS profile in words: reliability, durability, history."""

    def word(policy: Any) -> str:
        return getattr(policy, "name", str(policy)).lower().replace("_", " ")

    history = word(profile.history)
    if history == "keep last":
        history = f"keep last {profile.depth}"
    return f"{word(profile.reliability)}, {word(profile.durability)}, {history}"


def default_settings() -> NodeParams:
    """The node's parameter values when nothing is set (the model given a placeholder)."""
    values = {name: spec.default for name, spec in PARAMETERS.items()}
    values["model"] = values["model"] or "model.onnx"
    return check_settings(values)


def constraints(spec: Any) -> str:
    """A parameter's rules in words: choices, bounds, pattern, rules between parameters."""
    return spec.spec.allowed()


# ------------------------------------------------------------------------------------------ launch file


def module_constants(tree: ast.Module) -> Dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments of a parsed file (the launch file's tables)."""
    constants: Dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                constants[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError:
                pass
    return constants


def launch_arguments(path: Path = LAUNCH_FILE) -> List[Dict[str, Any]]:
    """The DeclareLaunchArgument calls of a launch file: name, default, choices, description, effect."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    constants = module_constants(tree)
    names: Dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names.setdefault(node.targets[0].id, node.value)
    parameter_args = constants.get("PARAMETER_ARGUMENTS", {})
    remap_args = constants.get("REMAP_ARGUMENTS", {})
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and call_name(node) == "DeclareLaunchArgument" and node.args):
            continue
        keywords = {kw.arg: kw.value for kw in node.keywords}
        name = ast.literal_eval(node.args[0])
        default = keywords.get("default_value")
        choices = keywords.get("choices")
        effect = ""
        if name in parameter_args:
            effect = f"sets parameter `{parameter_args[name]}` when not empty"
        elif name in remap_args:
            effect = f"remaps input `{remap_args[name]}`"
        out.append({
            "name": name,
            "default": _launch_value(default, names, constants) if default is not None else "(required)",
            "choices": ast.literal_eval(choices) if choices is not None else [],
            "description": ast.literal_eval(keywords["description"]) if "description" in keywords else "",
            "effect": effect,
        })
    return out


def _launch_value(
    node: ast.AST, names: Mapping[str, ast.AST], constants: Mapping[str, Any], depth: int = 0
) -> str:
    """A launch default as text; substitutions in ROS launch syntax ($(find-pkg-share P)/a/b)."""
    if depth > 5:
        return ast.unparse(node)
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.Name):
        if node.id in constants:
            return str(constants[node.id])
        if node.id in names:
            return _launch_value(names[node.id], names, constants, depth + 1)
    if isinstance(node, ast.Call):
        func = call_name(node)
        args = [_launch_value(a, names, constants, depth + 1) for a in node.args]
        if func == "PathJoinSubstitution" and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
            return "/".join(_launch_value(e, names, constants, depth + 1) for e in node.args[0].elts)
        if func == "FindPackageShare" and args:
            return f"$(find-pkg-share {args[0]})"
        if func == "LaunchConfiguration" and args:
            return f"$(var {args[0]})"
    return ast.unparse(node)


# ------------------------------------------------------------------------------------------ rendering


def _topic_rows(topics: List[Topic], settings: Mapping[str, Any]) -> List[str]:
    rows = ["| topic | type | modes | QoS | content | published |", "|---|---|---|---|---|---|"]
    for topic in topics:
        published = topic.when if topic.direction == "out" else ""
        rows.append(
            f"| `{topic.name}` | {msg_type_name(topic.msg_type)} | {', '.join(topic.modes)} | "
            f"{table_cell(describe_qos(topic_qos(topic, settings)))} | {table_cell(topic.description)} | "
            f"{table_cell(published)} |"
        )
    return rows


def _parameter_rows(parameters: Mapping[str, Any], all_read_only: bool = False) -> List[str]:
    rows = [
        "| parameter | type | default | allowed | changes | description |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in parameters.items():
        dynamic = not all_read_only and getattr(spec, "dynamic", False)
        rows.append(
            f"| `{name}` | {ROS_TYPES.get(type(spec.default), type(spec.default).__name__)} | "
            f"`{table_cell(format_default(spec.default))}` | {table_cell(constraints(spec))} | "
            f"{'dynamic' if dynamic else 'read-only'} | {table_cell(spec.description)} |"
        )
    return rows


def render(launch_file: Optional[Path] = None) -> str:
    """The whole Markdown reference of depth_node, its launch file and the dataset player."""
    settings = default_settings()
    inputs = [t for t in TOPICS if t.direction == "in"]
    outputs = [t for t in TOPICS if t.direction == "out"]
    out = [
        "# depth_node and play: topics, parameters, launch arguments",
        "",
        f"<!-- Generated by `{REGENERATE}` from fg_depth_ros (the node's topic and parameter tables, "
        "play's parameters) and launch/depth.launch.py; do not edit by hand. -->",
        "",
        "Contents: [inputs](#inputs), [outputs](#outputs), [parameters](#parameters), "
        f"[launch arguments](#{anchor('launch arguments')}), "
        f"[play](#{anchor('play: datasets as camera topics')}).",
        "",
        "Topic names are relative: a namespace (`ros2 launch ... namespace:=front`, `--ros-args -r "
        "__ns:=/front`) or a remapping (`-r image:=/camera/image_rect`) places them; `/diagnostics` is "
        "absolute. QoS is shown with the default parameters.",
        "",
        "## Inputs",
        "",
        *_topic_rows(inputs, settings),
        "",
        "Camera inputs use the sensor-data profile (best effort): a best-effort subscription receives from "
        "reliable and best-effort publishers alike. In stereo mode the four inputs are paired by header "
        "stamp (approximate time, `sync.slop`, `sync.queue_size`).",
        "",
        "## Outputs",
        "",
        *_topic_rows(outputs, settings),
        "",
        "The outputs' reliability and history depth are the parameters `qos.reliability` and `qos.depth`. "
        "Every subscriber, reliable or best effort, receives the default reliable outputs; with "
        "`qos.reliability: best_effort` a reliable subscriber (what `create_subscription(..., 10)` "
        "makes) receives nothing.",
        "",
        "## Parameters",
        "",
        "Set them in a parameter file (config/depth.yaml lists them all, nested by the dots), with "
        "`--ros-args -p name:=value`, or through the launch arguments below. Read-only parameters are fixed "
        "at start-up (a bad value stops the node with one line naming it); dynamic ones change at run time "
        "with `ros2 param set /depth_node NAME VALUE`. `ros2 param describe` shows the same descriptions and "
        "constraints. Double parameters also accept integers (`max_depth:=80`).",
        "",
        *_parameter_rows(PARAMETERS),
        "",
        "## Launch arguments",
        "",
    ]
    path = launch_file or LAUNCH_FILE
    out += [
        f"`ros2 launch fg_depth_ros {path.name} NAME:=VALUE ...` starts depth_node with the parameter file "
        "`params_file` and, with `rviz:=true`, rviz2 in the same namespace.",
        "",
        "| argument | default | choices | effect | description |",
        "|---|---|---|---|---|",
    ]
    for arg in launch_arguments(path):
        choices = ", ".join(f"`{c}`" if c else '`""`' for c in arg["choices"])
        default = f"`{table_cell(arg['default'])}`" if arg["default"] else '`""`'
        out.append(
            f"| `{arg['name']}` | {default} | {choices} | {table_cell(arg['effect'])} | "
            f"{table_cell(arg['description'])} |"
        )
    out += [
        "",
        "## play: datasets as camera topics",
        "",
        "`ros2 run fg_depth_ros play --ros-args -p dataset:=synth` publishes a dataset as a camera, with the "
        "same topic names as depth_node's inputs, so the two connect without remapping:",
        "",
        "| mode | topics |",
        "|---|---|",
    ]
    for mode, names in (("mono", play.MONO_TOPICS), ("stereo", play.STEREO_TOPICS)):
        listed = ", ".join(f"`{n}` ({msg_type_name(TOPIC[n].msg_type)})" for n in names)
        out.append(f"| {mode} | {listed} |")
    play_qos = describe_qos(profile(play.PARAMETERS["qos"].default))
    out += [
        "",
        f"Their QoS is the `qos` parameter's profile ({play_qos} by default). All of play's parameters are "
        "read-only:",
        "",
        *_parameter_rows(play.PARAMETERS, all_read_only=True),
    ]
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(
        argv, {NODE_MD: render}, REGENERATE,
        "Write the reference of depth_node's topics and parameters, the launch arguments and play's "
        "parameters (Markdown), generated from the code.",
    )


if __name__ == "__main__":
    sys.exit(main())
