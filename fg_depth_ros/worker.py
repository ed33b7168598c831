"""A worker thread that only ever processes the newest item (a queue of depth 1).

Latency first: when items arrive faster than ``process`` runs, an item still waiting is replaced by the newer
one and counted in ``dropped``; the worker never works through a backlog of stale frames. ``submit`` is
cheap (a lock and a notify), so ROS callbacks can call it and return at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional


class NewestOnlyWorker:
    """Runs ``process(item, submitted_at)`` on a daemon thread for the newest submitted item.

    ``submitted_at`` is the time.monotonic() of :meth:`submit`. An exception from ``process`` goes to
    ``on_error(exc)`` and the worker carries on with the next item. Counters (read them any time):
    submitted, dropped (replaced before processing), processed (``process`` returned or raised).
    """

    def __init__(
        self, name: str, process: Callable[[Any, float], None], on_error: Callable[[BaseException], None]
    ) -> None:
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._item: Any = None
        self._item_time = 0.0
        self._has_item = False
        self._stopping = False
        self._busy = False
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand ``item`` to the worker, replacing (and counting as dropped) one still waiting."""
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                return
            if self._has_item:
                self.dropped += 1
            self._item, self._item_time, self._has_item = item, now, True
            self.submitted += 1
            self._cond.notify()

    def idle(self) -> bool:
        """True when nothing waits and nothing is being processed."""
        with self._cond:
            return not self._has_item and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_item and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item, submitted_at = self._item, self._item_time
                self._item, self._has_item, self._busy = None, False, True
            try:
                self._process(item, submitted_at)
            except Exception as exc:  # a bad frame or a backend failure must not end the thread
                try:
                    self._on_error(exc)
                except Exception:  # the error reporter itself failed (logging during shutdown): go on
                    pass
            finally:
                with self._cond:
                    self._busy = False
                    self.processed += 1

    def stop(self, timeout: Optional[float] = 5.0) -> bool:
        """Ask the thread to stop after the current item and wait up to ``timeout`` seconds; True if it
        ended. A waiting item is discarded."""
        with self._cond:
            self._stopping = True
            self._item, self._has_item = None, False
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()
