"""depth_node's camera inputs: a mono camera (image + camera_info) or a synchronised stereo pair, each
handing complete frames to the node, and the watchdog that notices stereo inputs that never synchronise.

Mono pairs each image with the newest camera_info (calibration rarely changes, and drivers publish it at
their own pace); an image before any camera_info is rejected. Stereo pairs left/right images and camera
infos with an approximate-time synchroniser (fg_depth_ros.sync: message_filters where installed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from sensor_msgs.msg import CameraInfo, Image

from fg_depth_ros.node_params import SyncParams
from fg_depth_ros.sync import make_synchronizer
from fg_depth_ros.topics import MONO_INPUTS, STEREO_INPUTS, TOPIC, image_subscription


@dataclass
class Frame:
    """One input: the image(s) (mono: one; stereo: left, right; Image or CompressedImage) and their
    camera_info(s)."""

    images: Tuple[Any, ...]
    infos: Tuple[CameraInfo, ...]


class SyncWatchdog:
    """Tells when stereo messages keep arriving but no synchronised set comes out of them.

    Stalled: messages arrived since the last set (or since start), the newest within ``warn_after`` seconds
    (an input that stopped is 'no input', not a synchronisation problem), and the first of them at least
    ``warn_after`` seconds ago. Nothing is stalled before the first message. Times are monotonic seconds.
    """

    def __init__(self, inputs: int, warn_after: float) -> None:
        self.warn_after = float(warn_after)
        self._lock = threading.Lock()
        self._waiting = [0] * inputs
        self._first_waiting: Optional[float] = None
        self._last_arrival: Optional[float] = None

    def arrived(self, index: int, now: Optional[float] = None) -> None:
        """A message of input ``index`` arrived."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._waiting[index] += 1
            self._last_arrival = now
            if self._first_waiting is None:
                self._first_waiting = now

    def synchronised(self) -> None:
        """A set came out: everything that arrived so far is accounted for."""
        with self._lock:
            self._waiting = [0] * len(self._waiting)
            self._first_waiting = None

    def stalled(self, now: Optional[float] = None) -> Optional[Tuple[float, List[int]]]:
        """(seconds without a set, messages per input since the last set) when stalled, else None."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._first_waiting is None or self._last_arrival is None:
                return None
            waited = now - self._first_waiting
            if waited < self.warn_after or now - self._last_arrival > self.warn_after:
                return None
            return waited, list(self._waiting)


class MonoInput:
    """Subscribes ``node`` to ``image`` and ``camera_info`` and calls ``on_frame(Frame)`` per image, or
    ``on_reject(text)`` for an image that has no camera_info yet."""

    def __init__(
        self,
        node: Any,
        qos: Any,
        transport: str,
        on_frame: Callable[[Frame], None],
        on_reject: Callable[[str], None],
    ) -> None:
        image_type, image_topic = image_subscription("image", transport)
        self.topics: Dict[str, str] = {t: node.resolve_topic_name(t) for t in MONO_INPUTS}
        self.topics["image"] = node.resolve_topic_name(image_topic)
        self._on_frame, self._on_reject = on_frame, on_reject
        self._latest_info: Optional[CameraInfo] = None
        self.stalled: Optional[Tuple[float, List[int]]] = None
        self._node = node
        self._subscriptions = [
            node.create_subscription(CameraInfo, TOPIC["camera_info"].name, self._on_camera_info, qos),
            node.create_subscription(image_type, image_topic, self._on_image, qos),
        ]

    def destroy(self) -> None:
        """Unsubscribe."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._latest_info = msg

    def _on_image(self, msg: Image) -> None:
        info = self._latest_info
        if info is None:
            self._on_reject(
                f"{self.topics['camera_info']}: no camera_info received yet, image on {self.topics['image']} "
                "dropped (is the camera calibrated, and camera_info remapped with the image?)"
            )
            return
        self._on_frame(Frame((msg,), (info,)))

    def check(self) -> Optional[str]:
        """A problem to report now, or None (mono inputs cannot fail to synchronise)."""
        return None

    def describe(self) -> str:
        return "inputs " + ", ".join(self.topics.values())


class StereoInput:
    """Subscribes ``node`` to the four stereo topics (``sync`` settings) and calls ``on_frame(Frame)`` per
    synchronised set; :meth:`check` reports a stalled synchronisation."""

    def __init__(
        self, node: Any, qos: Any, transport: str, sync: SyncParams, on_frame: Callable[[Frame], None]
    ) -> None:
        inputs = [
            image_subscription(name, transport)
            if TOPIC[name].msg_type is Image
            else (TOPIC[name].msg_type, name)
            for name in STEREO_INPUTS
        ]
        self.topics: Dict[str, str] = {
            t: node.resolve_topic_name(n) for t, (_, n) in zip(STEREO_INPUTS, inputs)
        }
        self._on_frame = on_frame
        self.slop = sync.slop
        self.watchdog = SyncWatchdog(len(STEREO_INPUTS), sync.warn_after)
        self.stalled: Optional[Tuple[float, List[int]]] = None
        self.synchronizer = make_synchronizer(
            node, inputs, sync.queue_size, sync.slop, self._on_set, qos, on_arrival=self.watchdog.arrived
        )

    def _on_set(self, left: Any, right: Any, left_info: CameraInfo, right_info: CameraInfo) -> None:
        self.watchdog.synchronised()
        self.stalled = None
        self._on_frame(Frame((left, right), (left_info, right_info)))

    def destroy(self) -> None:
        """Unsubscribe."""
        self.synchronizer.destroy()

    def describe(self) -> str:
        inputs = ", ".join(self.topics.values())
        return f"inputs {inputs}, synchronised by {self.synchronizer.backend}"

    def check(self) -> Optional[str]:
        """The warning text while the inputs arrive but do not synchronise, else None."""
        self.stalled = self.watchdog.stalled()
        if self.stalled is None:
            return None
        waited, counts = self.stalled
        arrived = ", ".join(f"{self.topics[t]} {n}" for t, n in zip(STEREO_INPUTS, counts))
        return (
            f"stereo inputs have not synchronised for {waited:.1f} s (messages since the last set: "
            f"{arrived}): check that all four topics are published and their stamps lie within sync.slop = "
            f"{self.slop:g} s of each other"
        )
