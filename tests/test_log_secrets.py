"""The app's log is kept to what people need: no line per outgoing request, whose URL
carries a plugin's query secrets (an API key in ?api_key=...). Audit finding: httpx's
"HTTP Request: GET <url>" lines wrote them to the log file at the default level."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from plexichat_desktop.core import logs
from plexichat_desktop.core.logs import LOG_FILE_NAME, setup_logging

SECRET = "QUERYAPIKEY-9f8e7d6c5b4a"


class Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/echo"
    finally:
        server.shutdown()


def logged_request(log_dir: Path, level: str, url: str) -> str:
    root = logging.getLogger()
    before = root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_BELOW_DEBUG}
    setup_logging(log_dir, level, console=False)
    try:
        httpx.get(url, params={"api_key": SECRET}, timeout=10)
        return (log_dir / LOG_FILE_NAME).read_text()
    finally:
        for handler in logs._installed:
            root.removeHandler(handler)
            handler.close()
        logs._installed.clear()
        root.setLevel(before)
        for name, was in quiet.items():
            logging.getLogger(name).setLevel(was)


def test_outgoing_request_urls_stay_out_of_the_log(tmp_path: Path, loopback: str) -> None:
    assert SECRET not in logged_request(tmp_path / "info", "INFO", loopback)
    # Asked for (DEBUG, to see what the app sends), they are there.
    assert SECRET in logged_request(tmp_path / "debug", "DEBUG", loopback)
