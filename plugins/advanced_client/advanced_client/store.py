"""The plugin's own SQLite file: chats and their messages, presets, the library of
documents for context, and timings for the activity panel.

Chats are kept here (not on the v1 server): the assistant works offline and a person's
questions to a model are theirs. Each call opens its own short transaction; the
connection is used from one worker thread at a time (``asyncio.to_thread`` under a lock).
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
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS chats (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, model TEXT, preset TEXT,
    system_prompt TEXT NOT NULL DEFAULT '', temperature REAL,
    use_retrieval INTEGER NOT NULL DEFAULT 0, context_budget INTEGER NOT NULL DEFAULT 1500,
    attachments TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_messages (
    id TEXT PRIMARY KEY, chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, model TEXT,
    status TEXT NOT NULL DEFAULT 'done', error TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, usage_estimated INTEGER,
    latency_ms REAL, first_token_ms REAL, context TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_messages_chat ON chat_messages(chat_id, seq);
CREATE TABLE IF NOT EXISTS presets (
    name TEXT PRIMARY KEY, system_prompt TEXT NOT NULL, temperature REAL, model TEXT,
    builtin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS library (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    size INTEGER NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS timings (
    at REAL NOT NULL, kind TEXT NOT NULL, ms REAL NOT NULL
);
"""

BUILTIN_PRESETS = [
    ("General", "You are a helpful assistant. Answer in Markdown.", 0.7),
    ("Concise", "Answer in at most three sentences. No preamble.", 0.3),
    ("Code reviewer", "You review code. Point out bugs first, then risks, then style; "
                      "quote the lines you mean in fenced code blocks.", 0.2),
    ("Writing coach", "Improve the user's text: keep its meaning and voice, fix grammar "
                      "and clarity, and list the changes you made.", 0.5),
]
TIMINGS_KEPT = 2000


class NotFound(LookupError):
    def __init__(self, what: str, ident: str):
        super().__init__(f"{what} {ident!r} does not exist")
        self.what = what


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(SCHEMA)
            for name, prompt, temperature in BUILTIN_PRESETS:
                self._conn.execute(
                    "INSERT OR IGNORE INTO presets (name, system_prompt, temperature, builtin)"
                    " VALUES (?, ?, ?, 1)", (name, prompt, temperature))

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

    # -- chats -----------------------------------------------------------------------------
    @staticmethod
    def _chat(row: sqlite3.Row) -> dict[str, Any]:
        chat = dict(row)
        chat["use_retrieval"] = bool(chat["use_retrieval"])
        chat["attachments"] = json.loads(chat["attachments"])
        return chat

    def create_chat(self, title: str, model: str | None, preset: str | None,
                    system_prompt: str, temperature: float | None) -> dict[str, Any]:
        chat_id, stamp = uuid.uuid4().hex[:12], time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO chats (id, title, model, preset, system_prompt, temperature, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (chat_id, title, model, preset, system_prompt, temperature, stamp, stamp))
        return self.chat(chat_id)

    def chat(self, chat_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute("SELECT * FROM chats WHERE id = ?", (chat_id,)).fetchone()
        if row is None:
            raise NotFound("chat", chat_id)
        return self._chat(row)

    def chats(self, query: str = "", limit: int = 200) -> list[dict[str, Any]]:
        sql = ("SELECT c.*, (SELECT COUNT(*) FROM chat_messages m WHERE m.chat_id = c.id) "
               "AS message_count FROM chats c")
        args: list[Any] = []
        if query:
            # Title or any message: the history is searchable as Open WebUI's is.
            sql += (" WHERE c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM "
                    "chat_messages m WHERE m.chat_id = c.id AND m.content LIKE ? ESCAPE '\\')")
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") \
                + "%"
            args += [like, like]
        sql += " ORDER BY c.updated_at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            found = self._conn.execute(sql, args).fetchall()
        return [self._chat(r) for r in found]

    def update_chat(self, chat_id: str, **fields: Any) -> dict[str, Any]:
        allowed = {"title", "model", "preset", "system_prompt", "temperature",
                   "use_retrieval", "context_budget", "attachments"}
        values = {k: v for k, v in fields.items() if k in allowed}
        if "attachments" in values:
            values["attachments"] = json.dumps(values["attachments"])
        if "use_retrieval" in values:
            values["use_retrieval"] = int(bool(values["use_retrieval"]))
        self.chat(chat_id)
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            with self._tx() as conn:
                conn.execute(f"UPDATE chats SET {sets}, updated_at = ? WHERE id = ?",
                             [*values.values(), time.time(), chat_id])
        return self.chat(chat_id)

    def delete_chat(self, chat_id: str) -> None:
        self.chat(chat_id)
        with self._tx() as conn:
            conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    # -- messages --------------------------------------------------------------------------
    @staticmethod
    def _message(row: sqlite3.Row) -> dict[str, Any]:
        message = dict(row)
        message["context"] = json.loads(message["context"])
        if message["usage_estimated"] is not None:
            message["usage_estimated"] = bool(message["usage_estimated"])
        return message

    def add_message(self, chat_id: str, role: str, content: str, *, model: str | None = None,
                    status: str = "done") -> dict[str, Any]:
        message_id, stamp = uuid.uuid4().hex[:12], time.time()
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM chats WHERE id = ?", (chat_id,)).fetchone() is None:
                raise NotFound("chat", chat_id)
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM chat_messages WHERE "
                               "chat_id = ?", (chat_id,)).fetchone()[0]
            conn.execute(
                "INSERT INTO chat_messages (id, chat_id, seq, role, content, model, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, chat_id, seq, role, content, model, status, stamp))
            conn.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (stamp, chat_id))
        return self.message(message_id)

    def finish_message(self, message_id: str, *, content: str, status: str,
                       error: str | None = None, prompt_tokens: int | None = None,
                       completion_tokens: int | None = None,
                       usage_estimated: bool | None = None, latency_ms: float | None = None,
                       first_token_ms: float | None = None,
                       context: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        with self._tx() as conn:
            conn.execute(
                "UPDATE chat_messages SET content = ?, status = ?, error = ?, "
                "prompt_tokens = ?, completion_tokens = ?, usage_estimated = ?, "
                "latency_ms = ?, first_token_ms = ?, context = ? WHERE id = ?",
                (content, status, error, prompt_tokens, completion_tokens,
                 None if usage_estimated is None else int(usage_estimated), latency_ms,
                 first_token_ms, json.dumps(context or []), message_id))
        return self.message(message_id)

    def message(self, message_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute("SELECT * FROM chat_messages WHERE id = ?",
                                     (message_id,)).fetchone()
        if row is None:
            raise NotFound("message", message_id)
        return self._message(row)

    def messages(self, chat_id: str) -> list[dict[str, Any]]:
        self.chat(chat_id)
        with self._lock:
            found = self._conn.execute("SELECT * FROM chat_messages WHERE chat_id = ? ORDER BY "
                                       "seq", (chat_id,)).fetchall()
        return [self._message(r) for r in found]

    def delete_messages_from(self, chat_id: str, seq: int) -> None:
        """Drop the messages from ``seq`` on (regenerating an answer replaces it)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM chat_messages WHERE chat_id = ? AND seq >= ?",
                         (chat_id, seq))

    def all_chat_messages(self, limit: int = 5000) -> list[dict[str, Any]]:
        """Finished messages of every chat, newest first (for retrieval)."""
        with self._lock:
            found = self._conn.execute(
                "SELECT m.*, c.title AS chat_title FROM chat_messages m JOIN chats c ON "
                "c.id = m.chat_id WHERE m.status IN ('done', 'cut') AND m.content != '' ORDER BY "
                "m.created_at DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in found]

    # -- presets ---------------------------------------------------------------------------
    def presets(self) -> list[dict[str, Any]]:
        with self._lock:
            found = self._conn.execute("SELECT * FROM presets ORDER BY builtin DESC, name"
                                       ).fetchall()
        return [{**dict(r), "builtin": bool(r["builtin"])} for r in found]

    def preset(self, name: str) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute("SELECT * FROM presets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound("preset", name)
        return {**dict(row), "builtin": bool(row["builtin"])}

    def save_preset(self, name: str, system_prompt: str, temperature: float | None,
                    model: str | None) -> dict[str, Any]:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO presets (name, system_prompt, temperature, model, builtin) "
                "VALUES (?, ?, ?, ?, 0) ON CONFLICT(name) DO UPDATE SET system_prompt = "
                "excluded.system_prompt, temperature = excluded.temperature, model = "
                "excluded.model", (name, system_prompt, temperature, model))
        return self.preset(name)

    def delete_preset(self, name: str) -> None:
        self.preset(name)
        with self._tx() as conn:
            conn.execute("DELETE FROM presets WHERE name = ?", (name,))

    # -- library ---------------------------------------------------------------------------
    def add_document(self, name: str, kind: str, text: str, size: int) -> dict[str, Any]:
        doc_id = uuid.uuid4().hex[:12]
        with self._tx() as conn:
            conn.execute("INSERT INTO library (id, name, kind, text, size, created_at) VALUES "
                         "(?, ?, ?, ?, ?, ?)", (doc_id, name, kind, text, size, time.time()))
        return self.document(doc_id)

    def document(self, doc_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute("SELECT * FROM library WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise NotFound("document", doc_id)
        return dict(row)

    def documents(self) -> list[dict[str, Any]]:
        with self._lock:
            found = self._conn.execute("SELECT * FROM library ORDER BY created_at DESC"
                                       ).fetchall()
        return [dict(r) for r in found]

    def delete_document(self, doc_id: str) -> None:
        self.document(doc_id)
        with self._tx() as conn:
            conn.execute("DELETE FROM library WHERE id = ?", (doc_id,))

    # -- timings (activity panel) ----------------------------------------------------------
    def add_timing(self, kind: str, ms: float) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO timings (at, kind, ms) VALUES (?, ?, ?)",
                         (time.time(), kind, ms))
            conn.execute("DELETE FROM timings WHERE rowid IN (SELECT rowid FROM timings "
                         "ORDER BY at DESC LIMIT -1 OFFSET ?)", (TIMINGS_KEPT,))

    def timings(self) -> dict[str, list[float]]:
        with self._lock:
            found = self._conn.execute("SELECT kind, ms FROM timings ORDER BY at").fetchall()
        out: dict[str, list[float]] = {}
        for row in found:
            out.setdefault(row["kind"], []).append(float(row["ms"]))
        return out

    def usage_totals(self) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) AS answers, COALESCE(SUM(prompt_tokens), 0) AS prompt, "
                "COALESCE(SUM(completion_tokens), 0) AS completion, "
                "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors, "
                "SUM(CASE WHEN status = 'stopped' THEN 1 ELSE 0 END) AS stopped "
                "FROM chat_messages WHERE role = 'assistant'").fetchone()
            chats = self._conn.execute("SELECT COUNT(*) FROM chats").fetchone()[0]
        return {"chats": chats, "answers": row["answers"], "prompt_tokens": row["prompt"],
                "completion_tokens": row["completion"], "errors": row["errors"] or 0,
                "stopped": row["stopped"] or 0}
