"""Copy, move, rename, mkdir and trash, each undoable in one step.

Every write of file content goes to a temp file next to the target and is renamed over it
at the end (``os.replace``), so a reader never sees half a file and a cancelled or failed
copy leaves nothing partial behind. Items that would be overwritten are first moved into
the plugin's undo stash, which is what lets "overwrite" be undone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from file_manager.worker import Ctl
from plexichat_desktop.plugins.guards import NotRegular, open_regular

CONFLICTS = ("skip", "rename", "overwrite")
CHUNK = 64 * 1024 * 1024  # per copy_file_range call: big enough for speed, small for cancel
PART_MARK = ".fm-part-"


@dataclass
class UndoRecord:
    """How to reverse the last operation; lists hold absolute paths as text."""

    kind: str
    description: str
    created: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (original, now at)
    stashed: list[tuple[str, str]] = field(default_factory=list)  # (original, stash copy)
    trashed: list[tuple[str, str, str]] = field(default_factory=list)  # (orig, file, info)
    stash_dir: str | None = None
    at: float = field(default_factory=time.time)
    # For each created path, its :func:`fingerprint` when the operation ended: undo
    # removes only what is still as the operation left it.
    fingerprints: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["count"] = (len(self.created) + len(self.moved) + len(self.stashed)
                         + len(self.trashed))
        return data

    @property
    def empty(self) -> bool:
        return not (self.created or self.moved or self.stashed or self.trashed)


@dataclass
class Outcome:
    """What an operation did, for the job's result."""

    done: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "skipped": self.skipped, "bytes": self.bytes}


def tree_size(path: Path) -> int:
    """Bytes of regular files under ``path`` (not following symlinks)."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                child = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if stat.S_ISREG(child.st_mode):
                total += child.st_size
    return total


def unique_name(target: Path) -> Path:
    """``name (1).ext``, ``name (2).ext``... the first that does not exist."""
    stem, suffix = target.stem, target.suffix
    if target.name.startswith(".") and target.suffix == target.name:
        stem, suffix = target.name, ""
    for n in range(1, 10_000):
        candidate = target.with_name(f"{stem} ({n}){suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(f"no free name like {target.name!r} in {target.parent}")


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


class Mover:
    """One copy or move run: walks the sources and applies the conflict policy."""

    def __init__(self, ctl: Ctl, conflict: str, undo: UndoRecord, stash: Path, *,
                 move: bool, total: int):
        self.ctl = ctl
        self.conflict = conflict
        self.undo = undo
        self.stash = stash
        self.move = move
        self.total = total
        self.out = Outcome()
        self.verb = "moving" if move else "copying"

    def run(self, items: list[tuple[Path, Path]]) -> Outcome:
        try:
            for src, dest_dir in items:
                self.ctl.check()
                self.place(src, dest_dir / src.name, top=True)
        finally:  # a cancelled or failed run's copies too
            for created in self.undo.created:
                self.undo.fingerprints[created] = fingerprint(Path(created))
        self.ctl.progress(self.out.bytes, self.total, f"{self.verb} done", force=True)
        return self.out

    def _stash(self, target: Path) -> None:
        self.stash.mkdir(parents=True, exist_ok=True)
        kept = self.stash / f"{len(self.undo.stashed)}-{target.name}"
        shutil.move(str(target), str(kept))
        self.undo.stashed.append((str(target), str(kept)))

    def _unstash(self, target: Path) -> None:
        """Put back what :meth:`_stash` took for ``target`` (its replacement failed or was
        skipped): the file overwritten stays the user's, not a file in the undo stash that
        the next operation deletes."""
        original, kept = self.undo.stashed.pop()
        if os.path.lexists(target) and not _is_real_dir(target):
            target.unlink()  # a link made before it failed (a file never lands half)
        shutil.move(kept, original)

    def place(self, src: Path, target: Path, *, top: bool, fresh: bool = False) -> None:
        """Copy or move ``src`` to ``target``; ``fresh`` means inside a folder this run
        created, where nothing can conflict and nothing needs its own undo entry."""
        self.ctl.check()
        st = src.lstat()
        if not fresh and os.path.lexists(target):
            if self.conflict == "skip":
                self.out.skipped.append({"path": str(src), "reason": f"{target.name} exists"})
                self.out.bytes += tree_size(src)
                return
            if self.conflict == "rename":
                target = unique_name(target)
            elif stat.S_ISDIR(st.st_mode) and _is_real_dir(target):
                # Overwrite folder onto folder merges, file by file, like every commander.
                for child in sorted(src.iterdir()):
                    self.place(child, target / child.name, top=False)
                if self.move:
                    _remove_empty_dir(src)
                return
            elif stat.S_ISDIR(st.st_mode):
                # A folder over a file: what of the folder arrived stays (a move may have
                # taken its files from the source already), the file waits in the stash.
                self._stash(target)
            else:
                self._stash(target)
                skipped = len(self.out.skipped)
                try:
                    self._put(src, st, target, top=top, fresh=fresh)
                except BaseException:
                    self._unstash(target)
                    raise
                if len(self.out.skipped) > skipped:  # not replaced after all
                    self._unstash(target)
                return
        self._put(src, st, target, top=top, fresh=fresh)

    def _put(self, src: Path, st: os.stat_result, target: Path, *, top: bool,
             fresh: bool) -> None:
        if self.move and not fresh:
            try:
                os.rename(src, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            else:
                self.undo.moved.append((str(src), str(target)))
                self.out.bytes += tree_size(target)
                if top:
                    self.out.done.append(str(target))
                self.ctl.progress(self.out.bytes, self.total, f"moved {src.name}")
                return
        if stat.S_ISDIR(st.st_mode):
            target.mkdir()
            if not fresh:
                self._record(src, target)
            for child in sorted(src.iterdir()):
                self.place(child, target / child.name, top=False, fresh=True)
            shutil.copystat(src, target, follow_symlinks=False)
            if self.move:
                _remove_empty_dir(src)
        elif stat.S_ISLNK(st.st_mode):
            tmp = target.with_name(f".{target.name}{PART_MARK}{secrets.token_hex(4)}")
            os.symlink(os.readlink(src), tmp)
            os.replace(tmp, target)
            if not fresh:
                self._record(src, target)
            if self.move:
                src.unlink()
        elif stat.S_ISREG(st.st_mode):
            try:
                copy_file(self.ctl, src, target, self._advance)
            except NotRegular as exc:
                self.out.skipped.append({"path": str(src), "reason": exc.strerror or
                                         "is no longer a regular file"})
                return
            except PermissionError as exc:
                # One unreadable file is skipped and listed, as a commander does; it
                # stopped the whole job, leaving a half-merged tree.
                if exc.filename is not None and Path(exc.filename) != src:
                    raise  # the destination's fault: nothing else will go either
                self.out.skipped.append({"path": str(src), "reason": "cannot be read "
                                         "(permission denied)"})
                return
            if not fresh:
                self._record(src, target)
            if self.move:
                src.unlink()
        else:
            self.out.skipped.append({"path": str(src),
                                     "reason": "not a regular file, folder or link"})
            return
        if top:
            self.out.done.append(str(target))

    def _record(self, src: Path, target: Path) -> None:
        if self.move:
            self.undo.moved.append((str(src), str(target)))
        else:
            self.undo.created.append(str(target))

    def _advance(self, n: int, name: str) -> None:
        self.out.bytes += n
        self.ctl.progress(self.out.bytes, self.total, f"{self.verb} {name}")


def _remove_empty_dir(path: Path) -> None:
    # Something skipped inside keeps the folder, with it.
    with contextlib.suppress(OSError):
        path.rmdir()


def copy_file(ctl: Ctl, src: Path, target: Path, advance: Any) -> None:
    """Copy one file's bytes and metadata to ``target`` atomically (temp + rename)."""
    fd, st = open_regular(src)
    tmp = target.with_name(f".{target.name}{PART_MARK}{secrets.token_hex(4)}")
    try:
        with open(fd, "rb") as fin, open(tmp, "xb") as fout:
            fd_in, fd_out = fin.fileno(), fout.fileno()
            fast = hasattr(os, "copy_file_range")
            while True:
                ctl.check()
                n = 0
                if fast:
                    try:
                        n = os.copy_file_range(fd_in, fd_out, CHUNK)
                    except OSError as exc:
                        # Old kernels and some file systems refuse it: fall back to read.
                        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                                             errno.EOPNOTSUPP):
                            raise
                        fast = False
                        continue
                else:
                    data = fin.read(4 * 1024 * 1024)
                    n = len(data)
                    if n:
                        fout.write(data)
                if not n:
                    break
                advance(n, src.name)
            fout.flush()  # before the times are set: a later write would change them
            _copy_meta(fd_in, fd_out, st)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy_meta(fd_in: int, fd_out: int, st: os.stat_result) -> None:
    """Mode, times and extended attributes of the file that was really read (through its
    descriptor: the path may point elsewhere by now)."""
    if hasattr(os, "listxattr"):
        with contextlib.suppress(OSError):
            for name in os.listxattr(fd_in):
                with contextlib.suppress(OSError):
                    os.setxattr(fd_out, name, os.getxattr(fd_in, name))
    os.chmod(fd_out, stat.S_IMODE(st.st_mode))
    os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- trash -------------------------------------------------------------------------------

def trash_info_dirs(path: Path) -> list[Path]:
    """Where the freedesktop trash may put ``path``'s .trashinfo (Linux and BSD)."""
    try:
        from send2trash import plat_other
    except ImportError:
        return []
    dirs = [Path(plat_other.HOMETRASH) / "info"]
    mount = Path(plat_other.find_mount_point(str(path)))
    uid = os.getuid()
    dirs += [mount / ".Trash" / str(uid) / "info", mount / f".Trash-{uid}" / "info"]
    return dirs


def trash(ctl: Ctl, paths: list[Path], undo: UndoRecord) -> Outcome:
    """Send each path to the system trash, noting where it went so undo can restore it."""
    from send2trash import send2trash

    out = Outcome()
    for i, path in enumerate(paths):
        ctl.check()
        info_dirs = trash_info_dirs(path)
        before = {d: set(os.listdir(d)) if d.is_dir() else set() for d in info_dirs}
        size = tree_size(path)
        send2trash(str(path))
        found = _find_trashed(path, info_dirs, before)
        if found:
            undo.trashed.append((str(path), str(found[0]), str(found[1])))
        out.done.append(str(path))
        out.bytes += size
        # The last step is always sent: the throttle could leave the job short of its end.
        ctl.progress(i + 1, len(paths), f"trashed {path.name}", force=i + 1 == len(paths))
    return out


def _find_trashed(path: Path, info_dirs: list[Path],
                  before: dict[Path, set[str]]) -> tuple[Path, Path] | None:
    for info_dir in info_dirs:
        if not info_dir.is_dir():
            continue
        for name in sorted(set(os.listdir(info_dir)) - before[info_dir]):
            info = info_dir / name
            try:
                text = info.read_text("utf-8", "replace")
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("Path=") and unquote(line[5:]).endswith(path.name):
                    return info_dir.parent / "files" / name.removesuffix(".trashinfo"), info
    return None


# -- undo --------------------------------------------------------------------------------

def undo(ctl: Ctl, record: UndoRecord) -> dict[str, Any]:
    """Reverse ``record``: remove what it created, put back what it moved, overwrote or
    trashed. A path that is in the way now is left alone and reported, never overwritten."""
    problems: list[str] = []
    restored = 0
    steps = len(record.created) + len(record.moved) + len(record.stashed) + len(record.trashed)
    done = 0

    def step(text: str) -> None:
        nonlocal done
        done += 1
        ctl.progress(done, steps, text, force=done == steps)

    for created in reversed(record.created):
        ctl.check()
        path = Path(created)
        known = record.fingerprints.get(created)
        if known is not None and os.path.lexists(path) and fingerprint(path) != known:
            # Files added or edited there since: undo deleted them for good.
            problems.append(f"{created} changed since the {record.kind} (files added or "
                            "edited): left as it is")
            step(f"kept {path.name}")
            continue
        try:
            if _is_real_dir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                path.unlink()
            restored += 1
        except OSError as exc:
            problems.append(f"could not remove {created}: {exc.strerror}")
        step(f"removed {path.name}")
    for original, now_at in reversed(record.moved):
        ctl.check()
        problems += _put_back(Path(now_at), Path(original))
        restored += 1
        step(f"moved back {Path(original).name}")
    for original, kept in reversed(record.stashed):
        ctl.check()
        problems += _put_back(Path(kept), Path(original))
        restored += 1
        step(f"restored {Path(original).name}")
    for original, trashed_file, info in reversed(record.trashed):
        ctl.check()
        found = _put_back(Path(trashed_file), Path(original))
        if not found:
            Path(info).unlink(missing_ok=True)
            restored += 1
        problems += found
        step(f"restored {Path(original).name} from the trash")
    if record.stash_dir and not problems:
        shutil.rmtree(record.stash_dir, ignore_errors=True)
    return {"undone": record.kind, "description": record.description,
            "restored": restored, "problems": problems}


def fingerprint(path: Path) -> list[int]:
    """``[entries, bytes, newest mtime in ns]`` of ``path`` and all below it (links not
    followed): any file added, removed or edited there changes it."""
    entries = size = newest = 0
    stack = [path]
    while stack:
        here = stack.pop()
        try:
            st = here.lstat()
        except OSError:
            continue
        entries += 1
        newest = max(newest, st.st_mtime_ns)
        if stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(OSError):
                stack.extend(here.iterdir())
        else:
            size += st.st_size
    return [entries, size, newest]


def _put_back(now_at: Path, original: Path) -> list[str]:
    if not os.path.lexists(now_at):
        return [f"{now_at} is gone; {original} cannot be restored"]
    if os.path.lexists(original):
        return [f"{original} exists again; left {now_at} where it is"]
    original.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(now_at), str(original))
    return []
