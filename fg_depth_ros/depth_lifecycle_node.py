"""``ros2 run fg_depth_ros depth_lifecycle_node``: depth_node as a ROS 2 managed (lifecycle) node, for systems
that bring their nodes up in order (``ros2 lifecycle set``, nav2's lifecycle manager, launch_ros'
LifecycleNode). The same parameters, topics and behaviour as depth_node (docs/NODE.md); the transitions:

- configure: load the model (for a TensorRT ``.onnx``, build or load the cached engine) and warm it up, make
  the publishers and the inference worker. A bad model fails the transition with the reason logged.
- activate: subscribe to the camera and start /diagnostics; depth flows.
- deactivate: unsubscribe and stop /diagnostics; the model stays loaded, so activating again is quick.
- cleanup: stop the worker, remove the publishers and free the model (back to unconfigured).
- shutdown: from any state, as cleanup.

Parameters are declared (and checked) at construction, as depth_node's; a bad value stops the program at
start-up with exit status 1.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn

from fg_depth_core.errors import FgDepthError
from fg_depth_ros.depth_behaviour import DepthBehaviour, overrides
from fg_depth_ros.depth_node import spin
from fg_depth_ros.node_params import NODE_NAME, PARAMETERS
from fg_depth_ros.params import help_requested, usage


class DepthLifecycleNode(DepthBehaviour, LifecycleNode):
    """depth_node's behaviour behind lifecycle transitions (module docstring); ``parameters`` as for
    DepthNode. Raises NodeParamError at construction for a bad parameter."""

    def __init__(
        self, node_name: str = NODE_NAME, parameters: Optional[Dict[str, Any]] = None, **node_kwargs: Any
    ) -> None:
        super().__init__(node_name, parameter_overrides=overrides(parameters, node_kwargs), **node_kwargs)
        self._declare()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except FgDepthError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS


def main(args: Optional[List[str]] = None) -> int:
    """Console entry point: run the lifecycle node (unconfigured until told) until Ctrl-C / shutdown."""
    if help_requested(sys.argv if args is None else args):
        print(usage("depth_lifecycle_node", __doc__.split("\n\n")[0], PARAMETERS))
        return 0
    return spin(DepthLifecycleNode, "depth_lifecycle_node", args)


if __name__ == "__main__":
    from fg_depth_ros.entry import run

    sys.exit(run(main))
