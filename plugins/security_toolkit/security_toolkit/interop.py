"""Import and export: KeePass KDBX 4 (pykeepass), Bitwarden CSV and KeePassXC CSV.

Imports produce plain entry dicts (``title``, ``username``, ``password``, ``url``,
``notes``, ``totp``, ``folder``, ``tags`` and, when the source has it, ``changed``: when the
entry was last modified, so the health report's "old" check means something right after
an import); the vault module gives them ids and stamps.
Every refusal names the field, and a CSV refusal the line number.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

from security_toolkit.errors import Problem

BITWARDEN = ["folder", "favorite", "type", "name", "notes", "fields", "reprompt", "login_uri",
             "login_username", "login_password", "login_totp"]
KEEPASSXC = ["Group", "Title", "Username", "Password", "URL", "Notes", "TOTP", "Icon",
             "Last Modified", "Created"]
MAX_FIELD = 100_000
# An empty KDBX 4 database (Argon2d, 1 pass, 1 MiB, password "blank-template") made once
# from pykeepass's own template: pykeepass's create_database opens its template with
# 64 MiB x 14 passes, seconds per export. Exports set the real password and costs.
BLANK = Path(__file__).with_name("data") / "blank.kdbx"
BLANK_PASSWORD = "blank-template"


def _detect(header: list[str]) -> str:
    names = {h.strip() for h in header}
    if {"name", "login_password"} <= names:
        return "bitwarden"
    if {"Title", "Password"} <= names:
        return "keepassxc"
    raise Problem("csv", "line 1: unknown columns; expected a Bitwarden export (name, "
                         "login_username, login_password, ...) or a KeePassXC export "
                         "(Title, Username, Password, ...)")


def read_csv(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Entries from a Bitwarden or KeePassXC CSV export; returns (format, entries)."""
    if not text.strip():
        raise Problem("csv", "line 1: the file is empty")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    entries: list[dict[str, Any]] = []
    try:
        header = next(reader)
        kind = _detect(header)
        width = len(header)
        columns = [h.strip() for h in header]
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != width:
                raise Problem("csv", f"line {line}: {len(row)} fields where the header has "
                                     f"{width} (a quote not closed, or a stray comma?)")
            if any(len(c) > MAX_FIELD for c in row):
                raise Problem("csv", f"line {line}: a field is over {MAX_FIELD} characters")
            record = dict(zip(columns, row, strict=True))
            entry = _from_bitwarden(record) if kind == "bitwarden" else _from_keepassxc(record)
            if "skipped" in entry:
                entries.append(entry)  # said in the import's warnings
                continue
            if not entry["title"] and not entry["username"] and not entry["password"]:
                raise Problem("csv", f"line {line}: no title, username or password")
            entries.append(entry)
    except csv.Error as exc:
        raise Problem("csv", f"line {reader.line_num}: {exc}") from None
    return kind, entries


def with_fields(notes: str, fields: list[tuple[str, str]]) -> str:
    """``notes`` with custom fields appended as "name: value" lines (the vault has no
    place of its own for them; dropped, a PIN or a security answer was lost)."""
    lines = [f"{name}: {value}" for name, value in fields if name or value]
    if not lines:
        return notes
    block = "Custom fields:\n" + "\n".join(lines)
    return f"{notes.rstrip()}\n\n{block}" if notes.strip() else block


def _from_bitwarden(r: dict[str, str]) -> dict[str, Any]:
    kind = (r.get("type") or "login").strip().lower()
    title = r.get("name", "")
    if kind not in ("login", "note"):
        # Bitwarden's CSV carries none of a card's or an identity's own fields.
        return {"skipped": f"a Bitwarden {kind} ({title[:40]!r}) is not in a CSV export "
                           "with its fields: export as JSON or copy it by hand",
                "title": title}
    custom = [tuple(part.strip() for part in line.split(":", 1)) if ":" in line
              else ("", line.strip()) for line in (r.get("fields") or "").splitlines()]
    return {"title": title, "username": r.get("login_username", ""),
            "password": r.get("login_password", ""), "url": r.get("login_uri", ""),
            "notes": with_fields(r.get("notes", ""), custom),  # type: ignore[arg-type]
            "totp": r.get("login_totp", ""), "folder": r.get("folder", ""), "tags": []}


def _stamp(text: str | None) -> str | None:
    """An ISO 8601 time (``Z`` allowed) as UTC ISO text, or None when unreadable."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def _from_keepassxc(r: dict[str, str]) -> dict[str, Any]:
    group = r.get("Group", "")
    # KeePassXC writes the root group's name ("Root") first; drop it.
    folder = group.split("/", 1)[1] if group.startswith("Root/") else (
        "" if group == "Root" else group)
    written = (r.get("Last Modified") or "").strip()
    entry = {"title": r.get("Title", ""), "username": r.get("Username", ""),
             "password": r.get("Password", ""), "url": r.get("URL", ""),
             "notes": r.get("Notes", ""), "totp": r.get("TOTP", ""), "folder": folder,
             "tags": [], "changed": _stamp(written)}
    if written and entry["changed"] is None:
        entry["changed_unread"] = written  # said in the import's warnings
    return entry


def write_csv(entries: list[dict[str, Any]], kind: str) -> str:
    """The entries as a CSV the other tool imports (plain text: warn the user)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if kind == "bitwarden":
        writer.writerow(BITWARDEN)
        for e in entries:
            writer.writerow([e.get("folder", ""), "", "login", e["title"], e.get("notes", ""),
                             "", "0", e.get("url", ""), e.get("username", ""),
                             e.get("password", ""), e.get("totp", "")])
    elif kind == "keepassxc":
        writer.writerow(KEEPASSXC)
        for e in entries:
            group = "Root/" + e["folder"] if e.get("folder") else "Root"
            writer.writerow([group, e["title"], e.get("username", ""), e.get("password", ""),
                             e.get("url", ""), e.get("notes", ""), e.get("totp", ""), "0",
                             e.get("password_changed", ""), e.get("created", "")])
    else:
        raise Problem("format", "use 'bitwarden' or 'keepassxc'")
    return out.getvalue()


# Key-derivation costs a KDBX file may ask for before we derive its key: the file is
# someone else's and its header is read before anything is authenticated, so a crafted
# one could otherwise pin a worker thread for ever (AES-KDF runs pykeepass's Python loop
# once per round, 2**64 rounds allowed) or allocate terabytes (Argon2 memory). The Argon2
# bounds are the vault's own; AES-KDF: KeePassXC's one-second benchmark stays well below.
MAX_AES_KDF_ROUNDS = 100_000_000


def _kdbx_header(data: bytes) -> Any:
    from construct import Bytes, Int16ul, Struct, Switch, this
    from pykeepass.kdbx_parsing.kdbx3 import DynamicHeader as Header3
    from pykeepass.kdbx_parsing.kdbx4 import DynamicHeader as Header4

    layout = Struct("sig1" / Bytes(4), "sig2" / Bytes(4), "minor_version" / Int16ul,
                    "major_version" / Int16ul,
                    "dynamic_header" / Switch(this.major_version,
                                              {3: Header3, 4: Header4}))
    return layout.parse(data)


def check_kdbx_costs(data: bytes) -> None:
    """Refuse (422 on ``file``) a KDBX file whose key derivation is beyond the bounds,
    before pykeepass runs it."""
    from security_toolkit.vault import MAX_MEMORY_KIB, MAX_PARALLELISM, MAX_TIME_COST

    try:
        header = _kdbx_header(data)
        dynamic = header.dynamic_header
        if header.major_version == 3:
            costs = {"R": int(dynamic.transform_rounds.data)}
        elif header.major_version == 4:
            params = dynamic.kdf_parameters.data.dict
            costs = {key: int(params[key].value) for key in ("R", "I", "M", "P")
                     if key in params}
        else:
            raise ValueError(f"KDBX version {header.major_version}")
    except Exception as exc:  # construct raises many types for a damaged header
        raise Problem("file", f"the KeePass database could not be read ({type(exc).__name__}"
                              ")") from None
    limits = {"R": ("AES-KDF rounds", MAX_AES_KDF_ROUNDS),
              "I": ("Argon2 iterations", MAX_TIME_COST),
              "M": ("Argon2 memory (bytes)", MAX_MEMORY_KIB * 1024),
              "P": ("Argon2 parallelism", MAX_PARALLELISM)}
    for key, value in costs.items():
        name, limit = limits[key]
        if value > limit:
            raise Problem("file", f"the KeePass database asks for {name} of {value}, over "
                                  f"the limit of {limit}: refused rather than spending "
                                  "that memory or time (re-save it with lower costs)")


def read_kdbx(data: bytes, password: str, keyfile: bytes | None = None
              ) -> list[dict[str, Any]]:
    """Entries of a KeePass database (KDBX 3.1 or 4)."""
    if not data.startswith(b"\x03\xd9\xa2\x9a"):
        raise Problem("file", "not a KeePass database (.kdbx)")
    check_kdbx_costs(data)
    # pykeepass (and its crypto) is imported when a KeePass file is read or written:
    # ~70 ms of every app start otherwise.
    from pykeepass import PyKeePass
    from pykeepass.exceptions import (
        CredentialsError,
        HeaderChecksumError,
        PayloadChecksumError,
    )

    try:
        kp = PyKeePass(io.BytesIO(data), password=password or None,
                       keyfile=io.BytesIO(keyfile) if keyfile else None)
    except CredentialsError:
        raise Problem("password", "wrong password (or key file) for the KeePass "
                                  "database") from None
    except (HeaderChecksumError, PayloadChecksumError) as exc:
        raise Problem("file", f"the KeePass database is damaged ({exc})") from None
    except Exception as exc:  # construct raises many types for a truncated file
        raise Problem("file", f"the KeePass database could not be read ({type(exc).__name__}"
                              ")") from None
    found: list[dict[str, Any]] = []
    bin_group = kp.recyclebin_group
    binned = 0
    for entry in kp.entries:
        if entry.is_a_history_entry:
            continue
        if bin_group is not None and _inside(entry.group, bin_group):
            binned += 1  # deleted in KeePass: came back as live entries
            continue
        path = [g for g in (entry.group.path or []) if g]
        custom = [(name, value or "") for name, value in
                  (entry.custom_properties or {}).items() if name != "otp"]
        item: dict[str, Any] = {
            "title": entry.title or "", "username": entry.username or "",
            "password": entry.password or "", "url": entry.url or "",
            "notes": with_fields(entry.notes or "", custom), "totp": entry.otp or "",
            "folder": "/".join(path), "tags": list(entry.tags or []),
            "changed": entry.mtime.astimezone(dt.UTC).replace(microsecond=0).isoformat()
            if entry.mtime else None,
        }
        names = [a.filename for a in entry.attachments or []]
        if names:
            item["notice"] = (f"{len(names)} attachment(s) not imported (the vault keeps "
                              f"no files): {', '.join(n[:40] for n in names[:5])}")
        found.append(item)
    if binned:
        found.append({"skipped": f"{binned} entries in KeePass's Recycle Bin were left "
                                 "out (deleted there)", "title": ""})
    return found


def _inside(group: Any, ancestor: Any) -> bool:
    while group is not None:
        if group.uuid == ancestor.uuid:
            return True
        group = group.parentgroup
    return False


def write_kdbx(entries: list[dict[str, Any]], password: str, *, time_cost: int = 10,
               memory_kib: int = 65536, parallelism: int = 2) -> bytes:
    """A KDBX 4 database with the entries, protected by ``password`` and Argon2 with the
    given costs (KeePassXC's defaults are in the same range)."""
    if len(password) < 8:
        raise Problem("password", "protect the export with at least 8 characters")
    from pykeepass import PyKeePass

    kp = PyKeePass(io.BytesIO(BLANK.read_bytes()), password=BLANK_PASSWORD)
    kp.password = password
    kdf = kp.kdbx.header.value.dynamic_header.kdf_parameters.data.dict
    kdf["I"].value, kdf["M"].value, kdf["P"].value = time_cost, memory_kib * 1024, parallelism
    groups: dict[str, Any] = {"": kp.root_group}
    for e in entries:
        group = kp.root_group
        path = ""
        for part in [p for p in e.get("folder", "").split("/") if p]:
            path = f"{path}/{part}"
            if path not in groups:
                groups[path] = kp.add_group(group, part)
            group = groups[path]
        history = [h.get("password", "") for h in e.get("history") or []]
        # The earlier passwords go in as KeePass history, oldest first (they were left
        # out: the site may still want one of them).
        added = kp.add_entry(group, e["title"] or "(untitled)", e.get("username", ""),
                             history[-1] if history else e.get("password", ""),
                             url=e.get("url") or None,
                             notes=e.get("notes") or None, tags=e.get("tags") or None,
                             otp=e.get("totp") or None, force_creation=True)
        for newer in [*reversed(history[:-1]), e.get("password", "")] if history else []:
            added.save_history()
            added.password = newer
        # KeePass has no "password changed" time; its modification time is the closest,
        # and what a later import reads back.
        changed = _stamp(e.get("password_changed"))
        if changed:
            added.mtime = dt.datetime.fromisoformat(changed)
    out = io.BytesIO()
    kp.save(out)
    return out.getvalue()
