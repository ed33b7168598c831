"""launch/depth.launch.py, config/depth.yaml, rviz/depth.rviz and the node's declared parameters agree.

launch and launch_ros are not installable outside a ROS installation, so the launch file is read with ``ast``
(never imported). The YAML is checked against the parameter table the node declares from
(fg_depth_ros.node_params.PARAMETERS) and also loaded the real way: rcl's parameter-file parser feeding a
DepthNode started in a namespace.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Dict, List

import pytest
import rclpy
import yaml
from depth_node_helpers import DOMAIN, write_linear_model

from fg_depth_ros import play
from fg_depth_ros.depth_node import DepthNode
from fg_depth_ros.node_params import PARAMETERS, check_settings
from fg_depth_ros.topics import MONO_INPUTS, OUTPUTS, STEREO_INPUTS
from tools.node_doc import module_constants

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "depth.launch.py"
CONFIG = ROOT / "config" / "depth.yaml"
RVIZ = ROOT / "rviz" / "depth.rviz"


# ------------------------------------------------------------------------------------------ launch file


def _call_name(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")


def _keyword(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(encoding="utf-8"), str(LAUNCH))



def _value(node: ast.AST, constants: Dict[str, Any]) -> Any:
    """A literal, or a module-level constant named by ``node``."""
    if isinstance(node, ast.Name):
        return constants[node.id]
    return ast.literal_eval(node)


def _calls(tree: ast.AST, name: str) -> List[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == name]


def _declared_arguments(tree: ast.Module) -> Dict[str, ast.Call]:
    declared = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        assert call.args and isinstance(call.args[0], ast.Constant), ast.dump(call)
        name = call.args[0].value
        assert name not in declared, f"launch argument {name!r} declared twice"
        declared[name] = call
    return declared


def test_the_launch_file_is_a_standard_ros2_launch_file(launch_tree):
    imported = {
        (node.module, alias.name)
        for node in ast.walk(launch_tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {
        ("ament_index_python.packages", "PackageNotFoundError"),
        ("ament_index_python.packages", "get_package_prefix"),
        ("launch", "LaunchDescription"),
        ("launch.actions", "DeclareLaunchArgument"),
        ("launch.actions", "OpaqueFunction"),
        ("launch.substitutions", "LaunchConfiguration"),
        ("launch.substitutions", "PathJoinSubstitution"),
        ("launch_ros.actions", "Node"),
        ("launch_ros.substitutions", "FindPackageShare"),
    }
    functions = {n.name for n in launch_tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    returns = [n for n in ast.walk(launch_tree) if isinstance(n, ast.Return)]
    assert any(isinstance(r.value, ast.Call) and _call_name(r.value) == "LaunchDescription" for r in returns)


def test_every_launch_argument_is_declared_once_used_and_every_used_one_declared(launch_tree):
    declared = _declared_arguments(launch_tree)
    constants = module_constants(launch_tree)
    used = {
        call.args[0].value
        for call in _calls(launch_tree, "LaunchConfiguration")
        if call.args and isinstance(call.args[0], ast.Constant)
    }
    # The overriding and remapping arguments are read in loops over these tables.
    used |= set(constants["PARAMETER_ARGUMENTS"]) | set(constants["REMAP_ARGUMENTS"])
    assert used == set(declared)
    for name, call in declared.items():
        description = _keyword(call, "description")
        assert isinstance(description, ast.Constant) and description.value, (
            f"argument {name!r} needs a description"
        )
    assert {"mode", "model", "backend", "namespace", "params_file", "rviz"} <= set(declared)


def test_arguments_that_set_parameters_name_declared_string_parameters_with_the_same_choices(launch_tree):
    declared = _declared_arguments(launch_tree)
    overrides = module_constants(launch_tree)["PARAMETER_ARGUMENTS"]
    assert set(overrides) <= set(declared)
    for argument, parameter in overrides.items():
        assert parameter in PARAMETERS, (
            f"launch argument {argument!r} sets undeclared parameter {parameter!r}"
        )
        # Launch passes these as strings: only string parameters may be set this way.
        assert PARAMETERS[parameter].kind is str, parameter
        call = declared[argument]
        # Empty = keep the params file's value, so every such argument defaults to ''.
        assert ast.literal_eval(_keyword(call, "default_value")) == ""
        choices = _keyword(call, "choices")
        if PARAMETERS[parameter].choices:
            assert choices is not None, f"launch argument {argument!r} should list the parameter's choices"
            assert ast.literal_eval(choices) == ["", *PARAMETERS[parameter].choices]
        else:
            assert choices is None


def test_remap_arguments_cover_every_input_topic_of_both_modes_with_the_topic_as_default(launch_tree):
    declared = _declared_arguments(launch_tree)
    remaps = module_constants(launch_tree)["REMAP_ARGUMENTS"]
    assert sorted(remaps.values()) == sorted(set(MONO_INPUTS) | set(STEREO_INPUTS))
    for argument, topic in remaps.items():
        assert ast.literal_eval(_keyword(declared[argument], "default_value")) == topic


def test_the_node_action_runs_the_installed_console_script_under_the_yaml_node_name(launch_tree):
    constants = module_constants(launch_tree)
    nodes = _calls(launch_tree, "Node")
    by_executable = {_value(_keyword(c, "executable"), constants): c for c in nodes}
    assert set(by_executable) == {"depth_node", "rviz2"}
    depth = by_executable["depth_node"]
    assert _value(_keyword(depth, "package"), constants) == "fg_depth_ros"
    assert _value(_keyword(by_executable["rviz2"], "package"), constants) == "rviz2"
    assert _value(_keyword(depth, "name"), constants) == "depth_node"
    setup = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    scripts = [c.value for c in ast.walk(setup) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    assert "depth_node = fg_depth_ros.entry:depth_node" in scripts
    # The YAML's node key matches that name in any namespace.
    assert list(yaml.safe_load(CONFIG.read_text())) == [f"/**/{constants['NODE_NAME']}"]


def test_the_share_files_the_launch_file_names_exist_and_rviz_is_conditional(launch_tree):
    joins = _calls(launch_tree, "PathJoinSubstitution")
    paths = []
    for call in joins:
        parts = call.args[0].elts
        assert isinstance(parts[0], ast.Name)  # the FindPackageShare substitution
        paths.append(Path(*[ast.literal_eval(p) for p in parts[1:]]))
    assert sorted(paths) == [Path("config/depth.yaml"), Path("rviz/depth.rviz")]
    assert all((ROOT / p).is_file() for p in paths)
    share = _calls(launch_tree, "FindPackageShare")
    assert len(share) == 1 and isinstance(share[0].args[0], ast.Name)
    # rviz2 is made only under `if LaunchConfiguration("rviz").perform(context) == "true":`, after checking
    # that it is installed (test/ros/test_ros2_cli.py launches it without rviz2).
    guards = [
        n
        for n in ast.walk(launch_tree)
        if isinstance(n, ast.If)
        and any(_call_name(c) == "LaunchConfiguration" and ast.literal_eval(c.args[0]) == "rviz"
                for c in ast.walk(n.test) if isinstance(c, ast.Call))
    ]  # fmt: skip
    assert len(guards) == 1
    inside = [c for c in ast.walk(guards[0]) if isinstance(c, ast.Call) and _call_name(c) == "Node"]
    assert [ast.literal_eval(_keyword(c, "executable")) for c in inside] == ["rviz2"]
    assert any(_call_name(c) == "get_package_prefix" for c in ast.walk(guards[0]) if isinstance(c, ast.Call))


# ------------------------------------------------------------------------------------------ YAML


def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


@pytest.fixture(scope="module")
def yaml_values() -> Dict[str, Any]:
    document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    (block,) = document.values()
    assert list(block) == ["ros__parameters"]
    return _flatten(block["ros__parameters"])


def test_yaml_keys_are_exactly_the_declared_parameters(yaml_values):
    assert sorted(yaml_values) == sorted(PARAMETERS)


def test_yaml_values_have_the_parameter_types_and_are_the_defaults(yaml_values):
    for name, value in yaml_values.items():
        spec = PARAMETERS[name]
        # type() equality: a bool is not an int, and 1 is not a float (ROS parameters are typed).
        assert type(value) is spec.kind, f"{name}: YAML {value!r} is {type(value).__name__}, not {spec.kind}"
        assert value == spec.default, f"{name}: YAML {value!r}, node default {spec.default!r}"
    check_settings({**yaml_values, "model": "any.onnx"})


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_linear_model(tmp_path_factory.mktemp("model") / "linear.onnx", 64, 32)


def test_rcl_loads_the_yaml_into_the_node_in_any_namespace_and_the_node_declares_exactly_the_table(
    model, yaml_values
):
    context = rclpy.Context()
    args = ["--ros-args", "--params-file", str(CONFIG), "-p", f"model:={model}", "-r", "__ns:=/robot/front"]
    rclpy.init(args=args, context=context, domain_id=DOMAIN)
    node = None
    try:
        node = DepthNode(context=context)
        assert node.get_fully_qualified_name() == "/robot/front/depth_node"
        builtin = {"use_sim_time", "start_type_description_service"}
        declared = set(node.list_parameters([], 0).names) - builtin
        assert declared == set(PARAMETERS)
        for name, value in yaml_values.items():
            expected = str(model) if name == "model" else value
            assert node.get_parameter(name).value == expected, name
        for desc in node.describe_parameters(sorted(PARAMETERS)):
            assert desc.description and desc.read_only == (not PARAMETERS[desc.name].dynamic), desc.name
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=context)


# ------------------------------------------------------------------------------------------ rviz


def test_rviz_config_shows_the_depth_image_and_the_cloud_in_the_camera_optical_frame():
    config = yaml.safe_load(RVIZ.read_text(encoding="utf-8"))
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == play.PARAMETERS["frame_id"].default
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert all(c.startswith("rviz_default_plugins/") for c in displays)
    image = displays["rviz_default_plugins/Image"]
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert image["Topic"]["Value"] == "depth/color/image" and cloud["Topic"]["Value"] == "points"
    assert {"depth/color/image", "points"} <= set(OUTPUTS)
    assert image["Enabled"] and cloud["Enabled"] and cloud["Color Transformer"] == "RGB8"
    assert {p["Class"] for p in config["Panels"]} >= {"rviz_common/Displays"}
