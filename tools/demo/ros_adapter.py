"""Everything the demo uses of the ROS adapter package fg_depth_ros, in this one module: the imports, and the
attributes of depth_node and play that the demo reads. When the node's names change, only this module
follows."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from fg_depth_ros.conversions import image_to_depth, image_to_rgb, pointcloud_to_rgb, pointcloud_to_xyz
from fg_depth_ros.depth_node import DepthNode
from fg_depth_ros.diagnostics import status_values
from fg_depth_ros.play import DatasetPlayer

__all__ = [
    "DatasetPlayer",
    "DepthNode",
    "image_to_depth",
    "image_to_rgb",
    "pointcloud_to_rgb",
    "pointcloud_to_xyz",
    "status_values",
]


# ------------------------------------------------------------------------------------------- depth_node


def make_depth_node(parameters: Dict[str, Any], context: Any) -> DepthNode:
    return DepthNode(parameters=parameters, context=context)


def output_publishers(node: DepthNode) -> Tuple[Any, ...]:
    """The node's publishers the demo records: depth, its camera_info, the point cloud, /diagnostics."""
    outputs = node.outputs
    return (outputs.depth, outputs.info, outputs.points, outputs.diagnostics)


def dropped_frame(node: DepthNode) -> Optional[str]:
    """The node's last problem once it has rejected or failed a frame; None while every frame went through."""
    return node.last_problem if node.errors or node.rejected else None


def wait_idle(node: DepthNode, timeout: float) -> bool:
    """True once the node's worker has finished its frame, False after ``timeout`` seconds."""
    return node.wait_idle(timeout)


def diagnostics_status(node: DepthNode) -> str:
    """The name of the node's status in /diagnostics."""
    return node.status_name


def diagnostics_period(node: DepthNode) -> float:
    """Seconds between the node's /diagnostics messages."""
    return float(node.settings.diagnostics.period)


def timings(node: DepthNode) -> Tuple[List[float], List[float], List[float]]:
    """The node's per-frame seconds: frame received -> depth published, the backend's predict alone, and the
    worker's whole frame (conversion, inference, every output)."""
    stats = node.stats
    return list(stats.node_latency.values()), list(stats.inference.values()), list(stats.processing.values())


def backend(node: DepthNode) -> Tuple[str, str]:
    """(backend name, device) the node's estimator runs on."""
    return node.estimator.backend_name, node.estimator.device


# ------------------------------------------------------------------------------------------------- play


def make_player(parameters: Dict[str, Any], context: Any) -> DatasetPlayer:
    """play, publishing only when asked (:func:`publish_next`)."""
    return DatasetPlayer(parameters=parameters, autostart=False, context=context)


def player_publishers(player: DatasetPlayer) -> Dict[str, Any]:
    """play's publishers by topic."""
    return player.publishers_by_topic


def publish_next(player: DatasetPlayer) -> Optional[int]:
    """Publish play's next frame; its dataset index, None when the dataset is exhausted."""
    return player.publish_next()


def frame_name(player: DatasetPlayer, index: int) -> str:
    """The name of frame ``index`` of play's dataset."""
    return player.source.name(index)
