"""The client's parts on their own: URLs, the endpoint table, scopes, cache, limiter,
retry policy, token storage, configuration and batches."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
import types
from pathlib import Path
from urllib.parse import urljoin

import pytest
from api_integration_layer.batch import run_batch
from api_integration_layer.cache import ResponseCache
from api_integration_layer.client import format_path, join_url, websocket_url
from api_integration_layer.config import ClientConfig, ConfigError
from api_integration_layer.endpoints import (
    ENDPOINTS,
    SCOPES,
    scope_matches,
    unknown_scopes,
)
from api_integration_layer.errors import ApiHTTPError, ApiPermissionError, UnknownScopeError
from api_integration_layer.groups import Groups
from api_integration_layer.ratelimit import PausedError, RateLimiter
from api_integration_layer.retry import RetryPolicy
from api_integration_layer.scoped import ScopedCaller
from api_integration_layer.tokens import (
    FallbackTokenStore,
    FileTokenStore,
    KeyringTokenStore,
    TokenSet,
    make_token_store,
    usable_keyring,
)


def tokens(**over: object) -> TokenSet:
    now = time.time()
    values = {"access_token": "pxa_a", "refresh_token": "pxr_r", "expires_at": now + 60,
              "refresh_expires_at": now + 3600, "user_id": "u1", "username": "ann",
              "session_id": "s1", "permissions": ("user",), "issued_at": now}
    values.update(over)
    return TokenSet(**values)  # type: ignore[arg-type]


# -- URLs ------------------------------------------------------------------------------
def test_join_keeps_the_version_segment_that_urljoin_drops():
    base = "http://127.0.0.1:8000/api/v1"
    assert urljoin(base, "auth/login") == "http://127.0.0.1:8000/api/auth/login"  # origin bug
    assert join_url(base, "auth/login") == "http://127.0.0.1:8000/api/v1/auth/login"
    assert join_url(base + "/", "/auth/login") == "http://127.0.0.1:8000/api/v1/auth/login"
    assert join_url("https://chat.example.org/plexi/api/v1", "/users/") == \
        "https://chat.example.org/plexi/api/v1/users/"


def test_websocket_url_changes_only_the_scheme():
    assert websocket_url("http://127.0.0.1:8000/api/v1", "/realtime/ws") == \
        "ws://127.0.0.1:8000/api/v1/realtime/ws"
    assert websocket_url("https://httpbin.example/api/v1", "/realtime/ws") == \
        "wss://httpbin.example/api/v1/realtime/ws"  # the origin's replace() broke this host


def test_path_parameters_are_quoted_as_one_segment():
    endpoint = ENDPOINTS["files.info"]
    assert format_path(endpoint, {"file_id": "abc"}) == "/files/abc/info"
    assert format_path(endpoint, {"file_id": "../../admin"}) == "/files/..%2F..%2Fadmin/info"
    with pytest.raises(ValueError, match="missing path parameter"):
        format_path(endpoint, {})
    # A dot segment is left as it is by quoting, and climbed a level: "/files/../info"
    # is /info, the server's discovery document (a user audit's finding).
    for dots in (".", ".."):
        with pytest.raises(ValueError, match="is no id"):
            format_path(endpoint, {"file_id": dots})


# -- the endpoint table and scopes -----------------------------------------------------
def test_every_endpoint_has_a_known_scope_and_the_scope_list_is_documented():
    assert {e.scope for e in ENDPOINTS.values()} == set(SCOPES)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for scope in SCOPES:
        assert f"`{scope}`" in readme, scope


def test_reads_are_cacheable_and_idempotent_writes_are_marked():
    assert ENDPOINTS["users.me"].is_cacheable and ENDPOINTS["users.me"].is_idempotent
    assert not ENDPOINTS["messages.send"].is_cacheable
    assert not ENDPOINTS["messages.send"].is_idempotent
    assert ENDPOINTS["users.update_me"].is_idempotent  # PUT
    assert ENDPOINTS["search.search"].is_idempotent  # a POST that only reads
    assert not ENDPOINTS["messages.conversation"].is_cacheable  # marks messages read
    assert ENDPOINTS["messages.send"].stale_prefixes[0] == "/messages"
    assert "*" in ENDPOINTS["auth.logout"].stale_prefixes


def test_scope_matching_with_wildcards():
    assert scope_matches("messages:read", "messages:read")
    assert not scope_matches("messages:read", "messages:write")
    assert scope_matches("messages:*", "messages:write")
    assert not scope_matches("messages:*", "files:read")
    assert scope_matches("*", "backup:write")
    assert unknown_scopes(["messages:read", "files:*", "*", "mesages:read", "files:admin"]) == \
        ["mesages:read", "files:admin"]


def test_scoped_caller_refuses_unknown_scopes_and_calls_outside_its_scopes():
    with pytest.raises(UnknownScopeError) as info:
        ScopedCaller(None, "notes", ["mesages:read"])  # type: ignore[arg-type]
    assert "notes" in str(info.value) and "mesages:read" in str(info.value)
    assert "messages:read" in str(info.value)  # lists the known ones
    caller = ScopedCaller(None, "notes", ["messages:read"])  # type: ignore[arg-type]
    caller.check(ENDPOINTS["messages.conversations"])
    with pytest.raises(ApiPermissionError) as denied:
        caller.check(ENDPOINTS["messages.send"])
    message = str(denied.value)
    assert "plugin 'notes'" in message and "'messages:write'" in message
    assert "messages.send (POST /messages/send)" in message
    assert isinstance(denied.value, PermissionError)


def test_collaboration_scopes_split_reading_from_editing():
    """A plugin that only reads sessions can neither open the live socket nor get its
    ticket; reactions have a scope of their own, apart from sending."""
    reader = ScopedCaller(None, "viewer", ["collaboration:read"])  # type: ignore[arg-type]
    for name in ("collaboration.get", "collaboration.content", "collaboration.history"):
        reader.check(ENDPOINTS[name])
    for name in ("collaboration.open", "collaboration.ticket", "collaboration.restore"):
        with pytest.raises(ApiPermissionError):
            reader.check(ENDPOINTS[name])
    fan = ScopedCaller(None, "fan", ["messages:react"])  # type: ignore[arg-type]
    fan.check(ENDPOINTS["messages.react"])
    with pytest.raises(ApiPermissionError):
        fan.check(ENDPOINTS["messages.send"])
    groups = Groups(reader)  # type: ignore[arg-type]
    with pytest.raises(ApiPermissionError):
        groups.collaboration.open("any")  # refused before any connection is attempted


# -- cache -----------------------------------------------------------------------------
def test_cache_expires_bounds_and_invalidates_by_prefix():
    now = [100.0]
    cache = ResponseCache(ttl=10, max_entries=3, clock=lambda: now[0])
    cache.put(("u", "/files/"), 1)
    cache.put(("u", "/files/a/info"), 2)
    cache.put(("v", "/filesystem"), 3)
    assert cache.get(("u", "/files/")) == 1 and cache.hits == 1
    assert cache.invalidate(["/files"]) == 2
    assert cache.get(("u", "/files/a/info")) is None
    assert cache.get(("v", "/filesystem")) == 3  # whole segments only
    now[0] += 11
    assert cache.get(("v", "/filesystem")) is None  # expired
    for i in range(5):
        cache.put(("u", f"/x/{i}"), i)
    assert len(cache) == 3 and cache.get(("u", "/x/0")) is None  # least recently used out
    generation = cache.generation
    cache.invalidate(["/y"])
    cache.put(("u", "/late"), 1, generation=generation)  # fetched before a write: dropped
    assert cache.get(("u", "/late")) is None
    assert ResponseCache(ttl=0).enabled is False


# -- rate limiter ----------------------------------------------------------------------
@pytest.mark.asyncio
async def test_token_bucket_allows_a_burst_then_the_rate():
    limiter = RateLimiter(rate=20, burst=5)
    started = time.monotonic()
    # The burst waits for nothing; the next four wait for the rate. The wall clock bounds
    # that wait from below only (a loaded machine may add to it, never take from it), the
    # limiter's own sleeps from above (never more than 4 tokens at 20/s; fewer when a
    # stalled process let tokens refill meanwhile).
    assert [await limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert limiter.throttled == 0
    waits = [await limiter.acquire() for _ in range(4)]
    assert time.monotonic() - started >= 0.15  # 4 more at 20/s
    assert 0 < sum(waits) <= 0.21, waits
    assert limiter.throttled >= 1


@pytest.mark.asyncio
async def test_pauses_from_the_server_hold_requests_back():
    limiter = RateLimiter(rate=0, burst=1)
    limiter.pause(0.2)
    started = time.monotonic()
    await limiter.acquire("*", "/users/me")  # the user-wide pause holds what it is given
    assert time.monotonic() - started >= 0.18
    limiter.pause(30, "/auth/login")
    with pytest.raises(PausedError) as info:
        await limiter.acquire("/auth/login", max_pause=5)
    assert info.value.seconds > 29
    await limiter.acquire("*", "/users/me", max_pause=5)  # other keys are not held
    limiter.pause(30)
    await limiter.acquire("/auth/register", max_pause=5)  # nor keys not given "*"
    assert set(limiter.snapshot()["paused"]) == {"/auth/login", "*"}


@pytest.mark.asyncio
async def test_a_caller_waiting_out_a_pause_holds_nobody_else():
    """Audit: the pause was waited out holding the limiter's lock, so one route's 429
    (messages.send) held users.me and system.version as long."""
    limiter = RateLimiter(rate=100, burst=5)
    limiter.pause(5, "/messages/send")
    paused = asyncio.ensure_future(limiter.acquire("/messages/send"))
    await asyncio.sleep(0.05)  # it is waiting now
    free = await asyncio.wait_for(limiter.acquire("*", "/users/me"), 2)
    assert free == 0.0 and not paused.done()
    paused.cancel()
    # A pause arriving while a caller queued for the lock is still waited out.
    limiter.pause(0.2, "/users/me")
    started = time.monotonic()
    await limiter.acquire("*", "/users/me")
    assert time.monotonic() - started >= 0.18


@pytest.mark.asyncio
async def test_a_pause_that_comes_while_waiting_for_a_token_is_waited_out():
    """Review: a pause arriving while a caller waited for a token was skipped (the
    request went to a server that had just said "later")."""
    limiter = RateLimiter(rate=2, burst=1)
    await limiter.acquire("*", "/users/me")  # the one token
    started = time.monotonic()
    waiting = asyncio.ensure_future(limiter.acquire("*", "/users/me"))
    await asyncio.sleep(0.1)
    limiter.pause(1.0)
    await waiting
    assert time.monotonic() - started >= 0.9
    # And one longer than the caller waits is refused, not slept through.
    await limiter.acquire("*")
    refused = asyncio.ensure_future(limiter.acquire("*", max_pause=5))
    await asyncio.sleep(0.1)
    limiter.pause(30)
    with pytest.raises(PausedError):
        await refused


# -- retry policy ----------------------------------------------------------------------
def test_retry_policy_backs_off_exponentially_with_jitter_and_never_for_4xx():
    policy = RetryPolicy(max_retries=3, base_delay=0.1, max_delay=1.0)
    for n in range(6):
        step = min(1.0, 0.1 * 2 ** n)
        delays = {policy.delay(n) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jitter
    assert policy.delay(0, retry_after=0.7) >= 0.7
    assert policy.retryable_status(503) and not policy.retryable_status(500)
    assert not any(policy.retryable_status(s) for s in (400, 401, 403, 404, 409, 422, 429))
    assert policy.should_retry(True, 2) and not policy.should_retry(True, 3)
    assert not policy.should_retry(False, 0)


# -- token storage ---------------------------------------------------------------------
def test_file_store_is_private_and_keyed_by_server(tmp_path: Path):
    store = FileTokenStore(tmp_path / "data" / "tokens.json")
    store.save("embedded", tokens())
    store.save("https://chat.example.org/api/v1", tokens(username="bob"))
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode == 0o600, oct(mode)
    assert store.load("embedded").username == "ann"  # type: ignore[union-attr]
    assert store.load("https://chat.example.org/api/v1").username == "bob"  # type: ignore[union-attr]
    store.delete("embedded")
    assert store.load("embedded") is None
    store.path.write_text("{broken")
    assert store.load("anything") is None  # unreadable: logged out, not a crash


class FakeKeyring(types.ModuleType):
    """A stand-in for the ``keyring`` module with a working in-memory backend."""

    def __init__(self, fail: bool = False):
        super().__init__("keyring")
        self.data: dict[tuple[str, str], str] = {}
        self.fail = fail

        class Backend:
            priority = 5

        self.backend = Backend()

    def get_keyring(self) -> object:
        return self.backend

    def get_password(self, service: str, key: str) -> str | None:
        if self.fail:
            raise RuntimeError("keyring locked")
        return self.data.get((service, key))

    def set_password(self, service: str, key: str, value: str) -> None:
        if self.fail:
            raise RuntimeError("keyring locked")
        self.data[(service, key)] = value

    def delete_password(self, service: str, key: str) -> None:
        self.data.pop((service, key))


def test_keyring_is_used_when_usable_else_the_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "keyring", None)  # not installed
    assert usable_keyring() is None
    assert make_token_store("auto", tmp_path).kind == "file"

    fake = FakeKeyring()
    monkeypatch.setitem(sys.modules, "keyring", fake)
    store = make_token_store("auto", tmp_path)
    assert isinstance(store, FallbackTokenStore) and store.kind == "keyring"
    store.save("embedded", tokens())
    assert fake.data and not (tmp_path / "tokens.json").exists()
    assert store.load("embedded").access_token == "pxa_a"  # type: ignore[union-attr]
    store.delete("embedded")
    assert not fake.data
    assert make_token_store("file", tmp_path).kind == "file"

    fake.backend.priority = 0  # the "fail" backend: present but unusable
    assert usable_keyring() is None


def test_a_failing_keyring_falls_back_to_the_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "keyring", FakeKeyring(fail=True))
    store = make_token_store("keyring", tmp_path)
    store.save("embedded", tokens())
    assert store.kind == "file"
    assert FileTokenStore(tmp_path / "tokens.json").load("embedded") is not None
    assert isinstance(KeyringTokenStore(FakeKeyring()).load("x"), type(None))


# -- configuration ---------------------------------------------------------------------
def test_config_validates_and_names_the_setting():
    config = ClientConfig.from_settings({"base_url": "https://chat.example.org/api/v1/"})
    assert config.base_url == "https://chat.example.org/api/v1"
    with pytest.raises(ConfigError, match="base_url"):
        ClientConfig.from_settings({"base_url": "chat.example.org"})
    with pytest.raises(ConfigError, match="timeout"):
        ClientConfig.from_settings({"timeout": 0})
    with pytest.raises(ConfigError, match="token_storage"):
        ClientConfig.from_settings({"token_storage": "pocket"})


# -- batches ---------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_batch_keeps_order_bounds_concurrency_and_isolates_failures():
    running = peak = 0

    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (n % 3))
        running -= 1
        if n % 4 == 3:
            raise ApiHTTPError("GET", f"/x/{n}", 404, "not found")
        return n * 10

    result = await run_batch([lambda n=n: work(n) for n in range(12)], concurrency=3)
    assert peak <= 3
    assert [i.index for i in result] == list(range(12))
    assert result.values() == [None if n % 4 == 3 else n * 10 for n in range(12)]
    assert [i.index for i in result.failed] == [3, 7, 11]
    assert {i.status for i in result.failed} == {404}
    assert not result.ok and len(result.succeeded) == 9
    assert (await run_batch([], 4)).ok
