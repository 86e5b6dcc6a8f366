"""Every v1 route answers garbage with a 4xx, never a 5xx (driven by the discovery list)."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.asyncio

JUNK_BODIES = [None, {"unexpected": 1}, [], {"limit": -1, "query": None, "name": "%00"}]
# A route that declares no body never reads one (every v1 route takes its body through
# FastAPI, so the OpenAPI document lists each that does): for those, the body-shaped junk
# would be answered the same way four times. No body, and junk where none is expected.
BODYLESS_JUNK = [None, JUNK_BODIES[-1]]
JUNK_IDS = ["x", "00000000-0000-4000-8000-000000000000", "a%20" * 80]
JUNK_QUERIES = ["", "?limit=zero&offset=x&days=-1&wait=maybe&q=%00&minutes=nan"]
# These would end the caller's session or account and leave the rest untested.
SKIP = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/users/me")}


class Answer:
    def __init__(self, status_code: int, text: str):
        self.status_code, self.text = status_code, text

    def json(self) -> Any:
        return json.loads(self.text)


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, used from a worker thread.

    The sweep sends some 7,000 requests: through httpx's AsyncClient each cost about
    2 ms of the test's own CPU (more than the server's answer), through http.client
    about a tenth of that. The requests and answers on the wire are the same: the method,
    the path as given, a JSON body as httpx encodes it, the bearer token."""

    def __init__(self, base: str, token: str | None = None):
        url = urlsplit(base)
        assert url.hostname is not None and url.port is not None
        self.host, self.port, self.prefix = url.hostname, url.port, url.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method: str, path: str, body: Any = None) -> Answer:
        headers = dict(self.headers)
        content = None
        if body is not None:
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                                 allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, self.prefix + path, body=content, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server may close a kept-alive connection between two requests:
                # send again on a new one, as httpx's pool does.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    raise
        if response.will_close:
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return Answer(response.status, text)

    def close(self) -> None:
        self.conn.close()


def sweep(base: str, token: str, http_routes: list[dict[str, Any]],
          takes_body: set[tuple[str, str]]) -> int:
    """Every route with every junk id, body and query as the user ``token``, then once
    without a token; the number of junk requests checked."""
    user, anon = Connection(base, token), Connection(base)
    checked = 0
    try:
        for route in http_routes:
            bodies = (JUNK_BODIES if (route["method"], route["path"]) in takes_body
                      else BODYLESS_JUNK)
            for junk_id in JUNK_IDS:
                path = re.sub(r"\{[^}]+\}", junk_id, route["path"].removeprefix("/api/v1"))
                for body in bodies:
                    for query in JUNK_QUERIES:
                        r = user.request(route["method"], path + query, body)
                        assert r.status_code < 500, (route, path, body, r.status_code, r.text)
                        assert r.status_code != 404 or "{" in route["path"] or r.json()[
                            "detail"] != "Not Found", (route, "the route must exist")
                        assert r.status_code != 401, (route, "the session must survive")
                        checked += 1
                if "{" not in route["path"]:
                    break
            r = anon.request(route["method"], route["path"].removeprefix("/api/v1"))
            assert r.status_code < 500 and (r.status_code == 401) == route["auth"], route
    finally:
        user.close()
        anon.close()
    return checked


async def test_garbage_never_gets_a_server_error(v1):
    ann = await v1.account("ann")  # the administrator: /backup is reachable too
    routes = (await v1.anon.get("/")).json()["routes"]
    http_routes = [r for r in routes if r["method"] != "WEBSOCKET"
                   and (r["method"], r["path"]) not in SKIP]
    assert len(http_routes) > 80
    document = (await v1.anon.get("/openapi.json")).json()
    takes_body = {(method.upper(), "/api/v1" + path)
                  for path, operations in document["paths"].items()
                  for method, operation in operations.items() if "requestBody" in operation}
    assert len(takes_body) > 30
    # In a worker thread: the server answers in this test's event loop meanwhile.
    checked = await asyncio.to_thread(sweep, v1.base, ann.token, http_routes, takes_body)
    assert checked > 700
