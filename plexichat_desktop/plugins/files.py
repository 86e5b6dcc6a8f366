"""A plugin's own data files: writing one so that nothing is lost, and what to do with
one that can no longer be read.

``write_atomic`` replaces a file whole: a crash, a full disk or a power cut leaves the old
contents or the new, never a mix or an empty file. A settings or state file a user edited
by hand (or an older version cut short) must not stop the plugin, and what it held must
not be lost: ``keep_aside`` moves it out of the way under a name of its own, and the
plugin starts from what it could read, saying where the file went.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o600,
                 keep_backup: bool = False) -> None:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8, lines as given), so
    that a crash, a full disk or a power cut leaves the old file or the new one.

    The data goes to a temporary file beside ``path`` (``.<name>.*.tmp``, created 0600
    so no other user can read it meanwhile; unique, so two writers never share one), is
    flushed to the disk, given ``mode`` and renamed over ``path``; then the folder is
    flushed too, so the rename survives a power cut. Missing folders are created. With
    ``keep_backup`` the file replaced stays as ``<name>.bak`` (a hard link made first, so
    one whole copy exists at every moment; copied where links are not possible).

    Raises ``OSError`` (the temporary file is removed then, and ``path`` is untouched)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    link = path.with_name(f".{path.name}.{os.urandom(4).hex()}.bak.tmp")  # its own, too
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if keep_backup and path.exists():
            link.unlink(missing_ok=True)
            try:
                os.link(path, link)
            except OSError:  # a file system without hard links
                link.write_bytes(path.read_bytes())
                os.chmod(link, stat.S_IMODE(path.stat().st_mode))
            os.replace(link, backup_path(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        link.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def user_modes() -> tuple[int, int]:
    """``(file mode, folder mode)`` for what a plugin makes *for the user* in the user's
    own folders (a new folder, extracted or converted files): as the user's session
    would make them (typically 0644 and 0755). The app's own process makes everything
    private (umask 077), which is right for its data and wrong there: a script extracted
    from a tarball lost its execute bits, a new folder in a shared place was unreadable
    to the group. Apply with ``os.chmod`` after creating. The folder mode is also the
    mask for bits a file brings along: an archive member's mode is kept as
    ``member_mode & folder_mode`` (executable stays executable, setuid never)."""
    from plexichat_desktop.core.permissions import user_umask

    mask = user_umask()
    return 0o666 & ~mask, 0o777 & ~mask


def backup_path(path: Path) -> Path:
    """Where ``write_atomic(path, ..., keep_backup=True)`` keeps the previous file."""
    return path.with_name(path.name + ".bak")


def _sync_folder(folder: Path) -> None:
    # Where a folder cannot be opened (Windows), the rename is as durable as the OS makes
    # it; nothing to do there.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def keep_aside(path: Path) -> Path:
    """Move ``path`` to ``<name>.broken-<unix time>`` beside it (``-2``, ``-3``... when
    one was kept aside in the same second: an earlier one is never replaced) and return
    the new path. Raises ``OSError`` when it cannot be moved."""
    stamp, n = int(time.time()), 1
    broken = path.with_name(f"{path.name}.broken-{stamp}")
    while broken.exists():
        n += 1
        broken = path.with_name(f"{path.name}.broken-{stamp}-{n}")
    path.replace(broken)
    return broken
