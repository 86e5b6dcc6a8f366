"""The browser over configured roots: listings, sorting, filtering, hidden files, and every
kind of bad path answered as a 4xx naming the field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def make_tree(root: Path) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "a report.txt").write_text("hello")
    (root / "big.bin").write_bytes(b"x" * 5000)
    (root / "small.md").write_text("#")
    (root / ".hidden").write_text("secret")
    (root / "ünïcode ✓.txt").write_text("ok")
    os.utime(root / "big.bin", (1_000_000, 1_000_000))


async def listing_sort_filter_hidden_and_two_roots(client: Any, left: Path,
                                                   right: Path) -> None:
    roots = (await client.get("roots")).json()["roots"]
    assert [(r["id"], r["path"]) for r in roots][:2] == [("0", str(left.resolve())),
                                                        ("1", str(right.resolve()))]

    listing = (await client.get("list", params={"root": "0"})).json()
    names = [e["name"] for e in listing["entries"]]
    assert names == ["docs", "big.bin", "small.md", "ünïcode ✓.txt"]
    assert listing["hidden_count"] == 1 and listing["parent"] is None
    big = next(e for e in listing["entries"] if e["name"] == "big.bin")
    assert big["size"] == 5000 and big["type"] == "file" and big["mtime"] == 1_000_000
    assert big["mode"].startswith("-rw") and big["octal"].startswith("0")
    assert listing["entries"][0]["type"] == "dir" and listing["writable"] is True

    by_size = (await client.get("list", params={"root": "0", "sort": "size",
                                                "order": "desc"})).json()
    assert [e["name"] for e in by_size["entries"]][:2] == ["docs", "big.bin"]
    by_mtime = (await client.get("list", params={"root": "0", "sort": "mtime"})).json()
    assert [e["name"] for e in by_mtime["entries"]][1] == "big.bin"

    hidden = (await client.get("list", params={"root": "0", "hidden": "true"})).json()
    assert ".hidden" in [e["name"] for e in hidden["entries"]]
    filtered = (await client.get("list", params={"root": "0", "filter": "*.md"})).json()
    assert [e["name"] for e in filtered["entries"]] == ["small.md"]
    substring = (await client.get("list", params={"root": "0", "filter": "NïC"})).json()
    assert [e["name"] for e in substring["entries"]] == ["ünïcode ✓.txt"]

    sub = (await client.get("list", params={"root": "0", "path": "docs"})).json()
    assert sub["parent"] == "" and sub["entries"][0]["path"] == "docs/a report.txt"
    other = (await client.get("list", params={"root": "1"})).json()
    assert [e["name"] for e in other["entries"]] == ["other.txt"]


async def bad_paths_are_4xx_naming_the_field(client: Any, root: Path, outside: Path) -> None:
    cases = {
        "../outside": 400, "docs/../../outside": 400, str(outside): 400, "/etc": 400,
        "a\x00b": 400, "x" * 300: 400, "escape": 400, "escape/secret.txt": 400,
        "missing": 404, "file.txt": 409,
    }
    for path, status in cases.items():
        answer = await client.get("list", params={"root": "2", "path": path})
        assert answer.status_code == status, (path, answer.text)
        assert answer.json()["field"] == "path", path
        assert answer.json()["detail"].startswith("path: ")
    for params, field in (({"root": "9"}, "root"), ({"sort": "colour"}, "sort"),
                          ({"order": "up"}, "order"), ({"hidden": "maybe"}, "hidden")):
        answer = await client.get("list", params=params)
        assert answer.status_code in (404, 422) and answer.json()["field"] == field

    # The symlink leading out is listed (so the user sees it) but marked as such.
    listing = (await client.get("list", params={"root": "2"})).json()
    link = next(e for e in listing["entries"] if e["name"] == "escape")
    assert link["type"] == "symlink" and link["link_inside"] is False

    # Copying it, or copying into it, is refused too.
    answer = await client.post("ops/copy", json={
        "root": "2", "paths": ["file.txt"], "dest_root": "2", "dest": "escape"})
    assert answer.status_code == 400 and answer.json()["field"] == "dest"
    answer = await client.post("ops/copy", json={
        "root": "2", "paths": ["../outside/secret.txt"], "dest_root": "2", "dest": ""})
    assert answer.status_code == 400 and answer.json()["field"] == "paths[0]"
    for body, field in (
            ({"root": "2", "paths": [], "dest_root": "2"}, "paths"),
            ({"root": "2", "paths": ["file.txt"], "dest_root": "2",
              "conflict": "merge"}, "conflict"),
            ({"root": "2", "path": "file.txt", "name": "a/b"}, "name"),
            ({"root": "2", "path": "file.txt", "name": ".."}, "name"),
            ({"root": "2", "path": "file.txt", "name": "n\x00"}, "name")):
        route = "ops/rename" if "name" in body else "ops/copy"
        answer = await client.post(route, json=body)
        assert 400 <= answer.status_code < 500, (body, answer.text)
        assert answer.json()["field"] == field, (body, answer.json())
    answer = await client.post("ops/copy", content=b"not json")
    assert answer.status_code == 400 and answer.json()["field"] == "body"

    # A read-only folder: 403 naming the field, never a 500 (root passes os.access,
    # so the plugin honours the mode bits itself).
    (root / "ro").chmod(0o555)
    try:
        for route, body, field in (
                ("ops/copy", {"root": "2", "paths": ["file.txt"], "dest_root": "2",
                              "dest": "ro"}, "dest"),
                ("ops/mkdir", {"root": "2", "path": "ro", "name": "new"}, "path")):
            answer = await client.post(route, json=body)
            assert answer.status_code == 403, answer.text
            assert answer.json()["field"] == field
            assert "read-only" in answer.json()["detail"]
        listing = (await client.get("list", params={"root": "2", "path": "ro"})).json()
        assert listing["writable"] is False
    finally:
        (root / "ro").chmod(0o755)


@pytest.mark.asyncio
async def test_browser_listings_and_bad_input(app, tmp_path: Path) -> None:
    left, right = tmp_path / "left", tmp_path / "right"
    root, outside = tmp_path / "root", tmp_path / "outside"
    for folder in (left, right, root, outside):
        folder.mkdir()
    make_tree(left)
    (right / "other.txt").write_text("r")
    (outside / "secret.txt").write_text("no")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "file.txt").write_text("f")
    (root / "ro").mkdir()
    # One app serves both checks: starting it is most of their time.
    async with app([left, right, root]) as (client, _plugin, _server):
        await listing_sort_filter_hidden_and_two_roots(client, left, right)
        await bad_paths_are_4xx_naming_the_field(client, root, outside)
