"""Load test: virtual users against a loopback server within hard caps, its figures, and
refusals (caps, non-loopback targets) before anything is sent."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from api_tester.load import load_test, percentile
from api_tester.sender import Resolved, guard
from api_tester.testing import loopback_server, running_app, wait_job


def test_percentiles() -> None:
    data = [float(n) for n in range(1, 101)]
    assert (percentile(data, 50), percentile(data, 95), percentile(data, 99)) == (
        50.0, 95.0, 99.0)
    assert percentile([], 50) is None and percentile([3.0], 99) == 3.0


@pytest.mark.asyncio
async def test_load_loop_counts_exactly_and_reports_errors() -> None:
    async with loopback_server() as srv:
        target = await guard(srv.url + "/toggle", [])
        ok = await load_test(Resolved("GET", srv.url + "/toggle", [], []), target, users=4,
                             duration=30, max_requests=120)
        # The request cap ends the test long before the duration.
        assert ok["requests"] == 120 == srv.state["hits"] and ok["statuses"] == {"200": 120}
        assert ok["error_rate"] == 0 and ok["p50_ms"] <= ok["p95_ms"] <= ok["p99_ms"]
        assert sum(ok["per_second"]) == 120 and ok["rps"] > 0
        srv.state["healthy"] = False
        bad = await load_test(Resolved("GET", srv.url + "/toggle", [], []), target, users=2,
                              duration=30, max_requests=10)
        assert bad["error_rate"] == 1.0 and bad["error_kinds"] == {"HTTP 500": 10}


@pytest.mark.asyncio
async def test_a_dripping_target_cannot_hold_a_test_past_its_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit: a target sending a byte a second held a 1 s test for 100 s (httpx's timeout
    is per read): the answers in flight at the end get a short grace, then count as cut."""
    from api_tester import load

    monkeypatch.setattr(load, "END_GRACE", 0.3)
    async with loopback_server() as srv:
        target = await guard(srv.url + "/drip", [])
        # The drip would take 20 s: cut instead, the test over in well under a second.
        cut = await load_test(Resolved("GET", srv.url + "/drip?n=100&every=0.2", [], []),
                              target, users=1, duration=0.5, max_requests=5)
    assert cut["error_kinds"] == {"cut at the end of the test": 1}, cut


@pytest.mark.asyncio
async def test_load_route_caps_and_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    async with running_app(tmp_path, v1=False, load_max_users=8, load_max_seconds=5.0) as app, \
            loopback_server() as srv, app.client() as client:
        request = {"url": srv.url + "/users/{{who}}"}
        started = await client.post("load", json={
            "request": request, "variables": {"who": "ann"}, "users": 3, "duration": 5,
            "max_requests": 60})
        assert started.status_code == 202, started.text
        job = await wait_job(client, started.json()["id"])
        assert job["state"] == "succeeded", job
        result: dict[str, Any] = job["result"]
        assert result["requests"] == 60 and result["users"] == 3
        assert result["statuses"] == {"200": 60} and result["p99_ms"] is not None
        assert job["message"].startswith("60 requests")  # the final count, not the last tick's

        for body, field in [({"users": 9}, "users"), ({"duration": 6}, "duration"),
                            ({"users": 0}, "users")]:
            refused = await client.post("load", json={"request": request,
                                                      "variables": {"who": "a"}, **body})
            assert refused.status_code == 422, refused.text
            assert field in str(refused.json()["detail"])
        # A header no request can carry is refused at once (audit: a 202, then the job
        # failed with a traceback in the log).
        refused = await client.post("load", json={
            "request": {**request, "headers": [{"name": "X\u00e9", "value": "1"}]},
            "variables": {"who": "a"}, "duration": 1})
        assert refused.status_code == 422 and refused.json()["field"] == "headers[0].name"

        def no_connection(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a connection or lookup was attempted")

        monkeypatch.setattr(socket, "getaddrinfo", no_connection)
        for url in ("http://10.0.0.1/", "http://169.254.169.254/latest",
                    "http://192.168.1.1:8080/", "file:///etc/passwd"):
            refused = await client.post("load", json={"request": {"url": url}, "duration": 1})
            assert refused.status_code in (400, 403), refused.text
            assert refused.json()["field"] == "url"


@pytest.mark.asyncio
async def test_load_streams_bodies_and_counts_their_bytes(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    # Review finding: every answer was read whole into memory (users x body size).
    import httpx

    def no_whole_body(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a whole body was read into memory")

    monkeypatch.setattr(httpx.Response, "aread", no_whole_body)
    async with loopback_server() as srv:
        url = srv.url + "/huge?n=3000000"
        target = await guard(url, [])
        result = await load_test(Resolved("GET", url, [], []), target, users=2,
                                 duration=60, max_requests=4)
    assert result["statuses"] == {"200": 4}
    assert result["bytes_received"] == 4 * 3_000_000
