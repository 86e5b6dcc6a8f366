"""Schedule expressions for plugin test runs: parsing, validation and fire times.

Everything here is pure: no timers, no clock reads (apart from resolving the machine's
zone once, see :func:`local_zone`). Callers pass the instants; every instant going in
must be timezone-aware and every instant coming out is an aware UTC ``datetime``.

Accepted forms
==============

Words and aliases are matched case-insensitively after stripping; ``H``/``M``/``S`` below
come from the ``at`` argument of :func:`parse` (a local time of day, default 00:00).

======================================  ========  =========================  ==============
Expression                              Kind      Normalised cron / interval DST handling
======================================  ========  =========================  ==============
``hourly``, ``@hourly``                 cron      ``0 * * * *``              absolute
``daily``, ``@daily``                   cron      ``M H * * *``              wall clock
``@midnight``                           cron      ``0 0 * * *`` (no ``at``)  wall clock
``weekly``, ``@weekly``                 cron      ``M H * * 0`` (Sunday)     wall clock
``monthly``, ``@monthly``               cron      ``M H 1 * *``              wall clock
``@yearly``, ``@annually``              cron      ``M H 1 1 *``              wall clock
``every_N_minutes`` (N 1..525600)       interval  N x 60 s                   absolute
``every_N_hours`` (N 1..8760)           interval  N x 3600 s                 absolute
``every_N_days`` (N 1..365)             interval  N x 86400 s                absolute
``every_1_minute|hour|day``             interval  as the plural with N = 1   absolute
5-field cron ``m h dom mon dow``        cron      as written (lower-cased)   see below
6-field cron ``m h dom mon dow sec``    cron      as written (lower-cased)   see below
======================================  ========  =========================  ==============

When ``at`` has non-zero seconds the words produce the 6-field form (``M H * * * S``).
``at`` is ignored by every other form. The plain word ``yearly`` is *not* accepted (only
the ``@`` spellings are), nor is ``@reboot``.

Six-field cron puts the seconds LAST: that is croniter's native order (its
``second_at_beginning`` flag defaults to False), so ``0 30 9 * * *`` is refused (hour 30)
rather than silently read the Quartz/Spring way. A ``*`` (or ``*/1``, ``0-59``) seconds
field would fire every second and almost always means a seconds-first expression was
pasted, so it is refused as well.

Interval schedules fire at ``anchor + k * interval`` for every integer ``k``: the anchor
(an instant stored with the schedule, default the UNIX epoch) only fixes the phase, so a
restart that parses the same expression with the same anchor keeps the same grid, and N
need not divide the hour or the day (cron ``*/45`` would fire at :00 and :45, 45/15
minute gaps; ``every_45_minutes`` is exactly 45 minutes apart).

Cron validation
===============

The project pins ``croniter>=7,<8``. Expressions are checked token by token first and then
by ``croniter.expand(..., strict=True)`` (the call behind ``croniter.is_valid(...,
strict=True)``; we call it directly to report croniter's own reason). ``strict`` rejects
day/month combinations that never happen, e.g. ``0 0 31 2 *``. These croniter 7 readings
are refused as ambiguous, each with a hint:

* an equal range ``5-5``: croniter 7 reads it as the whole cycle (every value);
* a bare start with a step ``10/5``: croniter reads ``10-59/5``, but ``59/15`` as just 59,
  and other crons differ; write the range out;
* a reversed range ``50-10`` or ``sat-sun``: croniter wraps around, standard cron refuses;
* a step wider than its range (``*/60`` in minutes, ``*/24`` in hours): croniter keeps only
  the first value, which is never what "every 60 minutes" meant;
* ``H`` (hashed), ``R`` (random: differs per process), ``?`` (Quartz), ``W``, and 7 fields
  (croniter reads the 7th as a year).

``L`` (last day) in day-of-month and ``N#K`` (K-th weekday N) in day-of-week are accepted.
When both day-of-month and day-of-week are restricted, a day matches if either does
(Vixie cron's OR, croniter's default).

Time zones and DST
==================

Each schedule carries an IANA zone (``tz``; default :func:`local_zone`). Cron fields are
matched against the local wall clock of that zone, with two rules:

Wall-clock crons (the hour field is restricted, and all the daily-and-longer words):

* spring forward: a slot whose local time does not exist runs once, at the first instant
  after the gap (the transition instant). ``daily`` at 02:30 in Europe/Berlin on
  2026-03-29 runs at 03:00 CEST (01:00 UTC); several slots inside one gap, and a slot at
  the gap's end, collapse into that single run.
* fall back: a repeated local time runs once, at its first occurrence. ``daily`` at 02:30
  in Europe/Berlin on 2026-10-25 runs at 02:30 CEST (00:30 UTC) and not again at 02:30 CET.
  (croniter itself returns both; mapping each wall-clock slot to one instant dedupes it.)

Absolute crons (the hour field is ``*``, including ``hourly``) fire at every instant whose
local reading matches: nothing for readings inside a gap, and both passes of a repeated
hour, so ``hourly`` fires 23 times on the spring-forward day and 25 times on the
fall-back day. Intervals are plain UTC arithmetic and ignore the zone, so ``every_1_day``
keeps exact 24 h gaps and its local time moves by an hour across DST; use ``daily`` for a
fixed time of day.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from croniter import croniter

__all__ = [
    "ACCEPTED_FORMS",
    "EPOCH",
    "MIDNIGHT",
    "InvalidScheduleError",
    "Schedule",
    "is_zone_name",
    "local_zone",
    "parse",
]

ACCEPTED_FORMS = (
    "accepted forms: 5-field cron 'minute hour day-of-month month day-of-week'; "
    "6-field cron with the seconds LAST 'minute hour day-of-month month day-of-week second'; "
    "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually; "
    "hourly, daily, weekly, monthly; "
    "every_N_minutes (N 1-525600), every_N_hours (N 1-8760), every_N_days (N 1-365), "
    "and every_1_minute, every_1_hour, every_1_day"
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIDNIGHT = time(0, 0)

_INTERVAL_UNITS: dict[str, tuple[timedelta, int]] = {
    "minute": (timedelta(minutes=1), 525_600),
    "hour": (timedelta(hours=1), 8_760),
    "day": (timedelta(days=1), 365),
}
# [0-9], not \d: \d also matches non-ASCII digits such as "٣".
_INTERVAL_RE = re.compile(r"every_([1-9][0-9]{0,8})_(minute|hour|day)(s?)")

# Words that take the ``at`` time of day, as cron templates over (minute, hour).
_AT_WORDS = {
    "daily": "{m} {h} * * *",
    "@daily": "{m} {h} * * *",
    "weekly": "{m} {h} * * 0",
    "@weekly": "{m} {h} * * 0",
    "monthly": "{m} {h} 1 * *",
    "@monthly": "{m} {h} 1 * *",
    "@yearly": "{m} {h} 1 1 *",
    "@annually": "{m} {h} 1 1 *",
}
_FIXED_WORDS = {
    "hourly": "0 * * * *",
    "@hourly": "0 * * * *",
    "@midnight": "0 0 * * *",
}

_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week", "second")
# Day-of-week 7 is Sunday, as in croniter and most crons.
_FIELD_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7), (0, 59))
# The span a "*/S" step runs over (day-of-week "*" is 0-6, 7 being an alias of 0).
_STAR_SPAN = (59, 23, 30, 11, 6, 59)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: dict[int, dict[str, int]] = {
    3: {name: i + 1 for i, name in enumerate(_MONTHS)},
    4: {name: i for i, name in enumerate(_DAYS)},
}
_VALUE = r"[0-9]{1,2}|[a-z]{3}"
_TOKEN_RE = re.compile(
    rf"(?:(?P<star>\*)|(?P<lo>{_VALUE})(?:-(?P<hi>{_VALUE}))?)(?:/(?P<step>[0-9]{{1,3}}))?"
)
_NTH_RE = re.compile(r"(?:[0-7]|sun|mon|tue|wed|thu|fri|sat)#[0-9]")
_CRON_CHARS_RE = re.compile(r"[0-9a-z*,/#?\- \t]+")

# Transitions are found by probing the UTC offset at this step and bisecting. tzdata has
# no zone whose offset changes and changes back within six hours.
_PROBE = 6 * 3600
_ONE_SECOND = timedelta(seconds=1)
# A search loop that has not converged after this many steps is a bug, not a schedule.
_MAX_STEPS = 100_000


class InvalidScheduleError(ValueError):
    """A schedule expression, time zone or option that :func:`parse` refuses.

    ``reason`` says what is wrong; the message adds the expression and
    :data:`ACCEPTED_FORMS`, so it can be shown to the user as is.
    """

    def __init__(self, reason: str, expression: object = None, *, forms: bool = True) -> None:
        self.reason = reason
        self.expression = expression
        where = f"invalid schedule {expression!r}: " if expression is not None else ""
        # The accepted forms help with an expression, not with a time zone or an option.
        super().__init__(f"{where}{reason}" + (f"; {ACCEPTED_FORMS}" if forms else ""))


class DuplicateScheduleError(ValueError):
    """The very same schedule (plugin, test, expression, time zone, priority, timeout,
    retries) exists already (a retried request or a double click doubled every run);
    ``schedule_id`` is the existing one."""

    def __init__(self, schedule_id: str):
        self.schedule_id = schedule_id
        super().__init__(f"the same schedule exists already: {schedule_id} (change or "
                         "delete that one)")


# -- local zone ------------------------------------------------------------------------


@functools.cache
def local_zone() -> ZoneInfo:
    """The machine's IANA time zone, resolved once per process.

    ``datetime.now().astimezone().tzinfo`` is only today's fixed offset, with no DST
    rules, so it cannot drive a schedule. The zone is taken, in order, from ``TZ`` (when
    it names an IANA zone), the ``/etc/localtime`` symlink, ``/etc/timezone``, the rules in
    ``/etc/localtime`` itself (a zone without a key), and finally the current offset as
    ``Etc/GMT±N`` (whole hours; DST-less) or UTC. Call ``local_zone.cache_clear()`` after
    the machine's zone changes.
    """
    for key in _local_zone_keys():
        zone = _try_zone(key)
        if zone is not None:
            return zone
    localtime = Path("/etc/localtime")
    try:
        with localtime.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        pass
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if rest == 0 and hours != 0:
        # Etc/GMT signs are inverted (POSIX style): UTC+2 is Etc/GMT-2.
        zone = _try_zone(f"Etc/GMT{-hours:+d}")
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def _local_zone_keys() -> Iterator[str]:
    env = os.environ.get("TZ", "").lstrip(":")
    if env and not env.startswith("/"):
        yield env
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        target = ""
    if "/zoneinfo/" in target:
        key = target.split("/zoneinfo/", 1)[1]
        for prefix in ("posix/", "right/"):
            key = key.removeprefix(prefix)
        yield key
    try:
        debian = Path("/etc/timezone").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        debian = ""
    if debian:
        yield debian


NOT_ZONES = frozenset({"Factory", "posixrules", "localtime", "posix", "right"})


def is_zone_name(name: str) -> bool:
    """False for tzdata's files that are not zones a person means: 'Factory', 'posixrules',
    and the 'posix/' and 'right/' copies (right/ counts leap seconds, ~27 s off UTC)."""
    return name not in NOT_ZONES and not name.startswith(("posix/", "right/"))


def _try_zone(key: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _zone(name: str | None) -> ZoneInfo:
    if name is None:
        return local_zone()
    if not isinstance(name, str) or not name.strip():
        raise InvalidScheduleError(f"time zone must be an IANA zone name, got {name!r}",
                                   forms=False)
    zone = _try_zone(name.strip()) if is_zone_name(name.strip()) else None
    if zone is None:
        shown = name if len(name) <= 64 else name[:61] + "..."
        raise InvalidScheduleError(f"unknown time zone {shown!r} (use an IANA name such as "
                                   "'Europe/Berlin')", forms=False)
    return zone


# -- instants and offsets --------------------------------------------------------------


def _utc(instant: datetime, what: str = "instant") -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {instant.isoformat()}")
    return instant.astimezone(UTC)


def _offset(zone: tzinfo, ts: int) -> timedelta | None:
    return datetime.fromtimestamp(ts, zone).utcoffset()


def _offset_change(zone: tzinfo, start: datetime, end: datetime) -> datetime | None:
    """The first instant in (start, end] whose UTC offset differs from start's, if any."""
    lo = math.floor(start.timestamp())
    stop = math.ceil(end.timestamp())
    base = _offset(zone, lo)
    while True:
        hi = min(lo + _PROBE, stop)
        if _offset(zone, hi) != base:
            break
        if hi >= stop:
            return None
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, mid) == base:
            lo = mid
        else:
            hi = mid
    found = datetime.fromtimestamp(hi, UTC)
    return found if found <= end else None


def _segment_start(zone: tzinfo, start: datetime, end: datetime) -> datetime | None:
    """Where end's constant-offset stretch begins, when that is inside (start, end]."""
    hi = math.floor(end.timestamp())
    floor = math.floor(start.timestamp())
    base = _offset(zone, hi)
    while True:
        lo = max(hi - _PROBE, floor)
        if _offset(zone, lo) != base:
            break
        if lo <= floor:
            return None
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, mid) == base:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _naive_utc_plus(instant: datetime, offset: timedelta) -> datetime:
    return instant.replace(tzinfo=None) + offset


def _from_naive_utc(naive: datetime) -> datetime:
    return naive.replace(tzinfo=UTC)


# -- cron rules ------------------------------------------------------------------------


class _CronRule:
    """A validated cron expression over naive wall-clock datetimes (no zone, no DST).

    croniter objects carry the current position, so each query works on a shallow copy
    of one prototype: the parsed fields are shared and never mutated.
    """

    def __init__(self, cron: str, proto: croniter[datetime],
                 bad_date: type[Exception]) -> None:
        self.cron = cron
        self._proto = proto
        self._bad_date = bad_date  # croniter is imported with the first rule, not before
        self.wall_clock = proto.expanded[1] != ["*"]

    def next(self, wall: datetime) -> datetime:
        """The first slot strictly after ``wall``."""
        try:
            return copy.copy(self._proto).get_next(datetime, start_time=wall)
        except self._bad_date:
            raise InvalidScheduleError("no fire time within 50 years", self.cron) from None

    def prev(self, wall: datetime) -> datetime:
        """The last slot strictly before ``wall``."""
        try:
            return copy.copy(self._proto).get_prev(datetime, start_time=wall)
        except self._bad_date:
            raise InvalidScheduleError("no fire time within 50 years", self.cron) from None

    def next_or_at(self, wall: datetime) -> datetime:
        """The first slot at or after a whole-second ``wall`` (slots are whole seconds)."""
        return self.next(wall - _ONE_SECOND)

    def prev_or_at(self, wall: datetime) -> datetime:
        """The last slot at or before ``wall``."""
        return self.prev(wall.replace(microsecond=0) + _ONE_SECOND)

    @functools.cached_property
    def period(self) -> timedelta:
        # The median of twelve gaps from a fixed reference: the same in every process and,
        # as twelve gaps cover a whole cycle of months, the same for any time of day.
        # "0 9 * * 1-5" gives 1 day, "0 0 1 * *" 31 days.
        wall = datetime(2024, 1, 1)
        fires = []
        for _ in range(13):
            wall = self.next(wall)
            fires.append(wall)
        return statistics.median_low(b - a for a, b in itertools.pairwise(fires))


def _check_token(token: str, index: int) -> str | None:
    """Why croniter 7 would misread this comma-separated cron entry, or None if it is fine."""
    name = _FIELD_NAMES[index]
    if index == 2 and token == "l":
        return None
    if index == 4 and _NTH_RE.fullmatch(token):
        return None
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        if "?" in token:
            return f"'?' in the {name} field is Quartz syntax (Quartz puts seconds first)"
        if token[:1] in ("h", "r"):
            return (f"{token!r} in the {name} field: hashed (H) and random (R) values are not "
                    "accepted, R would differ in every process")
        return f"{token!r} is not a valid {name} entry"
    star, lo, hi, step = match.group("star", "lo", "hi", "step")
    step_value = int(step) if step else None
    if step_value == 0:
        return f"step 0 in {token!r} ({name} field): a step is 1 or more"
    for text in (lo, hi):
        problem = _value_problem(text, index) if text is not None else None
        if problem:
            return problem
    if star:
        span = _STAR_SPAN[index]
        if step_value and step_value > span:
            return (f"step {step_value} in the {name} field is wider than the field, so "
                    f"croniter fires only at its first value; for a fixed gap use "
                    f"every_N_minutes / every_N_hours / every_N_days")
        return None
    low = _value(lo, index)
    if hi is None:
        if step is not None:
            return (f"{token!r} in the {name} field: a start with a step but no range is read "
                    f"differently by croniter 7 and other crons; write "
                    f"'{lo}-{_FIELD_BOUNDS[index][1]}/{step}'")
        return None
    high = _value(hi, index)
    if low is None or high is None:
        return None  # croniter names the bad value
    if low == high:
        return (f"{token!r} in the {name} field: croniter 7 reads an equal range as the whole "
                f"cycle, not one value; write '{lo}'")
    if low > high:
        return (f"{token!r} in the {name} field is a reversed range (croniter wraps around, "
                f"standard cron refuses it); {_split_hint(index, low, high)}")
    if step_value and step_value > high - low:
        return (f"step {step_value} in {token!r} ({name}) is wider than its range, so only "
                f"{lo} would fire; write '{lo}'")
    return None


def _split_hint(index: int, low: int, high: int) -> str:
    if index == 4:
        return "list the days instead, e.g. 'sat,sun' or '5-6,0'"
    first, last = _FIELD_BOUNDS[index]
    tail = f"{first}" if high == first else f"{first}-{high}"
    return f"write it as two parts, '{low}-{last},{tail}'"


def _value_problem(text: str, index: int) -> str | None:
    """Why ``text`` is no value of the field (croniter only says "not acceptable")."""
    name = _FIELD_NAMES[index]
    first, last = _FIELD_BOUNDS[index]
    if text.isdigit():
        if not first <= int(text) <= last:
            return f"{text!r} in the {name} field is out of its range {first}-{last}"
        return None
    if index not in _NAMES:
        return f"{text!r} in the {name} field: names are for months and days only"
    if text not in _NAMES[index]:
        kind, known = ("month", "jan-dec") if index == 3 else ("day", "sun-sat")
        return f"{text!r} in the {name} field is not a {kind} name ({known})"
    return None


def _value(text: str, index: int) -> int | None:
    if text.isdigit():
        return int(text)
    return _NAMES.get(index, {}).get(text)


def _normalise_cron(expression: str) -> str:
    text = expression.lower()
    if not _CRON_CHARS_RE.fullmatch(text):
        bad = sorted({ch for ch in text if not _CRON_CHARS_RE.fullmatch(ch)})
        raise InvalidScheduleError(f"unexpected characters {''.join(bad)!r}", expression)
    fields = text.split()
    if len(fields) not in (5, 6):
        hint = " (croniter would read the 7th as a year)" if len(fields) == 7 else ""
        raise InvalidScheduleError(
            f"a cron expression has 5 or 6 fields, this one has {len(fields)}{hint}",
            expression)
    for index, entry in enumerate(fields):
        for token in entry.split(","):
            reason = _check_token(token, index)
            if reason:
                raise InvalidScheduleError(reason, expression)
    return " ".join(fields)


@functools.lru_cache(maxsize=4096)
def _compile_cron(cron: str) -> _CronRule:
    """Validate a normalised cron string with croniter; cached, parsing is the slow part."""
    # Imported here: the app imports this module at start-up (plugins' schedules, the
    # /tests API), long before anything is scheduled.
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        expanded, _nth = croniter.expand(cron, strict=True)
        proto = croniter(cron, datetime(2000, 1, 1), ret_type=datetime)
    except CroniterError as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise InvalidScheduleError(f"croniter refuses it: {lines[-1]}", cron) from None
    fields = len(expanded)
    if fields == 6 and expanded[5] == ["*"]:
        raise InvalidScheduleError(
            "the seconds field (the 6th, last one) fires every second; write 0 for once a "
            "minute, or drop it (a seconds-first Quartz expression does not fit here)", cron)
    return _CronRule(cron, proto, CroniterBadDateError)


# -- schedules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: when it fires, as aware UTC instants. Build it with :func:`parse`.

    Attributes:
        expression: the expression as given, stripped.
        kind: ``"cron"`` (words, aliases and cron) or ``"interval"`` (``every_N_*``).
        tz: the zone cron fields are read in (intervals ignore it).
        cron: the normalised cron string, for kind ``"cron"``.
        interval: the exact gap, for kind ``"interval"``.
        anchor: the UTC instant the interval grid passes through, for kind ``"interval"``.
        at: the time of day used by the daily-and-longer words, else None.

    ``period_estimate`` and ``wall_clock`` are derived properties; the methods answer
    "when" questions for any aware instant and never read the clock. Instances are
    immutable and safe to share between threads.
    """

    expression: str
    kind: Literal["cron", "interval"]
    tz: ZoneInfo
    cron: str | None = None
    interval: timedelta | None = None
    anchor: datetime | None = None
    at: time | None = None
    _rule: _CronRule | None = field(default=None, repr=False, compare=False)

    @property
    def period_estimate(self) -> timedelta:
        """The typical gap between fires (the interval, or the median cron gap)."""
        if self.interval is not None:
            return self.interval
        assert self._rule is not None
        return self._rule.period

    @property
    def wall_clock(self) -> bool:
        """True if DST keeps the local time (fixed-hour crons and the daily+ words)."""
        return self._rule is not None and self._rule.wall_clock

    def next_after(self, instant: datetime) -> datetime:
        """The first fire time strictly after ``instant`` (aware), as an aware UTC datetime.

        Raises ValueError for a naive ``instant``, and InvalidScheduleError for a cron that
        does not fire within croniter's 50-year search window.
        """
        t = _utc(instant)
        if self.interval is not None:
            assert self.anchor is not None
            steps = (t - self.anchor) // self.interval
            return self.anchor + (steps + 1) * self.interval
        assert self._rule is not None
        if self._rule.wall_clock:
            return self._wall_next(t)
        return self._absolute_next(t)

    def previous_at_or_before(self, instant: datetime) -> datetime | None:
        """The last fire time at or before ``instant`` (aware UTC), or None if there is none.

        Intervals always have one (their grid extends before the anchor); a cron has none
        only when it has not fired within croniter's 50-year search window.
        """
        t = _utc(instant)
        if self.interval is not None:
            assert self.anchor is not None
            return self.anchor + ((t - self.anchor) // self.interval) * self.interval
        assert self._rule is not None
        try:
            if self._rule.wall_clock:
                return self._wall_prev(t)
            return self._absolute_prev(t)
        except InvalidScheduleError:
            return None

    def upcoming(self, instant: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``instant``, increasing (UI preview)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        fires: list[datetime] = []
        current = _utc(instant)
        for _ in range(count):
            current = self.next_after(current)
            fires.append(current)
        return fires

    def fires_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Fire times in (start, end], increasing; at most the first ``limit`` of them."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        stop = _utc(end, "end")
        fires: list[datetime] = []
        current = _utc(start, "start")
        while len(fires) < limit:
            current = self.next_after(current)
            if current > stop:
                break
            fires.append(current)
        return fires

    # Wall-clock crons: every naive slot maps to exactly one instant (first occurrence of a
    # repeated time, the transition instant for a skipped one). That mapping never goes
    # backwards, so "first slot whose instant is after t" is the next fire.

    def _wall_to_instant(self, wall: datetime) -> datetime:
        first = wall.replace(tzinfo=self.tz).astimezone(UTC)
        if first.astimezone(self.tz).replace(tzinfo=None) == wall:
            return first
        # In a gap fold=0 reads the time with the offset before the transition and fold=1
        # with the one after, so the transition lies between the two readings.
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        start, end = min(first, second), max(first, second)
        return _offset_change(self.tz, start, end) or end

    def _repeat_end(self, t: datetime) -> datetime | None:
        """When t is in the second pass of a repeated hour: the wall time the repeat ends.

        Every slot before that wall time fired in the first pass, every slot from it on
        fires after t.
        """
        local = t.astimezone(self.tz)
        if not local.fold:
            return None
        earlier, later = local.replace(fold=0).utcoffset(), local.utcoffset()
        assert earlier is not None and later is not None
        second_pass = _segment_start(self.tz, t - (earlier - later) - _ONE_SECOND, t)
        if second_pass is None:
            return None
        return _naive_utc_plus(second_pass, earlier)

    def _wall_next(self, t: datetime) -> datetime:
        rule = self._rule
        assert rule is not None
        end = self._repeat_end(t)
        if end is not None:
            wall = rule.next_or_at(end)
        else:
            wall = rule.next(t.astimezone(self.tz).replace(tzinfo=None))
        for _ in range(_MAX_STEPS):
            instant = self._wall_to_instant(wall)
            if instant > t:
                return instant
            wall = rule.next(wall)
        raise RuntimeError(f"no fire time found after {t} for {self.cron!r}")

    def _wall_prev(self, t: datetime) -> datetime:
        rule = self._rule
        assert rule is not None
        end = self._repeat_end(t)
        if end is not None:
            wall = rule.prev(end)
        else:
            wall = rule.prev_or_at(t.astimezone(self.tz).replace(tzinfo=None))
        for _ in range(_MAX_STEPS):
            instant = self._wall_to_instant(wall)
            if instant <= t:
                return instant
            wall = rule.prev(wall)
        raise RuntimeError(f"no fire time found before {t} for {self.cron!r}")

    # Absolute crons: fire at each instant whose local reading matches. Within a stretch
    # of constant UTC offset that is a plain shift of the naive slots; at each offset
    # change the search restarts from the change with the new offset.

    def _absolute_next(self, t: datetime) -> datetime:
        rule = self._rule
        assert rule is not None
        current, inclusive = t, False
        for _ in range(_MAX_STEPS):
            offset = current.astimezone(self.tz).utcoffset()
            assert offset is not None
            wall = _naive_utc_plus(current, offset)
            slot = rule.next_or_at(wall) if inclusive else rule.next(wall)
            candidate = _from_naive_utc(slot - offset)
            change = _offset_change(self.tz, current, candidate)
            if change is None:
                return candidate
            current, inclusive = change, True
        raise RuntimeError(f"no fire time found after {t} for {self.cron!r}")

    def _absolute_prev(self, t: datetime) -> datetime:
        rule = self._rule
        assert rule is not None
        current = t
        for _ in range(_MAX_STEPS):
            offset = current.astimezone(self.tz).utcoffset()
            assert offset is not None
            slot = rule.prev_or_at(_naive_utc_plus(current, offset))
            candidate = _from_naive_utc(slot - offset)
            start = _segment_start(self.tz, candidate, current)
            if start is None:
                return candidate
            # Slots are whole seconds, so one second before the stretch starts, inclusive,
            # misses nothing.
            current = start - _ONE_SECOND
        raise RuntimeError(f"no fire time found before {t} for {self.cron!r}")


def parse(expression: str, tz: str | None = None, at: time = MIDNIGHT,
          anchor: datetime | None = None) -> Schedule:
    """Parse and validate a schedule expression (see the module docstring for the forms).

    Args:
        expression: a word, ``@`` alias, ``every_N_*`` interval or 5/6-field cron.
        tz: IANA zone the cron fields are read in; default :func:`local_zone`.
        at: local time of day for the daily-and-longer words (whole seconds, no tzinfo).
        anchor: an aware instant the interval grid passes through, stored with the
            schedule so restarts keep the phase; default the UNIX epoch.

    Raises:
        InvalidScheduleError: anything not accepted, with the accepted forms in the message.
    """
    if not isinstance(expression, str):
        raise InvalidScheduleError(f"expression must be a string, got {type(expression).__name__}",
                                   expression)
    text = expression.strip()
    if not text:
        raise InvalidScheduleError("the expression is empty", expression)
    zone = _zone(tz)
    key = text.lower()

    if key.startswith("every"):
        match = _INTERVAL_RE.fullmatch(key)
        if match is None:
            raise InvalidScheduleError(
                "an interval is every_N_minutes, every_N_hours or every_N_days with N a "
                "positive whole number", text)
        count = int(match.group(1))
        unit, most = _INTERVAL_UNITS[match.group(2)]
        if not match.group(3) and count != 1:
            raise InvalidScheduleError(f"use the plural unit for N = {count}", text)
        if count > most:
            raise InvalidScheduleError(f"N must be between 1 and {most} for "
                                       f"{match.group(2)}s, got {count}", text)
        if anchor is None:
            phase = EPOCH
        else:
            try:
                phase = _utc(anchor, "anchor")
            except (TypeError, ValueError) as exc:
                raise InvalidScheduleError(str(exc), text) from None
        return Schedule(expression=text, kind="interval", tz=zone, interval=count * unit,
                        anchor=phase)

    when: time | None = None
    if key in _FIXED_WORDS:
        cron = _FIXED_WORDS[key]
    elif key in _AT_WORDS:
        when = _check_at(at, text)
        cron = _AT_WORDS[key].format(m=when.minute, h=when.hour)
        if when.second:
            cron += f" {when.second}"
    elif key.startswith("@") or key.isalpha():
        raise InvalidScheduleError(f"unknown word {text!r}", text)
    else:
        cron = _normalise_cron(text)
    try:
        rule = _compile_cron(cron)
    except InvalidScheduleError as exc:
        raise InvalidScheduleError(exc.reason, text) from None
    return Schedule(expression=text, kind="cron", tz=zone, cron=cron, at=when, _rule=rule)


def _check_at(at: time, expression: str) -> time:
    if not isinstance(at, time):
        raise InvalidScheduleError(f"at must be a datetime.time, got {type(at).__name__}",
                                   expression)
    if at.tzinfo is not None:
        raise InvalidScheduleError("at must be a local time without tzinfo (pass tz instead)",
                                   expression)
    if at.microsecond:
        raise InvalidScheduleError("at must be whole seconds", expression)
    return at
