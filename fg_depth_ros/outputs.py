"""depth_node's publishers and what each frame publishes on them. The depth image and its camera_info (on
image_transport's sibling topics) go out first, for every frame, with the input image's header (REP 118:
output header = input header). Then, only where someone listens (and the parameters allow it), the point
cloud, the colourised depth and the disparity; the applied scale with ``scale_source: stereo``.
"""

from __future__ import annotations

import math
from typing import Any, Tuple

from std_msgs.msg import Float32, Header

from fg_depth_core.deploy.estimator import resize_image
from fg_depth_core.visualize import colorize_depth
from fg_depth_ros.conversions import (
    depth_to_image,
    depth_to_pointcloud,
    disparity_image,
    intrinsics_to_camera_info,
    rgb_to_image,
)
from fg_depth_ros.node_params import NodeParams
from fg_depth_ros.pipeline import CameraFrame, DepthResult
from fg_depth_ros.topics import DIAGNOSTICS_TOPIC, TOPIC, topic_qos


class Outputs:
    """The node's publishers (made from fg_depth_ros.topics' table): ``stereo`` adds ``disparity``,
    ``scale`` the ``scale`` topic."""

    def __init__(self, node: Any, settings: NodeParams, stereo: bool, scale: bool) -> None:
        self._node = node

        def publisher(name: str) -> Any:
            topic = TOPIC[name]
            return node.create_publisher(topic.msg_type, topic.name, topic_qos(topic, settings))

        self.depth = publisher("depth/image")
        self.info = publisher("depth/camera_info")
        self.points = publisher("points")
        self.color = publisher("depth/color/image")
        self.color_info = publisher("depth/color/camera_info")
        self.disparity = publisher("disparity") if stereo else None
        self.scale = publisher("scale") if scale else None
        self.diagnostics = publisher(DIAGNOSTICS_TOPIC)
        #: The frame outputs (every publisher but /diagnostics) that this node has.
        outputs = (self.depth, self.info, self.points, self.color, self.color_info, self.disparity)
        self._outputs = [p for p in (*outputs, self.scale) if p is not None]

    def destroy(self) -> None:
        """Remove every publisher from the node."""
        for publisher in (*self._outputs, self.diagnostics):
            self._node.destroy_publisher(publisher)

    def wanted(self) -> bool:
        """True when any output (not /diagnostics) has a subscriber: without one, a frame is not worth
        inferring."""
        return any(p.get_subscription_count() > 0 for p in self._outputs)

    def publish_depth(self, result: DepthResult, header: Header) -> None:
        """The depth image and its camera_info."""
        self.depth.publish(depth_to_image(result.depth, header))
        self.info.publish(intrinsics_to_camera_info(result.intrinsics, header))

    def publish_extras(
        self,
        result: DepthResult,
        frame: CameraFrame,
        header: Header,
        settings: NodeParams,
        limits: Tuple[float, float],
    ) -> None:
        """Point cloud, colourised depth, disparity and scale, each only when wanted (module docstring)."""
        points = settings.points
        if points.enabled and self.points.get_subscription_count() > 0:
            out = result.intrinsics
            colour = resize_image(frame.rgb, out.width, out.height) if points.color else None
            max_range = points.max_range or math.inf
            self.points.publish(
                depth_to_pointcloud(
                    result.depth, out, header, colour, points.decimation, max_range, points.organized
                )
            )
        if self.disparity is not None and self.disparity.get_subscription_count() > 0:
            # The message's valid range is the published depth range, the same for every frame.
            fb = result.intrinsics.fx * frame.baseline
            self.disparity.publish(
                disparity_image(
                    result.depth, result.intrinsics.fx, frame.baseline, header, fb / limits[1], fb / limits[0]
                )
            )
        if settings.color_image.enabled and self.color.get_subscription_count() > 0:
            self.color.publish(rgb_to_image(colorize_depth(result.depth, *limits), header))
            self.color_info.publish(intrinsics_to_camera_info(result.intrinsics, header))
        if self.scale is not None:
            self.scale.publish(Float32(data=result.scale))
