"""The plugin in the real app against the embedded v1 server: endpoints, the inspector's
verdicts on real deliveries and forged requests, retries, auto-disable, recovery, secret
rotation, forwarding through a template, the live stream, and no secret in any log.

One app serves the whole module (starting it is the slow part). It runs with the v1
server's defaults except faster retries: ``webhook_allow_private`` stays off, so the
inspector is reachable only because the plugin announces it as the app's own receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from plexichat_desktop.testing.harness import PlexiChatApp, start_app

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "api": {"webhook_retry_base": 0.05, "webhook_max_attempts": 2, "webhook_timeout": 5},
    "plugin": {"webhook_manager": {"max_body_bytes": 4096, "rate_limit_per_minute": 40,
                                   "poll_interval": 0.2, "forward_retry_base": 0.05}},
}


class Recorder(logging.Handler):
    """Every log record of the app while the module runs, formatted. The app runs in
    threads of its own; the test's own clients (main thread) log the URLs they call."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != threading.main_thread().ident:
            self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def logs() -> Iterator[Recorder]:
    recorder = Recorder()
    root = logging.getLogger()
    level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(level)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, logs: Recorder) -> Iterator[PlexiChatApp]:
    with start_app(PLUGIN_ROOT, tmp_path_factory.mktemp("home"), SETTINGS) as running:
        yield running


SEEN_SECRETS: list[str] = []


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def new_inbox(app: PlexiChatApp, name: str, **extra: Any) -> dict[str, Any]:
    return ok(app.client.post("api/inboxes", json={"name": name, **extra}), 201)


def hook_to(app: PlexiChatApp, inbox: dict[str, Any], **extra: Any) -> dict[str, Any]:
    hook = ok(app.client.post(f"api/inboxes/{inbox['id']}/webhook",
                              json={"events": ["*"], **extra}), 201)
    SEEN_SECRETS.append(hook["secret"])
    return hook


def captures(app: PlexiChatApp, inbox: dict[str, Any]) -> list[dict[str, Any]]:
    return list(ok(app.client.get(f"api/inboxes/{inbox['id']}/captures"))["captures"])


def forged(secret: str, body: bytes, at: float) -> dict[str, str]:
    stamp = str(int(at))
    sig = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body,
                               hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-PlexiChat-Timestamp": stamp,
            "X-PlexiChat-Signature": sig, "X-PlexiChat-Event": "webhook.test"}


def test_endpoints_secret_once_catalogue_and_bad_urls(app: PlexiChatApp) -> None:
    status = ok(app.client.get("api/status"))
    assert status["user"]["username"] == app.user.username  # type: ignore[union-attr]
    assert status["inspector"]["url"].startswith("http://127.0.0.1:")
    until(lambda: ok(app.client.get("api/status"))["inspector"]["reachable_by_v1"],
          "the inspector announced to the v1 server")
    catalogue = ok(app.client.get("api/catalogue"))
    assert "message.sent" in catalogue["events"] and catalogue["wildcard"] == "*"

    inbox = new_inbox(app, "crud")
    created = ok(app.client.post("api/endpoints", json={
        "url": inbox["url"], "events": ["message.sent", "user.login"],
        "description": "CRUD endpoint"}), 201)
    SEEN_SECRETS.append(created["secret"])
    assert len(created["secret"]) == 64 and created["disable_after"] == 5  # the default
    listing = ok(app.client.get("api/endpoints"))
    [mine] = [e for e in listing["endpoints"] if e["id"] == created["id"]]
    assert "secret" not in mine and mine["secret_hint"] == created["secret"][:4] + "…"
    assert mine["health"]["state"] == "idle" and mine["health"]["success_rate"] is None
    assert "secret" not in ok(app.client.get(f"api/endpoints/{created['id']}"))

    for bad in ("ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x", "hooks/relative",
                "http://", "javascript:alert(1)",
                # Review finding: these two were 500s.
                "http://[::1/x", "http://127.0.0.1:99999/x",
                # Audit: registered, and no delivery could ever resolve them.
                "http://exa mple.org/", "http://ex\\u00e4mple.org/"):
        refused = app.client.post("api/endpoints", json={"url": bad, "events": ["*"]})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["field"] == "url" and refused.json()["detail"].startswith("url:")
    # The v1 server's own checks come through with the field named too.
    refused = app.client.post("api/endpoints", json={"url": "http://10.1.2.3/x",
                                                     "events": ["*"]})
    assert refused.status_code == 422 and refused.json()["field"] == "url"
    assert "private" in refused.json()["detail"]
    assert refused.json()["detail"].startswith("url: 10.1.2.3 is")  # named once, not twice
    refused = app.client.post("api/endpoints", json={"url": inbox["url"],
                                                     "events": ["message.exploded"]})
    assert refused.status_code == 422 and "message.exploded" in refused.json()["detail"]
    assert app.client.post("api/endpoints", json={"url": inbox["url"], "events": []}
                           ).status_code == 422

    changed = ok(app.client.put(f"api/endpoints/{created['id']}", json={
        "events": ["*"], "disable_after": 0, "description": "renamed"}))
    assert changed["events"] == ["*"] and changed["disable_after"] == 0
    assert app.client.put(f"api/endpoints/{created['id']}", json={"url": "ftp://x/"}
                          ).status_code == 422
    code = ok(app.client.get(f"api/endpoints/{created['id']}/snippets"))
    assert set(code) == {"python", "node", "go"} and "X-PlexiChat-Signature" in code["python"]
    ok(app.client.delete(f"api/endpoints/{created['id']}"))
    assert app.client.get(f"api/endpoints/{created['id']}").status_code == 404


def test_the_inspector_passes_real_deliveries_and_fails_forgeries(app: PlexiChatApp) -> None:
    inbox = new_inbox(app, "verify")
    hook = hook_to(app, inbox)
    secret = hook["secret"]
    assert hook["url"] == inbox["url"] and hook["description"] == "Inspector: verify"
    delivery = ok(app.client.post(f"api/endpoints/{hook['id']}/test"))
    assert delivery["status"] == "delivered", delivery
    [capture] = captures(app, inbox)
    assert capture["verdict"]["ok"], capture["verdict"]
    assert capture["event"] == "webhook.test" and capture["delivery_id"] == delivery["id"]
    assert "matches the current secret" in capture["verdict"]["reason"]
    full = ok(app.client.get(f"api/captures/{capture['id']}"))
    assert json.loads(full["body"])["id"] == delivery["id"]
    body = full["body"].encode()

    now = time.time()
    with httpx.Client(timeout=10) as raw:
        cases = [
            (forged(secret, body, now), body.replace(b"test", b"TEST"), "does not match"),
            (forged(secret, body, now - 3600), body, "outside the 300 s window"),
            (forged("a-completely-wrong-secret", body, now), body, "does not match"),
            ({"Content-Type": "application/json"}, body, "no X-PlexiChat-Signature"),
        ]
        for headers, sent, _ in cases:
            answer = raw.post(inbox["url"], content=sent, headers=headers)
            assert answer.status_code == 200 and answer.json()["verified"] is False
        # Five seconds back: signed in the same second as the real delivery, this would be
        # that delivery again (a replay).
        good = raw.post(inbox["url"], content=body, headers=forged(secret, body, now - 5))
        assert good.json()["verified"] is True
        assert raw.post(inbox["url"] + "x", content=b"{}").status_code == 404
        assert raw.post(inbox["url"].rsplit("/", 1)[0] + "/nope", content=b"{}"
                        ).status_code == 404
        assert raw.get(inbox["url"].split("/in/")[0] + "/").status_code == 404
        assert raw.post(inbox["url"], content=b"x" * 5000).status_code == 413  # cap: 4096
    found = captures(app, inbox)
    failed = [c for c in found if not c["verdict"]["ok"]]
    reasons = [c["verdict"]["reason"] for c in reversed(failed)]
    for (_, _, needle), reason in zip(cases, reasons, strict=True):
        assert needle in reason, (needle, reason)
    passed = ok(app.client.get(f"api/inboxes/{inbox['id']}/captures",
                               params={"verdict": "pass"}))["captures"]
    assert len(passed) == 2 and all(c["verdict"]["ok"] for c in passed)
    # The genuine request again inside the window: a replay, not verified (it passed as
    # verified), whatever unsigned headers say (a higher attempt, another delivery id); a
    # request signed anew (another second) passes.
    replayed = forged(secret, body, now - 5)
    with httpx.Client(timeout=10) as raw:
        again = [raw.post(inbox["url"], content=body, headers={**replayed, **extra}).json()
                 for extra in ({}, {"X-PlexiChat-Attempt": "2"},
                               {"X-PlexiChat-Delivery": "another-id"})]
        resigned = raw.post(inbox["url"], content=body, headers=forged(secret, body, now - 4))
    assert all(a["verified"] is False and "a replay" in a["reason"] for a in again), again
    assert resigned.json()["verified"] is True
    assert app.client.get("api/inboxes/nope/captures").status_code == 404
    assert app.client.get("api/captures/nope").status_code == 404


def test_a_test_delivery_waits_as_long_as_the_server_may(app: PlexiChatApp) -> None:
    """Audit: Send test and Resend waited under the API layer's own 10 s timeout, no longer
    than the server's webhook timeout: a receiver that hung made "the PlexiChat API did
    not answer" out of a delivery that was sent and timed out. Here the layer's timeout
    is cut to nothing: the wait must not depend on it."""
    inbox = new_inbox(app, "patient")
    hook = hook_to(app, inbox)
    layer = app.runtime.plugins.by_id["api_integration_layer"].instance.client
    config = layer.config
    layer.config = config.model_copy(update={"timeout": 0.001})
    try:
        sent = ok(app.client.post(f"api/endpoints/{hook['id']}/test"))
    finally:
        layer.config = config
    assert sent["status"] == "delivered", sent
    resent = ok(app.client.post(f"api/deliveries/{sent['id']}/resend"))
    assert resent["redelivery_of"] == sent["id"]


def test_rate_limit_per_inbox(app: PlexiChatApp) -> None:
    inbox = new_inbox(app, "flood")
    with httpx.Client(timeout=10) as raw:
        statuses = [raw.post(inbox["url"], content=b"{}").status_code for _ in range(41)]
    assert statuses[:40] == [200] * 40 and statuses[40] == 429
    assert len(captures(app, inbox)) == 40


def test_retries_auto_disable_and_recovery(app: PlexiChatApp) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    inbox = new_inbox(app, "failing", respond_status=500)
    hook = hook_to(app, inbox, disable_after=2)
    first = ok(app.client.post(f"api/endpoints/{hook['id']}/test"))
    failed = until(lambda: (d := ok(app.client.get(f"api/deliveries/{first['id']}")))
                   ["status"] == "failed" and d, "the first delivery to fail")
    # The receiver's 500 shows as retries: two attempts, each with its status and time.
    assert [a["status_code"] for a in failed["attempts"]] == [500, 500]
    assert all(a["duration_ms"] >= 0 and a["request_headers"]["X-PlexiChat-Signature"]
               for a in failed["attempts"])
    assert failed["attempts"][1]["request_headers"]["X-PlexiChat-Attempt"] == "2"
    second = ok(app.client.post(f"api/endpoints/{hook['id']}/test"))
    until(lambda: ok(app.client.get(f"api/deliveries/{second['id']}"))["status"] == "failed",
          "the second delivery to fail")
    endpoint = ok(app.client.get(f"api/endpoints/{hook['id']}"))
    assert endpoint["active"] is False and "2 consecutive failed" in endpoint["disabled_reason"]
    assert endpoint["health"]["state"] == "disabled"
    assert endpoint["health"]["success_rate"] == 0.0
    # The log filters.
    log = ok(app.client.get("api/deliveries", params={"webhook_id": hook["id"],
                                                      "status": "failed"}))
    assert {d["id"] for d in log["deliveries"]} == {first["id"], second["id"]}
    assert ok(app.client.get("api/deliveries", params={
        "webhook_id": hook["id"], "status": "delivered"}))["total"] == 0
    bad = app.client.get("api/deliveries", params={"status": "odd"})
    assert bad.status_code == 422
    bad = app.client.get("api/deliveries", params={"event": "message.exploded"})
    assert bad.status_code == 422 and bad.json()["field"] == "event"

    # Fix the receiver, switch the endpoint on again, recover what failed.
    ok(app.client.put(f"api/inboxes/{inbox['id']}", json={"respond_status": 200}))
    enabled = ok(app.client.put(f"api/endpoints/{hook['id']}", json={"active": True}))
    assert enabled["active"] and enabled["disabled_reason"] is None
    result = ok(app.client.post(f"api/endpoints/{hook['id']}/recover",
                                json={"since": since}), 202)
    assert result["recovered"] == 2 and set(result["recovered_from"]) == {first["id"],
                                                                         second["id"]}
    for new_id in result["delivery_ids"]:
        until(lambda i=new_id: ok(app.client.get(f"api/deliveries/{i}"))["status"]
              == "delivered", "a recovered delivery")
    again = ok(app.client.post(f"api/endpoints/{hook['id']}/recover", json={"since": since}),
               202)
    assert again["recovered"] == 0
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    refused = app.client.post(f"api/endpoints/{hook['id']}/recover", json={"since": future})
    assert refused.status_code == 422 and refused.json()["field"] == "since"
    # Resend one: a new delivery with the same body, linked to the original.
    resent = ok(app.client.post(f"api/deliveries/{first['id']}/resend"))
    assert resent["redelivery_of"] == first["id"] and resent["status"] == "delivered"
    assert resent["payload"] == first["payload"]
    found = captures(app, inbox)
    assert len(found) == 7  # 4 failed attempts, 3 sent again
    # Every attempt the inbox refused verified, retries included: a retry signed within
    # the same second as the refused attempt before it has the same signature, and that
    # is no replay (it was flagged as one while the inbox remembered refused requests).
    refused = [c for c in found if c["response_status"] == 500]
    assert len(refused) == 4
    assert all(c["verdict"]["ok"] for c in refused), [c["verdict"] for c in refused]
    # What it accepted verified too, but for the resend of a recovered delivery signed in
    # the same second as the copy it accepted: that is a copy of an accepted request.
    accepted = [c for c in found if c["response_status"] == 200]
    assert all(c["verdict"]["ok"] or c["verdict"]["reason"].startswith("replay:")
               for c in accepted), [c["verdict"] for c in accepted]
    assert sum(c["verdict"]["ok"] for c in accepted) >= 2
    assert ok(app.client.get(f"api/endpoints/{hook['id']}"))["health"]["state"] == "healthy"


def test_rotation_keeps_the_inbox_verifying(app: PlexiChatApp) -> None:
    inbox = new_inbox(app, "rotate")
    hook = hook_to(app, inbox)
    rotated = ok(app.client.post(f"api/endpoints/{hook['id']}/rotate",
                                 json={"grace_seconds": 3600}))
    SEEN_SECRETS.append(rotated["secret"])
    assert rotated["secret"] != hook["secret"] and rotated["inboxes_updated"] == [inbox["id"]]
    state = next(i for i in ok(app.client.get("api/inboxes"))["inboxes"]
                 if i["id"] == inbox["id"])
    assert state["secrets_in_force"] == 2 and state["previous_expires_at"]
    ok(app.client.post(f"api/endpoints/{hook['id']}/test"))
    latest = captures(app, inbox)[0]
    assert latest["verdict"]["ok"] and "2 signatures sent" in latest["verdict"]["reason"]
    # A sender still on the old secret passes during the grace, as "previous".
    body = b'{"id": "x", "event": "webhook.test", "data": {}}'
    with httpx.Client(timeout=10) as raw:
        answer = raw.post(inbox["url"], content=body,
                          headers=forged(hook["secret"], body, time.time()))
    assert answer.json()["verified"] is True
    assert "previous secret" in captures(app, inbox)[0]["verdict"]["reason"]
    # No grace: the old secret stops at once, for the server and the inbox alike.
    final = ok(app.client.post(f"api/endpoints/{hook['id']}/rotate",
                               json={"grace_seconds": 0}))
    SEEN_SECRETS.append(final["secret"])
    with httpx.Client(timeout=10) as raw:
        answer = raw.post(inbox["url"], content=body,
                          headers=forged(rotated["secret"], body, time.time()))
    assert answer.json()["verified"] is False
    assert app.client.post(f"api/endpoints/{hook['id']}/rotate",
                           json={"grace_seconds": -5}).status_code == 422
    # A secret set by hand replaces the inbox's (a receiver of another sender).
    manual = "typed-in-by-hand-secret"
    SEEN_SECRETS.append(manual)
    ok(app.client.put(f"api/inboxes/{inbox['id']}", json={"secret": manual}))
    # Another delivery (its own id): the same body in the same second would be a replay
    # of the one the grace let through above.
    body = b'{"id": "y", "event": "webhook.test", "data": {}}'
    with httpx.Client(timeout=10) as raw:
        answer = raw.post(inbox["url"], content=body, headers=forged(manual, body, time.time()))
    assert answer.json()["verified"] is True
    assert app.client.put(f"api/inboxes/{inbox['id']}", json={"tolerance": 0}
                          ).status_code == 422
    assert app.client.put("api/inboxes/nope", json={"name": "x"}).status_code == 404


class ChatServer(http.server.ThreadingHTTPServer):
    """A stand-in for Slack: records JSON bodies, answers 503 first, then 200."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.answers = [503]
        super().__init__(("127.0.0.1", 0), ChatHandler)


class ChatHandler(http.server.BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self) -> None:  # the name http.server calls
        size = int(self.headers.get("Content-Length", 0))
        self.server.bodies.append(json.loads(self.rfile.read(size)))
        status = self.server.answers.pop(0) if self.server.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def test_templates_preview_and_forwarding_with_retries(app: PlexiChatApp) -> None:
    presets = ok(app.client.get("api/templates"))["presets"]
    assert set(presets) == {"slack", "discord", "teams", "matrix"}
    preview = ok(app.client.post("api/templates/preview", json={
        "template": presets["discord"]["template"], "event": "file.uploaded"}))
    assert preview["output"]["content"] == "File uploaded: report.pdf"
    broken = app.client.post("api/templates/preview", json={
        "template": '{\n "text": {{ data.nope | tojson }}\n}'})
    assert broken.status_code == 422 and broken.json()["line"] == 2
    assert broken.json()["detail"].startswith("template: line 2:")
    escape = app.client.post("api/templates/preview", json={
        "template": '{"a": {{ "".__class__.__subclasses__() }}}'})
    assert escape.status_code == 422 and "sandbox" in escape.json()["detail"]
    # A chain of allowed powers made a number of millions of digits in one operation: the
    # app stopped answering (the time cap cannot interrupt it). Refused before it is made.
    power = app.client.post("api/templates/preview", json={
        "template": '{"n": {{ 10 ** 99 ** 99 ** 99 ** 99 }}}'})
    assert power.status_code == 422 and "over 4096 bits" in power.json()["detail"]

    refused = app.client.post("api/inboxes", json={
        "name": "x", "forward_url": "https://example.com/hook",
        "forward_template": presets["slack"]["template"]})
    assert refused.status_code == 422 and refused.json()["field"] == "forward_url"
    refused = app.client.post("api/inboxes", json={
        "name": "x", "forward_url": "http://127.0.0.1:9/x", "forward_template": "{{ oops"})
    assert refused.status_code == 422 and refused.json()["field"] == "forward_template"
    assert "line 1" in refused.json()["detail"]
    # A template for another event than message.sent (audit: refused, as only that
    # event's sample was tried), and one that renders for none of them.
    files = '{"text": {{ ("New file: " ~ data.filename)|tojson }}}'
    made = app.client.post("api/inboxes", json={
        "name": "files", "forward_url": "http://127.0.0.1:9/x", "forward_template": files})
    assert made.status_code == 201, made.text
    assert app.client.delete(f"api/inboxes/{made.json()['id']}").status_code == 200
    refused = app.client.post("api/inboxes", json={
        "name": "x", "forward_url": "http://127.0.0.1:9/x",
        "forward_template": '{"text": {{ data.nowhere.deeper|tojson }}}'})
    assert refused.status_code == 422 and refused.json()["field"] == "forward_template"

    chat = ChatServer()
    thread = threading.Thread(target=chat.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{chat.server_address[1]}/services/T000/B000/XXXX"
        inbox = new_inbox(app, "to slack", forward_url=url,
                          forward_template=presets["slack"]["template"])
        hook = hook_to(app, inbox)
        ok(app.client.post(f"api/endpoints/{hook['id']}/test"))
        capture = until(lambda: (c := captures(app, inbox)) and c[0]["forward"] and c[0],
                        "the forward to finish")
        forward = capture["forward"]
        assert forward["ok"] and [a["status"] for a in forward["attempts"]] == [503, 200]
        assert chat.bodies[-1]["text"].startswith("[webhook.test] ")
        # An unverified request is captured but never forwarded.
        with httpx.Client(timeout=10) as raw:
            raw.post(inbox["url"], content=b'{"event": "x"}')
        assert len(chat.bodies) == 2
    finally:
        chat.shutdown()
        chat.server_close()


def test_the_live_stream_pushes_captures_and_deliveries(app: PlexiChatApp) -> None:
    inbox = new_inbox(app, "live")
    hook = hook_to(app, inbox)
    seen: dict[str, Any] = {}
    with httpx.Client(base_url=app.plugin_url, headers=app.headers, timeout=30) as stream_client, \
            stream_client.stream("GET", "api/stream") as stream:
        lines = stream.iter_lines()
        assert "event: hello" in [next(lines) for _ in range(3)]
        ok(app.client.post(f"api/endpoints/{hook['id']}/test", params={"wait": "false"}))
        name = None
        for line in lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name in ("capture", "delivery"):
                data = json.loads(line[6:])
                if name == "capture" and data["inbox_id"] == inbox["id"]:
                    seen["capture"] = data
                if name == "delivery" and data["webhook_id"] == hook["id"] \
                        and data["status"] == "delivered":
                    seen["delivery"] = data
                if len(seen) == 2:
                    break
    assert seen["capture"]["verdict"]["ok"]
    assert seen["delivery"]["attempt_count"] == 1


def test_the_live_log_reads_every_delivery_that_changed_between_two_polls(
        app: PlexiChatApp) -> None:
    """Seen in session 19: the live log read one page (100) of what changed since its last
    poll, newest first: in a burst, the older ones never reached the page."""
    from webhook_manager import changed_deliveries

    inbox = new_inbox(app, "burst")
    hook = hook_to(app, inbox)
    cursor = datetime.now(UTC) - timedelta(milliseconds=1)
    for _ in range(105):
        ok(app.client.post(f"api/endpoints/{hook['id']}/test", params={"wait": "false"}))
    changed, complete = app.call(changed_deliveries(app.plugin._api(), cursor))
    mine = [d for d in changed if d.webhook_id == hook["id"]]
    assert complete and len({d.id for d in mine}) == 105, len(mine)


def test_no_secret_or_inbox_token_in_any_log(app: PlexiChatApp, logs: Recorder) -> None:
    # Its own secrets and inbox, so it holds in any order and alone: a delivery, a
    # rotation, a request signed with the old secret, a secret typed in by hand.
    inbox = new_inbox(app, "quiet")
    token = inbox["url"].rsplit("/", 1)[1]
    hook = hook_to(app, inbox)
    mine = [hook["secret"]]
    assert ok(app.client.post(f"api/endpoints/{hook['id']}/test"))["status"] == "delivered"
    rotated = ok(app.client.post(f"api/endpoints/{hook['id']}/rotate",
                                 json={"grace_seconds": 60}))
    mine.append(rotated["secret"])
    assert ok(app.client.post(f"api/endpoints/{hook['id']}/test"))["status"] == "delivered"
    body = b'{"id": "y", "event": "webhook.test", "data": {}}'
    with httpx.Client(timeout=10) as raw:
        raw.post(inbox["url"], content=body, headers=forged(hook["secret"], body, time.time()))
    manual = "another-secret-typed-by-hand"
    mine.append(manual)
    ok(app.client.put(f"api/inboxes/{inbox['id']}", json={"secret": manual}))
    until(lambda: len(captures(app, inbox)) >= 3, "the deliveries captured")

    text = "\n".join(logs.lines)
    assert "HTTP Request: POST" in text  # the recorder heard the app's deliveries
    tokens = [i["url"].rsplit("/", 1)[1] for i in ok(app.client.get("api/inboxes"))["inboxes"]]
    assert token in tokens
    for secret in [*mine, *SEEN_SECRETS]:  # what earlier tests saw too, when they ran
        assert secret not in text
    for each in tokens:
        assert each not in text, "an inbox URL (its token is its password) was logged"


def test_a_taken_inspector_port_is_said_and_not_written_down(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Audit: with its port taken at start the inspector moved to a random one without a
    word and wrote it down as its port: every webhook pointing at an inbox went on
    posting to whatever held the old one, for good."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        settings = {**SETTINGS, "plugin": {"webhook_manager": {
            **SETTINGS["plugin"]["webhook_manager"], "inspector_port": taken}}}
        home = tmp_path_factory.mktemp("taken")
        with start_app(PLUGIN_ROOT, home, settings) as other:
            inspector = ok(other.client.get("api/status"))["inspector"]
            assert inspector["port"] != taken
            assert f"port {taken} was taken" in inspector["problem"], inspector
            plugin = other.runtime.plugins.by_id["webhook_manager"].instance
            assert not (plugin.ctx.data_dir / "inspector.json").exists()
