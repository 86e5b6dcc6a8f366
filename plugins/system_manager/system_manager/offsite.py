"""Off-site copies of backup archives in a folder (a second disk, a USB stick, a share).

Every copy is three files side by side, named after the backup's time and id::

    plexichat-20261206-031500-1a2b3c4d.zip          (or .zip.pxenc when encrypted)
    plexichat-20261206-031500-1a2b3c4d.zip.sha256   ``sha256sum -c`` can check it
    plexichat-20261206-031500-1a2b3c4d.json         the backup record: checksum, counts

The copy is written to a hidden ``.partial`` name, flushed to the device, renamed, and
then read back and hashed: only a copy whose bytes on the target match is kept. A
folder that does not exist is an error, never created: an unplugged drive's mount
point must not silently fill the system disk. Keep-N deletes only files of this naming
scheme, oldest first, never the copy just made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from system_manager import crypto
from system_manager.archive import sha256_of

PREFIX = "plexichat-"
_COPY = re.compile(r"^plexichat-\d{8}-\d{6}-[0-9a-f]{8}\.json$")


class OffsiteError(RuntimeError):
    """The copy could not be made; the message names the target and the reason."""


def _stem(record: dict[str, Any]) -> str:
    created = record.get("created_at") or datetime.now(UTC).isoformat()
    when = datetime.fromisoformat(str(created).replace("Z", "+00:00")).astimezone(UTC)
    return f"{PREFIX}{when:%Y%m%d-%H%M%S}-{str(record['id']).replace('-', '')[:8]}"


def check_folder(folder: Path, name: str, need: int = 0) -> None:
    """Raise :class:`OffsiteError` unless ``folder`` exists, is a writable directory and
    has ``need`` bytes free (plus 5 %)."""
    if not folder.exists():
        raise OffsiteError(f"target '{name}': {folder} does not exist (is the drive "
                           f"plugged in and mounted?)")
    if not folder.is_dir():
        raise OffsiteError(f"target '{name}': {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OffsiteError(f"target '{name}': {folder} is not writable (permission denied)")
    if need:
        free = shutil.disk_usage(folder).free
        if free < need * 1.05:
            raise OffsiteError(f"target '{name}': {folder} has {free} bytes free, the copy "
                               f"needs {need}")


def copy_archive(archive: Path, record: dict[str, Any], folder: Path, name: str, *,
                 password: str | None = None, log_n: int = crypto.DEFAULT_LOG_N,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Copy (and with ``password`` encrypt) ``archive`` into ``folder``; blocking.

    Returns ``{file, size, sha256, encrypted, verified}``. Raises :class:`OffsiteError`
    for an unusable folder or a copy whose read-back differs; nothing partial is left.
    """
    size = archive.stat().st_size
    check_folder(folder, name, size)
    stem = _stem(record)
    final = folder / (stem + ".zip" + (crypto.SUFFIX if password else ""))
    partial = folder / f".{final.name}.partial"
    total = size * 2  # writing, then reading back

    def report(done: int) -> None:
        if progress is not None:
            progress(done, total)

    try:
        if password:
            crypto.encrypt_file(archive, partial, password, log_n=log_n, progress=report)
        else:
            done = 0
            with archive.open("rb") as src, partial.open("wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    report(done)
        with partial.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, final)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OffsiteError(f"target '{name}': writing {final.name} failed: "
                           f"{exc.strerror or exc}") from None
    stored = sha256_of(final, lambda d: report(size + d))
    if not password and stored != record.get("checksum"):
        final.unlink(missing_ok=True)
        raise OffsiteError(f"target '{name}': the copy read back has SHA-256 {stored}, not "
                           f"{record.get('checksum')}; removed (the target may be failing)")
    try:
        (folder / (final.name + ".sha256")).write_text(f"{stored}  {final.name}\n",
                                                       encoding="utf-8")
        meta = {"backup": {k: record.get(k) for k in (
                    "id", "name", "created_at", "checksum", "size", "counts", "file_count",
                    "schema_version", "app_version")},
                "file": final.name, "stored_sha256": stored,
                "stored_size": final.stat().st_size, "encrypted": bool(password),
                "encryption": "scrypt+AES-256-GCM STREAM (PXSMENC1)" if password else None,
                "copied_at": datetime.now(UTC).isoformat()}
        (folder / (stem + ".json")).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    except OSError as exc:
        for leftover in (final, folder / (final.name + ".sha256")):
            leftover.unlink(missing_ok=True)
        raise OffsiteError(f"target '{name}': writing the checksum files failed: "
                           f"{exc.strerror or exc}") from None
    return {"file": final.name, "size": final.stat().st_size, "sha256": stored,
            "encrypted": bool(password), "verified": True}


def list_copies(folder: Path) -> list[dict[str, Any]]:
    """The copies in ``folder`` (from their ``.json`` files), newest first."""
    copies: list[dict[str, Any]] = []
    if not folder.is_dir():
        return copies
    for meta_path in folder.iterdir():
        if not _COPY.match(meta_path.name):
            continue
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            data = folder / str(meta.get("file", ""))
            meta["meta_file"] = meta_path.name
            meta["present"] = data.is_file() and data.parent == folder
            copies.append(meta)
    copies.sort(key=lambda m: (str((m.get("backup") or {}).get("created_at") or ""),
                               m["meta_file"]), reverse=True)
    return copies


def copy_path(folder: Path, meta: dict[str, Any]) -> Path:
    """The data file of a copy, refusing names that would leave ``folder``."""
    name = str(meta.get("file", ""))
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise OffsiteError(f"copy {meta.get('meta_file')}: bad file name {name!r}")
    return folder / name


def verify_copy(folder: Path, meta: dict[str, Any],
                passwords: Sequence[str] | None = None) -> dict[str, Any]:
    """Re-hash a copy and compare it with its recorded SHA-256; for an encrypted copy
    and given the target's ``passwords`` (current first), also that one of them opens it
    (a copy intact but locked for good is no copy); blocking."""
    path = copy_path(folder, meta)
    if not path.is_file():
        return {"file": path.name, "ok": False, "reason": "the data file is missing"}
    actual = sha256_of(path)
    if actual != meta.get("stored_sha256"):
        return {"file": path.name, "ok": False, "sha256": actual,
                "reason": f"SHA-256 is {actual}, {meta.get('stored_sha256')} was recorded: "
                          "the copy is damaged"}
    if meta.get("encrypted") and passwords is not None and not any(
            crypto.opens(path, p) for p in passwords):
        return {"file": path.name, "ok": False, "locked": True, "sha256": actual,
                "reason": "intact, but none of the target's passwords (the current one or "
                          "an earlier one) opens it: bring it back with its own password"}
    return {"file": path.name, "ok": True, "sha256": actual, "reason": None}


def prune(folder: Path, keep: int, protect: str | None = None) -> list[str]:
    """Delete all but the ``keep`` newest copies (never ``protect``, a data file name);
    returns the data files removed."""
    removed: list[str] = []
    for meta in list_copies(folder)[max(keep, 1):]:
        if meta.get("file") == protect:
            continue
        try:
            path = copy_path(folder, meta)
        except OffsiteError:
            continue
        for leftover in (path, folder / (path.name + ".sha256"), folder / meta["meta_file"]):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        removed.append(path.name)
    return removed


def restore_copy(folder: Path, meta: dict[str, Any], out: Path,
                 passwords: Sequence[str]) -> Path:
    """The plain archive of a copy at ``out`` (decrypted when needed, with the first of
    ``passwords`` that opens it: the target's current one, then those it had before),
    checked against the backup's own SHA-256; raises :class:`OffsiteError` or
    :class:`~system_manager.crypto.DecryptionError`."""
    path = copy_path(folder, meta)
    check = verify_copy(folder, meta)
    if not check["ok"]:
        raise OffsiteError(f"copy {path.name}: {check['reason']}")
    if meta.get("encrypted"):
        if not passwords:
            raise OffsiteError(f"copy {path.name} is encrypted; the target's password is "
                               "not set")
        for tried, password in enumerate(passwords, 1):
            try:
                crypto.decrypt_file(path, out, password)
                break
            except crypto.WrongPassword:
                if tried == len(passwords):
                    raise crypto.WrongPassword(
                        f"{path.name}: none of the {tried} password(s) tried opens it "
                        "(wrong password, or a damaged file)") from None
    else:
        shutil.copyfile(path, out)
    expected = (meta.get("backup") or {}).get("checksum")
    actual = sha256_of(out)
    if expected and actual != expected:
        out.unlink(missing_ok=True)
        raise OffsiteError(f"copy {path.name}: the archive's SHA-256 is {actual}, the "
                           f"backup recorded {expected}")
    return out
