"""File encryption in the age format (pyrage), hashing with verification, and HMAC.

age files made here open with the ``age`` command line tool and the other way round:
recipients are ``age1...`` X25519 keys (or ``ssh-ed25519``/``ssh-rsa`` public keys), or
a passphrase (age's scrypt recipient).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any

import blake3
import pyrage

from security_toolkit.errors import Problem

AGE_BINARY = b"age-encryption.org/v1\n"
AGE_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
HASHES = ("sha256", "sha512", "blake2b", "blake3", "sha1")
HMACS = ("sha256", "sha512", "sha3_256")
# rage refuses a passphrase file whose scrypt work factor would take over ~16 s here, by a
# measurement it takes anew for every file: a busy moment makes a sound file look
# excessive. The refusal costs no scrypt work, so it is asked again after these pauses.
WORK_RETRY_PAUSES = (0.25, 0.5, 1.0)
_SCRYPT_STANZA = re.compile(rb"\n-> scrypt \S+ (\d+)\n")


def work_factor(data: bytes) -> int | None:
    """The scrypt work factor (log2 N) a passphrase age file names, None for others."""
    found = _SCRYPT_STANZA.search(data[:512]) if data.startswith(AGE_BINARY) else None
    return int(found.group(1)) if found else None


def _excessive_work(exc: Exception) -> bool:
    return "excessive work" in str(exc).lower()


def _work_refused(data: bytes, exc: Exception) -> Problem:
    """What a refused work factor means, in words: not a wrong passphrase."""
    factor = work_factor(data)
    # rage wraps the number in Unicode isolates: "around \u20688192\u2069 seconds".
    seconds = re.search(r"(\d+)\W*seconds", str(exc))
    estimate = f"about {seconds.group(1)} s" if seconds else "too long"
    named = f" (scrypt log N {factor})" if factor is not None else ""
    return Problem("file", f"this computer refused the file's passphrase work factor"
                           f"{named}: age estimated that opening it would take {estimate} "
                           "here right now, over its limit of about 16 s, which it measures "
                           "again for every file (a busy machine looks slow). The "
                           "passphrase was not tried, so it may well be right: try again "
                           "when the computer is less busy.", 503,
                   work_factor=factor, busy=True)


def _open_with_passphrase(data: bytes, passphrase: str) -> bytes:
    for pause in (*WORK_RETRY_PAUSES, None):
        try:
            return bytes(pyrage.passphrase.decrypt(data, passphrase))
        except pyrage.DecryptError as exc:
            if not _excessive_work(exc):
                raise
            if pause is None:
                raise _work_refused(data, exc) from None
        time.sleep(pause)
    raise AssertionError("unreachable")


def parse_recipients(texts: list[str]) -> list[Any]:
    """age recipients from text, each refusal naming ``recipients[i]``."""
    found: list[Any] = []
    for n, raw in enumerate(texts):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            if text.startswith("age1"):
                found.append(pyrage.x25519.Recipient.from_str(text))
            elif text.startswith("ssh-"):
                found.append(pyrage.ssh.Recipient.from_str(text))
            else:
                raise ValueError("not an age1... or ssh- public key")
        except (ValueError, pyrage.RecipientError) as exc:
            raise Problem(f"recipients[{n}]", f"not a usable recipient ({exc})") from None
    return found


def encrypt(data: bytes, *, recipients: list[str] | None = None,
            passphrase: str | None = None) -> bytes:
    """age-encrypt ``data`` for the recipients or with the passphrase (exactly one)."""
    if passphrase:
        if recipients:
            raise Problem("passphrase", "use recipients or a passphrase, not both (age "
                                        "allows only one passphrase recipient)")
        if len(passphrase) < 8:
            raise Problem("passphrase", "use at least 8 characters")
        return bytes(pyrage.passphrase.encrypt(data, passphrase))
    parsed = parse_recipients(recipients or [])
    if not parsed:
        raise Problem("recipients", "give at least one recipient or a passphrase")
    return bytes(pyrage.encrypt(data, parsed))


def _binary_head(data: bytes) -> bytes:
    """The first bytes of the age file itself: ``data``'s, or for the text ("armored",
    ``age -a``) form those its first base64 lines decode to."""
    text = data.lstrip()
    if not text.startswith(AGE_ARMOR):
        return data[:512]
    lines = text[len(AGE_ARMOR):].splitlines()[:12]
    encoded = b"".join(line.strip() for line in lines if not line.startswith(b"-----"))
    try:
        return base64.b64decode(encoded[:len(encoded) // 4 * 4])[:512]
    except ValueError:
        return b""


def is_passphrase_file(data: bytes) -> bool:
    """True for an age file (binary or armored) whose only stanza is scrypt (a
    passphrase): an armored one was taken for a file to a key and refused."""
    head = _binary_head(data)
    return head.startswith(AGE_BINARY) and b"\n-> scrypt " in head


def decrypt(data: bytes, *, identities: list[str] | None = None,
            passphrase: str | None = None) -> bytes:
    """Open an age file with our identities or a passphrase; clean errors for a file
    that is not age, a damaged one, a wrong passphrase and a file not for us."""
    if not (data.startswith(AGE_BINARY) or data.lstrip().startswith(AGE_ARMOR)):
        raise Problem("file", "not an age file (it should start with "
                              "'age-encryption.org/v1')")
    try:
        if is_passphrase_file(data):
            if not passphrase:
                raise Problem("passphrase", "this file was encrypted with a passphrase: "
                                            "enter it")
            return _open_with_passphrase(data, passphrase)
        keys = [pyrage.x25519.Identity.from_str(i) for i in (identities or [])]
        if not keys:
            raise Problem("file", "the vault holds no age identity to open this file")
        return bytes(pyrage.decrypt(data, keys))
    except pyrage.DecryptError as exc:
        text = str(exc).lower()
        if passphrase and is_passphrase_file(data) and ("passphrase" in text
                                                       or "decrypt" in text):
            if "header" in text or "parse" in text or "invalid" in text:
                raise Problem("file", f"the age file is damaged ({exc})") from None
            raise Problem("passphrase", "wrong passphrase, or the file is damaged") from None
        if "no matching keys" in text:
            raise Problem("file", "the file was not encrypted to your key") from None
        raise Problem("file", f"the age file is damaged ({exc})") from None


def digests(chunks: list[bytes] | bytes, algorithms: tuple[str, ...] = HASHES
            ) -> dict[str, str]:
    """Hex digests of the data for each algorithm (chunks are fed in order)."""
    hashers: dict[str, Any] = {}
    for name in algorithms:
        if name == "blake3":
            hashers[name] = blake3.blake3()
        elif name in HASHES:
            hashers[name] = hashlib.new(name)
        else:
            raise Problem("algorithm", f"unknown hash {name!r}; use one of {', '.join(HASHES)}")
    for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
        for hasher in hashers.values():
            hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def verify(found: dict[str, str], expected: str) -> dict[str, Any]:
    """Which of ``found`` equals ``expected`` (hex, any case; ``algo:hex`` or a line of
    ``sha256sum`` output work too)."""
    text = expected.strip().split()[0] if expected.strip() else ""
    if ":" in text:
        text = text.split(":", 1)[1]
    text = text.lower()
    if not text or any(c not in "0123456789abcdef" for c in text):
        raise Problem("expected", "give the expected digest in hex")
    for name, digest in found.items():
        if hmac.compare_digest(digest, text):
            return {"match": True, "algorithm": name}
    return {"match": False, "algorithm": None}


def _key(key: str, encoding: str) -> bytes:
    if encoding == "hex":
        try:
            return bytes.fromhex(key)
        except ValueError:
            raise Problem("key", "the key is not valid hex") from None
    return key.encode("utf-8")


def mac(message: bytes, key: str, *, algorithm: str = "sha256", key_encoding: str = "text",
        expected: str | None = None) -> dict[str, Any]:
    """HMAC of ``message``; with ``expected``, a constant-time comparison too."""
    if algorithm not in HMACS:
        raise Problem("algorithm", f"use one of {', '.join(HMACS)}")
    if not key:
        raise Problem("key", "an HMAC needs a key")
    digest = hmac.new(_key(key, key_encoding), message, algorithm).hexdigest()
    result: dict[str, Any] = {"algorithm": algorithm, "hmac": digest}
    if expected is not None and expected.strip():
        result["match"] = hmac.compare_digest(digest, expected.strip().lower())
    return result
