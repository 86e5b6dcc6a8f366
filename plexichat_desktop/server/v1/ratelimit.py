"""Server-side rate limits: a sliding-window log per key, answered with 429 + Retry-After."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import deque

from fastapi import HTTPException

_PRUNE_EVERY = 1000
SCOPE_HEADER = "X-RateLimit-Scope"


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window`` seconds for each key.

    A sliding log rather than fixed windows: a burst straddling a window boundary cannot get
    twice the limit through. Memory is bounded by ``limit`` timestamps per active key; keys
    that went quiet are dropped now and then.
    """

    def __init__(self, name: str, limit: int, window: float, scope: str | None = None):
        self.name = name
        self.limit = limit
        self.window = window
        # Sent as X-RateLimit-Scope: "user" tells a client that every request of the
        # user waits, not only this route (its other limits are one route's or account's).
        self.scope = scope
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
            headers = {"Retry-After": str(seconds)}
            if self.scope:
                headers[SCOPE_HEADER] = self.scope
            raise HTTPException(
                429, f"too many {self.name} requests: at most {self.limit} per "
                     f"{self.window:g} s; retry in {seconds} s", headers=headers)

    def reset(self) -> None:
        self._hits.clear()

    def _prune(self, current: float) -> None:
        stale = [key for key, hits in self._hits.items()
                 if not hits or hits[-1] <= current - self.window]
        for key in stale:
            del self._hits[key]


class DeviceTokens:
    """Proof that a client logged in to an account before (OWASP's "device cookies").

    Every successful login returns a ``device_token``; a later login of the same account
    that presents it is counted in a bucket of its own. Anyone hammering an account with
    wrong passwords exhausts only the account's shared bucket, so its owner, on a client
    that logged in before, still gets in. Kept in memory (digests only, the newest
    ``cap``): after a restart a client gets a new one at its next successful login.
    """

    def __init__(self, cap: int = 10_000):
        self.cap = cap
        self._owners: dict[str, str] = {}

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

    def issue(self, user_id: str) -> str:
        token = "pxd_" + secrets.token_urlsafe(24)
        while len(self._owners) >= self.cap:
            del self._owners[next(iter(self._owners))]
        self._owners[self._digest(token)] = user_id
        return token

    def bucket(self, token: str | None, user_id: str) -> str | None:
        """The bucket suffix of ``token`` when it belongs to ``user_id``, else None."""
        if not token:
            return None
        key = self._digest(token)
        return f"device:{key[:24]}" if self._owners.get(key) == user_id else None
