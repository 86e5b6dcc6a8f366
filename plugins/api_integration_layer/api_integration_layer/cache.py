"""A response cache for GETs: time-to-live, LRU bound, invalidation by resource prefix."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CacheKey = tuple[str, str]  # (identity: whose answer it is, request path with its query)


@dataclass
class _Entry:
    value: Any
    expires: float


class ResponseCache:
    """Parsed JSON answers by (identity, path?query).

    The identity (the user the answer was for) is part of the key: answers depend on who
    asks, and one user's data must never be served to another session. A write to a
    resource calls :meth:`invalidate` with its prefix (``/messages``), which drops every
    cached answer under it, whatever the identity.
    """

    def __init__(self, ttl: float, max_entries: int = 1000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        # Bumped by every invalidation: an answer fetched while a write went through may
        # be stale, so :meth:`put` refuses it when the generation moved meanwhile.
        self.generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, key: CacheKey) -> Any | None:
        """The cached value, or None (missing or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.expires <= self._clock():
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.value

    def put(self, key: CacheKey, value: Any, ttl: float | None = None,
            generation: int | None = None) -> None:
        """Keep ``value``; with ``generation`` (read before the request was sent), only if
        nothing was invalidated since."""
        ttl = self.ttl if ttl is None else ttl
        if ttl <= 0 or (generation is not None and generation != self.generation):
            return
        self._entries[key] = _Entry(value, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, prefixes: tuple[str, ...] | list[str]) -> int:
        """Drop the answers whose path starts with one of ``prefixes`` (``"*"``: all).

        A prefix matches whole path segments: ``/files`` drops ``/files/`` and
        ``/files/abc/info`` but not ``/filesystem``.
        """
        if not prefixes:
            return 0
        self.generation += 1
        if "*" in prefixes:
            return self.clear()
        doomed = [key for key in self._entries if _under(key[1], prefixes)]
        for key in doomed:
            del self._entries[key]
        self.invalidations += len(doomed)
        return len(doomed)

    def clear(self) -> int:
        self.generation += 1
        count = len(self._entries)
        self._entries.clear()
        self.invalidations += count
        return count

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {"enabled": self.enabled, "ttl": self.ttl, "entries": len(self._entries),
                "max_entries": self.max_entries, "hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / lookups, 4) if lookups else None,
                "invalidations": self.invalidations}


def _under(path: str, prefixes: tuple[str, ...] | list[str]) -> bool:
    path = path.split("?", 1)[0]
    for prefix in prefixes:
        prefix = prefix.rstrip("/")
        if path == prefix or path.startswith(prefix + "/"):
            return True
    return False
