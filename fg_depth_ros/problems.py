"""Warnings about bad input and failures, throttled per kind of problem, so that a camera sending garbage at
30 Hz gives one line every few seconds per problem while a different problem still shows at once.

A problem's kind is its text with the numbers blanked out: the same problem with other sizes or stamps
shares a throttle. Thread-safe: subscription callbacks and worker threads report concurrently.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Dict

import rclpy.logging

#: Seconds between two warnings about the same problem.
WARN_THROTTLE_S = 5.0
#: Distinct problems throttled separately; beyond this many, the rest share one throttle.
MAX_KINDS = 64
#: Characters of a problem's text that make its kind.
KIND_LENGTH = 300


class ProblemLog:
    """Throttled warnings on the logger named ``logger_name``; ``last_problem`` is the newest text and
    ``counts`` the number of reports per kind."""

    def __init__(self, logger_name: str) -> None:
        self.logger_name = logger_name
        self.last_problem = ""
        self.counts: Dict[str, int] = {}
        self._loggers: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def warn(self, text: str) -> None:
        """Log ``text`` as a warning unless the same kind of problem was logged within the throttle."""
        kind = re.sub(r"\d+(\.\d+)?", "#", text)[:KIND_LENGTH]
        with self._lock:
            self.last_problem = text
            self.counts[kind] = self.counts.get(kind, 0) + 1
            logger = self._loggers.get(kind)
            if logger is None:
                if len(self._loggers) >= MAX_KINDS:
                    kind = "*"
                    logger = self._loggers.get(kind)
                if logger is None:
                    # rclpy throttles per logger object and call site, so each kind gets a logger object of
                    # its own (all with the node's name).
                    logger = rclpy.logging.get_logger(self.logger_name)
                    self._loggers[kind] = logger
        logger.warning(text, throttle_duration_sec=WARN_THROTTLE_S)
