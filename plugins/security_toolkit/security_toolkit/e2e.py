"""End-to-end encrypted direct messages over PlexiChat v1: X25519 + HKDF + AES-256-GCM.

Each user has one X25519 key pair, kept in their vault. Public keys travel through the v1
key directory (``PUT /users/me/keys``, ``GET /users/{id}/keys``) or by hand (the key text,
``stk1:...``), and are pinned per contact on first use; both sides compare the pair's
*safety number* out of band (read aloud, in person) and mark the contact verified, since
a server could hand out a key of its own.

A message (``content`` of a v1 message sent with ``encrypted=true``) is
``stk-e2e1:`` + base64url(JSON) holding:

* ``s``: the sender's public key, ``e``: a fresh ephemeral public key;
* ``n``/``c``: nonce and AES-256-GCM ciphertext of the text under a random content key,
  with the v1 sender and recipient ids as associated data (the server cannot replay a
  message into another conversation);
* ``k``: the content key wrapped for each reader (the recipient, and the sender so they
  can read their own history), each under
  HKDF-SHA256(X25519(e, R) || X25519(s, R), salt = e || s || R).

The static-static term authenticates the sender (only the holder of ``s`` or ``R`` can
compute it); the ephemeral term gives each message a fresh key. There is no ratchet:
a stolen private key opens past messages (a documented limit, unlike Signal).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from security_toolkit.errors import Problem

PREFIX = "stk-e2e1:"
KEY_PREFIX = "stk1:"
INFO = b"security_toolkit e2e v1 wrap"
MAX_TEXT = 6000  # v1 allows 10,000 characters of content; base64 and wraps take the rest


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def new_private() -> str:
    """A new private key, as stored in the vault (base64url of the 32 raw bytes)."""
    key = X25519PrivateKey.generate()
    return _b64(key.private_bytes(serialization.Encoding.Raw,
                                  serialization.PrivateFormat.Raw,
                                  serialization.NoEncryption()))


def load_private(text: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_unb64(text))


def public_text(private: str) -> str:
    """The shareable public key: ``stk1:`` + base64url of its 32 bytes."""
    return KEY_PREFIX + _b64(_raw(load_private(private).public_key()))


def parse_public(text: str, field: str = "public_key") -> bytes:
    """The 32 raw bytes of a ``stk1:`` key, refusing anything else by ``field``."""
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise Problem(field, f"a public key starts with '{KEY_PREFIX}'")
    try:
        raw = _unb64(text[len(KEY_PREFIX):])
    except ValueError:
        raise Problem(field, "the key is not valid base64url") from None
    if len(raw) != 32:
        raise Problem(field, f"the key is {len(raw)} bytes, an X25519 key has 32")
    try:  # a small-order point (all-zero, one...): every shared secret with it is zero
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        raise Problem(field, "not a usable X25519 public key (a point of small order)"
                      ) from None
    return raw


def directory_text(public_raw: bytes) -> str:
    """The spelling of the v1 key directory: base64url of the raw key, no prefix."""
    return _b64(public_raw)


def from_directory(text: str) -> str:
    """A key from the v1 key directory as ``stk1:`` text (checked like one typed in)."""
    key = KEY_PREFIX + text.strip().rstrip("=")
    parse_public(key, "public_key")
    return key


def fingerprint(public_raw: bytes) -> str:
    """30 digits in six groups, from SHA-256 of the key (easy to read aloud)."""
    digest = hashlib.sha256(b"stk-fingerprint\x00" + public_raw).digest()
    groups = [int.from_bytes(digest[i:i + 5], "big") % 100000 for i in range(0, 30, 5)]
    return " ".join(f"{g:05d}" for g in groups)


def safety_number(mine: bytes, theirs: bytes) -> str:
    """Both fingerprints, the lower first: the same 60 digits on both screens."""
    a, b = sorted([fingerprint(mine), fingerprint(theirs)])
    return f"{a} {b}"


def _wrap_key(shared: bytes, eph: bytes, sender: bytes, reader: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=eph + sender + reader, info=INFO).derive(shared)


def _aad(sender_id: str, recipient_id: str) -> bytes:
    return f"stk-e2e1|{sender_id}|{recipient_id}".encode()


def seal(text: str, private: str, recipient_public: bytes, sender_id: str,
         recipient_id: str) -> str:
    """The message content for v1: readable by the recipient and by the sender."""
    if not text.strip():
        raise Problem("text", "the message is empty")
    if len(text) > MAX_TEXT:
        raise Problem("text", f"at most {MAX_TEXT} characters can be sent encrypted")
    me = load_private(private)
    me_pub = _raw(me.public_key())
    eph = X25519PrivateKey.generate()
    eph_pub = _raw(eph.public_key())
    content_key = AESGCM.generate_key(256)
    nonce = secrets.token_bytes(12)
    ciphertext = AESGCM(content_key).encrypt(nonce, text.encode(), _aad(sender_id,
                                                                        recipient_id))
    wraps = []
    for reader in {recipient_public, me_pub}:
        reader_key = X25519PublicKey.from_public_bytes(reader)
        shared = eph.exchange(reader_key) + me.exchange(reader_key)
        wrap_nonce = secrets.token_bytes(12)
        wrapped = AESGCM(_wrap_key(shared, eph_pub, me_pub, reader)).encrypt(
            wrap_nonce, content_key, b"wrap")
        wraps.append({"r": _b64(hashlib.sha256(reader).digest()[:8]), "n": _b64(wrap_nonce),
                      "w": _b64(wrapped)})
    body = {"v": 1, "s": _b64(me_pub), "e": _b64(eph_pub), "n": _b64(nonce),
            "c": _b64(ciphertext), "k": wraps}
    return PREFIX + _b64(json.dumps(body, separators=(",", ":")).encode())


def open_sealed(content: str, private: str, sender_id: str, recipient_id: str
                ) -> tuple[str, bytes]:
    """(text, the sender's public key) of a sealed message; :class:`Problem` when it is
    not ours to read, damaged or altered."""
    if not content.startswith(PREFIX):
        raise Problem("content", "not an end-to-end encrypted message")
    try:
        body = json.loads(_unb64(content[len(PREFIX):]))
        sender_pub, eph_pub = _unb64(body["s"]), _unb64(body["e"])
        nonce, ciphertext = _unb64(body["n"]), _unb64(body["c"])
        wraps = list(body["k"])
    except (ValueError, KeyError, TypeError):
        raise Problem("content", "the encrypted message is damaged") from None
    me = load_private(private)
    me_pub = _raw(me.public_key())
    tag = _b64(hashlib.sha256(me_pub).digest()[:8])
    mine = [w for w in wraps if isinstance(w, dict) and w.get("r") == tag]
    if not mine:
        raise Problem("content", "this message was not encrypted to your current key")
    try:
        shared = (me.exchange(X25519PublicKey.from_public_bytes(eph_pub))
                  + me.exchange(X25519PublicKey.from_public_bytes(sender_pub)))
        content_key = AESGCM(_wrap_key(shared, eph_pub, sender_pub, me_pub)).decrypt(
            _unb64(mine[0]["n"]), _unb64(mine[0]["w"]), b"wrap")
        text = AESGCM(content_key).decrypt(nonce, ciphertext, _aad(sender_id, recipient_id))
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise Problem("content", "the message failed authentication (altered, or moved "
                                 "from another conversation)") from None
    try:
        # Authentic, but its sender sealed bytes that are no text: one unreadable message,
        # not an error for the whole conversation.
        return text.decode("utf-8"), sender_pub
    except UnicodeDecodeError:
        raise Problem("content", "the message is not text (its sender's app sealed "
                                 "something else)") from None


def describe_contact(contact: dict[str, Any], mine: bytes) -> dict[str, Any]:
    """A contact as the page shows it (public data only)."""
    theirs = parse_public(contact["public_key"])
    return {"user_id": contact["user_id"], "username": contact.get("username", ""),
            "public_key": contact["public_key"], "fingerprint": fingerprint(theirs),
            "safety_number": safety_number(mine, theirs),
            "verified": bool(contact.get("verified")), "added": contact.get("added"),
            "source": contact.get("source", "by hand")}
