"""Guards for what users type into plugins: file paths, network targets, and git
repositories a plugin did not create.

Two functions plugins call before they touch a file or open a connection on a user's
say-so. Both raise a ``ValueError`` subclass whose message names the field and the
reason, fit to answer as a 4xx (``field`` defaults to ``"path"`` / ``"target"``)::

    from plexichat_desktop.plugins.guards import UnsafePath, safe_path, check_target

    async def read_file(name: str):
        try:
            path = safe_path(ctx.data_dir / "files", name, field="name")
        except UnsafePath as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return FileResponse(path)

    target = check_target(url, allow=ctx.settings["allowed_hosts"])
    async with httpx.AsyncClient() as client:      # connect to the pinned address
        await client.get(target.url, headers={"Host": target.host_header})

:func:`safe_path` keeps a path inside a root folder: no ``..`` component, no NUL, no
backslash or drive letter, no over-long name, and no symlink (anywhere along the path)
that leads out of the root. It returns the resolved path: use that, not the input. It
checks the file system as it is now; a plugin that lets others write into the root
concurrently should also open with ``O_NOFOLLOW`` where it matters.

:func:`check_target` allows loopback and what the user listed explicitly, nothing else.
Every literal spelling of an address is read as the C resolver would read it (so
``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and ``127.1`` are all 127.0.0.1), IPv4-mapped
and -compatible IPv6 forms (``::ffff:127.0.0.1``, ``::ffff:7f00:1``) and NAT64 (``64:ff9b::``)
are judged by the IPv4 address inside, ``localhost`` and ``*.localhost`` are loopback by
name (RFC 6761; never looked up), and trailing dots (``localhost.``) are dropped. A host
name is looked up only when it is on the allow-list by name, once, and *every* address
the answer holds must pass: a public address, loopback (reachable by its literal anyway),
or one inside an allow-listed network. One private, shared (100.64/10), link-local (cloud
metadata), unique-local, reserved, unspecified or multicast address in the answer
refuses the name, naming that address: listing ``api.example.com`` must not let its DNS
answer reach the LAN (rebinding). The first address is returned *pinned*: connect to
``Target.address`` (``Target.url`` is the URL with that address), so an answer that
changes between the check and the connection cannot move the request elsewhere. A name
not on the list is refused without any lookup. Unspecified (``0.0.0.0``, ``::``),
multicast and broadcast addresses are refused even though some of them reach the local
machine.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

__all__ = ["GIT_DRIVER_QUERY", "MAX_NAME_BYTES", "MAX_PATH_CHARS", "Target",
           "TargetRefused", "UnsafePath", "check_target", "check_target_async",
           "git_config_env", "safe_path", "untrusted_git_settings"]

MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255  # one component, as most file systems limit it
_DRIVE = re.compile(r"^[A-Za-z]:")
# What inet_aton accepts: 1-4 parts of decimal, octal (leading 0) or hex (0x) numbers.
_INET_ATON = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafePath(ValueError):
    """A user path that would leave its root or cannot be a file name; says which field
    and why."""


class TargetRefused(ValueError):
    """A network target that is neither loopback nor on the user's allow-list, or cannot
    be parsed; says which field, which host and why."""


# -- paths -------------------------------------------------------------------------------

def safe_path(root: str | os.PathLike[str], user_path: str | os.PathLike[str], *,
              field: str = "path", max_chars: int = MAX_PATH_CHARS,
              follow_last: bool = True) -> Path:
    """The resolved ``root / user_path``, guaranteed inside ``root``.

    ``follow_last=False`` leaves the last name unresolved: a symlink is then the link
    itself (to rename, delete or move it, wherever it points), while the folder holding
    it is still resolved and checked.

    Refused (:class:`UnsafePath`, naming ``field``): NUL, backslashes and drive letters
    (Windows separators a later copy could honour), a ``..`` component anywhere (even one
    that would stay inside), a path longer than ``max_chars`` or a component longer than
    255 bytes, an absolute path outside ``root`` (an absolute one inside is accepted), and
    a path whose symlinks lead out of ``root``. ``""`` and ``"."`` are the root itself.
    The target need not exist (for a file about to be created).
    """
    text = os.fspath(user_path)
    if not isinstance(text, str):
        raise UnsafePath(f"{field}: must be text, got {type(text).__name__}")
    if "\x00" in text:
        raise UnsafePath(f"{field}: contains a NUL character")
    if len(text) > max_chars:
        raise UnsafePath(f"{field}: {len(text)} characters, longer than {max_chars}")
    if "\\" in text:
        raise UnsafePath(f"{field}: contains a backslash; use '/' between folders")
    if _DRIVE.match(text):
        raise UnsafePath(f"{field}: {_show(text)} starts with a drive letter")
    parts = PurePosixPath(text).parts
    if ".." in parts:
        raise UnsafePath(f"{field}: {_show(text)} contains '..'")
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UnsafePath(f"{field}: a name in {_show(text)} is longer than "
                             f"{MAX_NAME_BYTES} bytes")
    base = Path(root).resolve()
    candidate = Path(text) if text.startswith("/") else base / text
    if not follow_last and parts and parts[-1] not in ("/", "."):
        folder = safe_path(base, candidate.parent, field=field, max_chars=max_chars)
        return folder / candidate.name
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UnsafePath(f"{field}: {_show(text)} cannot be resolved: {exc}") from None
    if not resolved.is_relative_to(base):
        how = ("is outside" if text.startswith("/") and not candidate.is_relative_to(base)
               else "leads (through a symlink) outside")
        raise UnsafePath(f"{field}: {_show(text)} {how} the allowed folder {base}")
    return resolved


class NotRegular(OSError):
    """A path opened as a regular file is none (any more): a symlink (``mode`` None, as
    O_NOFOLLOW refused it), a FIFO, socket or device (``mode`` is what fstat found)."""

    def __init__(self, code: int, text: str, path: str, mode: int | None = None):
        super().__init__(code, text, path)
        self.mode = mode


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A read descriptor of the regular file at ``path`` and its fstat; :class:`NotRegular`
    for anything else.

    O_NOFOLLOW: a symlink put in place of the file after it was looked at is refused
    instead of followed (the check and the open are one step, no lstat-then-open race);
    O_NONBLOCK: a FIFO put there does not block the caller waiting for a writer (a
    blocking open never returns, and no cancel can end it); the fstat of the descriptor
    is what was really opened, so a device such as /dev/zero is never read."""
    flags = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(errno.ELOOP, "became a symlink; not followed", str(path)
                             ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegular(errno.EINVAL, "is no longer a regular file", str(path), st.st_mode)
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd, st


def read_regular(path: str | os.PathLike[str], cap: int | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (opened by :func:`open_regular`);
    ``ValueError`` when it holds more than ``cap`` bytes (it may grow while read)."""
    fd, _ = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read() if cap is None else fh.read(cap + 1)
    finally:
        os.close(fd)
    if cap is not None and len(data) > cap:
        raise ValueError(f"{path}: over {cap} bytes")
    return data


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


# -- network targets ---------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A checked network target. Connect to ``address`` (pinned), not to ``host``.

    Attributes:
        host: the host as given, normalised (lower case, no trailing dot, no brackets).
        address: the IP address to connect to, in canonical form.
        port: the port (from the URL or host:port, else the scheme's default, else None).
        scheme: the URL's scheme, or None when a bare host was given.
        path: the URL's path and query ("" for a bare host).
        why: ``"loopback"`` or ``"allowed by <entry>"``.
    """

    host: str
    address: str
    port: int | None
    scheme: str | None
    path: str
    why: str

    @property
    def host_header(self) -> str:
        """What to send as ``Host``: the name as given (with a non-default port)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = _SCHEMES.get(self.scheme or "")
        return name if self.port is None or self.port == default else f"{name}:{self.port}"

    @property
    def url(self) -> str:
        """The URL with the pinned address in place of the host (needs a scheme)."""
        if self.scheme is None:
            raise ValueError(f"{self.host!r} was given without a scheme; no URL to make")
        host = f"[{self.address}]" if ":" in self.address else self.address
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


@dataclass(frozen=True)
class _Allow:
    names: frozenset[str]
    networks: tuple[tuple[str, IPNetwork], ...]


def _parse_allow(allow: Iterable[str], field: str) -> _Allow:
    if isinstance(allow, str):
        allow = [allow]
    names: set[str] = set()
    networks: list[tuple[str, IPNetwork]] = []
    for entry in allow:
        text = str(entry).strip().lower().rstrip(".")
        if not text:
            continue
        try:
            networks.append((entry, ipaddress.ip_network(text.strip("[]"), strict=False)))
            continue
        except ValueError:
            pass
        literal = _literal_address(text)
        if literal is not None:
            networks.append((entry, ipaddress.ip_network(literal)))
        elif _is_host_name(text):
            names.add(text)
        else:
            raise TargetRefused(f"{field}: allow-list entry {entry!r} is neither a host name, "
                                "an IP address nor a network like '192.168.1.0/24'")
    return _Allow(frozenset(names), tuple(networks))


def _is_host_name(text: str) -> bool:
    return len(text) <= 253 and all(_HOST_LABEL.match(label) for label in text.split("."))


def _literal_address(host: str) -> IPAddress | None:
    """The address a literal host spells, the way the C resolver reads it; None for names."""
    if _INET_ATON.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise TargetRefused(f"{host!r} looks like an IPv4 address but is not one"
                                ) from None
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise TargetRefused(f"{host!r} is not a valid IPv6 address") from None
    return None


def _effective(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        packed = int(address)
        if packed >> 32 == 0 and packed > 1:  # ::a.b.c.d, deprecated IPv4-compatible
            return ipaddress.IPv4Address(packed)
    return address


def _split(host_or_url: str, field: str) -> tuple[str, int | None, str | None, str]:
    text = host_or_url.strip()
    if not text or len(text) > 2048 or any(ord(c) < 33 for c in text):
        raise TargetRefused(f"{field}: {_show(text)} is empty, too long or has spaces or "
                            "control characters")
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise TargetRefused(f"{field}: scheme {scheme!r} is not one of "
                                f"{', '.join(sorted(_SCHEMES))}")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused(f"{field}: {_show(text)} has credentials before the host "
                                "('user@host'); pass them another way")
        try:
            port = parts.port
        except ValueError as exc:
            raise TargetRefused(f"{field}: bad port in {_show(text)}: {exc}") from None
        host = parts.hostname or ""
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return host, port if port is not None else _SCHEMES[scheme], scheme, path
    if text.startswith("["):
        if "]" not in text:
            raise TargetRefused(f"{field}: {_show(text)} has '[' without ']'")
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else (None if not rest else "x")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise TargetRefused(f"{field}: bad port in {_show(text)}")
        port = int(port_text)
    return host, port, None, ""


def check_target(host_or_url: str, allow: Iterable[str] = (), *, field: str = "target",
                 resolve: bool = True) -> Target:
    """Allow ``host_or_url`` only if it is loopback or on ``allow``; pin its address.

    Args:
        host_or_url: ``"host"``, ``"host:port"``, ``"[v6]:port"`` or an http(s)/ws(s) URL.
        allow: the user's explicit allow-list (a plugin setting): host names (exact match,
            case-insensitive, no wildcards), IP addresses in any literal form, networks
            (``"192.168.1.0/24"``). Empty: loopback only.
        field: the name the error messages give the input.
        resolve: look allowed names up (default). False refuses every name that is not
            ``localhost``-like, for callers that must not touch DNS.

    Returns a :class:`Target`; raises :class:`TargetRefused` naming the field, the host
    and the reason. Blocking: a name on the allow-list is looked up with
    :func:`socket.getaddrinfo`; call it with ``asyncio.to_thread`` in a coroutine.
    """
    rules = _parse_allow(allow, field)
    host, port, scheme, path = _split(host_or_url, field)
    host = host.lower().strip("[]")
    host = host.split("%", 1)[0] if ":" in host else host  # an IPv6 zone (fe80::1%eth0)
    while host.endswith("."):
        host = host[:-1]
    if not host:
        raise TargetRefused(f"{field}: {_show(host_or_url)} has no host")

    def make(address: IPAddress, why: str) -> Target:
        return Target(host, str(address), port, scheme, path, why)

    try:
        literal = _literal_address(host)
    except TargetRefused as exc:
        raise TargetRefused(f"{field}: {exc}") from None
    if literal is not None:
        return make(literal, _judge(literal, rules, field, host_or_url, named=False))
    if not _is_host_name(host):
        raise TargetRefused(f"{field}: {_show(host)} is not a valid host name")
    if host == "localhost" or host.endswith(".localhost"):
        return make(ipaddress.IPv4Address("127.0.0.1"), "loopback")
    if host not in rules.names:
        raise TargetRefused(f"{field}: {host!r} is not loopback and not on the allow-list "
                            f"({_listed(rules)}); add it to the plugin's allowed hosts to "
                            "reach it")
    if not resolve:
        raise TargetRefused(f"{field}: {host!r} would need a DNS lookup, which this caller "
                            "does not allow; give an IP address")
    addresses = _lookup(host, port, field)
    if not addresses:
        raise TargetRefused(f"{field}: {host!r} resolves to no address")
    # Every address, not just the one used: a resolver (or the next lookup of a client
    # that ignores the pin) may pick any of them.
    for address in addresses:
        try:
            _judge(address, rules, field, host_or_url, named=True)
        except TargetRefused as exc:
            raise TargetRefused(f"{field}: {host!r} resolves to {address}, which is "
                                f"refused: {str(exc).partition(': ')[2]}") from None
    return make(addresses[0], f"allowed by {host!r}")


async def check_target_async(host_or_url: str, allow: Iterable[str] = (), *,
                             field: str = "target", resolve: bool = True) -> Target:
    """:func:`check_target` for coroutines: the one DNS lookup runs in a worker thread,
    so a slow resolver does not hold up the app's event loop."""
    return await asyncio.to_thread(check_target, host_or_url, list(allow) if not isinstance(
        allow, str) else [allow], field=field, resolve=resolve)


def _lookup(host: str, port: int | None, field: str) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"{field}: {host!r} cannot be resolved: {exc}") from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _judge(address: IPAddress, rules: _Allow, field: str, given: str, named: bool) -> str:
    """Why ``address`` is allowed; TargetRefused when it is not."""
    inner = _effective(address)
    shown = str(address) if inner == address else f"{address} (= {inner})"
    if inner.is_unspecified:
        raise TargetRefused(f"{field}: {_show(given)} is the unspecified address {shown}; "
                            "use 127.0.0.1 for this machine")
    if inner.is_multicast or (isinstance(inner, ipaddress.IPv4Address)
                              and inner == ipaddress.IPv4Address("255.255.255.255")):
        raise TargetRefused(f"{field}: {_show(given)} is a multicast/broadcast address "
                            f"{shown}")
    for entry, network in rules.networks:
        if inner in network or address in network:
            return f"allowed by {entry!r}"
    if inner.is_loopback:
        return "loopback"
    if named and inner.is_global:
        return "allowed by name"
    if named:
        raise TargetRefused(f"{field}: {_show(given)} is {shown}, which is not public, not "
                            f"loopback and not in an allowed network ({_listed(rules)}); "
                            "list that address or network to reach it by this name")
    raise TargetRefused(f"{field}: {_show(given)} is {shown}, which is not loopback and not "
                        f"on the allow-list ({_listed(rules)})")


def _listed(rules: _Allow) -> str:
    entries = sorted(rules.names) + [entry for entry, _ in rules.networks]
    return "empty" if not entries else ", ".join(entries)


# -- git repositories --------------------------------------------------------------------
#
# A repository's own configuration (.git/config and what it includes) may come with a
# clone, an unpacked archive or a shared drive, and git runs programs named there: clean
# and smudge filters (``git status``/``diff`` run clean on changed files), textconv and
# external diff drivers, the fsmonitor, the pager, hooks, signature checks in ``log``.
# A plugin that only *reads* a repository (status, diff, log, show, blame) runs git with
# :func:`untrusted_git_settings` as overrides, passed through :func:`git_config_env`:
#
#     names = run([git, "-C", repo, *GIT_DRIVER_QUERY]).stdout.split("\0")
#     env = {**os.environ, **git_config_env(untrusted_git_settings(names))}
#     run([git, "-C", repo, "diff", "--no-ext-diff", "--no-textconv"], env=env)

# Lists (NUL-separated) every filter and diff driver that names a program, in every
# config file git reads for the repository. Reading configuration runs nothing.
GIT_DRIVER_QUERY = ("config", "--null", "--name-only", "--get-regexp",
                    r"^(filter|diff)\..+\.(clean|smudge|process|textconv|command)$")

# Settings that would run a program, neutralised whatever the repository says.
_GIT_STATIC = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", os.devnull),
    ("core.pager", "cat"),
    ("diff.external", ""),            # empty: git refuses to run it (with --no-ext-diff: unused)
    ("log.showSignature", "false"),   # would run gpg.program
    ("gpg.program", "false"),
    ("gpg.ssh.program", "false"),
    ("gpg.x509.program", "false"),
    ("core.alternateRefsCommand", ""),
    ("uploadpack.packObjectsHook", ""),
    ("core.sshCommand", "false"),
    ("credential.helper", ""),
)


def untrusted_git_settings(driver_names: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(key, value)`` overrides that keep a repository's configuration from running
    programs in read-only git commands; ``driver_names`` are the keys
    :data:`GIT_DRIVER_QUERY` printed (``filter.<name>.clean``...).

    Each filter named gets empty ``clean``/``smudge``/``process`` (git then passes the
    content through) and ``required=false``; each diff driver a ``textconv`` of ``cat``
    (an empty one makes git fail) and an empty ``command`` (run only as an external diff,
    which callers also turn off with ``--no-ext-diff``)."""
    pairs = list(_GIT_STATIC)
    seen: set[tuple[str, str]] = set()
    for raw in driver_names:
        key = raw.strip()
        section, _, rest = key.partition(".")
        name, _, _variable = rest.rpartition(".")
        section = section.lower()
        if not name or section not in ("filter", "diff") or (section, name) in seen:
            continue
        seen.add((section, name))
        if section == "filter":
            pairs += [(f"filter.{name}.clean", ""), (f"filter.{name}.smudge", ""),
                      (f"filter.{name}.process", ""), (f"filter.{name}.required", "false")]
        else:
            pairs += [(f"diff.{name}.textconv", "cat"), (f"diff.{name}.command", "")]
    return pairs


def git_config_env(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_<n>``/``GIT_CONFIG_VALUE_<n>`` for ``pairs``
    (git 2.31+): unlike ``-c key=value`` a driver name holding ``=`` cannot split the
    key, and they win over every config file as ``-c`` does."""
    env: dict[str, str] = {}
    count = 0
    for key, value in pairs:
        env[f"GIT_CONFIG_KEY_{count}"] = key
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    return env
