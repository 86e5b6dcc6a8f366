"""Vault entries: the input model, what a list may show and what a detail shows."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from security_toolkit import otp
from security_toolkit.errors import Problem
from security_toolkit.generator import strength
from security_toolkit.vault import now_iso

HISTORY = 10
# What a list response may carry. Passwords, notes, TOTP secrets and history never.
PUBLIC = ("id", "title", "username", "url", "folder", "tags", "created", "updated",
          "password_changed", "score")


class EntryIn(BaseModel):
    """An entry as the page (or an import) sends it."""

    title: str = Field(min_length=1, max_length=200)
    username: str = Field("", max_length=200)
    password: str = Field("", max_length=1024)
    url: str = Field("", max_length=2000)
    # Room for what other managers keep there (recovery codes, keys, custom fields):
    # at 20,000 an imported entry with longer notes was skipped whole.
    notes: str = Field("", max_length=200_000)
    totp: str = Field("", max_length=2000, description="otpauth:// URI or base32 secret")
    folder: str = Field("", max_length=200)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list,
                                                              max_length=100)


class EntryChange(EntryIn):
    """An edit of an entry: ``version`` is the entry's ``version`` when the editor opened
    it; a save over a change made since (another tab, a health fix) is refused instead of
    putting the old text back."""

    version: str | None = Field(None, max_length=64)


def version(entry: dict[str, Any]) -> str:
    """A digest of everything the entry holds: any change makes another (its ``updated``
    time, to the second, could not tell two changes of one second apart)."""
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_unchanged(entry: dict[str, Any], opened: str | None) -> None:
    """409 when the entry changed since the editor opened it at version ``opened``."""
    if opened is not None and version(entry) != opened:
        raise Problem("version", "this entry changed since you opened it (in another tab, "
                                 "or by a fix): open it again and redo your change", 409)


def _inputs(entry: dict[str, Any]) -> list[str]:
    host = urlsplit(entry.get("url", "")).hostname or ""
    return [entry.get("title", ""), entry.get("username", ""), host]


def score(entry: dict[str, Any]) -> int:
    """zxcvbn score of the entry's password, with its title, user and host as hints
    (a password containing the site's name is weaker than it looks)."""
    return int(strength(entry["password"], _inputs(entry))["score"]) if entry["password"] else 0


def _normal_totp(text: str) -> str:
    return otp.parse(text, "totp").uri() if text.strip() else ""


def new_entry(data: EntryIn, stamp: str | None = None, changed: str | None = None
              ) -> dict[str, Any]:
    """A new entry; ``changed`` (ISO time) is when its password last changed, if known
    from an import (else now)."""
    stamp = stamp or now_iso()
    entry = {"id": uuid.uuid4().hex, **data.model_dump(), "created": changed or stamp,
             "updated": stamp, "password_changed": changed or stamp, "history": []}
    entry["totp"] = _normal_totp(data.totp)
    entry["score"] = score(entry)
    return entry


def find(payload: dict[str, Any], entry_id: str) -> dict[str, Any]:
    for entry in payload["entries"]:
        if entry["id"] == entry_id:
            return entry
    raise Problem("entry_id", f"no entry {entry_id}", 404)


def set_password(entry: dict[str, Any], new: str, stamp: str | None = None) -> None:
    """Change the password, keeping the old one in the history (the site still wants it
    until the user has changed it there)."""
    if new == entry["password"]:
        return
    stamp = stamp or now_iso()
    if entry["password"]:
        # "since": its own age, so that an undo gives the old password back as old as it
        # was (the health report's "old" list must still name it).
        old = {"password": entry["password"], "until": stamp}
        if entry.get("password_changed"):
            old["since"] = entry["password_changed"]
        entry["history"] = [old, *entry.get("history", [])][:HISTORY]
    entry["password"] = new
    entry["password_changed"] = stamp
    entry["updated"] = stamp
    entry["score"] = score(entry)


def update(entry: dict[str, Any], data: EntryIn) -> None:
    fields = data.model_dump(exclude={"version"})
    password = fields.pop("password")
    fields["totp"] = _normal_totp(data.totp)
    entry.update(fields)
    entry["updated"] = now_iso()
    set_password(entry, password)
    entry["score"] = score(entry)


def restore_previous(entry: dict[str, Any]) -> None:
    """Undo the last password change: the history's newest becomes current again, and
    the password it replaces goes into the history (as KeePassXC keeps it): the site may
    have it already, and an undo threw a generated password away for good."""
    history = entry.get("history") or []
    if not history:
        raise Problem("entry_id", "this entry has no previous password", 409)
    previous = history.pop(0)
    stamp = now_iso()
    if entry["password"] and entry["password"] != previous["password"]:
        replaced = {"password": entry["password"], "until": stamp}
        if entry.get("password_changed"):
            replaced["since"] = entry["password_changed"]
        history.insert(0, replaced)
    entry["history"] = history[:HISTORY]
    entry["password"] = previous["password"]
    # Items from before "since" was kept: the change's time is the best known.
    entry["password_changed"] = previous.get("since") or previous["until"]
    entry["updated"] = stamp
    entry["score"] = score(entry)


def listing(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry in a list: no password, notes, TOTP secret or history."""
    shown = {k: entry.get(k) for k in PUBLIC}
    shown["has_password"] = bool(entry.get("password"))
    shown["has_totp"] = bool(entry.get("totp"))
    shown["has_notes"] = bool(entry.get("notes"))
    shown["history_count"] = len(entry.get("history") or [])
    return shown


def detail(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry with its secrets, for the editor (asked for one at a time)."""
    shown = listing(entry)
    shown.update(password=entry["password"], notes=entry.get("notes", ""),
                 totp=entry.get("totp", ""), version=version(entry),
                 history=[{"until": h["until"]} for h in entry.get("history") or []])
    return shown


def matches(entry: dict[str, Any], query: str) -> bool:
    q = query.lower()
    return any(q in str(entry.get(k, "")).lower() for k in ("title", "username", "url",
                                                             "folder")) or any(
        q in t.lower() for t in entry.get("tags") or [])
