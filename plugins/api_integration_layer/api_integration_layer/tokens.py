"""Where the session's tokens live between runs: the user's keyring, else a 0600 file.

The keyring is used when the ``keyring`` module can be imported and has a real backend (a
desktop secret service, the macOS keychain, Windows' credential locker); it is not a
dependency of the app. Otherwise the tokens go to ``tokens.json`` in the plugin's data
dir, readable by the user only. Tokens are stored per server (``key``), so switching the
base URL does not hand one server's tokens to another.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from plexichat_desktop.plugins.files import write_atomic

log = logging.getLogger(__name__)

KEYRING_SERVICE = "plexichat-desktop.api_integration_layer"


@dataclass
class TokenSet:
    """One session's tokens; times are UNIX seconds (``time.time()``)."""

    access_token: str
    refresh_token: str
    expires_at: float
    refresh_expires_at: float | None
    user_id: str
    username: str
    session_id: str | None = None
    permissions: tuple[str, ...] = ()
    issued_at: float = 0.0
    # "Keep me logged in": only then is the session kept for the next start of the app.
    remember: bool = True

    @property
    def lifetime(self) -> float:
        return max(0.0, self.expires_at - self.issued_at)

    def expires_in(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["permissions"] = list(self.permissions)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenSet:
        return cls(
            access_token=str(data["access_token"]), refresh_token=str(data["refresh_token"]),
            expires_at=float(data["expires_at"]),
            refresh_expires_at=(None if data.get("refresh_expires_at") is None
                                else float(data["refresh_expires_at"])),
            user_id=str(data["user_id"]), username=str(data["username"]),
            session_id=data.get("session_id"),
            permissions=tuple(data.get("permissions") or ()),
            issued_at=float(data.get("issued_at") or 0.0),
            remember=bool(data.get("remember", True)))

    @classmethod
    def from_login(cls, body: dict[str, Any], now: float | None = None) -> TokenSet:
        """From a ``TokenResponse``; expiry from ``expires_in`` (immune to clock skew
        between client and server, unlike ``expires_at``)."""
        now = time.time() if now is None else now
        refresh_in = body.get("refresh_expires_in")
        return cls(
            access_token=body["access_token"], refresh_token=body["refresh_token"],
            expires_at=now + float(body.get("expires_in") or 0),
            refresh_expires_at=None if refresh_in is None else now + float(refresh_in),
            user_id=str(body["user_id"]), username=str(body["username"]),
            session_id=body.get("session_id"),
            permissions=tuple(body.get("permissions") or ()), issued_at=now,
            remember=bool(body.get("remember_me", True)))


class TokenStore(Protocol):
    """Keeps one :class:`TokenSet` per server key."""

    kind: str

    def load(self, key: str) -> TokenSet | None: ...
    def save(self, key: str, tokens: TokenSet) -> None: ...
    def delete(self, key: str) -> None: ...


class MemoryTokenStore:
    """Tokens in memory only (tests, or a client that must not persist anything)."""

    kind = "memory"

    def __init__(self) -> None:
        self._data: dict[str, TokenSet] = {}

    def load(self, key: str) -> TokenSet | None:
        return self._data.get(key)

    def save(self, key: str, tokens: TokenSet) -> None:
        self._data[key] = tokens

    def delete(self, key: str) -> None:
        self._data.pop(key, None)


class FileTokenStore:
    """``{key: tokens}`` as JSON in a file only the user can read (mode 0600)."""

    kind = "file"

    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("token file %s is unreadable (%s); starting logged out", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        write_atomic(self.path, json.dumps(data, indent=1))  # 0600 from the start

    def load(self, key: str) -> TokenSet | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return TokenSet.from_json(entry)
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, key: str, tokens: TokenSet) -> None:
        data = self._read()
        data[key] = tokens.to_json()
        self._write(data)

    def delete(self, key: str) -> None:
        data = self._read()
        if data.pop(key, None) is not None:
            self._write(data)


class KeyringTokenStore:
    """Tokens in the user's keyring, one JSON entry per server key."""

    kind = "keyring"

    def __init__(self, module: Any, service: str = KEYRING_SERVICE):
        self._keyring = module
        self.service = service

    def load(self, key: str) -> TokenSet | None:
        raw = self._keyring.get_password(self.service, key)
        if not raw:
            return None
        try:
            return TokenSet.from_json(json.loads(raw))
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, key: str, tokens: TokenSet) -> None:
        self._keyring.set_password(self.service, key, json.dumps(tokens.to_json()))

    def delete(self, key: str) -> None:
        try:
            self._keyring.delete_password(self.service, key)
        except Exception:
            # Deleting an entry that is not there raises PasswordDeleteError: nothing to do.
            log.debug("no keyring entry %s/%s to delete", self.service, key)


class FallbackTokenStore:
    """The keyring, falling back to the file for good when the keyring fails (locked,
    its daemon gone): losing the session is worse than a 0600 file."""

    def __init__(self, primary: KeyringTokenStore, fallback: FileTokenStore):
        self.primary = primary
        self.fallback = fallback
        self.failed = False

    @property
    def kind(self) -> str:
        return self.fallback.kind if self.failed else self.primary.kind

    def _use(self, op: str, *args: Any) -> Any:
        if not self.failed:
            try:
                return getattr(self.primary, op)(*args)
            except Exception as exc:
                log.warning("the keyring failed (%s: %s); keeping tokens in %s instead",
                            type(exc).__name__, exc, self.fallback.path)
                self.failed = True
        return getattr(self.fallback, op)(*args)

    def load(self, key: str) -> TokenSet | None:
        return self._use("load", key)  # type: ignore[no-any-return]

    def save(self, key: str, tokens: TokenSet) -> None:
        self._use("save", key, tokens)

    def delete(self, key: str) -> None:
        self._use("delete", key)


def usable_keyring() -> Any | None:
    """The ``keyring`` module when it is installed and has a backend that stores secrets."""
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]
    except Exception:
        return None
    try:
        backend = keyring.get_keyring()
        priority = float(getattr(backend, "priority", 0))
    except Exception:
        return None
    name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    # The fail and null backends "work" but keep nothing; chainer with no members neither.
    if priority <= 0 or ".fail." in name or ".null." in name:
        return None
    return keyring


def make_token_store(kind: str, data_dir: Path) -> TokenStore | FallbackTokenStore:
    """``auto``: the keyring when usable, else the file; ``keyring`` insists (and still
    falls back to the file if no usable keyring exists, with a warning); ``file``."""
    file_store = FileTokenStore(data_dir / "tokens.json")
    if kind == "file":
        return file_store
    module = usable_keyring()
    if module is None:
        if kind == "keyring":
            log.warning("token_storage = 'keyring' but no usable keyring is available; "
                        "keeping tokens in %s", file_store.path)
        return file_store
    return FallbackTokenStore(KeyringTokenStore(module), file_store)
