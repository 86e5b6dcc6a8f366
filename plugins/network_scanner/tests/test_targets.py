"""The scanner's target policy: what it admits, what it refuses, and that a refusal
never reaches the network (the autouse ``no_escape`` fixture fails any connect or
lookup outside loopback; the stub resolver records every lookup)."""

from __future__ import annotations

import asyncio

import pytest
from network_scanner.scanner import connect_scan
from network_scanner.targets import Host, Policy, RateLimiter, TargetRefused, resolve_targets


class StubResolver:
    """A resolver that answers from a table and records what it was asked."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, name: str) -> list[str]:
        self.asked.append(name)
        if name not in self.table:
            raise OSError(f"no such name {name}")
        return self.table[name]


RESOLVER = StubResolver({"evil.example": ["10.0.0.5"], "nas.lan": ["192.168.1.10"],
                         "meta.lan": ["169.254.169.254"], "loop.lan": ["127.0.0.2"],
                         "mapped.lan": ["::ffff:10.9.9.9"]})


async def resolve(spec: str, allow: list[str] | None = None, resolver: StubResolver = RESOLVER,
                  max_hosts: int = 256) -> list[Host]:
    return (await resolve_targets(spec, Policy.from_entries(allow or [], max_hosts),
                                  resolver)).hosts


@pytest.mark.asyncio
@pytest.mark.parametrize("spec, expected", [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),        # integer form
    ("0177.0.0.1", "127.0.0.1"),        # octal
    ("0x7f.1", "127.0.0.1"),            # hex, short form
    ("127.1", "127.0.0.1"),
    ("::1", "::1"),
    ("[::1]", "::1"),
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped: connected to as IPv4
    ("::ffff:7f00:2", "127.0.0.2"),
    ("localhost", "127.0.0.1"),
    ("LOCALHOST.", "127.0.0.1"),
    ("db.localhost", "127.0.0.1"),
])
async def test_loopback_in_every_spelling_is_admitted_without_a_lookup(spec: str,
                                                                      expected: str) -> None:
    resolver = StubResolver({})
    hosts = await resolve(spec, resolver=resolver)
    assert [h.address for h in hosts] == [expected]
    assert hosts[0].why == "loopback"
    assert resolver.asked == []


@pytest.mark.asyncio
async def test_an_address_in_any_spelling_has_no_name() -> None:
    """Audit: the spelling typed was kept as the host's name, which TLS then asked for
    (SNI) and checked the certificate against: a false 'tls-name-mismatch'."""
    for spec in ("2130706433", "::ffff:127.0.0.1", "[::1]", "0x7f.1", "127.0.0.1"):
        assert [h.name for h in await resolve(spec)] == [None], spec
    assert [h.name for h in await resolve("localhost")] == ["localhost"]


@pytest.mark.asyncio
@pytest.mark.parametrize("spec, reason", [
    ("10.0.0.1", "not loopback"),
    ("192.168.1.1", "not loopback"),
    ("8.8.8.8", "not loopback"),
    ("::ffff:10.0.0.1", "not loopback"),
    ("::ffff:8.8.8.8", "not loopback"),
    ("167772161", "not loopback"),          # 10.0.0.1 as an integer
    ("012.0.0.1", "not loopback"),          # octal 012 = 10
    ("0x0a000001", "not loopback"),
    ("64:ff9b::7f00:1", "not loopback"),    # NAT64 of 127.0.0.1 leaves the machine
    ("::127.0.0.1", "not loopback"),        # IPv4-compatible: not the loopback
    ("2001:db8::1", "not loopback"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("0.0.0.0/0", "addresses"),             # far over the cap
    ("10.0.0.0/24", "not inside loopback"),
    ("127.0.0.0/8", "addresses"),           # loopback, but over the cap
    ("evil.example", "was not looked up"),  # a name not listed: never resolved
    ("localhost.evil.example", "was not looked up"),
])
async def test_refusal_matrix_never_reaches_the_network(spec: str, reason: str,
                                                        no_escape: list[str]) -> None:
    resolver = StubResolver({"evil.example": ["10.0.0.5"]})
    with pytest.raises(TargetRefused) as caught:
        await resolve(spec, resolver=resolver)
    assert reason in str(caught.value)
    assert str(caught.value).startswith("targets: ")
    assert resolver.asked == []
    assert no_escape == []


@pytest.mark.asyncio
@pytest.mark.parametrize("spec, reason", [
    ("256.1.1.1", "not one"), ("1.2.3.4.5", "not one"), ("fe80::zz", "not a valid IPv6"),
    ("a b", "cannot"), ("-bad-.x", "not a valid host name"), ("10.0.0.0/x", "prefix"),
    ("127.0.0.1:22", "put 22 in the ports field"), ("localhost:8080", "ports field"),
])
async def test_unreadable_targets_are_422(spec: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        await resolve(spec.replace(" ", "\x01") if spec == "a b" else spec)
    assert caught.value.status == 422
    assert reason in str(caught.value) or spec == "a b"


@pytest.mark.asyncio
async def test_names_resolve_once_and_are_pinned_or_refused() -> None:
    resolver = StubResolver({"nas.lan": ["192.168.1.10"], "meta.lan": ["169.254.169.254"],
                             "loop.lan": ["127.0.0.2"], "mapped.lan": ["::ffff:10.9.9.9"],
                             "www.example.org": ["93.184.215.14", "10.0.0.1"]})
    allow = ["nas.lan", "loop.lan", "mapped.lan", "www.example.org", "192.168.1.0/24",
             "10.9.9.0/24"]
    hosts = await resolve("nas.lan, loop.lan, mapped.lan www.example.org", allow, resolver)
    assert [(h.address, h.name) for h in hosts] == [
        ("192.168.1.10", "nas.lan"), ("127.0.0.2", "loop.lan"), ("10.9.9.9", "mapped.lan"),
        ("93.184.215.14", "www.example.org")]
    assert hosts[0].why == "allowed by 192.168.1.0/24" and hosts[1].why == "loopback"
    assert hosts[3].why == "allowed by name www.example.org"
    assert resolver.asked == ["nas.lan", "loop.lan", "mapped.lan", "www.example.org"]
    # A listed name alone never leads into private space (its DNS could point anywhere),
    # nor to cloud metadata (link-local).
    for name in ("nas.lan", "mapped.lan", "meta.lan"):
        with pytest.raises(TargetRefused, match="private, link-local or reserved"):
            await resolve(name, [name], resolver)
    with pytest.raises(TargetRefused, match="cannot be resolved"):
        await resolve("gone.lan", ["gone.lan"], resolver)


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [
    "64:ff9b::a00:1",       # NAT64 (well-known prefix) of 10.0.0.1
    "64:ff9b::a9fe:a9fe",   # ... of 169.254.169.254, cloud metadata
    "64:ff9b:1::a00:1",     # NAT64 local-use prefix (RFC 8215): inside the site
    "2002:c0a8:10a::1",     # 6to4 of 192.168.1.10
    "::a00:1",              # IPv4-compatible 10.0.0.1
    "::ffff:0:a00:1",       # SIIT IPv4-translated 10.0.0.1
])
async def test_a_name_cannot_reach_private_ipv4_through_an_ipv6_translation(
        answer: str) -> None:
    """Review finding: Python 3.11 calls these IPv6 forms global, so a listed name whose
    DNS answered one of them was admitted 'by name' while a translator or tunnel delivers
    the packets to a private IPv4 address."""
    resolver = StubResolver({"www.example.org": [answer]})
    with pytest.raises(TargetRefused, match="private, link-local or reserved"):
        await resolve("www.example.org", ["www.example.org"], resolver)
    # The same forms of a public IPv4 address stay admitted by name (DNS64 answers).
    public = StubResolver({"www.example.org": ["64:ff9b::5db8:d70e"]})
    hosts = await resolve("www.example.org", ["www.example.org"], public)
    assert hosts[0].why == "allowed by name www.example.org"

@pytest.mark.asyncio
async def test_allowed_networks_and_the_cap() -> None:
    allow = ["192.168.1.0/24", "10.1.2.3"]
    hosts = await resolve("192.168.1.0/30, 10.1.2.3, ::ffff:192.168.1.7", allow)
    assert [h.address for h in hosts] == ["192.168.1.1", "192.168.1.2", "10.1.2.3",
                                          "192.168.1.7"]
    assert hosts[0].why == "allowed by 192.168.1.0/24"
    assert len(await resolve("192.168.1.0/24", allow)) == 254
    with pytest.raises(TargetRefused, match="more than the 16"):
        await resolve("192.168.1.0/24", allow, max_hosts=16)
    with pytest.raises(TargetRefused, match="not inside"):
        await resolve("192.168.0.128/25", allow)        # outside what is allowed
    with pytest.raises(TargetRefused, match="not loopback"):
        await resolve("10.1.2.4", allow)
    assert len(await resolve("127.0.0.0/28")) == 14


def test_allow_list_entries_are_checked() -> None:
    for entry in ("0.0.0.0/0", "10.0.0.0/8", "2001:db8::/32"):
        with pytest.raises(TargetRefused, match="broader than"):
            Policy.from_entries([entry])
    with pytest.raises(TargetRefused, match="neither"):
        Policy.from_entries(["not a host!"])
    policy = Policy.from_entries(["NAS.lan.", "192.168.1.0/24", "2130706433"])
    assert policy.describe() == ["nas.lan", "192.168.1.0/24", "2130706433"]


@pytest.mark.asyncio
async def test_refused_targets_are_refused_before_the_scanner_runs(no_escape: list[str]
                                                                   ) -> None:
    """Belt and braces: even called directly with a host the policy never made, the
    connect scan's attempt is stopped by the test guard, proving the guard works."""
    with pytest.raises(BaseException) as caught:
        await connect_scan([Host("10.0.0.1", None, "forged")], [80], timeout=0.2)
    assert "not loopback" in repr(caught.value)
    assert no_escape == ["connect ('10.0.0.1', 80)"]
    no_escape.clear()


@pytest.mark.asyncio
async def test_rate_limiter_paces_without_waiting_for_real() -> None:
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(10, burst=2, clock=lambda: clock[0], sleep=fake_sleep)
    for _ in range(6):
        await limiter.acquire()
    # Two from the burst, then one every 0.1 s of (fake) time.
    assert len(slept) == 4 and all(abs(s - 0.1) < 1e-9 for s in slept)
    unlimited = RateLimiter(0)
    await asyncio.gather(*(unlimited.acquire() for _ in range(100)))
    assert len(slept) == 4
