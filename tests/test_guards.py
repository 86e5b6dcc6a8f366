"""Table tests of the guards against attacks: paths on real files and symlinks, network
targets judged without connecting anywhere (only loopback is ever contacted: one test
opens a real socket on 127.0.0.1 through a pinned target)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from plexichat_desktop.plugins.guards import (
    NotRegular,
    TargetRefused,
    UnsafePath,
    check_target,
    check_target_async,
    read_regular,
    safe_path,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root with a file, a folder, inward and outward symlinks, and a secret outside."""
    base = tmp_path / "root"
    (base / "docs").mkdir(parents=True)
    (base / "docs" / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "outside").mkdir()
    (base / "to_secret").symlink_to(tmp_path / "secret.txt")
    (base / "to_outside_dir").symlink_to(tmp_path / "outside")
    (base / "to_docs").symlink_to(base / "docs")
    (base / "relative_out").symlink_to("../outside")
    (base / "loop").symlink_to(base / "loop")
    return base


@pytest.mark.parametrize(("user_path", "words"), [
    ("../secret.txt", "contains '..'"),
    ("docs/../../secret.txt", "contains '..'"),
    ("docs/../a.txt", "contains '..'"),           # even one that would stay inside
    ("..", "contains '..'"),
    ("/etc/passwd", "is outside"),
    ("//etc/passwd", "is outside"),
    ("docs/a.txt\x00.png", "NUL"),
    ("..\\secret.txt", "backslash"),
    ("docs\\a.txt", "backslash"),
    ("C:/Windows/system.ini", "drive letter"),
    ("c:secret", "drive letter"),
    ("to_secret", "through a symlink"),
    ("to_outside_dir/new.txt", "through a symlink"),
    ("relative_out", "through a symlink"),
    ("x" * 256, "longer than 255 bytes"),
    ("é" * 128, "longer than 255 bytes"),          # 256 bytes in UTF-8
    ("a/" * 2100, "longer than 4096"),
    ("loop/file", "cannot be resolved"),
])
def test_safe_path_refuses(root, user_path, words):
    with pytest.raises(UnsafePath) as info:
        safe_path(root, user_path, field="name")
    assert str(info.value).startswith("name: ") and words in str(info.value)


@pytest.mark.parametrize(("user_path", "expected"), [
    ("docs/a.txt", "docs/a.txt"),
    ("docs/new/deeper.txt", "docs/new/deeper.txt"),   # need not exist
    ("./docs//a.txt", "docs/a.txt"),
    ("", "."),
    (".", "."),
    ("to_docs/a.txt", "docs/a.txt"),                  # a symlink that stays inside
    ("x" * 255, "x" * 255),
    ("..hidden", "..hidden"),                         # a name, not a parent reference
])
def test_safe_path_accepts_and_resolves(root, user_path, expected):
    assert safe_path(root, user_path) == (root / expected).resolve()


def test_safe_path_accepts_an_absolute_path_inside_the_root(root):
    assert safe_path(root, str(root / "docs" / "a.txt")) == root / "docs" / "a.txt"
    with pytest.raises(UnsafePath, match="is outside"):
        safe_path(root / "docs", str(root / "to_secret"))


def test_the_last_name_unresolved_is_the_link_itself(root):
    """follow_last=False: a link leading out is the link (to rename or trash it), while
    its folder is still resolved and checked and the text checks still apply."""
    assert safe_path(root, "to_secret", follow_last=False) == root.resolve() / "to_secret"
    assert safe_path(root, "to_docs/a.txt", follow_last=False) == (root / "docs" / "a.txt"
                                                                    ).resolve()
    for refused, words in (("to_outside_dir/x", "through a symlink"),
                           ("../secret.txt", "contains '..'"), ("a\\b", "backslash")):
        with pytest.raises(UnsafePath, match=words):
            safe_path(root, refused, follow_last=False)
    assert safe_path(root, "", follow_last=False) == root.resolve()


def test_read_regular_opens_only_regular_files(tmp_path):
    """One opener for File Manager's copies and archives and Code Analyzer's scans: a
    FIFO must not block, a link is not followed, a device is not read."""
    import os
    import stat

    (tmp_path / "a.txt").write_bytes(b"abc")
    assert read_regular(tmp_path / "a.txt") == b"abc"
    with pytest.raises(ValueError, match="over 2 bytes"):
        read_regular(tmp_path / "a.txt", cap=2)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "a.txt")
    (tmp_path / "null").symlink_to("/dev/null")
    with pytest.raises(NotRegular) as fifo:
        read_regular(tmp_path / "pipe")
    assert fifo.value.mode is not None and stat.S_ISFIFO(fifo.value.mode)
    for link in ("link", "null"):
        with pytest.raises(NotRegular, match="became a symlink") as refused:
            read_regular(tmp_path / link)
        assert refused.value.mode is None


# -- targets --------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "address"), [
    ("127.0.0.1", "127.0.0.1"),
    ("127.0.0.1:8080", "127.0.0.1"),
    ("http://127.0.0.1:8000/api?x=1", "127.0.0.1"),
    ("127.255.1.2", "127.255.1.2"),
    ("2130706433", "127.0.0.1"),                      # integer form
    ("0177.0.0.1", "127.0.0.1"),                      # octal
    ("0x7f.0.0.1", "127.0.0.1"),                      # hex
    ("0x7f000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),                           # short form
    ("::1", "::1"),
    ("[::1]:9000", "::1"),
    ("http://[::1]/", "::1"),
    ("::ffff:127.0.0.1", "::ffff:7f00:1"),            # IPv4-mapped
    ("::ffff:7f00:1", "::ffff:7f00:1"),
    ("http://[::ffff:127.0.0.1]:80/", "::ffff:7f00:1"),
    ("localhost", "127.0.0.1"),
    ("LOCALHOST.", "127.0.0.1"),
    ("localhost..", "127.0.0.1"),
    ("app.localhost", "127.0.0.1"),
    ("http://localhost.:8000/x", "127.0.0.1"),
])
def test_loopback_in_every_spelling_is_allowed_and_pinned(given, address):
    target = check_target(given)
    assert target.address == address
    assert target.why == "loopback"


@pytest.mark.parametrize(("given", "words"), [
    ("10.0.0.1", "not loopback"),
    ("192.168.1.10:80", "not loopback"),
    ("169.254.169.254", "not loopback"),              # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "not loopback"),
    ("2852039166", "not loopback"),                   # 169.254.169.254 as an integer
    ("0251.0376.0251.0376", "not loopback"),          # ... in octal
    ("0xa9fea9fe", "not loopback"),                   # ... in hex
    ("::ffff:169.254.169.254", "not loopback"),       # ... IPv4-mapped
    ("::ffff:a9fe:a9fe", "not loopback"),
    ("64:ff9b::a9fe:a9fe", "not loopback"),           # ... NAT64
    ("::169.254.169.254", "not loopback"),            # ... IPv4-compatible
    ("fe80::1%eth0", "not loopback"),
    ("fd00::1", "not loopback"),
    ("8.8.8.8", "not loopback"),
    ("0.0.0.0", "unspecified"),                       # reaches this machine on Linux
    ("0", "unspecified"),
    ("::", "unspecified"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("ff02::1", "multicast"),
    ("evil.example", "not on the allow-list"),        # refused without a DNS lookup
    ("localhost.evil.example", "not on the allow-list"),
    ("127.0.0.1.nip.io", "not on the allow-list"),
    ("http://evil.example#@127.0.0.1/", "not on the allow-list"),
    ("http://127.0.0.1:80@evil.example/", "credentials"),
    ("http://user:pw@127.0.0.1/", "credentials"),
    ("http://127.0.0.1\\@evil.example/", "credentials"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://127.0.0.1:6379/", "scheme"),
    ("http://%31%32%37.0.0.1/", "not a valid host name"),
    ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",  # full-width localhost
     "not a valid host name"),
    ("4294967296", "not one"),                        # 2**32: no address
    ("127.0.0.1:99999", "bad port"),
    ("127.0.0.1:0", "bad port"),
    ("[::1", "without ']'"),
    ("[::1]x", "bad port"),
    ("127.0.0.1 evil.example", "spaces"),
    ("", "empty"),
    ("http:///path", "no host"),
])
def test_refusals_name_the_field_and_never_connect(given, words):
    with pytest.raises(TargetRefused) as info:
        check_target(given, field="url")
    assert str(info.value).startswith("url: ") and words in str(info.value)


@pytest.mark.parametrize(("given", "allow", "address", "why"), [
    ("192.168.1.10", ["192.168.1.0/24"], "192.168.1.10", "allowed by '192.168.1.0/24'"),
    ("http://10.1.2.3:8080/", ["10.1.2.3"], "10.1.2.3", "allowed by '10.1.2.3'"),
    ("0xa010203", ["10.1.2.3"], "10.1.2.3", "allowed by '10.1.2.3'"),
    ("::ffff:10.1.2.3", ["10.0.0.0/8"], "::ffff:a01:203", "allowed by '10.0.0.0/8'"),
    ("fd00::5", ["fd00::/64"], "fd00::5", "allowed by 'fd00::/64'"),
])
def test_the_allow_list_admits_exactly_what_it_names(given, allow, address, why):
    target = check_target(given, allow=allow)
    assert (target.address, target.why) == (address, why)
    with pytest.raises(TargetRefused):
        check_target("192.168.2.10", allow=allow)


def test_bad_allow_list_entries_are_named():
    with pytest.raises(TargetRefused, match="'not a host!' is neither"):
        check_target("127.0.0.1", allow=["not a host!"])


def _loopback_alias() -> str | None:
    """A name other than localhost that this machine's /etc/hosts maps to loopback."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0].startswith("127."):
            for name in fields[1:]:
                if "localhost" not in name:
                    return name.lower()
    return None


def test_an_allowed_name_is_resolved_once_and_pinned():
    name = _loopback_alias()
    if name is None:
        pytest.skip("no loopback alias in /etc/hosts to resolve without DNS")
    with pytest.raises(TargetRefused, match="not on the allow-list"):
        check_target(name)                                 # not listed: no lookup
    target = check_target(f"http://{name}:8123/x?y=1", allow=[name.upper() + "."])
    assert target.address.startswith("127.") and target.why == f"allowed by {name!r}"
    assert target.url == f"http://{target.address}:8123/x?y=1"
    assert target.host_header == f"{name}:8123"
    with pytest.raises(TargetRefused, match="DNS lookup"):
        check_target(name, allow=[name], resolve=False)


@pytest.mark.asyncio
async def test_a_pinned_target_reaches_the_loopback_server(unused_tcp_port):
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", unused_tcp_port,
                                        family=socket.AF_INET)
    async with server:
        target = check_target(f"http://0177.0.0.1:{unused_tcp_port}/")
        assert target.url == f"http://127.0.0.1:{unused_tcp_port}/"
        reader, writer = await asyncio.open_connection(target.address, target.port)
        writer.write(b"hello\n")
        await writer.drain()
        await reader.read()
        writer.close()
    assert seen == [b"hello\n"]


@pytest.mark.asyncio
async def test_the_async_form_judges_the_same():
    target = await check_target_async("http://0x7f.1:8080/", allow=["10.0.0.0/8"])
    assert (target.address, target.port) == ("127.0.0.1", 8080)
    with pytest.raises(TargetRefused, match="not loopback"):
        await check_target_async("::ffff:169.254.169.254")


# -- untrusted git repositories ------------------------------------------------------------

def test_untrusted_git_settings_neutralise_every_driver_named(tmp_path: Path) -> None:
    import subprocess

    from plexichat_desktop.plugins.guards import (
        GIT_DRIVER_QUERY,
        git_config_env,
        untrusted_git_settings,
    )

    repo, marker = tmp_path / "repo", tmp_path / "ran"
    repo.mkdir()

    def git(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                              text=True, env=env)

    git("init", "-q")
    # A driver name with '=' and '.': as a -c argument it would split the key.
    (repo / ".gitattributes").write_text("*.txt filter=a=b.c\n")
    (repo / "a.txt").write_text("a\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    git("config", "filter.a=b.c.clean", f"sh -c 'touch {marker}; cat'")
    git("config", "filter.a=b.c.required", "true")
    (repo / "a.txt").write_text("b\n")
    git("status", "--porcelain")
    assert marker.exists()  # without the overrides git runs it: the test is real
    marker.unlink()
    os.utime(repo / "a.txt", (1, 1))
    names = git(*GIT_DRIVER_QUERY).stdout.split("\0")
    assert "filter.a=b.c.clean" in names
    settings = untrusted_git_settings(names)
    assert ("filter.a=b.c.clean", "") in settings and ("core.fsmonitor", "false") in settings
    env = {**os.environ, **git_config_env(settings)}
    assert git("status", "--porcelain", env=env).stdout == " M a.txt\n"
    assert not marker.exists()


# -- DNS rebinding (review finding: one refused address in an allowed name's answer was
# passed over for another, and private ones were "allowed by name") ------------------

def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Resolve every name to ``answers`` (in that order); returns the names looked up."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port or 0)) for a in answers]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(("answers", "refused"), [
    (["93.184.216.34", "10.0.0.5"], "10.0.0.5"),
    (["10.0.0.5", "93.184.216.34"], "10.0.0.5"),
    (["192.168.1.4"], "192.168.1.4"),
    (["100.64.0.1"], "100.64.0.1"),                    # shared (CGNAT)
    (["169.254.169.254"], "169.254.169.254"),          # cloud metadata
    (["::ffff:10.0.0.1"], "::ffff:a00:1"),
    (["64:ff9b::a00:1"], "64:ff9b::a00:1"),            # NAT64 of 10.0.0.1
    (["fd00::1"], "fd00::1"),                          # unique local
    (["2606:4700::1", "0.0.0.0"], "0.0.0.0"),
    (["224.0.0.1"], "224.0.0.1"),
])
def test_an_allowed_name_with_any_refused_address_is_refused(
        monkeypatch: pytest.MonkeyPatch, answers: list[str], refused: str) -> None:
    asked = _fake_dns(monkeypatch, answers)
    with pytest.raises(TargetRefused) as info:
        check_target("http://api.example/x", allow=["api.example"], field="url")
    assert str(info.value).startswith(f"url: 'api.example' resolves to {refused}, which")
    assert asked == ["api.example"]  # one lookup


@pytest.mark.parametrize(("answers", "allow", "address"), [
    (["93.184.216.34", "2606:2800:220:1::1"], [], "93.184.216.34"),
    (["127.0.0.1"], [], "127.0.0.1"),                  # loopback: reachable literally too
    (["192.168.1.4", "192.168.1.5"], ["192.168.1.0/24"], "192.168.1.4"),
])
def test_an_allowed_name_is_pinned_to_the_first_checked_address(
        monkeypatch: pytest.MonkeyPatch, answers: list[str], allow: list[str],
        address: str) -> None:
    asked = _fake_dns(monkeypatch, answers)
    target = check_target("http://api.example:8080/x", allow=["api.example", *allow])
    assert target.address == address and target.why == "allowed by 'api.example'"
    assert target.url == f"http://{address}:8080/x" and target.host_header == "api.example:8080"
    assert asked == ["api.example"]
