"""The app's files are its user's alone: folders 0700, files 0600.

The v1 database holds messages and password hashes, the uploads and backups are private,
the log shows what the user did: another account on the machine must read none of it.
Three measures: the process umask (``077``) so that everything the app and its children
(pytest runs) create is private; explicit modes where the app creates its folders and its
most sensitive files; and, at start, existing files of older versions (created 0755/0644)
are tightened, with a log line saying how many.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


# The umask the user's session gave the app, before it made its own files private: what
# files made for the user in the user's folders (a File Manager's new folder) follow. In
# the environment, so pytest runs and other children the app starts know it too.
USER_UMASK_ENV = "PLEXICHAT_DESKTOP_USER_UMASK"


def private_umask() -> None:
    """Make everything this process creates from now on private to its user."""
    previous = os.umask(PRIVATE_UMASK)
    os.environ.setdefault(USER_UMASK_ENV, oct(previous))


def user_umask() -> int:
    """The umask of the user's session (see :data:`USER_UMASK_ENV`); the process's own
    when the app has not changed it."""
    try:
        return int(os.environ[USER_UMASK_ENV], 8) & 0o777
    except (KeyError, ValueError):
        current = os.umask(0)
        os.umask(current)
        return current


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing one is left as it is
    (:func:`tighten` handles those)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, DIR_MODE)  # mkdir's mode is filtered by whatever umask there was
    return path


def private_file(path: Path) -> Path:
    """Set a file the app wrote to 0600."""
    os.chmod(path, FILE_MODE)
    return path


def tighten(roots: Iterable[Path]) -> int:
    """Take group and other permissions off every folder and file below ``roots`` that
    this user owns (symlinks are not followed); the number of entries changed."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    changed = 0
    for root in roots:
        if not root.is_dir() or root.is_symlink():
            continue
        for entry in [root, *root.rglob("*")]:
            try:
                info = entry.lstat()
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISLNK(info.st_mode) or (uid is not None and info.st_uid != uid):
                continue
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                try:
                    os.chmod(entry, mode & ~0o077)
                except OSError as exc:
                    log.warning("could not restrict %s to its owner: %s", entry, exc)
                    continue
                changed += 1
    return changed


def secure_app_dirs(roots: Iterable[Path]) -> int:
    """Set the umask, create ``roots`` as 0700 and tighten what is already in them; logs
    one line when something was tightened. Returns the number of entries changed."""
    private_umask()
    roots = list(roots)
    for root in roots:
        private_dir(root)
    changed = tighten(roots)
    if changed:
        log.warning("restricted %d existing file(s) and folder(s) of PlexiChat Desktop to "
                    "their owner (they were readable by other users): %s", changed,
                    ", ".join(str(r) for r in roots))
    return changed
