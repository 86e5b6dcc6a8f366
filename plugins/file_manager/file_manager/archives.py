"""Archives: create, list, test, extract safely, and browse as folders.

Before anything is extracted every member is checked, and the first bad one refuses the
whole archive with its name: an absolute name, a ``..`` component, a drive letter or
backslash, NUL, a symlink or hard link, a device or FIFO, a member expanding more than
``max_ratio`` times, or a total past ``max_extract_bytes``. Declared sizes can lie, so
zip and tar extraction also counts the bytes actually written and stops at the caps.
Extraction writes into a temp folder renamed into place at the end: a refused, failed or
cancelled extraction leaves nothing behind.

Formats: zip, tar, tar.gz, tar.bz2, tar.xz (stdlib), tar.zst (``zstandard``) and 7z
(``py7zr``); the last two are optional and imported only when used.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from file_manager.ops import unique_name
from file_manager.worker import Ctl
from plexichat_desktop.plugins.files import user_modes
from plexichat_desktop.plugins.guards import NotRegular, open_regular

CREATE_FORMATS = ("zip", "tar.gz", "tar.xz", "tar.zst", "7z")
SUFFIXES = {
    ".zip": "zip", ".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz",
    ".tar.bz2": "tar.bz2", ".tbz2": "tar.bz2", ".tar.xz": "tar.xz", ".txz": "tar.xz",
    ".tar.zst": "tar.zst", ".tzst": "tar.zst", ".7z": "7z",
}
OPTIONAL = {"tar.zst": "zstandard", "7z": "py7zr"}
AES_PACKAGE = "pyzipper"  # writes and reads AES-encrypted zips (stdlib zipfile cannot)
BUFFER = 1024 * 1024
# Small members compress absurdly well (a file of zeros) without being a threat; the ratio
# is judged only from this size up.
RATIO_FLOOR = 1024 * 1024
# Listing an archive holds one Member per entry: past this many the archive is refused
# (naming the count) before memory grows with a header that claims millions of members.
DEFAULT_MAX_MEMBERS = 100_000


class ArchiveError(Exception):
    """An archive that cannot be read or written; the message says which and why."""


class PasswordError(ArchiveError):
    """An encrypted archive without its password, or with a wrong one."""


class TooManyMembers(ArchiveError):
    """An archive with more members than the ``max_members`` cap (the count is named)."""

    def __init__(self, name: str, count: int | str, cap: int):
        super().__init__(f"{name!r} has {count} members, more than the limit of {cap} "
                         "(setting max_members); it is not listed or extracted")
        self.count = count
        self.cap = cap


class ArchiveRefused(ArchiveError):
    """An unsafe archive: ``member`` names the first member that makes it so."""

    def __init__(self, member: str, reason: str):
        super().__init__(f"member {member!r}: {reason}")
        self.member = member
        self.reason = reason


@dataclass
class Member:
    name: str
    type: str  # file, dir, symlink, hardlink, device, fifo, other
    size: int
    compressed: int | None = None
    mtime: float | None = None
    link: str | None = None
    encrypted: bool = False
    mode: int | None = None  # its permission bits, where the archive keeps them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Caps:
    max_bytes: int
    max_ratio: float
    max_members: int = DEFAULT_MAX_MEMBERS


def detect(path: Path) -> str | None:
    """The archive format from the file name, or None."""
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def available(fmt: str) -> bool:
    module = OPTIONAL.get(fmt)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def has_aes() -> bool:
    try:
        __import__(AES_PACKAGE)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _open_zip(path: Path, password: str | None) -> Iterator[zipfile.ZipFile]:
    """The zip for reading; through pyzipper when a password is given (AES and the old
    ZipCrypto both), else the standard library."""
    if not password:
        with zipfile.ZipFile(path) as zf:
            yield zf
        return
    if not has_aes():
        raise PasswordError("encrypted zips need the pyzipper package, which is not "
                            "installed (pip install pyzipper)")
    import pyzipper

    with pyzipper.AESZipFile(path) as zf:
        zf.setpassword(password.encode("utf-8"))
        yield zf


def _password_problem(exc: RuntimeError, name: str) -> PasswordError | None:
    text = str(exc).lower()
    if "password" in text or "encrypted" in text:
        return PasswordError(f"member {name!r}: " + ("wrong password" if "bad password" in
                                                     text else "encrypted; give the password"))
    return None


def check_password(path: Path, password: str | None) -> None:
    """Raise :class:`PasswordError` unless every encrypted member of the zip at ``path``
    can be read with ``password`` (only the first bytes of each are read)."""
    try:
        with zipfile.ZipFile(path) as plain:
            encrypted = [i for i in plain.infolist() if i.flag_bits & 0x1 and not i.is_dir()]
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"{path.name!r} cannot be read as zip: {exc}") from None
    if not encrypted:
        return
    if not password:
        raise PasswordError(f"member {encrypted[0].filename!r}: encrypted; give the "
                            "password")
    with _open_zip(path, password) as zf:
        for info in encrypted:
            try:
                with zf.open(info.filename) as src:
                    src.read(1)
            except RuntimeError as exc:
                raise _password_problem(exc, info.filename) or exc from None


def _need(fmt: str) -> None:
    if not available(fmt):
        raise ArchiveError(f"{fmt} needs the {OPTIONAL[fmt]} package, which is not "
                           f"installed (pip install {OPTIONAL[fmt]})")


def archive_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem


# -- reading -----------------------------------------------------------------------------

@contextlib.contextmanager
def _open_tar(path: Path, fmt: str) -> Iterator[tarfile.TarFile]:
    if fmt == "tar.zst":
        _need(fmt)
        import zstandard

        with open(path, "rb") as raw, \
                zstandard.ZstdDecompressor().stream_reader(raw) as reader, \
                tarfile.open(fileobj=reader, mode="r|") as tar:
            yield tar
    else:
        mode = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}[fmt]
        with tarfile.open(path, mode) as tar:
            yield tar


def _tar_member(info: tarfile.TarInfo) -> Member:
    if info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    elif info.ischr() or info.isblk():
        kind = "device"
    elif info.isfifo():
        kind = "fifo"
    elif info.isfile():
        kind = "file"
    else:
        kind = "other"
    return Member(info.name, kind, info.size if kind == "file" else 0, None,
                  float(info.mtime), info.linkname or None, mode=info.mode & 0o7777)


def _zip_member(info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16
    if info.is_dir():
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
    elif mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        kind = "device"
    elif mode and stat.S_ISFIFO(mode):
        kind = "fifo"
    else:
        kind = "file"
    import datetime

    try:
        mtime = datetime.datetime(*info.date_time).timestamp()
    except ValueError:
        mtime = None
    return Member(info.filename, kind, info.file_size, info.compress_size, mtime,
                  encrypted=bool(info.flag_bits & 0x1),
                  mode=stat.S_IMODE(mode) if mode else None)


def _capped(items: Iterator[Any] | list[Any], name: str, cap: int) -> Iterator[Any]:
    """``items`` one by one, refusing (:class:`TooManyMembers`) at the first past ``cap``:
    tar is read as a stream, so nothing beyond the cap is ever held."""
    for count, item in enumerate(items, 1):
        if count > cap:
            raise TooManyMembers(name, f"more than {cap}", cap)
        yield item


def _zip_count(path: Path, cap: int) -> tuple[int, int]:
    """How many entries the zip's central directory holds, counted up to ``cap + 1``,
    and the total its end record declares.

    The declared total in the end record can lie, and ``zipfile`` builds one ZipInfo per
    record of the directory whatever the total says, so the records themselves are
    walked (46 fixed bytes plus three lengths each) before ``zipfile`` parses them."""
    with open(path, "rb") as fh:
        # zipfile's own reader of the end record (zip64 included); stable since 2.x.
        end = zipfile._EndRecData(fh)  # type: ignore[attr-defined]
        if not end:
            raise ArchiveError(f"{path.name!r} cannot be read as zip: no end of central "
                               "directory")
        size_cd = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
        offset_cd = end[zipfile._ECD_OFFSET]  # type: ignore[attr-defined]
        concat = end[zipfile._ECD_LOCATION] - size_cd - offset_cd  # type: ignore[attr-defined]
        if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # type: ignore[attr-defined]
            concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator  # type: ignore[attr-defined]
        fh.seek(offset_cd + concat)
        declared = int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]
        count = read = 0
        while read < size_cd and count <= cap:
            head = fh.read(46)
            if len(head) < 46 or head[:4] != b"PK\x01\x02":
                break  # zipfile reports the damage with its own words
            skip = (int.from_bytes(head[28:30], "little") + int.from_bytes(head[30:32], "little")
                    + int.from_bytes(head[32:34], "little"))
            fh.seek(skip, os.SEEK_CUR)
            read += 46 + skip
            count += 1
    return count, declared


def members(path: Path, max_members: int = DEFAULT_MAX_MEMBERS) -> tuple[str, list[Member]]:
    """The format and every member of the archive at ``path``; :class:`TooManyMembers`
    past ``max_members`` (counted before the entries are parsed where the format says
    how many it has, zip and 7z, and while streaming a tar)."""
    fmt = detect(path)
    if fmt is None:
        raise ArchiveError(f"{path.name!r} is not an archive this plugin reads "
                           f"({', '.join(sorted(set(SUFFIXES.values())))})")
    try:
        if fmt == "zip":
            count, declared = _zip_count(path, max_members)
            if count > max_members or declared > max_members:
                raise TooManyMembers(path.name, declared if declared > max_members else
                                     f"more than {max_members}", max_members)
            with zipfile.ZipFile(path) as zf:
                return fmt, [_zip_member(i) for i in
                             _capped(zf.infolist(), path.name, max_members)]
        if fmt == "7z":
            _need(fmt)
            import py7zr

            with py7zr.SevenZipFile(path, "r") as sz:
                out = []
                for info in _capped(sz.list(), path.name, max_members):
                    kind = ("dir" if info.is_directory else
                            "symlink" if getattr(info, "is_symlink", False) else "file")
                    mtime = info.creationtime.timestamp() if info.creationtime else None
                    out.append(Member(info.filename, kind, info.uncompressed or 0,
                                      info.compressed, mtime))
                return fmt, out
        with _open_tar(path, fmt) as tar:
            return fmt, [_tar_member(i) for i in _capped(_tar_stream(tar), path.name,
                                                           max_members)]
    except ArchiveError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError) as exc:
        raise ArchiveError(f"{path.name!r} cannot be read as {fmt}: {exc}") from None
    except Exception as exc:  # py7zr's own errors (Bad7zFile, unsupported methods...)
        raise ArchiveError(f"{path.name!r} cannot be read as {fmt}: "
                           f"{type(exc).__name__}: {exc}") from None


def _tar_stream(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members one at a time. TarFile keeps every TarInfo it reads in ``members``
    (for random access we never use): dropping them keeps memory flat while counting."""
    for info in tar:
        tar.members = []  # type: ignore[attr-defined]
        yield info


def check_name(name: str) -> str | None:
    """Why a member name is unsafe to extract, or None."""
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith("/") or name.startswith("\\"):
        return "is an absolute path"
    if len(name) > 1 and name[1] == ":":
        return "starts with a drive letter"
    if "\\" in name:
        return "contains a backslash"
    if ".." in PurePosixPath(name).parts:
        return "leads outside the extraction folder ('..')"
    return None


def check(members_: list[Member], caps: Caps, archive_size: int) -> None:
    """Raise :class:`ArchiveRefused` for the first unsafe member (see the module doc)."""
    total = 0
    for m in members_:
        reason = check_name(m.name)
        if reason:
            raise ArchiveRefused(m.name, reason)
        if m.type in ("symlink", "hardlink"):
            raise ArchiveRefused(m.name, f"is a {m.type} (to {m.link!r}); links in "
                                 "archives are not extracted")
        if m.type in ("device", "fifo", "other"):
            raise ArchiveRefused(m.name, f"is a {m.type}, not a file or folder")
        if m.compressed is not None and m.size >= RATIO_FLOOR and \
                m.size > caps.max_ratio * max(m.compressed, 1):
            raise ArchiveRefused(m.name, f"expands {m.size / max(m.compressed, 1):.0f} "
                                 f"times (limit {caps.max_ratio:g}): a zip bomb")
        total += m.size
        if total > caps.max_bytes:
            raise ArchiveRefused(m.name, f"brings the total to {total} bytes, over the "
                                 f"limit of {caps.max_bytes}")
    if total >= RATIO_FLOOR and total > caps.max_ratio * max(archive_size, 1):
        raise ArchiveRefused(members_[-1].name if members_ else "", f"the archive expands "
                             f"{total / max(archive_size, 1):.0f} times (limit "
                             f"{caps.max_ratio:g}): a bomb")


def browse(members_: list[Member], inner: str) -> list[dict[str, Any]]:
    """The members directly inside folder ``inner`` of the archive, folders synthesised
    from deeper names (many archives list no folder entries)."""
    prefix = inner.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    seen: dict[str, dict[str, Any]] = {}
    for m in members_:
        name = m.name.lstrip("./") if m.name.startswith("./") else m.name
        if not name.startswith(prefix) or name == prefix:
            continue
        rest = name[len(prefix):].strip("/")
        if not rest:
            continue
        head, _, tail = rest.partition("/")
        if tail or m.type == "dir":
            entry = seen.setdefault(head, {"name": head, "path": prefix + head,
                                           "type": "dir", "size": 0, "mtime": m.mtime,
                                           "compressed": None})
            entry["size"] += m.size
        else:
            seen[head] = {**m.to_dict(), "name": head, "path": prefix + head}
    return sorted(seen.values(), key=lambda e: (e["type"] != "dir", e["name"].lower()))


# -- extracting --------------------------------------------------------------------------

class _Budget:
    """Counts bytes really written, against the caps, whatever the headers said."""

    def __init__(self, ctl: Ctl, caps: Caps, total: int, archive_size: int):
        self.ctl, self.caps, self.total = ctl, caps, total
        self.archive_size = archive_size
        self.done = 0

    def copy(self, src: IO[bytes], target: Path, member: Member) -> None:
        written = 0
        with open(target, "xb") as out:
            while chunk := src.read(BUFFER):
                self.ctl.check()
                written += len(chunk)
                self.done += len(chunk)
                if self.done > self.caps.max_bytes:
                    raise ArchiveRefused(member.name, f"writing it passed the limit of "
                                         f"{self.caps.max_bytes} bytes (the header said "
                                         f"{member.size})")
                if member.compressed is not None and written >= RATIO_FLOOR and \
                        written > self.caps.max_ratio * max(member.compressed, 1):
                    raise ArchiveRefused(member.name, "expands past the ratio limit "
                                         f"{self.caps.max_ratio:g} while extracting")
                out.write(chunk)
                self.ctl.progress(self.done, self.total, f"extracting {member.name}")


def _target(base: Path, name: str) -> Path:
    target = (base / name).resolve()
    if not target.is_relative_to(base):  # checked already; kept as the last line
        raise ArchiveRefused(name, "leads outside the extraction folder")
    return target


def _make_dirs(folder: Path, base: Path, mode: int) -> None:
    """``folder`` and its missing parents below ``base``, each with ``mode``."""
    missing = []
    while folder != base and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir()
        os.chmod(made, mode)


def extract(ctl: Ctl, path: Path, dest: Path, caps: Caps,
            password: str | None = None) -> dict[str, Any]:
    """Extract ``path`` into a new folder in ``dest`` named after the archive (a free
    name: an existing folder is never merged into). Returns the folder and counts."""
    fmt, found = members(path, caps.max_members)
    archive_size = path.stat().st_size
    check(found, caps, archive_size)
    final = dest / archive_stem(path)
    if os.path.lexists(final):
        final = unique_name(final)
    work = dest / f".{final.name}.fm-extract-{secrets.token_hex(4)}"
    work.mkdir()
    file_mode, dir_mode = user_modes()
    os.chmod(work, dir_mode)  # becomes the extracted folder: the user's, not private
    base = work.resolve()
    budget = _Budget(ctl, caps, sum(m.size for m in found), archive_size)
    files = 0
    try:
        if fmt == "zip":
            with _open_zip(path, password) as zf:
                for info, m in zip(zf.infolist(), found, strict=True):
                    try:
                        files += _put(budget, base, m, lambda i=info: zf.open(i.filename),
                                      (file_mode, dir_mode))
                    except RuntimeError as exc:
                        raise _password_problem(exc, m.name) or exc from None
        elif fmt == "7z":
            import py7zr

            with py7zr.SevenZipFile(path, "r") as sz:
                sz.extractall(path=base)
            # py7zr writes directly; the caps were checked on the headers, and the
            # result is measured here so a lying header is caught before it is used.
            written = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
            if written > caps.max_bytes:
                raise ArchiveRefused(found[-1].name if found else "", "the extracted "
                                     f"files take {written} bytes, over the limit")
            for p in base.rglob("*"):
                if p.is_symlink() or not (p.is_file() or p.is_dir()):
                    raise ArchiveRefused(str(p.relative_to(base)), "is not a plain file")
                # The user's modes, as for tar and zip (py7zr keeps none of its own).
                os.chmod(p, dir_mode if p.is_dir() else file_mode)
            files = sum(1 for m in found if m.type == "file")
        else:
            with _open_tar(path, fmt) as tar:
                for info in tar:
                    m = _tar_member(info)
                    check([m], caps, archive_size)  # a stream may differ from the listing
                    files += _put(budget, base, m, lambda i=info: tar.extractfile(i),
                                  (file_mode, dir_mode))
        ctl.check()
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    ctl.progress(budget.total, budget.total, f"extracted {files} file(s)", force=True)
    return {"folder": str(final), "files": files, "bytes": budget.done or budget.total,
            "format": fmt}


def _put(budget: _Budget, base: Path, m: Member, opener: Any,
         modes: tuple[int, int]) -> int:
    """Write member ``m`` below ``base`` with the user's modes (``(file, folder)`` of
    :func:`user_modes`; a member's own bits are kept within the folder mode's mask, so
    a script stays executable and nothing becomes setuid). 1 for a new file, 0 for a
    folder or a file that replaced an earlier copy of itself."""
    file_mode, dir_mode = modes
    target = _target(base, m.name)
    if m.type == "dir":
        _make_dirs(target, base, dir_mode)
        return 0
    _make_dirs(target.parent, base, dir_mode)
    src = opener()
    if src is None:
        raise ArchiveRefused(m.name, "has no content to extract")
    repeated = os.path.lexists(target)
    if repeated:
        # A member repeated (tar rf appends a newer copy): the last one wins, as tar and
        # 7-Zip do; it failed the whole extraction with a hidden temp folder's path.
        target.unlink()
    with src:
        budget.copy(src, target, m)
    os.chmod(target, (m.mode & dir_mode) if m.mode else file_mode)
    if m.mtime:
        with contextlib.suppress(OSError, OverflowError):
            os.utime(target, (m.mtime, m.mtime))
    return 0 if repeated else 1  # files on disk, not members read


# -- testing -----------------------------------------------------------------------------

def test(ctl: Ctl, path: Path, password: str | None = None,
         max_members: int = DEFAULT_MAX_MEMBERS) -> dict[str, Any]:
    """Read every member completely, checking the CRCs the format has."""
    fmt, found = members(path, max_members)
    total = sum(m.size for m in found) or 1
    done = 0
    try:
        if fmt == "zip":
            with _open_zip(path, password) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    # BadZipFile on a bad CRC; RuntimeError for a missing/wrong password.
                    with zf.open(info.filename) as src:
                        while chunk := src.read(BUFFER):
                            ctl.check()
                            done += len(chunk)
                            ctl.progress(done, total, f"testing {info.filename}")
        elif fmt == "7z":
            import py7zr

            with py7zr.SevenZipFile(path, "r") as sz:
                bad = sz.test()
            if bad is False:
                raise ArchiveError(f"{path.name!r}: a member fails its CRC check")
        else:
            with _open_tar(path, fmt) as tar:
                for info in tar:
                    src = tar.extractfile(info) if info.isfile() else None
                    if src is None:
                        continue
                    with src:
                        while chunk := src.read(BUFFER):
                            ctl.check()
                            done += len(chunk)
                            ctl.progress(done, total, f"testing {info.name}")
    except ArchiveError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError,
            RuntimeError) as exc:
        return {"ok": False, "format": fmt, "members": len(found),
                "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "format": fmt, "members": len(found), "bytes": total}


# -- creating ----------------------------------------------------------------------------

class _Reader(io.RawIOBase):
    """A file read for tarfile that checks cancel and reports progress per chunk."""

    def __init__(self, fh: IO[bytes], advance: Any):
        self.fh, self.advance = fh, advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.fh.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.advance(n)
        return n or 0


def _walk(sources: list[Path]) -> Iterator[tuple[Path, str]]:
    for src in sources:
        yield src, src.name
        if src.is_dir() and not src.is_symlink():
            for folder, dirs, files in os.walk(src):
                dirs.sort()
                rel = Path(folder).relative_to(src.parent)
                for name in dirs + sorted(files):
                    yield Path(folder) / name, (rel / name).as_posix()


@contextlib.contextmanager
def _source(path: Path, arc: str) -> Iterator[tuple[IO[bytes], os.stat_result]]:
    """The file to pack, opened without following a symlink and checked by fstat: what
    was listed as a regular file may have been swapped for a link to a file outside
    the chosen folders (or for a FIFO) since; that is refused naming it, never packed."""
    try:
        fd, st = open_regular(path)
    except NotRegular as exc:
        raise ArchiveError(f"{arc!r} {exc.strerror} since it was listed; nothing was "
                           "packed") from None
    with open(fd, "rb") as fh:
        yield fh, st


def _zip_info(arc: str, st: os.stat_result, kind: type[zipfile.ZipInfo] = zipfile.ZipInfo
              ) -> zipfile.ZipInfo:
    """What ``ZipInfo.from_file`` makes, from the opened file's own fstat (``kind``:
    pyzipper's ZipInfo for an encrypted zip)."""
    import time

    date_time = time.localtime(st.st_mtime)[:6]
    if date_time[0] < 1980:
        date_time = (1980, 1, 1, 0, 0, 0)
    info = kind(arc, date_time)
    info.external_attr = (st.st_mode & 0xFFFF) << 16
    info.file_size = st.st_size
    return info


def create(ctl: Ctl, sources: list[Path], out: Path, fmt: str,
           password: str | None = None) -> dict[str, Any]:
    """Write ``sources`` into a new archive ``out`` (temp file renamed at the end); a zip
    with a ``password`` is AES-256 encrypted (WinZip AES, which 7-Zip reads).

    Symlinks, devices and FIFOs are left out and listed as skipped: the archive holds
    plain files and folders, the same rule extraction enforces."""
    if fmt not in CREATE_FORMATS:
        raise ArchiveError(f"format must be one of {', '.join(CREATE_FORMATS)}")
    _need(fmt)
    entries: list[tuple[Path, str, os.stat_result]] = []
    skipped: list[dict[str, str]] = []
    for path, arc in _walk(sources):
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
            entries.append((path, arc, st))
        else:
            skipped.append({"path": str(path), "reason": "not a regular file or folder"})
    total = sum(st.st_size for _p, _a, st in entries if stat.S_ISREG(st.st_mode)) or 1
    done = 0

    def advance(n: int, name: str = "") -> None:
        nonlocal done
        ctl.check()
        done += n
        ctl.progress(done, total, f"packing {name}" if name else None)

    tmp = out.with_name(f".{out.name}.fm-part-{secrets.token_hex(4)}")
    try:
        if fmt == "zip" and password:
            _create_aes_zip(tmp, entries, password, advance)
        elif fmt == "zip":
            with zipfile.ZipFile(tmp, "x", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                for path, arc, st in entries:
                    if stat.S_ISDIR(st.st_mode):
                        zf.writestr(zipfile.ZipInfo.from_file(path, arc), b"")
                        continue
                    with _source(path, arc) as (src, opened):
                        info = _zip_info(arc, opened)
                        info.compress_type = zipfile.ZIP_DEFLATED
                        with zf.open(info, "w", force_zip64=True) as dst:
                            while chunk := src.read(BUFFER):
                                dst.write(chunk)
                                advance(len(chunk), arc)
        elif fmt == "7z":
            import py7zr

            with py7zr.SevenZipFile(tmp, "w") as sz:
                for path, arc, st in entries:
                    ctl.check()
                    if not stat.S_ISREG(st.st_mode):
                        sz.write(path, arc)  # a folder: no content to swap
                        continue
                    with _source(path, arc) as (src, opened):
                        sz.writef(src, arc)
                    _seven_mtime(sz, opened)
                    advance(opened.st_size, arc)
        else:
            _create_tar(tmp, fmt, entries, advance)
        ctl.check()
        os.chmod(tmp, user_modes()[0])  # the user's archive, as their session makes files
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"archive": str(out), "format": fmt, "members": len(entries),
            "bytes": out.stat().st_size, "skipped": skipped, "encrypted": bool(password)}


def _seven_mtime(sz: Any, st: os.stat_result) -> None:
    """py7zr's ``writef`` stamps the member "now"; give it the file's own times (the
    header is written on close, from these dicts)."""
    from py7zr.helpers import ArchiveTimestamp

    when = ArchiveTimestamp.from_datetime(st.st_mtime)  # takes epoch seconds
    # The header's own dict: ``sz.files`` is a read view whose items are no dicts (the
    # assignment raised, was suppressed, and every member got the archive's time).
    sz.header.files_info.files[-1]["lastwritetime"] = when


def _create_aes_zip(tmp: Path, entries: list[tuple[Path, str, os.stat_result]],
                    password: str, advance: Any) -> None:
    if not has_aes():
        raise ArchiveError("an encrypted zip needs the pyzipper package, which is not "
                           "installed (pip install pyzipper)")
    import pyzipper

    with pyzipper.AESZipFile(tmp, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(password.encode("utf-8"))
        for path, arc, st in entries:
            if stat.S_ISDIR(st.st_mode):
                zf.writestr(arc.rstrip("/") + "/", b"")
                continue
            with _source(path, arc) as (src, opened):
                # The member's time and mode from the file (by name alone it was dated
                # 1980-01-01 and lost its permission bits).
                info = _zip_info(arc, opened, pyzipper.AESZipFile.zipinfo_cls)
                info.compress_type = pyzipper.ZIP_DEFLATED
                with zf.open(info, "w") as dst:
                    while chunk := src.read(BUFFER):
                        dst.write(chunk)
                        advance(len(chunk), arc)


def _create_tar(tmp: Path, fmt: str, entries: list[tuple[Path, str, os.stat_result]],
                advance: Any) -> None:
    def add_all(tar: tarfile.TarFile) -> None:
        for path, arc, st in entries:
            if not stat.S_ISREG(st.st_mode):
                info = tar.gettarinfo(str(path), arc)
                if not info.isdir():  # swapped since it was listed: never a link member
                    raise ArchiveError(f"{arc!r} is no longer a folder; nothing was packed")
                info.uname = info.gname = ""
                tar.addfile(info)
                continue
            with _source(path, arc) as (fh, _opened):
                info = tar.gettarinfo(arcname=arc, fileobj=fh)  # from the fd's fstat
                info.uname = info.gname = ""
                tar.addfile(info, io.BufferedReader(
                    _Reader(fh, lambda n, a=arc: advance(n, a)), BUFFER))

    if fmt == "tar.zst":
        import zstandard

        with open(tmp, "xb") as raw, \
                zstandard.ZstdCompressor(level=10, threads=-1).stream_writer(raw) as writer, \
                tarfile.open(fileobj=writer, mode="w|") as tar:
            add_all(tar)
    else:
        mode = {"tar.gz": "x:gz", "tar.xz": "x:xz"}[fmt]
        with tarfile.open(tmp, mode) as tar:
            add_all(tar)
