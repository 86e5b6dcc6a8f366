"""Download headers for plugin routes: any name a user gave (a dashboard titled in
Japanese, a chat with quotes in its title) becomes a valid ``Content-Disposition``.

An HTTP header is Latin-1 at most: a name written into it as it is made the server fail
with a ``UnicodeEncodeError`` (a 500) for every title outside Latin-1, and a quote or a
line break in it would break the header. ``attachment_headers`` sends the name twice, as
RFC 6266 says: ``filename*`` in UTF-8 (what Chromium, and so the app's window and its
download bar, use) and ``filename`` as an ASCII stand-in for clients without it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# Longest name kept (characters): file systems allow 255 bytes, and UTF-8 takes up to 4.
MAX_NAME = 120
_UNSAFE = re.compile(r'[\\/:*?"<>|]')  # separators and what Windows refuses in a name


def clean_filename(name: str, default: str = "download") -> str:
    """``name`` made a plain file name: no folder part, no control characters, no
    characters Windows refuses, no leading dots (a hidden file) and at most
    :data:`MAX_NAME` characters, keeping its extension; ``default`` when nothing is left."""
    text = "".join(" " if unicodedata.category(c).startswith("C") else c
                   for c in unicodedata.normalize("NFC", name))
    text = " ".join(_UNSAFE.sub("_", text).split()).lstrip(".").strip()
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        text = (stem[:MAX_NAME - len(ext) - 1] + dot + ext if dot and len(ext) <= 10
                else text[:MAX_NAME])
    return text or default


def attachment_headers(name: str, default: str = "download") -> dict[str, str]:
    """The ``Content-Disposition`` header that downloads a response as ``name`` (cleaned
    by :func:`clean_filename`), to pass as ``headers=`` (merge it with others you send)."""
    clean = clean_filename(name, default)
    fallback = clean.encode("ascii", "replace").decode("ascii").replace("?", "_")
    header = f'attachment; filename="{fallback}"'
    if fallback != clean:
        header += f"; filename*=UTF-8''{quote(clean, safe='')}"
    return {"Content-Disposition": header}
