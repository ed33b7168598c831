"""Launch depth_node with its parameter file, camera topic remappings and, optionally, rviz2.

    ros2 launch fg_depth_ros depth.launch.py model:=/path/to/depthnet.onnx image:=/camera/image_rect \
        camera_info:=/camera/camera_info rviz:=true
    ros2 launch fg_depth_ros depth.launch.py mode:=stereo model:=/path/to/depthnet.onnx namespace:=front \
        left_image:=/stereo/left/image_rect left_camera_info:=/stereo/left/camera_info \
        right_image:=/stereo/right/image_rect right_camera_info:=/stereo/right/camera_info

The parameter file (``params_file``, default: the installed config/depth.yaml) sets every parameter; the
arguments in PARAMETER_ARGUMENTS override one parameter each when given and leave the file's value alone
when empty. The node's outputs (depth, depth/camera_info, points, depth/color, disparity, scale) live in
``namespace``; rviz2 starts in the same namespace, so its relative topics find them.
test/ros/test_launch_params.py reads this file with ``ast`` (launch and launch_ros are not installable outside
a ROS installation) and checks it against the node's parameter table and config/depth.yaml.
"""

# ruff's import sorter takes `launch` for this repository's launch/ folder (first party) but not
# `launch.actions`; this is the standard import block of a ROS 2 launch file.
from launch import LaunchDescription  # noqa: I001
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "fg_depth_ros"
NODE_NAME = "depth_node"
#: Launch argument -> node parameter it overrides when not empty.
PARAMETER_ARGUMENTS = {"model": "model", "mode": "mode", "backend": "backend", "device": "device"}
#: Launch argument -> the node input it remaps (the argument's default is the input's own relative name).
REMAP_ARGUMENTS = {
    "image": "image",
    "camera_info": "camera_info",
    "left_image": "left/image_rect",
    "left_camera_info": "left/camera_info",
    "right_image": "right/image_rect",
    "right_camera_info": "right/camera_info",
}


def _depth_node(context):
    """The node, with only the overriding arguments that were given (an empty one must not blank the
    parameter file's value)."""
    overrides = {}
    for argument, parameter in PARAMETER_ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = value
    remappings = [(topic, LaunchConfiguration(argument)) for argument, topic in REMAP_ARGUMENTS.items()]
    return [
        Node(
            package=PACKAGE,
            executable="depth_node",
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=remappings,
            output="screen",
        )
    ]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            "model",
            default_value="",
            description="model file (.onnx, .engine or .pt); empty = the params file's 'model'",
        ),
        DeclareLaunchArgument(
            "mode",
            default_value="",
            choices=["", "mono", "stereo"],
            description="mono (image + camera_info) or stereo (left/right); empty = the params file's",
        ),
        DeclareLaunchArgument(
            "backend",
            default_value="",
            choices=["", "auto", "torch", "onnxruntime", "tensorrt"],
            description="inference backend; empty = the params file's",
        ),
        DeclareLaunchArgument(
            "device",
            default_value="",
            description="auto, cpu, cuda or cuda:N; empty = the params file's",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="namespace of the node, its topics and rviz2"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "depth.yaml"]),
            description="parameter file of depth_node",
        ),
        DeclareLaunchArgument(
            "rviz",
            default_value="false",
            choices=["true", "false"],
            description="start rviz2 with rviz/depth.rviz (depth image and point cloud)",
        ),
        DeclareLaunchArgument("image", default_value="image", description="mono: camera image topic"),
        DeclareLaunchArgument(
            "camera_info", default_value="camera_info", description="mono: camera_info topic"
        ),
        DeclareLaunchArgument(
            "left_image", default_value="left/image_rect", description="stereo: rectified left image topic"
        ),
        DeclareLaunchArgument(
            "left_camera_info", default_value="left/camera_info", description="stereo: left camera_info topic"
        ),
        DeclareLaunchArgument(
            "right_image", default_value="right/image_rect", description="stereo: rectified right image topic"
        ),
        DeclareLaunchArgument(
            "right_camera_info",
            default_value="right/camera_info",
            description="stereo: right camera_info topic",
        ),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([share, "rviz", "depth.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_depth_node), rviz])
