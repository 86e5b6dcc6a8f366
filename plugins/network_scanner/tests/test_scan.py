"""Scanning loopback listeners made by the tests: states, service detection, TLS checks,
findings with their confidence, the concurrency cap and cancelling.

Every listener binds 127.0.0.1 on a free port; the autouse ``no_escape`` fixture fails a
test that tries anything else.
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trustme
from network_scanner.engine import ScanContext, ScanOptions, prepare, run_scan
from network_scanner.probes import detect
from network_scanner.scanner import CLOSED, FILTERED, OPEN, connect_scan, tcp_connect
from network_scanner.targets import Host, Policy, RateLimiter, system_resolver
from network_scanner.testing import (
    closed_port,
    full_backlog,
    greeter,
    http_server,
    listener,
    redis_server,
    silent,
    tls_context,
)
from network_scanner.tls import check_tls

FAST = {"connect_timeout": 0.3, "probe_timeout": 0.4}
LOOP = Host("127.0.0.1", None, "loopback")


def context(events: list[tuple[str, Any]] | None = None, **kwargs: Any) -> ScanContext:
    def publish(name: str, data: dict[str, Any]) -> None:
        if events is not None:
            events.append((name, data))

    return ScanContext(Policy.from_entries([]), RateLimiter(0), system_resolver,
                       publish=publish, **kwargs)


async def scan(ports: list[int], events: list[tuple[str, Any]] | None = None,
               progress: list[tuple[float, float, str]] | None = None, **options: Any
               ) -> dict[str, Any]:
    ctx = context(events)
    prepared = await prepare(ScanOptions(ports=",".join(map(str, ports)),
                                         **{**FAST, **options}), ctx)
    sink = progress if progress is not None else []
    return await run_scan(prepared, ctx, lambda d, t, m: sink.append((d, t, m)))


def by_port(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["port"]: p for p in result["ports"]}


@pytest.mark.asyncio
async def test_states_services_and_findings_of_a_loopback_scan() -> None:
    async with AsyncExitStack() as stack:
        ssh = await stack.enter_async_context(listener(greeter(
            b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n")))
        http = await stack.enter_async_context(listener(http_server(
            "Apache/2.4.49 (Unix)", b"<html><title>Index of /</title><a href=x>x</a>")))
        smtp = await stack.enter_async_context(listener(greeter(
            b"220 mail.example.org ESMTP Exim 4.90 Ubuntu\r\n", b"250 ok\r\n")))
        ftp = await stack.enter_async_context(listener(greeter(
            b"220 (vsFTPd 3.0.5)\r\n", b"530 Please login\r\n")))
        redis = await stack.enter_async_context(listener(redis_server()))
        redis_pw = await stack.enter_async_context(listener(redis_server(password="x")))
        quiet = await stack.enter_async_context(listener(silent()))
        with full_backlog() as dropped:
            shut = closed_port()
            events: list[tuple[str, Any]] = []
            progress: list[tuple[float, float, str]] = []
            result = await scan([ssh, http, smtp, ftp, redis, redis_pw, quiet, dropped, shut],
                                events, progress)
    ports = by_port(result)
    assert result["counts"] == {"open": 7, "closed": 1, "filtered": 1}
    assert shut not in ports  # closed ports are counted, not listed
    assert ports[dropped]["state"] == FILTERED and ports[dropped]["reason"] == "no answer"

    def service(port: int) -> tuple[Any, ...]:
        s = ports[port]["service"]
        return s["name"], s["product"], s["version"]

    assert service(ssh) == ("ssh", "OpenSSH", "8.9p1")
    assert ports[ssh]["service"]["extra"] == "Ubuntu-3ubuntu0.6"
    assert service(http) == ("http", "Apache httpd", "2.4.49")
    assert ports[http]["service"]["facts"]["dir_listing"] is True
    assert service(smtp) == ("smtp", "Exim", "4.90")
    assert service(ftp) == ("ftp", "vsftpd", "3.0.5")
    assert service(redis) == ("redis", "Redis", "7.2.4")
    assert ports[redis]["service"]["facts"]["redis_auth"] is False
    assert ports[redis_pw]["service"]["facts"]["redis_auth"] is True
    assert service(quiet) == ("unknown", None, None)

    findings = {(f["port"], f["rule"]): f for f in result["findings"]}
    assert findings[(ssh, "openssh-regresshion")]["confidence"] == "banner match"
    assert findings[(ssh, "openssh-regresshion")]["cve"] == "CVE-2024-6387"
    assert findings[(ssh, "openssh-regresshion")]["score"] == 8.1
    assert findings[(http, "apache-2449-traversal")]["confidence"] == "banner match"
    assert findings[(http, "http-dir-listing")]["confidence"] == "confirmed"
    assert findings[(smtp, "exim-wizard")]["severity"] == "critical"
    assert findings[(ftp, "ftp-cleartext")]["confidence"] == "confirmed"
    assert findings[(redis, "redis-no-auth")]["confidence"] == "confirmed"
    assert not any(port == redis_pw for port, _ in findings)
    assert not any(port == quiet for port, _ in findings)
    severities = [f["severity"] for f in result["findings"]]
    assert severities == sorted(severities, key=["critical", "high", "medium", "low",
                                                 "info"].index)

    # live: the grid got every port, progress reached the end, services were streamed
    streamed = [item for name, data in events if name == "ports" for item in data["items"]]
    assert len(streamed) == 9
    assert events[0][0] == "scan" and events[0][1]["state"] == "running"
    assert sum(1 for name, _ in events if name == "service") == 7
    assert progress[-1][0] == progress[-1][1]


@pytest.mark.asyncio
async def test_tls_self_signed_expired_name_mismatch_and_trusted(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with AsyncExitStack() as stack:
        self_signed = await stack.enter_async_context(listener(
            http_server("nginx/1.24.0"), tls_context(ca, self_signed=True)))
        expired = await stack.enter_async_context(listener(
            http_server(), tls_context(ca, expired=True)))
        wrong_name = await stack.enter_async_context(listener(
            http_server(), tls_context(ca, names=("www.example.org",))))
        good = await stack.enter_async_context(listener(http_server(), tls_context(ca)))
        weak = await stack.enter_async_context(listener(http_server(), tls_context(
            ca, ciphers="AES128-SHA:@SECLEVEL=0", rsa=True)))  # static RSA needs an RSA key
        reports = {port: (await check_tls("127.0.0.1", port, timeout=2,
                                          ca_file=str(ca_file))).to_dict()
                   for port in (self_signed, expired, wrong_name, good, weak)}
        plain = await stack.enter_async_context(listener(http_server()))
        # A plain server that waits for a request line never answers the hello: the
        # timeout ends it.
        no_tls = await check_tls("127.0.0.1", plain, timeout=0.5)
        service = await detect("127.0.0.1", self_signed, timeout=1)

    assert service.tls and service.name == "https" and service.product == "nginx"
    assert reports[self_signed]["self_signed"] is True
    assert reports[self_signed]["chain"][0]["subject"] == reports[self_signed]["chain"][0][
        "issuer"]
    assert reports[expired]["expired"] is True and reports[expired]["trusted"] is False
    assert reports[expired]["chain"][0]["days_left"] < 0
    assert reports[wrong_name]["name_matches"] is False
    assert reports[wrong_name]["name_checked"] == "127.0.0.1"
    ok = reports[good]
    assert ok["trusted"] is True and ok["name_matches"] is True and not ok["expired"]
    assert ok["self_signed"] is False and ok["chain_ordered"] is True
    assert ok["protocols"]["TLSv1.2"] == "accepted" and ok["protocols"]["TLSv1.3"] == "accepted"
    assert ok["weak_ciphers"]["static-rsa"]["status"] in ("refused", "not testable here")
    assert reports[weak]["weak_ciphers"]["static-rsa"]["status"] == "accepted"
    assert reports[weak]["weak_ciphers"]["static-rsa"]["cipher"] == "AES128-SHA"
    assert reports[weak]["protocols"]["TLSv1.3"] == "refused"
    assert no_tls.error is not None and no_tls.error.startswith("no TLS handshake")

    from network_scanner.findings import evaluate

    def rules(port: int) -> set[str]:
        item = {"address": "127.0.0.1", "port": port, "state": "open",
                "service": {"name": "https", "tls": True}, "tls": reports[port]}
        found = evaluate(item)
        assert all(f.confidence == "confirmed" for f in found)
        return {f.rule for f in found}

    assert "tls-self-signed" in rules(self_signed)
    assert {"tls-expired", "tls-untrusted"} <= rules(expired)
    assert "tls-name-mismatch" in rules(wrong_name)
    assert rules(good) == set()
    assert "tls-weak-cipher:static-rsa" in rules(weak)


@pytest.mark.asyncio
async def test_concurrency_cap_is_respected() -> None:
    in_flight = 0
    peak = 0
    seen: list[int] = []

    async def counting(address: str, port: int, timeout: float) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0)  # let the other workers start theirs
            seen.append(port)
            return await tcp_connect(address, port, timeout)
        finally:
            in_flight -= 1

    ports = [closed_port() for _ in range(3)]
    targets = ports * 20  # 60 connects to closed loopback ports
    results = await connect_scan([LOOP], targets, concurrency=7, timeout=0.5,
                                 connector=counting)
    assert peak == 7
    assert len(seen) == 60 and all(r.state == CLOSED for r in results)
    one = await connect_scan([LOOP], ports, concurrency=500, timeout=0.5, connector=counting)
    assert len(one) == 3 and peak == 7  # never more workers than ports


@pytest.mark.asyncio
async def test_cancel_stops_the_scan_and_closes_its_sockets() -> None:
    async with listener(silent()) as quiet:  # detection waits out its probe timeout
        events: list[tuple[str, Any]] = []
        task = asyncio.ensure_future(scan([quiet], events, probe_timeout=30))
        async with asyncio.timeout(10):
            while not any(name == "ports" for name, _ in events):
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not any(name == "service" for name, _ in events)


@pytest.mark.asyncio
async def test_open_ports_are_found_among_many_closed() -> None:
    async with listener(http_server("uvicorn")) as web:
        result = await scan([web - 5, web - 4, web, web + 1], detect=True, tls=False)
    ports = by_port(result)
    assert ports[web]["state"] == OPEN and ports[web]["service"]["product"] == "uvicorn"
    assert ports[web]["tls"] is None
    assert result["counts"]["open"] >= 1
    assert result["port_count"] == 4 and result["hosts"][0]["address"] == "127.0.0.1"


@pytest.mark.asyncio
async def test_nmap_backend_against_loopback_only() -> None:
    from network_scanner.nmap import nmap_path

    if nmap_path() is None:
        pytest.skip("nmap is not installed")
    async with listener(greeter(b"SSH-2.0-OpenSSH_9.6p1\r\n")) as ssh:
        result = await scan([ssh], backend="nmap", tls=False, connect_timeout=1.0)
    port = by_port(result)[ssh]
    assert port["state"] == OPEN and port["service"]["name"] == "ssh"


def test_ssl_module_can_offer_what_the_tls_checks_need() -> None:
    """The checks mark groups "not testable here" rather than absent; make sure the
    basic ones are testable on this machine so the results above mean something."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("kRSA:@SECLEVEL=0")
    assert ctx.get_ciphers()


@pytest.mark.asyncio
async def test_ipv6_loopback() -> None:
    try:
        server = await asyncio.start_server(greeter(b"SSH-2.0-OpenSSH_9.6p1\r\n"), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        port = server.sockets[0].getsockname()[1]
        ctx = context()
        prepared = await prepare(ScanOptions(targets="[::1]", ports=f"{port}", **FAST), ctx)
        result = await run_scan(prepared, ctx, lambda *_: None)
    finally:
        server.close()
    (item,) = result["ports"]
    assert item["address"] == "::1" and item["state"] == OPEN
    assert item["service"]["product"] == "OpenSSH"


@pytest.mark.asyncio
async def test_a_streamed_scan_does_not_keep_every_port_state() -> None:
    """Review finding: connect_scan kept every PortState even when the engine streams them
    through on_result and ignores the list, so 256 hosts x 65535 ports (allowed on
    loopback) held 16.7 million states in memory. A streaming caller keeps nothing."""
    import tracemalloc

    from network_scanner.scanner import PortState

    async def refused(address: str, port: int, timeout: float) -> Any:
        return CLOSED, "refused", 0.1  # no socket: only what the scanner keeps is measured

    hosts = [Host(f"127.0.0.{n}", None, "loopback") for n in (1, 2)]
    ports = list(range(1, 65536))
    seen = 0

    def count(_item: PortState) -> None:
        nonlocal seen
        seen += 1

    tracemalloc.start()
    try:
        kept = await connect_scan(hosts, ports, concurrency=50, on_result=count,
                                  connector=refused)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 2 * 65535 and kept == []
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB held for a streamed scan"


@pytest.mark.asyncio
async def test_concurrency_stays_within_the_file_descriptor_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding: concurrency (up to 2000) was used as asked, so under a soft
    descriptor limit of 256 (macOS) or 1024 (many Linux desktops) socket() failed with
    EMFILE, the scan died and the app could not open files meanwhile. A scan holds at most
    a quarter of the limit."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (256, 4096))
    in_flight = peak = 0

    async def slow(address: str, port: int, timeout: float) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.001)  # no socket: only the pool size is measured
            return CLOSED, "refused", 0.1
        finally:
            in_flight -= 1

    results = await connect_scan([LOOP], list(range(1, 1001)), concurrency=2000,
                                 connector=slow)
    assert len(results) == 1000 and peak == 256 // 4


@pytest.mark.asyncio
async def test_nmap_that_writes_much_to_stderr_does_not_hang_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding: run_nmap read stdout to its end and only then stderr, so an nmap
    with more than a pipe's worth (64 KiB) of warnings blocked on stderr and the scan
    waited for ever. A stand-in 'nmap' (it connects nowhere) writes 256 KiB of warnings
    before its report."""
    import sys

    from network_scanner import nmap

    report = (Path(__file__).parent / "data" / "nmap-sample.xml").read_text()
    (tmp_path / "report.xml").write_text(report)
    fake = tmp_path / "nmap"
    fake.write_text(f"#!{sys.executable}\nimport sys\n"
                    "sys.stderr.write('Warning: something odd\\n' * 12000)\n"
                    "sys.stderr.flush()\n"
                    f"sys.stdout.write(open({str(tmp_path / 'report.xml')!r}).read())\n")
    fake.chmod(0o755)
    monkeypatch.setattr(nmap, "nmap_path", lambda: str(fake))
    async with asyncio.timeout(20):
        parsed = await nmap.run_nmap(["127.0.0.1"], "1-1000", timeout=1.0)
    assert len(parsed["ports"]) == 3
