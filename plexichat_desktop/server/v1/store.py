"""The v1 API's SQLite store: schema, migrations and the transaction helpers.

Same approach as :mod:`plexichat_desktop.testing.store`: stdlib ``sqlite3``, one file in WAL
mode, one connection shared by every thread and serialised by a lock, explicit
``BEGIN IMMEDIATE`` write transactions and ``PRAGMA user_version`` migrations. Each router
keeps its SQL next to its logic as small functions ``fn(conn, ...)``; the store runs them
inside one transaction, off the event loop with :meth:`ApiStore.read` / :meth:`ApiStore.write`.

Timestamps are UNIX seconds (REAL, UTC); ids are UUID4 strings. Tables that are listed in
insertion order also have an integer ``seq`` so that ties in time never reorder a page.
"""

from __future__ import annotations

import asyncio
import sqlite3
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from plexichat_desktop.core.sqlite import SchemaVersionError, SqliteDatabase

__all__ = ["SCHEMA_VERSION", "ApiStore", "SchemaVersionError", "inspect_database"]


T = TypeVar("T")


_SCHEMA_1 = (
    """
    CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
        email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        display_name  TEXT,
        first_name    TEXT,
        last_name     TEXT,
        is_active     INTEGER NOT NULL DEFAULT 1,
        is_admin      INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        last_login    REAL
    ) WITHOUT ROWID
    """,
    # Only digests of tokens are stored: a copy of the database never yields usable tokens.
    # prev_refresh_hash remembers the refresh token that was rotated out, so its reuse (a
    # sign that it was stolen) can revoke the whole session.
    """
    CREATE TABLE sessions (
        id                TEXT PRIMARY KEY,
        user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        access_hash       TEXT NOT NULL UNIQUE,
        access_expires    REAL NOT NULL,
        refresh_hash      TEXT NOT NULL UNIQUE,
        refresh_expires   REAL NOT NULL,
        prev_refresh_hash TEXT,
        remember_me       INTEGER NOT NULL DEFAULT 0,
        device            TEXT NOT NULL DEFAULT '{}',
        created_at        REAL NOT NULL,
        last_used_at      REAL NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX sessions_user ON sessions(user_id)",
    "CREATE INDEX sessions_prev_refresh ON sessions(prev_refresh_hash)",
    """
    CREATE TABLE activity (
        seq        INTEGER PRIMARY KEY,
        user_id    TEXT,
        kind       TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX activity_time ON activity(created_at, kind)",
    """
    CREATE TABLE messages (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        sender_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        recipient_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        content      TEXT NOT NULL,
        message_type TEXT NOT NULL,
        encrypted    INTEGER NOT NULL DEFAULT 0,
        created_at   REAL NOT NULL,
        read_at      REAL,
        deleted_at   REAL
    )
    """,
    "CREATE INDEX messages_pair ON messages(sender_id, recipient_id, seq)",
    "CREATE INDEX messages_inbox ON messages(recipient_id, read_at)",
    "CREATE INDEX messages_time ON messages(created_at)",
    """
    CREATE TABLE files (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT NOT NULL UNIQUE,
        owner_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        filename       TEXT NOT NULL,
        extension      TEXT NOT NULL,
        content_type   TEXT NOT NULL,
        size           INTEGER NOT NULL,
        sha256         TEXT NOT NULL,
        description    TEXT,
        is_public      INTEGER NOT NULL DEFAULT 0,
        download_count INTEGER NOT NULL DEFAULT 0,
        created_at     REAL NOT NULL
    )
    """,
    "CREATE INDEX files_owner ON files(owner_id, seq)",
    "CREATE INDEX files_time ON files(created_at)",
    """
    CREATE TABLE file_shares (
        file_id    TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        permission TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (file_id, user_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX file_shares_user ON file_shares(user_id)",
    """
    CREATE TABLE groups (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        id          TEXT NOT NULL UNIQUE,
        name        TEXT NOT NULL,
        description TEXT,
        type        TEXT NOT NULL,
        is_public   INTEGER NOT NULL,
        max_members INTEGER NOT NULL,
        owner_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    )
    """,
    """
    CREATE TABLE group_members (
        group_id  TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role      TEXT NOT NULL,
        joined_at REAL NOT NULL,
        PRIMARY KEY (group_id, user_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX group_members_user ON group_members(user_id)",
    """
    CREATE TABLE group_invites (
        group_id   TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        invited_by TEXT REFERENCES users(id) ON DELETE SET NULL,
        message    TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (group_id, user_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE notifications (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        sender_id  TEXT REFERENCES users(id) ON DELETE SET NULL,
        title      TEXT NOT NULL,
        message    TEXT NOT NULL,
        type       TEXT NOT NULL,
        priority   TEXT NOT NULL,
        action_url TEXT,
        metadata   TEXT NOT NULL DEFAULT '{}',
        read_at    REAL,
        archived   INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX notifications_user ON notifications(user_id, seq)",
    """
    CREATE TABLE notification_settings (
        user_id  TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        settings TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE searches (
        seq        INTEGER PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        query      TEXT NOT NULL,
        type       TEXT NOT NULL,
        results    INTEGER NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX searches_user ON searches(user_id, seq)",
    """
    CREATE TABLE webhooks (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        id            TEXT NOT NULL UNIQUE,
        owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        url           TEXT NOT NULL,
        events        TEXT NOT NULL,          -- JSON list
        secret        TEXT NOT NULL,
        description   TEXT,
        active        INTEGER NOT NULL DEFAULT 1,
        created_at    REAL NOT NULL
    )
    """,
    "CREATE INDEX webhooks_owner ON webhooks(owner_id)",
    # One row per event and webhook; attempts (JSON list) is the per-try log.
    """
    CREATE TABLE webhook_deliveries (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT NOT NULL UNIQUE,
        webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        event           TEXT NOT NULL,
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('pending', 'retrying', 'delivered', 'failed')),
        attempts        TEXT NOT NULL DEFAULT '[]',
        attempt_count   INTEGER NOT NULL DEFAULT 0,
        response_status INTEGER,
        error           TEXT,
        next_attempt_at REAL,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL
    )
    """,
    "CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, seq)",
    """
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at)
        WHERE status IN ('pending', 'retrying')
    """,
)


def _migration_1(conn: sqlite3.Connection) -> None:
    """Initial schema."""
    for statement in _SCHEMA_1:
        conn.execute(statement)


def _migration_2(conn: sqlite3.Connection) -> None:
    """Every refresh token a session rotated out, not only the last one: presenting any of
    them (a copy of an old one) must revoke the session. Rows go with their session."""
    conn.execute("""
        CREATE TABLE refresh_history (
            refresh_hash TEXT PRIMARY KEY,
            session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            rotated_at   REAL NOT NULL
        ) WITHOUT ROWID
    """)
    conn.execute("CREATE INDEX refresh_history_session ON refresh_history(session_id)")
    conn.execute("INSERT OR IGNORE INTO refresh_history (refresh_hash, session_id, rotated_at) "
                 "SELECT prev_refresh_hash, id, last_used_at FROM sessions "
                 "WHERE prev_refresh_hash IS NOT NULL")


def _migration_3(conn: sqlite3.Connection) -> None:
    """Account security: TOTP 2FA, recovery codes, login challenges, password reset tokens,
    the security log and the devices each account signed in from.

    Recovery codes, challenge and reset tokens are kept as SHA-256 digests only (like
    session tokens). The TOTP secret is kept as is: checking a code needs it.
    """
    for statement in (
        """
        CREATE TABLE mfa (
            user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            secret     TEXT NOT NULL,
            enabled    INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            enabled_at REAL,
            last_step  INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE recovery_codes (
            user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            code_hash  TEXT NOT NULL,
            created_at REAL NOT NULL,
            used_at    REAL,
            PRIMARY KEY (user_id, code_hash)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE mfa_challenges (
            token_hash  TEXT PRIMARY KEY,
            user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            remember_me INTEGER NOT NULL DEFAULT 0,
            device      TEXT NOT NULL DEFAULT '{}',
            user_agent  TEXT,
            device_key  TEXT,
            expires_at  REAL NOT NULL,
            created_at  REAL NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX mfa_challenges_user ON mfa_challenges(user_id)",
        """
        CREATE TABLE password_resets (
            token_hash TEXT PRIMARY KEY,
            user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            issued_by  TEXT REFERENCES users(id) ON DELETE SET NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX password_resets_user ON password_resets(user_id)",
        """
        CREATE TABLE security_events (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            id         TEXT NOT NULL UNIQUE,
            user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            kind       TEXT NOT NULL,
            session_id TEXT,
            user_agent TEXT,
            device     TEXT NOT NULL DEFAULT '{}',
            detail     TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX security_events_user ON security_events(user_id, seq)",
        """
        CREATE TABLE known_devices (
            user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            fingerprint TEXT NOT NULL,
            label       TEXT NOT NULL,
            first_seen  REAL NOT NULL,
            last_seen   REAL NOT NULL,
            PRIMARY KEY (user_id, fingerprint)
        ) WITHOUT ROWID
        """,
        "ALTER TABLE sessions ADD COLUMN user_agent TEXT",
    ):
        conn.execute(statement)


def _migration_4(conn: sqlite3.Connection) -> None:
    """Webhooks: secret rotation with a grace period for the previous secret, auto-disable
    after N consecutive failed deliveries (0 = never), and redeliveries that point at the
    delivery they repeat (resend and recover-since)."""
    for statement in (
        "ALTER TABLE webhooks ADD COLUMN previous_secret TEXT",
        "ALTER TABLE webhooks ADD COLUMN previous_secret_expires REAL",
        "ALTER TABLE webhooks ADD COLUMN disable_after INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE webhooks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT",
        "ALTER TABLE webhooks ADD COLUMN disabled_at REAL",
        "ALTER TABLE webhook_deliveries ADD COLUMN redelivery_of TEXT",
        "CREATE INDEX webhook_deliveries_time ON webhook_deliveries(webhook_id, created_at)",
        "CREATE INDEX webhook_deliveries_redelivery ON webhook_deliveries(redelivery_of)",
    ):
        conn.execute(statement)


def _migration_5(conn: sqlite3.Connection) -> None:
    """Public keys for end-to-end encrypted messages (``routes/keys.py``): one per user and
    algorithm, gone with the account."""
    conn.execute("""
        CREATE TABLE public_keys (
            user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            algorithm  TEXT NOT NULL,
            public_key TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (user_id, algorithm)
        ) WITHOUT ROWID
    """)


def _migration_6(conn: sqlite3.Connection) -> None:
    """Threads, reactions and edits of messages (``routes/messages.py``).

    ``reply_to`` is the message answered; ``thread_id`` the root of its thread (the first
    message, which has none), kept so a thread is one indexed query however deep it goes.
    One reaction per user, message and emoji; reactions go with the message or the user.
    """
    for statement in (
        "ALTER TABLE messages ADD COLUMN reply_to TEXT",
        "ALTER TABLE messages ADD COLUMN thread_id TEXT",
        "ALTER TABLE messages ADD COLUMN edited_at REAL",
        "CREATE INDEX messages_thread ON messages(thread_id, seq)",
        """
        CREATE TABLE message_reactions (
            message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            emoji      TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (message_id, emoji, user_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX message_reactions_user ON message_reactions(user_id)",
    ):
        conn.execute(statement)


def _migration_7(conn: sqlite3.Connection) -> None:
    """Collaboration sessions (``routes/collaboration.py``, ``collab.py``): the sessions,
    their members and roles, the Yjs document as its binary updates (compacted into one
    now and then) and named snapshots of its text for history and restore."""
    for statement in (
        """
        CREATE TABLE collab_sessions (
            seq                INTEGER PRIMARY KEY AUTOINCREMENT,
            id                 TEXT NOT NULL UNIQUE,
            title              TEXT NOT NULL,
            collaboration_type TEXT NOT NULL,
            owner_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            max_users          INTEGER NOT NULL,
            join_role          TEXT NOT NULL DEFAULT 'editor',
            version            INTEGER NOT NULL DEFAULT 0,
            created_at         REAL NOT NULL,
            last_modified      REAL NOT NULL
        )
        """,
        "CREATE INDEX collab_sessions_owner ON collab_sessions(owner_id)",
        """
        CREATE TABLE collab_members (
            session_id TEXT NOT NULL REFERENCES collab_sessions(id) ON DELETE CASCADE,
            user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            role       TEXT NOT NULL,
            joined_at  REAL NOT NULL,
            PRIMARY KEY (session_id, user_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX collab_members_user ON collab_members(user_id)",
        """
        CREATE TABLE collab_updates (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES collab_sessions(id) ON DELETE CASCADE,
            data       BLOB NOT NULL,
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX collab_updates_session ON collab_updates(session_id, seq)",
        """
        CREATE TABLE collab_snapshots (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            id         TEXT NOT NULL UNIQUE,
            session_id TEXT NOT NULL REFERENCES collab_sessions(id) ON DELETE CASCADE,
            label      TEXT NOT NULL,
            content    TEXT NOT NULL,
            version    INTEGER NOT NULL,
            created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX collab_snapshots_session ON collab_snapshots(session_id, seq)",
    ):
        conn.execute(statement)


def _migration_8(conn: sqlite3.Connection) -> None:
    """AI (``routes/ai.py``, ``ai/``): configured providers (their API keys are not here but
    in a 0600 file beside the database, so backups never carry them; only a hint is) and
    one usage row per chat request (tokens, latency, outcome) for ``GET /ai/usage``."""
    for statement in (
        """
        CREATE TABLE ai_providers (
            name       TEXT PRIMARY KEY,
            kind       TEXT NOT NULL,
            base_url   TEXT,
            model_path TEXT,
            enabled    INTEGER NOT NULL DEFAULT 1,
            timeout    REAL NOT NULL,
            models     TEXT NOT NULL DEFAULT '[]',
            key_hint   TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE ai_usage (
            seq               INTEGER PRIMARY KEY AUTOINCREMENT,
            id                TEXT NOT NULL UNIQUE,
            user_id           TEXT REFERENCES users(id) ON DELETE CASCADE,
            provider          TEXT NOT NULL,
            model             TEXT NOT NULL,
            status            TEXT NOT NULL,
            stream            INTEGER NOT NULL,
            prompt_tokens     INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            estimated         INTEGER NOT NULL,
            latency_ms        REAL NOT NULL,
            first_token_ms    REAL,
            error             TEXT,
            created_at        REAL NOT NULL
        )
        """,
        "CREATE INDEX ai_usage_user ON ai_usage(user_id, created_at)",
        "CREATE INDEX ai_usage_time ON ai_usage(created_at)",
    ):
        conn.execute(statement)


def _migration_9(conn: sqlite3.Connection) -> None:
    """A password reset token an administrator issued may also switch 2FA off when it is
    used (``disable_2fa``: for a user who lost the authenticator)."""
    conn.execute("ALTER TABLE password_resets ADD COLUMN disable_2fa INTEGER NOT NULL "
                 "DEFAULT 0")


def _seal_totp_secrets(conn: sqlite3.Connection) -> None:
    """Encrypt the TOTP secrets still in plain text (``mfa.py``: AES-GCM, the key in a
    0600 file beside the database, not in it). Also run after a restore: an archive from
    before migration 10 brings them in plain text."""
    if conn.execute("SELECT 1 FROM mfa LIMIT 1").fetchone() is None:
        return  # no 2FA set up at all (a new database): spare mfa's imports (~30 ms)
    from plexichat_desktop.server.v1 import mfa  # here: its imports (pyotp, AES) are heavy

    mfa.seal_plain_secrets(conn)


_migration_10 = _seal_totp_secrets


def _migration_11(conn: sqlite3.Connection) -> None:
    """Idempotent sends (``POST /messages/send``'s ``client_message_id``): the key a client
    gave its message, unique per sender and conversation, so that a send retried after a
    lost answer finds the message it stored instead of storing a second one. Messages of
    older databases have none (NULL, outside the index)."""
    conn.execute("ALTER TABLE messages ADD COLUMN client_message_id TEXT")
    conn.execute("CREATE UNIQUE INDEX messages_client_id ON messages(sender_id, "
                 "recipient_id, client_message_id) WHERE client_message_id IS NOT NULL")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migration_1, _migration_2,
                                                       _migration_3, _migration_4,
                                                       _migration_5, _migration_6,
                                                       _migration_7, _migration_8,
                                                       _migration_9, _migration_10,
                                                       _migration_11]
"""Migration ``i`` takes the schema from version ``i`` to ``i + 1``. Append only."""

SCHEMA_VERSION = len(MIGRATIONS)


class ApiStore(SqliteDatabase):
    """The v1 API database. Thread-safe and blocking; async code uses :meth:`read`/:meth:`write`."""

    what = "PlexiChat v1 database"

    def __init__(self, path: Path):
        """Open (or create) the database at ``path`` and bring its schema up to date.

        Raises :class:`SchemaVersionError` when the file comes from a newer app version.
        """
        super().__init__(path, MIGRATIONS)
        # Emails are unique and found "ignoring case", but the column's NOCASE folds ASCII
        # only: 'Ü@EXÄMPLE.ORG' beside 'ü@exämple.org' made two accounts, and signing in
        # with one reached the other. Queries compare unicode_lower() too.
        self._conn.create_function("unicode_lower", 1, _unicode_lower, deterministic=True)

    def call(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """Run ``fn(conn, *args)`` in one transaction (blocking)."""
        with self.transaction(write) as conn:
            return fn(conn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one read transaction, off the event loop."""
        return await asyncio.to_thread(self.call, fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one write transaction, off the event loop."""
        return await asyncio.to_thread(self.call, fn, *args, write=True)

    def snapshot_to(self, target: Path) -> None:
        """Write a consistent copy of the database to ``target`` (SQLite online backup)."""
        dest = sqlite3.connect(str(target))
        try:
            with self._lock:
                self._conn.backup(dest)
        finally:
            dest.close()

    def replace_from(self, source: Path) -> None:
        """Replace the whole database with ``source``, then migrate.

        ``source`` must be a database built by :func:`clean_copy` (our schema, copied rows),
        never an archive's file itself: the copy brings the source's schema objects along.
        """
        src = sqlite3.connect(str(source))
        try:
            with self._lock:
                src.backup(self._conn)
                # The backup copies the source's journal mode too; keep our guarantees.
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA foreign_keys = ON")
        finally:
            src.close()
        self._migrate(MIGRATIONS)
        self.call(_seal_totp_secrets, write=True)


def _unicode_lower(text: str | None) -> str | None:
    """``text`` compared as people read it: composed (NFC) and lower-cased. An "ä" typed
    as "a" plus a combining mark was another address than the composed one."""
    return unicodedata.normalize("NFC", text).lower() if isinstance(text, str) else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def clean_copy(source: Path, target: Path) -> None:
    """Build ``target`` with our own migrations and copy into it the rows of the tables and
    columns this version knows from ``source`` (an archive's database).

    Nothing of the source's schema is taken: not its triggers, views or indexes, not
    its extra tables or columns, so a crafted backup cannot plant a trigger that runs in
    the live database later. Raises ``ValueError`` when the rows break our constraints.
    """
    ApiStore(target).close()
    conn = sqlite3.connect(str(target), isolation_level=None, uri=True)
    try:
        # No functions with side effects from a schema we did not write, just in case.
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA foreign_keys = OFF")  # rows arrive in table order
        conn.execute("ATTACH DATABASE ? AS src", (f"file:{source}?mode=ro",))
        ours = [r[0] for r in conn.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        theirs = {r[0] for r in conn.execute(
            "SELECT name FROM src.sqlite_master WHERE type = 'table'")}
        conn.execute("BEGIN")
        try:
            for table in ours:
                if table not in theirs:
                    continue
                known = [r[1] for r in conn.execute(f"PRAGMA main.table_info({_quote(table)})")]
                present = {r[1] for r in conn.execute(
                    f"PRAGMA src.table_info({_quote(table)})")}
                columns = ", ".join(_quote(c) for c in known if c in present)
                if columns:
                    conn.execute(f"INSERT INTO main.{_quote(table)} ({columns}) "
                                 f"SELECT {columns} FROM src.{_quote(table)}")
            if "refresh_history" not in theirs:  # an archive from before it existed
                conn.execute(
                    "INSERT OR IGNORE INTO refresh_history (refresh_hash, session_id, "
                    "rotated_at) SELECT prev_refresh_hash, id, last_used_at FROM sessions "
                    "WHERE prev_refresh_hash IS NOT NULL")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise ValueError(f"the database in the backup does not fit this schema: {exc}"
                             ) from None
        dangling = conn.execute("PRAGMA main.foreign_key_check").fetchall()
        if dangling:
            raise ValueError(f"the database in the backup has {len(dangling)} dangling "
                             f"reference(s), first in table {dangling[0][0]}")
        conn.execute("DETACH DATABASE src")
    finally:
        conn.close()


def inspect_database(path: Path) -> int:
    """Check that ``path`` is a healthy v1 database; returns its schema version.

    Raises ``ValueError`` saying what is wrong (not SQLite, damaged, unknown schema).
    """
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ValueError(f"cannot open the database in the backup: {exc}") from None
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise ValueError(f"the database in the backup is not readable: {exc}") from None
    finally:
        conn.close()
    if check != "ok":
        raise ValueError(f"the database in the backup is damaged: {check}")
    if version < 1 or not {"users", "sessions", "messages", "files"} <= tables:
        raise ValueError("the database in the backup is not a PlexiChat v1 database")
    if version > SCHEMA_VERSION:
        raise ValueError(f"the backup has schema version {version}; this app understands up "
                         f"to {SCHEMA_VERSION}")
    return version


def rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """All rows of ``cursor`` as plain dicts."""
    return [dict(row) for row in cursor.fetchall()]


def one(cursor: sqlite3.Cursor) -> dict[str, Any] | None:
    """The first row of ``cursor`` as a dict, or None."""
    row = cursor.fetchone()
    return None if row is None else dict(row)


def scalar(conn: sqlite3.Connection, sql: str,
           params: tuple[Any, ...] | list[Any] | dict[str, Any] = ()) -> Any:
    """The first column of the first row of ``sql`` (positional or named ``params``)."""
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]
