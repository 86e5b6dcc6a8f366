"""The dispatcher: sends what the outbox holds when it is due, exactly once.

Undo-send and send-later are the same mechanism: a message is written to the outbox
(SQLite) with the time it may leave, and this loop sends it then. Held for the undo
window, it can be taken back; scheduled, it can be edited or cancelled until it leaves.
Nothing is kept in memory only, so a restart loses nothing.

Why not ``ctx.schedule``: its grammar is for recurring work at minute granularity; an
undo window is seconds long and every item has its own time. One timer to the next due
item, woken early when the outbox changes, costs nothing while idle.

Exactly once, step by step:

1. ``claim`` moves the item from ``pending`` to ``sending`` in one UPDATE; a second
   dispatcher (or a second run of the loop) changes no row and sends nothing;
2. the item's ``claim_mark`` becomes ``{"key": <item id>}``: its send carries the item's
   id as the v1 ``client_message_id`` (until then the mark is ``UNMARKED``, and an item
   found so was never sent);
3. ``POST /messages/send`` with that key. The server keeps one message per sender,
   conversation and key: sent again with it, it stores nothing and answers the first
   message (``duplicate``). The API layer itself never resends a send;
4. the answer's id is written with ``mark_sent`` at once;
5. a 4xx (the server refused: recipient gone, content rejected) makes it ``failed`` with
   the reason, kept for the user to fix and retry; a connection error or a 5xx leaves it
   unknown whether the server stored it, so it is *reconciled*: the conversation is read
   back and only a message of ours carrying the item's key counts as the send (the same
   text posted from another device is not it); when there is none the item goes back to
   ``pending``, and whatever the read-back missed (more than ``RECONCILE_WINDOW``
   messages since, or ours deleted meanwhile), its next send with the same key is
   answered as a duplicate by the server instead of being stored twice.
6. At start-up (and whenever the owner signs in again) items found in ``sending`` — the
   app died between 1 and 4 — are reconciled the same way before anything else is sent.

Items claimed by a version before the key have a mark of the conversation's newest
message ids (and the server's time of the newest) or none; they are reconciled as then:
a message of ours with the same content after the mark counts as the send. That is never
compared with our clock (a clock ahead of the server's sent a message twice, one behind
took an earlier message with the same text for the send), but it cannot tell our send
from the same text sent from another device after the mark: the key can.

A server from before keys (the API layer may point at an older remote PlexiChat) refuses
the unknown field: a 422 whose validation detail names ``client_message_id``. It stored
nothing, so the same item goes on at once, the way sends went before keys: step 2 becomes
that mark (the conversation's newest ids and the server's time of the newest, read just
before the send), step 3 a send without the key, and reconciling looks for the same
content after the mark (a message with that text sent before the mark is not it). The
dispatcher remembers such a server (per base URL) until the signed-in user or the server
changes, the owner signs out and in again, or ``KEYS_RECHECK`` has passed (the server may
have been upgraded): one refused send per run, not one per item. A server that takes the
send but answers without our key (it ignored the field) is remembered the same way.
An item found in ``sending`` with a key mark on such a server was refused or never sent
(nothing of it is stored): it finds no message with its key and goes back to ``pending``.

An edit never replaces a text that may already be out. Each text is recorded in the item
(``tried``) before it is sent, and the key never changes, so the server keeps at most one
text per item. An item edited after a send without an answer is looked up before the new
text is taken (the route) and before it leaves (``deliver``); and a 409 on our own key
means the server holds an earlier text of it (it arrived after the read-back), which is
read back or asked for by sending the recorded texts with the key (the key being taken,
nothing can be stored). Then the item ends as ``sent`` with the text that went out, and
the edit becomes a new ``held`` item with its own key, sent only when the user says so
(``settle``): the recipient already has a text, a second is the user's decision.

Send times themselves are wall-clock (``send_at``: "at 9:00" means the clock on the
wall): a clock moved forward sends what is now due at once, one moved back waits; the
loop never sleeps longer than ``MAX_SLEEP``, so it notices either within that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from messaging_hub.store import UNMARKED, Store

if TYPE_CHECKING:
    from api_integration_layer.models import SentMessage
    from api_integration_layer.scoped import ScopedApi

IDLE_CHECK = 2.0  # seconds between looks for a signed-in user while nobody is
MAX_SLEEP = 30.0
RETRY_DELAYS = (2.0, 5.0, 15.0, 60.0, 300.0)
RECONCILE_WINDOW = 100  # our most recent messages to the recipient looked at
MAX_ATTEMPTS = 8  # then 'failed' with the reason, for the user to retry
RECOVERED = "interrupted while sending (the app stopped)"
MARK_IDS = 3  # newest message ids kept as a keyless mark: one may be deleted meanwhile
# (all of them: the server's time of the newest, in the mark too, takes over)
KEYS_RECHECK = 3600.0  # seconds (monotonic) a server that refused keys is sent without


class Dispatcher:
    """Sends due outbox items for whoever is signed in to the API layer."""

    def __init__(self, store: Store, identity: Callable[[], tuple[ScopedApi, str] | None],
                 publish: Callable[[str, Any], None], logger: Any,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self._identity = identity
        self._publish = publish
        self._log = logger
        self._clock = clock
        self.wake = asyncio.Event()
        self._recovered: set[str] = set()
        # Servers (base URLs) that refused client_message_id -> when (monotonic), and who
        # was signed in where when the dispatcher last looked: a change forgets them.
        self._keyless: dict[str, float] = {}
        self._signed_in: tuple[str, str] | None = None
        self.sent = 0

    def poke(self) -> None:
        """The outbox changed: look again now."""
        self.wake.set()

    async def run(self) -> None:
        while True:
            self.wake.clear()
            delay = IDLE_CHECK
            who = self._identity()
            if who is None:
                self._signed_in = None  # the next sign-in asks the server about keys again
            else:
                api, owner = who
                try:
                    delay = await self.step(api, owner)
                except asyncio.CancelledError:
                    raise
                except Exception:  # never let one bad item stop the loop
                    self._log.exception("outbox: dispatch step failed")
                    delay = RETRY_DELAYS[0]
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
            # that arrives as the event is set, and the plugin would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wake.wait()

    async def step(self, api: ScopedApi, owner: str) -> float:
        """Recover (once per owner), send what is due; seconds until the next due item."""
        signed_in = (_server(api), owner)
        if signed_in != self._signed_in:
            self._keyless.clear()
            self._signed_in = signed_in
        if owner not in self._recovered:
            for item in self.store.sending(owner):
                await self.reconcile(api, item)
            self._recovered.add(owner)
        for item in self.store.due(owner, self._clock()):
            await self.deliver(api, item)
        nxt = self.store.next_due(owner)
        if nxt is None:
            return MAX_SLEEP
        return min(MAX_SLEEP, max(0.0, nxt - self._clock()))

    async def deliver(self, api: ScopedApi, item: dict[str, Any]) -> None:
        from api_integration_layer.errors import ApiHTTPError, NotAuthenticated, RateLimited

        # The row as it is now: the due list was read before the sends ahead of this one,
        # and an edit made meanwhile was answered 200 while the old text went out.
        fresh = self.store.item(item["id"])
        if fresh is None or fresh["state"] != "pending":
            return
        item = fresh
        if edited_since_tried(item):
            # A text of this item may have gone out already and the user changed it since:
            # what was delivered is settled before the new text may leave.
            try:
                found = await self.find_earlier(api, item)
            except Exception as exc:
                self._log.warning("outbox: cannot look up %s's earlier send yet: %s",
                                  item["id"], exc)
                self.store.update_pending(item["id"], item["owner_id"],
                                          send_at=self._retry_at(item))
                return
            if found is not None:
                await self.settle(api, item, went_out(found), ("pending",),
                                  edit=_version(item), notify=True)
                return
        now = self._clock()
        if not self.store.claim(item["id"], now):
            return  # cancelled, edited to later, or taken by another dispatcher meanwhile
        # Claimed, it can no longer be edited: what it holds now is what goes out.
        item = self.store.item(item["id"]) or item
        self._changed(item["id"])
        try:
            message = await self.transmit(api, item)
        except (NotAuthenticated, RateLimited) as exc:
            # Refused before anything was stored: try again later, nothing is lost.
            self.store.release(item["id"], self._retry_at(item), _reason(exc))
        except ApiHTTPError as exc:
            if exc.status >= 500:
                # A server error may come after the message was stored: look before
                # sending it again.
                fresh = self.store.item(item["id"]) or item
                await self.reconcile(api, fresh, error=_reason(exc))
            elif _conflicts_on_key(exc) and _key(self.store.item(item["id"]) or item):
                # Our own key taken by another text: an earlier text of this item went
                # out (after the read-back that missed it), not a failure.
                await self.resolve_conflict(api, self.store.item(item["id"]) or item,
                                            _reason(exc))
            else:
                self.store.mark_failed(item["id"], _reason(exc))
                self._log.warning("outbox: %s refused by the server: %s", item["id"],
                                  _reason(exc))
                await self._notify(api, item, _reason(exc))
        except Exception as exc:
            # Unknown whether the server stored it (a dropped connection, a timeout).
            self._log.warning("outbox: sending %s: %s; reconciling", item["id"], exc)
            fresh = self.store.item(item["id"]) or item
            await self.reconcile(api, fresh, error=_reason(exc))
        else:
            if message is None:
                return  # no mark: pending again or failed, and published, by mark()
            self.store.mark_sent(item["id"], message.id, self._clock())
            self.sent += 1
        self._changed(item["id"])

    async def transmit(self, api: ScopedApi, item: dict[str, Any]) -> SentMessage | None:
        """Mark a claimed item and send it as this server takes it: with its key, or, on
        a server that refuses keys, after a mark of the conversation and without one (also
        at once when the keyed send is refused for its key: a 422 stored nothing). None
        when no mark could be taken (the item is pending or failed again)."""
        from api_integration_layer.errors import ApiHTTPError

        keyed = self.keys_supported(api)
        if not await self.mark(api, item, keyed=keyed):
            return None
        try:
            message = await self.send(api, item, keyed=keyed)
        except ApiHTTPError as exc:
            if not (keyed and _refuses_key(exc)):
                raise
            self._keyless[_server(api)] = time.monotonic()
            self._log.info("outbox: %s does not take client_message_id (%s); sending "
                           "without keys", _server(api), _reason(exc))
            if not await self.mark(api, item, keyed=False):
                return None
            return await self.send(api, item, keyed=False)
        if keyed and getattr(message, "client_message_id", None) != item["id"]:
            # Stored, but the server dropped the key (unknown fields ignored, not refused):
            # a recovery could not find this send by its key, so the next ones go by mark.
            self._keyless[_server(api)] = time.monotonic()
            self._log.info("outbox: %s ignores client_message_id; sending without keys",
                           _server(api))
        return message

    def keys_supported(self, api: ScopedApi) -> bool:
        """Whether sends to ``api``'s server carry a key: not while it is remembered as
        refusing them (since the current sign-in, for at most ``KEYS_RECHECK`` seconds).

        Learnt from the refusal itself rather than GET /system/capabilities: that needs
        the ``system:read`` scope, which this plugin does not declare, and its answer is
        cached and describes the server as it was; a 422 naming the field is the server
        refusing this very request, and costs one send that stored nothing."""
        refused = self._keyless.get(_server(api))
        if refused is None:
            return True
        if time.monotonic() - refused >= KEYS_RECHECK:
            del self._keyless[_server(api)]
            return True
        return False

    async def mark(self, api: ScopedApi, item: dict[str, Any], keyed: bool = True) -> bool:
        """Note, before a claimed item is sent, how its send will be recognised: its key
        (local, the server is not asked; True), or, for a send without a key, where the
        conversation stands (False, and the item pending again for later or failed, when
        the server cannot say)."""
        from api_integration_layer.errors import ApiHTTPError, NotAuthenticated, RateLimited

        if keyed:
            self.store.set_mark(item["id"], json.dumps({"key": item["id"]}), _version(item))
            return True
        try:
            with api.bypass_cache():
                before = await api.messages.conversation(
                    item["recipient_id"], limit=MARK_IDS, mark_read=False)
        except Exception as exc:
            if (isinstance(exc, ApiHTTPError) and exc.status < 500
                    and not isinstance(exc, NotAuthenticated | RateLimited)):
                # The send would be refused the same way (the recipient is gone).
                self.store.mark_failed(item["id"], _reason(exc))
                await self._notify(api, item, _reason(exc))
            else:
                self.store.release(item["id"], self._retry_at(item), _reason(exc))
            self._changed(item["id"])
            return False
        newest = before.messages[:MARK_IDS]
        self.store.set_mark(item["id"], json.dumps({
            "ids": [m.id for m in newest],
            "at": newest[0].timestamp.timestamp() if newest else None}), _version(item))
        return True

    async def send(self, api: ScopedApi, item: dict[str, Any],
                   keyed: bool = True) -> SentMessage:
        """The v1 send of ``item``: keyed by its id (sent twice, it is stored once), or
        without a key for a server from before keys."""
        return await api.messages.send(
            item["recipient_id"], item["content"], message_type=item["message_type"],
            reply_to=item["reply_to"], client_message_id=item["id"] if keyed else None)

    async def reconcile(self, api: ScopedApi, item: dict[str, Any],
                        error: str = RECOVERED) -> None:
        """Decide an item left in ``sending``: sent (found on the server) or pending."""
        if item.get("claim_mark") == UNMARKED:
            # Claimed, but stopped before the send began: it never reached the server.
            self.store.release(item["id"], self._clock(), error)
            self._changed(item["id"])
            self.poke()
            return
        try:
            with api.bypass_cache():
                page = await api.messages.conversation(
                    item["recipient_id"], limit=RECONCILE_WINDOW, mark_read=False)
        except Exception as exc:
            # Cannot tell yet: leave it in 'sending' and look again at the next start-up
            # or sign-in, rather than risk sending it twice.
            self._log.warning("outbox: cannot reconcile %s yet: %s", item["id"], exc)
            self._recovered.discard(item["owner_id"])
            return
        key = _key(item)
        if key is not None:
            candidates = [m for m in page.messages if m.sender_id == item["owner_id"]
                          and getattr(m, "client_message_id", None) == key]
        else:  # sent without a key: by a version before keys, or to a server without
            candidates = [m for m in _after_mark(page.messages, item)
                          if m.sender_id == item["owner_id"]
                          and m.content == item["content"]
                          and (item["reply_to"] is None or m.reply_to == item["reply_to"])]
        if candidates:
            found = candidates[0]
            if (found.content, found.message_type) != _version(item):
                # The key holds an earlier text (it arrived late): that one went out.
                await self.settle(api, item, went_out(found), ("sending",),
                                  edit=_version(item), notify=True)
                return
            self.store.mark_sent(item["id"], found.id, found.timestamp.timestamp())
            self._changed(item["id"])
            return
        if int(item.get("attempts") or 0) >= MAX_ATTEMPTS:
            # Kept, with the reason, for the user to retry: never dropped, never a loop.
            reason = f"gave up after {MAX_ATTEMPTS} attempts: {error}"
            self.store.mark_failed(item["id"], reason)
            await self._notify(api, item, reason)
        else:
            # At start-up at once (the app died mid-send); after a live failure, later.
            again = self._clock() if error == RECOVERED else self._retry_at(item)
            self.store.release(item["id"], again, error)
        self._changed(item["id"])
        self.poke()

    async def find_earlier(self, api: ScopedApi, item: dict[str, Any]) -> Any | None:
        """The message an earlier send of ``item`` stored, as the conversation lists it
        (the newest ``RECONCILE_WINDOW``), or None: by its key; for a send without a key,
        a message of ours after its mark with one of the texts the item was sent with.
        Raises when the server cannot be asked."""
        with api.bypass_cache():
            page = await api.messages.conversation(
                item["recipient_id"], limit=RECONCILE_WINDOW, mark_read=False)
        key = _key(item) if item.get("claim_mark") != UNMARKED else item["id"]
        if key is not None:
            found = [m for m in page.messages if m.sender_id == item["owner_id"]
                     and getattr(m, "client_message_id", None) == key]
        else:
            sent = tried(item)
            found = [m for m in _after_mark(page.messages, item)
                     if m.sender_id == item["owner_id"]
                     and (m.content, m.message_type) in sent
                     and (item["reply_to"] is None or m.reply_to == item["reply_to"])]
        return found[0] if found else None

    async def resolve_conflict(self, api: ScopedApi, item: dict[str, Any],
                               error: str) -> None:
        """A keyed send refused with 409 for its key: the server holds another text of
        this item under it, one that went out earlier. Which one: the conversation shows
        it, or (deleted since, or beyond the read-back) a send of each earlier text with
        the key answers it as the duplicate; such a send cannot store anything, the key
        being taken. The item becomes sent with that text, the refused one is held."""
        from api_integration_layer.errors import ApiHTTPError

        try:
            found = await self.find_earlier(api, item)
            delivered = went_out(found) if found is not None else None
            for version in reversed(tried(item)):
                if delivered is not None:
                    break
                if version == _version(item):
                    continue
                try:
                    answer = await self.send(api, {**item, "content": version[0],
                                                   "message_type": version[1]})
                except ApiHTTPError as exc:
                    if not _conflicts_on_key(exc):
                        raise
                    continue
                delivered = went_out(answer)
        except Exception as exc:
            # Cannot tell which text yet: pending again; the next attempt meets the same
            # 409 and asks again. Nothing is sent meanwhile.
            self._log.warning("outbox: cannot resolve %s's key yet: %s", item["id"], exc)
            reason = f"{error}; {_reason(exc)}"
            if int(item.get("attempts") or 0) >= MAX_ATTEMPTS:
                self.store.mark_failed(item["id"], f"gave up after {MAX_ATTEMPTS} "
                                                   f"attempts: {reason}")
            else:
                self.store.release(item["id"], self._retry_at(item), reason)
            self._changed(item["id"])
            return
        if delivered is None:
            # Sent by a version that kept no record of its texts, and deleted since.
            delivered = {"message_id": None, "content": None, "message_type": None,
                         "at": None, "deleted": True}
        await self.settle(api, item, delivered, ("sending",), edit=_version(item),
                          notify=True)

    async def settle(self, api: ScopedApi, item: dict[str, Any], delivered: dict[str, Any],
                     states: tuple[str, ...], edit: tuple[str, str] | None,
                     notify: bool) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """``item`` (in one of ``states``) ends as sent with the text that went out;
        ``edit``, when it is another text, becomes a held item for the user to send as a
        new message or discard (``notify``: told on every client too). Both published."""
        change = "your edit could replace it" if edit is not None else "it was cancelled"
        note: str | None
        if edit is not None and (delivered["content"], delivered["message_type"]) == edit:
            note = None  # the text it holds went out: plainly sent
        elif delivered["content"] is None:
            note = ("An earlier text of this message was delivered and deleted since; "
                    "which one is not known here.")
        elif delivered["deleted"]:
            note = f"This text was delivered (and deleted since) before {change}."
        else:
            note = f"This text was delivered before {change}."
        edit_note = ("Not sent: an earlier text of this message had already been "
                     "delivered. Send this as a new message, or discard it.")
        settled = self.store.settle_earlier(item["id"], states, delivered, note, edit,
                                            edit_note)
        if settled is None:
            return None
        original, held = settled
        self._publish("outbox", public_item(original))
        if held is not None:
            self._publish("outbox", public_item(held))
            self._log.info("outbox: %s was delivered with an earlier text; the edit is "
                           "held as %s", item["id"], held["id"])
            if notify:
                await self._notify_held(api, original, held)
        return settled

    async def _notify_held(self, api: ScopedApi, original: dict[str, Any],
                           held: dict[str, Any]) -> None:
        """Tell the owner on every client: what went out, and that the edit did not."""
        def cut(text: str) -> str:
            return text[:120] + ("…" if len(text) > 120 else "")

        said = (f"“{cut(original['content'])}” was delivered" if original["content"]
                else "An earlier text was delivered")
        try:
            await api.notifications.send(
                original["owner_id"], "Your edit was not sent",
                f"{said} before your edit could replace it.\n\nThe edit, “"
                f"{cut(held['content'])}”, is kept in the Messaging Hub's outbox: send it "
                "as a new message, or discard it.",
                type="warning", priority="high", action_url="/plugins/messaging_hub/",
                metadata={"kind": "messaging_hub.outbox_edit_held", "item_id": held["id"],
                          "edit_of": original["id"], "recipient_id": held["recipient_id"]})
        except Exception as exc:  # the held item itself is stored and shown on the page
            self._log.warning("outbox: could not notify about %s: %s", held["id"], exc)

    async def _notify(self, api: ScopedApi, item: dict[str, Any], reason: str) -> None:
        """Tell the owner on every client (a v1 notification to themselves): a message
        sent later may fail while no page of this plugin is open."""
        what = "A scheduled message" if item["kind"] == "scheduled" else "A message"
        preview = item["content"][:120] + ("…" if len(item["content"]) > 120 else "")
        try:
            await api.notifications.send(
                item["owner_id"], f"{what} was not sent",
                f"{reason}\n\n“{preview}” is kept in the Messaging Hub's outbox to retry.",
                type="error", priority="high", action_url="/plugins/messaging_hub/",
                metadata={"kind": "messaging_hub.outbox_failed", "item_id": item["id"],
                          "recipient_id": item["recipient_id"]})
        except Exception as exc:  # the failure itself is stored and shown on the page
            self._log.warning("outbox: could not notify about %s: %s", item["id"], exc)

    def _retry_at(self, item: dict[str, Any]) -> float:
        attempts = int(item.get("attempts") or 0)
        return self._clock() + RETRY_DELAYS[min(attempts, len(RETRY_DELAYS) - 1)]

    def _changed(self, item_id: str) -> None:
        item = self.store.item(item_id)
        if item is not None:
            self._publish("outbox", public_item(item))


def _server(api: Any) -> str:
    """Which server ``api`` talks to, as the memory of servers without keys knows it."""
    # getattr: a stand-in API (the unit tests' fake server) has no base URL; one server.
    return str(getattr(api, "base_url", ""))


def _refuses_key(exc: Exception) -> bool:
    """Whether a refused send was refused for its ``client_message_id``: a 422 of
    FastAPI's validation list naming that field of the body, as a server from before keys
    (unknown fields forbidden) answers. Its type is not checked: "extra_forbidden" here,
    "value_error.extra" from older pydantic, and a server with keys would name the field
    only for a malformed key, which the API layer refuses before sending. A 422 refuses
    the whole body, so nothing was stored and the item may go without the key."""
    detail = getattr(exc, "detail", None)
    if getattr(exc, "status", None) != 422 or not isinstance(detail, list):
        return False
    for entry in detail:
        loc = entry.get("loc") if isinstance(entry, dict) else None
        if (isinstance(loc, list | tuple) and len(loc) >= 2 and loc[0] == "body"
                and loc[-1] == "client_message_id"):
            return True
    return False


def _conflicts_on_key(exc: Exception) -> bool:
    """Whether a refused send was a 409 for its ``client_message_id``: the key is taken in
    this conversation by a message with another text (the v1 server names the field)."""
    return getattr(exc, "status", None) == 409 and "client_message_id" in str(
        getattr(exc, "detail", ""))


def _version(item: dict[str, Any]) -> tuple[str, str]:
    return (item["content"], item["message_type"])


def tried(item: dict[str, Any]) -> list[tuple[str, str]]:
    """The texts (content, message type) ``item`` was sent with so far, oldest first."""
    return [(c, t) for c, t in json.loads(item.get("tried") or "[]")]


def in_doubt(item: dict[str, Any]) -> bool:
    """Whether a send of ``item`` may have been stored although no answer said so: it
    was tried, and is waiting to be tried again, or was given up. (Not while a send is
    under way: every send would flash as in doubt on the page.)"""
    return bool(item.get("tried")) and (
        item["state"] == "pending"
        or (item["state"] == "failed" and (item["error"] or "").startswith("gave up")))


def edited_since_tried(item: dict[str, Any]) -> bool:
    """Whether ``item`` now holds another text than one that may have gone out."""
    return any(version != _version(item) for version in tried(item))


def went_out(message: Any) -> dict[str, Any]:
    """What the recipient got: the fields a held edit keeps of the message."""
    return {"message_id": message.id, "content": message.content,
            "message_type": message.message_type,
            "at": message.timestamp.timestamp(), "deleted": bool(getattr(message, "deleted",
                                                                         False))}


def _key(item: dict[str, Any]) -> str | None:
    """The ``client_message_id`` a claimed item was sent with (None: sent without one, by
    a version before keys)."""
    mark = item.get("claim_mark")
    if not mark or not mark.startswith("{"):
        return None
    key = json.loads(mark).get("key")
    return str(key) if key is not None else None


def _after_mark(newest_first: list[Any], item: dict[str, Any]) -> list[Any]:
    """The messages of a conversation page (newest first) stored after ``item``'s claim
    mark (of a send without a key): the ones its send may have produced."""
    mark = item.get("claim_mark")
    if mark is None:
        # Claimed by a version without marks: its claim time is all there is (right while
        # the clocks agree).
        claimed = item.get("claimed_at") or item["created_at"]
        return [m for m in newest_first if m.timestamp.timestamp() >= claimed - 2.0]
    newest_at: float | None = None
    if mark.startswith("{"):
        found = json.loads(mark)
        before, newest_at = set(found["ids"]), found["at"]
    else:  # "id,id,id": a mark written before it held the server's time
        before = set(mark.split(",")) if mark else set()
    for index, message in enumerate(newest_first):
        if message.id in before:
            return newest_first[:index]
    if newest_at is None:
        # The conversation was empty at the claim (or an old mark): all of it is later.
        return newest_first
    # Every marked message was deleted meanwhile (either party may delete theirs), so
    # older ones show through: the server's own time of the newest marked one separates
    # them. Both times are the server's clock, never ours.
    return [m for m in newest_first if m.timestamp.timestamp() > newest_at]


def _reason(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    status = getattr(exc, "status", None)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = [str(p) for p in detail[0].get("loc", []) if p not in ("body", "query", "path")]
        detail = f"{'.'.join(loc) or 'request'}: {detail[0].get('msg', '')}"
    text = str(detail) if detail else str(exc)
    return f"{status}: {text}" if status else f"{type(exc).__name__}: {text}"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts).astimezone().isoformat()


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    """An outbox row as the page sees it (times as ISO strings with the zone)."""
    return {
        "id": item["id"], "recipient_id": item["recipient_id"], "content": item["content"],
        "message_type": item["message_type"], "reply_to": item["reply_to"],
        "kind": item["kind"], "state": item["state"], "send_at": _iso(item["send_at"]),
        "send_at_unix": item["send_at"], "attempts": item["attempts"],
        "created_at": _iso(item["created_at"]), "sent_at": _iso(item["sent_at"]),
        "message_id": item["message_id"], "error": item["error"],
        # An unknown outcome is shown as such; a held edit with what went out instead.
        "in_doubt": in_doubt(item), "note": item.get("note"),
        "edit_of": item.get("edit_of"),
        "delivered": json.loads(item["delivered"]) if item.get("delivered") else None,
    }
