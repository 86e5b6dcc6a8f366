"""A loopback HTTP proxy in front of the embedded v1 server, for outbox tests that need a
server behaving otherwise than ours: a subclass's :meth:`LoopbackProxy.exchange` decides
each answer (the upstream's by default, changed, or none at all)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
              "content-encoding", "host"}
# An answer: status, body, headers; None drops the connection without one.
Answer = tuple[int, bytes, Mapping[str, str]] | None


@dataclass
class LoopbackProxy:
    upstream: str  # the app's URL, ending in "/"
    url: str = ""  # the proxy's, once started

    def __post_init__(self) -> None:
        self.lock = threading.Lock()  # exchange() runs on one thread per connection
        self._server: ThreadingHTTPServer | None = None
        self._upstream: httpx.Client | None = None

    def exchange(self, method: str, target: str, path: str, body: bytes,
                 headers: dict[str, str]) -> Answer:
        """The answer to one request (``target``: path and query, ``path`` without the
        query); by default the upstream's."""
        return self.forward(method, target, body, headers)

    def forward(self, method: str, target: str, body: bytes, headers: dict[str, str]
                ) -> tuple[int, bytes, Mapping[str, str]]:
        assert self._upstream is not None
        answer = self._upstream.request(method, target, content=body, headers=headers)
        return answer.status_code, answer.content, answer.headers

    def start(self) -> None:
        self._upstream = httpx.Client(base_url=self.upstream, timeout=30.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # pytest shows failures, not traffic
                pass

            def _exchange(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                answer = proxy.exchange(self.command, self.path.lstrip("/"),
                                        self.path.split("?", 1)[0], body, headers)
                if answer is None:  # the request went out; its answer never comes back
                    self.close_connection = True
                    return
                status, content, answer_headers = answer
                self.send_response(status)
                for key, value in answer_headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _exchange

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, name=type(self).__name__,
                         daemon=True).start()

    def stop(self) -> None:
        assert self._server is not None and self._upstream is not None
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()
