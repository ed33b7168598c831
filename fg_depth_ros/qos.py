"""Quality-of-service profiles of fg_depth_ros' topics, by name, so that parameters can choose them.

Camera inputs default to SensorDataQoS (best effort, keep last 5, volatile): a best-effort subscription
accepts both reliable and best-effort publishers, and a late frame is worth less than the next one. Outputs
default to reliable keep-last-5, which every subscriber (reliable or best effort) can receive.
"""

from __future__ import annotations

from typing import Optional

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Names accepted by the functions below (and by the qos parameters of the node and the player).
PROFILES = ("sensor_data", "reliable", "best_effort")
OUTPUT_DEPTH = 5


def profile(name: str, depth: Optional[int] = None) -> QoSProfile:
    """A new QoSProfile: "sensor_data" (rclpy's qos_profile_sensor_data), "reliable" or "best_effort"
    (keep last ``depth``, volatile). ``depth`` overrides the history depth (default: 5 for all three)."""
    if name not in PROFILES:
        raise ValueError(f"qos: expected one of {list(PROFILES)}, got {name!r}")
    if depth is not None and int(depth) < 1:
        raise ValueError(f"qos depth: expected >= 1, got {depth}")
    if name == "sensor_data":
        base = qos_profile_sensor_data
        return QoSProfile(
            history=base.history,
            depth=int(depth) if depth is not None else base.depth,
            reliability=base.reliability,
            durability=base.durability,
        )
    reliability = ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth) if depth is not None else OUTPUT_DEPTH,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


def camera_qos(name: str = "sensor_data", depth: Optional[int] = None) -> QoSProfile:
    """The profile of camera image / camera_info subscriptions (default SensorDataQoS)."""
    return profile(name, depth)


def output_qos(name: str = "reliable", depth: int = OUTPUT_DEPTH) -> QoSProfile:
    """The profile of published outputs (default reliable, keep last 5)."""
    return profile(name, depth)
