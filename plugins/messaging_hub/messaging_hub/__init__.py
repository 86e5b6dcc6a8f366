"""Messaging Hub: one person's direct messages, with the tools of a support desk.

* a unified inbox with unread, **waiting on you** (their message is the last human one),
  scheduled and draft filters, kept live from the realtime socket;
* a composer for text, markdown (sanitised preview) and code, with drafts saved as you
  type and templates whose variables are checked before sending (:mod:`templating`);
* an outbox for the undo window and send-later, persisted and sent exactly once
  (:mod:`store`, :mod:`outbox`);
* threads, reactions and edits of the v1 API; search that opens the conversation at the
  message found;
* response analytics offline — volume by day and hour, median and first response time
  per contact, against the previous period, as CSV too (:mod:`analytics`);
* an away auto-reply, once per conversation per window, that never answers another
  auto-reply (:mod:`autoreply`).

Every v1 call goes through ``ctx.api`` (the API integration layer's session, limited to
the scopes in ``plugin.toml``); the page talks only to this plugin's routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from messaging_hub import analytics
from messaging_hub.autoreply import (
    AWAY_VARIABLES,
    MARKER,
    AutoResponder,
    AwaySettings,
    is_auto_reply,
    next_change,
)
from messaging_hub.inbox import FILTERS, conversation_state, matches
from messaging_hub.outbox import (
    Dispatcher,
    edited_since_tried,
    in_doubt,
    public_item,
    went_out,
)
from messaging_hub.render import markdown_html
from messaging_hub.store import HELD, Store
from messaging_hub.templating import (
    BUILTINS,
    TemplateProblem,
    builtin_values,
    check,
    render,
    sandbox_refusal,
)
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.api import PluginProblem as Problem
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.settings import PluginSettings

if TYPE_CHECKING:
    from api_integration_layer.scoped import ScopedApi

MAX_CONTENT = 10_000
# Seconds a user's name is remembered (a rename shows within this).
PROFILE_TTL = 60.0
# While the server does not answer, a known name serves this long (then the error shows);
# the server is asked again every PROFILE_RETRY seconds meanwhile.
PROFILE_STALE_FOR = 3600.0
PROFILE_RETRY = 30.0
MessageType = Literal["text", "markdown", "code"]
QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "👀", "✅", "🙏", "😮"]


class HubSettings(PluginSettings):
    """``[plugin.messaging_hub]`` settings."""

    undo_seconds: int = Field(5, ge=0, le=60)
    inbox_size: int = Field(100, ge=10, le=500)
    inbox_depth: int = Field(20, ge=1, le=100)
    analytics_max_per_contact: int = Field(2000, ge=100, le=20_000)


def _from_api(exc: Exception) -> Problem:
    """A v1 (or layer) error as this plugin's answer: the same status, the field named."""
    from api_integration_layer.errors import ApiHTTPError, ApiPermissionError

    if isinstance(exc, ApiHTTPError):
        detail = exc.detail
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
            field = ".".join(loc) or "request"
            return Problem(exc.status if exc.status < 500 else 502, field,
                           "; ".join(str(d.get("msg", "")) for d in detail))
        text = str(detail)
        field = text.split(":", 1)[0] if ":" in text and " " not in text.split(":", 1)[0] \
            else "request"
        if text.startswith(field + ":"):
            text = text[len(field) + 1:].strip()
        return Problem(exc.status if exc.status < 500 else 502, field, text)
    if isinstance(exc, ApiPermissionError):
        return Problem(403, "scope", str(exc))
    return Problem(502, "api", f"the PlexiChat API did not answer: {exc}")


def answers(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Route wrapper: a v1 error or a bad model becomes a :class:`Problem`, which the host
    answers as a JSON 4xx ``{"detail": "field: why", "field": ...}`` (as it does this
    plugin's own problems and template problems, with their ``missing``), never a 500."""
    @functools.wraps(handler)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        from api_integration_layer.errors import ApiError

        try:
            return await handler(*args, **kwargs)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"]) or "request"
            raise Problem(422, field, error["msg"]) from None
        except (ApiError, PermissionError) as exc:
            raise _from_api(exc) from None
    return wrapped


def _zone(name: str, field: str = "tz") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
        raise Problem(422, field, f"unknown time zone {name!r} (an IANA name such as "
                                  "Europe/Berlin)") from None


def _aware(value: datetime, zone: tzinfo = UTC) -> datetime:
    """``value`` as given, or in ``zone`` when it has no offset (a wall-clock time)."""
    return value if value.tzinfo else value.replace(tzinfo=zone)


def _content(text: str, field: str = "content") -> str:
    if not text.strip():
        raise Problem(422, field, "the message is empty")
    if len(text) > MAX_CONTENT:
        raise Problem(422, field, f"{len(text)} characters; a message has at most "
                                  f"{MAX_CONTENT}")
    return text


# -- request bodies ---------------------------------------------------------------------
class SendBody(BaseModel):
    model_config = {"extra": "forbid"}

    recipient_id: str = Field(min_length=1, max_length=64)
    content: str | None = Field(None, max_length=50_000)  # checked against 10,000 below
    message_type: MessageType | None = None
    reply_to: str | None = Field(None, min_length=1, max_length=64)
    send_at: datetime | None = None
    template_id: str | None = Field(None, min_length=1, max_length=64)
    variables: dict[str, str] = Field(default_factory=dict)
    timezone: str = "UTC"
    undo: bool = True  # False: no undo window (still through the outbox)


class OutboxEdit(BaseModel):
    model_config = {"extra": "forbid"}

    content: str | None = Field(None, max_length=50_000)
    message_type: MessageType | None = None
    send_at: datetime | None = None
    timezone: str = "UTC"  # the zone of a send_at without an offset, as for a send


class DraftBody(BaseModel):
    model_config = {"extra": "forbid"}

    content: str = Field(max_length=50_000)
    message_type: MessageType = "text"
    reply_to: str | None = Field(None, max_length=64)


class TemplateBody(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=80)
    body: str = Field(min_length=1, max_length=MAX_CONTENT)
    message_type: MessageType = "text"
    description: str = Field("", max_length=300)


class CheckBody(BaseModel):
    model_config = {"extra": "forbid"}

    body: str = Field(max_length=MAX_CONTENT)
    variables: dict[str, str] = Field(default_factory=dict)
    recipient_id: str | None = Field(None, max_length=64)
    timezone: str = "UTC"


class ReactionBody(BaseModel):
    model_config = {"extra": "forbid"}

    emoji: str = Field(min_length=1, max_length=32)


class EditBody(BaseModel):
    model_config = {"extra": "forbid"}

    content: str = Field(max_length=50_000)


class RenderBody(BaseModel):
    model_config = {"extra": "forbid"}

    content: str = Field(max_length=50_000)


class MessagingHubPlugin(Plugin):
    """Wires the store, the dispatcher, the live socket and the routes."""

    settings_model = HubSettings

    async def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: HubSettings = ctx.config
        self.hub = EventHub(maxsize=512)
        self.store = Store(ctx.data_dir / "messaging_hub.sqlite3")
        ctx.on_teardown(self.store.close)
        self.dispatcher = Dispatcher(self.store, self._identity, self.hub.publish, ctx.logger)
        self.live_state = "signed out"
        self._profiles: dict[str, dict[str, Any]] = {}
        self._responders: dict[str, AutoResponder] = {}
        # Who waits on whom, per (owner, contact), valid while the conversation's last
        # message time is unchanged: a refresh reads only the conversations that moved
        # (60 conversations: 0.6 s -> one list call). Edits and deletions drop an entry.
        self._states: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
        ctx.create_task(self.dispatcher.run(), name="messaging_hub outbox")
        ctx.create_task(self._live(), name="messaging_hub realtime")

        add = ctx.add_route
        add("/status", self.status)
        add("/inbox", self.inbox)
        add("/users", self.users)
        add("/conversation/{user_id}", self.conversation)
        add("/thread/{message_id}", self.thread)
        add("/send", self.send, methods=["POST"])
        add("/outbox", self.outbox)
        add("/outbox/{item_id}", self.edit_outbox, methods=["PATCH"])
        add("/outbox/{item_id}/cancel", self.cancel_outbox, methods=["POST"])
        add("/outbox/{item_id}/send-now", self.send_now, methods=["POST"])
        add("/outbox/{item_id}/retry", self.retry_outbox, methods=["POST"])
        add("/messages/{message_id}", self.edit_message, methods=["PATCH"])
        add("/messages/{message_id}", self.delete_message, methods=["DELETE"])
        add("/messages/{message_id}/reactions", self.react, methods=["POST"])
        add("/messages/{message_id}/reactions", self.unreact, methods=["DELETE"])
        add("/drafts", self.drafts)
        add("/drafts/{user_id}", self.get_draft)
        add("/drafts/{user_id}", self.put_draft, methods=["PUT"])
        add("/drafts/{user_id}", self.delete_draft, methods=["DELETE"])
        add("/templates", self.templates)
        add("/templates", self.create_template, methods=["POST"])
        add("/templates/check", self.check_template, methods=["POST"])
        add("/templates/{template_id}", self.update_template, methods=["PUT"])
        add("/templates/{template_id}", self.delete_template, methods=["DELETE"])
        add("/render", self.render_preview, methods=["POST"])
        add("/search", self.search)
        add("/analytics", self.analytics)
        add("/analytics.csv", self.analytics_csv)
        add("/away", self.get_away)
        add("/away", self.put_away, methods=["PUT"])
        add("/stream", self.stream)

    # -- who is signed in -------------------------------------------------------------
    def _identity(self) -> tuple[ScopedApi, str] | None:
        try:
            api: ScopedApi = self.ctx.api
        except Exception:
            return None
        user = api.user
        if not user or not user.get("id"):
            return None
        return api, str(user["id"])

    def _who(self) -> tuple[ScopedApi, str]:
        who = self._identity()
        if who is None:
            raise Problem(409, "api", "nobody is signed in to PlexiChat; sign in on the API "
                                      "Integration page first")
        return who

    async def _profile(self, api: ScopedApi, user_id: str) -> dict[str, Any]:
        """A user's ``{id, username, display_name}``, remembered for PROFILE_TTL seconds:
        remembered for the whole session, a rename never showed (nor reached templates
        and auto-replies) until the app restarted."""
        known = self._profiles.get(user_id)
        now = time.monotonic()
        if known is None or now - known["_at"] > PROFILE_TTL:
            try:
                with api.bypass_cache():  # the layer's cache may hold the name from before
                    profile = await api.users.get(user_id)
            except Exception as exc:
                from api_integration_layer.errors import ApiHTTPError, ApiUnavailable

                down = isinstance(exc, ApiUnavailable) or (
                    isinstance(exc, ApiHTTPError) and exc.status >= 500)
                if known is None or not down or now - known["_fetched"] > PROFILE_STALE_FOR:
                    raise  # unknown, gone (404) or too old: the error says so
                # The server away for a moment: the name known a minute ago will do, and
                # is asked for again PROFILE_RETRY seconds later, not on every call.
                known["_at"] = now - PROFILE_TTL + PROFILE_RETRY
            else:
                known = {"id": profile.id, "username": profile.username,
                         "display_name": profile.display_name or profile.username,
                         "_at": now, "_fetched": now}
                self._profiles[user_id] = known
        return {k: v for k, v in known.items() if not k.startswith("_")}

    def _decorate(self, message: Any, owner: str) -> dict[str, Any]:
        """A v1 message for the page: ``html`` for markdown (sanitised), flags."""
        data = message if isinstance(message, dict) else message.model_dump(mode="json")
        data = dict(data)
        content = str(data.get("content", ""))
        data["mine"] = data.get("sender_id") == owner
        data["auto"] = is_auto_reply(content)
        if data.get("message_type") == "markdown":
            data["html"] = markdown_html(content)
        return data

    # -- the realtime socket -----------------------------------------------------------
    def _responder(self, api: ScopedApi, owner: str, me: dict[str, Any]) -> AutoResponder:
        responder = self._responders.get(owner)
        if responder is not None:
            responder.me = dict(me)  # the caller's fresh profile (a rename, the preview)
        if responder is None:
            async def send(recipient: str, content: str) -> dict[str, Any]:
                sent = await api.messages.send(recipient, content)
                return dict(sent.model_dump(mode="json"))

            async def contact(user_id: str) -> dict[str, Any]:
                return await self._profile(api, user_id)

            responder = AutoResponder(self.store, me, send, contact,
                                      on_decision=lambda d: self.hub.publish("away", d))
            self._responders[owner] = responder
        return responder

    async def _live(self) -> None:
        """Follow the realtime socket of whoever is signed in; restart on a change."""
        while True:
            who = self._identity()
            if who is None:
                self.live_state = "signed out"
                await asyncio.sleep(1.0)
                continue
            api, owner = who
            try:
                me = await self._profile(api, owner)
            except Exception as exc:
                self.live_state = f"waiting: {exc}"
                await asyncio.sleep(2.0)
                continue
            responder = self._responder(api, owner, me)
            queue: asyncio.Queue[Any] = asyncio.Queue()
            subscription = api.realtime.subscribe(queue_size=64)
            subscription.on("*", queue.put_nowait)
            subscription.start()
            self.live_state = "connecting"
            try:
                while True:
                    event = None
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):  # not wait_for: see outbox.run
                            event = await queue.get()
                    current = self._identity()
                    if current is None or current[1] != owner or subscription.finished:
                        break
                    if event is not None:
                        self._on_event(owner, responder, event)
            finally:
                await subscription.close()
                self.live_state = "closed"
                self.hub.publish("live", {"state": "closed"})

    def _on_event(self, owner: str, responder: AutoResponder, event: Any) -> None:
        kind, data = event.type, dict(event.data or {})
        if kind == "subscription.open":
            self.live_state = "open"
            self.hub.publish("live", {"state": "open", "reconnect": data.get("reconnect")})
        elif kind == "subscription.closed":
            self.live_state = str(data.get("state") or "closed")
            self.hub.publish("live", {"state": self.live_state})
        elif kind in ("message", "message_updated"):
            if kind == "message_updated":
                self._forget(owner, data)
            self.hub.publish(kind, self._decorate(data, owner))
            if kind == "message" and data.get("recipient_id") == owner:
                self.ctx.create_task(responder.consider(data),
                                     name=f"messaging_hub away {data.get('id')}")
        elif kind in ("message_deleted", "reaction", "presence_update", "typing"):
            if kind == "message_deleted":
                self._forget(owner, data)
            self.hub.publish(kind, data)

    def _forget(self, owner: str, data: dict[str, Any]) -> None:
        """Drop the cached waiting state of the conversation ``data`` belongs to."""
        for party in (data.get("sender_id"), data.get("recipient_id")):
            if party and party != owner:
                self._states.pop((owner, str(party)), None)

    async def stream(self) -> Any:
        """Server-sent events for the page: message, message_updated, message_deleted,
        reaction, presence_update, outbox, away, live."""
        return self.ctx.event_stream(self.hub.events(first=[("live", {
            "state": self.live_state})]))

    # -- status, inbox, conversations ---------------------------------------------------
    @answers
    async def status(self) -> Any:
        """Who ctx.api acts as; the limits the page enforces before asking."""
        who = self._identity()
        user = None
        if who is not None:
            api, owner = who
            try:
                user = await self._profile(api, owner)
            except Exception:
                user = {"id": owner, "username": (api.user or {}).get("username"),
                        "display_name": (api.user or {}).get("username")}
        return {"user": user, "signed_in": user is not None, "live": self.live_state,
                "undo_seconds": self.config.undo_seconds, "max_content": MAX_CONTENT,
                "marker": MARKER, "filters": list(FILTERS), "reactions": QUICK_REACTIONS,
                "builtins": BUILTINS}

    @answers
    async def inbox(self, filter: str = Query("all"), q: str = Query("", max_length=100)
                    ) -> Any:
        """Every conversation with unread, waiting-on-you, draft and scheduled marks;
        ``counts`` per filter for the sidebar."""
        if filter not in FILTERS:
            raise Problem(422, "filter", f"one of {', '.join(FILTERS)}")
        api, owner = self._who()
        with api.bypass_cache():
            listing = await api.messages.conversations(limit=min(100, self.config.inbox_size))
            convs = [c.model_dump(mode="json") for c in listing.conversations]
            states = await asyncio.gather(*(self._state(api, owner, c["user_id"],
                                                        c["last_message_time"])
                                            for c in convs))
        drafts = {d["recipient_id"]: d for d in self.store.drafts(owner)}
        scheduled = self.store.scheduled_counts(owner)
        rows = []
        for conv, state in zip(convs, states, strict=True):
            conv["display_name"] = conv.get("display_name") or conv["username"]
            conv.update(state)
            conv["draft"] = conv["user_id"] in drafts
            conv["scheduled"] = scheduled.get(conv["user_id"], 0)
            rows.append(conv)
        known = {c["user_id"] for c in rows}
        # A draft or a scheduled message to someone never written to yet is a row too.
        for uid in {*drafts, *scheduled} - known:
            try:
                profile = await self._profile(api, uid)
            except Exception:
                continue
            rows.append({"user_id": uid, "username": profile["username"],
                         "display_name": profile["display_name"], "last_message": None,
                         "last_message_time": None, "unread_count": 0, "is_online": False,
                         "waiting": False, "waiting_since": None, "waiting_count": 0,
                         "last_from": None, "last_auto": False, "draft": uid in drafts,
                         "scheduled": scheduled.get(uid, 0)})
        counts = {f: sum(1 for r in rows if matches(r, f, "")) for f in FILTERS}
        shown = [r for r in rows if matches(r, filter, q)]
        if filter == "waiting":  # the longest wait first, as a queue should be worked
            shown.sort(key=lambda r: r["waiting_since"] or "")
        return {"conversations": shown, "counts": counts, "filter": filter, "q": q,
                "total": listing.total}

    async def _state(self, api: ScopedApi, owner: str, user_id: str, last: Any
                     ) -> dict[str, Any]:
        cached = self._states.get((owner, user_id))
        if cached is not None and cached[0] == last:
            return dict(cached[1])
        page = await api.messages.conversation(user_id, limit=self.config.inbox_depth,
                                               mark_read=False)
        state = conversation_state([m.model_dump(mode="json") for m in page.messages], owner)
        self._states[(owner, user_id)] = (last, state)
        return dict(state)

    @answers
    async def users(self, q: str = Query(min_length=1, max_length=100)) -> Any:
        """People to start a conversation with."""
        api, owner = self._who()
        found = await api.users.search(q, limit=10)
        return {"users": [u.model_dump(mode="json") for u in found.users if u.id != owner]}

    @answers
    async def conversation(self, user_id: str, limit: int = Query(50, ge=1, le=100),
                           offset: int = Query(0, ge=0),
                           around: str | None = Query(None, max_length=64)) -> Any:
        """Messages with ``user_id``, oldest first (received ones are marked read). With
        ``around``: from the newest back to that message and a few before it (search
        jumps there); 404 naming ``around`` when it is not in this conversation."""
        api, owner = self._who()
        messages: list[Any] = []
        total = 0
        other = None
        with api.bypass_cache():
            if around is None:
                page = await api.messages.conversation(user_id, limit=limit, offset=offset)
                messages, total, other = list(page.messages), page.total, page.other_user
            else:
                found_at = None
                while found_at is None and offset < 5000:
                    page = await api.messages.conversation(user_id, limit=100, offset=offset)
                    other, total = page.other_user, page.total
                    for i, m in enumerate(page.messages):
                        if m.id == around:
                            found_at = len(messages) + i
                    messages += page.messages
                    if not page.has_more:
                        break
                    offset += 100
                if found_at is None:
                    raise Problem(404, "around", f"message {around} is not in this "
                                                 "conversation")
                messages = messages[:found_at + 11]
        decorated = [self._decorate(m, owner) for m in reversed(messages)]
        draft = self.store.draft(owner, user_id)
        pending = [public_item(i) for i in self.store.items(
            owner, ("pending", "sending", "failed", HELD), recipient_id=user_id)]
        loaded = (offset if around is None else 0) + len(messages)
        return {"messages": decorated, "total": total, "has_more": loaded < total,
                "next_offset": loaded, "around": around,
                "other_user": other.model_dump(mode="json") if other else None,
                "draft": draft, "outbox": pending}

    @answers
    async def thread(self, message_id: str) -> Any:
        api, owner = self._who()
        found = await api.messages.thread(message_id, limit=100)
        return {"thread_id": found.thread_id, "total": found.total,
                "root": self._decorate(found.root, owner) if found.root else None,
                "messages": [self._decorate(m, owner) for m in found.messages]}

    # -- sending: the outbox ------------------------------------------------------------
    @answers
    async def send(self, body: SendBody) -> Any:
        """Queue a message: held ``undo_seconds`` (undo-send), or until ``send_at``. A
        template is rendered here and refused (422 naming the variable) when it cannot."""
        api, owner = self._who()
        if body.recipient_id == owner:
            raise Problem(422, "recipient_id", "you cannot send a message to yourself")
        zone = _zone(body.timezone, "timezone")
        try:
            recipient = await self._profile(api, body.recipient_id)
        except Exception as exc:
            problem = _from_api(exc)
            if problem.status == 404:
                raise Problem(422, "recipient_id", f"no user {body.recipient_id}") from None
            raise problem from None
        message_type: str = body.message_type or "text"
        origin: dict[str, Any] | None = None
        if body.template_id is not None:
            template = self.store.template(body.template_id)
            if template is None:
                raise Problem(422, "template_id", f"no template {body.template_id}")
            me = await self._profile(api, owner)
            # today, weekday and now are those of the moment it goes out: a report
            # queued on Monday for Thursday said "Monday".
            moment = (_aware(body.send_at, zone).astimezone(zone) if body.send_at
                      is not None else datetime.now(zone))
            content = render(template["body"], body.variables,
                             builtin_values(recipient, me, moment))
            message_type = body.message_type or template["message_type"]
            # Kept so a new time renders the text again (see edit_outbox).
            origin = {"body": template["body"], "variables": body.variables,
                      "timezone": body.timezone}
        elif body.content is None:
            raise Problem(422, "content", "give the message's content or a template_id")
        else:
            content = body.content
        content = _content(content)
        now = time.time()
        if body.send_at is not None:
            at = _aware(body.send_at, zone).timestamp()  # a time without offset: in zone
            if at <= now:
                raise Problem(422, "send_at", "must be in the future")
            if at > now + 366 * 86400:
                raise Problem(422, "send_at", "at most a year ahead")
            kind = "scheduled"
        else:
            at = now + (self.config.undo_seconds if body.undo else 0)
            kind = "undo"
        item = self.store.queue(owner, body.recipient_id, content, message_type,
                                body.reply_to, kind, at,
                                json.dumps({**origin, "content": content}) if origin else None)
        if body.template_id is not None:
            self.store.used_template(body.template_id)  # counted once it is queued
        if body.template_id is None:
            # What was sent was the draft; a template send leaves the draft typed before.
            self.store.delete_draft(owner, body.recipient_id)
        self.hub.publish("outbox", public_item(item))
        self.dispatcher.poke()
        return JSONResponse({**public_item(item), "undo_seconds":
                             self.config.undo_seconds if kind == "undo" and body.undo else 0},
                            status_code=202)

    @answers
    async def outbox(self, state: str = Query("open"),
                     recipient_id: str | None = Query(None, max_length=64)) -> Any:
        """``open`` (pending, sending and held edits), ``pending``, ``held``, ``sent``,
        ``failed``, ``cancelled`` or ``all``."""
        choices = {"open": ("pending", "sending", HELD), "pending": ("pending",),
                   "sending": ("sending",), HELD: (HELD,), "sent": ("sent",),
                   "failed": ("failed",), "cancelled": ("cancelled",), "all": None}
        if state not in choices:
            raise Problem(422, "state", f"one of {', '.join(choices)}")
        _api, owner = self._who()
        items = self.store.items(owner, choices[state], recipient_id=recipient_id)
        return {"items": [public_item(i) for i in items], "state": state}

    def _item(self, owner: str, item_id: str) -> dict[str, Any]:
        item = self.store.item(item_id)
        if item is None or item["owner_id"] != owner:
            raise Problem(404, "item_id", f"no outbox item {item_id}")
        return item

    def _not_pending(self, item: dict[str, Any]) -> Problem:
        return Problem(409, "state", f"the message is {item['state']} and can no longer "
                                     "be changed", item=public_item(item))

    @answers
    async def edit_outbox(self, item_id: str, body: OutboxEdit) -> Any:
        """Change a message that has not left yet (content, type, time).

        A message whose last send had no answer may have been delivered all the same: a
        new text is checked against the server first. When its earlier text went out, the
        item is sent (with that text) and the new one is kept as a held item, unsent:
        409 with both (``item``, ``edit``). When the server cannot be asked now, the edit
        is taken; the dispatcher looks again before it leaves."""
        api, owner = self._who()
        item = self._item(owner, item_id)  # 404 for an unknown id
        send_at = None
        kind = None
        if body.send_at is not None:
            send_at = _aware(body.send_at, _zone(body.timezone, "timezone")).timestamp()
            if send_at <= time.time():
                raise Problem(422, "send_at", "must be in the future")
            kind = "scheduled" if item["state"] != HELD else None
        content = _content(body.content) if body.content is not None else None
        rendered_from = None
        if send_at is not None and content is None:
            content, rendered_from = await self._rendered_for(api, owner, item, send_at)
        if in_doubt(item) and item["state"] == "pending":
            edit = (content or item["content"], body.message_type or item["message_type"])
            if edited_since_tried({**item, "content": edit[0], "message_type": edit[1]}):
                await self._settle_before_edit(api, item, edit)
        changed = self.store.update_pending(item_id, owner, content=content,
                                            message_type=body.message_type, send_at=send_at,
                                            kind=kind, rendered_from=rendered_from)
        if changed is None:
            raise self._not_pending(self._item(owner, item_id))
        self.hub.publish("outbox", public_item(changed))
        self.dispatcher.poke()
        return public_item(changed)

    async def _rendered_for(self, api: ScopedApi, owner: str, item: dict[str, Any],
                            send_at: float) -> tuple[str | None, str | None]:
        """The text of a message from a template rendered again for its new time
        (``today``, ``weekday`` and ``now`` of the day it now goes out: moved from
        Thursday to Friday, it said "Thursday"), and its new origin record; (None, None)
        when it did not come from a template or its text was edited since. When the
        names cannot be fetched now, the text stays as it was."""
        origin = json.loads(item["rendered_from"]) if item.get("rendered_from") else None
        if origin is None or origin.get("content") != item["content"]:
            return None, None
        try:
            recipient = await self._profile(api, item["recipient_id"])
            me = await self._profile(api, owner)
            moment = datetime.fromtimestamp(send_at, ZoneInfo(origin["timezone"]))
            content = _content(render(origin["body"], origin["variables"],
                                      builtin_values(recipient, me, moment)))
        except Exception as exc:  # the server away, or a template that no longer renders
            self.ctx.logger.warning("outbox %s: kept its text for the new time (%s)",
                                    item["id"], exc)
            return None, None
        return content, json.dumps({**origin, "content": content})

    async def _settle_before_edit(self, api: ScopedApi, item: dict[str, Any],
                                  edit: tuple[str, str] | None) -> None:
        """Refuse (409) an edit (``edit``; None: a cancel) of ``item`` whose earlier text
        went out, keeping an edit as a held item; return when nothing of it is found (or
        nobody can tell now)."""
        try:
            found = await self.dispatcher.find_earlier(api, item)
        except Exception as exc:
            self.ctx.logger.warning("outbox: cannot look up %s before an edit: %s",
                                    item["id"], exc)
            return
        if found is None:
            return
        settled = await self.dispatcher.settle(api, item, went_out(found), ("pending",),
                                               edit=edit, notify=False)
        if settled is None:
            return  # claimed meanwhile: the edit meets the state check below
        original, held = settled
        if held is None:
            raise Problem(409, "state", "the message was already delivered",
                          item=public_item(original), edit=None)
        raise Problem(409, "state", "the earlier text of this message was already "
                      "delivered; your edit is kept in the outbox, not sent",
                      item=public_item(original), edit=public_item(held))

    @answers
    async def cancel_outbox(self, item_id: str) -> Any:
        """Undo / cancel: the message does not leave; its content comes back (the page
        puts it back into the composer). One whose last send had no answer is looked up
        first: delivered, it is sent and the cancel a 409 saying so; not found, it is
        cancelled with a note that the lost send could still arrive (nothing can stop
        that on the server)."""
        api, owner = self._who()
        item = self._item(owner, item_id)
        note = None
        if in_doubt(item) and item["state"] == "pending":
            await self._settle_before_edit(api, item, None)
            note = ("Cancelled. Its last send had no answer and was not found on the "
                    "server; should it still arrive, it shows in the conversation.")
        if not self.store.cancel(item_id, owner, note):
            raise self._not_pending(self._item(owner, item_id))
        item = self._item(owner, item_id)
        self.hub.publish("outbox", public_item(item))
        return public_item(item)

    @answers
    async def send_now(self, item_id: str) -> Any:
        """Send a pending message now; a held edit leaves as a new message."""
        _api, owner = self._who()
        item = self._item(owner, item_id)
        if item["state"] == HELD:
            changed = self.store.send_held(item_id, owner, time.time())
        else:
            changed = self.store.update_pending(item_id, owner, send_at=time.time())
        if changed is None:
            raise self._not_pending(self._item(owner, item_id))
        self.hub.publish("outbox", public_item(changed))
        self.dispatcher.poke()
        return public_item(changed)

    @answers
    async def retry_outbox(self, item_id: str) -> Any:
        _api, owner = self._who()
        item = self._item(owner, item_id)
        changed = self.store.retry(item_id, owner, time.time())
        if changed is None:
            raise Problem(409, "state", f"only a failed message can be retried; this one is "
                                        f"{item['state']}")
        self.dispatcher.poke()
        return public_item(changed)

    # -- messages: edit, delete, reactions ------------------------------------------------
    @answers
    async def edit_message(self, message_id: str, body: EditBody) -> Any:
        api, owner = self._who()
        edited = await api.messages.edit(message_id, _content(body.content))
        return self._decorate(edited, owner)

    @answers
    async def delete_message(self, message_id: str) -> Any:
        api, _owner = self._who()
        result = await api.messages.delete(message_id)
        return result.model_dump(mode="json")

    @answers
    async def react(self, message_id: str, body: ReactionBody) -> Any:
        api, owner = self._who()
        return self._decorate(await api.messages.react(message_id, body.emoji), owner)

    @answers
    async def unreact(self, message_id: str,
                      emoji: str = Query(min_length=1, max_length=32)) -> Any:
        api, owner = self._who()
        return self._decorate(await api.messages.unreact(message_id, emoji), owner)

    # -- drafts ---------------------------------------------------------------------
    @answers
    async def drafts(self) -> Any:
        _api, owner = self._who()
        return {"drafts": self.store.drafts(owner)}

    @answers
    async def get_draft(self, user_id: str) -> Any:
        _api, owner = self._who()
        return {"draft": self.store.draft(owner, user_id)}

    @answers
    async def put_draft(self, user_id: str, body: DraftBody) -> Any:
        """Save what the composer holds (an empty one removes the draft)."""
        api, owner = self._who()
        if not body.content.strip():
            self.store.delete_draft(owner, user_id)
            return {"draft": None}
        if self.store.draft(owner, user_id) is None:
            # A new draft is to someone who exists: one to a made-up id was kept, never
            # shown in the inbox, and its recipient asked for (a 404) at every inbox load.
            from api_integration_layer.errors import ApiHTTPError

            try:
                await self._profile(api, user_id)
            except ApiHTTPError as exc:
                if exc.status in (404, 422):
                    raise Problem(404, "user_id", f"no user {user_id[:100]!r}") from None
                raise
        return {"draft": self.store.save_draft(owner, user_id, body.content,
                                               body.message_type, body.reply_to)}

    @answers
    async def delete_draft(self, user_id: str) -> Any:
        _api, owner = self._who()
        return {"deleted": self.store.delete_draft(owner, user_id)}

    # -- templates ------------------------------------------------------------------
    def _template_out(self, template: dict[str, Any]) -> dict[str, Any]:
        info = check(template["body"], {})
        return {**template, "variables": info["variables"],
                "needs": info["missing"]}

    @answers
    async def templates(self) -> Any:
        return {"templates": [self._template_out(t) for t in self.store.templates()],
                "builtins": BUILTINS}

    def _checked_template(self, body: TemplateBody, template_id: str | None) -> None:
        check(body.body, {})  # a syntax error is a 422 on 'body' with its line
        refusal = sandbox_refusal(body.body)  # saved, it could never be sent
        if refusal is not None:
            raise Problem(422, "body", refusal)
        same = self.store.template_named(body.name.strip())
        if same is not None and same["id"] != template_id:
            raise Problem(409, "name", f"a template named {body.name.strip()!r} exists")

    @answers
    async def create_template(self, body: TemplateBody) -> Any:
        self._checked_template(body, None)
        saved = self.store.save_template(None, body.name.strip(), body.body,
                                         body.message_type, body.description)
        return JSONResponse(self._template_out(saved), status_code=201)

    @answers
    async def update_template(self, template_id: str, body: TemplateBody) -> Any:
        if self.store.template(template_id) is None:
            raise Problem(404, "template_id", f"no template {template_id}")
        self._checked_template(body, template_id)
        saved = self.store.save_template(template_id, body.name.strip(), body.body,
                                         body.message_type, body.description)
        return self._template_out(saved)

    @answers
    async def delete_template(self, template_id: str) -> Any:
        if not self.store.delete_template(template_id):
            raise Problem(404, "template_id", f"no template {template_id}")
        return {"deleted": True}

    @answers
    async def check_template(self, body: CheckBody) -> Any:
        """Lint as you type: variables, which are missing, and the preview when none is
        (a syntax error or a sandbox refusal is in ``problem``, not an error status)."""
        zone = _zone(body.timezone, "timezone")
        try:
            info = check(body.body, body.variables)
        except TemplateProblem as exc:
            return {"variables": [], "builtin": [], "given": [], "missing": [],
                    "problem": str(exc), "field": exc.field, "preview": None}
        recipient = None
        me = None
        who = self._identity()
        if who is not None:
            api, owner = who
            me = await self._profile(api, owner)
            if body.recipient_id:
                try:
                    recipient = await self._profile(api, body.recipient_id)
                except Exception:
                    recipient = None
        values = builtin_values(recipient or {"display_name": "Ada Lovelace",
                                              "username": "ada"}, me, datetime.now(zone))
        preview = None
        problem = None
        # What the message will look like, with each variable still to be given shown as
        # [name]; ``preview`` only once nothing is missing (what would really be sent).
        placeholders = {name: f"[{name}]" for name in info["missing"]}
        try:
            sample = render(body.body, {**placeholders, **body.variables}, values)
        except TemplateProblem as exc:
            sample, problem = None, str(exc)
        if not info["missing"] and problem is None:
            preview = sample
        return {**info, "problem": problem, "preview": preview, "sample": sample}

    @answers
    async def render_preview(self, body: RenderBody) -> Any:
        """The composer's markdown preview, sanitised as received messages are."""
        return {"html": markdown_html(body.content), "length": len(body.content),
                "max": MAX_CONTENT}

    # -- search -------------------------------------------------------------------------
    @answers
    async def search(self, q: str = Query(min_length=1, max_length=200),
                     user_id: str | None = Query(None, max_length=64),
                     since: datetime | None = None, until: datetime | None = None,
                     limit: int = Query(30, ge=1, le=100)) -> Any:
        """Messages found, newest first, each with the contact to open and the id to
        jump to."""
        api, owner = self._who()
        filters: dict[str, Any] = {}
        if user_id:
            filters["user_id"] = user_id
        if since:
            filters["since"] = _aware(since)
        if until:
            filters["until"] = _aware(until)
        found = await api.search.search(q, type="messages", filters=filters or None,
                                        sort_by="date", limit=limit)
        results = []
        for hit in found.results:
            meta = hit.metadata or {}
            sender = meta.get("sender_id")
            contact = meta.get("recipient_id") if sender == owner else sender
            name = None
            if contact:
                try:
                    name = (await self._profile(api, str(contact)))["display_name"]
                except Exception:
                    name = None
            results.append({"message_id": hit.id, "contact_id": contact, "contact": name,
                            "mine": sender == owner, "content": hit.content,
                            "created_at": hit.created_at.isoformat() if hit.created_at
                            else None, "score": hit.score})
        return {"results": results, "total": found.total, "query": q}

    # -- analytics ------------------------------------------------------------------
    async def _report(self, days: int, tz: str, gap_hours: float) -> dict[str, Any]:
        zone = _zone(tz)
        api, owner = self._who()
        now = datetime.now(UTC)
        oldest = now - timedelta(days=2 * days, hours=gap_hours)
        messages: list[analytics.Msg] = []
        names: dict[str, str] = {}
        contacts: list[Any] = []
        with api.bypass_cache():
            offset = 0
            while True:
                listing = await api.messages.conversations(limit=100, offset=offset)
                contacts += listing.conversations
                if not listing.has_more or len(contacts) >= 1000:
                    break
                offset += 100
            limit = asyncio.Semaphore(4)

            async def history(contact_id: str) -> list[analytics.Msg]:
                out: list[analytics.Msg] = []
                async with limit:
                    off = 0
                    while off < self.config.analytics_max_per_contact:
                        page = await api.messages.conversation(contact_id, limit=100,
                                                               offset=off, mark_read=False)
                        for m in page.messages:
                            out.append(analytics.Msg(m.id, m.sender_id, m.recipient_id,
                                                     _aware(m.timestamp),
                                                     is_auto_reply(m.content)))
                        if (not page.has_more or not page.messages
                                or _aware(page.messages[-1].timestamp) < oldest):
                            break
                        off += 100
                return out

            for c in contacts:
                names[c.user_id] = c.display_name or c.username
            for chunk in await asyncio.gather(*(history(c.user_id) for c in contacts)):
                messages += chunk
        data = analytics.report(messages, owner, names, days=days, now=now, tz=zone,
                                gap=timedelta(hours=gap_hours))
        data["messages_read"] = len(messages)
        return data

    @answers
    async def analytics(self, days: int = Query(30, ge=1, le=365),
                        tz: str = Query("UTC", max_length=64),
                        gap_hours: float = Query(8.0, gt=0, le=24 * 14)) -> Any:
        """Response metrics of the last ``days`` against the ``days`` before, in ``tz``;
        a conversation opens after ``gap_hours`` of silence."""
        return await self._report(days, tz, gap_hours)

    @answers
    async def analytics_csv(self, kind: str = Query("contacts"),
                            days: int = Query(30, ge=1, le=365),
                            tz: str = Query("UTC", max_length=64),
                            gap_hours: float = Query(8.0, gt=0, le=24 * 14)) -> Any:
        """The per-contact (``contacts``) or per-day (``daily``) figures as CSV; text
        cells that a spreadsheet would run as a formula are escaped."""
        if kind not in ("contacts", "daily"):
            raise Problem(422, "kind", "contacts or daily")
        data = await self._report(days, tz, gap_hours)
        name = f"messaging-{kind}-{days}d-{datetime.now(UTC):%Y%m%d}.csv"
        return Response(analytics.to_csv(data, kind), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- away -------------------------------------------------------------------------
    def _refuse_contradictions(self, owner: str, settings: AwaySettings) -> None:
        """422 for settings that were saved but could never do what they say: quiet hours
        with one end, or of no length, and an away "until" already past when set (one
        stored before and past since is what the page sends back: kept)."""
        start, end = settings.quiet_start, settings.quiet_end
        if bool(start) != bool(end):
            missing = "quiet_end" if start else "quiet_start"
            raise Problem(422, missing, "quiet hours need both a start and an end")
        if start and start == end:
            raise Problem(422, "quiet_end", f"quiet hours from {start} to {end} are empty: "
                          "the end must differ from the start")
        until = settings.until
        if settings.enabled and until is not None and _aware(until) <= datetime.now(UTC):
            stored = self.store.away(owner)
            before = AwaySettings.model_validate(stored).until if stored else None
            if before is None or _aware(before) != _aware(until):
                raise Problem(422, "until", "is already past: away would end as it is "
                              "switched on (leave it empty to stay away until switched off)")

    @answers
    async def get_away(self) -> Any:
        """The away settings, whether you are away now, when that changes next, the
        message as a contact would get it, and the responder's recent decisions."""
        api, owner = self._who()
        responder = self._responder(api, owner, await self._profile(api, owner))
        settings = responder.settings()
        now = datetime.now(UTC)
        zone = ZoneInfo(settings.timezone)
        back = ""
        if settings.enabled and settings.until is not None:
            back = _aware(settings.until).astimezone(zone).strftime("%a %d %b %H:%M")
        try:
            preview = MARKER + " " + render(settings.message, {}, {**builtin_values(
                {"display_name": "Ada Lovelace", "username": "ada"}, responder.me,
                now.astimezone(zone)), "back": back})
        except TemplateProblem as exc:
            preview = f"({exc})"
        change = next_change(settings, now)
        return {"settings": settings.model_dump(mode="json"), "away_now": settings.away_at(now),
                "next_change": change.isoformat() if change else None, "preview": preview,
                "marker": MARKER, "variables": sorted(AWAY_VARIABLES),
                "decisions": self.store.decisions(owner, 50)}

    @answers
    async def put_away(self, body: dict[str, Any]) -> Any:
        """Save the away settings (422 naming the field: a bad time, zone or variable)."""
        _api, owner = self._who()
        settings = AwaySettings.model_validate(body)
        # Refused when saved, as a template is (saved, every auto-reply failed on it);
        # checked here, not when settings saved before are read back.
        refusal = sandbox_refusal(settings.message)
        if refusal is not None:
            raise Problem(422, "message", refusal)
        self._refuse_contradictions(owner, settings)
        self.store.save_away(owner, settings.model_dump(mode="json"))
        self.hub.publish("away_settings", {"away_now": settings.away_at(datetime.now(UTC))})
        return await self.get_away()
