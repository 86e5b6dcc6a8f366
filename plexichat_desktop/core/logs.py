"""Logging: the console plus a rotating file in the user log dir.

Every record carries ``plugin_id``: the id of the plugin it came from, or ``-`` for the
host. A record belongs to a plugin when its logger is ``plexichat.plugin.<id>`` (the
logger a plugin gets from its context) or lives under one of the plugin's own top-level
modules (a plugin calling ``logging.getLogger(__name__)``).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from plexichat_desktop.core.permissions import private_dir, private_file

PLUGIN_LOGGER_PREFIX = "plexichat.plugin."
LOG_FILE_NAME = "plexichat-desktop.log"
FORMAT = "%(asctime)s %(levelname)-7s [%(plugin_id)s] %(name)s: %(message)s"


class PluginIdFilter(logging.Filter):
    """Adds ``record.plugin_id``; knows which top-level modules belong to which plugin."""

    def __init__(self) -> None:
        super().__init__()
        self._modules: dict[str, str] = {}

    def register_module(self, module: str, plugin_id: str) -> None:
        self._modules[module.split(".", 1)[0]] = plugin_id

    def plugin_for(self, logger_name: str) -> str | None:
        if logger_name.startswith(PLUGIN_LOGGER_PREFIX):
            return logger_name[len(PLUGIN_LOGGER_PREFIX) :].split(".", 1)[0]
        return self._modules.get(logger_name.split(".", 1)[0])

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "plugin_id"):
            record.plugin_id = self.plugin_for(record.name) or "-"
        return True


plugin_filter = PluginIdFilter()
_installed: list[logging.Handler] = []


QUIET_BELOW_DEBUG = ("uvicorn.access", "httpx", "httpcore")


def setup_logging(log_dir: Path, level: str = "INFO", max_bytes: int = 2_000_000,
                  backups: int = 5, console: bool = True) -> Path:
    """Install the console and rotating-file handlers on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()
    private_dir(log_dir)
    log_file = log_dir / LOG_FILE_NAME
    formatter = logging.Formatter(FORMAT)
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    private_file(log_file)  # the log tells what the user did: theirs alone
    handlers: list[logging.Handler] = [file_handler]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(plugin_filter)
        root.addHandler(handler)
        _installed.append(handler)
    root.setLevel(level)
    # Per-request lines, kept for DEBUG only: uvicorn's access log repeats every request,
    # and httpx's "HTTP Request: GET <url>" wrote each URL the plugins called, query
    # secrets included (an API key in ?api_key=...), and a line per request of a load
    # test.
    for name in QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    return log_file
