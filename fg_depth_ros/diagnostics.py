"""Timing statistics of depth_node and its /diagnostics message.

:class:`RateMeter` and :class:`LatencyWindow` are plain thread-safe counters (monotonic seconds in, Hz and
milliseconds out); :func:`diagnostic_status` turns a snapshot of them into one diagnostic_msgs status, the
shape that ``rqt_runtime_monitor`` and the diagnostic aggregator expect.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Deque, Dict, Mapping, Optional, Sequence

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
