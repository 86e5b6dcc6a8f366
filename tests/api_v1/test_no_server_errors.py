"""Every v1 route answers garbage with a 4xx, never a 5xx (driven by the discovery list)."""

from __future__ import annotations

import re

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
    checked = 0
    for route in http_routes:
        bodies = JUNK_BODIES if (route["method"], route["path"]) in takes_body else BODYLESS_JUNK
        for junk_id in JUNK_IDS:
            path = re.sub(r"\{[^}]+\}", junk_id, route["path"].removeprefix("/api/v1"))
            for body in bodies:
                for query in JUNK_QUERIES:
                    kwargs = {} if body is None else {"json": body}
                    r = await ann.client.request(route["method"], path + query, **kwargs)
                    assert r.status_code < 500, (route, path, body, r.status_code, r.text)
                    assert r.status_code != 404 or "{" in route["path"] or r.json()[
                        "detail"] != "Not Found", (route, "the route must exist")
                    assert r.status_code != 401, (route, "the session must survive")
                    checked += 1
            if "{" not in route["path"]:
                break
        r = await v1.anon.request(route["method"], route["path"].removeprefix("/api/v1"))
        assert r.status_code < 500 and (r.status_code == 401) == route["auth"], route
    assert checked > 700
