"""Checks of a v1 backup archive on disk, without restoring it anywhere.

The archive is the zip made by ``/api/v1/backup`` (``manifest.json``,
``plexichat.sqlite3``, ``files/<xx>/<id>``; see docs/api-v1.md). :func:`check_archive`
does what ``unzip -t`` and ``borg check --verify-data`` do for it: every member's CRC,
the manifest, SQLite's ``integrity_check`` of the database inside, and the database's
row counts against the manifest's.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DB_NAME = "plexichat.sqlite3"
COUNTED = ("users", "messages", "files", "groups", "notifications", "webhooks")
_FILE_ENTRY = re.compile(r"^files/[0-9a-f]{2}/[0-9a-f-]{36}$")
_CHUNK = 1 << 20


class ArchiveProblem(ValueError):
    """The archive failed a check; the message says which and why."""


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """The file's SHA-256 (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done)
    return digest.hexdigest()


def read_manifest(path: Path) -> dict[str, Any]:
    """The archive's ``manifest.json``; raises :class:`ArchiveProblem`."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json"))
    except KeyError:
        raise ArchiveProblem("the archive has no manifest.json") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveProblem(f"not a readable zip archive ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArchiveProblem("manifest.json is not an object")
    return manifest


def count_rows(db: Path) -> dict[str, int]:
    """Rows of the counted tables in a v1 database (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in COUNTED}
    finally:
        conn.close()


def integrity(db: Path) -> list[str]:
    """SQLite's ``integrity_check`` answer: ``["ok"]`` when sound."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [str(row[0]) for row in conn.execute("PRAGMA integrity_check(20)")]
    finally:
        conn.close()


def check_archive(path: Path, work_dir: Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Test the archive; returns ``{members, bytes, manifest, counts, integrity}``.

    Raises :class:`ArchiveProblem` naming the first check that failed: a member whose
    CRC does not match (bit rot, a flipped byte), an unexpected member, no database or
    manifest, a database SQLite finds damaged, or counts that differ from the manifest.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveProblem(f"not a readable zip archive ({exc})") from None
    with zf, tempfile.TemporaryDirectory(dir=work_dir, prefix=".test-") as tmp:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        odd = [n for n in names if n not in (DB_NAME, "manifest.json")
               and not _FILE_ENTRY.match(n)]
        if odd:
            raise ArchiveProblem(f"unexpected members: {', '.join(sorted(odd)[:5])}")
        if DB_NAME not in names or "manifest.json" not in names:
            raise ArchiveProblem("the archive has no database or no manifest; it is not a "
                                 "PlexiChat v1 backup")
        total = sum(i.file_size for i in infos) or 1
        done = 0
        for info in infos:
            # Reading a member to its end makes zipfile compare its CRC-32.
            try:
                with zf.open(info) as member:
                    if info.filename == DB_NAME:
                        target = Path(tmp) / DB_NAME
                        with target.open("wb") as out:
                            while chunk := member.read(_CHUNK):
                                out.write(chunk)
                    else:
                        while member.read(_CHUNK):
                            pass
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise ArchiveProblem(f"member {info.filename} is damaged ({exc})") from None
            done += info.file_size
            if progress is not None:
                progress(done, total)
        manifest = read_manifest(path)
        db = Path(tmp) / DB_NAME
        try:
            check = integrity(db)
            counts = count_rows(db)
        except sqlite3.DatabaseError as exc:
            raise ArchiveProblem(f"the database inside is unreadable ({exc})") from None
        if check != ["ok"]:
            raise ArchiveProblem(f"the database inside is damaged: {'; '.join(check[:3])}")
    expected = manifest.get("counts") or {}
    wrong = {t: (expected.get(t), counts[t]) for t in COUNTED if expected.get(t) != counts[t]}
    if wrong:
        detail = ", ".join(f"{t}: manifest {m}, database {d}" for t, (m, d) in wrong.items())
        raise ArchiveProblem(f"the database's counts differ from the manifest: {detail}")
    file_members = sum(1 for n in names if n.startswith("files/"))
    if manifest.get("file_count") not in (None, file_members):
        raise ArchiveProblem(f"the manifest lists {manifest.get('file_count')} files, the "
                             f"archive holds {file_members}")
    return {"members": len(names), "bytes": total, "manifest": manifest, "counts": counts,
            "file_members": file_members, "integrity": "ok"}
