"""The Messaging Hub's own state, in one SQLite file of the plugin's data dir.

What lives here and not on the v1 server: the outbox (messages held for the undo window
or scheduled for later), drafts, templates, the away settings and the auto-responder's
log. Everything is keyed by the v1 user it belongs to (``owner_id``): the API session is
shared by every plugin and can change hands, and a message queued by one account must
never go out as another.

The outbox is what makes "sent exactly once" hold across crashes and restarts:

* an item is ``pending`` until its ``send_at``; edits and cancels only touch pending rows
  (``WHERE state = 'pending'``), so they cannot race the dispatcher;
* the dispatcher *claims* an item with one ``UPDATE ... WHERE state = 'pending'``: only the
  caller whose update changed a row sends it, however many dispatchers run;
* after the server answered, the row becomes ``sent`` with the v1 message id. A row found
  in ``sending`` at start-up (the app died between claim and answer) is reconciled against
  the conversation on the server before anything is sent again, by the key (the item's
  id) its send carried (see ``outbox.py``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    content TEXT NOT NULL,
    message_type TEXT NOT NULL,
    reply_to TEXT,
    kind TEXT NOT NULL,              -- 'undo' (held for the undo window) or 'scheduled'
    send_at REAL NOT NULL,           -- unix seconds
    state TEXT NOT NULL,             -- pending, sending, sent, cancelled, failed
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    claimed_at REAL,
    claim_mark TEXT,                 -- how the claimed send is found on the server (outbox.py)
    sent_at REAL,
    message_id TEXT,
    error TEXT,
    tried TEXT,                      -- JSON [[content, message_type], ...] sent so far
    edit_of TEXT,                    -- a held edit: the item whose earlier text went out
    delivered TEXT,                  -- a held edit: JSON of the message that went out
    note TEXT,                       -- why an item ended as it did, for the page
    rendered_from TEXT               -- JSON: the template text, variables and zone it came from
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (owner_id, state, send_at);
CREATE TABLE IF NOT EXISTS drafts (
    owner_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    content TEXT NOT NULL,
    message_type TEXT NOT NULL,
    reply_to TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (owner_id, recipient_id)
);
CREATE TABLE IF NOT EXISTS templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    body TEXT NOT NULL,
    message_type TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    uses INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS away (
    owner_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    owner_id TEXT NOT NULL,
    message_id TEXT NOT NULL,        -- the received message decided about
    partner_id TEXT NOT NULL,
    decision TEXT NOT NULL,          -- replying, replied, skipped, failed
    reason TEXT NOT NULL,
    reply_id TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (owner_id, message_id)
);
CREATE INDEX IF NOT EXISTS decisions_partner ON decisions (owner_id, partner_id, decision, at);
"""

OPEN_STATES = ("pending", "sending")
# 'held': an edit that lost to an earlier text of its item that had already gone out
# (outbox.py); it waits for the user to send it as a new message, or to discard it.
HELD = "held"
LATER_COLUMNS = ("claim_mark", "tried", "edit_of", "delivered", "note", "rendered_from")
# claim_mark of an item claimed whose send has not begun yet (NULL: claimed by a version
# without marks).
UNMARKED = "?"


class Store:
    """Thread-safe access to the plugin's SQLite file (WAL; one connection, one lock).

    Every statement is small (a row or an index range), so the routes call it directly
    instead of hopping to a thread: the lock is held for microseconds."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # a claim must survive a crash
            self._conn.executescript(SCHEMA)
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(outbox)")}
            for column in LATER_COLUMNS:
                if column not in columns:  # a file made before the column existed
                    self._conn.execute(f"ALTER TABLE outbox ADD COLUMN {column} TEXT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _all(self, sql: str, args: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, args).fetchall()]

    def _one(self, sql: str, args: tuple[Any, ...] | dict[str, Any] = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    # -- outbox --------------------------------------------------------------------------
    def queue(self, owner_id: str, recipient_id: str, content: str, message_type: str,
              reply_to: str | None, kind: str, send_at: float,
              rendered_from: str | None = None) -> dict[str, Any]:
        stamp = time.time()
        item_id = uuid.uuid4().hex
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO outbox (id, owner_id, recipient_id, content, message_type, "
                "reply_to, kind, send_at, state, created_at, updated_at, rendered_from) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (item_id, owner_id, recipient_id, content, message_type, reply_to, kind,
                 send_at, stamp, stamp, rendered_from))
        item = self.item(item_id)
        assert item is not None
        return item

    def item(self, item_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM outbox WHERE id = ?", (item_id,))

    def items(self, owner_id: str, states: tuple[str, ...] | None = None,
              recipient_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        sql = "SELECT * FROM outbox WHERE owner_id = ?"
        args: list[Any] = [owner_id]
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            args += list(states)
        if recipient_id:
            sql += " AND recipient_id = ?"
            args.append(recipient_id)
        sql += " ORDER BY CASE WHEN state IN ('pending', 'sending') THEN 0 ELSE 1 END, " \
               "send_at DESC LIMIT ?"
        args.append(limit)
        return self._all(sql, tuple(args))

    def update_pending(self, item_id: str, owner_id: str, **changes: Any) -> dict[str, Any] | None:
        """Change a pending (or held) item; None when it is neither any more (or not the
        owner's). A held item stays held: it leaves only when the user sends it."""
        allowed = {"content", "message_type", "send_at", "kind", "rendered_from"}
        sets = {k: v for k, v in changes.items() if k in allowed and v is not None}
        sets["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = :{k}" for k in sets)
        with self._tx() as conn:
            changed = conn.execute(
                f"UPDATE outbox SET {assignments} WHERE id = :id AND owner_id = :owner AND "
                f"state IN ('pending', '{HELD}')",
                {**sets, "id": item_id, "owner": owner_id}).rowcount
        return self.item(item_id) if changed else None

    def send_held(self, item_id: str, owner_id: str, now: float) -> dict[str, Any] | None:
        """A held edit released by the user: pending, due ``now`` (it leaves as a new
        message under its own id). None when it is not held (or not the owner's)."""
        with self._tx() as conn:
            changed = conn.execute(
                "UPDATE outbox SET state = 'pending', send_at = ?, updated_at = ? WHERE "
                f"id = ? AND owner_id = ? AND state = '{HELD}'",
                (now, now, item_id, owner_id)).rowcount
        return self.item(item_id) if changed else None

    def cancel(self, item_id: str, owner_id: str, note: str | None = None) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(
                "UPDATE outbox SET state = 'cancelled', note = ?, updated_at = ? WHERE "
                f"id = ? AND owner_id = ? AND state IN ('pending', '{HELD}')",
                (note, time.time(), item_id, owner_id)).rowcount)

    def due(self, owner_id: str, now: float) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM outbox WHERE owner_id = ? AND state = 'pending' AND "
                         "send_at <= ? ORDER BY send_at, created_at", (owner_id, now))

    def next_due(self, owner_id: str) -> float | None:
        row = self._one("SELECT MIN(send_at) AS at FROM outbox WHERE owner_id = ? AND "
                        "state = 'pending'", (owner_id,))
        return None if row is None or row["at"] is None else float(row["at"])

    def claim(self, item_id: str, now: float) -> bool:
        """Take a due pending item for sending; True for exactly one caller. Its
        ``claim_mark`` is :data:`UNMARKED` until the dispatcher has noted how its send is
        recognised on the server (see ``outbox.py``)."""
        with self._tx() as conn:
            return bool(conn.execute(
                "UPDATE outbox SET state = 'sending', claimed_at = ?, claim_mark = ?, "
                "attempts = attempts + 1, updated_at = ? "
                "WHERE id = ? AND state = 'pending' AND send_at <= ?",
                (now, UNMARKED, now, item_id, now)).rowcount)

    def set_mark(self, item_id: str, mark: str,
                 version: tuple[str, str] | None = None) -> None:
        """Note how the claimed send is recognised, and (``version``: its content and
        message type) which text is about to leave: written before the send, so that a
        text that may have gone out is never forgotten, whatever the item becomes."""
        with self._tx() as conn:
            row = conn.execute("SELECT tried FROM outbox WHERE id = ? AND state = 'sending'",
                               (item_id,)).fetchone()
            if row is None:
                return
            tried = [list(v) for v in json.loads(row["tried"] or "[]")]
            if version is not None and list(version) not in tried:
                tried.append(list(version))
            conn.execute("UPDATE outbox SET claim_mark = ?, tried = ? WHERE id = ?",
                         (mark, json.dumps(tried) if tried else None, item_id))

    def settle_earlier(self, item_id: str, states: tuple[str, ...],
                       delivered: dict[str, Any], note: str | None,
                       edit: tuple[str, str] | None, edit_note: str
                       ) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """An earlier text of the item went out (``delivered``: the server's message, its
        ``message_id``, ``content``, ``message_type``, ``at``, ``deleted``): the item
        becomes ``sent`` with that text, what the recipient got, and ``edit`` (a later text
        that did not go out), when it differs, is kept as a new *held* item with an id,
        and so a key, of its own: never lost, never sent without the user. In one
        transaction; None when the item is no longer in ``states``."""
        stamp = time.time()
        held_id: str | None = None
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT * FROM outbox WHERE id = ? AND state IN ({', '.join('?' * len(states))})",
                (item_id, *states)).fetchone()
            if row is None:
                return None
            # Unknown (deleted, and sent by a version that kept no record of its texts):
            # no text rather than one the recipient did not get; the note says so.
            content = delivered["content"] if delivered["content"] is not None else ""
            message_type = delivered["message_type"] or row["message_type"]
            conn.execute(
                "UPDATE outbox SET state = 'sent', content = ?, message_type = ?, "
                "message_id = ?, sent_at = ?, error = NULL, note = ?, updated_at = ? "
                "WHERE id = ?",
                (content, message_type, delivered["message_id"], delivered["at"] or stamp,
                 note, stamp, item_id))
            if edit is not None and (delivered["content"] is None
                                     or tuple(edit) != (content, message_type)):
                held_id = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO outbox (id, owner_id, recipient_id, content, message_type, "
                    "reply_to, kind, send_at, state, created_at, updated_at, edit_of, "
                    "delivered, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (held_id, row["owner_id"], row["recipient_id"], edit[0], edit[1],
                     row["reply_to"], row["kind"], stamp, HELD, stamp, stamp, item_id,
                     json.dumps(delivered), edit_note))
        settled = self.item(item_id)
        assert settled is not None
        return settled, self.item(held_id) if held_id else None

    def mark_sent(self, item_id: str, message_id: str, at: float) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE outbox SET state = 'sent', message_id = ?, sent_at = ?, "
                         "error = NULL, updated_at = ? WHERE id = ? AND state = 'sending'",
                         (message_id, at, at, item_id))

    def mark_failed(self, item_id: str, error: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE outbox SET state = 'failed', error = ?, updated_at = ? "
                         "WHERE id = ? AND state = 'sending'", (error, time.time(), item_id))

    def release(self, item_id: str, retry_at: float, error: str) -> None:
        """Back to pending (the send did not happen): tried again at ``retry_at``."""
        with self._tx() as conn:
            conn.execute("UPDATE outbox SET state = 'pending', send_at = ?, error = ?, "
                         "updated_at = ? WHERE id = ? AND state = 'sending'",
                         (retry_at, error, time.time(), item_id))

    def sending(self, owner_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM outbox WHERE owner_id = ? AND state = 'sending'",
                         (owner_id,))

    def retry(self, item_id: str, owner_id: str, now: float) -> dict[str, Any] | None:
        """A failed item queued again (the user fixed what was wrong, or it was transient)."""
        with self._tx() as conn:
            changed = conn.execute(
                "UPDATE outbox SET state = 'pending', send_at = ?, error = NULL, updated_at = ? "
                "WHERE id = ? AND owner_id = ? AND state = 'failed'",
                (now, now, item_id, owner_id)).rowcount
        return self.item(item_id) if changed else None

    def scheduled_counts(self, owner_id: str) -> dict[str, int]:
        return {r["recipient_id"]: r["n"] for r in self._all(
            "SELECT recipient_id, COUNT(*) AS n FROM outbox WHERE owner_id = ? AND "
            "state = 'pending' AND kind = 'scheduled' GROUP BY recipient_id", (owner_id,))}

    # -- drafts --------------------------------------------------------------------------
    def save_draft(self, owner_id: str, recipient_id: str, content: str, message_type: str,
                   reply_to: str | None) -> dict[str, Any]:
        stamp = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO drafts (owner_id, recipient_id, content, message_type, reply_to, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner_id, recipient_id) "
                "DO UPDATE SET content = excluded.content, message_type = excluded.message_type, "
                "reply_to = excluded.reply_to, updated_at = excluded.updated_at",
                (owner_id, recipient_id, content, message_type, reply_to, stamp))
        draft = self.draft(owner_id, recipient_id)
        assert draft is not None
        return draft

    def draft(self, owner_id: str, recipient_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM drafts WHERE owner_id = ? AND recipient_id = ?",
                         (owner_id, recipient_id))

    def drafts(self, owner_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM drafts WHERE owner_id = ? ORDER BY updated_at DESC",
                         (owner_id,))

    def delete_draft(self, owner_id: str, recipient_id: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute("DELETE FROM drafts WHERE owner_id = ? AND "
                                     "recipient_id = ?", (owner_id, recipient_id)).rowcount)

    # -- templates -----------------------------------------------------------------------
    def templates(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM templates ORDER BY uses DESC, name COLLATE NOCASE")

    def template(self, template_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM templates WHERE id = ?", (template_id,))

    def template_named(self, name: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM templates WHERE name = ?", (name,))

    def save_template(self, template_id: str | None, name: str, body: str, message_type: str,
                      description: str) -> dict[str, Any]:
        stamp = time.time()
        with self._tx() as conn:
            if template_id is None:
                template_id = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO templates (id, name, body, message_type, description, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (template_id, name, body, message_type, description, stamp, stamp))
            else:
                conn.execute(
                    "UPDATE templates SET name = ?, body = ?, message_type = ?, "
                    "description = ?, updated_at = ? WHERE id = ?",
                    (name, body, message_type, description, stamp, template_id))
        saved = self.template(template_id)
        assert saved is not None
        return saved

    def used_template(self, template_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE templates SET uses = uses + 1 WHERE id = ?", (template_id,))

    def delete_template(self, template_id: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute("DELETE FROM templates WHERE id = ?",
                                     (template_id,)).rowcount)

    # -- away and the auto-responder -----------------------------------------------------
    def away(self, owner_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT settings FROM away WHERE owner_id = ?", (owner_id,))
        return None if row is None else dict(json.loads(row["settings"]))

    def save_away(self, owner_id: str, settings: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO away (owner_id, settings) VALUES (?, ?) ON CONFLICT "
                         "(owner_id) DO UPDATE SET settings = excluded.settings",
                         (owner_id, json.dumps(settings)))

    def decide(self, owner_id: str, message_id: str, partner_id: str, decision: str,
               reason: str, at: float) -> bool:
        """Record the first decision about a received message; False when one exists (the
        same message seen twice, e.g. after a reconnect, is never answered twice)."""
        with self._tx() as conn:
            return bool(conn.execute(
                "INSERT OR IGNORE INTO decisions (owner_id, message_id, partner_id, decision, "
                "reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                (owner_id, message_id, partner_id, decision, reason, at)).rowcount)

    def claim_reply(self, owner_id: str, message_id: str, partner_id: str, since: float,
                    at: float) -> bool:
        """In one transaction: no auto-reply to ``partner_id`` since ``since`` and no
        decision about ``message_id`` yet -> record 'replying' and return True."""
        with self._tx() as conn:
            recent = conn.execute(
                "SELECT 1 FROM decisions WHERE owner_id = ? AND partner_id = ? AND decision IN "
                "('replying', 'replied') AND at >= ? LIMIT 1",
                (owner_id, partner_id, since)).fetchone()
            if recent is not None:
                return False
            return bool(conn.execute(
                "INSERT OR IGNORE INTO decisions (owner_id, message_id, partner_id, decision, "
                "reason, at) VALUES (?, ?, ?, 'replying', 'away', ?)",
                (owner_id, message_id, partner_id, at)).rowcount)

    def finish_reply(self, owner_id: str, message_id: str, decision: str, reason: str,
                     reply_id: str | None) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE decisions SET decision = ?, reason = ?, reply_id = ? WHERE "
                         "owner_id = ? AND message_id = ?",
                         (decision, reason, reply_id, owner_id, message_id))

    def decision(self, owner_id: str, message_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM decisions WHERE owner_id = ? AND message_id = ?",
                         (owner_id, message_id))

    def decisions(self, owner_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM decisions WHERE owner_id = ? ORDER BY at DESC "
                         "LIMIT ?", (owner_id, limit))

    def replies_since(self, owner_id: str, since: float) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM decisions WHERE owner_id = ? AND decision "
                        "IN ('replying', 'replied') AND at >= ?", (owner_id, since))
        return int(row["n"]) if row else 0
