"""The ``ai`` group of the client against the embedded server and a fake OpenAI-compatible
server on 127.0.0.1: typed answers, streamed deltas, errors naming the provider, scopes.

The tests share the suite's core (``shared_server``). AI providers are the
administrator's (the core's first account, made by the conftest), and each test that
needs one configures "fake" afresh on a fake server of its own."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from api_integration_layer import models as m
from api_integration_layer.client import ApiClient
from api_integration_layer.errors import ApiHTTPError, ApiPermissionError, ApiUnavailable
from api_integration_layer.scoped import ScopedApi
from api_integration_layer.testing import PASSWORD, EmbeddedServer, FakeOpenAIServer
from pydantic import ValidationError


async def administrator(server: EmbeddedServer) -> ApiClient:
    """A client of the core's administrator: its first account (conftest's)."""
    client = server.client()
    await client.auth.login(server.admin_name, PASSWORD)
    assert (await client.users.me()).is_admin
    return client


async def test_chat_and_stream_through_the_client(shared_server):
    async with shared_server() as server, FakeOpenAIServer() as fake:
        admin = await administrator(server)
        ann = await server.account()
        await admin.ai.configure_provider("fake", base_url=fake.base_url, models=["tiny"])
        answer = await ann.ai.chat([m.ChatMessage(role="user", content="ping")],
                                   model="fake/tiny", max_tokens=20)
        assert isinstance(answer, m.ChatCompletion) and answer.content == "fake says: ping"
        assert answer.finish_reason == "stop" and answer.provider == "fake"
        deltas = [d async for d in ann.ai.chat_stream("a b c", model="fake/tiny")]
        text = [d.content for d in deltas if d.content]
        assert text == ["fake", " says:", " a", " b", " c"]
        assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
        assert deltas[-1].usage == m.ChatUsage(prompt_tokens=3, completion_tokens=5,
                                               total_tokens=8)
        # Rules: the answer of the built-in provider is the same every time.
        one = await ann.ai.chat("What is a test?")
        two = await ann.ai.chat("What is a test?", temperature=2)
        assert one.content == two.content and "not a language model" in one.content
        usage = await ann.ai.usage()
        assert usage.totals.requests == 4 and usage.users[0].user_id == ann.user["id"]
        assert {x.model for x in usage.users[0].models} == {"builtin/plexi-rules",
                                                             "fake/tiny"}
        with pytest.raises(ValidationError):
            await ann.ai.chat([("robot", "hi")])  # refused before anything is sent


async def test_leaving_a_stream_early_cancels_the_generation(shared_server):
    async with shared_server() as server, FakeOpenAIServer() as fake:
        admin = await administrator(server)
        await admin.ai.configure_provider("fake", base_url=fake.base_url)
        fake.mode = "hang"
        async with contextlib.aclosing(admin.ai.chat_stream("go on", model="fake/tiny")
                                       ) as deltas:
            async for delta in deltas:
                assert delta.content == "fake"
                break
        await asyncio.wait_for(fake.closed.wait(), 10)  # the server hung up upstream


async def test_provider_errors_name_the_provider(shared_server):
    async with shared_server() as server:
        admin = await administrator(server)
        async with FakeOpenAIServer() as fake:
            await admin.ai.configure_provider("fake", base_url=fake.base_url,
                                              api_key="sk-client-test-abcdefghijkl")
            fake.mode = "malformed"
            with pytest.raises(ApiHTTPError) as mid_stream:
                async for _delta in admin.ai.chat_stream("x", model="fake/tiny"):
                    pass
            assert mid_stream.value.status == 502 and "'fake'" in str(mid_stream.value)
        # Stopped: the provider is down.
        with pytest.raises(ApiUnavailable) as down:  # a 503 to a POST is not retried
            await admin.ai.chat("x", model="fake/tiny")
        assert "AI provider 'fake' is unreachable" in str(down.value)
        with pytest.raises(ApiHTTPError) as down_stream:
            async for _delta in admin.ai.chat_stream("x", model="fake/tiny"):
                pass
        assert down_stream.value.status == 503
        health = await admin.ai.health()
        assert health.status == "degraded"
        assert {p.name: p.status for p in health.providers} == {"builtin": "healthy",
                                                                "fake": "unreachable"}
        tested = await admin.ai.test_provider("fake", model="tiny")
        assert not tested.ok and tested.status_code == 503
        provider = next(p for p in (await admin.ai.providers()).providers
                        if p.name == "fake")
        assert provider.api_key_set and "sk-client" not in provider.model_dump_json()


async def test_scopes_are_enforced_before_sending(shared_server):
    async with shared_server() as server:
        admin = await administrator(server)
        reader = ScopedApi(admin, "reader_plugin", ["ai:read"])
        writer = ScopedApi(admin, "writer_plugin", ["ai:write", "ai:read"])
        assert (await reader.ai.models()).default_model == "builtin/plexi-rules"
        sent = len(admin.activity.records)
        with pytest.raises(ApiPermissionError, match="ai:write"):
            await reader.ai.chat("hi")
        with pytest.raises(ApiPermissionError, match="ai:write"):
            async for _delta in reader.ai.chat_stream("hi"):
                pass
        with pytest.raises(ApiPermissionError, match="ai:admin"):
            await writer.ai.configure_provider("x", base_url="http://127.0.0.1:9/v1")
        assert len(admin.activity.records) == sent  # nothing went out
        streamed = [d.content async for d in writer.ai.chat_stream(
            "echo me", model="builtin/plexi-echo")]
        assert "".join(streamed) == "echo me"
        assert admin.activity.records[-1].caller == "writer_plugin"
        assert (await writer.ai.moderate("card 4111 1111 1111 1111")).flagged
