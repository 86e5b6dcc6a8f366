"""Alert rules and scheduled report subscriptions: their models, their saved state and
the rules' state machine.

An alert rule is checked on a schedule (and on demand). It **fires** when its condition
becomes true and **resolves** when it becomes false again: transitions only, so a
condition that stays true sends one message, not one per check. After a fire was sent,
another fire of the same rule within ``cooldown_minutes`` is recorded but not sent (and
neither is its resolution), which keeps a flapping metric from flooding anyone.

A subscription renders a report on its own schedule (the host's grammar: ``daily``,
``every_6_hours``, ``0 8 * * 1``...), keeps the file, and sends a notification (or the
report's rows to a webhook); optionally it uploads the file to the user's v1 files.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analytics_dashboard.delivery import check_url
from analytics_dashboard.metrics import METRICS, SERIES_KEYS
from plexichat_desktop.plugins.files import keep_aside, write_atomic
from plexichat_desktop.scheduling.expressions import InvalidScheduleError, parse

MetricKey = Literal["active_users", "new_users", "messages", "files", "logins",
                    "failed_logins", "searches", "webhook_delivery_rate", "webhook_failed",
                    "notifications"]
ReportType = Literal["activity", "files", "messaging", "top_users"]
Channel = Literal["notification", "webhook"]
MAX_EVENTS = 300
OPERATORS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
             "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


# Control characters (C0, DEL, C1) and the bidirectional overrides that make a name read
# differently from what it is; a name shows in notifications and the page.
_BAD_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _clean_name(value: str) -> str:
    if _BAD_NAME.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _clean_url(value: str | None) -> str | None:
    return None if value is None or not value.strip() else check_url(value)


class RuleIn(BaseModel):
    """An alert rule as the page sends it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    metric: MetricKey
    kind: Literal["threshold", "anomaly"] = "threshold"
    #: threshold: the metric over the last ``window_days`` UTC days (today included)
    operator: Literal[">", ">=", "<", "<="] = ">"
    value: float | None = Field(None, ge=0, le=1e12)
    window_days: int = Field(1, ge=1, le=365)
    #: anomaly: a spike ("up", judged on today so far), a drop ("down", judged on
    #: yesterday, a complete day) or both; beyond ``sensitivity`` robust z
    direction: Literal["up", "down", "both"] = "up"
    sensitivity: float = Field(3.5, ge=2.0, le=20.0)
    channel: Channel = "notification"
    webhook_url: str | None = Field(None, max_length=2000)
    cooldown_minutes: int = Field(60, ge=0, le=10080)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _clean_name(value)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _clean_url(value)

    @model_validator(mode="after")
    def _consistent(self) -> RuleIn:
        if self.kind == "threshold" and self.value is None:
            raise ValueError("value: a threshold rule needs a value to compare with")
        if self.kind == "anomaly" and self.metric not in SERIES_KEYS:
            raise ValueError(f"metric: {self.metric} has no daily series, so it cannot have "
                             "an anomaly rule; use a threshold rule")
        if self.channel == "webhook" and not self.webhook_url:
            raise ValueError("webhook_url: the webhook channel needs a URL")
        return self

    def describe(self) -> str:
        """The condition in words, e.g. "failed logins over the last 1 day > 20"."""
        unit = METRICS[self.metric].unit
        if self.kind == "threshold":
            span = "today (UTC)" if self.window_days == 1 else f"the last {self.window_days} days"
            return f"{unit} over {span} {self.operator} {self.value:g}"
        side = {"up": "an unusual spike in", "down": "an unusual drop in",
                "both": "an unusual spike or drop in"}[self.direction]
        return f"{side} daily {unit} (robust z beyond ±{self.sensitivity:g})"


class SubscriptionIn(BaseModel):
    """A report subscription as the page sends it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    report: ReportType
    days: int = Field(30, ge=1, le=365)
    format: Literal["csv", "pdf"] = "pdf"
    schedule: str = Field("daily", min_length=1, max_length=100)
    channel: Channel = "notification"
    webhook_url: str | None = Field(None, max_length=2000)
    upload: bool = False
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _clean_name(value)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _clean_url(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            parse(value)
        except InvalidScheduleError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> SubscriptionIn:
        if self.channel == "webhook" and not self.webhook_url:
            raise ValueError("webhook_url: the webhook channel needs a URL")
        return self


def next_run(expression: str, after: float) -> float:
    """The first fire of ``expression`` (machine's zone) strictly after ``after``."""
    instant = dt.datetime.fromtimestamp(after, dt.UTC)
    return parse(expression).next_after(instant).timestamp()


@dataclass
class Transition:
    """What one check of a rule changed."""

    event: Literal["fired", "resolved"] | None
    send: bool
    note: str = ""
    #: the fire sent before this one (what a failed delivery of this one gives back)
    previous_sent_at: float | None = None


def step(record: dict[str, Any], breached: bool, now: float) -> Transition:
    """Advance a rule's saved state (``record["state"]``) for one check result.

    Only changes send anything: ok → firing sends "fired" unless the last sent fire was
    less than ``cooldown_minutes`` ago; firing → ok sends "resolved" when its fire was
    sent. A condition that stays as it was sends nothing."""
    state = record["state"]
    cooldown = float(record["cooldown_minutes"]) * 60
    if breached and state["status"] != "firing":
        state["status"] = "firing"
        state["since"] = now
        last = state.get("last_fired_sent_at")
        if last is not None and now - last < cooldown:
            state["fire_sent"] = False
            until = dt.datetime.fromtimestamp(last + cooldown, dt.UTC)
            return Transition("fired", False,
                              f"not sent: cooling down until {until:%Y-%m-%d %H:%M} UTC")
        state["fire_sent"] = True
        state["last_fired_sent_at"] = now
        return Transition("fired", True, previous_sent_at=last)
    if not breached and state["status"] == "firing":
        state["status"] = "ok"
        state["since"] = now
        sent = bool(state.get("fire_sent"))
        state["fire_sent"] = False
        state["undelivered"] = False  # nothing to send again: the condition is over
        state["resends"] = 0
        return Transition("resolved", sent, "" if sent else "not sent: its fire was not sent")
    return Transition(None, False)


def new_state() -> dict[str, Any]:
    return {"status": "ok", "since": None, "last_value": None, "last_checked_at": None,
            "last_message": None, "last_error": None, "fire_sent": False,
            "last_fired_sent_at": None, "undelivered": False}


class AutomationStore:
    """Rules, subscriptions and the event log, kept in one JSON file (written whole and
    replaced atomically, so a crash never leaves half a file)."""

    def __init__(self, path: Path):
        self.path = path
        self.rules: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.load()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # Keep the damaged file for the user and start empty rather than failing.
            broken = keep_aside(self.path)
            self.events.append({"at": time.time(), "kind": "error", "message": (
                f"{self.path.name} could not be read ({exc}); kept as {broken.name}")})
            return
        self.rules = data.get("rules", {})
        self.subscriptions = data.get("subscriptions", {})
        self.events = data.get("events", [])[-MAX_EVENTS:]

    def save(self) -> None:
        write_atomic(self.path, json.dumps({"rules": self.rules,
                                            "subscriptions": self.subscriptions,
                                            "events": self.events[-MAX_EVENTS:]}, indent=1))

    def log(self, kind: str, message: str, **extra: Any) -> dict[str, Any]:
        event = {"id": uuid.uuid4().hex[:12], "at": time.time(), "kind": kind,
                 "message": message, **extra}
        self.events.append(event)
        del self.events[:-MAX_EVENTS]
        return event

    # -- rules -------------------------------------------------------------------------
    def add_rule(self, rule: RuleIn) -> dict[str, Any]:
        record = {**rule.model_dump(), "id": uuid.uuid4().hex[:12], "created_at": time.time(),
                  "secret": secrets.token_hex(24), "state": new_state()}
        self.rules[record["id"]] = record
        self.save()
        return record

    def update_rule(self, rule_id: str, rule: RuleIn) -> dict[str, Any]:
        record = self.rules[rule_id]
        # The state stays: changing a threshold of a firing rule resolves it at the
        # next check (a transition) instead of starting it over silently. A rule made to
        # watch something else is another alert: its state starts over (it stayed
        # "firing", and the new condition, breached too, was never sent).
        watched = ("metric", "kind", "operator", "direction")
        if any(record.get(key) != getattr(rule, key) for key in watched):
            record["state"] = new_state()
        record.update(rule.model_dump())
        self.save()
        return record

    # -- subscriptions -----------------------------------------------------------------
    def add_subscription(self, sub: SubscriptionIn, now: float) -> dict[str, Any]:
        record = {**sub.model_dump(), "id": uuid.uuid4().hex[:12], "created_at": now,
                  "secret": secrets.token_hex(24),
                  "next_run_at": next_run(sub.schedule, now), "last_run_at": None,
                  "last_status": None, "last_error": None, "last_file": None, "runs": 0}
        self.subscriptions[record["id"]] = record
        self.save()
        return record

    def update_subscription(self, sub_id: str, sub: SubscriptionIn, now: float
                            ) -> dict[str, Any]:
        record = self.subscriptions[sub_id]
        changed = record["schedule"] != sub.schedule
        record.update(sub.model_dump())
        if changed:
            record["next_run_at"] = next_run(sub.schedule, now)
        self.save()
        return record


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A rule or subscription for the page: the signing secret only as a hint unless it
    goes to a webhook (whose receiver needs it to check signatures)."""
    shown = {k: v for k, v in record.items() if k != "secret"}
    if record.get("channel") == "webhook":
        shown["secret"] = record.get("secret")
    return shown
