"""The client-side rate limiter: a token bucket, plus pauses the server asks for (429)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

GLOBAL = "*"
# A 429's header saying what it limits; "user": every request of the signed-in user.
SCOPE_HEADER = "X-RateLimit-Scope"


class PausedError(Exception):
    """The server asked for a pause (429 + Retry-After) longer than the caller waits."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"paused for {seconds:.1f} s more after a 429")


class RateLimiter:
    """At most ``rate`` requests per second on average, bursts of up to ``burst``.

    ``acquire()`` waits for a token. Waiters are served in arrival order (one lock), so a
    steady stream of callers cannot starve an early one. :meth:`pause` records a server's
    ``Retry-After`` for a key: every request acquired with that key waits until then
    (``"*"``: the signed-in user's requests, which also wait for their route's key).
    A ``rate`` of 0 turns the bucket off; pauses still apply.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = asyncio.Lock()
        self._paused_until: dict[str, float] = {}
        self.throttled = 0  # requests that had to wait for a token
        self.waited = 0.0  # seconds spent waiting, tokens and pauses
        self.server_limited = 0  # 429 answers seen

    def _refill(self, now: float) -> None:
        if self.rate > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _pause_left(self, keys: tuple[str, ...], now: float) -> float:
        until = max(self._paused_until.get(key, 0.0) for key in keys)
        return max(0.0, until - now)

    def pause_left(self, *keys: str) -> float:
        """Seconds until a request held by ``keys`` (``"*"`` when none given) may go again
        after a 429 (0: now)."""
        return self._pause_left(keys or (GLOBAL,), self._clock())

    async def acquire(self, *keys: str, max_pause: float | None = None) -> float:
        """Wait until a request held by every one of ``keys`` (``"*"`` when none given)
        may go; returns the seconds waited.

        Raises :class:`PausedError` instead of waiting when a server-imposed pause has
        more than ``max_pause`` seconds left (a caller should not hang for a minute).
        """
        keys = keys or (GLOBAL,)
        waited = 0.0
        while True:
            # A pause is waited out without the lock: holding it, a pause of one route or
            # account held every other caller back as well.
            pause = self._pause_left(keys, self._clock())
            if pause > 0:
                if max_pause is not None and pause > max_pause:
                    raise PausedError(pause)
                await asyncio.sleep(pause)
                waited += pause
                continue
            async with self._lock:
                if self._pause_left(keys, self._clock()) > 0:
                    continue  # paused while it queued for the lock: wait that out first
                slept, taken = await self._token(keys)
                waited += slept
                if taken:
                    break
                # Paused while it waited for a token: out of the lock, then that pause.
        self.waited += waited
        return waited

    async def _token(self, keys: tuple[str, ...]) -> tuple[float, bool]:
        """Take one token (the lock held: waiters are served in order): seconds waited,
        and False when a pause of ``keys`` came meanwhile (no token taken)."""
        if self.rate <= 0:
            return 0.0, True
        waited = 0.0
        while True:
            self._refill(self._clock())
            if self._tokens >= 1:
                self._tokens -= 1
                return waited, True
            delay = (1 - self._tokens) / self.rate
            self.throttled += 1 if waited == 0 else 0
            await asyncio.sleep(delay)
            waited += delay
            if self._pause_left(keys, self._clock()) > 0:
                return waited, False

    def forget(self, key: str = GLOBAL) -> None:
        """Drop the pause of ``key``: the user-wide one when another user signs in (it was
        the client's, and held the new account back)."""
        self._paused_until.pop(key, None)

    def pause(self, seconds: float, key: str = GLOBAL) -> None:
        """Hold requests for ``key`` back for ``seconds`` (a server's Retry-After)."""
        self.server_limited += 1
        until = self._clock() + max(0.0, seconds)
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)

    def snapshot(self) -> dict[str, Any]:
        """The state for the status page."""
        now = self._clock()
        self._refill(now)
        pauses = {key: round(until - now, 3) for key, until in self._paused_until.items()
                  if until > now}
        return {"rate_per_second": self.rate, "burst": self.burst,
                "tokens": round(self._tokens, 2) if self.rate > 0 else None,
                "throttled": self.throttled, "waited_seconds": round(self.waited, 3),
                "server_limited": self.server_limited, "paused": pauses}
