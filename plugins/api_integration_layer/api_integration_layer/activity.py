"""The live log of requests the client makes, for the plugin's page and its event stream."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from plexichat_desktop.plugins.hub import EventHub


@dataclass
class RequestRecord:
    """One call through the client (retries and a token refresh included)."""

    id: int
    at: float  # UNIX time the call started
    method: str
    path: str  # relative to the base URL, without the query (it may hold search terms)
    endpoint: str
    status: int | None  # None: no answer (the server was unreachable)
    latency_ms: float
    cache_hit: bool = False
    attempts: int = 1
    statuses: list[int | None] = field(default_factory=list)  # one per attempt
    caller: str | None = None  # the plugin that made the call, None for the layer itself
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ActivityLog:
    """The last ``size`` request records, and a hub that streams new ones."""

    def __init__(self, size: int = 200):
        self.records: deque[RequestRecord] = deque(maxlen=size)
        self.hub = EventHub()
        self._ids = itertools.count(1)
        self.total = 0
        # Extra fields for the streamed event (the rate limiter's state), computed only
        # when someone is listening.
        self.extra: Callable[[], dict[str, Any]] | None = None
        # Called with each new record (the plugin reloads the profile after a change).
        self.listeners: list[Callable[[RequestRecord], None]] = []

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.total += 1
        for listener in list(self.listeners):
            listener(record)
        if self.hub.subscriber_count:
            data = record.to_dict()
            if self.extra is not None:
                data.update(self.extra())
            self.hub.publish("request", data)

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest last."""
        items = list(self.records)
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return [r.to_dict() for r in items]
