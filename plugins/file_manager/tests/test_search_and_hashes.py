"""Search (name glob/regex, content, .gitignore, binary and size skips, streamed over SSE)
and metadata: SHA-256/BLAKE3 digests and the duplicate finder."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from file_manager import hashing, search
from file_manager.worker import Ctl

from plexichat_desktop.plugins.sse import read_events


def project(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "build").mkdir()
    (root / "src" / "main.py").write_text("import os\nTODO = 'fix me'\nprint('todo later')\n")
    (root / "src" / "pkg" / "util.py").write_text("def helper():\n    return 'TODO'\n")
    (root / "src" / "notes.txt").write_text("nothing here\n")
    (root / "src" / "blob.bin").write_bytes(b"TODO\x00\x01binary")
    (root / "src" / "huge.log").write_text("TODO\n" * 5000)
    (root / "build" / "out.py").write_text("TODO generated\n")
    (root / "src" / "pkg" / "cache.tmp").write_text("TODO tmp\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "src" / ".gitignore").write_text("*.tmp\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("TODO inside git\n")


def run(ctl: Ctl, root: Path, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    hits: list[dict[str, Any]] = []
    query = search.Query(**{"name": None, "content": None, "max_file_bytes": 10_000,
                            "max_results": 100, **kwargs})
    summary = search.search(ctl, root, root, query,
                            lambda name, data: hits.append(data) if name == "match" else None)
    return hits, summary


def test_name_and_content_search_respects_gitignore_binary_and_size(tmp_path: Path,
                                                                    ctl: Ctl) -> None:
    project(tmp_path)
    hits, _ = run(ctl, tmp_path, name=search.compile_name("*.py", "glob", False))
    assert sorted(h["path"] for h in hits) == ["src/main.py", "src/pkg/util.py"]
    hits, _ = run(ctl, tmp_path, name=search.compile_name(r"^u.*\.py$", "regex", False))
    assert [h["path"] for h in hits] == ["src/pkg/util.py"]
    hits, _ = run(ctl, tmp_path, name=search.compile_name("PKG", "glob", False))
    assert [(h["path"], h["type"]) for h in hits] == [("src/pkg", "dir")]

    hits, summary = run(ctl, tmp_path, content=search.compile_content("todo", "text", False))
    assert sorted(h["path"] for h in hits) == ["src/main.py", "src/pkg/util.py"]
    main = next(h for h in hits if h["path"] == "src/main.py")
    assert [line["line"] for line in main["lines"]] == [2, 3]
    assert summary["skipped"]["binary"] == 1 and summary["skipped"]["too_large"] == 1
    assert summary["skipped"]["ignored"] == 2  # build/ and cache.tmp

    hits, _ = run(ctl, tmp_path, content=search.compile_content("TODO", "text", True),
                  gitignore=False)
    assert "build/out.py" in {h["path"] for h in hits}
    assert not any(h["path"].startswith(".git/") for h in hits)
    hits, summary = run(ctl, tmp_path, content=search.compile_content("TODO", "text", False),
                        max_results=1)
    assert len(hits) == 1 and summary["truncated"] is True


def test_digests_and_duplicates(tmp_path: Path, ctl: Ctl) -> None:
    data = b"same content " * 10_000
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.bin").write_bytes(data)
    (tmp_path / "two.bin").write_bytes(data)
    (tmp_path / "three.bin").write_bytes(data)
    (tmp_path / "same size.bin").write_bytes(data[:-1] + b"X")  # same size, other bytes
    (tmp_path / "small.txt").write_text("x")
    (tmp_path / "also small.txt").write_text("x")
    algorithms = ["sha256", "blake3"] if hashing.has_blake3() else ["sha256"]
    result = hashing.digests(ctl, tmp_path / "two.bin", algorithms)
    assert result["sha256"] == hashlib.sha256(data).hexdigest() and result["size"] == len(data)
    if hashing.has_blake3():
        import blake3
        assert result["blake3"] == blake3.blake3(data).hexdigest()

    found = hashing.duplicates(ctl, tmp_path, tmp_path, min_size=2)
    assert [g["paths"] for g in found["groups"]] == [["a/one.bin", "three.bin", "two.bin"]]
    assert found["wasted"] == 2 * len(data)
    with_small = hashing.duplicates(ctl, tmp_path, tmp_path, min_size=1)
    assert len(with_small["groups"]) == 2
    # A hard link is the same file under another name (audit: counted as a duplicate,
    # "wasted" overstated: deleting it frees nothing).
    os.link(tmp_path / "two.bin", tmp_path / "hard.bin")
    linked = hashing.duplicates(ctl, tmp_path, tmp_path, min_size=2)
    [group] = linked["groups"]
    assert linked["wasted"] == 2 * len(data) and len(group["paths"]) == 3
    assert group["hard_links"] in ({"two.bin": ["hard.bin"]}, {"hard.bin": ["two.bin"]})


@pytest.mark.asyncio
async def test_search_streams_over_the_app_and_refuses_bad_patterns(app, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    project(root)
    async with app([root]) as (client, _plugin, _rt):
        events: list[tuple[str, Any]] = []
        async with client.stream("GET", "search", params={
                "root": "0", "content": "todo", "name": "*.py"}) as answer, \
                asyncio.timeout(20):
            assert answer.status_code == 200
            async for name, data in read_events(answer):
                events.append((name, data))
                if name in ("done", "error"):
                    break
        names = [n for n, _ in events]
        assert names[0] == "start" and names[-1] == "done"
        assert sorted(d["path"] for n, d in events if n == "match") == [
            "src/main.py", "src/pkg/util.py"]
        assert events[-1][1]["matches"] == 2

        for params, field in (({"name": "(unclosed", "mode": "regex"}, "name"),
                              ({"content": "[x", "content_mode": "regex"}, "content"),
                              ({}, "name"), ({"name": "a", "mode": "fuzzy"}, "mode"),
                              ({"name": "a", "path": "../.."}, "path"),
                              ({"name": "a", "gitignore": "perhaps"}, "gitignore")):
            answer = await client.get("search", params={"root": "0", **params})
            assert 400 <= answer.status_code < 500, (params, answer.text)
            assert answer.json()["field"] == field

        job = (await client.post("hash?wait=true", json={
            "root": "0", "path": "src/main.py", "algorithms": ["sha256"]})).json()
        assert job["result"]["sha256"] == hashlib.sha256(
            (root / "src" / "main.py").read_bytes()).hexdigest()
        answer = await client.post("hash", json={"root": "0", "path": "src",
                                                 "algorithms": ["sha256"]})
        assert answer.status_code == 404 and answer.json()["field"] == "path"
        answer = await client.post("hash", json={"root": "0", "path": "src/main.py",
                                                 "algorithms": ["crc32"]})
        assert answer.status_code == 422 and answer.json()["field"].startswith("algorithms")
        answer = await client.get("metadata", params={"root": "0", "path": "src/main.py"})
        assert answer.status_code == 200 and answer.json()["kind"] is None
        assert answer.json()["size"] == (root / "src" / "main.py").stat().st_size
        answer = await client.get("metadata", params={"root": "0", "path": "src"})
        assert answer.status_code == 404 and answer.json()["field"] == "path"
        (root / "copy.py").write_bytes((root / "src" / "main.py").read_bytes())
        job = (await client.post("duplicates?wait=true", json={"root": "0"})).json()
        assert job["result"]["groups"][0]["paths"] == ["copy.py", "src/main.py"]


def media(folder: Path) -> None:
    """A JPEG with EXIF, a PDF with document info, a WAV with ID3 tags, made here."""
    import wave

    from mutagen.id3 import TIT2, TPE1
    from mutagen.wave import WAVE
    from PIL import Image
    from pypdf import PdfWriter

    exif = Image.Exif()
    exif[0x010F] = "Acme"  # Make
    exif[0x0110] = "Model X"  # Model
    Image.new("RGB", (4, 3), "red").save(folder / "photo.jpg", exif=exif)
    writer = PdfWriter()
    writer.add_blank_page(72, 72)
    writer.add_blank_page(72, 72)
    writer.add_metadata({"/Title": "Quarterly report", "/Author": "Ann"})
    with open(folder / "report.pdf", "wb") as fh:
        writer.write(fh)
    with wave.open(str(folder / "song.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    audio = WAVE(folder / "song.wav")
    audio.add_tags()
    audio.tags.add(TIT2(encoding=3, text="Song title"))
    audio.tags.add(TPE1(encoding=3, text="The Band"))
    audio.save()


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("PIL", "pypdf", "mutagen")),
                    reason="pillow, pypdf or mutagen is not installed")
def test_exif_pdf_info_and_audio_tags(tmp_path: Path) -> None:
    from file_manager import metadata

    media(tmp_path)
    image = metadata.read(tmp_path / "photo.jpg")
    assert image["kind"] == "image" and image["fields"]["Make"] == "Acme"
    assert image["fields"]["Model"] == "Model X" and image["fields"]["Size"] == "4 x 3"
    pdf = metadata.read(tmp_path / "report.pdf")
    assert pdf["fields"]["Title"] == "Quarterly report" and pdf["fields"]["Pages"] == "2"
    audio = metadata.read(tmp_path / "song.wav")
    assert audio["fields"]["TIT2"] == "Song title" and audio["fields"]["TPE1"] == "The Band"
    assert audio["fields"]["Length"] == "1.0 s"
    (tmp_path / "broken.pdf").write_text("not a pdf")
    broken = metadata.read(tmp_path / "broken.pdf")
    assert broken["fields"] == {} and broken["error"]
    assert metadata.read(tmp_path / "notes.txt") == {"kind": None, "fields": {},
                                                      "missing": None}


def test_a_gitignore_that_is_no_regular_file_or_too_big_is_not_read(tmp_path: Path,
                                                                      ctl: Ctl) -> None:
    # Review finding: a .gitignore linked to /dev/zero or made a FIFO was read without
    # end (or blocked the walk waiting for a writer). Only regular files, capped, count.
    import os

    for folder in "abcd":
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.txt").write_text("x\n")
    (tmp_path / "real").write_text("x.txt\n")
    (tmp_path / "a" / ".gitignore").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "b" / ".gitignore")
    (tmp_path / "c" / ".gitignore").symlink_to(tmp_path / "real")  # git skips these too
    (tmp_path / "d" / ".gitignore").write_text("x.txt\n" + "#" * search.MAX_GITIGNORE_BYTES)
    hits, _ = run(ctl, tmp_path, name=search.compile_name("x.txt", "glob", True))
    assert sorted(h["path"] for h in hits) == ["a/x.txt", "b/x.txt", "c/x.txt", "d/x.txt"]
    (tmp_path / "d" / ".gitignore").write_text("x.txt\n")
    hits, _ = run(ctl, tmp_path, name=search.compile_name("x.txt", "glob", True))
    assert sorted(h["path"] for h in hits) == ["a/x.txt", "b/x.txt", "c/x.txt"]


# A line of many a's and a '!': '^(a+)+$' backtracks over it for 2**40 steps.
BACKTRACKS = "a" * 40 + "!"


def test_a_backtracking_regex_skips_the_file_after_its_time(tmp_path: Path,
                                                            ctl: Ctl) -> None:
    # Review finding: a user regex could backtrack for hours on one file.
    (tmp_path / "bad.txt").write_text(f"{BACKTRACKS}\n")
    (tmp_path / "good.txt").write_text("aaa\n")
    hits, summary = run(ctl, tmp_path, regex_seconds=0.2,
                        content=search.compile_content("^(a+)+$", "regex", True))
    assert [h["path"] for h in hits] == ["good.txt"]
    assert summary["skipped"]["regex_timeout"] == 1
    (tmp_path / BACKTRACKS).write_text("")  # a name backtracks the same way
    hits, summary = run(ctl, tmp_path, regex_seconds=0.2,
                        name=search.compile_name("^(a+)+$", "regex", True))
    assert hits == [] and summary["skipped"]["regex_timeout"] == 1


@pytest.mark.asyncio
async def test_the_app_runs_a_search_in_its_own_process_with_a_time_bound(
        app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review finding: the search ran on the shared default executor, where a backtracking
    # pattern held a thread every other plugin needs.
    root = tmp_path / "root"
    root.mkdir()
    (root / "bad.txt").write_text(f"{BACKTRACKS}\n")
    (root / "good.txt").write_text("aaa\n")
    async with app([root], search_regex_seconds=0.2) as (client, _plugin, _rt):
        loop = asyncio.get_running_loop()

        def no_executor(*_args: Any) -> Any:
            raise AssertionError("the search used the shared default executor")

        events: list[tuple[str, Any]] = []
        with monkeypatch.context() as patched:
            patched.setattr(loop, "run_in_executor", no_executor)
            async with client.stream("GET", "search", params={
                    "root": "0", "content": "^(a+)+$", "content_mode": "regex",
                    "case": "true"}) as answer, asyncio.timeout(60):
                assert answer.status_code == 200
                async for name, data in read_events(answer):
                    events.append((name, data))
                    if name in ("done", "error"):
                        break
    assert events[-1][0] == "done", events
    assert [d["path"] for n, d in events if n == "match"] == ["good.txt"]
    assert events[-1][1]["skipped"]["regex_timeout"] == 1
