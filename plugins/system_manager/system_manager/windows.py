"""Maintenance windows: weekly time slots in which maintenance may disturb and alerts
stay quiet (they are still recorded, marked suppressed).

A window starts at a local wall-clock time on chosen weekdays and lasts a number of
minutes (at most a day, so it can run past midnight into the next day). Start times are
resolved in the window's zone: a start in a spring-forward gap begins the length of the
gap later (02:30 becomes 03:30), and the window lasts its length in real minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator

from plexichat_desktop.scheduling.expressions import is_zone_name, local_zone


def check_zone(value: str | None) -> str | None:
    """``value`` when it names an IANA zone ("" and None: the machine's); ValueError."""
    if value in (None, ""):
        return None
    assert value is not None
    try:
        ZoneInfo(value)
        ok = is_zone_name(value)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        ok = False
    if not ok:
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                         "'Europe/Berlin')")
    return value

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Window(BaseModel):
    """One weekly window; ``days`` are 0 (Monday) to 6 (Sunday)."""

    name: str = Field(min_length=1, max_length=80)
    days: list[int] = Field(min_length=1, max_length=7)
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                       description="local start time, HH:MM")
    minutes: int = Field(ge=5, le=1440, description="length in minutes")
    timezone: str | None = Field(None, description="IANA zone; none = the machine's")
    enabled: bool = True

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in value):
            raise ValueError("each day is 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return check_zone(value)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone) if self.timezone else local_zone()

    def _start_instant(self, day: datetime) -> datetime:
        """The window's start on local date ``day`` as an aware instant."""
        hour, minute = (int(p) for p in self.start.split(":"))
        wall = datetime.combine(day.date(), time(hour, minute), tzinfo=self.zone())
        # A wall time in a DST gap does not exist: fold=0 reads it with the offset from
        # before the change, which lands the length of the gap later (02:30 -> 03:30).
        return wall.astimezone(UTC)

    def occurrence_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """``(start, end)`` of the occurrence covering ``now`` (aware), or None."""
        if not self.enabled:
            return None
        local = now.astimezone(self.zone())
        for back in (0, 1):
            day = local - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            start = self._start_instant(day)
            end = start + timedelta(minutes=self.minutes)
            if start <= now.astimezone(UTC) < end:
                return start, end
        return None

    def next_start(self, now: datetime) -> datetime | None:
        """The next start strictly after ``now``."""
        if not self.enabled:
            return None
        local = now.astimezone(self.zone())
        for ahead in range(0, 8):
            day = local + timedelta(days=ahead)
            if day.weekday() in self.days:
                start = self._start_instant(day)
                if start > now.astimezone(UTC):
                    return start
        return None

    def describe(self) -> str:
        days = ", ".join(DAY_NAMES[d] for d in self.days)
        return f"{days} {self.start} for {self.minutes} min"


def active_window(windows: list[tuple[str, Window]], now: datetime | None = None
                  ) -> dict[str, Any] | None:
    """The first window (id, name, end) covering ``now``, or None."""
    now = now or datetime.now(UTC)
    for window_id, window in windows:
        hit = window.occurrence_at(now)
        if hit is not None:
            return {"id": window_id, "name": window.name, "started_at": hit[0].isoformat(),
                    "ends_at": hit[1].isoformat()}
    return None
