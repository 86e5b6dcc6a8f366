"""``/messages``: direct messages between two users, with threads, reactions and edits.

A reply names the message it answers (``reply_to``); every message of a thread carries the
id of the thread's first message (``thread_id``), so ``GET /messages/{id}/thread`` is one
indexed query however deep the replies go. Reactions are one per user, message and emoji;
messages carry their counts. Both parties of the conversation get ``reaction`` and
``message_updated`` frames on the realtime socket.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import Field, field_validator

from plexichat_desktop.server.v1 import accounts
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    conflict,
    done,
    invalid,
    iso,
    limit_query,
    new_id,
    not_found,
    now,
    or_404,
    owned,
    page,
    unseen,
)
from plexichat_desktop.server.v1.deps import Api, CurrentUser, User
from plexichat_desktop.server.v1.hub import frame
from plexichat_desktop.server.v1.service import ApiV1
from plexichat_desktop.server.v1.store import one, rows, scalar

router = APIRouter(prefix="/messages", tags=["messages"])

MAX_CONTENT = 10_000
PREVIEW = 100
VISIBLE = "deleted_at IS NULL"
MAX_EMOJI = 32  # characters: a ZWJ family sequence is up to ~11; a :shortcode: up to 32
MAX_DISTINCT_REACTIONS = 50  # distinct emojis on one message
SHORTCODE = re.compile(r"^:[a-z0-9_+-]{1,30}:$")
CLIENT_MESSAGE_ID = r"^[A-Za-z0-9_-]{1,64}$"


def blank(text: str) -> bool:
    """Nothing a reader would see: spaces, and control and format characters ("\\u0000",
    a zero-width space) were a message of their own."""
    return all(c.isspace() or unseen(c) for c in text)


_ZWJ, _KEYCAP = "\u200d", "\u20e3"
_VARIATIONS = ("\ufe0e", "\ufe0f")


def _modifier(char: str) -> bool:
    """Marks that belong to the emoji before them: variation selectors, skin tones and
    the tag characters of subdivision flags (🏴 + tags + cancel tag)."""
    code = ord(char)
    return char in _VARIATIONS or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _one_unit(part: str) -> bool:
    """``part`` (between zero-width joiners) is one emoji: a symbol with its marks, a flag
    (two regional indicators) or a keycap."""
    if not part:
        return False
    if all(_regional(c) for c in part):
        return len(part) == 2
    base, marks = part[0], part[1:]
    if base in "#*0123456789":
        return marks.replace("\ufe0f", "") == _KEYCAP  # 1️⃣: the keycap mark makes it one
    return unicodedata.category(base) in ("So", "Sk") and all(_modifier(c) for c in marks)


def check_emoji(value: str) -> str:
    """``value`` when it is one emoji (a symbol with its marks, a flag, a keycap, or such
    emoji joined by zero-width joiners into one, like a family) or a ``:shortcode:``;
    ValueError saying what is accepted. Two emoji side by side, text, or invisible format
    characters (a right-to-left override) are refused."""
    if SHORTCODE.match(value):
        return value
    if not value or len(value) > MAX_EMOJI:
        raise ValueError(f"emoji: 1-{MAX_EMOJI} characters")
    parts = value.split(_ZWJ)
    if not all(_one_unit(part) for part in parts) or (
            len(parts) > 1 and any(all(_regional(c) for c in part) for part in parts)):
        raise ValueError("emoji: one emoji (e.g. 👍) or a :shortcode: of a-z, 0-9, _ + -")
    return value


class SendBody(Body):
    recipient_id: str | None = Field(None, min_length=1, max_length=64, description=(
        "Who gets the message. May be left out of a reply: it is then the other party of "
        "the message replied to."))
    content: str = Field(min_length=1, max_length=MAX_CONTENT)
    message_type: Literal["text", "markdown", "code"] = "text"
    encrypted: bool = Field(False, description="A flag stored as given: the server does "
                                               "not encrypt; end-to-end encryption is the "
                                               "clients' business.")
    reply_to: str | None = Field(None, min_length=1, max_length=64, description=(
        "The id of the message this one answers (of the same conversation): the reply joins "
        "that message's thread."))
    client_message_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=CLIENT_MESSAGE_ID, description=(
            "The sender's own key of this message (1-64 of A-Z a-z 0-9 _ -), for retries: "
            "a second send with the same key to the same conversation stores nothing and "
            "answers the first message (200, duplicate: true), even when it was deleted "
            "since; with other content, message_type or reply_to it is a 409. Only the "
            "sender sees it on the message."))


class EditBody(Body):
    content: str = Field(min_length=1, max_length=MAX_CONTENT)


class ReactionBody(Body):
    emoji: str = Field(min_length=1, max_length=MAX_EMOJI,
                       description="One emoji (👍) or a :shortcode: (:thumbsup:).")

    @field_validator("emoji")
    @classmethod
    def _emoji(cls, value: str) -> str:
        return check_emoji(value)


def message_dict(row: dict[str, Any], reactions: list[dict[str, Any]] | None = None,
                 reply_count: int = 0, me: str | None = None) -> dict[str, Any]:
    """``MessageResponse``: the message, its place in a thread, its reaction counts, and
    for its sender (``me``) the ``client_message_id`` it was sent with."""
    return {
        "id": row["id"],
        "sender_id": row["sender_id"],
        "recipient_id": row["recipient_id"],
        "content": row["content"],
        "message_type": row["message_type"],
        "encrypted": bool(row["encrypted"]),
        "timestamp": iso(row["created_at"]),
        "read": row["read_at"] is not None,
        "read_at": iso(row["read_at"]),
        "reply_to": row["reply_to"],
        "thread_id": row["thread_id"],
        "reply_count": reply_count,
        "edited": row["edited_at"] is not None,
        "edited_at": iso(row["edited_at"]),
        "reactions": reactions or [],
        # The sender's device bookkeeping (e.g. an outbox row's id): nothing of the
        # recipient's business.
        "client_message_id": row.get("client_message_id") if row["sender_id"] == me
        else None,
    }


def _reactions(conn: sqlite3.Connection, ids: list[str], me: str
               ) -> dict[str, list[dict[str, Any]]]:
    """Reaction counts of the messages ``ids``: ``{id: [{emoji, count, me}]}``, each list
    in the order the emojis were first used on that message."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    found = rows(conn.execute(
        f"SELECT message_id, emoji, COUNT(*) AS count, MAX(user_id = ?) AS mine, "
        f"MIN(created_at) AS first FROM message_reactions WHERE message_id IN ({marks}) "
        f"GROUP BY message_id, emoji ORDER BY first, emoji", (me, *ids)))
    out: dict[str, list[dict[str, Any]]] = {}
    for r in found:
        out.setdefault(r["message_id"], []).append(
            {"emoji": r["emoji"], "count": r["count"], "me": bool(r["mine"])})
    return out


def _reply_counts(conn: sqlite3.Connection, ids: list[str]) -> dict[str, int]:
    """How many visible replies the thread rooted at each of ``ids`` has."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    return {r["thread_id"]: r["n"] for r in rows(conn.execute(
        f"SELECT thread_id, COUNT(*) AS n FROM messages WHERE thread_id IN ({marks}) AND "
        f"{VISIBLE} GROUP BY thread_id", ids))}


def decorated(conn: sqlite3.Connection, found: list[dict[str, Any]], me: str
              ) -> list[dict[str, Any]]:
    """``found`` rows as message dicts with reactions (as seen by ``me``) and reply counts."""
    ids = [r["id"] for r in found]
    reactions = _reactions(conn, ids, me)
    counts = _reply_counts(conn, ids)
    return [message_dict(r, reactions.get(r["id"]), counts.get(r["id"], 0), me)
            for r in found]


def _one_message(conn: sqlite3.Connection, message_id: str, me: str) -> dict[str, Any]:
    row = one(conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)))
    assert row is not None
    return decorated(conn, [row], me)[0]


def _earlier_send(conn: sqlite3.Connection, sender_id: str, body: SendBody
                  ) -> dict[str, Any] | None:
    """The message ``sender_id`` already sent to the body's conversation with its
    ``client_message_id`` (deleted or not), as the duplicate answer; 409 when that key
    was used for a different message.

    Looked up before the body is checked against the conversation as it is now: the
    message replied to may have been deleted since the first send, which must not turn
    its retry into an error. A reply without ``recipient_id`` belongs to the
    conversation of the message it answers: its ``reply_to`` names that, and the key may
    already be that conversation's on a message with another ``reply_to`` or none (a 409
    then, not the unique index refusing the insert)."""
    row = one(conn.execute(
        "SELECT * FROM messages WHERE sender_id = :me AND client_message_id = :key AND "
        "(recipient_id = :to OR (:to IS NULL AND (reply_to = :reply OR recipient_id = ("
        "SELECT CASE WHEN sender_id = :me THEN recipient_id ELSE sender_id END "
        "FROM messages WHERE id = :reply AND (sender_id = :me OR recipient_id = :me)))))",
        {"me": sender_id, "key": body.client_message_id, "to": body.recipient_id,
         "reply": body.reply_to}))
    if row is None:
        return None
    if (row["content"], row["message_type"], row["reply_to"]) != (
            body.content, body.message_type, body.reply_to):
        # Answering the first message would silently drop this one's content.
        raise conflict(f"client_message_id: '{body.client_message_id}' was already used "
                       f"for a different message to this recipient")
    deleted = row["deleted_at"] is not None
    return {**decorated(conn, [row], sender_id)[0], "deleted": deleted}


def _send(conn: sqlite3.Connection, sender_id: str, body: SendBody
          ) -> tuple[dict[str, Any] | None, str, bool]:
    if body.client_message_id is not None:
        # In the same write transaction as the insert: two retries at once cannot both
        # miss the first (the unique index would refuse the second anyway).
        earlier = _earlier_send(conn, sender_id, body)
        if earlier is not None:
            return earlier, earlier["recipient_id"], True
    recipient_id = body.recipient_id
    thread_id = None
    if body.reply_to is not None:
        parent = _visible(conn, body.reply_to, sender_id)
        if parent is None:
            raise invalid("reply_to", f"no message '{body.reply_to}' in your conversations",
                          body.reply_to)
        other = (parent["recipient_id"] if parent["sender_id"] == sender_id
                 else parent["sender_id"])
        if recipient_id is None:
            recipient_id = other
        elif recipient_id != other:
            raise invalid("reply_to", "the message replied to belongs to another "
                                      "conversation than recipient_id's", body.reply_to)
        thread_id = parent["thread_id"] or parent["id"]
    if recipient_id is None:
        raise invalid("recipient_id", "recipient_id is required (unless reply_to is given)")
    if recipient_id == sender_id:
        raise HTTPException(400, "recipient_id: you cannot send a message to yourself")
    if accounts.get_user(conn, recipient_id) is None:
        return None, recipient_id, False
    message_id = new_id()
    conn.execute(
        "INSERT INTO messages (id, sender_id, recipient_id, content, message_type, encrypted, "
        "created_at, reply_to, thread_id, client_message_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (message_id, sender_id, recipient_id, body.content, body.message_type,
         int(body.encrypted), now(), body.reply_to, thread_id, body.client_message_id))
    return _one_message(conn, message_id, sender_id), recipient_id, False


@router.post("/send", status_code=201)
async def send(body: SendBody, user: User, api: Api, response: Response) -> dict[str, Any]:
    """Send a direct message, or with ``reply_to`` a reply in that message's thread; the
    recipient's open WebSockets get it at once.

    With ``client_message_id`` the send is idempotent: a retry with the same key to the
    same conversation (after a lost answer, a crash) answers 200 with the message stored
    the first time and ``duplicate: true`` (``deleted: true`` if it was deleted since),
    and stores, sends and announces nothing. A new message is 201, ``duplicate: false``.
    """
    if blank(body.content):
        raise invalid("content", "content must not be blank")
    message, recipient_id, duplicate = await api.store.write(_send, user.id, body)
    if message is None:
        raise not_found("recipient", recipient_id)
    if duplicate:
        response.status_code = 200
        return {**message, "duplicate": True}
    # The recipient's copy without the sender's client_message_id.
    theirs = {**message, "client_message_id": None}
    api.hub.to_user(recipient_id, frame("message", **theirs, sender_username=user.username))
    api.hub.to_user(user.id, frame("message", **message, sender_username=user.username))
    api.emit("message.sent", message, [user.id])
    api.emit("message.received", theirs, [recipient_id])
    return {**message, "duplicate": False}


def _conversations(conn: sqlite3.Connection, user_id: str, limit: int, offset: int
                   ) -> tuple[list[dict[str, Any]], int]:
    # One row per partner: their latest visible message with me, and my unread count.
    base = f"""
        WITH mine AS (
            SELECT seq, content, created_at,
                   CASE WHEN sender_id = :me THEN recipient_id ELSE sender_id END AS partner
            FROM messages WHERE (sender_id = :me OR recipient_id = :me) AND {VISIBLE}
        ), latest AS (
            SELECT partner, MAX(seq) AS seq FROM mine GROUP BY partner
        )
    """
    total = scalar(conn, base + "SELECT COUNT(*) FROM latest", {"me": user_id})
    found = rows(conn.execute(base + f"""
        SELECT u.id AS user_id, u.username, u.display_name, m.content AS last_message,
               m.created_at AS last_message_time,
               (SELECT COUNT(*) FROM messages x WHERE x.sender_id = u.id
                    AND x.recipient_id = :me AND x.read_at IS NULL AND x.{VISIBLE})
                   AS unread_count
        FROM latest l JOIN mine m ON m.seq = l.seq JOIN users u ON u.id = l.partner
        ORDER BY l.seq DESC LIMIT :limit OFFSET :offset
    """, {"me": user_id, "limit": limit, "offset": offset}))
    return found, total


@router.get("/conversations")
async def conversations(user: User, api: Api, limit: Annotated[int, limit_query(50, 100)] = 50,
                        offset: Offset = 0) -> dict[str, Any]:
    """The caller's conversations, most recent first."""
    found, total = await api.store.read(_conversations, user.id, limit, offset)
    items = [{
        "user_id": r["user_id"], "username": r["username"],
        "display_name": r["display_name"] or r["username"],
        "last_message": r["last_message"][:PREVIEW],
        "last_message_time": iso(r["last_message_time"]), "unread_count": r["unread_count"],
        "is_online": api.hub.is_online(r["user_id"]),
    } for r in found]
    return page("conversations", items, total, limit, offset)


def _conversation(conn: sqlite3.Connection, me: str, other_id: str, limit: int, offset: int,
                  order: str, mark_read: bool
                  ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int, int]:
    other = one(conn.execute("SELECT * FROM users WHERE id = ?", (other_id,)))
    if other is None:
        return None, [], 0, 0
    pair = (f"((sender_id = :me AND recipient_id = :other) OR "
            f"(sender_id = :other AND recipient_id = :me)) AND {VISIBLE}")
    args = {"me": me, "other": other_id}
    total = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE {pair}", args)
    direction = "ASC" if order == "asc" else "DESC"
    found = rows(conn.execute(
        f"SELECT * FROM messages WHERE {pair} ORDER BY seq {direction} "
        f"LIMIT :limit OFFSET :offset", {**args, "limit": limit, "offset": offset}))
    marked = 0
    if mark_read:
        unread = [r["id"] for r in found if r["recipient_id"] == me and r["read_at"] is None]
        stamp = now()
        for row in found:
            if row["id"] in unread:
                row["read_at"] = stamp
        if unread:
            marks = ", ".join("?" * len(unread))
            marked = conn.execute(f"UPDATE messages SET read_at = ? WHERE id IN ({marks})",
                                  (stamp, *unread)).rowcount
    return other, found, total, marked


@router.get("/conversation/{other_user_id}")
async def conversation(
    other_user_id: str, user: User, api: Api,
    limit: Annotated[int, limit_query(50, 100)] = 50, offset: Offset = 0,
    order: Literal["desc", "asc"] = "desc", mark_read: bool = True,
) -> dict[str, Any]:
    """Messages between the caller and another user (newest first by default). Messages
    of the page that the caller received are marked read unless ``mark_read=false``."""
    if other_user_id == user.id:  # as a send to oneself is refused: there is none
        raise HTTPException(400, "other_user_id: there is no conversation with yourself")
    other, found, total, _marked = await api.store.write(
        _conversation, user.id, other_user_id, limit, offset, order, mark_read)
    if other is None:
        raise not_found("user", other_user_id)
    items = await api.store.read(decorated, found, user.id)
    return page("messages", items, total, limit, offset,
                other_user={"id": other["id"], "username": other["username"],
                            "display_name": other["display_name"] or other["username"]})


def _stats(conn: sqlite3.Connection, me: str) -> dict[str, int]:
    sent = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE sender_id = ? AND {VISIBLE}",
                  (me,))
    received = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE recipient_id = ? AND "
                            f"{VISIBLE}", (me,))
    unread = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE recipient_id = ? AND "
                          f"read_at IS NULL AND {VISIBLE}", (me,))
    partners = scalar(conn, f"""
        SELECT COUNT(DISTINCT CASE WHEN sender_id = :me THEN recipient_id ELSE sender_id END)
        FROM messages WHERE (sender_id = :me OR recipient_id = :me) AND {VISIBLE}""",
        {"me": me})
    return {"sent_messages": sent, "received_messages": received, "unread_messages": unread,
            "total_messages": sent + received, "conversations": partners}


@router.get("/stats")
async def stats(user: User, api: Api) -> dict[str, Any]:
    """Counts of the caller's messages."""
    return await api.store.read(_stats, user.id)


def _visible(conn: sqlite3.Connection, message_id: str, me: str) -> dict[str, Any] | None:
    """A message of a conversation ``me`` is part of, or None."""
    return one(conn.execute(f"SELECT * FROM messages WHERE id = :id AND {VISIBLE} AND "
                            f":me IN (sender_id, recipient_id)", {"id": message_id, "me": me}))


@router.get("/{message_id}")
async def get_message(message_id: str, user: User, api: Api) -> dict[str, Any]:
    """One message of a conversation the caller is part of."""
    def fetch(conn: sqlite3.Connection) -> dict[str, Any] | None:
        row = _visible(conn, message_id, user.id)
        return None if row is None else decorated(conn, [row], user.id)[0]

    return or_404(await api.store.read(fetch), "message", message_id)


def _delete(conn: sqlite3.Connection, message_id: str, user_id: str) -> str:
    row = owned(_visible(conn, message_id, user_id), user_id, "message", message_id,
                "only the sender can delete a message", owner="sender_id")
    conn.execute("UPDATE messages SET deleted_at = ? WHERE id = ?", (now(), message_id))
    return row["recipient_id"]


@router.delete("/{message_id}")
async def delete_message(message_id: str, user: User, api: Api) -> dict[str, Any]:
    """Delete a message the caller sent (for both sides). The recipient gets 403."""
    recipient = await api.store.write(_delete, message_id, user.id)
    event = frame("message_deleted", id=message_id, sender_id=user.id, recipient_id=recipient)
    api.hub.to_user(recipient, event)
    api.hub.to_user(user.id, event)
    return done("Message deleted", message_id=message_id)


def _thread(conn: sqlite3.Connection, message_id: str, me: str, limit: int, offset: int
            ) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]], int] | None:
    start = _visible(conn, message_id, me)
    if start is None:
        return None
    thread_id = start["thread_id"] or start["id"]
    root = _visible(conn, thread_id, me)
    total = scalar(conn, f"SELECT COUNT(*) FROM messages WHERE thread_id = ? AND {VISIBLE}",
                   (thread_id,))
    replies = rows(conn.execute(
        f"SELECT * FROM messages WHERE thread_id = ? AND {VISIBLE} ORDER BY seq "
        f"LIMIT ? OFFSET ?", (thread_id, limit, offset)))
    root_dict = decorated(conn, [root], me)[0] if root is not None else None
    return thread_id, root_dict, decorated(conn, replies, me), total


@router.get("/{message_id}/thread")
async def thread(message_id: str, user: User, api: Api,
                 limit: Annotated[int, limit_query(50, 100)] = 50,
                 offset: Offset = 0) -> dict[str, Any]:
    """The thread a message belongs to: its first message (``root``; null once deleted)
    and the replies, oldest first. Any message of the thread names it."""
    found = await api.store.read(_thread, message_id, user.id, limit, offset)
    if found is None:
        raise not_found("message", message_id)
    thread_id, root, replies, total = found
    return page("messages", replies, total, limit, offset, thread_id=thread_id, root=root)


def _edit(conn: sqlite3.Connection, message_id: str, me: str, content: str
          ) -> dict[str, Any]:
    owned(_visible(conn, message_id, me), me, "message", message_id,
          "only the sender can edit a message", owner="sender_id")
    conn.execute("UPDATE messages SET content = ?, edited_at = ? WHERE id = ?",
                 (content, now(), message_id))
    return _one_message(conn, message_id, me)


@router.patch("/{message_id}")
async def edit_message(message_id: str, body: EditBody, user: User, api: Api
                       ) -> dict[str, Any]:
    """Change the content of a message the caller sent (the recipient gets 403); it is
    marked ``edited`` and both parties get a ``message_updated`` frame."""
    if blank(body.content):
        raise invalid("content", "content must not be blank")
    message = await api.store.write(_edit, message_id, user.id, body.content)
    theirs = {**message, "client_message_id": None}
    api.hub.to_user(message["recipient_id"],
                    frame("message_updated", **theirs, sender_username=user.username))
    api.hub.to_user(user.id, frame("message_updated", **message,
                                   sender_username=user.username))
    return message


def _react(conn: sqlite3.Connection, message_id: str, me: str, emoji: str, add: bool
           ) -> tuple[bool, dict[str, Any]]:
    row = or_404(_visible(conn, message_id, me), "message", message_id)
    if add:
        exists = scalar(conn, "SELECT 1 FROM message_reactions WHERE message_id = ? AND "
                              "emoji = ?", (message_id, emoji))
        distinct = scalar(conn, "SELECT COUNT(DISTINCT emoji) FROM message_reactions WHERE "
                                "message_id = ?", (message_id,))
        if not exists and distinct >= MAX_DISTINCT_REACTIONS:
            raise conflict(f"emoji: this message already has {MAX_DISTINCT_REACTIONS} "
                           f"different reactions; add to one of them")
        changed = conn.execute(
            "INSERT OR IGNORE INTO message_reactions (message_id, user_id, emoji, created_at) "
            "VALUES (?, ?, ?, ?)", (message_id, me, emoji, now())).rowcount
    else:
        changed = conn.execute("DELETE FROM message_reactions WHERE message_id = ? AND "
                               "user_id = ? AND emoji = ?", (message_id, me, emoji)).rowcount
    return bool(changed), decorated(conn, [row], me)[0]


async def _reaction(api: ApiV1, user: CurrentUser, message_id: str, emoji: str, add: bool
                    ) -> dict[str, Any]:
    api.reaction_limiter.check(user.id)
    changed, message = await api.store.write(_react, message_id, user.id, emoji, add)
    if changed:
        # Counts only: "me" differs per reader, so each client keeps its own flag.
        counts = [{"emoji": r["emoji"], "count": r["count"]} for r in message["reactions"]]
        event = frame("reaction", message_id=message_id, emoji=emoji,
                      action="added" if add else "removed", user_id=user.id,
                      username=user.username, reactions=counts)
        for party in {message["sender_id"], message["recipient_id"]}:
            api.hub.to_user(party, event)
    return {**message, "changed": changed}


@router.post("/{message_id}/reactions")
async def add_reaction(message_id: str, body: ReactionBody, user: User, api: Api
                       ) -> dict[str, Any]:
    """React to a message of a conversation the caller is part of. Reacting twice with the
    same emoji changes nothing (``changed: false``). Answers the message with its counts.
    At most ``[api] reactions_per_minute`` reactions added or taken back per user (429
    with ``Retry-After``)."""
    return await _reaction(api, user, message_id, body.emoji, True)


@router.delete("/{message_id}/reactions")
async def remove_reaction(
    message_id: str, user: User, api: Api,
    emoji: Annotated[str, Query(min_length=1, max_length=MAX_EMOJI,
                                description="The emoji to take back.")],
) -> dict[str, Any]:
    """Take back the caller's reaction ``emoji`` (``changed: false`` when there was none)."""
    try:
        check_emoji(emoji)
    except ValueError as exc:
        raise invalid("emoji", str(exc), emoji, where="query") from None
    return await _reaction(api, user, message_id, emoji, False)
