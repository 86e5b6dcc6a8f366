"""The local inspector: a loopback HTTP receiver owned by the plugin that captures every
request to its inboxes and checks signature and timestamp window on arrival.

Each inbox has an unguessable path ``/in/<token>``; anything else is 404. The receiver
listens on 127.0.0.1 only, on its own port (plugin routes need the app's token, which a
webhook sender does not have). Bodies over ``max_body`` bytes are refused with 413 before
they are read whole, and each inbox takes at most ``rate_per_minute`` requests a minute
(429 after that). Inboxes and their last captures live in SQLite in the plugin's data dir
(mode 0600: inboxes hold the secrets they verify with); no secret is ever logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11

from plexichat_desktop.plugins.api import PluginProblem
from webhook_manager.verify import Check, Verdict, signed_content, verify

HEAD_LIMIT = 16_384
READ_TIMEOUT = 10.0
INBOX_PREFIX = "/in/"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS inboxes (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, token TEXT NOT NULL UNIQUE,
        secrets TEXT NOT NULL DEFAULT '[]', tolerance INTEGER NOT NULL DEFAULT 300,
        respond_status INTEGER NOT NULL DEFAULT 200, webhook_id TEXT,
        forward_url TEXT, forward_template TEXT, created_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS captures (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        inbox_id TEXT NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
        at REAL NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, headers TEXT NOT NULL,
        body BLOB NOT NULL, size INTEGER NOT NULL, verdict TEXT NOT NULL,
        response_status INTEGER NOT NULL, forward TEXT)""",
    "CREATE INDEX IF NOT EXISTS captures_inbox ON captures(inbox_id, seq)",
)


# The columns of a capture in a list (all but its body).
_LISTED = ("seq, id, inbox_id, at, method, path, headers, size, verdict, response_status, "
           "forward")


class InspectorProblem(PluginProblem, ValueError):
    """Bad input for an inbox; names the field. ``status`` is the HTTP answer to give."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(status, field, message)


def _body_view(body: bytes) -> tuple[str, str]:
    """The body for JSON: text when it is UTF-8, else hex; and which it is."""
    try:
        return body.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return body.hex(), "hex"


class InspectorStore:
    """Inboxes and captures in one SQLite file; thread-safe, small and quick calls."""

    def __init__(self, path: Path, keep: int = 500):
        self.path = path
        self.keep = keep
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False,
                                     isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        if fresh:
            os.chmod(path, 0o600)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, args).fetchall()]

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        found = self._all(sql, args)
        return found[0] if found else None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, args).rowcount

    # -- inboxes ---------------------------------------------------------------------
    def create_inbox(self, name: str, *, secret: str | None, tolerance: int,
                     respond_status: int) -> dict[str, Any]:
        inbox_id = str(uuid.uuid4())
        stored = [{"secret": secret, "expires_at": None}] if secret else []
        self._run("INSERT INTO inboxes (id, name, token, secrets, tolerance, respond_status, "
                  "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (inbox_id, name, secrets.token_urlsafe(18), json.dumps(stored), tolerance,
                   respond_status, time.time()))
        inbox = self.inbox(inbox_id)
        assert inbox is not None
        return inbox

    def inbox(self, inbox_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM inboxes WHERE id = ?", (inbox_id,))

    def inbox_by_token(self, token: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM inboxes WHERE token = ?", (token,))

    def inboxes(self) -> list[dict[str, Any]]:
        return self._all("SELECT i.*, (SELECT COUNT(*) FROM captures c WHERE c.inbox_id = "
                         "i.id) AS captures FROM inboxes i ORDER BY i.created_at")

    def update_inbox(self, inbox_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        allowed = {"name", "tolerance", "respond_status", "webhook_id", "forward_url",
                   "forward_template", "secrets"}
        changes = {k: v for k, v in changes.items() if k in allowed}
        if "secrets" in changes:
            changes["secrets"] = json.dumps(changes["secrets"])
        if changes:
            columns = ", ".join(f"{k} = ?" for k in changes)
            self._run(f"UPDATE inboxes SET {columns} WHERE id = ?",
                      (*changes.values(), inbox_id))
        return self.inbox(inbox_id)

    def set_secret(self, inbox_id: str, secret: str, grace_until: float | None = None) -> None:
        """Verify with ``secret`` from now on; the one before stays valid until
        ``grace_until`` (a rotation's grace), else it is dropped."""
        inbox = self.inbox(inbox_id)
        if inbox is None:
            return
        stored: list[dict[str, Any]] = [{"secret": secret, "expires_at": None}]
        old = [s for s in json.loads(inbox["secrets"]) if s["secret"] != secret][:1]
        if old and grace_until and grace_until > time.time():
            stored.append({"secret": old[0]["secret"], "expires_at": grace_until})
        self.update_inbox(inbox_id, {"secrets": stored})

    def delete_inbox(self, inbox_id: str) -> bool:
        return self._run("DELETE FROM inboxes WHERE id = ?", (inbox_id,)) > 0

    # -- captures --------------------------------------------------------------------
    def add_capture(self, capture: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO captures (id, inbox_id, at, method, path, headers, body, "
                    "size, verdict, response_status, forward) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (capture["id"], capture["inbox_id"], capture["at"], capture["method"],
                     capture["path"], json.dumps(capture["headers"]), capture["body"],
                     capture["size"], json.dumps(capture["verdict"]),
                     capture["response_status"], None))
                # Keep the newest ``keep`` of the inbox.
                self._conn.execute(
                    "DELETE FROM captures WHERE inbox_id = ? AND seq <= (SELECT seq FROM "
                    "captures WHERE inbox_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (capture["inbox_id"], capture["inbox_id"], self.keep))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def recent_verified(self, since: float) -> list[tuple[str, str, float]]:
        """``(inbox_id, signed content, at)`` of the verified captures since ``since``
        that the inbox accepted (answered 2xx), oldest first: what the replay memory is
        rebuilt from at start (see :func:`~webhook_manager.verify.signed_content`)."""
        found = []
        for row in self._all("SELECT inbox_id, at, headers, body, verdict FROM captures "
                             "WHERE at >= ? AND response_status BETWEEN 200 AND 299 "
                             "ORDER BY at", (since,)):
            signed = signed_content(json.loads(row["headers"]), bytes(row["body"] or b""))
            if signed and json.loads(row["verdict"]).get("ok"):
                found.append((row["inbox_id"], signed, row["at"]))
        return found

    def set_forward(self, capture_id: str, forward: dict[str, Any]) -> None:
        self._run("UPDATE captures SET forward = ? WHERE id = ?",
                  (json.dumps(forward), capture_id))

    def captures(self, inbox_id: str, limit: int = 100, verdict: str | None = None
                 ) -> list[dict[str, Any]]:
        # The list never reads the bodies (up to max_body each, captures_kept of them),
        # and the verdict is filtered in SQL, not by loading every capture first.
        where, args = "inbox_id = ?", [inbox_id]
        if verdict is not None:
            where += " AND json_extract(verdict, '$.ok') = ?"
            args.append(1 if verdict == "pass" else 0)
        rows = self._all(f"SELECT {_LISTED} FROM captures WHERE {where} ORDER BY seq DESC "
                         "LIMIT ?", (*args, limit))
        return [capture_dict(r) for r in rows]

    def capture(self, capture_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM captures WHERE id = ?", (capture_id,))
        return None if row is None else capture_dict(row, full=True)

    def clear(self, inbox_id: str) -> int:
        return self._run("DELETE FROM captures WHERE inbox_id = ?", (inbox_id,))


# Seconds a verified signature is remembered: twice the longest window an inbox may have.
SEEN_FOR = 2 * 86_400


def capture_dict(row: dict[str, Any], full: bool = False) -> dict[str, Any]:
    """A capture as the page shows it; ``full`` adds the body."""
    headers = json.loads(row["headers"]) if isinstance(row["headers"], str) else row["headers"]
    out = {"id": row["id"], "inbox_id": row["inbox_id"], "at": row["at"],
           "method": row["method"], "path": row["path"], "headers": headers,
           "size": row["size"], "response_status": row["response_status"],
           "verdict": (json.loads(row["verdict"]) if isinstance(row["verdict"], str)
                       else row["verdict"]),
           "forward": json.loads(row["forward"]) if row.get("forward") else None}
    lower = {k.lower(): v for k, v in headers.items()}
    out["event"] = lower.get("x-plexichat-event")
    out["delivery_id"] = lower.get("x-plexichat-delivery")
    if full:
        out["body"], out["body_encoding"] = _body_view(bytes(row["body"]))
    return out


def inbox_dict(row: dict[str, Any], base_url: str | None) -> dict[str, Any]:
    """An inbox for the page: its URL, never its secrets (a hint and a count only)."""
    stored = json.loads(row["secrets"])
    now = time.time()
    live = [s for s in stored if not s["expires_at"] or s["expires_at"] > now]
    return {
        "id": row["id"], "name": row["name"],
        "url": f"{base_url}{INBOX_PREFIX}{row['token']}" if base_url else None,
        "has_secret": bool(live), "secret_hint": _hint(live[0]["secret"]) if live else None,
        "secrets_in_force": len(live),
        "previous_expires_at": next((s["expires_at"] for s in live if s["expires_at"]), None),
        "tolerance": row["tolerance"], "respond_status": row["respond_status"],
        "webhook_id": row["webhook_id"], "forward_url": row["forward_url"],
        "forward_template": row["forward_template"], "created_at": row["created_at"],
        "captures": row.get("captures"),
    }


def _hint(secret: str) -> str:
    """The first characters of a secret, only when they are a small part of it: a
    secret typed by hand may be short, and "abcd…" of "abcd" is the whole secret."""
    return secret[:4] + "…" if len(secret) >= 16 else "…"


def live_secrets(row: dict[str, Any], at: float) -> list[str]:
    """The secrets an inbox verifies with now, current first."""
    return [s["secret"] for s in json.loads(row["secrets"])
            if not s["expires_at"] or s["expires_at"] > at]


@dataclass
class Limits:
    max_body: int = 1 << 20
    rate_per_minute: int = 600


CaptureHook = Callable[[dict[str, Any], dict[str, Any], bytes], Awaitable[None] | None]


class Inspector:
    """The loopback receiver. :meth:`start` binds 127.0.0.1 (``port`` 0: any free one)."""

    def __init__(self, store: InspectorStore, limits: Limits, on_capture: CaptureHook,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.limits = limits
        self.on_capture = on_capture
        self.clock = clock
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._hits: dict[str, collections.deque[float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Signatures verified lately, per inbox: the replay memory (see _unless_replayed).
        self._seen: dict[tuple[str, str], float] = {}
        self._seen_order: collections.deque[tuple[float, tuple[str, str]]] = (
            collections.deque())

    @property
    def base_url(self) -> str | None:
        return None if self.port is None else f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> int:
        """Listen on ``port``, or a free one when it is 0 or taken; returns the port."""
        try:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        except OSError:
            if port == 0:
                raise
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def _unless_replayed(self, inbox: dict[str, Any], headers: dict[str, str], body: bytes,
                         verdict: Verdict, at: float) -> Verdict:
        """A genuine delivery received again, byte for byte, inside the timestamp window
        passed as verified. The signature covers the timestamp and the body only, so the
        delivery id and attempt headers are the sender's word, not proof: a signature the
        inbox verified and accepted within twice its window is not verified again. Only
        what the inbox accepted (its answer 2xx) is remembered: a sender retries what was
        refused, and a retry signed within the same second as the refused attempt carries
        the very same signature (it was flagged as a replay).

        Synchronous, so the check and the note of the signature are one step on the event
        loop (two copies arriving together cannot both pass), and kept apart from the
        capture list, which a flood of junk requests trims (the original must not be
        pushed out of the memory that way)."""
        signed = signed_content(headers, body)
        if signed is None:
            return verdict
        self._forget_seen(at)
        key = (inbox["id"], signed)
        earlier = self._seen.get(key)
        if earlier is None or at - earlier > 2 * inbox["tolerance"]:
            if 200 <= inbox["respond_status"] <= 299:
                self._note_seen(key, at)
            return verdict
        detail = (f"the same signed request (timestamp and body) was received and "
                  f"accepted {at - earlier:.0f} s ago: a replay")
        return Verdict(False, f"replay: {detail}",
                       [*verdict.checks, Check("replay", False, detail)],
                       verdict.matched, verdict.age_seconds)

    def _forget_seen(self, now: float) -> None:
        while self._seen_order and self._seen_order[0][0] < now - SEEN_FOR:
            at, key = self._seen_order.popleft()
            if self._seen.get(key) == at:
                del self._seen[key]

    def remember_verified(self, found: list[tuple[str, str, float]]) -> None:
        """Rebuild the replay memory (at start) from ``store.recent_verified``."""
        for inbox_id, signed, at in found:
            self._note_seen((inbox_id, signed), at)

    def _note_seen(self, key: tuple[str, str], at: float) -> None:
        self._seen[key] = at
        self._seen_order.append((at, key))

    def _allow(self, inbox_id: str) -> bool:
        window = self._hits.setdefault(inbox_id, collections.deque())
        now = time.monotonic()
        while window and window[0] < now - 60:
            window.popleft()
        if len(window) >= self.limits.rate_per_minute:
            return False
        window.append(now)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        try:
            while True:
                keep = await self._one_request(conn, reader, writer)
                if not keep or conn.our_state is not h11.DONE:
                    break
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    break
        except (ConnectionError, TimeoutError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await asyncio.wait_for(reader.read(65_536), READ_TIMEOUT)
            conn.receive_data(data)

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                    payload: dict[str, Any], close: bool = False) -> None:
        body = json.dumps(payload).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        if close:
            headers.append(("connection", "close"))
        if status == 429:
            headers.append(("retry-after", "60"))
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        writer.write(conn.send(h11.Data(data=body)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    async def _one_request(self, conn: h11.Connection, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> bool:
        try:
            request = await self._next(conn, reader)
        except h11.RemoteProtocolError:
            with contextlib.suppress(Exception):
                await self._send(conn, writer, 400, {"error": "malformed request"}, close=True)
            return False
        if not isinstance(request, h11.Request):
            return False
        path = request.target.decode("latin-1")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers}
        token = path.split("?", 1)[0][len(INBOX_PREFIX):] if path.startswith(INBOX_PREFIX) \
            else ""
        inbox = await asyncio.to_thread(self.store.inbox_by_token, token) if token else None
        if inbox is None:
            await self._send(conn, writer, 404, {"error": "no such inbox"}, close=True)
            return False
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body:
            await self._send(conn, writer, 413, {
                "error": f"body of {length} bytes; the inspector takes at most "
                         f"{self.limits.max_body}"}, close=True)
            return False
        if not self._allow(inbox["id"]):
            await self._send(conn, writer, 429, {"error": "too many requests for this inbox; "
                                                          "try again in a minute"}, close=True)
            return False
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next(conn, reader)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.limits.max_body:  # chunked bodies announce no length
                    await self._send(conn, writer, 413, {
                        "error": f"body over {self.limits.max_body} bytes"}, close=True)
                    return False
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return False
        body = b"".join(chunks)
        at = self.clock()
        verdict = verify(headers, body, live_secrets(inbox, at), now=at,
                         tolerance=inbox["tolerance"])
        if verdict.ok:
            verdict = self._unless_replayed(inbox, headers, body, verdict, at)
        capture = {"id": str(uuid.uuid4()), "inbox_id": inbox["id"], "at": at,
                   "method": request.method.decode("latin-1"), "path": path,
                   "headers": headers, "body": body, "size": len(body),
                   "verdict": verdict.to_dict(), "response_status": inbox["respond_status"]}
        await asyncio.to_thread(self.store.add_capture, capture)
        await self._send(conn, writer, inbox["respond_status"], {
            "received": capture["id"], "verified": verdict.ok, "reason": verdict.reason})
        result = self.on_capture(inbox, capture, body)
        if asyncio.iscoroutine(result):
            await result
        return True
