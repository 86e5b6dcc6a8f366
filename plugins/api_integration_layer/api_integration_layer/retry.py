"""When a failed request is sent again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

RETRY_STATUSES = frozenset({502, 503, 504})
# Errors that say nothing about whether the server acted: worth another try, but only for
# a request that may safely run twice.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.ReadTimeout,
    httpx.WriteError, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.PoolTimeout,
)


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, for idempotent requests and transient failures.

    A request is retried only if it is idempotent (GET, PUT, DELETE, or a POST the
    endpoint table marks as such) and it failed with a transient error (connect errors,
    a dropped connection, timeouts) or a 502/503/504. A 4xx is never retried here (a 401
    refresh and a 429 wait are the client's own, separate paths).
    """

    max_retries: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def retryable_error(self, exc: BaseException) -> bool:
        return isinstance(exc, TRANSIENT_ERRORS)

    def retryable_status(self, status: int) -> bool:
        return status in RETRY_STATUSES

    def should_retry(self, idempotent: bool, retries_done: int) -> bool:
        return idempotent and retries_done < self.max_retries

    def delay(self, retries_done: int, retry_after: float | None = None) -> float:
        """Seconds before retry number ``retries_done + 1``: half of the exponential step
        fixed, half random ("equal jitter"), so clients that failed together do not
        come back together; a server's Retry-After is a floor."""
        step = min(self.max_delay, self.base_delay * (2 ** retries_done))
        wait = step / 2 + self.rng.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait
