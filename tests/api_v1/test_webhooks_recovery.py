"""v1 webhooks, recovery and operations: redeliver one delivery, recover failed ones since a
time, rotate the secret with a grace period, auto-disable after N failures, the filtered
log, and the app's own loopback receivers. All against the real server and a loopback
receiver."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api_v1.test_webhooks import Received, receiver, wait_status  # noqa: F401

pytestmark = pytest.mark.asyncio
SECRET = "first-secret-of-enough-length"
NEXT = "second-secret-of-enough-length"


def entries(request: Received) -> list[str]:
    return request.headers["x-plexichat-signature"].split()


def signed_by(entry: str, request: Received, secret: str) -> bool:
    stamp = request.headers["x-plexichat-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + request.body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, entry)


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


async def test_redeliver_recover_and_the_filtered_log(make_v1, receiver, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    v1 = await make_v1(webhook_retry_base=0.05, webhook_max_attempts=1)
    ann = await v1.account("ann")
    started = ago(1)
    hook = (await ann.client.post("/webhooks/register", json={
        "url": receiver.url, "events": ["*"], "secret": SECRET})).json()
    receiver.statuses = [500, 502]
    first = (await ann.client.post(f"/webhooks/{hook['id']}/test",
                                   params={"wait": "true"})).json()
    second = (await ann.client.post(f"/webhooks/{hook['id']}/test",
                                    params={"wait": "true"})).json()
    assert first["status"] == second["status"] == "failed"
    attempt = first["attempts"][0]
    assert attempt["status_code"] == 500 and attempt["duration_ms"] >= 0
    sent = attempt["request_headers"]
    assert sent["X-PlexiChat-Event"] == "webhook.test"
    assert sent["X-PlexiChat-Delivery"] == first["id"]
    assert sent["X-PlexiChat-Signature"].startswith("sha256=")
    assert SECRET not in str(first)

    # Resend one: a new delivery, the same body byte for byte, linked to the original.
    r = await ann.client.post(f"/webhooks/deliveries/{first['id']}/redeliver",
                              params={"wait": "true"})
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["id"] != first["id"] and again["redelivery_of"] == first["id"]
    assert again["status"] == "delivered" and again["payload"] == first["payload"]
    request = receiver.requests[-1]
    assert request.json()["id"] == first["id"]  # receivers deduplicate on it
    assert request.headers["x-plexichat-delivery"] == again["id"]
    assert request.headers["x-plexichat-redelivery-of"] == first["id"]
    assert (await ann.client.post("/webhooks/deliveries/nope/redeliver")).status_code == 404

    # Recover since a time: only the failed deliveries not sent again yet (the second).
    r = await ann.client.post(f"/webhooks/{hook['id']}/recover", json={"since": started})
    assert r.status_code == 202, r.text
    result = r.json()
    assert result["recovered"] == 1 and result["recovered_from"] == [second["id"]]
    assert result["remaining"] == 0
    recovered = await wait_status(ann.client, result["delivery_ids"][0], "delivered")
    assert recovered["redelivery_of"] == second["id"]
    again = (await ann.client.post(f"/webhooks/{hook['id']}/recover",
                                   json={"since": started})).json()
    assert again["recovered"] == 0  # nothing is ever sent twice
    # A window that ends before the failures recovers nothing.
    early = (await ann.client.post(f"/webhooks/{hook['id']}/recover",
                                   json={"since": ago(3600), "until": ago(1800)})).json()
    assert early["recovered"] == 0
    # Review finding: the ends of datetime's range were 500s (echoing them as UNIX
    # seconds and back leaves the years 1-9999). Before any delivery or after now: the
    # same as the first delivery or now.
    for body in ({"since": "0001-01-01T00:00:00+14:00"},
                 {"since": ago(3600), "until": "9999-12-31T23:59:59-14:00"}):
        r = await ann.client.post(f"/webhooks/{hook['id']}/recover", json=body)
        assert r.status_code == 202 and r.json()["recovered"] == 0, (body, r.text)
    for body, field in (({"since": ago(-3600)}, "since"),
                        ({"since": ago(10), "until": ago(20)}, "until"),
                        ({"since": "yesterday"}, "since"), ({}, "since"),
                        ({"since": ago(5), "extra": 1}, "extra")):
        r = await ann.client.post(f"/webhooks/{hook['id']}/recover", json=body)
        assert r.status_code == 422 and field in r.text, (body, r.text)

    # The log across webhooks, with filters.
    log = (await ann.client.get("/webhooks/deliveries", params={
        "status": "failed", "event": "webhook.test"})).json()
    assert {d["id"] for d in log["deliveries"]} == {first["id"], second["id"]}
    assert (await ann.client.get("/webhooks/deliveries")).json()["total"] == 4
    assert (await ann.client.get("/webhooks/deliveries", params={
        "since": ago(-60)})).json()["total"] == 0
    per_hook = (await ann.client.get(f"/webhooks/{hook['id']}/deliveries", params={
        "event": "webhook.test", "since": started})).json()
    assert per_hook["total"] == 4 and per_hook["webhook_id"] == hook["id"]
    r = await ann.client.get("/webhooks/deliveries", params={"event": "message.exploded"})
    assert r.status_code == 422 and "event" in r.text
    # Another user sees none of it.
    ben = await v1.account("ben")
    assert (await ben.client.get("/webhooks/deliveries")).json()["total"] == 0
    assert (await ben.client.post(f"/webhooks/deliveries/{first['id']}/redeliver")
            ).status_code == 404
    assert (await ben.client.post(f"/webhooks/{hook['id']}/recover",
                                  json={"since": started})).status_code == 404
    assert SECRET not in caplog.text and "/hook" not in caplog.text


async def test_rotating_the_secret_keeps_the_old_one_for_the_grace(v1, receiver):  # noqa: F811
    ann = await v1.account("ann")
    hook = (await ann.client.post("/webhooks/register", json={
        "url": receiver.url, "events": ["webhook.test"], "secret": SECRET})).json()
    r = await ann.client.post(f"/webhooks/{hook['id']}/rotate-secret",
                              json={"secret": NEXT, "grace_seconds": 3600})
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"] == NEXT and rotated["previous_secret_expires_at"]
    assert "secret" not in (await ann.client.get(f"/webhooks/{hook['id']}")).json()
    await ann.client.post(f"/webhooks/{hook['id']}/test", params={"wait": "true"})
    new, old = entries(receiver.requests[-1])
    assert signed_by(new, receiver.requests[-1], NEXT)
    assert signed_by(old, receiver.requests[-1], SECRET)

    # Without a grace, the old secret is gone at once; a generated secret is 64 hex.
    r = await ann.client.post(f"/webhooks/{hook['id']}/rotate-secret",
                              json={"grace_seconds": 0})
    newest = r.json()["secret"]
    assert len(newest) == 64 and r.json()["previous_secret_expires_at"] is None
    await ann.client.post(f"/webhooks/{hook['id']}/test", params={"wait": "true"})
    [only] = entries(receiver.requests[-1])
    assert signed_by(only, receiver.requests[-1], newest)
    assert not signed_by(only, receiver.requests[-1], NEXT)
    # An empty body is fine too (default grace: a day).
    r = await ann.client.post(f"/webhooks/{hook['id']}/rotate-secret")
    assert r.status_code == 200 and r.json()["previous_secret_expires_at"]
    for body, field in (({"grace_seconds": -1}, "grace_seconds"),
                        ({"grace_seconds": 10**9}, "grace_seconds"),
                        ({"secret": "short"}, "secret")):
        r = await ann.client.post(f"/webhooks/{hook['id']}/rotate-secret", json=body)
        assert r.status_code == 422 and field in r.text, (body, r.text)
    assert (await ann.client.post("/webhooks/nope/rotate-secret")).status_code == 404


async def test_auto_disable_after_n_failures_then_enable_and_recover(make_v1,
                                                                     receiver):  # noqa: F811
    v1 = await make_v1(webhook_retry_base=0.05, webhook_max_attempts=1)
    ann = await v1.account("ann")
    started = ago(1)
    hook = (await ann.client.post("/webhooks/register", json={
        "url": receiver.url, "events": ["*"], "disable_after": 2,
        "description": "flaky receiver"})).json()
    assert hook["disable_after"] == 2 and hook["consecutive_failures"] == 0
    receiver.statuses = [500, 500]
    for _ in range(2):
        await ann.client.post(f"/webhooks/{hook['id']}/test", params={"wait": "true"})
    state = (await ann.client.get(f"/webhooks/{hook['id']}")).json()
    assert state["active"] is False and state["consecutive_failures"] == 2
    assert "2 consecutive failed deliveries" in state["disabled_reason"]
    assert state["disabled_at"]
    notes = (await ann.client.get("/notifications/")).json()["notifications"]
    [note] = [n for n in notes if n["metadata"].get("webhook_id") == hook["id"]]
    assert note["title"] == "Webhook disabled" and "flaky receiver" in note["message"]
    # A test while it is off counts no further (a Webhook Manager audit: "5 of 2").
    receiver.statuses = [500]
    await ann.client.post(f"/webhooks/{hook['id']}/test", params={"wait": "true"})
    assert (await ann.client.get(f"/webhooks/{hook['id']}")).json()[
        "consecutive_failures"] == 2

    enabled = (await ann.client.put(f"/webhooks/{hook['id']}", json={"active": True})).json()
    assert enabled["active"] and enabled["disabled_reason"] is None
    assert enabled["consecutive_failures"] == 0
    result = (await ann.client.post(f"/webhooks/{hook['id']}/recover",
                                    json={"since": started})).json()
    assert result["recovered"] == 3  # the two that disabled it, and the test while off
    for delivery_id in result["delivery_ids"]:
        await wait_status(ann.client, delivery_id, "delivered")
    assert (await ann.client.put(f"/webhooks/{hook['id']}", json={"disable_after": None})
            ).status_code == 422
    assert (await ann.client.put(f"/webhooks/{hook['id']}", json={"disable_after": 0})
            ).json()["disable_after"] == 0


async def test_the_apps_own_receivers_are_reachable_without_allow_private(
        make_v1, receiver):  # noqa: F811
    v1 = await make_v1(webhook_allow_private=False)
    ann = await v1.account("ann")
    port = int(receiver.url.split(":")[2].split("/")[0])
    body: dict[str, Any] = {"url": receiver.url, "events": ["webhook.test"]}
    refused = await ann.client.post("/webhooks/register", json=body)
    assert refused.status_code == 422 and "loopback" in refused.text
    # Only the app (its token) announces its receivers; a user's token is not enough.
    assert (await ann.client.put(f"/webhooks/local-receivers/{port}")).status_code == 403
    owner = {"X-PlexiChat-App-Token": v1.core.token}
    r = await v1.anon.put(f"/webhooks/local-receivers/{port}", headers=owner)
    assert r.status_code == 200, r.text
    hook = (await ann.client.post("/webhooks/register", json=body)).json()
    delivery = (await ann.client.post(f"/webhooks/{hook['id']}/test",
                                      params={"wait": "true"})).json()
    assert delivery["status"] == "delivered", delivery
    # Another port of this machine stays refused.
    other = receiver.url.replace(f":{port}/", f":{port + 1 if port < 65535 else 1}/")
    assert (await ann.client.post("/webhooks/register", json={
        **body, "url": other})).status_code == 422
    assert (await v1.anon.put("/webhooks/local-receivers/0", headers=owner)).status_code == 422
    assert (await v1.anon.delete(f"/webhooks/local-receivers/{port}", headers=owner)
            ).status_code == 200
    assert (await ann.client.post("/webhooks/register", json=body)).status_code == 422
    routes = (await v1.anon.get("/")).json()
    assert "local-receivers" not in str(routes)  # the app's own, not the public API


async def test_a_switched_off_webhook_gets_no_more_retries(make_v1, receiver):  # noqa: F811
    v1 = await make_v1(webhook_retry_base=0.05, webhook_max_attempts=3)
    ann = await v1.account("ann")
    hook = (await ann.client.post("/webhooks/register", json={
        "url": receiver.url, "events": ["*"], "disable_after": 1})).json()
    receiver.statuses = [500, 500, 500, 500]
    first = (await ann.client.post(f"/webhooks/{hook['id']}/test")).json()
    failed = await wait_status(ann.client, first["id"], "failed")
    assert failed["attempt_count"] == 3
    assert (await ann.client.get(f"/webhooks/{hook['id']}")).json()["active"] is False
    # A test still goes out (the owner asked), but a failure is not retried while off.
    second = (await ann.client.post(f"/webhooks/{hook['id']}/test")).json()
    failed = await wait_status(ann.client, second["id"], "failed")
    assert failed["attempt_count"] == 1 and failed["attempts"][0]["status_code"] == 500
