"""The health report: weak, reused, old and breached passwords, checked offline.

Breaches are looked up in a SHA-1 list the user downloaded (Have I Been Pwned's
"Pwned Passwords"); nothing leaves the machine. Three shapes are read:

* the full list *ordered by hash* (``HASH:COUNT`` per line, tens of GB): binary search
  on the file, a few dozen reads per lookup, nothing loaded;
* a folder of range files as the range API or its downloader writes them (file
  ``21BD1`` or ``21BD1.txt`` holding ``SUFFIX:COUNT`` lines for hashes starting 21BD1);
* any small list (under 64 MiB; ``HASH`` or ``HASH:COUNT`` per line, any order),
  loaded into memory with every line checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from security_toolkit.errors import Problem

SMALL_LIST = 64 * 1024 * 1024
HEX40 = re.compile(rb"^[0-9A-Fa-f]{40}$")
SORT_SAMPLE = 2000


def sha1_hex(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8")).hexdigest().upper()


def _parse_line(raw: bytes, number: int, width: int, name: str) -> tuple[str, int]:
    line = raw.strip()
    digest, _, count = line.partition(b":")
    if len(digest) != width or not re.fullmatch(rb"[0-9A-Fa-f]+", digest):
        raise Problem("breach_list", f"{name} line {number}: expected {width} hex digits "
                                     "optionally followed by :COUNT")
    try:
        return digest.decode().upper(), int(count) if count else 1
    except ValueError:
        raise Problem("breach_list", f"{name} line {number}: the count after ':' is not a "
                                     "number") from None


class BreachList:
    """Look SHA-1 hashes up in the user's offline list (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            raise Problem("breach_list", f"{path} does not exist")
        self._memory: dict[str, int] | None = None
        if path.is_dir():
            self.kind = "range folder"
        elif path.stat().st_size <= SMALL_LIST:
            self.kind = "small list"
            self._memory = self._load()
        else:
            self.kind = "sorted list"
            self._check_sorted()

    def _load(self) -> dict[str, int]:
        found: dict[str, int] = {}
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if raw.strip():
                    digest, count = _parse_line(raw, number, 40, self.path.name)
                    found[digest] = count
        return found

    def _check_sorted(self) -> None:
        # A list ordered by prevalence would make the binary search miss silently.
        previous = b""
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if number > SORT_SAMPLE:
                    break
                digest = raw[:40].upper()
                if not HEX40.match(digest):
                    raise Problem("breach_list", f"{self.path.name} line {number}: expected "
                                                 "40 hex digits")
                if digest < previous:
                    raise Problem("breach_list", f"{self.path.name} line {number}: not "
                                                 "sorted by hash; download the list "
                                                 "'ordered by hash'")
                previous = digest

    def lookup(self, digest: str) -> int:
        """How often the hash was seen in breaches (0: not in the list)."""
        digest = digest.upper()
        if self._memory is not None:
            return self._memory.get(digest, 0)
        if self.kind == "range folder":
            return self._lookup_range(digest)
        with self.path.open("rb") as handle:
            return _bisect(handle, self.path.stat().st_size, digest.encode())

    def _lookup_range(self, digest: str) -> int:
        prefix, suffix = digest[:5], digest[5:]
        for name in (prefix, prefix + ".txt", prefix.lower(), prefix.lower() + ".txt"):
            candidate = self.path / name
            if candidate.is_file():
                with candidate.open("rb") as handle:
                    for number, raw in enumerate(handle, 1):
                        if raw.strip():
                            found, count = _parse_line(raw, number, 35, name)
                            if found == suffix:
                                return count
                return 0
        return 0


def _line_from(handle: IO[bytes], pos: int) -> bytes:
    """The first whole line starting at or after byte ``pos`` (b"" past the end)."""
    if pos == 0:
        handle.seek(0)
    else:
        handle.seek(pos - 1)
        handle.readline()  # the rest of the line holding pos - 1, newline included
    return handle.readline()


def _bisect(handle: IO[bytes], size: int, target: bytes) -> int:
    """Binary search of a file of lines sorted by their first 40 bytes.

    ``_line_from(pos)`` sorts no lower as ``pos`` grows, so we look for the smallest
    ``pos`` whose line is at or above ``target`` (or the end); one line read per step."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        line = _line_from(handle, mid)
        if line and line[:40].upper() < target:
            lo = mid + 1
        else:
            hi = mid
    line = _line_from(handle, lo)
    if line[:40].upper() == target:
        _, _, count = line.strip().partition(b":")
        return int(count) if count.isdigit() else 1
    return 0


def _age_days(stamp: str | None, today: dt.datetime) -> int | None:
    if not stamp:
        return None
    try:
        when = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0, (today - when).days)


def report(entries: Iterable[dict[str, Any]], *, weak_below: int, max_age_days: int,
           breaches: BreachList | None, today: dt.datetime | None = None
           ) -> dict[str, Any]:
    """The report over ``entries`` (vault entries with their ``score``).

    Never contains a password: entries are named by id, title, username and URL, and
    reuse groups by a number."""
    today = today or dt.datetime.now(dt.UTC)
    entries = [e for e in entries if e.get("password")]
    by_password: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_password[entry["password"]].append(entry["id"])
    groups = [ids for ids in by_password.values() if len(ids) > 1]
    group_of = {eid: n for n, ids in enumerate(groups, 1) for eid in ids}
    issues = []
    counts = {"weak": 0, "reused": 0, "old": 0, "breached": 0}
    for entry in entries:
        problems: list[dict[str, Any]] = []
        if entry.get("score", 0) < weak_below:
            problems.append({"kind": "weak", "detail": f"strength {entry.get('score', 0)}/4"})
        if entry["id"] in group_of:
            same = len(by_password[entry["password"]])
            problems.append({"kind": "reused", "group": group_of[entry["id"]],
                             "detail": f"the same password is used by {same} entries"})
        age = _age_days(entry.get("password_changed"), today)
        if age is not None and age > max_age_days:
            problems.append({"kind": "old", "detail": f"unchanged for {age} days"})
        if breaches is not None:
            seen = breaches.lookup(sha1_hex(entry["password"]))
            if seen:
                problems.append({"kind": "breached",
                                 "detail": f"seen {seen:,} times in known breaches"})
        for problem in problems:
            counts[problem["kind"]] += 1
        if problems:
            issues.append({"entry_id": entry["id"], "title": entry.get("title", ""),
                           "username": entry.get("username", ""), "url": entry.get("url", ""),
                           "score": entry.get("score", 0), "problems": problems,
                           "age_days": age})
    # Worst first: breached before weak before reused before old, then by score.
    rank = {"breached": 0, "weak": 1, "reused": 2, "old": 3}
    issues.sort(key=lambda i: (min(rank[p["kind"]] for p in i["problems"]), i["score"],
                               i["title"].lower()))
    return {"checked": len(entries), "issues": issues,
            "summary": {**counts, "healthy": len(entries) - len(issues),
                        "reuse_groups": len(groups)},
            "breach_list": ({"path": str(breaches.path), "kind": breaches.kind}
                            if breaches else None),
            "generated": today.replace(microsecond=0).isoformat()}
