"""Approximate-time pairing of N message streams by header stamp (message_filters' ApproximateTimeSynchronizer
semantics), for installs without message_filters, and :func:`make_synchronizer`, which picks message_filters
when it is importable and this implementation otherwise, with the same callback signature.

The algorithm of :class:`ApproximateTimeSync`, run under a lock on every arrival of a message m with stamp t
on input i (stamps are integer nanoseconds from header.stamp):

1. Reject: m is dropped (counted in ``dropped[i]``) if t is not newer than the stamp input i last emitted,
   since any set it could join would go back in time.
2. Store: m enters input i's queue, keyed by stamp (a second message with the same stamp replaces the first,
   as in message_filters). If the queue then holds more than ``queue_size`` messages, its oldest is dropped.
3. Match: a set takes one message from every input, contains m, and spans max(stamp) - min(stamp) <= slop
   (inclusive). Among all such sets the one with the smallest span is chosen (ties: the one whose oldest
   stamp is oldest). A set becomes complete only when its last member arrives, so looking only at the sets
   that contain the arriving message finds every set as soon as it exists.
4. Emit: the callback gets the set's messages in input order. Each emitted message leaves its queue, and so
   does every older message of the same input (counted as dropped): it could only be emitted out of order.

Like message_filters, matching is greedy: a set is emitted as soon as it is complete, never held back for a
closer message that might still come (lowest latency). Compared with message_filters' Python
ApproximateTimeSynchronizer, which takes the first set (by closeness to m) whose span is strictly < slop and
keeps older messages until the queue overflows, this implementation picks the tightest set, includes the
boundary and discards messages that can no longer be emitted in order. On streams where each frame's stamps
lie closer than slop to each other and farther than slop from other frames' stamps, both emit the same sets.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from fg_depth_core.camera_msgs import stamp_ns

#: Which implementation make_synchronizer uses: "auto" (message_filters if importable), or force one.
BACKENDS = ("auto", "message_filters", "fg_depth_ros")


class ApproximateTimeSync:
    """Approximate-time synchroniser of ``count`` inputs (module docstring for the exact algorithm).

    queue_size: messages kept per input (>= 1); slop: the largest allowed stamp span of a set, in seconds
    (>= 0); callback(*msgs): called with one message per input, in input order, from the thread that called
    :meth:`add` (while holding the lock, so that sets are delivered in order; keep it short). ``dropped[i]``
    counts the messages of input i that were discarded unmatched; ``emitted`` counts the sets.
    """

    def __init__(self, count: int, queue_size: int, slop: float, callback: Callable[..., Any]) -> None:
        if count < 2:
            raise ValueError(f"approximate-time sync needs >= 2 inputs, got {count}")
        if queue_size < 1:
            raise ValueError(f"sync queue_size must be >= 1, got {queue_size}")
        if not slop >= 0:
            raise ValueError(f"sync slop must be >= 0 seconds, got {slop}")
        self.count = int(count)
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self.callback = callback
        # Per input: sorted stamps and {stamp: message}.
        self._stamps: List[List[int]] = [[] for _ in range(count)]
        self._messages: List[Dict[int, Any]] = [{} for _ in range(count)]
        self._last_emitted: List[Optional[int]] = [None] * count
        self._lock = threading.RLock()
        self.dropped = [0] * count
        self.emitted = 0

    def queued(self, index: int) -> List[int]:
        """Stamps (ns) waiting in input ``index``'s queue, oldest first."""
        with self._lock:
            return list(self._stamps[index])

    def add(self, index: int, msg: Any, stamp: Optional[int] = None) -> Optional[Tuple[Any, ...]]:
        """Offer ``msg`` on input ``index``; ``stamp`` (ns) defaults to msg.header.stamp. Returns the emitted
        set (also passed to the callback) or None."""
        if not 0 <= index < self.count:
            raise IndexError(f"sync input {index} out of range 0..{self.count - 1}")
        t = stamp_ns(msg) if stamp is None else int(stamp)
        with self._lock:
            last = self._last_emitted[index]
            if last is not None and t <= last:
                self.dropped[index] += 1
                return None
            stamps, messages = self._stamps[index], self._messages[index]
            if t not in messages:
                bisect.insort(stamps, t)
            messages[t] = msg
            if len(stamps) > self.queue_size:
                del messages[stamps.pop(0)]
                self.dropped[index] += 1
                if t not in messages:
                    return None
            chosen = self._best_set(index, t)
            if chosen is None:
                return None
            out = tuple(self._take(i, s) for i, s in enumerate(chosen))
            self.emitted += 1
            self.callback(*out)
            return out

    def _best_set(self, index: int, t: int) -> Optional[List[int]]:
        """Stamps (one per input) of the tightest set that contains stamp ``t`` of input ``index``."""
        slop = self.slop_ns
        candidates: List[List[int]] = []
        for i in range(self.count):
            if i == index:
                candidates.append([t])
                continue
            stamps = self._stamps[i]
            near = stamps[bisect.bisect_left(stamps, t - slop) : bisect.bisect_right(stamps, t + slop)]
            if not near:
                return None
            candidates.append(near)
        best: Optional[Tuple[int, int, List[int]]] = None
        # The tightest set has some oldest stamp lo <= t; for a given lo each other input's best pick is
        # its first stamp >= lo. Trying every candidate lo finds the optimum in O(C * N log C).
        lows = sorted({s for near in candidates for s in near if s <= t})
        for lo in lows:
            picks = []
            for near in candidates:
                j = bisect.bisect_left(near, lo)
                if j == len(near):
                    break
                picks.append(near[j])
            else:
                span = max(picks) - min(picks)
                if span <= slop and (best is None or (span, min(picks)) < best[:2]):
                    best = (span, min(picks), picks)
        return None if best is None else best[2]

    def _take(self, index: int, stamp: int) -> Any:
        """Remove and return the message ``stamp`` of input ``index`` and drop the older ones."""
        stamps, messages = self._stamps[index], self._messages[index]
        position = bisect.bisect_left(stamps, stamp)
        for old in stamps[:position]:
            del messages[old]
        self.dropped[index] += position
        del stamps[: position + 1]
        self._last_emitted[index] = stamp
        return messages.pop(stamp)


class Synchronizer:
    """What :func:`make_synchronizer` returns: the subscriptions and the synchroniser behind them.

    backend: "message_filters" or "fg_depth_ros"; sync: the ApproximateTimeSynchronizer or
    ApproximateTimeSync; subscriptions: the rclpy subscriptions (message_filters.Subscriber objects for
    message_filters), one per input. ``dropped`` is per-input counts (fg_depth_ros) or None (message_filters
    does not count).
    """

    def __init__(self, node: Any, backend: str, sync: Any, subscriptions: Sequence[Any]) -> None:
        self.node = node
        self.backend = backend
        self.sync = sync
        self.subscriptions = list(subscriptions)

    @property
    def dropped(self) -> Optional[List[int]]:
        return list(self.sync.dropped) if isinstance(self.sync, ApproximateTimeSync) else None

    def destroy(self) -> None:
        """Destroy the subscriptions."""
        for sub in self.subscriptions:
            self.node.destroy_subscription(getattr(sub, "sub", sub))
        self.subscriptions = []


def _message_filters() -> Any:
    try:
        import message_filters
    except ImportError:
        return None
    return message_filters


def make_synchronizer(
    node: Any,
    inputs: Sequence[Tuple[type, str]],
    queue_size: int,
    slop: float,
    callback: Callable[..., Any],
    qos_profile: Any = None,
    backend: str = "auto",
    callback_group: Any = None,
    on_arrival: Optional[Callable[[int], None]] = None,
) -> Synchronizer:
    """Subscribe ``node`` to ``inputs`` ((message type, topic) pairs, e.g. left image, right image, left info,
    right info) and call ``callback(*msgs)`` with approximately time-synchronised sets, in input order.
    ``on_arrival(i)``, if given, is called for every message of input i before it is offered to the
    synchroniser (a watchdog's view of the inputs, without reading the synchroniser's internals).

    backend: "auto" uses message_filters.ApproximateTimeSynchronizer when importable (a ROS install), else
    :class:`ApproximateTimeSync`; "message_filters" / "fg_depth_ros" force one. qos_profile defaults to
    SensorDataQoS (camera topics).
    """
    if backend not in BACKENDS:
        raise ValueError(f"sync backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if qos_profile is None:
        from fg_depth_ros.qos import camera_qos

        qos_profile = camera_qos()
    extra: Dict[str, Any] = {} if callback_group is None else {"callback_group": callback_group}
    mf = _message_filters() if backend in ("auto", "message_filters") else None
    if backend == "message_filters" and mf is None:
        raise ImportError("sync backend 'message_filters' requested but message_filters is not importable")
    if mf is not None:
        subs = [
            mf.Subscriber(node, msg_type, topic, qos_profile=qos_profile, **extra)
            for msg_type, topic in inputs
        ]
        if on_arrival is not None:
            # Registered before the synchroniser's own callback, so it sees each message first.
            for i, sub in enumerate(subs):
                sub.registerCallback(lambda _msg, i=i: on_arrival(i))
        sync = mf.ApproximateTimeSynchronizer(subs, queue_size, slop)
        sync.registerCallback(callback)
        return Synchronizer(node, "message_filters", sync, subs)
    own = ApproximateTimeSync(len(inputs), queue_size, slop, callback)
    subs = [
        node.create_subscription(msg_type, topic, _feeder(own, i, on_arrival), qos_profile, **extra)
        for i, (msg_type, topic) in enumerate(inputs)
    ]
    return Synchronizer(node, "fg_depth_ros", own, subs)


def _feeder(
    sync: ApproximateTimeSync, index: int, on_arrival: Optional[Callable[[int], None]]
) -> Callable[[Any], None]:
    def feed(msg: Any) -> None:
        if on_arrival is not None:
            on_arrival(index)
        sync.add(index, msg)

    return feed
