"""Port specifications: ``22,80,443``, ``1-1024``, ``top100``, ``all``, mixed.

The grammar is nmap's ``-p`` without protocol prefixes: comma (or space) separated items,
each a port, an inclusive range ``a-b`` or ``topN`` (the N most frequent TCP ports, N up
to 1000, from nmap's own lists shipped in ``top_ports.txt``). ``all`` and ``-`` mean
1-65535. Anything else raises :class:`PortSpecError`, whose message starts with the field
name so the route can answer 422 with it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MAX_PORT = 65535
_ITEM = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")  # ASCII digits: "٣" is no port 3
_TOP = re.compile(r"^top[-:]?([0-9]+)$", re.IGNORECASE)


class PortSpecError(ValueError):
    """A port specification that cannot be read; ``field`` names the input."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.status = 422
        super().__init__(f"{field}: {message}")


def _expand(text: str) -> list[int]:
    ports: list[int] = []
    for item in text.split(","):
        match = _ITEM.match(item.strip())
        if not match:
            raise ValueError(f"bad item {item!r} in top_ports.txt")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        ports.extend(range(low, high + 1))
    return ports


@cache
def top_ports() -> tuple[int, ...]:
    """Nmap's top 1000 TCP ports, most frequent first (exact as sets for N = 20, 100 and
    1000; within each tier beyond the first 20 the order is ascending)."""
    tiers: dict[str, list[int]] = {}
    for line in (Path(__file__).with_name("top_ports.txt")).read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, values = line.partition(":")
            tiers[name.strip()] = _expand(values.strip())
    ordered: list[int] = []
    seen: set[int] = set()
    for tier in ("top20", "top100", "top1000"):
        for port in tiers[tier]:
            if port not in seen:
                seen.add(port)
                ordered.append(port)
    return tuple(ordered)


def parse_ports(spec: str, *, field: str = "ports", max_ports: int = MAX_PORT) -> list[int]:
    """The ports ``spec`` names, ascending and without duplicates.

    Raises :class:`PortSpecError` naming ``field`` for an empty spec, a port outside
    1-65535 (``0``, ``65536``), an open or reversed range (``1-``, ``9-3``), a word that
    is not ``topN``/``all`` (``a``), or more than ``max_ports`` ports.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PortSpecError(field, "no ports given; e.g. '22,80,443', '1-1024' or 'top100'")
    if len(spec) > 10_000:
        raise PortSpecError(field, f"{len(spec)} characters is too long (at most 10000)")
    chosen: set[int] = set()
    for raw in re.split(r"[,\s]+", spec.strip()):
        item = raw.strip()
        if not item:
            continue
        if item.lower() in ("all", "-", "1-"):
            if item == "1-":
                raise PortSpecError(field, "'1-' is an open range; write 1-65535 (or 'all')")
            chosen.update(range(1, MAX_PORT + 1))
            continue
        top = _TOP.match(item)
        if top:
            count = int(top.group(1))
            available = len(top_ports())
            if not 1 <= count <= available:
                raise PortSpecError(field, f"{item!r}: top needs 1 to {available} ports")
            chosen.update(top_ports()[:count])
            continue
        if item.endswith("-") or item.startswith("-"):
            raise PortSpecError(field, f"{item!r} is an open range; give both ends, "
                                       "e.g. 1-1024")
        match = _ITEM.match(item)
        if not match:
            raise PortSpecError(field, f"{item!r} is not a port, a range like 20-25, "
                                       "'topN' or 'all'")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        for port in (low, high):
            if not 1 <= port <= MAX_PORT:
                raise PortSpecError(field, f"port {port} in {item!r} is outside 1-{MAX_PORT}")
        if high < low:
            raise PortSpecError(field, f"{item!r} runs backwards; write {high}-{low}")
        chosen.update(range(low, high + 1))
    if not chosen:
        raise PortSpecError(field, "no ports given; e.g. '22,80,443', '1-1024' or 'top100'")
    if len(chosen) > max_ports:
        raise PortSpecError(field, f"{len(chosen)} ports is more than the {max_ports} "
                                   "allowed here")
    return sorted(chosen)


def compact(ports: list[int]) -> str:
    """``[1, 2, 3, 8]`` -> ``"1-3,8"`` (for nmap's -p and for showing a spec)."""
    parts: list[str] = []
    start = prev = None
    for port in sorted(set(ports)):
        if start is None:
            start = prev = port
        elif prev is not None and port == prev + 1:
            prev = port
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = port
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts)
