"""``ros2 run fg_depth_ros depth_node``: metric depth, point clouds and disparity from a mono or stereo camera
with a trained FG-Depth model (docs/ARCHITECTURE.md, "A frame in the node"; topics and parameters in
docs/NODE.md).

This file is wiring: parameters (node_params), inputs (inputs), publishers (outputs, topics) and timers. Input
callbacks hand the newest frame to a worker thread (worker) that runs the pure frame pipeline (pipeline) and
publishes; a frame arriving while it works replaces the waiting one, so latency stays one inference. Bad
input drops the frame with a throttled warning (problems) and the node goes on; a missing or unloadable
model or a bad parameter stops it at start-up with one line on stderr and exit status 1. With an ONNX model
the node never imports torch.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, List, Optional

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from fg_depth_core.camera_msgs import stamp_ns
from fg_depth_core.deploy.estimator import InputError
from fg_depth_core.errors import FgDepthError
from fg_depth_core.rectify import RectifierCache
from fg_depth_ros import diagnostics
from fg_depth_ros.conversions import ConversionError
from fg_depth_ros.inputs import Frame, MonoInput, StereoInput
from fg_depth_ros.node_params import NODE_NAME, PARAMETERS, NodeParamError, check_settings
from fg_depth_ros.outputs import Outputs
from fg_depth_ros.params import changed, declare, help_requested, usage
from fg_depth_ros.pipeline import (
    BadInput,
    decode_mono,
    decode_stereo,
    depth_range,
    estimate_depth,
    load_estimator,
    output_frame,
)
from fg_depth_ros.problems import ProblemLog
from fg_depth_ros.scale import StereoScale
from fg_depth_ros.topics import TOPIC, topic_qos
from fg_depth_ros.worker import NewestOnlyWorker


class DepthNode(Node):
    """The depth node (module docstring). ``parameters`` ({name: value}) override the declared defaults in
    addition to the command line / params file (tests, embedding). Raises FgDepthError (NodeParamError,
    ModelLoadError) at construction for a bad parameter or model.

    Counters for tests and tools: ``received`` (frames handed to the worker), ``dropped`` (replaced by a
    newer frame before inference), ``rejected`` (bad input), ``errors`` (unexpected failures),
    ``published`` (depth images out); ``last_problem`` is the text of the newest warning; ``notes`` the
    one-time warnings logged (the camera's aspect under input_fit stretch), each once.
    """

    def __init__(
        self, node_name: str = "depth_node", parameters: Optional[Dict[str, Any]] = None, **node_kwargs: Any
    ) -> None:
        overrides = list(node_kwargs.pop("parameter_overrides", None) or [])
        overrides += [Parameter(k, value=v) for k, v in (parameters or {}).items()]
        super().__init__(node_name, parameter_overrides=overrides, **node_kwargs)
        self._worker: Optional[NewestOnlyWorker] = None
        self.scale: Optional[StereoScale] = None
        self.notes: List[str] = []
        try:
            self._setup()
        except BaseException:
            self.destroy_node()
            raise

    def _setup(self) -> None:
        self.settings = s = check_settings(declare(self, PARAMETERS, NodeParamError))
        self.estimator = load_estimator(s)
        info = self.estimator.info
        self.limits = depth_range(s, info.min_depth, info.max_depth)
        self.stereo = s.mode == "stereo"
        self.stats = diagnostics.FrameStats()
        self.rectifiers = RectifierCache()  # raw cameras: maps once per calibration (worker thread only)
        self.problems = ProblemLog(self.get_logger().name)
        #: /diagnostics: the status of "<namespace/>depth_node: depth", for the camera (the images' frame_id,
        #: the input topic until one arrives), as the diagnostic aggregator groups hardware.
        self.status_name = f"{self.get_fully_qualified_name().lstrip('/')}: depth"
        if s.scale_source == "stereo":
            self.scale = StereoScale.from_params(s.scale, self.limits[0], self._on_scale_error)
        self.outputs = Outputs(self, s, self.stereo, self.scale is not None)
        self._worker = NewestOnlyWorker("depth_inference", self._process, self._on_frame_error)
        camera = topic_qos(TOPIC["image"], s)
        if self.stereo:
            self.input = StereoInput(self, camera, s.transport, s.sync, self._on_frame)
        else:
            self.input = MonoInput(self, camera, s.transport, self._on_frame, self._reject)
        self.camera_id = next(iter(self.input.topics.values()))
        self.create_timer(s.diagnostics.period, self._on_diagnostics)
        # After declaring: rclpy runs on-set callbacks for declarations too.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f"{s.mode} depth from {s.model} ({self.estimator.backend_name} on {self.estimator.device}, "
            f"network {info.width}x{info.height} (input_fit {s.input_fit}), depth "
            f"{self.limits[0]:g}..{self.limits[1]:g} m, output at {s.output_resolution} resolution"
            f"{', stereo scale correction' if self.scale else ''}); "
            f"{self.input.describe()}"
        )

    # ------------------------------------------------------------------------------------------ frames

    def _on_frame(self, frame: Frame) -> None:
        self.stats.input_rate.tick()
        if not self.outputs.wanted():
            # Nobody listens: the frame is counted and let go, the model stays idle. Inputs stay subscribed,
            # so the next frame after a subscriber appears is processed at once.
            self.stats.count("unwanted")
            return
        self._worker.submit(frame)

    def _process(self, frame: Frame, received_at: float) -> None:
        """Inference and publishing of one frame (the worker thread)."""
        start = time.monotonic()
        self.camera_id = frame.images[0].header.frame_id or self.camera_id
        s = self.settings  # one consistent set of values while parameters may change
        topics = self.input.topics
        if self.stereo:
            camera = decode_stereo(*frame.images, *frame.infos, s.rectified, topics, self.rectifiers)
            if camera.rig.notes:
                where = f"{topics['left/camera_info']}, {topics['right/camera_info']}"
                self._note(
                    f"{where}: stereo calibration accepted with residuals: " + "; ".join(camera.rig.notes)
                )
        else:
            camera = decode_mono(frame.images[0], frame.infos[0], s.rectified, topics, self.rectifiers)
        # Read once: the scale worker may update it while this frame goes out.
        scale = self.scale.value if self.scale is not None else 1.0
        result = estimate_depth(
            self.estimator, camera, s.output_resolution, self.limits, scale, s.out_of_range
        )
        if result.note is not None:
            self._note(result.note)
        # What the depth covers (the crop window under input_fit crop): colours and stereo scale read it.
        camera = output_frame(camera, result)
        if self.scale is not None:
            self.scale.submit(camera.rgb, camera.right, camera.rig, result.network_depth)
        header = frame.images[0].header
        # Plain nanoseconds: a camera clock slightly ahead gives a negative age, which rclpy's Duration
        # refuses on some distributions. Counted just before publishing, so that a subscriber that has the
        # depth also finds it counted.
        stamp_age = (self.get_clock().now().nanoseconds - stamp_ns(frame.images[0])) * 1e-9
        self.stats.depth_published(time.monotonic(), received_at, stamp_age, result.inference)
        self.outputs.publish_depth(result, header)
        self.outputs.publish_extras(result, camera, header, s, self.limits)
        self.stats.processing.add(time.monotonic() - start)

    def _note(self, text: str) -> None:
        """Warn once per distinct note (a calibration's accepted residuals, an aspect mismatch), not per
        frame: a new calibration's notes carry other numbers and are reported again."""
        if text not in self.notes:
            self.notes.append(text)  # only the worker thread writes it
            self.get_logger().warning(text)

    # ------------------------------------------------------------------------------------------ problems

    def _reject(self, text: str) -> None:
        self.stats.count("rejected")
        self.problems.warn(f"{text}; frame dropped")

    def _on_frame_error(self, exc: BaseException) -> None:
        if not self.context.ok():
            return  # shutting down: publishing fails, and that is no news
        if isinstance(exc, (ConversionError, BadInput, InputError)):
            self._reject(str(exc))
            return
        self.stats.count("errors")
        self.problems.warn(f"processing a frame failed: {type(exc).__name__}: {exc}; frame dropped")

    def _on_scale_error(self, exc: BaseException) -> None:
        self.stats.count("errors")
        self.problems.warn(f"stereo scale measurement failed: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------------ diagnostics

    def _on_diagnostics(self) -> None:
        stall = self.input.check()
        if stall is not None:
            self.problems.warn(stall)
        values = self.diagnostic_values()
        level, message = diagnostics.health(
            *self.stats.new_problems(),
            stall is not None,
            values["input_rate_hz"],
            self.last_problem,
            ", ".join(self.input.topics.values()),
            self.outputs.wanted(),
        )
        status = diagnostics.diagnostic_status(self.status_name, self.camera_id, level, message, values)
        self.outputs.diagnostics.publish(
            diagnostics.diagnostic_array(self.get_clock().now().to_msg(), [status])
        )

    def diagnostic_values(self, now: Optional[float] = None) -> Dict[str, Any]:
        """The numbers /diagnostics reports: the model and mode, rates in Hz and latency percentiles in ms
        (fg_depth_ros.diagnostics.FrameStats), frame counts since start, the scale and the last problem."""
        info = self.estimator.info
        return {
            "mode": self.settings.mode,
            "backend": self.estimator.backend_name,
            "device": self.estimator.device,
            "network": f"{info.width}x{info.height}",
            "output_resolution": self.settings.output_resolution,
            **self.stats.values(self.received, self.dropped, now),
            "scale_source": self.settings.scale_source,
            "scale": self.scale.value if self.scale is not None else 1.0,
            "scale_measurements": self.scale.measurements if self.scale is not None else 0,
            "last_problem": self.last_problem,
        }

    received = property(lambda self: self._worker.submitted if self._worker else 0)
    dropped = property(lambda self: self._worker.dropped if self._worker else 0)
    rejected = property(lambda self: self.stats.rejected)
    errors = property(lambda self: self.stats.errors)
    published = property(lambda self: self.stats.published)
    last_problem = property(lambda self: self.problems.last_problem)
    problem_counts = property(lambda self: self.problems.counts)

    # ------------------------------------------------------------------------------------------ parameters

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        """Validate run-time changes and apply them all or none, swapping in a new settings object whole (the
        worker reads either the old or the new one). Applied here rather than in a post-set callback, which
        Humble's rclpy lacks; this is the node's only on-set callback, so no later one can still refuse."""
        changes = {p.name: p.value for p in params}
        try:
            settings = changed(PARAMETERS, self.settings, changes, check_settings, NodeParamError, NODE_NAME)
        except NodeParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if settings is not self.settings:
            self.settings = settings
            applied = sorted(n for n in changes if n in PARAMETERS)
            self.get_logger().info("parameters changed: " + ", ".join(f"{n}={changes[n]}" for n in applied))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------ shutdown

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the workers have nothing left to do (tests); True if they are idle."""
        deadline = time.monotonic() + timeout
        workers = [w for w in (self._worker, self.scale and self.scale.worker) if w]
        while not all(w.idle() for w in workers):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def destroy_node(self) -> None:
        """Stop the workers (after their current frame), release the model, then destroy the node."""
        for worker in (self._worker, self.scale and self.scale.worker):
            if worker:
                worker.stop()
        # Free the model (and its runtime's thread pool) now, not whenever the garbage collector breaks the
        # node's reference cycles: that may happen in a process forked later (multiprocessing, DataLoader),
        # where destroying ONNX Runtime's thread-pool state inherited from this process hangs for ever.
        self.estimator = None
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> int:
    """Console entry point: run the node until Ctrl-C / shutdown; returns the exit status (1 for a bad
    parameter or model, with the reason on stderr)."""
    if help_requested(sys.argv if args is None else args):
        print(usage(NODE_NAME, __doc__.split("\n\n")[0], PARAMETERS))
        return 0
    rclpy.init(args=args)
    node: Optional[DepthNode] = None
    executor = SingleThreadedExecutor()
    try:
        node = DepthNode()
        executor.add_node(node)
        executor.spin()
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception as exc:
        if not rclpy.ok():
            return 0  # a signal shut ROS down mid-way (start-up, model loading): a stop, not an error
        if isinstance(exc, FgDepthError):
            print(f"[depth_node] error: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    from fg_depth_ros.entry import run

    sys.exit(run(main))
