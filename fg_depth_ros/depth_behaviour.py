"""What depth_node does, wired once for both of its forms: a plain node (fg_depth_ros.depth_node) and a
managed lifecycle node (fg_depth_ros.depth_lifecycle_node), as :class:`DepthBehaviour`, a mixin of rclpy
nodes.

Wiring: parameters (node_params), inputs (inputs), publishers (outputs, topics) and timers. Input callbacks
hand the newest frame to a worker thread (worker) that runs the pure frame pipeline (pipeline) and publishes;
a frame arriving while it works replaces the waiting one, so latency stays one inference. Bad input drops the
frame with a throttled warning (problems) and the node goes on. docs/ARCHITECTURE.md, "A frame in the node".
"""


from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter

from fg_depth_core.camera_msgs import stamp_ns
from fg_depth_core.deploy.estimator import InputError
from fg_depth_core.rectify import RectifierCache
from fg_depth_ros import diagnostics
from fg_depth_ros.conversions import ConversionError
from fg_depth_ros.inputs import Frame, MonoInput, StereoInput
from fg_depth_ros.node_params import NODE_NAME, PARAMETERS, NodeParamError, check_settings
from fg_depth_ros.outputs import Outputs
from fg_depth_ros.params import changed, declare
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


class DepthBehaviour:
    """What the depth node does, in the four steps of a ROS 2 lifecycle, for a plain node (:class:`DepthNode`
    runs them all at construction) and a lifecycle node (fg_depth_ros.depth_lifecycle_node): declare the
    parameters; configure (load the model, make the publishers and the worker); activate (subscribe to the
    camera, start the diagnostics timer); deactivate and clean up in reverse. Mixed into an rclpy Node.

    Counters for tests and tools: ``received`` (frames handed to the worker), ``dropped`` (replaced by a
    newer frame before inference), ``rejected`` (bad input), ``errors`` (unexpected failures),
    ``published`` (depth images out); ``last_problem`` is the text of the newest warning; ``notes`` the
    one-time warnings logged (the camera's aspect under input_fit stretch, a rig's residuals), each once.
    """

    def _declare(self) -> None:
        self._worker: Optional[NewestOnlyWorker] = None
        self.scale: Optional[StereoScale] = None
        self.estimator = None
        self.input = None
        self._timer = None
        self.notes: List[str] = []
        self.settings = check_settings(declare(self, PARAMETERS, NodeParamError))
        # After declaring: rclpy runs on-set callbacks for declarations too.
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _configure(self) -> None:
        """Load (and warm up) the model, make the publishers and the workers; raises FgDepthError."""
        s = self.settings
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

    def _activate(self) -> None:
        """Subscribe to the camera and start reporting /diagnostics."""
        s, info = self.settings, self.estimator.info
        camera = topic_qos(TOPIC["image"], s)
        if self.stereo:
            self.input = StereoInput(self, camera, s.transport, s.sync, self._on_frame)
        else:
            self.input = MonoInput(self, camera, s.transport, self._on_frame, self._reject)
        self.camera_id = next(iter(self.input.topics.values()))
        self._timer = self.create_timer(s.diagnostics.period, self._on_diagnostics)
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

    def _deactivate(self) -> None:
        """Unsubscribe from the camera, stop the diagnostics timer; a frame in the worker still goes out."""
        if self.input is not None:
            self.input.destroy()
            self.input = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _cleanup(self) -> None:
        """Stop the workers (after their current frame), remove the publishers and release the model."""
        for worker in (self._worker, self.scale and self.scale.worker):
            if worker:
                worker.stop()
        self._worker, self.scale = None, None
        if getattr(self, "outputs", None) is not None:
            self.outputs.destroy()
            self.outputs = None
        # Free the model (and its runtime's thread pool) now, not whenever the garbage collector breaks the
        # node's reference cycles: that may happen in a process forked later (multiprocessing, DataLoader),
        # where destroying ONNX Runtime's thread-pool state inherited from this process hangs for ever.
        self.estimator = None

    def _release(self) -> None:
        """Everything the node holds, in order: inputs and timer first, then workers, publishers and model."""
        self._deactivate()
        self._cleanup()

    def destroy_node(self) -> None:
        """Release everything (:meth:`_release`), then destroy the node (the next class in the MRO)."""
        self._release()
        super().destroy_node()  # type: ignore[misc]


def overrides(parameters: Optional[Dict[str, Any]], node_kwargs: Dict[str, Any]) -> List[Parameter]:
    """The node's parameter_overrides: those in ``node_kwargs`` (taken out) and ``parameters``."""
    out = list(node_kwargs.pop("parameter_overrides", None) or [])
    return out + [Parameter(k, value=v) for k, v in (parameters or {}).items()]
