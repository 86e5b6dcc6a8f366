"""Webhook targets of alert rules and subscriptions pass the host's network guard:
public hosts and loopback, private/link-local (cloud metadata) addresses only when the
``webhook_allowed_hosts`` setting lists them; the request goes to the checked address
with the name as Host (and TLS server name); an answer that never ends meets a total
deadline; bad URLs and names are refused at save time, naming the field.

No test reaches beyond loopback: name resolution is faked, and every connection attempt
to another address is recorded and fails the test."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx
import pytest
from analytics_dashboard import delivery
from api_integration_layer.testing import LoopbackHTTPServer

from plexichat_desktop.plugins.guards import TargetRefused

FAKE_DNS = {"metadata.example.test": "169.254.169.254", "lan.example.test": "10.0.0.5",
            "hooks.example.test": "93.184.215.14", "hook.example.test": "127.0.0.1"}


@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fakes DNS for FAKE_DNS; records (and refuses) any lookup of another name and any
    connection to a non-loopback address. The test asserts the list stays empty."""
    attempts: list[object] = []
    real_lookup = socket.getaddrinfo
    real_connect = socket.socket.connect

    def lookup(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in FAKE_DNS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (FAKE_DNS[name], port or 0))]
        try:
            if name is None or ipaddress.ip_address(name).is_loopback:
                return real_lookup(host, port, *args, **kwargs)
        except ValueError:
            if name == "localhost":
                return real_lookup(host, port, *args, **kwargs)
        attempts.append(("lookup", name))
        raise socket.gaierror(socket.EAI_NONAME, f"test: no lookups of {name!r}")

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(
                address[0]).is_loopback:
            attempts.append(("connect", address))
            raise ConnectionRefusedError(f"test: no connections to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.mark.asyncio
@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/", "http://10.0.0.5/",
    "http://192.168.1.20:8080/hook", "http://100.64.0.1/", "http://[fd00::1]/",
    "http://0.0.0.0/", "http://metadata.example.test/", "http://lan.example.test/"])
async def test_private_and_metadata_targets_are_refused(url, outside):
    with pytest.raises(TargetRefused, match="webhook_url"):
        await delivery.guard(url)
    with pytest.raises(delivery.DeliveryError, match="webhook refused"):
        await delivery.post_webhook(url, "s3cret", "analytics.alert.test", {})
    assert outside == []


@pytest.mark.asyncio
async def test_public_loopback_and_allowed_targets_pass_pinned(outside):
    assert (await delivery.guard("http://127.0.0.1:9/x")).address == "127.0.0.1"
    assert (await delivery.guard("http://[::1]:9/x")).address == "::1"
    assert (await delivery.guard("https://93.184.215.14/x")).address == "93.184.215.14"
    named = await delivery.guard("https://hooks.example.test/in?t=1")
    assert (named.address, named.host_header) == ("93.184.215.14", "hooks.example.test")
    allowed = await delivery.guard("http://lan.example.test/", ["10.0.0.0/8"])
    assert allowed.address == "10.0.0.5"
    assert (await delivery.guard("http://10.0.0.5/", ["10.0.0.5"])).address == "10.0.0.5"
    # https goes to the checked address; Host and the TLS server name stay the name
    async with httpx.AsyncClient() as client:
        request = delivery.build_request(client, named, b"{}", {"X-A": "1"})
    assert request.url.host == "93.184.215.14" and request.url.path == "/in"
    assert request.headers["host"] == "hooks.example.test"
    assert request.extensions["sni_hostname"] == "hooks.example.test"
    assert outside == []


@pytest.mark.asyncio
async def test_a_rule_aimed_at_the_metadata_address_sends_nothing_there(app, outside):
    async with app() as running:
        # Refused when it is made (every delivery would be refused: the address is
        # link-local and not on the allow-list), not at its first alert.
        r = await running.client.post("rules", json={
            "name": "Metadata", "metric": "failed_logins", "operator": ">=", "value": 0,
            "channel": "webhook", "webhook_url": "http://169.254.169.254/latest/meta-data/"})
        assert r.status_code == 422 and r.json()["field"] == "webhook_url", r.text
        assert "not loopback and not on the allow-list" in r.json()["detail"]
        assert (await running.client.get("rules")).json()["rules"] == []
    assert outside == []


@pytest.mark.asyncio
async def test_a_subscription_aimed_at_a_refused_address_is_refused_when_saved(app, outside):
    """Rules were checked when saved, report subscriptions only when their report was
    sent: a weekly report to the metadata address was accepted and failed days later."""
    metadata = "http://169.254.169.254/latest/meta-data/"
    sub = {"name": "Weekly", "report": "files", "days": 7, "format": "csv",
           "schedule": "0 8 * * 1", "channel": "webhook"}
    async with app() as running:
        r = await running.client.post("subscriptions", json={**sub, "webhook_url": metadata})
        assert r.status_code == 422 and r.json()["field"] == "webhook_url", r.text
        assert "not loopback and not on the allow-list" in r.json()["detail"]
        assert (await running.client.get("subscriptions")).json()["subscriptions"] == []
        # One saved before this check (or whose allow-list entry went away) can still be
        # paused as it is; moving it to a refused address is refused.
        made = await running.client.post("subscriptions", json={
            **sub, "webhook_url": "http://127.0.0.1:9/in"})
        assert made.status_code == 201, made.text
        sub_id = made.json()["id"]
        running.plugin.store.subscriptions[sub_id]["webhook_url"] = "http://10.0.0.5/in"
        paused = await running.client.put(f"subscriptions/{sub_id}", json={
            **sub, "webhook_url": "http://10.0.0.5/in", "enabled": False})
        assert paused.status_code == 200 and paused.json()["enabled"] is False, paused.text
        moved = await running.client.put(f"subscriptions/{sub_id}", json={
            **sub, "webhook_url": metadata, "enabled": False})
        assert moved.status_code == 422 and moved.json()["field"] == "webhook_url"
    assert outside == []


@pytest.mark.asyncio
async def test_a_named_webhook_goes_to_the_checked_address_with_its_name(app, outside):
    async with app() as running, LoopbackHTTPServer() as receiver:
        r = await running.client.post("rules", json={
            "name": "Named", "metric": "failed_logins", "operator": ">=", "value": 0,
            "channel": "webhook",
            "webhook_url": f"http://hook.example.test:{receiver.port}/in"})
        assert r.status_code == 201 and r.json()["state"]["last_error"] is None, r.text
        assert receiver.requests[0].path == "/in"
        assert receiver.requests[0].headers["host"] == f"hook.example.test:{receiver.port}"
    assert outside == []


@pytest.mark.asyncio
async def test_a_listed_private_network_is_reached(app, outside):
    async with app(webhook_allowed_hosts=["10.0.0.0/8"]) as running:
        r = await running.client.post("rules", json={
            "name": "LAN", "metric": "failed_logins", "operator": ">=", "value": 0,
            "channel": "webhook", "webhook_url": "http://10.0.0.5:8080/hook"})
        assert r.status_code == 201, r.text
        # allowed by the guard: the (faked) connection was attempted, to that address
        assert "refused" not in r.json()["state"]["last_error"]
    assert outside == [("connect", ("10.0.0.5", 8080))]


@pytest.mark.asyncio
async def test_an_answer_that_never_ends_meets_the_total_deadline(monkeypatch, outside):
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:  # a head that never ends, one byte at a time: no single read times out
            writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(200):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    monkeypatch.setattr(delivery, "TOTAL_SECONDS", 1.0)
    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # The head would trickle for 20 s: without the total deadline this ends in the
        # 10 s wait_for's TimeoutError, not in the delivery's own error naming 1 s.
        with pytest.raises(delivery.DeliveryError, match="no complete answer within 1 s"):
            await asyncio.wait_for(delivery.post_webhook(
                f"http://127.0.0.1:{port}/", "s", "analytics.alert.test", {}), 10)
    finally:
        server.close()
    assert outside == []


@pytest.mark.asyncio
async def test_a_failed_answer_is_quoted_from_an_excerpt(outside):
    async with LoopbackHTTPServer([(500, {"why": "x" * 100_000}, {})]) as receiver:
        with pytest.raises(delivery.DeliveryError) as info:
            await delivery.post_webhook(receiver.url, "s", "analytics.alert.test", {})
    message = str(info.value)
    assert message.startswith("webhook 127.0.0.1 answered HTTP 500: {")
    assert len(message) < 300


@pytest.mark.parametrize(("change", "field"), [
    ({"webhook_url": "http://127.0.0.1:99999/hook"}, "webhook_url"),
    ({"webhook_url": "http://[::1/hook"}, "webhook_url"),
    ({"webhook_url": "http://127.0.0.1/a b"}, "webhook_url"),
    ({"name": "\u0000"}, "name"),
    ({"name": "ok\u202eevil"}, "name"),
    ({"name": "tab\there"}, "name"),
])
async def test_bad_urls_and_names_are_422_naming_the_field(app, change, field):
    async with app(signed_in=False, shared=True) as running:
        rule = {"name": "R", "metric": "messages", "value": 1, "channel": "webhook",
                "webhook_url": "http://127.0.0.1:9/hook", **change}
        sub = {"name": "S", "report": "activity", "channel": "webhook",
               "webhook_url": "http://127.0.0.1:9/hook", **change}
        for path, body in (("rules", rule), ("subscriptions", sub)):
            r = await running.client.post(path, json=body)
            assert r.status_code == 422, (path, r.text)
            locs = [e["loc"] for e in r.json()["detail"]]
            assert any(loc[-1] == field for loc in locs), (path, locs)
        assert running.plugin.store.rules == {} and running.plugin.store.subscriptions == {}
