"""Password-based encryption of off-site copies: scrypt + AES-256-GCM in 1 MiB chunks.

The construction is age's STREAM (and Tink's streaming AEAD): every chunk is sealed on
its own with a nonce of ``7-byte random prefix || 4-byte chunk counter || final flag``,
and the file header (format, scrypt parameters, salt, prefix, chunk size) is the
associated data of every chunk. So a file of any size is encrypted and checked in
constant memory, and reordered, dropped, truncated or appended chunks, or a changed
header, all fail authentication; nothing decrypted is ever handed out unchecked
(:func:`decrypt_file` writes a temp file and renames it only once the last chunk
passed).

Layout: ``PXSMENC1`` | log2(N) r p (1 byte each) | salt (16) | nonce prefix (7) |
chunk size (4, big-endian) | chunks (ciphertext + 16-byte tag each).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

MAGIC = b"PXSMENC1"
SUFFIX = ".pxenc"
CHUNK = 1 << 20
TAG = 16
_HEADER = struct.Struct(">8sBBB16s7sI")
DEFAULT_LOG_N = 15  # scrypt N = 32768, r = 8: about 32 MiB and 0.1 s per password


class DecryptionError(ValueError):
    """Wrong password, or the file was damaged or tampered with."""


class WrongPassword(DecryptionError):
    """The first chunk does not open with the password: a wrong password (or a damaged
    start of the file, which looks the same)."""


def available() -> bool:
    """Whether the ``cryptography`` package is installed."""
    try:
        import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
    except ImportError:
        return False
    return True


def _key(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=1 << log_n, r=r, p=p).derive(password.encode())


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    if counter >= 1 << 32:
        raise ValueError("file too large for one encryption stream")
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def encrypt_file(source: Path, target: Path, password: str, *, log_n: int = DEFAULT_LOG_N,
                 chunk: int = CHUNK, progress: Callable[[int], None] | None = None) -> None:
    """Encrypt ``source`` into ``target`` (written as given; the caller renames)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not password:
        raise ValueError("password: an empty password cannot encrypt")
    salt, prefix = os.urandom(16), os.urandom(7)
    header = _HEADER.pack(MAGIC, log_n, 8, 1, salt, prefix, chunk)
    aead = AESGCM(_key(password, salt, log_n, 8, 1))
    counter = done = 0
    with source.open("rb") as src, target.open("wb") as out:
        out.write(header)
        block = src.read(chunk)
        while True:
            following = src.read(chunk)
            final = not following
            out.write(aead.encrypt(_nonce(prefix, counter, final), block, header))
            done += len(block)
            if progress is not None:
                progress(done)
            if final:
                break
            counter += 1
            block = following


def read_header(path: Path) -> dict[str, int]:
    """The scrypt parameters and chunk size of an encrypted file; raises
    :class:`DecryptionError` when it is not one."""
    with path.open("rb") as fh:
        raw = fh.read(_HEADER.size)
    if len(raw) < _HEADER.size or not raw.startswith(MAGIC):
        raise DecryptionError(f"{path.name}: not an encrypted System Manager copy")
    _magic, log_n, r, p, _salt, _prefix, chunk = _HEADER.unpack(raw)
    return {"log_n": log_n, "r": r, "p": p, "chunk": chunk}


def _chunks(source: Path, password: str) -> Iterator[tuple[int, bytes]]:
    """The plain chunks of ``source`` with their sizes on disk, each checked as it is
    read; raises :class:`WrongPassword` for the first, :class:`DecryptionError` for a
    later one or a header that is not one of ours."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with source.open("rb") as src:
        header = src.read(_HEADER.size)
        if len(header) < _HEADER.size or not header.startswith(MAGIC):
            raise DecryptionError(f"{source.name}: not an encrypted System Manager copy")
        _magic, log_n, r, p, salt, prefix, chunk = _HEADER.unpack(header)
        # What encrypt_file can write (scrypt_log_n is 10-20, r 8, p 1), no more: a
        # crafted header of N = 2**22, r = 32 made scrypt take 16 GiB (128 r N bytes)
        # before the password was even checked.
        if not (10 <= log_n <= 20 and 1 <= r <= 8 and 1 <= p <= 4
                and 1024 <= chunk <= 64 << 20):
            raise DecryptionError(f"{source.name}: implausible header (damaged?)")
        aead = AESGCM(_key(password, salt, log_n, r, p))
        counter = 0
        block = src.read(chunk + TAG)
        while True:
            following = src.read(chunk + TAG)
            final = not following
            try:
                plain = aead.decrypt(_nonce(prefix, counter, final), block, header)
            except InvalidTag:
                if counter == 0:
                    raise WrongPassword(f"{source.name}: wrong password or damaged "
                                        "file") from None
                raise DecryptionError(f"{source.name}: chunk {counter} is damaged or the "
                                      "file was cut short") from None
            yield len(block), plain
            if final:
                return
            counter += 1
            block = following


def opens(source: Path, password: str) -> bool:
    """Whether ``password`` opens ``source`` (its first chunk only: about the cost of one
    password check)."""
    try:
        next(_chunks(source, password))
    except WrongPassword:
        return False
    return True


def decrypt_file(source: Path, target: Path, password: str,
                 progress: Callable[[int], None] | None = None) -> None:
    """Decrypt ``source`` into ``target``; raises :class:`WrongPassword` or
    :class:`DecryptionError` (and leaves no ``target``) for a wrong password or a
    damaged file."""
    partial = target.with_name(target.name + ".partial")
    try:
        done = 0
        with partial.open("wb") as out:
            for size, plain in _chunks(source, password):
                out.write(plain)
                done += size
                if progress is not None:
                    progress(done)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
