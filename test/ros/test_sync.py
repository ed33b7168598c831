"""fg_depth_ros.sync: the approximate-time synchroniser as pure logic (exact matches, jitter, a missing
message, out-of-order arrival, queue overflow, the slop boundary, the tightest set), the stereo inputs'
watchdog (fg_depth_ros.inputs.SyncWatchdog) at given times, then make_synchronizer
on real rclpy topics and its wiring of message_filters when that is importable."""

from __future__ import annotations

import os
import sys
import time
import types
from typing import List, Tuple

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from fg_depth_ros.inputs import SyncWatchdog
from fg_depth_ros.sync import ApproximateTimeSync, make_synchronizer, stamp_ns

MS = 1_000_000  # nanoseconds


class _Recorder:
    """The callback: records each emitted set as a tuple of (input, stamp) labels."""

    def __init__(self) -> None:
        self.sets: List[Tuple] = []

    def __call__(self, *msgs) -> None:
        self.sets.append(tuple(msgs))


def _sync(count: int = 4, queue_size: int = 10, slop: float = 0.02):
    rec = _Recorder()
    return ApproximateTimeSync(count, queue_size, slop, rec), rec


def _feed(sync: ApproximateTimeSync, events) -> None:
    """events: (input, stamp in ms) in arrival order; the message is the label f"{input}@{stamp}"."""
    for index, stamp in events:
        sync.add(index, f"{index}@{stamp}", stamp=int(round(stamp * MS)))


def _set(stamps) -> Tuple[str, ...]:
    return tuple(f"{i}@{s}" for i, s in enumerate(stamps))


def test_exact_stamps_emit_one_set_per_frame_in_input_order_once_complete():
    sync, rec = _sync()
    for frame in range(3):
        t = 100 * frame
        for index in (2, 0, 3):
            sync.add(index, f"{index}@{t}", stamp=t * MS)
        assert len(rec.sets) == frame, "a set needs all four inputs"
        sync.add(1, f"1@{t}", stamp=t * MS)
        assert rec.sets[-1] == _set([t] * 4)
    assert sync.emitted == 3 and sync.dropped == [0, 0, 0, 0]
    assert all(sync.queued(i) == [] for i in range(4))


def test_jitter_within_slop_pairs_the_right_frames():
    sync, rec = _sync(count=2, slop=0.02)
    # 10 Hz streams, right camera 0..15 ms late: each left pairs with its own right, never the next one.
    jitter = [0, 15, 7, 12, 3]
    for frame, j in enumerate(jitter):
        _feed(sync, [(0, 100 * frame), (1, 100 * frame + j)])
    assert rec.sets == [_set([100 * f, 100 * f + j]) for f, j in enumerate(jitter)]
    assert sync.dropped == [0, 0]


def test_a_missing_message_skips_its_frame_and_drops_the_orphans():
    sync, rec = _sync(count=4, slop=0.01)
    _feed(sync, [(0, 0), (1, 0), (2, 0), (3, 0)])
    # Frame 100: the right image (input 1) never comes.
    _feed(sync, [(0, 100), (2, 100), (3, 100)])
    _feed(sync, [(0, 200), (1, 200), (2, 200), (3, 200)])
    assert rec.sets == [_set([0] * 4), _set([200] * 4)]
    # Frame 100's three messages are older than the emitted frame 200: dropped, not kept for ever.
    assert sync.dropped == [1, 0, 1, 1]
    assert all(sync.queued(i) == [] for i in range(4))


def test_out_of_order_arrival_still_pairs_by_stamp():
    sync, rec = _sync(count=2, slop=0.02)
    # Right images arrive late and the left stream's messages swap places.
    _feed(sync, [(0, 200), (0, 100), (1, 100), (0, 300), (1, 200), (1, 300)])
    assert rec.sets == [_set([100, 100]), _set([200, 200]), _set([300, 300])]
    assert sync.dropped == [0, 0]


def test_a_message_older_than_the_last_emitted_set_is_dropped():
    sync, rec = _sync(count=2, slop=0.02)
    _feed(sync, [(0, 200), (1, 200)])
    _feed(sync, [(0, 100), (1, 100)])  # too late: emitting them would go back in time
    assert rec.sets == [_set([200, 200])]
    assert sync.dropped == [1, 1]
    _feed(sync, [(1, 300), (0, 300)])
    assert rec.sets[-1] == _set([300, 300])


def test_queue_overflow_drops_the_oldest_message():
    sync, rec = _sync(count=2, queue_size=2, slop=0.01)
    _feed(sync, [(0, 0), (0, 100), (0, 200), (0, 300)])
    assert sync.queued(0) == [200 * MS, 300 * MS] and sync.dropped == [2, 0]
    _feed(sync, [(1, 0)])  # its partner was pushed out of the queue
    assert rec.sets == []
    _feed(sync, [(1, 200)])
    assert rec.sets == [_set([200, 200])]
    # 1@0 is older than the emitted 1@200 and left unmatched: dropped too.
    assert sync.dropped == [2, 1] and sync.queued(0) == [300 * MS]


def test_the_slop_boundary_is_inclusive_to_the_nanosecond():
    sync, rec = _sync(count=2, slop=0.05)
    sync.add(0, "a", stamp=1_000 * MS)
    sync.add(1, "b", stamp=1_050 * MS)  # exactly slop apart
    assert rec.sets == [("a", "b")]
    sync.add(0, "c", stamp=2_000 * MS)
    sync.add(1, "d", stamp=2_050 * MS + 1)  # 1 ns over
    assert rec.sets == [("a", "b")]
    sync.add(1, "e", stamp=1_950 * MS)  # within slop on the other side
    assert rec.sets[-1] == ("c", "e")


def test_zero_slop_needs_identical_stamps():
    sync, rec = _sync(count=2, slop=0.0)
    _feed(sync, [(0, 10), (1, 11), (1, 10)])
    assert rec.sets == [_set([10, 10])]


def test_the_tightest_set_wins_not_the_first_close_one():
    # Arrival t=100 on input 0; input 1 has 90 and 104, input 2 has 88. Taking each input's closest stamp
    # (104, 88) spans 16 ms; the tightest set (90, 88) spans 12 ms.
    sync, rec = _sync(count=3, slop=0.02)
    _feed(sync, [(1, 90), (1, 104), (2, 88), (0, 100)])
    assert rec.sets == [_set([100, 90, 88])]
    assert sync.queued(1) == [104 * MS]
    # Two candidates for one stream: the closer one is taken and the older orphan dropped.
    sync, rec = _sync(count=2, slop=0.02)
    _feed(sync, [(1, 80), (1, 95), (0, 100)])
    assert rec.sets == [_set([100, 95])] and sync.dropped == [0, 1]


def test_same_stamp_twice_keeps_the_newer_message():
    sync, rec = _sync(count=2)
    sync.add(0, "old", stamp=5)
    sync.add(0, "new", stamp=5)
    sync.add(1, "r", stamp=5)
    assert rec.sets == [("new", "r")]


def test_stamps_come_from_the_headers_and_the_set_is_returned():
    sync, rec = _sync(count=2, slop=0.001)
    left, right = Image(), CameraInfo()
    left.header.stamp.sec, left.header.stamp.nanosec = 3, 500_000_000
    right.header.stamp.sec, right.header.stamp.nanosec = 3, 500_400_000
    assert stamp_ns(left) == 3_500_000_000
    assert sync.add(0, left) is None
    assert sync.add(1, right) == (left, right)
    assert rec.sets == [(left, right)]


def test_sync_watchdog_is_quiet_until_messages_arrive_and_stall():
    # Times are exact binary fractions: the boundaries are compared as written.
    dog = SyncWatchdog(4, warn_after=2.0)
    assert dog.stalled(now=0.0) is None and dog.stalled(now=1e6) is None  # started, nothing arrived
    dog.arrived(0, now=100.0)
    dog.arrived(2, now=100.5)
    dog.arrived(0, now=101.5)
    assert dog.stalled(now=101.5) is None  # 1.5 s since the first unsynchronised message
    assert dog.stalled(now=102.0) == (2.0, [2, 0, 1, 0])
    assert dog.stalled(now=103.5) == (3.5, [2, 0, 1, 0])  # the newest 2.0 s ago: still arriving
    assert dog.stalled(now=104.0) is None  # nothing for 2.5 s: the inputs stopped, not a sync problem
    dog.arrived(1, now=105.0)
    assert dog.stalled(now=105.0) == (5.0, [2, 1, 1, 0])  # counted from the first message since a set
    dog.synchronised()
    assert dog.stalled(now=105.0) is None and dog.stalled(now=500.0) is None
    dog.arrived(3, now=600.0)
    assert dog.stalled(now=601.5) is None and dog.stalled(now=602.0) == (2.0, [0, 0, 0, 1])


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="needs >= 2 inputs"):
        ApproximateTimeSync(1, 10, 0.1, print)
    with pytest.raises(ValueError, match="queue_size must be >= 1"):
        ApproximateTimeSync(2, 0, 0.1, print)
    with pytest.raises(ValueError, match="slop must be >= 0"):
        ApproximateTimeSync(2, 10, -0.1, print)
    with pytest.raises(IndexError):
        ApproximateTimeSync(2, 10, 0.1, print).add(2, "x", stamp=0)


# ----------------------------------------------------------------------------------- with rclpy topics


@pytest.fixture
def context():
    ctx = rclpy.Context()
    # A domain of its own: parallel test processes must not hear each other's topics.
    rclpy.init(context=ctx, domain_id=os.getpid() % 100 + 101)
    yield ctx
    rclpy.shutdown(context=ctx)


def _stamped(msg, sec: int, nanosec: int):
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def test_make_synchronizer_without_message_filters_syncs_real_topics(context, monkeypatch):
    monkeypatch.setitem(sys.modules, "message_filters", None)  # as on a pip-only install
    node = Node("sync_sub", context=context)
    pub_node = Node("sync_pub", context=context)
    got = []
    inputs = [
        (Image, "left/image_rect"),
        (Image, "right/image_rect"),
        (CameraInfo, "left/camera_info"),
        (CameraInfo, "right/camera_info"),
    ]
    sync = make_synchronizer(node, inputs, queue_size=5, slop=0.01, callback=lambda *m: got.append(m))
    assert sync.backend == "fg_depth_ros" and len(sync.subscriptions) == 4
    # Reliable publishers (like the player's) reach the best-effort SensorDataQoS subscriptions.
    pubs = [pub_node.create_publisher(t, topic, 10) for t, topic in inputs]
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(pub_node)
    deadline = time.monotonic() + 10
    while any(p.get_subscription_count() == 0 for p in pubs) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    for frame in range(3):
        for i, (pub, (msg_type, _)) in enumerate(zip(pubs, inputs)):
            pub.publish(_stamped(msg_type(), 7, frame * 100_000_000 + i * 1_000_000))  # 0-3 ms jitter
    while len(got) < 3 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    executor.shutdown()
    assert [[stamp_ns(m) for m in s] for s in got] == [
        [7_000_000_000 + f * 100_000_000 + i * 1_000_000 for i in range(4)] for f in range(3)
    ]
    assert [type(m) for m in got[0]] == [Image, Image, CameraInfo, CameraInfo]
    assert sync.dropped == [0, 0, 0, 0]
    sync.destroy()
    assert list(node.subscriptions) == []
    node.destroy_node()
    pub_node.destroy_node()


def test_make_synchronizer_uses_message_filters_when_importable(monkeypatch):
    made = {}

    class Subscriber:
        def __init__(self, node, msg_type, topic, qos_profile=None, **kwargs):
            self.node, self.msg_type, self.topic, self.qos = node, msg_type, topic, qos_profile

    class ApproximateTimeSynchronizer:
        def __init__(self, subs, queue_size, slop):
            made.update(subs=subs, queue_size=queue_size, slop=slop)

        def registerCallback(self, callback):  # noqa: N802 (message_filters' name)
            made["callback"] = callback

    fake = types.ModuleType("message_filters")
    fake.Subscriber, fake.ApproximateTimeSynchronizer = Subscriber, ApproximateTimeSynchronizer
    monkeypatch.setitem(sys.modules, "message_filters", fake)
    callback = object()
    sync = make_synchronizer("node", [(Image, "image"), (CameraInfo, "camera_info")], 7, 0.03, callback)
    assert sync.backend == "message_filters" and sync.dropped is None
    assert [(s.msg_type, s.topic) for s in made["subs"]] == [(Image, "image"), (CameraInfo, "camera_info")]
    assert (made["queue_size"], made["slop"], made["callback"]) == (7, 0.03, callback)
    # Camera topics default to SensorDataQoS (best effort).
    assert made["subs"][0].qos.reliability == rclpy.qos.qos_profile_sensor_data.reliability

    # The package's own implementation can still be forced.
    class FakeNode:
        def __init__(self):
            self.subs = []

        def create_subscription(self, msg_type, topic, callback, qos, **kwargs):
            self.subs.append((msg_type, topic, callback))
            return topic

    node = FakeNode()
    own = make_synchronizer(node, [(Image, "a"), (Image, "b")], 3, 0.01, callback, backend="fg_depth_ros")
    assert own.backend == "fg_depth_ros" and own.subscriptions == ["a", "b"] and own.sync.queue_size == 3
    with pytest.raises(ValueError, match="sync backend"):
        make_synchronizer("node", [], 7, 0.03, callback, backend="nope")


def test_forcing_message_filters_without_it_is_an_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "message_filters", None)
    with pytest.raises(ImportError, match="message_filters is not importable"):
        make_synchronizer("node", [(Image, "a"), (Image, "b")], 5, 0.01, print, backend="message_filters")
