"""Launch depth_node with its parameter file, camera topic remappings and, optionally, rviz2.

    ros2 launch fg_depth_ros depth.launch.py model:=/path/to/depthnet.onnx image:=/camera/image_rect \
        camera_info:=/camera/camera_info rviz:=true
    ros2 launch fg_depth_ros depth.launch.py mode:=stereo model:=/path/to/depthnet.onnx namespace:=front \
        left_image:=/stereo/left/image_rect left_camera_info:=/stereo/left/camera_info \
        right_image:=/stereo/right/image_rect right_camera_info:=/stereo/right/camera_info

The parameter file (``params_file``, default: the installed config/depth.yaml) sets every parameter; the
arguments in PARAMETER_ARGUMENTS override one parameter each when given and leave the file's value alone
when empty. The node's outputs (depth/image, depth/camera_info, points, depth/color/image, disparity, scale)
live in ``namespace``; rviz2 starts in the same namespace, so its relative topics find them, and only when
it is installed (else the launch stops before starting anything). use_sim_time:=true makes the node follow
/clock. test/ros/test_launch_params.py reads this file with ``ast`` and checks it against the node's
parameter table and config/depth.yaml; test/ros/test_ros2_cli.py launches it with the real ``ros2 launch``.
"""

# ruff's import sorter takes `launch` for this repository's launch/ folder (first party) but not
# `launch.actions`; this is the standard import block of a ROS 2 launch file.
from ament_index_python.packages import PackageNotFoundError, get_package_prefix  # noqa: I001
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "fg_depth_ros"
NODE_NAME = "depth_node"
#: The installed share folder of this package (config/, rviz/).
SHARE = FindPackageShare(PACKAGE)
#: Launch argument -> node parameter it overrides when not empty.
PARAMETER_ARGUMENTS = {
    "model": "model",
    "mode": "mode",
    "backend": "backend",
    "device": "device",
    "transport": "transport",
}
#: Launch argument -> the node input it remaps (the argument's default is the input's own relative name).
REMAP_ARGUMENTS = {
    "image": "image",
    "camera_info": "camera_info",
    "left_image": "left/image_rect",
    "left_camera_info": "left/camera_info",
    "right_image": "right/image_rect",
    "right_camera_info": "right/camera_info",
}


def _nodes(context):
    """depth_node, with only the overriding arguments that were given (an empty one must not blank the
    parameter file's value), and rviz2 when asked for. A missing rviz2 stops the launch before anything
    starts, rather than leaving depth_node running without its window."""
    overrides = {}
    for argument, parameter in PARAMETER_ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = value
    overrides["use_sim_time"] = LaunchConfiguration("use_sim_time").perform(context) == "true"
    remappings = [(topic, LaunchConfiguration(argument)) for argument, topic in REMAP_ARGUMENTS.items()]
    actions = []
    if LaunchConfiguration("rviz").perform(context) == "true":
        try:
            get_package_prefix("rviz2")
        except PackageNotFoundError:
            raise RuntimeError(
                "rviz:=true needs rviz2, which is not installed here: sudo apt install "
                "ros-$ROS_DISTRO-rviz2, or launch without rviz:=true and view the topics from another machine"
            ) from None
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                namespace=LaunchConfiguration("namespace"),
                arguments=["-d", PathJoinSubstitution([SHARE, "rviz", "depth.rviz"])],
                output="screen",
            )
        )
    depth = Node(
        package=PACKAGE,
        executable="depth_node",
        name=NODE_NAME,
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=remappings,
        output="screen",
    )
    return [depth, *actions]


def generate_launch_description():
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
            choices=["", "auto", "torch", "onnxruntime", "tensorrt", "openvino"],
            description="inference backend; empty = the params file's",
        ),
        DeclareLaunchArgument(
            "device",
            default_value="",
            description="auto, cpu, cuda or cuda:N; empty = the params file's",
        ),
        DeclareLaunchArgument(
            "transport",
            default_value="",
            choices=["", "raw", "compressed"],
            description="camera images as Image (raw) or CompressedImage on <image>/compressed; empty = the "
            "params file's",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            choices=["true", "false"],
            description="follow /clock (a recording replayed with ros2 bag play --clock) instead of the "
            "system clock",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="namespace of the node, its topics and rviz2"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([SHARE, "config", "depth.yaml"]),
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
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
