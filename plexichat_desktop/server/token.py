"""The per-install secret token that every request must carry."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from plexichat_desktop.core.permissions import private_dir

log = logging.getLogger(__name__)


def load_or_create_token(path: Path) -> str:
    """Read the token file, creating it (mode 0600) with a fresh random token if missing."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); restricting it to 0600", path, mode)
            path.chmod(0o600)
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            return token
        log.warning("%s holds no usable token; writing a new one", path)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    return token
