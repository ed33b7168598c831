"""``ros2 run fg_depth_ros depth_node``: metric depth, point clouds and disparity from a mono or stereo camera
with a trained FG-Depth model (docs/ARCHITECTURE.md, "A frame in the node"; topics and parameters in
docs/NODE.md).

The node is fg_depth_ros.depth_behaviour's wiring, configured and active from construction (the managed
variant is fg_depth_ros.depth_lifecycle_node). A missing or unloadable model or a bad parameter stops it at
start-up with one line on stderr and exit status 1; a signal at any moment ends it with status 0. With an
ONNX or TensorRT model the node never imports torch.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from fg_depth_core.errors import FgDepthError
from fg_depth_ros.depth_behaviour import DepthBehaviour, overrides
from fg_depth_ros.node_params import NODE_NAME, PARAMETERS
from fg_depth_ros.params import help_requested, usage


class DepthNode(DepthBehaviour, Node):
    """The depth node (module docstring), configured and active from construction. ``parameters``
    ({name: value}) override the declared defaults in addition to the command line / params file (tests,
    embedding). Raises FgDepthError (NodeParamError, ModelLoadError) at construction for a bad parameter or
    model."""

    def __init__(
        self, node_name: str = NODE_NAME, parameters: Optional[Dict[str, Any]] = None, **node_kwargs: Any
    ) -> None:
        super().__init__(node_name, parameter_overrides=overrides(parameters, node_kwargs), **node_kwargs)
        try:
            self._declare()
            self._configure()
            self._activate()
        except BaseException:
            self.destroy_node()
            raise


def spin(make_node: Callable[[], Node], name: str, args: Optional[List[str]] = None) -> int:
    """Run the node ``make_node`` builds until Ctrl-C / shutdown; the exit status: 0, or 1 for a bad
    parameter or model (the reason on stderr). A signal at any moment, model loading included, is a stop."""
    rclpy.init(args=args)
    node: Optional[Node] = None
    executor = SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        executor.spin()
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception as exc:
        if not rclpy.ok():
            return 0  # a signal shut ROS down mid-way (start-up, model loading): a stop, not an error
        if isinstance(exc, FgDepthError):
            print(f"[{name}] error: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def main(args: Optional[List[str]] = None) -> int:
    """Console entry point: run the node until Ctrl-C / shutdown (see :func:`spin`)."""
    if help_requested(sys.argv if args is None else args):
        print(usage(NODE_NAME, __doc__.split("\n\n")[0], PARAMETERS))
        return 0
    return spin(DepthNode, NODE_NAME, args)


if __name__ == "__main__":
    from fg_depth_ros.entry import run

    sys.exit(run(main))
