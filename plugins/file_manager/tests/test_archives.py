"""Archives: every format round-trips; hostile archives (zip-slip, absolute members,
links, devices, bombs) are refused naming the member, and leave nothing behind."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from file_manager import archives
from file_manager.archives import ArchiveRefused, Caps
from file_manager.worker import Ctl

CAPS = Caps(max_bytes=50 * 1024 * 1024, max_ratio=200)


def sample(root: Path) -> Path:
    src = root / "project"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "readme.md").write_text("# hi\n")
    (src / "sub" / "data ü.bin").write_bytes(bytes(range(256)) * 100)
    (src / "sub" / "deeper" / "x.txt").write_text("x")
    (src / "link").symlink_to("readme.md")
    return src


def contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("fmt", archives.CREATE_FORMATS)
def test_every_format_round_trips(tmp_path: Path, ctl: Ctl, fmt: str) -> None:
    src = sample(tmp_path)
    out = tmp_path / f"pack.{fmt}"
    made = archives.create(ctl, [src], out, fmt)
    assert made["skipped"] == [{"path": str(src / "link"),
                                "reason": "not a regular file or folder"}]
    assert archives.detect(out) == fmt
    found_fmt, found = archives.members(out)
    names = {m.name.rstrip("/") for m in found}
    assert found_fmt == fmt and "project/sub/data ü.bin" in names and "project/link" not in names
    assert archives.test(ctl, out)["ok"] is True
    top = archives.browse(found, "")
    assert [(e["name"], e["type"]) for e in top] == [("project", "dir")]
    inner = archives.browse(found, "project/sub")
    assert [(e["name"], e["type"]) for e in inner] == [("deeper", "dir"), ("data ü.bin", "file")]
    dest = tmp_path / "dest"
    dest.mkdir()
    result = archives.extract(ctl, out, dest, CAPS)
    assert result["folder"] == str(dest / "pack") and result["files"] == 3
    expected = {k: v for k, v in contents(tmp_path / "project").items() if k != "link"}
    assert contents(dest / "pack" / "project") == expected
    # Again: a second folder, never a merge into the first.
    assert archives.extract(ctl, out, dest, CAPS)["folder"] == str(dest / "pack (1)")


@pytest.mark.parametrize(("fmt", "password"), [
    *((fmt, None) for fmt in archives.CREATE_FORMATS), ("zip", "s3cret")])
def test_members_keep_their_files_times(tmp_path: Path, ctl: Ctl, fmt: str,
                                        password: str | None) -> None:
    """An encrypted zip dated every member 1980-01-01 and a 7z the time it was made."""
    src = sample(tmp_path)
    when = 1_588_672_800  # 2020-05-05 10:00 UTC, even: zip keeps 2-second steps
    os.utime(src / "readme.md", (when, when))
    out = tmp_path / f"timed.{fmt}"
    archives.create(ctl, [src], out, fmt, password)
    _fmt, found = archives.members(out)
    readme = next(m for m in found if m.name == "project/readme.md")
    assert readme.mtime is not None and abs(readme.mtime - when) <= 2, (fmt, readme.mtime)


def zip_with(tmp_path: Path, name: str, data: bytes = b"evil", *, mode: int | None = None,
             compress: int = zipfile.ZIP_DEFLATED) -> Path:
    path = tmp_path / f"hostile{len(list(tmp_path.iterdir()))}.zip"
    with zipfile.ZipFile(path, "w", compress) as zf:
        zf.writestr("fine.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        info.compress_type = compress
        zf.writestr(info, data)
    return path


def tar_with(tmp_path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / f"hostile{len(list(tmp_path.iterdir()))}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 4
        tar.addfile(ok, io.BytesIO(b"fine"))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def tarinfo(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def hostile(tmp_path: Path) -> list[tuple[Path, str, str]]:
    """(archive, the member it must name, words of the reason)."""
    return [
        (zip_with(tmp_path, "../../evil.txt"), "../../evil.txt", "outside"),
        (zip_with(tmp_path, "a/../../evil.txt"), "a/../../evil.txt", "outside"),
        (zip_with(tmp_path, "/etc/evil"), "/etc/evil", "absolute"),
        (zip_with(tmp_path, "C:/evil"), "C:/evil", "drive letter"),
        (zip_with(tmp_path, "link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777), "link",
         "symlink"),
        (zip_with(tmp_path, "bomb.bin", b"\0" * (20 * 1024 * 1024)), "bomb.bin", "bomb"),
        (tar_with(tmp_path, tarinfo("/abs/evil.txt"), b"x"), "/abs/evil.txt", "absolute"),
        (tar_with(tmp_path, tarinfo("../up.txt"), b"x"), "../up.txt", "outside"),
        (tar_with(tmp_path, tarinfo("sym", tarfile.SYMTYPE, "/etc/passwd")), "sym", "symlink"),
        (tar_with(tmp_path, tarinfo("hard", tarfile.LNKTYPE, "fine.txt")), "hard", "hardlink"),
        (tar_with(tmp_path, tarinfo("dev", tarfile.CHRTYPE)), "dev", "device"),
        (tar_with(tmp_path, tarinfo("pipe", tarfile.FIFOTYPE)), "pipe", "fifo"),
    ]


def test_extracted_files_get_the_users_modes_and_a_repeated_member_the_last_copy(
        tmp_path: Path, ctl: Ctl, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit: everything extracted was private (the app's umask 077), so a script from a
    tarball lost its execute bits; and a member appended again (tar rf) failed the whole
    extraction with a hidden temp folder's path."""
    from plexichat_desktop.core.permissions import USER_UMASK_ENV

    monkeypatch.setenv(USER_UMASK_ENV, "0o022")  # what a desktop session usually has
    path = tmp_path / "proj.tar"
    with tarfile.open(path, "w") as tar:
        for name, data, mode in (("proj/run.sh", b"#!/bin/sh\n", 0o4755),
                                 ("proj/notes.txt", b"first", 0o600),
                                 ("proj/notes.txt", b"second", 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "out"
    dest.mkdir()
    done = archives.extract(ctl, path, dest, CAPS)
    assert done["files"] == 2, done  # files on disk: the repeated one was counted twice
    folder = Path(done["folder"])
    modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [folder, *folder.rglob("*")]}
    # The script stays executable, never setuid; the folders are the session's 0755.
    assert modes == {".": 0o755, "proj": 0o755, "proj/run.sh": 0o755,
                     "proj/notes.txt": 0o644}
    assert (folder / "proj" / "notes.txt").read_bytes() == b"second"


def test_hostile_archives_are_refused_naming_the_member(tmp_path: Path, ctl: Ctl) -> None:
    made = tmp_path / "archives"
    made.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    for path, member, words in hostile(made):
        with pytest.raises(ArchiveRefused) as caught:
            archives.extract(ctl, path, dest, CAPS)
        assert caught.value.member == member, (path, caught.value)
        assert words in str(caught.value), str(caught.value)
        assert member in str(caught.value)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_size_cap_and_lying_headers(tmp_path: Path, ctl: Ctl) -> None:
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("one.bin", b"1" * 3000)
        zf.writestr("two.bin", b"2" * 3000)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveRefused) as caught:
        archives.extract(ctl, big, dest, Caps(max_bytes=4000, max_ratio=200))
    assert caught.value.member == "two.bin" and "4000" in str(caught.value)

    # A header that under-states the size: the bytes really written are counted.
    class Lying(archives._Budget):
        pass

    budget = Lying(ctl, Caps(max_bytes=1000, max_ratio=200), 10, 10)
    with pytest.raises(ArchiveRefused) as caught:
        budget.copy(io.BytesIO(b"z" * 5000), dest / "out.bin",
                    archives.Member("liar.bin", "file", 10))
    assert caught.value.member == "liar.bin" and "the header said 10" in str(caught.value)


def test_corrupt_archive_fails_its_test(tmp_path: Path, ctl: Ctl) -> None:
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data.txt", b"A" * 1000)
    raw = bytearray(good.read_bytes())
    raw[raw.index(b"AAAA") + 10] = ord("B")  # same size, wrong CRC
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    assert archives.test(ctl, good)["ok"] is True
    result = archives.test(ctl, bad)
    assert result["ok"] is False and "CRC" in result["error"]
    (tmp_path / "not.zip").write_text("plain text")
    with pytest.raises(archives.ArchiveError, match="cannot be read as zip"):
        archives.members(tmp_path / "not.zip")


async def finished(client: Any, answer: Any) -> dict[str, Any]:
    assert answer.status_code in (200, 202), answer.text
    job = answer.json()
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        await asyncio.sleep(0.05)
        job = (await client.get(f"_host/jobs/{job['id']}")).json()
    return job


@pytest.mark.asyncio
async def test_archive_routes_create_browse_test_extract_and_refuse(app, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    sample(root)
    hostile_zip = zip_with(root, "../../evil.txt")
    async with app([root], max_ratio=50.0) as (client, _plugin, _rt):
        caps = (await client.get("roots")).json()["capabilities"]
        assert caps["create_formats"] == list(archives.CREATE_FORMATS)
        job = await finished(client, await client.post("archive/create?wait=true", json={
            "root": "0", "paths": ["project"], "dest_root": "0", "name": "backup",
            "format": "tar.xz"}))
        assert job["state"] == "succeeded" and job["result"]["members"] == 6, job
        assert (root / "backup.tar.xz").is_file()

        listing = (await client.get("archive/list", params={
            "root": "0", "path": "backup.tar.xz", "inner": "project/sub"})).json()
        assert listing["format"] == "tar.xz" and listing["refused"] is None
        assert [e["name"] for e in listing["entries"]] == ["deeper", "data ü.bin"]

        job = await finished(client, await client.post("archive/test?wait=true", json={
            "root": "0", "path": "backup.tar.xz"}))
        assert job["result"]["ok"] is True

        job = await finished(client, await client.post("archive/extract?wait=true", json={
            "root": "0", "path": "backup.tar.xz", "dest_root": "0", "dest": ""}))
        assert job["state"] == "succeeded" and (root / "backup" / "project" / "readme.md").exists()
        await finished(client, await client.post("ops/undo?wait=true"))
        assert not (root / "backup").exists()

        refused = await client.post("archive/extract", json={
            "root": "0", "path": hostile_zip.name, "dest_root": "0"})
        assert refused.status_code == 422
        assert refused.json()["member"] == "../../evil.txt" and refused.json()["field"] == "path"
        listing = (await client.get("archive/list", params={
            "root": "0", "path": hostile_zip.name})).json()
        assert listing["refused"]["member"] == "../../evil.txt"

        for params, status, field in (({"path": "project/readme.md"}, 415, "path"),
                                      ({"path": "nothing.zip"}, 404, "path"),
                                      ({"path": "../x.zip"}, 400, "path")):
            answer = await client.get("archive/list", params={"root": "0", **params})
            assert answer.status_code == status and answer.json()["field"] == field
        job = await finished(client, await client.post("archive/create?wait=true", json={
            "root": "0", "paths": ["project/readme.md"], "dest_root": "0", "name": "locked",
            "format": "zip", "password": "pw"}))
        assert job["result"]["encrypted"] is True
        for password, status in ((None, 422), ("nope", 422)):
            answer = await client.post("archive/extract", json={
                "root": "0", "path": "locked.zip", "dest_root": "0", "password": password})
            assert answer.status_code == status and answer.json()["field"] == "password"
        job = await finished(client, await client.post("archive/extract?wait=true", json={
            "root": "0", "path": "locked.zip", "dest_root": "0", "password": "pw"}))
        assert (root / "locked" / "readme.md").exists()
        answer = await client.post("archive/create", json={
            "root": "0", "paths": ["project"], "dest_root": "0", "name": "c",
            "format": "tar.gz", "password": "pw"})
        assert answer.status_code == 422 and answer.json()["field"] == "password"
        answer = await client.post("archive/create", json={
            "root": "0", "paths": ["project"], "dest_root": "0", "name": "b", "format": "rar"})
        assert answer.status_code == 422 and answer.json()["field"] == "format"
        answer = await client.post("archive/create", json={
            "root": "0", "paths": ["project"], "dest_root": "0", "name": "backup.tar.xz",
            "format": "tar.xz"})
        assert answer.status_code == 409 and answer.json()["field"] == "name"


@pytest.mark.skipif(not archives.has_aes(), reason="pyzipper is not installed")
def test_aes_zip_round_trip_and_wrong_password(tmp_path: Path, ctl: Ctl) -> None:
    src = sample(tmp_path)
    out = tmp_path / "secret.zip"
    made = archives.create(ctl, [src], out, "zip", "s3cret pässword")
    assert made["encrypted"] is True
    _fmt, found = archives.members(out)  # names are readable, contents are not
    assert all(m.encrypted for m in found if m.type == "file")
    with zipfile.ZipFile(out) as plain, pytest.raises(RuntimeError):
        plain.read("project/readme.md")
    for password, words in ((None, "give the password"), ("wrong", "wrong password")):
        with pytest.raises(archives.PasswordError, match=words):
            archives.check_password(out, password)
    archives.check_password(out, "s3cret pässword")
    assert archives.test(ctl, out, "s3cret pässword")["ok"] is True
    assert archives.test(ctl, out, "wrong")["ok"] is False
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(archives.PasswordError):
        archives.extract(ctl, out, dest, CAPS, "wrong")
    assert list(dest.iterdir()) == []
    archives.extract(ctl, out, dest, CAPS, "s3cret pässword")
    assert (dest / "secret" / "project" / "readme.md").read_text() == "# hi\n"


def test_missing_optional_packages_turn_formats_off_with_the_reason(
        tmp_path: Path, ctl: Ctl, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for module in ("py7zr", "zstandard", "pyzipper"):
        monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    assert not archives.available("7z") and not archives.available("tar.zst")
    assert archives.available("zip") and not archives.has_aes()
    src = sample(tmp_path)
    for fmt, package in (("7z", "py7zr"), ("tar.zst", "zstandard")):
        with pytest.raises(archives.ArchiveError, match=f"needs the {package} package"):
            archives.create(ctl, [src], tmp_path / f"x.{fmt}", fmt)
        assert not (tmp_path / f"x.{fmt}").exists()
    with pytest.raises(archives.ArchiveError, match="pyzipper"):
        archives.create(ctl, [src], tmp_path / "x.zip", "zip", "pw")
    assert not list(tmp_path.glob("*.fm-part-*"))


# -- member count cap (review finding: listing millions of members blew up memory) ---------

def _many(tmp_path: Path, fmt: str, count: int) -> Path:
    if fmt == "zip":
        out = tmp_path / "many.zip"
        with zipfile.ZipFile(out, "w") as zf:
            for i in range(count):
                zf.writestr(f"f{i}", b"")
        return out
    out = tmp_path / "many.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for i in range(count):
            tar.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
    return out


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_an_archive_with_too_many_members_is_refused_naming_the_count(
        tmp_path: Path, ctl: Ctl, fmt: str) -> None:
    path = _many(tmp_path, fmt, 30)
    assert len(archives.members(path, max_members=30)[1]) == 30
    with pytest.raises(archives.TooManyMembers, match="more than the limit of 29"):
        archives.members(path, max_members=29)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(archives.TooManyMembers):
        archives.extract(ctl, path, dest, Caps(CAPS.max_bytes, CAPS.max_ratio, 10))
    assert list(dest.iterdir()) == []


def test_a_zip_whose_end_record_understates_its_members_is_still_counted(
        tmp_path: Path) -> None:
    path = _many(tmp_path, "zip", 20)
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 8:end + 12] = (1).to_bytes(2, "little") * 2  # "1 entry" on disk and total
    path.write_bytes(bytes(data))
    with pytest.raises(archives.TooManyMembers, match="more than 5 members"):
        archives.members(path, max_members=5)
    honest = tmp_path / "honest"
    honest.mkdir()
    with pytest.raises(archives.TooManyMembers, match="has 12 members"):
        archives.members(_many(honest, "zip", 12), max_members=11)


@pytest.mark.asyncio
async def test_the_listing_route_refuses_too_many_members_as_422(app, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _many(root, "zip", 12)
    async with app([root], max_members=10) as (client, _plugin, _server):
        answer = await client.get("archive/list", params={"root": "0", "path": "many.zip"})
    assert answer.status_code == 422, answer.text
    assert "has 12 members, more than the limit of 10" in answer.json()["detail"]


@pytest.mark.parametrize("fmt", archives.CREATE_FORMATS)
def test_a_file_swapped_for_a_symlink_after_listing_is_not_packed(
        tmp_path: Path, ctl: Ctl, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review finding: create() lstat'ed every source, then opened it by path later: a
    # file swapped for a link in between packed whatever the link pointed at.
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the chosen folders")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("plain")
    real_walk = archives._walk

    def walk_then_swap(sources: list[Path]) -> Any:
        yield from real_walk(sources)
        (src / "a.txt").unlink()  # runs once every entry was listed, before packing
        (src / "a.txt").symlink_to(secret)

    monkeypatch.setattr(archives, "_walk", walk_then_swap)
    out = tmp_path / f"out.{fmt}"
    with pytest.raises(archives.ArchiveError, match=r"'src/a\.txt' became a symlink"):
        archives.create(ctl, [src], out, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt", "src"]
