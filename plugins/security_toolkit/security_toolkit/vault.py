"""The encrypted vault file: Argon2id + AES-256-GCM, written atomically with mode 0600.

Layout (all integers big-endian)::

    b"STKVAULT"            8  magic
    version                2  format version (1)
    header length          4
    header                 n  JSON: {"kdf": {...}, "cipher": "aes-256-gcm", "saved": ...}
    key check             32  HMAC-SHA256(check key, magic..header)
    nonce                 12
    ciphertext + tag       m  AES-256-GCM(enc key, nonce, payload JSON, aad=magic..header)
    checksum              32  SHA-256 of everything above

Why three integrity layers: the plain SHA-256 tells a damaged file (a flipped bit, a
truncated copy) apart *before* spending a second on Argon2, so the user hears "damaged"
and not "wrong password"; the key check tells a wrong password apart from a file that
was altered on purpose (checksum recomputed); the GCM tag, with the header as associated
data, makes every byte of header and payload authenticated, so nobody can lower the KDF
parameters or swap the payload without the tag failing.

The KDF parameters live in the header, so they can change: when the plugin's settings ask
for more than a file has, :func:`open_vault` derives a new key with a fresh salt while the
password is at hand, and the next :meth:`Vault.save` writes the stronger parameters.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plexichat_desktop.plugins.files import backup_path, write_atomic
from security_toolkit.errors import Problem

MAGIC = b"STKVAULT"
FORMAT_VERSION = 1
PREFIX = struct.Struct(">8sHI")
CHECK_LEN = 32
NONCE_LEN = 12
SUM_LEN = 32
MAX_HEADER = 64 * 1024
# Bounds a header must respect before we run Argon2 with it: a hostile file must not
# make us allocate 100 GiB or spin for an hour.
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_TIME_COST = 64
MAX_PARALLELISM = 64

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: iterations, memory in KiB, lanes."""

    time_cost: int
    memory_kib: int
    parallelism: int

    def weaker_than(self, other: KdfParams) -> bool:
        """True when any cost is below ``other``'s: the file needs an upgrade."""
        return (self.time_cost < other.time_cost or self.memory_kib < other.memory_kib
                or self.parallelism < other.parallelism)

    def stronger(self, other: KdfParams) -> KdfParams:
        """The larger of each cost (an upgrade never lowers one)."""
        return KdfParams(max(self.time_cost, other.time_cost),
                         max(self.memory_kib, other.memory_kib),
                         max(self.parallelism, other.parallelism))

    def to_dict(self) -> dict[str, int]:
        return {"time_cost": self.time_cost, "memory_kib": self.memory_kib,
                "parallelism": self.parallelism}


class _Keys:
    """The two derived keys, in bytearrays so :meth:`wipe` can overwrite them.

    Python copies bytes around (the AESGCM object keeps its own copy), so wiping is a
    best effort that shortens the time a key sits in memory; it is not a guarantee.
    """

    def __init__(self, raw: bytes):
        self.enc = bytearray(raw[:32])
        self.check = bytearray(raw[32:])

    def wipe(self) -> None:
        for buf in (self.enc, self.check):
            for i in range(len(buf)):
                buf[i] = 0


def derive(password: str, salt: bytes, params: KdfParams) -> _Keys:
    """64 bytes of Argon2id: the first half encrypts, the second checks the password."""
    raw = hash_secret_raw(password.encode("utf-8"), salt, time_cost=params.time_cost,
                          memory_cost=params.memory_kib, parallelism=params.parallelism,
                          hash_len=64, type=Type.ID)
    return _Keys(raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def empty_payload() -> dict[str, Any]:
    """What a new vault holds."""
    return {"version": 1, "entries": [], "contacts": [], "identity": None,
            "age_identity": None, "created": now_iso()}


@dataclass
class _Parsed:
    header: dict[str, Any]
    aad: bytes
    check: bytes
    nonce: bytes
    ciphertext: bytes
    params: KdfParams
    salt: bytes


def _damaged(path: Path, why: str) -> Problem:
    backup = backup_path(path)
    hint = (f"; the previous version is kept as {backup.name}: unlock that file instead"
            if backup.exists() else "")
    return Problem("vault", f"the vault file is damaged ({why}){hint}")


def _parse(path: Path, blob: bytes) -> _Parsed:
    if len(blob) < PREFIX.size + CHECK_LEN + NONCE_LEN + 16 + SUM_LEN:
        raise _damaged(path, "it is too short to be a vault")
    magic, version, header_len = PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise Problem("vault", f"{path.name} is not a Security Toolkit vault")
    body, digest = blob[:-SUM_LEN], blob[-SUM_LEN:]
    if not hmac.compare_digest(hashlib.sha256(body).digest(), digest):
        raise _damaged(path, "its checksum does not match: a changed or truncated byte")
    if version != FORMAT_VERSION:
        raise Problem("vault", f"vault format {version} is newer than this plugin "
                               f"understands ({FORMAT_VERSION})")
    end = PREFIX.size + header_len
    if header_len > MAX_HEADER or end + CHECK_LEN + NONCE_LEN + 16 > len(body):
        raise _damaged(path, "the header length is impossible")
    try:
        header = json.loads(body[PREFIX.size:end])
        kdf = header["kdf"]
        if kdf["name"] != "argon2id" or header["cipher"] != "aes-256-gcm":
            raise ValueError("unknown algorithm")
        params = KdfParams(int(kdf["time_cost"]), int(kdf["memory_kib"]),
                           int(kdf["parallelism"]))
        salt = _unb64(kdf["salt"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(path, f"unreadable header: {exc}") from None
    if not (1 <= params.time_cost <= MAX_TIME_COST and 1 <= params.parallelism
            <= MAX_PARALLELISM and 8 * params.parallelism <= params.memory_kib
            <= MAX_MEMORY_KIB and len(salt) >= 16):
        raise _damaged(path, "KDF parameters out of range")
    return _Parsed(header, body[:end], body[end:end + CHECK_LEN],
                   body[end + CHECK_LEN:end + CHECK_LEN + NONCE_LEN],
                   body[end + CHECK_LEN + NONCE_LEN:], params, salt)


class Vault:
    """An unlocked vault: the payload in memory and the keys to write it back.

    Create one with :func:`create_vault` or :func:`open_vault`; call :meth:`lock` to
    drop keys and contents. Every method raises :class:`Problem` (status 423) once
    locked.
    """

    def __init__(self, path: Path, payload: dict[str, Any], keys: _Keys, salt: bytes,
                 params: KdfParams, pending: tuple[_Keys, bytes, KdfParams] | None = None):
        self.path = path
        self._payload: dict[str, Any] | None = payload
        self._keys: _Keys | None = keys
        self._salt = salt
        self.params = params
        # A stronger key derived at unlock, written by the next save.
        self._pending = pending

    # -- state ---------------------------------------------------------------------
    @property
    def locked(self) -> bool:
        return self._payload is None

    @property
    def payload(self) -> dict[str, Any]:
        if self._payload is None:
            raise Problem("vault", "the vault is locked", 423)
        return self._payload

    @property
    def upgrade_pending(self) -> bool:
        return self._pending is not None

    def lock(self) -> None:
        """Forget the contents and wipe the keys (best effort, see :class:`_Keys`)."""
        for keys in (self._keys, self._pending[0] if self._pending else None):
            if keys is not None:
                keys.wipe()
        self._keys = None
        self._pending = None
        self._payload = None

    # -- writing -------------------------------------------------------------------
    def save(self) -> None:
        """Encrypt the payload and replace the file atomically (see :func:`write_atomic`).

        A pending KDF upgrade is applied here: the file gets the new salt and costs."""
        payload = self.payload
        assert self._keys is not None
        if self._pending is not None:
            self._keys.wipe()
            self._keys, self._salt, self.params = self._pending
            self._pending = None
        write_atomic(self.path, _seal(payload, self._keys, self._salt, self.params),
                     keep_backup=True)

    def rekey_material(self, new_password: str, params: KdfParams
                       ) -> tuple[_Keys, bytes, KdfParams]:
        """Keys for ``new_password`` (fresh salt, ``params`` or stronger). Slow (Argon2)
        and touches nothing shared, so it may run in a worker thread."""
        _check_new_password(new_password)
        params = self.params.stronger(params)
        salt = secrets.token_bytes(16)
        return derive(new_password, salt, params), salt, params

    def rekey(self, material: tuple[_Keys, bytes, KdfParams]) -> None:
        """Use keys from :meth:`rekey_material` from now on, and save. The backup kept
        beside the file is replaced too: it was the file as it was before, under the old
        password, which then still opened every entry after a change meant to lock it."""
        self.payload  # noqa: B018 - raises when locked
        if self._pending is not None:
            self._pending[0].wipe()
        self._pending = material
        self.save()
        try:
            self.save()  # the backup is now the file just written, under the new keys
        except OSError as exc:
            # The change itself is done (the file and the keys are new); only the backup
            # could not be refreshed: said in the log, not as a failed change.
            log.warning("vault: the backup beside %s still has the old password: %s",
                        self.path.name, exc)

    def change_password(self, new_password: str, params: KdfParams) -> None:
        """Re-key with ``new_password`` and save (both steps in the calling thread)."""
        self.rekey(self.rekey_material(new_password, params))


def _seal(payload: dict[str, Any], keys: _Keys, salt: bytes, params: KdfParams) -> bytes:
    header = json.dumps({
        "kdf": {"name": "argon2id", **params.to_dict(), "salt": _b64(salt)},
        "cipher": "aes-256-gcm", "saved": now_iso(),
    }, separators=(",", ":")).encode()
    aad = PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header
    check = hmac.new(bytes(keys.check), aad, hashlib.sha256).digest()
    nonce = secrets.token_bytes(NONCE_LEN)
    plaintext = json.dumps(payload, separators=(",", ":")).encode()
    ciphertext = AESGCM(bytes(keys.enc)).encrypt(nonce, plaintext, aad)
    body = aad + check + nonce + ciphertext
    return body + hashlib.sha256(body).digest()


def _check_new_password(password: str) -> None:
    if len(password) < 8:
        raise Problem("password", "a master password needs at least 8 characters")
    if len(password) > 1024:
        raise Problem("password", "a master password may have at most 1024 characters")


def create_vault(path: Path, password: str, params: KdfParams) -> Vault:
    """A new, empty vault at ``path`` (refused when a file is there already)."""
    if path.exists():
        raise Problem("vault", f"a vault already exists at {path.name}", 409)
    _check_new_password(password)
    salt = secrets.token_bytes(16)
    vault = Vault(path, empty_payload(), derive(password, salt, params), salt, params)
    vault.save()
    return vault


def read_header(path: Path) -> dict[str, Any]:
    """The public header of the vault at ``path`` (KDF costs, last save), no password."""
    parsed = _parse(path, path.read_bytes())
    return {"kdf": parsed.params.to_dict(), "saved": parsed.header.get("saved")}


def open_vault(path: Path, password: str, wanted: KdfParams) -> Vault:
    """Unlock the vault at ``path``.

    Raises :class:`Problem`: ``vault`` (404 missing, 422 damaged or not a vault) or
    ``password`` (422, wrong). When the file's KDF costs are below ``wanted`` the
    returned vault has an upgrade pending (``upgrade_pending``) for its next save.
    """
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise Problem("vault", "no vault yet: create one first", 404) from None
    parsed = _parse(path, blob)
    keys = derive(password, parsed.salt, parsed.params)
    expected = hmac.new(bytes(keys.check), parsed.aad, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, parsed.check):
        keys.wipe()
        raise Problem("password", "wrong master password")
    try:
        plaintext = AESGCM(bytes(keys.enc)).decrypt(parsed.nonce, parsed.ciphertext,
                                                    parsed.aad)
        payload = json.loads(plaintext)
    except (InvalidTag, ValueError):
        keys.wipe()
        # The checksum matched and the password is right: someone rewrote the file and
        # its checksum. Not the user's typo, so say so.
        raise _damaged(path, "it failed authentication: it was altered") from None
    pending = None
    if parsed.params.weaker_than(wanted):
        params = parsed.params.stronger(wanted)
        salt = secrets.token_bytes(16)
        pending = (derive(password, salt, params), salt, params)
    return Vault(path, payload, keys, parsed.salt, parsed.params, pending)
