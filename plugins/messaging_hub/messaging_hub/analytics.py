"""Response metrics for one person's direct messages, computed offline from the messages.

What Front and Help Scout report for a shared support inbox, applied to personal DMs:

* **response time**: for every run of messages from a contact that you had not answered,
  the time from the *first* message of the run to your next reply (Help Scout's
  definition: the clock starts when the customer wrote, not at their last nudge);
* **first response time**: the same, only for runs that open a conversation, i.e. that
  come after ``gap`` of silence in both directions (or are the first message ever);
* medians per contact and overall (a median, because one reply after a holiday would
  swamp a mean), and the 90th percentile overall;
* **waiting on you**: runs not answered yet, with their age;
* volume by day and by weekday x hour in the user's own time zone, sent and received;
* each figure against the previous period of the same length.

Auto-replies (ours or theirs, recognised by the marker) are neither a message to answer
nor an answer: an away message must not make your response time look good.
A run is counted in the period in which its first message arrived.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass(frozen=True)
class Msg:
    """One direct message as analytics needs it."""

    id: str
    sender_id: str
    recipient_id: str
    at: datetime  # aware (UTC from the server)
    auto: bool = False  # carries the auto-reply marker


@dataclass
class Response:
    contact: str
    asked_at: datetime  # the first unanswered message of the run
    answered_at: datetime
    opening: bool  # the run opened a conversation (after the gap)

    @property
    def seconds(self) -> float:
        return (self.answered_at - self.asked_at).total_seconds()


@dataclass
class Walk:
    """Every response and every still-open run, over all messages (both periods)."""

    responses: list[Response] = field(default_factory=list)
    waiting: dict[str, datetime] = field(default_factory=dict)  # contact -> asked at


def partner(msg: Msg, me: str) -> str:
    return msg.recipient_id if msg.sender_id == me else msg.sender_id


def walk(messages: Iterable[Msg], me: str, gap: timedelta) -> Walk:
    """Pair every run of a contact's messages with your next (non-automatic) reply."""
    by_contact: dict[str, list[Msg]] = defaultdict(list)
    for msg in messages:
        by_contact[partner(msg, me)].append(msg)
    out = Walk()
    for contact, msgs in by_contact.items():
        msgs.sort(key=lambda m: m.at)
        asked: datetime | None = None
        opening = False
        previous: datetime | None = None  # the last human message, either direction
        for msg in msgs:
            if msg.auto:
                continue
            if msg.sender_id != me:
                if asked is None:
                    asked = msg.at
                    opening = previous is None or msg.at - previous >= gap
            elif asked is not None:
                out.responses.append(Response(contact, asked, msg.at, opening))
                asked = None
            previous = msg.at
        if asked is not None:
            out.waiting[contact] = asked
    return out


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=10, method="inclusive")[-1])


def _change(now: float | None, before: float | None) -> float | None:
    """Relative change (0.25 = +25 %); None when there is nothing to compare with."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / before


def period_figures(messages: Sequence[Msg], walked: Walk, me: str, start: datetime,
                   end: datetime) -> dict[str, Any]:
    """The headline figures of ``[start, end)``."""
    inside = [m for m in messages if start <= m.at < end]
    responses = [r for r in walked.responses if start <= r.asked_at < end]
    seconds = [r.seconds for r in responses]
    first = [r.seconds for r in responses if r.opening]
    return {
        "sent": sum(1 for m in inside if m.sender_id == me and not m.auto),
        "received": sum(1 for m in inside if m.sender_id != me and not m.auto),
        "auto_replies": sum(1 for m in inside if m.auto),
        "contacts": len({partner(m, me) for m in inside}),
        "replies": len(responses),
        "median_response_seconds": _median(seconds),
        "p90_response_seconds": _p90(seconds),
        "median_first_response_seconds": _median(first),
        "conversations_opened": sum(1 for m in _openings(messages, me, walked, start, end)),
    }


def _openings(messages: Sequence[Msg], me: str, walked: Walk, start: datetime,
              end: datetime) -> Iterable[datetime]:
    # Answered openings, plus the still-open runs that began in the window.
    for r in walked.responses:
        if r.opening and start <= r.asked_at < end:
            yield r.asked_at
    for asked in walked.waiting.values():
        if start <= asked < end:
            yield asked


def report(messages: Sequence[Msg], me: str, names: Mapping[str, str], *, days: int,
           now: datetime, tz: ZoneInfo, gap: timedelta) -> dict[str, Any]:
    """The whole analytics answer: this period against the one before, per day, per
    weekday and hour, per contact, and who is waiting."""
    end = now
    start = end - timedelta(days=days)
    previous_start = start - timedelta(days=days)
    walked = walk(messages, me, gap)
    current = period_figures(messages, walked, me, start, end)
    previous = period_figures(messages, walked, me, previous_start, start)
    change = {k: _change(current[k], previous[k]) for k in current
              if isinstance(current[k], (int, float)) or current[k] is None}

    local_days = [(start.astimezone(tz) + timedelta(days=i)).date()
                  for i in range(days + 1)]
    first_day = start.astimezone(tz).date()
    last_day = end.astimezone(tz).date()
    per_day: dict[str, Counter[str]] = {d.isoformat(): Counter() for d in local_days
                                        if first_day <= d <= last_day}
    heat: Counter[tuple[int, int, str]] = Counter()
    for m in messages:
        if not start <= m.at < end or m.auto:
            continue
        local = m.at.astimezone(tz)
        direction = "sent" if m.sender_id == me else "received"
        per_day.setdefault(local.date().isoformat(), Counter())[direction] += 1
        heat[(local.weekday(), local.hour, direction)] += 1

    contacts: list[dict[str, Any]] = []
    for contact in sorted({partner(m, me) for m in messages}):
        mine = [m for m in messages if partner(m, me) == contact]
        now_rs = [r for r in walked.responses if r.contact == contact
                  and start <= r.asked_at < end]
        before_rs = [r for r in walked.responses if r.contact == contact
                     and previous_start <= r.asked_at < start]
        in_period = [m for m in mine if start <= m.at < end and not m.auto]
        waiting_since = walked.waiting.get(contact)
        if not in_period and not now_rs and waiting_since is None:
            continue
        median_now = _median([r.seconds for r in now_rs])
        median_before = _median([r.seconds for r in before_rs])
        contacts.append({
            "contact_id": contact,
            "name": names.get(contact, contact),
            "received": sum(1 for m in in_period if m.sender_id != me),
            "sent": sum(1 for m in in_period if m.sender_id == me),
            "replies": len(now_rs),
            "median_response_seconds": median_now,
            "previous_median_response_seconds": median_before,
            "median_response_change": _change(median_now, median_before),
            "median_first_response_seconds": _median([r.seconds for r in now_rs
                                                      if r.opening]),
            "waiting_since": waiting_since.isoformat() if waiting_since else None,
            "waiting_seconds": (now - waiting_since).total_seconds() if waiting_since else None,
        })
    contacts.sort(key=lambda c: (-(c["received"] + c["sent"]), c["name"]))
    return {
        "period": {"days": days, "start": start.isoformat(), "end": end.isoformat(),
                   "previous_start": previous_start.isoformat(), "timezone": tz.key,
                   "gap_hours": gap.total_seconds() / 3600},
        "current": current,
        "previous": previous,
        "change": change,
        "by_day": [{"date": d, "sent": c["sent"], "received": c["received"]}
                   for d, c in sorted(per_day.items())],
        "by_hour": [{"weekday": WEEKDAYS[w], "weekday_index": w, "hour": h,
                     "direction": direction, "count": n}
                    for (w, h, direction), n in sorted(heat.items())],
        "contacts": contacts,
        "waiting": sorted(
            ({"contact_id": c, "name": names.get(c, c), "since": t.isoformat(),
              "seconds": (now - t).total_seconds()} for c, t in walked.waiting.items()),
            key=lambda w: w["since"]),
    }


def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run: text starting with = + - @ or a
    control character gets a leading apostrophe (OWASP's advice for CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


CONTACT_COLUMNS = ("contact", "contact_id", "received", "sent", "replies",
                   "median_response_seconds", "previous_median_response_seconds",
                   "median_first_response_seconds", "waiting_since")
DAY_COLUMNS = ("date", "sent", "received")


def to_csv(data: Mapping[str, Any], kind: str) -> str:
    """``contacts`` (one row per contact) or ``daily`` (one row per day) as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if kind == "daily":
        writer.writerow(DAY_COLUMNS)
        for row in data["by_day"]:
            writer.writerow([safe_cell(row[c]) for c in DAY_COLUMNS])
        return out.getvalue()
    writer.writerow(CONTACT_COLUMNS)
    for c in data["contacts"]:
        values = {**c, "contact": c["name"]}
        writer.writerow([safe_cell("" if values.get(col) is None else values[col])
                         for col in CONTACT_COLUMNS])
    return out.getvalue()
