"""Who is waiting on you: the state of one conversation from its most recent messages.

A conversation waits on you when its last human message is from the other person: your
own auto-reply does not answer it (it only said you are away), and their auto-reply asks
nothing of you. ``waiting_since`` is the first of their messages after your last real
reply, the moment the clock started (as in the analytics' response time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from messaging_hub.autoreply import is_auto_reply

FILTERS = ("all", "unread", "waiting", "scheduled", "drafts")


def conversation_state(newest_first: Iterable[Mapping[str, Any]], me: str) -> dict[str, Any]:
    """``{waiting, waiting_since, waiting_count, last_from, last_auto}`` from messages
    newest first (a page of ``GET /messages/conversation``)."""
    waiting_since = None
    count = 0
    last_from = None
    last_auto = False
    for message in newest_first:
        auto = is_auto_reply(str(message.get("content", "")))
        mine = message.get("sender_id") == me
        if last_from is None:
            last_from, last_auto = ("me" if mine else "them"), auto
        if auto:
            if not mine and count == 0:
                break  # their auto-reply is the newest: nothing to answer
            continue
        if mine:
            break  # your real reply: everything older is answered
        waiting_since = message.get("timestamp")
        count += 1
    return {"waiting": count > 0, "waiting_since": waiting_since, "waiting_count": count,
            "last_from": last_from, "last_auto": last_auto}


def matches(item: Mapping[str, Any], which: str, query: str) -> bool:
    """Whether an inbox row passes the filter ``which`` and the name search ``query``."""
    if query:
        q = query.casefold()
        if q not in str(item.get("display_name", "")).casefold() and \
                q not in str(item.get("username", "")).casefold():
            return False
    if which == "unread":
        return int(item.get("unread_count") or 0) > 0
    if which == "waiting":
        return bool(item.get("waiting"))
    if which == "scheduled":
        return int(item.get("scheduled") or 0) > 0
    if which == "drafts":
        return bool(item.get("draft"))
    return True
