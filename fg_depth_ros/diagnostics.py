"""Frame statistics of depth_node and its /diagnostics message.

:class:`RateMeter` and :class:`LatencyWindow` are plain thread-safe counters (monotonic seconds in, Hz and
milliseconds out); :class:`FrameStats` holds the node's counts and timing windows; :func:`health` judges a
report period and :func:`diagnostic_status` turns a snapshot into one diagnostic_msgs status, the shape that
``rqt_runtime_monitor`` and the diagnostic aggregator expect.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Deque, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class RateMeter:
    """Events per second over the last ``window`` seconds (monotonic clock)."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = float(window)
        self._times: Deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: Optional[float] = None) -> None:
        """Record one event at ``now`` (time.monotonic() seconds)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        """Hz: events in the window divided by the window (0 without events)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            return len(self._times) / self.window


class LatencyWindow:
    """The last ``size`` durations (seconds), for percentiles in milliseconds."""

    def __init__(self, size: int = 200) -> None:
        self._values: Deque[float] = collections.deque(maxlen=int(size))
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(float(seconds))

    def __len__(self) -> int:
        return len(self._values)

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile (0..100) in milliseconds, NaN when empty."""
        with self._lock:
            values = list(self._values)
        return float(np.percentile(values, q) * 1e3) if values else math.nan

    def values(self) -> Sequence[float]:
        with self._lock:
            return list(self._values)


#: Percentiles reported for each timing window.
PERCENTILES = (50, 95)


class FrameStats:
    """Counts since start (frames published, rejected as bad input, failed with errors) and timing windows of
    a node's frames; thread-safe (callbacks and workers update it concurrently).

    Windows, in seconds: latency (input stamp -> depth published, the node's clock), node_latency (frame
    received -> depth published), processing (the worker's whole frame), inference (the model alone) and
    overhead (per frame, latency minus inference: what transport, queueing and the node add).
    """

    def __init__(self) -> None:
        self.published = 0
        self.rejected = 0
        self.errors = 0
        #: Frames that arrived while no output had a subscriber (not inferred).
        self.unwanted = 0
        self.latency = LatencyWindow()
        self.node_latency = LatencyWindow()
        self.processing = LatencyWindow()
        self.inference = LatencyWindow()
        self.overhead = LatencyWindow()
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self._lock = threading.Lock()
        self._reported = (0, 0)

    def count(self, counter: str) -> None:
        """Add one to ``counter`` ("published", "rejected", "errors" or "unwanted")."""
        with self._lock:  # += is not atomic across threads
            setattr(self, counter, getattr(self, counter) + 1)

    def depth_published(self, now: float, received_at: float, stamp_age: float, inference: float) -> None:
        """Record a frame whose depth went out at ``now`` (monotonic s), received at ``received_at``, whose
        stamp was ``stamp_age`` seconds old and whose inference took ``inference`` seconds."""
        self.node_latency.add(now - received_at)
        self.latency.add(stamp_age)
        self.inference.add(inference)
        self.overhead.add(stamp_age - inference)
        self.output_rate.tick(now)
        self.count("published")

    def new_problems(self) -> Tuple[int, int]:
        """(rejected, errors) since the previous call."""
        with self._lock:
            last_rejected, last_errors = self._reported
            self._reported = (self.rejected, self.errors)
            return self.rejected - last_rejected, self.errors - last_errors

    def values(self, received: int, dropped: int, now: Optional[float] = None) -> Dict[str, float]:
        """Rates (Hz), percentiles (ms over the windows) and frame counts by diagnostics key; ``received``
        and ``dropped`` are the worker's counts (frames handed over, frames replaced before inference)."""
        now = time.monotonic() if now is None else now
        values = {"input_rate_hz": self.input_rate.rate(now), "output_rate_hz": self.output_rate.rate(now)}
        for name in ("latency", "node_latency", "processing", "inference", "overhead"):
            window = getattr(self, name)
            for q in PERCENTILES:
                values[f"{name}_p{q}_ms"] = window.percentile_ms(q)
        counts = (received, self.published, dropped, self.rejected, self.errors, self.unwanted)
        names = (
            "frames_received", "frames_published", "frames_dropped", "frames_rejected", "errors",
            "frames_without_subscribers",
        )  # fmt: skip
        return {**values, **dict(zip(names, counts))}


def health(
    new_rejected: int,
    new_errors: int,
    sync_stalled: bool,
    input_rate: float,
    last_problem: str,
    inputs: str,
    wanted: bool = True,
) -> Tuple[int, str]:
    """The level and message of one report period: errors first, then stereo that does not synchronise,
    bad input, no input at all (on ``inputs``, the topics), and input that nobody wants (no subscriber to any
    output: fine, but worth saying)."""
    if new_errors:
        return ERROR, f"{new_errors} frame(s) failed: {last_problem}"
    if sync_stalled:
        return WARN, "stereo inputs do not synchronise"
    if new_rejected:
        return WARN, f"{new_rejected} bad frame(s): {last_problem}"
    if input_rate == 0.0:
        return WARN, f"no input on {inputs}"
    if not wanted:
        return OK, "idle: no subscriber to any output, frames are not inferred"
    return OK, "ok"


def _text(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def diagnostic_status(
    name: str, hardware_id: str, level: int, message: str, values: Mapping[str, object]
) -> DiagnosticStatus:
    """A DiagnosticStatus whose key/values are ``values`` (floats with 3 decimals)."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value=_text(v)) for k, v in values.items()],
    )


def diagnostic_array(stamp, statuses: Sequence[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = list(statuses)
    return msg


def status_values(msg: DiagnosticArray, name: str) -> Dict[str, str]:
    """The key/values of status ``name`` in ``msg`` (tests and tools); KeyError when absent."""
    for status in msg.status:
        if status.name == name:
            return {kv.key: kv.value for kv in status.values}
    raise KeyError(name)


OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
