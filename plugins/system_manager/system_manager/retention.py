"""GFS retention (grandfather-father-son), with restic's ``forget`` semantics.

A policy keeps the ``last`` N backups, plus the newest backup of each of the ``daily``
most recent days that have one, of the ``weekly`` most recent ISO weeks, of the
``monthly`` most recent months and of the ``yearly`` most recent years. Days, weeks,
months and years are calendar periods in the policy's time zone (so a backup made at
00:30 local time belongs to that local day, whatever UTC says, across DST changes too).
Everything not kept by some rule would be deleted: :func:`plan` only *says* so; the
caller deletes. The newest backup is always kept, even by a policy of all zeros, so a
retention run can never leave a schedule without a backup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from plexichat_desktop.scheduling.expressions import local_zone

RULES: tuple[str, ...] = ("last", "daily", "weekly", "monthly", "yearly")


class Policy(BaseModel):
    """How many backups each rule keeps; 0 turns a rule off."""

    last: int = Field(3, ge=0, le=1000, description="the N newest backups")
    daily: int = Field(7, ge=0, le=3660, description="newest of each of N days")
    weekly: int = Field(4, ge=0, le=520, description="newest of each of N ISO weeks")
    monthly: int = Field(6, ge=0, le=1200, description="newest of each of N months")
    yearly: int = Field(0, ge=0, le=100, description="newest of each of N years")

    def most_kept(self) -> int:
        """An upper bound of how many backups the policy keeps (rules may overlap)."""
        return max(1, self.last + self.daily + self.weekly + self.monthly + self.yearly)


@dataclass(frozen=True)
class Item:
    """One backup as retention sees it: an id and when it was made (aware datetime)."""

    id: str
    created: datetime
    label: str = ""


@dataclass
class Decision:
    """Whether ``item`` stays, and the rules (with their period) that keep it."""

    item: Item
    keep: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self, zone: ZoneInfo) -> dict[str, Any]:
        return {"id": self.item.id, "label": self.item.label,
                "created_at": self.item.created.astimezone(UTC).isoformat(),
                "local": self.item.created.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
                "keep": self.keep, "reasons": list(self.reasons)}


def _buckets(zone: ZoneInfo) -> dict[str, Callable[[datetime], str]]:
    def local(t: datetime) -> datetime:
        return t.astimezone(zone)

    def week(t: datetime) -> str:
        year, number, _ = local(t).isocalendar()
        return f"{year}-W{number:02d}"

    return {
        "daily": lambda t: local(t).strftime("%Y-%m-%d"),
        "weekly": week,
        "monthly": lambda t: local(t).strftime("%Y-%m"),
        "yearly": lambda t: local(t).strftime("%Y"),
    }


def plan(items: Iterable[Item], policy: Policy, timezone: str | None = None
         ) -> list[Decision]:
    """Decide for every item, newest first. Ties in time are broken by id, so the plan
    is the same whatever order the items come in."""
    zone = ZoneInfo(timezone) if timezone else local_zone()
    ordered = sorted(items, key=lambda i: (i.created.astimezone(UTC), i.id), reverse=True)
    decisions = [Decision(item, False) for item in ordered]
    for index, decision in enumerate(decisions[: policy.last]):
        decision.keep = True
        decision.reasons.append(f"last {index + 1}")
    for rule, key in _buckets(zone).items():
        wanted: int = getattr(policy, rule)
        seen: list[str] = []
        for decision in decisions:
            if len(seen) >= wanted:
                break
            bucket = key(decision.item.created)
            if bucket in seen:
                continue  # an older backup of a period already kept by its newest one
            seen.append(bucket)
            decision.keep = True
            decision.reasons.append(f"{rule} {bucket}")
    if decisions and not decisions[0].keep:
        decisions[0].keep = True
        decisions[0].reasons.append("newest (always kept)")
    return decisions


def deletions(decisions: Sequence[Decision]) -> list[Item]:
    """The items a plan would delete, newest first."""
    return [d.item for d in decisions if not d.keep]


def parse_time(value: Any) -> datetime:
    """An ISO-8601 string (or datetime) as an aware datetime; naive ones are UTC."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(
        str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
