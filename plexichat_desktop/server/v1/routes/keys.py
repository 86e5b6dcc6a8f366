"""``/users/me/keys`` and ``/users/{user_id}/keys``: a directory of public keys for
end-to-end encrypted messages.

The server only stores and hands out public keys; it never sees a private key or a
plaintext. Clients must not trust it blindly: a server could hand out its own key, so
clients pin the key they first saw and let their users compare a safety number out of
band (the Security Toolkit does both). One key per algorithm and user; publishing again
replaces it (a new device, a lost vault) and bumps ``updated_at`` so contacts notice.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from fastapi import APIRouter
from pydantic import Field

from plexichat_desktop.server.v1 import accounts
from plexichat_desktop.server.v1.common import Body, done, invalid, iso, not_found, now
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.store import rows

router = APIRouter(prefix="/users", tags=["keys"])

KEY_BYTES = {"x25519": 32}


class PublishKey(Body):
    algorithm: Literal["x25519"] = "x25519"
    public_key: str = Field(min_length=1, max_length=200, description="base64url of the raw "
                                                                      "public key")


def _key_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {"algorithm": row["algorithm"], "public_key": row["public_key"],
            "updated_at": iso(row["updated_at"])}


def _raw_key(body: PublishKey) -> bytes:
    text = body.public_key.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise invalid("public_key", "not base64url", body.public_key) from None
    if len(raw) != KEY_BYTES[body.algorithm]:
        raise invalid("public_key", f"an {body.algorithm} public key has "
                                    f"{KEY_BYTES[body.algorithm]} bytes, this one {len(raw)}",
                      body.public_key)
    if not _usable_x25519(raw):
        raise invalid("public_key", "not a usable x25519 public key (a point of small "
                                    "order: every shared secret with it is zero)",
                      body.public_key)
    return raw


def _usable_x25519(raw: bytes) -> bool:
    """False for the small-order points (all-zero, one, ...): a key agreement with one
    gives the all-zero secret, which clients refuse with an error, so a published one
    would break every sender's encryption to its owner."""
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        return False
    return True


def _publish(conn: sqlite3.Connection, user_id: str, algorithm: str, key: str
             ) -> dict[str, Any]:
    stamp = now()
    conn.execute(
        "INSERT INTO public_keys (user_id, algorithm, public_key, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, algorithm) DO UPDATE SET "
        "public_key = excluded.public_key, updated_at = excluded.updated_at "
        "WHERE public_key != excluded.public_key",
        (user_id, algorithm, key, stamp))
    found = rows(conn.execute("SELECT * FROM public_keys WHERE user_id = ? AND algorithm = ?",
                              (user_id, algorithm)))
    return found[0]


@router.put("/me/keys")
async def publish_key(body: PublishKey, user: User, api: Api) -> dict[str, Any]:
    """Publish (or replace) the caller's public key for ``algorithm``. Publishing the same
    key again changes nothing (``updated_at`` stays)."""
    raw = _raw_key(body)
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # one spelling per key
    row = await api.store.write(_publish, user.id, body.algorithm, text)
    return {"user_id": user.id, **_key_dict(row)}


def _keys(conn: sqlite3.Connection, user_id: str) -> list[dict[str, Any]] | None:
    if accounts.get_user(conn, user_id) is None:
        return None
    return rows(conn.execute("SELECT * FROM public_keys WHERE user_id = ? ORDER BY algorithm",
                             (user_id,)))


@router.get("/{user_id}/keys")
async def get_keys(user_id: str, user: User, api: Api) -> dict[str, Any]:
    """A user's published public keys (``keys`` is empty when they published none); 404
    for an unknown user."""
    found = await api.store.read(_keys, user_id)
    if found is None:
        raise not_found("user", user_id)
    return {"user_id": user_id, "keys": [_key_dict(r) for r in found]}


def _withdraw(conn: sqlite3.Connection, user_id: str) -> int:
    return conn.execute("DELETE FROM public_keys WHERE user_id = ?", (user_id,)).rowcount


@router.delete("/me/keys")
async def withdraw_keys(user: User, api: Api) -> dict[str, Any]:
    """Withdraw every public key of the caller (messages already sent stay readable by
    whoever holds the private key)."""
    removed = await api.store.write(_withdraw, user.id)
    return done("Public keys withdrawn", removed=removed)
