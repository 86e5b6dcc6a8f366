"""Server-side rate limits: a sliding-window log per key, answered with 429 + Retry-After."""

from __future__ import annotations

import math
import time
from collections import deque

from fastapi import HTTPException

_PRUNE_EVERY = 1000


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window`` seconds for each key.

    A sliding log rather than fixed windows: a burst straddling a window boundary cannot get
    twice the limit through. Memory is bounded by ``limit`` timestamps per active key; keys
    that went quiet are dropped now and then.
    """

    def __init__(self, name: str, limit: int, window: float):
        self.name = name
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    def retry_after(self, key: str) -> float:
        """Record one event for ``key``; 0 when allowed, else the seconds until one is."""
        if self.limit <= 0:
            return 0.0
        current = time.monotonic()
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune(current)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= current - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - current
        hits.append(current)
        return 0.0

    def check(self, key: str) -> None:
        """Raise 429 with a ``Retry-After`` header (whole seconds, at least 1) when over."""
        wait = self.retry_after(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(
                429, f"too many {self.name} requests: at most {self.limit} per "
                     f"{self.window:g} s; retry in {seconds} s",
                headers={"Retry-After": str(seconds)})

    def reset(self) -> None:
        self._hits.clear()

    def _prune(self, current: float) -> None:
        stale = [key for key, hits in self._hits.items()
                 if not hits or hits[-1] <= current - self.window]
        for key in stale:
            del self._hits[key]
