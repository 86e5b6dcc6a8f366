"""The away auto-reply: once per conversation per window, and never into a loop.

Loop guard, in the spirit of RFC 3834 (automatic responses to e-mail), adapted to a chat
API that has no headers: every auto-reply starts with :data:`MARKER`, and a message that
starts with it is never answered, by this responder or by another copy of it on the other
side. Two people who are both away therefore exchange at most one auto-reply each per
window. Behind the marker, three more guards hold even against a responder that does not
know the marker:

* one auto-reply per contact per window (``window_hours``), checked and recorded in one
  SQLite transaction, so two messages arriving together are answered once;
* a decision per received message is stored first: a message seen twice (a reconnect, a
  replay) is never answered twice;
* at most ``MAX_PER_HOUR`` auto-replies in any hour, whoever writes.

Every decision (replied, or skipped and why) is kept and shown on the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator

from messaging_hub.store import Store
from messaging_hub.templating import (
    TemplateProblem,
    builtin_values,
    render,
    variables,
)

MARKER = "[auto-reply]"
MAX_PER_HOUR = 30
DEFAULT_MESSAGE = ("Hi {{ first_name }}, I'm away{% if back %} until {{ back }}{% endif %} "
                   "and will answer when I'm back.")


def is_auto_reply(content: str) -> bool:
    """True for a message sent by an auto-responder (ours or another copy of it)."""
    return content.lstrip().startswith(MARKER)


def _hhmm(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        dtime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be HH:MM (24-hour clock)") from None
    return value[:5]


class AwaySettings(BaseModel):
    """What the page edits; stored per v1 user."""

    model_config = {"extra": "forbid"}

    enabled: bool = False  # away now (until ``until``, when given)
    until: datetime | None = None
    message: str = Field(DEFAULT_MESSAGE, min_length=1, max_length=2000)
    window_hours: float = Field(24.0, ge=0.1, le=24 * 30)
    quiet_start: str | None = None  # HH:MM: quiet hours count as away every day
    quiet_end: str | None = None
    timezone: str = "UTC"

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return _hhmm(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             "Europe/Berlin)") from None
        return value

    @field_validator("message")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            names = variables(value)
        except TemplateProblem as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from None
        unknown = [n for n in names if n not in AWAY_VARIABLES]
        if unknown:
            raise ValueError(f"unknown variable {', '.join(unknown)}; an away message may "
                             f"use {', '.join(sorted(AWAY_VARIABLES))}")
        return value

    def away_at(self, at: datetime) -> bool:
        """Away at ``at``: switched on (and not past ``until``), or inside quiet hours."""
        if self.enabled and (self.until is None or at < _aware(self.until)):
            return True
        if self.quiet_start and self.quiet_end:
            local = at.astimezone(ZoneInfo(self.timezone)).time()
            start = dtime.fromisoformat(self.quiet_start)
            end = dtime.fromisoformat(self.quiet_end)
            if start <= end:
                return start <= local < end
            return local >= start or local < end  # over midnight, e.g. 22:00-07:00
        return False


AWAY_VARIABLES = {"name", "first_name", "username", "me", "today", "now", "weekday", "back"}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))


class AutoResponder:
    """Decides about each received message and sends the auto-reply when it should.

    ``send(recipient_id, content)`` posts a message and returns its v1 dict; ``me`` is the
    owner's ``{id, username, display_name}``; ``contact(user_id)`` returns a contact's
    profile for the template. The same class runs in the plugin (for the signed-in user)
    and, in the tests, for a second user on their own client.
    """

    def __init__(self, store: Store, me: Mapping[str, Any],
                 send: Callable[[str, str], Awaitable[Mapping[str, Any]]],
                 contact: Callable[[str], Awaitable[Mapping[str, Any]]],
                 on_decision: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.me = dict(me)
        self.owner_id = str(me["id"])
        self._send = send
        self._contact = contact
        self._on_decision = on_decision or (lambda d: None)
        self._clock = clock
        self._lock = asyncio.Lock()

    def settings(self) -> AwaySettings:
        stored = self.store.away(self.owner_id)
        return AwaySettings.model_validate(stored) if stored else AwaySettings()

    def _skip(self, message_id: str, partner_id: str, reason: str) -> dict[str, Any]:
        self.store.decide(self.owner_id, message_id, partner_id, "skipped", reason,
                          self._clock())
        return self._done(message_id)

    def _done(self, message_id: str) -> dict[str, Any]:
        decision = self.store.decision(self.owner_id, message_id)
        assert decision is not None
        self._on_decision(decision)
        return decision

    async def consider(self, message: Mapping[str, Any]) -> dict[str, Any] | None:
        """Decide about one ``message`` frame (a v1 ``MessageResponse``); the decision, or
        None for a message that is not one received by the owner."""
        if message.get("recipient_id") != self.owner_id or \
                message.get("sender_id") == self.owner_id:
            return None
        message_id = str(message["id"])
        partner_id = str(message["sender_id"])
        async with self._lock:  # one decision at a time: the window check must hold
            known = self.store.decision(self.owner_id, message_id)
            if known is not None:
                return known
            if is_auto_reply(str(message.get("content", ""))):
                return self._skip(message_id, partner_id,
                                  "an auto-reply (marker): never answered, so two "
                                  "auto-responders cannot loop")
            settings = self.settings()
            now = self._clock()
            received = _parse_time(message.get("timestamp")) or datetime.fromtimestamp(
                now, ZoneInfo("UTC"))
            if not settings.away_at(received):
                # Not stored: the log is about what happened while away, and a decision
                # for every ordinary message would grow without bound.
                return {"owner_id": self.owner_id, "message_id": message_id,
                        "partner_id": partner_id, "decision": "skipped",
                        "reason": "not away", "reply_id": None, "at": now}
            if self.store.replies_since(self.owner_id, now - 3600) >= MAX_PER_HOUR:
                return self._skip(message_id, partner_id,
                                  f"rate guard: {MAX_PER_HOUR} auto-replies in the last hour")
            since = now - settings.window_hours * 3600
            if not self.store.claim_reply(self.owner_id, message_id, partner_id, since, now):
                return self._skip(message_id, partner_id,
                                  f"already auto-replied to this contact in the last "
                                  f"{settings.window_hours:g} h")
        # Sending happens outside the lock; the claim above already holds the window.
        try:
            contact = await self._contact(partner_id)
            with contextlib.suppress(Exception):  # the owner's own name as it is now
                self.me = dict(await self._contact(self.owner_id))
            zone = ZoneInfo(settings.timezone)
            local_now = datetime.fromtimestamp(now, zone)
            back = ""
            if settings.enabled and settings.until is not None:
                back = _aware(settings.until).astimezone(zone).strftime("%a %d %b %H:%M")
            # "back" is the app's, empty without a date: not a value the user left blank.
            text = render(settings.message, {},
                          {**builtin_values(contact, self.me, local_now), "back": back})
            sent = await self._send(partner_id, f"{MARKER} {text}")
        except Exception as exc:  # recorded and shown; the next message may try again
            self.store.finish_reply(self.owner_id, message_id, "failed",
                                    f"{type(exc).__name__}: {exc}", None)
            return self._done(message_id)
        self.store.finish_reply(self.owner_id, message_id, "replied", "away",
                                str(sent.get("id")))
        return self._done(message_id)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, str) and value:
        try:
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def next_change(settings: AwaySettings, at: datetime) -> datetime | None:
    """When being away next starts or stops (for the page), within a day; None if never."""
    state = settings.away_at(at)
    step = timedelta(minutes=1)
    probe = at.replace(second=0, microsecond=0) + step
    for _ in range(24 * 60 + 1):
        if settings.away_at(probe) != state:
            return probe
        probe += step
    return None
