"""Which addresses a scan may touch: loopback, plus what the user listed as their own.

This is the scanner's own policy, stricter than the host's ``check_target`` because a
scan fans out to many ports and possibly many addresses:

* every literal spelling is read as the C resolver reads it (``2130706433``,
  ``0177.0.0.1``, ``0x7f.1``, ``127.1`` are all 127.0.0.1);
* IPv4-mapped IPv6 (``::ffff:10.0.0.1``) is judged, and connected to, as the IPv4
  address inside; other IPv6 forms that embed IPv4 (NAT64 ``64:ff9b::/96``, 6to4,
  IPv4-compatible ``::a.b.c.d``) are *not* loopback even when the embedded address is,
  because packets to them leave the machine; they need an explicit allow entry;
* a name is looked up only when it is on the allow-list by name (``localhost`` and
  ``*.localhost`` are loopback without a lookup), once per scan, and the address is
  pinned for the whole scan. A name alone admits only public addresses: one resolving
  to a private, shared, link-local (cloud metadata) or reserved address is refused unless
  that address is loopback or inside an allowed network too (so whoever controls the
  name's DNS cannot point your scan into your LAN); an IPv6 answer that embeds an IPv4
  address (NAT64, 6to4, IPv4-compatible, SIIT) is judged by that IPv4 address;
* a network (``192.168.1.0/24``) is allowed only when it lies inside loopback or inside
  an allowed network, and is capped at ``max_hosts`` addresses;
* allow-list networks broader than /16 (IPv4) or /64 (IPv6) are refused outright.

Refusals raise :class:`TargetRefused` before anything is sent, and before any DNS
lookup for names that are not listed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], Awaitable[list[str]]]

# What inet_aton accepts: 1-4 parts of decimal, octal (leading 0) or hex (0x) numbers.
_INET_ATON = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LOOP4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOP6 = ipaddress.IPv6Address("::1")
MIN_PREFIX = {4: 16, 6: 64}
# IPv6 forms that carry an IPv4 address a translator or tunnel delivers to: NAT64's
# well-known prefix, IPv4-compatible and SIIT's IPv4-translated addresses (the embedded
# address is the last 32 bits), 6to4 (``sixtofour``). Python 3.11 calls them all global.
_EMBEDDING = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::/96"),
              ipaddress.IPv6Network("::ffff:0:0:0/96"))
# NAT64's local-use prefix (RFC 8215): translated inside the site, never public.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
HARD_MAX_HOSTS = 4096


class TargetRefused(ValueError):
    """A target the policy does not allow or cannot read; says which and why.

    ``status`` is 422 for input that cannot be read and 403 for a refusal."""

    def __init__(self, message: str, *, field: str = "targets", status: int = 403):
        self.field = field
        self.status = status
        super().__init__(message if message.startswith(field) else f"{field}: {message}")


@dataclass(frozen=True)
class Host:
    """One address to scan. ``address`` is what is connected to (pinned)."""

    address: str
    name: str | None
    why: str

    @property
    def loopback(self) -> bool:
        return self.why == "loopback"

    def to_dict(self) -> dict[str, str | None]:
        return {"address": self.address, "name": self.name, "why": self.why}


@dataclass
class Policy:
    """The allow-list, read from the ``allowed_targets`` setting."""

    names: frozenset[str] = frozenset()
    networks: tuple[tuple[str, IPNetwork], ...] = ()
    max_hosts: int = 256

    @classmethod
    def from_entries(cls, entries: Iterable[str], max_hosts: int = 256) -> Policy:
        """Read allow-list entries; raises :class:`TargetRefused` (field
        ``allowed_targets``) for an entry that is not a name, address or network, or
        a network broader than /16 (IPv4) or /64 (IPv6)."""
        names: set[str] = set()
        networks: list[tuple[str, IPNetwork]] = []
        for entry in entries:
            text = str(entry).strip().lower().rstrip(".")
            if not text:
                continue
            net = _network(text)
            if net is None:
                literal = literal_address(text, "allowed_targets")
                if literal is not None:
                    net = ipaddress.ip_network(literal)
            if net is not None:
                if net.prefixlen < MIN_PREFIX[net.version]:
                    raise TargetRefused(
                        f"entry {entry!r} is broader than /{MIN_PREFIX[net.version]}; list "
                        "the networks you own, not the Internet", field="allowed_targets",
                        status=422)
                networks.append((str(entry), net))
            elif is_host_name(text):
                names.add(text)
            else:
                raise TargetRefused(f"entry {entry!r} is neither a host name, an address nor "
                                    "a network like 192.168.1.0/24", field="allowed_targets",
                                    status=422)
        return cls(frozenset(names), tuple(networks), min(max(1, max_hosts), HARD_MAX_HOSTS))

    def describe(self) -> list[str]:
        return sorted(self.names) + [entry for entry, _ in self.networks]


def is_host_name(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_LABEL.match(label) for label in text.split("."))


def _network(text: str) -> IPNetwork | None:
    if "/" not in text:
        return None
    base, _, prefix = text.partition("/")
    if not prefix.isdigit():
        raise TargetRefused(f"{text!r}: the prefix after '/' must be a number", status=422)
    literal = literal_address(base.strip("[]"), "targets")
    if literal is None:
        raise TargetRefused(f"{text!r}: a network needs an address before '/'", status=422)
    try:
        return ipaddress.ip_network(f"{effective(literal)}/{prefix}", strict=False) \
            if effective(literal) == literal else ipaddress.ip_network(
                f"{effective(literal)}/{max(0, int(prefix) - 96)}", strict=False)
    except ValueError as exc:
        raise TargetRefused(f"{text!r}: {exc}", status=422) from None


def literal_address(host: str, field: str = "targets") -> IPAddress | None:
    """The address a literal host spells, read as the C resolver reads it; None for a
    name. Raises :class:`TargetRefused` (422) for something that looks numeric but is
    not an address (``256.1.1.1``, ``1.2.3.4.5``)."""
    if _INET_ATON.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise TargetRefused(f"{host!r} looks like an IPv4 address but is not one",
                                field=field, status=422) from None
    if re.fullmatch(r"[0-9.]+", host):  # too many dots: 1.2.3.4.5
        raise TargetRefused(f"{host!r} looks like an IPv4 address but is not one",
                            field=field, status=422)
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            address, _, port = host.rpartition(":")
            if port.isdigit() and address.count(":") == 0:  # 127.0.0.1:22, localhost:80
                raise TargetRefused(f"{host!r}: a target is a host without a port; put "
                                    f"{port} in the ports field", field=field,
                                    status=422) from None
            raise TargetRefused(f"{host!r} is not a valid IPv6 address", field=field,
                                status=422) from None
    return None


def effective(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address carries (the kernel connects to it
    as IPv4); any other address unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(address: IPAddress) -> bool:
    inner = effective(address)
    if isinstance(inner, ipaddress.IPv4Address):
        return inner in _LOOP4
    return inner == _LOOP6


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address is translated or tunnelled to (NAT64, 6to4,
    IPv4-compatible, SIIT), or None."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _EMBEDDING):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether packets to ``address`` go to the public Internet: global, and for the IPv6
    forms that carry an IPv4 address, that address global too (a name resolving to
    ``64:ff9b::a00:1`` reaches 10.0.0.1 through a NAT64 gateway)."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
        return False
    embedded = embedded_ipv4(address)
    return embedded is None or embedded.is_global


def judge(address: IPAddress, policy: Policy, given: str) -> str:
    """Why ``address`` may be scanned; raises :class:`TargetRefused` otherwise."""
    inner = effective(address)
    shown = str(address) if inner == address else f"{address} (= {inner})"
    if inner.is_unspecified:
        raise TargetRefused(f"{given!r} is the unspecified address {shown}; use 127.0.0.1 "
                            "for this machine")
    if inner.is_multicast or inner == ipaddress.IPv4Address("255.255.255.255"):
        raise TargetRefused(f"{given!r} is a multicast or broadcast address ({shown})")
    if is_loopback(inner):
        return "loopback"
    for entry, network in policy.networks:
        if inner.version == network.version and inner in network:
            return f"allowed by {entry}"
    listed = ", ".join(policy.describe()) or "empty"
    raise TargetRefused(f"{given!r} is {shown}, which is not loopback and not on your "
                        f"allowed targets ({listed}); add it in the plugin's settings to "
                        "scan it")


async def system_resolver(name: str) -> list[str]:
    """Every address ``name`` resolves to (a thread of the loop's default executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, None,
                                                         type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass
class TargetSet:
    """The checked hosts of one scan and what was refused on the way (none: a refusal
    raises). ``resolved`` records name -> pinned address for the history."""

    hosts: list[Host] = field(default_factory=list)
    resolved: dict[str, str] = field(default_factory=dict)


def split_targets(spec: str) -> list[str]:
    items = [item for item in re.split(r"[,\s]+", spec.strip()) if item]
    if not items:
        raise TargetRefused("no target given; e.g. 127.0.0.1 or localhost", status=422)
    if len(items) > 64:
        raise TargetRefused(f"{len(items)} entries; at most 64 per scan", status=422)
    return items


async def resolve_targets(spec: str, policy: Policy, resolver: Resolver = system_resolver
                          ) -> TargetSet:
    """Check every entry of ``spec`` (addresses, names, networks) against ``policy``.

    Returns the hosts with their pinned addresses; raises :class:`TargetRefused` for the
    first entry refused (nothing is scanned then). ``resolver`` is called only for names
    on the allow-list, once per name.
    """
    result = TargetSet()
    seen: set[str] = set()

    def add(host: Host) -> None:
        if host.address not in seen:
            seen.add(host.address)
            result.hosts.append(host)
        if len(result.hosts) > policy.max_hosts:
            raise TargetRefused(f"more than {policy.max_hosts} addresses in one scan (the "
                                "max_hosts setting); split it or narrow the networks")

    for item in split_targets(spec):
        text = item.strip().lower()
        if len(text) > 255 or any(ord(c) < 33 for c in text):
            raise TargetRefused(f"{item[:80]!r} is too long or has control characters",
                                status=422)
        if "/" in text:
            net = _network(text)
            assert net is not None
            count = net.num_addresses
            if count > policy.max_hosts + 2:
                raise TargetRefused(f"{item!r} has {count} addresses, more than the "
                                    f"{policy.max_hosts} one scan may cover (max_hosts)")
            allowed_by = _network_allowed(net, policy)
            if allowed_by is None:
                listed = ", ".join(policy.describe()) or "empty"
                raise TargetRefused(f"{item!r} is not inside loopback or one of your allowed "
                                    f"networks ({listed})")
            addresses = list(net.hosts()) if count > 2 else list(net)
            for address in addresses:
                add(Host(str(address), None, allowed_by))
            continue
        host = text.strip("[]").rstrip(".")
        literal = literal_address(host)
        if literal is not None:
            why = judge(literal, policy, item)
            # No name for an address however it is spelled: the name is what TLS is asked
            # for (SNI) and checked against, and '2130706433' or '::ffff:127.0.0.1' in a
            # certificate's names made a false "does not name this host".
            add(Host(str(effective(literal)), None, why))
            continue
        if not is_host_name(host):
            raise TargetRefused(f"{item!r} is not a valid host name or address", status=422)
        if host == "localhost" or host.endswith(".localhost"):
            add(Host("127.0.0.1", host, "loopback"))
            continue
        if host not in policy.names:
            listed = ", ".join(policy.describe()) or "empty"
            raise TargetRefused(f"{item!r} is a name not on your allowed targets ({listed}); "
                                "it was not looked up")
        try:
            answers = await resolver(host)
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(f"{item!r} cannot be resolved: {exc}", status=422) from None
        problems: list[str] = []
        pinned: Host | None = None
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer.split("%", 1)[0])
                inner = effective(address)
                if inner.is_unspecified or inner.is_multicast:
                    judge(address, policy, item)  # raises with the reason
                if is_loopback(inner) or any(inner in n for _, n in policy.networks
                                             if n.version == inner.version):
                    why = judge(address, policy, item)
                elif is_public(inner):
                    why = f"allowed by name {host}"
                else:
                    # A name alone never takes a scan into private, shared, link-local
                    # (cloud metadata) or reserved space: whoever controls its DNS could
                    # point it there. The address or its network must be listed too.
                    raise TargetRefused(
                        f"{item!r} resolves to {address}, a private, link-local or "
                        "reserved address (or one translated to such an IPv4 address); "
                        "list that address or its network in allowed targets too to scan "
                        "it")
            except (TargetRefused, ValueError) as exc:
                problems.append(str(exc))
                continue
            pinned = Host(str(inner), host, why)
            break
        if pinned is None:
            raise TargetRefused(f"{item!r} resolves only to refused addresses: "
                                + ("; ".join(problems) or "no address"))
        result.resolved[host] = pinned.address
        add(pinned)
    return result


def _network_allowed(net: IPNetwork, policy: Policy) -> str | None:
    if isinstance(net, ipaddress.IPv4Network) and net.subnet_of(_LOOP4):
        return "loopback"
    if net.version == 6 and net.num_addresses == 1 and net.network_address == _LOOP6:
        return "loopback"
    for entry, allowed in policy.networks:
        if allowed.version == net.version and net.subnet_of(allowed):  # type: ignore[arg-type]
            return f"allowed by {entry}"
    return None


class RateLimiter:
    """A token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``.
    ``rate`` 0 means no limit. Used for connections to hosts other than loopback."""

    def __init__(self, rate: float, burst: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.rate = rate
        self.capacity = float(burst if burst is not None else max(1, int(rate // 10) or 1))
        self.tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self.updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = self._clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1 - 1e-9:  # float error must not cost another sleep
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                await self._sleep((1 - self.tokens) / self.rate)
