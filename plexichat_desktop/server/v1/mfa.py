"""Account security of the v1 API: TOTP codes, recovery codes, the failure limiter, the
security log and known devices.

TOTP (RFC 6238) with the parameters every authenticator app supports: HMAC-SHA1, 6 digits,
30-second steps. A code is accepted for the current step and one step either side (clocks
drift, people type slowly) and **never twice**: the account remembers the last step it
accepted, and a code of that step or an earlier one is refused, so a code seen over a
shoulder or in a log cannot be replayed even within its 90 seconds.

Recovery codes are random (40 bits each, ``xxxxx-xxxxx``) and single use. 40 bits are
too few for a fast digest: SHA-256 of every candidate takes minutes on one GPU, and a
recovery code resets the password (``/auth/password/reset``), so a copy of the database
(a backup) would give the account away. They are stored as scrypt digests (memory-hard,
salted with the account id), which puts a search of the 2**40 codes of one account at
centuries. Tokens of the login challenge (``pxm_``) and of password resets (``pxp_``) have
256 bits: SHA-256 digests suffice, like the session tokens.

The TOTP secret is needed to check a code, so it cannot be a digest: it is encrypted at
rest instead (AES-256-GCM, the account id as associated data, stored as
``aesgcm1:<base64 nonce+ciphertext>``). The key is not in the database but in
``mfa_secrets.key`` beside it (0600, written once, atomically; like the AI providers' API
keys in ``ai_provider_keys.json``), so a backup archive or a copy of the database does not
carry usable secrets. A database restored on another computer without that file cannot
read them: checking a TOTP code then fails clearly (:class:`SecretUnavailable`, 409), and
the user signs in with a recovery code (scrypt digests, no key needed) or an administrator
issues a reset token with ``disable_2fa``. Secrets stored in plain text by older versions
are encrypted by migration 10, after a restore, and on their next use.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import HTTPException

from plexichat_desktop.server.v1.auth import digest
from plexichat_desktop.server.v1.common import iso, new_id, now

ISSUER = "PlexiChat"
PERIOD = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of the current one
RECOVERY_CODES = 10
LOW_RECOVERY_CODES = 3  # status says "low" at or below this many unused codes
MFA_TOKEN_PREFIX = "pxm_"
RESET_TOKEN_PREFIX = "pxp_"
MFA_TOKEN_TTL = 300.0  # seconds to answer the second step of a login
# Wrong codes (or passwords on the security routes) per account before 429: a guesser of
# 6-digit codes then needs ~10^5 windows. Only failures count, so the owner's own
# successful steps (setup, login, disable in a row) never lock them out.
FAILURE_LIMIT = 5
FAILURE_WINDOW = 300.0
_CODE_RE = re.compile(r"^[0-9]{6}$")  # ASCII: compare_digest refuses other text
_RECOVERY_ALPHABET = "0123456789abcdef"
SECRET_KEY_FILE = "mfa_secrets.key"  # beside the database, never in it or in a backup
SEALED_PREFIX = "aesgcm1:"

log = logging.getLogger(__name__)


def current_time() -> float:
    """The clock TOTP steps are taken from (one place, so tests can set it)."""
    return time.time()


# -- TOTP ---------------------------------------------------------------------------------

def new_secret() -> str:
    """A fresh TOTP secret: 160 random bits in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def code_at(secret: str, step: int, digits: int = DIGITS,
            digest_name: str = "sha1") -> str:
    """The code of time step ``step`` (``floor(unix time / 30)``) for a base32 ``secret``."""
    algorithm = getattr(hashlib, digest_name)
    return pyotp.TOTP(secret, digits=digits, digest=algorithm, interval=PERIOD
                      ).generate_otp(step)


def step_of(at: float) -> int:
    return int(at // PERIOD)


def accepted_step(secret: str, code: str, last_step: int, at: float) -> int | None:
    """The step ``code`` belongs to when it is valid now (+-``WINDOW`` steps) and newer
    than ``last_step``; None otherwise (wrong, too old, or already used)."""
    code = code.strip().replace(" ", "")
    if not _CODE_RE.match(code):
        return None
    current = step_of(at)
    found = None
    # Check every candidate (no early exit) so timing does not say which step matched.
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(code_at(secret, step), code) and step > last_step:
            found = step if found is None else max(found, step)
    return found


def otpauth_uri(secret: str, account: str) -> str:
    """The ``otpauth://`` URI authenticator apps read from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as a standalone SVG document (black on white with the quiet
    zone, so it scans in a dark theme too)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, scale=5, border=4,
                                    dark="#000000", light="#ffffff")
    return out.getvalue().decode("utf-8")


def group_secret(secret: str) -> str:
    """The secret in groups of four for typing it by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


# -- recovery codes -----------------------------------------------------------------------

def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.add(f"{raw[:5]}-{raw[5:]}")
    return sorted(codes)


def normalise_recovery_code(code: str) -> str:
    """Case, spaces and dashes do not matter when a recovery code is typed."""
    return re.sub(r"[\s-]", "", code).lower()


RECOVERY_SCRYPT_LOG_N = 14  # 16 MiB and some 50 ms per digest: one per attempt


def recovery_digest(code: str, user_id: str) -> str:
    """The stored form of a recovery code of ``user_id``: scrypt, salted with the account
    (slow on purpose: run it in a thread, outside the database's write transaction)."""
    n = 1 << RECOVERY_SCRYPT_LOG_N
    key = hashlib.scrypt(normalise_recovery_code(code).encode("utf-8", "surrogatepass"),
                         salt=("plexichat-recovery:" + user_id).encode("utf-8",
                                                                       "surrogatepass"),
                         n=n, r=8, p=1, maxmem=132 * n * 8 + (1 << 20), dklen=32)
    return "s1$" + key.hex()


def legacy_recovery_digest(code: str) -> str:
    """How the first version stored recovery codes (unsalted SHA-256): still accepted, so
    codes issued before the change keep working until they are used or regenerated."""
    return digest("recovery:" + normalise_recovery_code(code))


def recovery_digests(user_id: str, codes: list[str]) -> list[str]:
    return [recovery_digest(code, user_id) for code in codes]


def store_recovery_codes(conn: sqlite3.Connection, user_id: str, digests: list[str]
                         ) -> None:
    """Replace every recovery code of ``user_id`` with ``digests`` (of
    :func:`recovery_digests`)."""
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    at = now()
    conn.executemany(
        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
        [(user_id, code_hash, at) for code_hash in digests])


def use_recovery_code(conn: sqlite3.Connection, user_id: str, code: str,
                      code_digest: str) -> bool:
    """Spend one unused recovery code of ``user_id`` (``code_digest`` is its
    :func:`recovery_digest`, made beforehand); False when it is unknown or used."""
    cursor = conn.execute(
        "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash IN (?, ?) "
        "AND used_at IS NULL", (now(), user_id, code_digest, legacy_recovery_digest(code)))
    return cursor.rowcount >= 1


def second_factor_ok(conn: sqlite3.Connection, user_id: str, code: str | None,
                     recovery_code: str | None, recovery_digest: str) -> bool:
    """A current TOTP ``code`` when given (its step remembered), else one unused
    ``recovery_code`` (spent; ``recovery_digest`` made beforehand, off the writer)."""
    if code:
        return verify_totp(conn, user_id, code)
    return use_recovery_code(conn, user_id, recovery_code or "", recovery_digest)


def recovery_counts(conn: sqlite3.Connection, user_id: str) -> tuple[int, int]:
    """(unused, total) recovery codes of ``user_id``."""
    row = conn.execute("SELECT COUNT(*) - COUNT(used_at), COUNT(*) FROM recovery_codes "
                       "WHERE user_id = ?", (user_id,)).fetchone()
    return int(row[0]), int(row[1])


# -- the TOTP secret at rest ----------------------------------------------------------------

class SecretUnavailable(HTTPException):
    """The account's TOTP secret cannot be decrypted: the key file beside the database is
    missing, unreadable or another one (a database restored on another computer). 409:
    retrying does not help; a recovery code or an administrator's reset does."""

    def __init__(self, reason: str):
        super().__init__(
            409, f"code: this server cannot read the account's authenticator key ({reason}; "
                 f"the 2FA key file {SECRET_KEY_FILE} beside the database is missing or "
                 "another one, e.g. after restoring a backup on another computer). Sign in "
                 "with a recovery code, or ask an administrator for a password reset token "
                 "that switches 2FA off (disable_2fa), then set 2FA up again")


def secret_key_path(conn: sqlite3.Connection) -> Path | None:
    """Where the key of ``conn``'s database lives (None for an in-memory database)."""
    for row in conn.execute("PRAGMA database_list").fetchall():
        if row[1] == "main" and row[2]:
            return Path(row[2]).parent / SECRET_KEY_FILE
    return None


def _read_key(path: Path) -> bytes:
    try:
        key = base64.b64decode(path.read_text("ascii").strip(), validate=True)
    except (OSError, ValueError, binascii.Error) as exc:
        raise SecretUnavailable(f"the key file is unreadable: {type(exc).__name__}"
                                ) from None
    if len(key) != 32:
        raise SecretUnavailable("the key file is not a 256-bit key")
    return key


def _write_key(path: Path) -> None:
    """Create the key file, 0600, all at once (written beside it, then linked: it never
    exists half-written, and a key another process made first is never replaced)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(base64.b64encode(AESGCM.generate_key(256)).decode() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def secret_key(conn: sqlite3.Connection, *, create: bool = False) -> bytes | None:
    """The key that encrypts ``conn``'s TOTP secrets; made when ``create`` and missing,
    else None when missing. Read each time (32 bytes): replacing or removing the file
    takes effect at once."""
    path = secret_key_path(conn)
    if path is None:
        raise SecretUnavailable("the database has no folder to keep the key in")
    if not path.exists():
        if not create:
            return None
        _write_key(path)
        log.info("2FA: made a new key for the TOTP secrets (%s)", path.name)
    return _read_key(path)


def _aad(user_id: str) -> bytes:
    return ("plexichat-totp:" + user_id).encode("utf-8", "surrogatepass")


def seal_secret(conn: sqlite3.Connection, user_id: str, secret: str) -> str:
    """The stored form of ``secret`` of ``user_id``: AES-GCM with the database's key
    (bound to the account: a sealed secret copied to another row does not open)."""
    key = secret_key(conn, create=True)
    assert key is not None
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, secret.encode("ascii"), _aad(user_id))
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def open_secret(conn: sqlite3.Connection, user_id: str, stored: str) -> str:
    """The TOTP secret of ``stored`` (a plain one of an older version as it is); raises
    :class:`SecretUnavailable` when it cannot be decrypted here."""
    if not is_sealed(stored):
        return stored
    key = secret_key(conn)
    if key is None:
        log.warning("2FA: no key file for the TOTP secrets; accounts with 2FA need a "
                    "recovery code")
        raise SecretUnavailable("the key file is missing")
    try:
        raw = base64.b64decode(stored[len(SEALED_PREFIX):], validate=True)
        return AESGCM(key).decrypt(raw[:12], raw[12:], _aad(user_id)).decode("ascii")
    except (InvalidTag, ValueError, binascii.Error):
        log.warning("2FA: a TOTP secret does not open with this key file (another "
                    "computer's database?)")
        raise SecretUnavailable("it was encrypted with another key") from None


def secret_readable(conn: sqlite3.Connection, user_id: str) -> bool | None:
    """Whether the account's TOTP secret can be decrypted here (None: no secret)."""
    row = mfa_row(conn, user_id)
    if row is None:
        return None
    try:
        open_secret(conn, user_id, row["secret"])
    except SecretUnavailable:
        return False
    return True


def seal_plain_secrets(conn: sqlite3.Connection) -> int:
    """Encrypt every TOTP secret still stored in plain text (older versions, restored
    archives); how many. No key file is made when there are none."""
    plain = conn.execute("SELECT user_id, secret FROM mfa WHERE secret NOT LIKE ?",
                         (SEALED_PREFIX + "%",)).fetchall()
    for user_id, secret in plain:
        conn.execute("UPDATE mfa SET secret = ? WHERE user_id = ?",
                     (seal_secret(conn, user_id, secret), user_id))
    if plain:
        log.info("2FA: encrypted %d TOTP secret(s) stored in plain text", len(plain))
    return len(plain)


def mfa_row(conn: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM mfa WHERE user_id = ?", (user_id,)).fetchone()
    return None if row is None else dict(row)


def mfa_enabled(conn: sqlite3.Connection, user_id: str) -> bool:
    row = mfa_row(conn, user_id)
    return bool(row and row["enabled"])


def verify_totp(conn: sqlite3.Connection, user_id: str, code: str, *,
                pending: bool = False) -> bool:
    """Check ``code`` against the (enabled, or with ``pending`` the set-up) secret of
    ``user_id`` and remember its step, so it is never accepted again."""
    row = mfa_row(conn, user_id)
    if row is None or bool(row["enabled"]) == pending:
        return False
    secret = open_secret(conn, user_id, row["secret"])
    if not is_sealed(row["secret"]):  # an older version's (or a restored) plain secret
        conn.execute("UPDATE mfa SET secret = ? WHERE user_id = ?",
                     (seal_secret(conn, user_id, secret), user_id))
    step = accepted_step(secret, code, row["last_step"], current_time())
    if step is None:
        return False
    conn.execute("UPDATE mfa SET last_step = ? WHERE user_id = ?", (step, user_id))
    return True


# -- limits -------------------------------------------------------------------------------

class FailureLimiter:
    """At most ``limit`` failures per ``window`` seconds per key; then 429 until the
    oldest failure leaves the window. Successes cost nothing."""

    def __init__(self, name: str, limit: int = FAILURE_LIMIT, window: float = FAILURE_WINDOW,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _live(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures

    def check(self, key: str) -> None:
        """Raise 429 with ``Retry-After`` when ``key`` has used up its failures."""
        failures = self._live(key)
        if len(failures) >= self.limit:
            seconds = max(1, math.ceil(failures[0] + self.window - self.clock()))
            raise HTTPException(
                429, f"too many failed {self.name} attempts: at most {self.limit} per "
                     f"{self.window:g} s; retry in {seconds} s",
                headers={"Retry-After": str(seconds)})

    def attempt(self, key: str) -> Attempt:
        """Check ``key`` and count this attempt as a failure *before* it is verified (a
        success or an unrelated error gives it back, see :class:`Attempt`). Checking and
        counting only after the ``await`` of the verification let a burst of concurrent
        guesses all pass the check before the first failure was counted."""
        self.check(key)
        stamp = self.clock()
        self._live(key).append(stamp)
        self._prune()
        return Attempt(self, key, stamp)

    def forgive(self, key: str, stamp: float) -> None:
        """Give back the failure ``attempt`` counted in advance."""
        failures = self._failures.get(key)
        if failures is not None:
            with contextlib.suppress(ValueError):
                failures.remove(stamp)

    def fail(self, key: str) -> None:
        self._live(key).append(self.clock())
        self._prune()

    def _prune(self) -> None:
        if len(self._failures) > 10_000:  # drop keys that went quiet
            cutoff = self.clock() - self.window
            for stale in [k for k, v in self._failures.items() if not v or v[-1] <= cutoff]:
                del self._failures[stale]

    def reset(self) -> None:
        self._failures.clear()


class Attempt:
    """One verification counted in advance against a :class:`FailureLimiter`: used as a
    context manager, it stays counted only when :meth:`fail` was called (a wrong code or
    password); leaving the block otherwise (success, or another error such as a 409 or 422)
    gives the slot back."""

    def __init__(self, limiter: FailureLimiter, key: str, stamp: float):
        self.limiter = limiter
        self.key = key
        self.stamp = stamp
        self.failed = False

    def fail(self) -> None:
        self.failed = True

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.failed:
            self.limiter.forgive(self.key, self.stamp)


# -- the security log and devices ---------------------------------------------------------

EVENT_KINDS = (
    "login", "login_failed", "new_device", "logout", "session_revoked", "2fa_setup_started",
    "2fa_enabled", "2fa_disabled", "recovery_codes_regenerated", "recovery_code_used",
    "password_changed", "password_reset", "password_reset_issued",
)
LOG_KEEP = 1000  # security-log entries kept per account
DEVICE_INFO_KEYS = ("name", "platform", "os", "browser", "app", "model")


def record_event(conn: sqlite3.Connection, user_id: str, kind: str, *,
                 session_id: str | None = None, user_agent: str | None = None,
                 device: dict[str, Any] | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    """Append one entry to the user's security log (keeping the newest ``LOG_KEEP``).
    Never pass a secret in ``detail``."""
    conn.execute(
        "INSERT INTO security_events (id, user_id, kind, session_id, user_agent, device, "
        "detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (new_id(), user_id, kind, session_id, (user_agent or "")[:300] or None,
         json.dumps(device or {}), json.dumps(detail or {}), now()))
    # Bounded per account: a script failing logins all day must not grow it forever.
    conn.execute(
        "DELETE FROM security_events WHERE user_id = ? AND seq <= (SELECT seq FROM "
        "security_events WHERE user_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (user_id, user_id, LOG_KEEP))


def event_dict(row: dict[str, Any]) -> dict[str, Any]:
    device = json.loads(row["device"] or "{}")
    return {"id": row["id"], "kind": row["kind"], "at": iso(row["created_at"]),
            "session_id": row["session_id"], "user_agent": row["user_agent"],
            "device": device, "device_label": device_label(row["user_agent"], device),
            "detail": json.loads(row["detail"] or "{}")}


def device_label(user_agent: str | None, device: dict[str, Any]) -> str:
    """A short human name of a device: what the client said about itself, else a reading
    of its user agent."""
    parts = [str(device[key]) for key in DEVICE_INFO_KEYS
             if isinstance(device.get(key), str | int) and str(device[key]).strip()]
    if parts:
        return " · ".join(dict.fromkeys(p.strip()[:60] for p in parts))
    agent = (user_agent or "").strip()
    if not agent:
        return "unknown client"
    for name in ("QtWebEngine", "Firefox", "Edg", "Chrome", "Safari", "curl",
                 "python-httpx", "python-requests", "PlexiChat"):
        if name in agent:
            system = next((s for s in ("Linux", "Windows", "Mac OS X", "Android", "iPhone")
                           if s in agent), None)
            label = {"Edg": "Edge"}.get(name, name)
            return f"{label} on {system}" if system else label
    return agent[:60]


def device_fingerprint(user_agent: str | None, device: dict[str, Any]) -> str:
    """What tells two devices apart: the user agent and what the client says about itself
    (the name, platform...). The address is no key: every local client is 127.0.0.1."""
    picked = {key: device.get(key) for key in DEVICE_INFO_KEYS if key in device}
    return digest(json.dumps([user_agent or "", picked], sort_keys=True))[:32]


def remember_device(conn: sqlite3.Connection, user_id: str, user_agent: str | None,
                    device: dict[str, Any]) -> bool:
    """Record the device of a successful login; True when it is new for an account that
    had signed in before (the first device of an account is no surprise)."""
    fingerprint = device_fingerprint(user_agent, device)
    at = now()
    seen = conn.execute("SELECT 1 FROM known_devices WHERE user_id = ? AND fingerprint = ?",
                        (user_id, fingerprint)).fetchone()
    if seen is not None:
        conn.execute("UPDATE known_devices SET last_seen = ? WHERE user_id = ? AND "
                     "fingerprint = ?", (at, user_id, fingerprint))
        return False
    had_any = conn.execute("SELECT 1 FROM known_devices WHERE user_id = ? LIMIT 1",
                           (user_id,)).fetchone() is not None
    conn.execute("INSERT INTO known_devices (user_id, fingerprint, label, first_seen, "
                 "last_seen) VALUES (?, ?, ?, ?, ?)",
                 (user_id, fingerprint, device_label(user_agent, device), at, at))
    return had_any


def new_challenge_token() -> str:
    return MFA_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_reset_token() -> str:
    return RESET_TOKEN_PREFIX + secrets.token_urlsafe(32)

