"""Cache hits and invalidation, 429 with Retry-After, retries against servers that drop
connections or answer 503, never retrying a 4xx, and batches with mixed failures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from api_integration_layer.client import ApiClient
from api_integration_layer.config import ClientConfig
from api_integration_layer.errors import (
    ApiHTTPError,
    ApiUnavailable,
    ChecksumMismatch,
    InvalidResponse,
    RateLimited,
)
from api_integration_layer.testing import (
    FAST_CLIENT,
    PASSWORD,
    LoopbackHTTPServer,
    unique_name,
)

PING = (200, {"message": "pong", "status": "ok", "timestamp": "2025-07-01T12:00:00+00:00"}, {})
INFO = (200, {"platform": "test", "cpu_count": 2}, {})


async def test_gets_are_cached_per_user_and_writes_invalidate_their_resource(shared_server):
    async with shared_server() as server:
        ann = await server.account()
        bob = await server.account()
        first = await ann.users.me()
        again = await ann.users.me()
        assert again == first and again is not first  # a fresh object per hit
        hits = [r.cache_hit for r in ann.activity.records if r.endpoint == "users.me"]
        assert hits == [False, True]
        assert ann.cache.stats()["hits"] == 1

        # A write to /users invalidates it: the next read goes to the server.
        await ann.users.update_me(display_name="Annie")
        assert (await ann.users.me()).display_name == "Annie"
        assert [r.cache_hit for r in ann.activity.records if r.endpoint == "users.me"] == \
            [False, True, False]

        # Conversations are cached until a message is sent through this client.
        assert (await ann.messages.conversations()).total == 0
        assert (await ann.messages.conversations()).total == 0
        await ann.messages.send(bob.user["id"], "hi")
        assert (await ann.messages.conversations()).total == 1
        assert [r.cache_hit for r in ann.activity.records
                if r.endpoint == "messages.conversations"] == [False, True, False]

        # Other writes elsewhere do not touch unrelated entries.
        await ann.users.me()
        await ann.files.upload(b"x", "x.txt")
        before = sum(r.cache_hit for r in ann.activity.records)
        await ann.users.me()
        assert sum(r.cache_hit for r in ann.activity.records) == before + 1

        # Reading a conversation marks messages read: never cached.
        await bob.messages.conversation(ann.user["id"])
        await bob.messages.conversation(ann.user["id"])
        assert not any(r.cache_hit for r in bob.activity.records
                       if r.endpoint == "messages.conversation")

        # Reading a conversation marks it read: the cached unread counts go with it
        # (audit: the stats kept saying 1 unread for the cache's 30 s).
        await ann.messages.send(bob.user["id"], "unread")
        assert (await bob.messages.stats()).unread_messages == 1
        assert (await bob.messages.stats()).unread_messages == 1  # from the cache
        await bob.messages.conversation(ann.user["id"])
        assert (await bob.messages.stats()).unread_messages == 0

        # An explicit bypass, and a short TTL that runs out.
        with ann.bypass_cache():
            await ann.users.me()
        assert not ann.activity.records[-1].cache_hit
        # What a bypassing read got is what the next plain read gets (audit: it went
        # back to the older cached answer). The change is made by another client.
        elsewhere = server.client()
        await elsewhere.auth.login(ann.user["username"], PASSWORD)
        await elsewhere.users.update_me(display_name="Elsewhere")
        assert (await ann.users.me()).display_name == "Annie"  # cached, as documented
        with ann.bypass_cache():
            assert (await ann.users.me()).display_name == "Elsewhere"
        assert (await ann.users.me()).display_name == "Elsewhere"
        assert ann.activity.records[-1].cache_hit
        short = await server.account(cache_ttl=0.2)
        await short.users.me()
        time.sleep(0.25)
        await short.users.me()
        assert not short.activity.records[-1].cache_hit


async def test_logging_in_as_someone_else_never_serves_the_previous_users_answers(shared_server):
    async with shared_server() as server:
        client = await server.account()
        other = unique_name()
        await server.client().auth.register(other, f"{other}@example.org", PASSWORD)
        first = (await client.users.me()).username
        await client.auth.login(other, PASSWORD)
        assert (await client.users.me()).username == other != first


async def test_429_retry_after_is_waited_out_or_reported(limited_server):
    async with limited_server() as server:
        name = unique_name()
        client = server.client()
        await client.auth.register(name, f"{name}@example.org", PASSWORD)
        await client.auth.login(name, PASSWORD)
        await client.auth.login(name, PASSWORD)
        started = time.monotonic()
        await client.auth.login(name, PASSWORD)  # the server says 429, Retry-After: 1
        assert time.monotonic() - started >= 0.9
        third = client.activity.records[-1]
        assert third.statuses[0] == 429 and third.statuses[-1] == 200
        assert client.limiter.snapshot()["server_limited"] >= 1
        # The pause is per route: an authenticated call is not held back by it.
        assert (await client.users.me()).username == name

        # The server counts per address and username: another user has a fresh window.
        other = unique_name()
        impatient = server.client(max_retry_after=0.0)
        await impatient.auth.register(other, f"{other}@example.org", PASSWORD)
        with pytest.raises(RateLimited) as info:
            for _ in range(3):
                await impatient.auth.login(other, PASSWORD)
        assert info.value.status == 429 and info.value.retry_after >= 1
        assert "too many login requests" in str(info.value.detail)
        # Until the pause is over, the client refuses locally instead of asking again.
        sent = len(impatient.activity.records)
        with pytest.raises(RateLimited, match="held back"):
            await impatient.auth.login(other, PASSWORD)
        assert impatient.activity.records[-1].statuses == []
        assert len(impatient.activity.records) == sent + 1
        # The server's bucket is the account's: another account's sign-in through the
        # same client is not held back (one mistyping user kept everyone out a minute).
        third = unique_name()
        await server.client().auth.register(third, f"{third}@example.org", PASSWORD)
        await impatient.auth.login(third, PASSWORD)
        assert impatient.activity.records[-1].statuses == [200]


async def test_per_user_request_limit_429(limited_server):
    async with limited_server() as server:
        client = await server.account(max_retry_after=1.0)
        with client.bypass_cache():
            for _ in range(3):
                await client.users.me()
            with pytest.raises(RateLimited) as info:
                await client.users.me()
        assert info.value.retry_after > 1  # the window is a minute: not waited out
        assert info.value.headers.get("x-ratelimit-scope") == "user"
        # The limit is the user's: every call of theirs waits, not only that route...
        with pytest.raises(RateLimited, match="held back"):
            await client.messages.conversations()
        assert client.activity.records[-1].statuses == []
        # ...but another account's sign-in through the same client is not theirs.
        other = unique_name()
        await server.client().auth.register(other, f"{other}@example.org", PASSWORD)
        await client.auth.login(other, PASSWORD)
        assert client.activity.records[-1].statuses == [200]
        assert (await client.users.me()).username == other  # nor its calls (review)


@contextlib.asynccontextmanager
async def fake_server(script: list, **config: object
                      ) -> AsyncIterator[tuple[LoopbackHTTPServer, ApiClient]]:
    """A scripted loopback server and a client pointed at it."""
    async with LoopbackHTTPServer(script) as server:
        client = ApiClient(server.url + "/api/v1",
                           ClientConfig.model_validate({**FAST_CLIENT, **config}))
        async with client:
            yield server, client


async def test_idempotent_requests_are_retried_when_the_connection_drops(
        monkeypatch: pytest.MonkeyPatch):
    async with fake_server(["drop", "drop", PING]) as (flaky, client):
        waits: list[float] = []
        delay = client.retry.delay

        def recorded(retries_done: int, retry_after: float | None = None) -> float:
            waits.append(delay(retries_done, retry_after))
            return waits[-1]

        monkeypatch.setattr(client.retry, "delay", recorded)
        assert (await client.system.ping()).message == "pong"
        assert flaky.connections == 3
        record = client.activity.records[-1]
        assert record.statuses == [None, None, 200] and record.attempts == 3
        # Equal-jitter exponential backoff from retry_base_delay (0.02 s here): half of
        # each step fixed, half random.
        assert len(waits) == 2
        assert 0.01 <= waits[0] <= 0.02 and 0.02 <= waits[1] <= 0.04, waits


async def test_retries_give_up_after_max_retries():
    async with fake_server(["drop"], max_retries=2) as (dead, client):
        with pytest.raises(ApiUnavailable) as info:
            await client.system.info()
        assert info.value.attempts == 3 and dead.connections == 3
        assert "RemoteProtocolError" in info.value.reason


async def test_non_idempotent_requests_are_never_resent():
    async with fake_server(["drop", (201, {}, {})]) as (flaky, client):
        client.session.set({"access_token": "pxa_x", "refresh_token": "pxr_x",
                            "expires_in": 3600, "user_id": "u", "username": "ann"})
        with pytest.raises(ApiUnavailable):
            await client.messages.send("someone", "only once")
        assert flaky.connections == 1


async def test_nothing_listening_is_a_connect_error_retried_then_reported():
    async with fake_server([PING]) as (server, client):
        port = server.port
    client = ApiClient(f"http://127.0.0.1:{port}/api/v1",
                       ClientConfig.model_validate({**FAST_CLIENT, "max_retries": 1}))
    async with client:
        with pytest.raises(ApiUnavailable) as info:
            await client.system.version()
        assert info.value.attempts == 2 and "ConnectError" in info.value.reason


async def test_503_is_retried_with_backoff_but_4xx_is_not():
    script = [(503, {"detail": "busy"}, {"Retry-After": "0"}), INFO]
    async with fake_server(script) as (_, client):
        assert (await client.system.info()).platform == "test"
        assert client.activity.records[-1].statuses == [503, 200]
    for status in (400, 404, 409, 422, 500):
        async with fake_server([(status, {"detail": "no"}, {})]) as (refusing, client):
            with pytest.raises(ApiHTTPError) as info:
                await client.system.info()
            assert info.value.status == status and refusing.connections == 1


async def test_4xx_from_the_real_server_are_not_retried(shared_server):
    async with shared_server() as server:
        client = await server.account()
        with pytest.raises(ApiHTTPError) as info:
            await client.users.get("00000000-0000-4000-8000-000000000000")
        assert info.value.status == 404 and client.activity.records[-1].attempts == 1


async def test_batch_with_mixed_failures_has_a_result_per_item(shared_server):
    async with shared_server() as server:
        ann = await server.account()
        bob = await server.account()
        recipients = [bob.user["id"], "00000000-0000-4000-8000-000000000000",
                      ann.user["id"], bob.user["id"]]
        result = await ann.batch_map(lambda uid: ann.messages.send(uid, "batch"), recipients,
                                     concurrency=2)
        assert [i.ok for i in result] == [True, False, False, True]
        assert [i.status for i in result] == [None, 404, 400, None]
        assert result.items[0].value.recipient_id == bob.user["id"]  # type: ignore[union-attr]
        assert "yourself" in str(result.items[2].error)
        assert (await bob.messages.stats()).received_messages == 2

        files = await ann.batch([
            lambda: ann.files.upload(b"a", "a.txt"),
            lambda: ann.files.upload(b"b", "b.exe"),  # type not allowed: 400
            lambda: ann.files.info("nope"),
        ])
        assert [i.status for i in files] == [None, 400, 404]
        assert [i.to_dict()["ok"] for i in files] == [True, False, False]


async def test_an_answer_that_breaks_the_contract_is_reported_not_cached():
    async with fake_server([(200, {"unexpected": True}, {})]) as (_, client):
        with pytest.raises(InvalidResponse, match="GET /system/version"):
            await client.system.version()  # "version" and "api_version" are required
        assert len(client.cache) == 0
        # The request log says it failed (audit: a plain 200 without an error).
        record = client.activity.records[-1]
        assert record.status == 200 and "unexpected answer" in (record.error or "")


async def test_a_write_that_may_be_done_drops_cached_reads_and_is_no_outage():
    """Audit: after a send timed out (maybe_done) the README says to look before trying
    again, and the look got the cached list from before the send; and the one slow answer
    marked the whole server offline."""
    script = [(200, {"total": 0}, {}), "hang", (200, {"total": 1}, {})]
    async with fake_server(script, timeout=0.5) as (_, client):
        client.session.set({"access_token": "pxa_x", "refresh_token": "pxr_x",
                            "expires_in": 3600, "user_id": "u", "username": "ann"})
        assert (await client.call("messages.conversations"))["total"] == 0
        with pytest.raises(ApiUnavailable) as late:
            await client.messages.send("someone", "did it go?")
        assert late.value.maybe_done
        assert client.last_error is None  # one slow answer: not offline
        assert (await client.call("messages.conversations"))["total"] == 1
        assert not client.activity.records[-1].cache_hit


async def test_callers_queued_behind_a_refresh_that_found_no_server_share_its_answer():
    """Audit: five calls at a token's expiry with /auth/refresh hanging each tried their
    own refresh in turn, the last failing after five timeouts."""
    async with fake_server(["hang"], timeout=0.3, max_retries=0) as (server, client):
        client.session.set({"access_token": "pxa_x", "refresh_token": "pxr_x",
                            "expires_in": 1, "user_id": "u", "username": "ann"})
        await asyncio.sleep(0.8)  # within the last quarter of its life: refreshed first
        results = await asyncio.gather(*(client.call("users.me") for _ in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, ApiUnavailable) for r in results), results
        refreshes = [r for r in server.requests if r.path.endswith("/auth/refresh")]
        assert len(refreshes) == 1, [r.path for r in server.requests]


async def test_an_unknown_endpoint_name_says_so():
    async with fake_server([PING]) as (_, client):
        with pytest.raises(KeyError, match=r"unknown endpoint 'messages\.nope'.*messages\."):
            await client.call("messages.nope")


async def test_a_download_whose_checksum_differs_is_refused():
    script = [(200, {"not": "what was announced"}, {"X-Content-SHA256": "0" * 64})]
    async with fake_server(script) as (_, client):
        client.session.set({"access_token": "pxa_x", "refresh_token": "pxr_x",
                            "expires_in": 3600, "user_id": "u", "username": "ann"})
        with pytest.raises(ChecksumMismatch, match="announced"):
            await client.files.download("some-file")
        unchecked = await client.files.download("some-file", verify=False)
        assert unchecked.content == b'{"not": "what was announced"}'


async def test_a_redirect_is_an_error_not_a_success():
    """Redirects are not followed, and a 307 (the server's answer to a path it wants
    written another way) came back as None, as if the call had succeeded."""
    moved = (307, {}, {"Location": "/api/v1/messages/"})
    async with fake_server([moved]) as (_server, client):
        with pytest.raises(ApiHTTPError) as info:
            await client.system.ping()
        assert info.value.status == 307


async def test_a_stream_to_a_server_that_is_not_there_says_offline(tmp_path):
    """Seen in session 19: stream() (downloads, streamed AI answers) never touched the
    connection state: the page said "online" while every download failed to connect."""
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ApiClient(f"http://127.0.0.1:{port}/api/v1",
                         ClientConfig(**FAST_CLIENT)) as client:
        client.session.set({"access_token": "pxa_x", "refresh_token": "pxr_x",
                            "expires_in": 3600, "user_id": "u", "username": "ann"})
        with pytest.raises(ApiUnavailable):
            await client.files.download_to("f1", tmp_path / "copy.bin")
        assert client.last_error and "server unavailable" in client.last_error
        assert [r.endpoint for r in client.activity.records] == ["files.download"]
        assert not (tmp_path / "copy.bin").exists()
