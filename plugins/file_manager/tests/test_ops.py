"""Copy, move, rename, mkdir and trash as jobs: conflict policies, atomic writes, cancel
that leaves nothing partial, and one-step undo of each."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from file_manager import ops
from file_manager.worker import Cancelled, Ctl


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> text), for before/after comparisons."""
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() or p.is_symlink()}


def parts_left(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ops.PART_MARK in p.name]


def mover(ctl: Ctl, conflict: str, tmp: Path, move: bool = False) -> tuple[ops.Mover, Any]:
    record = ops.UndoRecord("copy", "test", stash_dir=str(tmp / "stash"))
    return ops.Mover(ctl, conflict, record, tmp / "stash", move=move, total=0), record


@pytest.mark.parametrize("conflict", ["skip", "rename", "overwrite"])
def test_conflict_policies_and_their_undo(tmp_path: Path, ctl: Ctl, conflict: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "folder" / "deep").mkdir(parents=True)
    dst.mkdir()
    (src / "a.txt").write_text("new a")
    (src / "folder" / "deep" / "x.txt").write_text("new x")
    (src / "folder" / "y.txt").write_text("new y")
    (src / "link").symlink_to("a.txt")
    (dst / "a.txt").write_text("old a")
    (dst / "folder").mkdir()
    (dst / "folder" / "y.txt").write_text("old y")
    (dst / "folder" / "keep.txt").write_text("keep")
    before = tree(dst)

    run, record = mover(ctl, conflict, tmp_path)
    out = run.run([(src / "a.txt", dst), (src / "folder", dst), (src / "link", dst)])
    after = tree(dst)
    if conflict == "skip":
        assert {s["path"] for s in out.skipped} == {str(src / "a.txt"), str(src / "folder")}
        assert after == {**before, "link": "old a"}  # a relative link: dst's a.txt
    elif conflict == "rename":
        assert after == {**before, "a (1).txt": "new a", "folder (1)/y.txt": "new y",
                         "folder (1)/deep/x.txt": "new x", "link": "old a"}
    else:
        # Folders merge; files are replaced; the old versions wait in the undo stash.
        assert after == {"a.txt": "new a", "folder/y.txt": "new y", "folder/keep.txt": "keep",
                         "folder/deep/x.txt": "new x", "link": "new a"}
        assert len(record.stashed) == 2
    assert (dst / "link").is_symlink() and str((dst / "link").readlink()) == "a.txt"
    assert tree(src)["a.txt"] == "new a" and not parts_left(dst)

    result = ops.undo(ctl, record)
    assert result["problems"] == [] and tree(dst) == before


def test_move_with_overwrite_and_undo(tmp_path: Path, ctl: Ctl) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    dst.mkdir()
    (src / "d" / "f.txt").write_text("moving")
    (src / "g.txt").write_text("g new")
    (dst / "g.txt").write_text("g old")
    src_before, dst_before = tree(src), tree(dst)
    run, record = mover(ctl, "overwrite", tmp_path, move=True)
    run.run([(src / "d", dst), (src / "g.txt", dst)])
    assert tree(src) == {} and tree(dst) == {"d/f.txt": "moving", "g.txt": "g new"}
    assert ops.undo(ctl, record)["problems"] == []
    assert tree(src) == src_before and tree(dst) == dst_before


class StopAfterFirstChunk(Ctl):
    def __init__(self) -> None:
        super().__init__(None, None)

    def progress(self, done: float, total: float | None, message: str | None = None,
                 *, force: bool = False) -> None:
        if done:
            self.cancel_event.set()


def test_cancel_mid_file_leaves_no_partial_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "CHUNK", 1024 * 1024)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "big.bin").write_bytes(b"\1" * (8 * 1024 * 1024))
    run, record = mover(StopAfterFirstChunk(), "skip", tmp_path)
    with pytest.raises(Cancelled):
        run.run([(src / "big.bin", dst)])
    assert list(dst.iterdir()) == [] and record.empty


def test_an_overwrite_that_does_not_happen_leaves_the_file_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit: the file to be overwritten went to the undo stash first; when the copy
    failed (or its source was skipped) it stayed there, gone from the folder, and the
    next operation deleted the stash with it."""
    monkeypatch.setattr(ops, "CHUNK", 1024 * 1024)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "big.bin").write_bytes(b"\1" * (8 * 1024 * 1024))
    (dst / "big.bin").write_bytes(b"old big")
    run, record = mover(StopAfterFirstChunk(), "overwrite", tmp_path)
    with pytest.raises(Cancelled):
        run.run([(src / "big.bin", dst)])
    assert (dst / "big.bin").read_bytes() == b"old big" and record.stashed == []
    assert not parts_left(dst)
    # A source that is no regular file (here a FIFO) is skipped: the target stays too.
    os.mkfifo(src / "pipe")
    (dst / "pipe").write_text("old pipe")
    run, record = mover(Ctl(None, None), "overwrite", tmp_path)
    out = run.run([(src / "pipe", dst)])
    assert [s["path"] for s in out.skipped] == [str(src / "pipe")]
    assert (dst / "pipe").read_text() == "old pipe" and record.stashed == []


def test_a_folder_over_a_file_keeps_what_arrived_and_undo_brings_the_file_back(
        tmp_path: Path, ctl: Ctl) -> None:
    """Review: putting the file back when a folder replacing it had a skipped child
    deleted the folder's copied files, left the folder in the undo list, and the undo
    then deleted the restored file for good."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "X").mkdir(parents=True)
    dst.mkdir()
    (src / "X" / "a.txt").write_text("a")
    os.mkfifo(src / "X" / "pipe")
    (dst / "X").write_text("USER ORIGINAL")
    run, record = mover(ctl, "overwrite", tmp_path)
    out = run.run([(src / "X", dst)])
    assert [s["path"] for s in out.skipped] == [str(src / "X" / "pipe")]
    assert tree(dst) == {"X/a.txt": "a"} and len(record.stashed) == 1
    assert ops.undo(ctl, record)["problems"] == []
    assert tree(dst) == {"X": "USER ORIGINAL"}


def test_undo_of_a_copy_keeps_what_was_added_or_edited_since(tmp_path: Path,
                                                             ctl: Ctl) -> None:
    """Audit: undoing an old copy deleted the copied folder with the files added to it
    and the edits made since, for good (not even to the trash)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "work").mkdir(parents=True)
    (src / "plain").mkdir()
    dst.mkdir()
    (src / "work" / "a.txt").write_text("a")
    (src / "plain" / "b.txt").write_text("b")
    (src / "c.txt").write_text("c")
    run, record = mover(ctl, "skip", tmp_path)
    run.run([(src / "work", dst), (src / "plain", dst), (src / "c.txt", dst)])
    (dst / "work" / "my_new_work.txt").write_text("mine")
    result = ops.undo(ctl, record)
    assert tree(dst) == {"work/a.txt": "a", "work/my_new_work.txt": "mine"}
    assert len(result["problems"]) == 1 and "work changed since the copy" in \
        result["problems"][0]


def test_unique_names_and_dotfiles() -> None:
    assert ops.unique_name(Path("/nonexistent/a.txt")).name == "a (1).txt"
    assert ops.unique_name(Path("/nonexistent/.bashrc")).name == ".bashrc (1)"
    assert ops.unique_name(Path("/nonexistent/archive.tar.gz")).name == "archive.tar (1).gz"


async def finished(client: Any, answer: Any) -> dict[str, Any]:
    assert answer.status_code in (200, 202), answer.text
    job = answer.json()
    for _ in range(600):
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
        job = (await client.get(f"_host/jobs/{job['id']}")).json()
    raise AssertionError(f"job never finished: {job}")


@pytest.mark.asyncio
async def test_jobs_through_the_app_with_undo_and_trash(app, tmp_path: Path,
                                                        trash_home: Path) -> None:
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "in" / "note with spaces.txt").write_text("n")
    (root / "in" / "ü.txt").write_text("u")
    async with app([root]) as (client, plugin, _rt):
        assert (await client.get("ops/undo")).json() == {"undo": None}
        assert (await client.post("ops/undo")).status_code == 409

        job = await finished(client, await client.post("ops/copy?wait=true", json={
            "root": "0", "paths": ["in/note with spaces.txt", "in/ü.txt"],
            "dest_root": "0", "dest": "out"}))
        assert job["state"] == "succeeded" and job["result"]["bytes"] == 2
        assert tree(root / "out") == {"note with spaces.txt": "n", "ü.txt": "u"}
        # The same again with "rename" keeps both.
        job = await finished(client, await client.post("ops/copy?wait=true", json={
            "root": "0", "paths": ["in/ü.txt"], "dest_root": "0", "dest": "out",
            "conflict": "rename"}))
        assert (root / "out" / "ü (1).txt").exists()
        undo = (await client.get("ops/undo")).json()["undo"]
        assert undo["kind"] == "copy" and undo["count"] == 1
        job = await finished(client, await client.post("ops/undo?wait=true"))
        assert job["result"]["restored"] == 1 and not (root / "out" / "ü (1).txt").exists()

        job = await finished(client, await client.post("ops/rename?wait=true", json={
            "root": "0", "path": "out/ü.txt", "name": "renamed.txt"}))
        assert (root / "out" / "renamed.txt").exists()
        answer = await client.post("ops/rename", json={
            "root": "0", "path": "out/renamed.txt", "name": "note with spaces.txt"})
        assert answer.status_code == 409 and answer.json()["field"] == "name"
        await finished(client, await client.post("ops/undo?wait=true"))
        assert (root / "out" / "ü.txt").exists() and not (root / "out" / "renamed.txt").exists()

        await finished(client, await client.post("ops/mkdir?wait=true", json={
            "root": "0", "path": "out", "name": "new folder"}))
        assert (root / "out" / "new folder").is_dir()
        await finished(client, await client.post("ops/undo?wait=true"))
        assert not (root / "out" / "new folder").exists()

        job = await finished(client, await client.post("ops/move?wait=true", json={
            "root": "0", "paths": ["out/ü.txt"], "dest_root": "0", "dest": ""}))
        assert (root / "ü.txt").exists() and not (root / "out" / "ü.txt").exists()
        answer = await client.post("ops/move", json={
            "root": "0", "paths": ["in"], "dest_root": "0", "dest": "in"})
        assert answer.status_code == 409 and "into itself" in answer.json()["detail"]
        for route, conflict in (("ops/move", "skip"), ("ops/copy", "overwrite")):
            answer = await client.post(route, json={
                "root": "0", "paths": ["ü.txt"], "dest_root": "0", "dest": "",
                "conflict": conflict})
            assert answer.status_code == 409 and answer.json()["field"] == "dest", answer.text
        # Copy into the same folder with "keep both" is a duplicate.
        await finished(client, await client.post("ops/copy?wait=true", json={
            "root": "0", "paths": ["ü.txt"], "dest_root": "0", "dest": "",
            "conflict": "rename"}))
        assert (root / "ü (1).txt").read_text() == "u"

        # Trash goes to the (test's) system trash; undo brings it back.
        job = await finished(client, await client.post("ops/trash?wait=true", json={
            "root": "0", "paths": ["in", "ü (1).txt"]}))
        assert job["state"] == "succeeded", job
        # Both steps within the progress throttle's 0.1 s: the last one is still shown.
        assert (job["done"], job["total"]) == (2, 2), job
        assert not (root / "in").exists()
        trashed = list((trash_home / "Trash" / "files").iterdir())
        assert any(p.name.startswith("in") for p in trashed)
        job = await finished(client, await client.post("ops/undo?wait=true"))
        assert job["result"]["problems"] == [], job
        assert (job["done"], job["total"]) == (2, 2), job
        assert tree(root / "in") == {"note with spaces.txt": "n", "ü.txt": "u"}
        assert (root / "ü (1).txt").read_text() == "u"
        assert plugin.last_undo is None


@pytest.mark.asyncio
async def test_cancelling_a_copy_job_leaves_no_partial_file(
        app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    (root / "dst").mkdir(parents=True)
    (root / "big.bin").write_bytes(b"\2" * (4 * 1024 * 1024))
    monkeypatch.setattr(ops, "CHUNK", 512 * 1024)
    reached, release = threading.Event(), threading.Event()
    original = ops.Mover._advance

    def gated(self: ops.Mover, n: int, name: str) -> None:
        original(self, n, name)
        reached.set()
        release.wait(10)  # the test cancels while the copy sits between two chunks

    monkeypatch.setattr(ops.Mover, "_advance", gated)
    async with app([root]) as (client, _plugin, _rt):
        answer = await client.post("ops/copy", json={
            "root": "0", "paths": ["big.bin"], "dest_root": "0", "dest": "dst"})
        job = answer.json()
        assert await asyncio.to_thread(reached.wait, 10)
        assert (await client.post(f"_host/jobs/{job['id']}/cancel")).status_code == 200
        release.set()
        job = await finished(client, answer)
        assert job["state"] == "cancelled"
        assert list((root / "dst").iterdir()) == []


def test_a_file_swapped_for_a_symlink_after_the_lstat_is_not_followed(
        tmp_path: Path, ctl: Ctl, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review finding: lstat, then open by path, followed a symlink swapped in between.
    # The open itself now refuses a link (O_NOFOLLOW) and checks what it opened (fstat).
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the chosen folders")
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    (src / "a.txt").write_text("plain")
    (src / "fifo.txt").write_text("plain too")
    real_copy = ops.copy_file

    def swap_then_copy(ctl_: Ctl, path: Path, target: Path, advance: Any) -> None:
        path.unlink()  # the race: after place() looked, before copy_file opens
        if path.name == "fifo.txt":
            os.mkfifo(path)
        else:
            path.symlink_to(secret)
        real_copy(ctl_, path, target, advance)

    monkeypatch.setattr(ops, "copy_file", swap_then_copy)
    runner, _record = mover(ctl, "skip", tmp_path)
    out = runner.run([(src, dest)])
    assert sorted(s["path"] for s in out.skipped) == [str(src / "a.txt"),
                                                     str(src / "fifo.txt")]
    assert {s["reason"] for s in out.skipped} == {"became a symlink; not followed",
                                                  "is no longer a regular file"}
    assert sorted(p.name for p in (dest / "src").iterdir()) == []  # no copy, no temp file


@pytest.mark.asyncio
async def test_undo_outlives_a_restart(app, tmp_path: Path) -> None:
    """The one step of undo lived in memory only: after a restart it was gone, and the
    originals an overwrite had stashed stayed in the plugin's folder, unreachable."""
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "b" / "a").mkdir(parents=True)
    (root / "a" / "one.txt").write_text("new")
    (root / "b" / "a" / "one.txt").write_text("EDITED in b")
    async with app([root]) as (client, _plugin, _rt):
        job = await finished(client, await client.post("ops/copy?wait=true", json={
            "root": "0", "paths": ["a"], "dest_root": "0", "dest": "b",
            "conflict": "overwrite"}))
        assert job["state"] == "succeeded", job
        assert (root / "b" / "a" / "one.txt").read_text() == "new"
        before = (await client.get("ops/undo")).json()["undo"]
    async with app([root]) as (client, _plugin, _rt):
        assert (await client.get("ops/undo")).json()["undo"] == before
        job = await finished(client, await client.post("ops/undo?wait=true"))
        assert job["state"] == "succeeded", job
        assert (root / "b" / "a" / "one.txt").read_text() == "EDITED in b"
        assert (await client.get("ops/undo")).json() == {"undo": None}
    async with app([root]) as (client, _plugin, _rt):  # done once: nothing left to undo
        assert (await client.get("ops/undo")).json() == {"undo": None}



@pytest.mark.asyncio
async def test_a_saved_undo_step_is_trusted_only_within_the_roots(app, tmp_path: Path
                                                                   ) -> None:
    """The step read back from disk is checked: a stash outside the plugin's undo folder
    (the next operation deletes the old stash) or a path in a root no longer configured
    is not undone."""
    import json

    root, other = tmp_path / "root", tmp_path / "other"
    (root / "a").mkdir(parents=True)
    other.mkdir()
    (root / "a" / "one.txt").write_text("x")
    async with app([root]) as (client, plugin, _rt):
        await finished(client, await client.post("ops/copy?wait=true", json={
            "root": "0", "paths": ["a/one.txt"], "dest_root": "0", "dest": ""}))
        saved = plugin._undo_file
    record = json.loads(saved.read_text())
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep")
    (root / "to_victim").symlink_to(victim)
    for tampered in ({**record, "stash_dir": str(other)},
                     {**record, "created": [str(other / "one.txt")]},
                     {**record, "created": [f"{root}/../victim/precious.txt"]},
                     {**record, "created": [str(root / "to_victim" / "precious.txt")]},
                     {**record, "trashed": [[str(root / "stolen.txt"),
                                             str(victim / "precious.txt"),
                                             str(victim / "x.trashinfo")]]}):
        saved.write_text(json.dumps(tampered))
        async with app([root]) as (client, _plugin, _rt):
            assert (await client.get("ops/undo")).json() == {"undo": None}
    saved.write_text(json.dumps(record))
    async with app([other]) as (client, _plugin, _rt):  # its root is gone from the settings
        assert (await client.get("ops/undo")).json() == {"undo": None}
    assert (root / "one.txt").read_text() == "x"  # nothing was undone
    assert (victim / "precious.txt").read_text() == "keep"


@pytest.mark.asyncio
async def test_an_overwritten_link_stays_undoable_after_a_restart(app, tmp_path: Path
                                                                    ) -> None:
    """The stash may hold a symlink (an overwrite of a link): the check of the saved step
    followed it and refused the record, losing the undo."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "src").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "src" / "name").write_text("new file")
    (root / "name").symlink_to(elsewhere)  # an absolute link, overwritten by the copy
    async with app([root]) as (client, _plugin, _rt):
        job = await finished(client, await client.post("ops/copy?wait=true", json={
            "root": "0", "paths": ["src/name"], "dest_root": "0", "dest": "",
            "conflict": "overwrite"}))
        assert job["state"] == "succeeded", job
    async with app([root]) as (client, _plugin, _rt):
        assert (await client.get("ops/undo")).json()["undo"] is not None
        await finished(client, await client.post("ops/undo?wait=true"))
    assert (root / "name").is_symlink() and (root / "name").resolve() == elsewhere


@pytest.mark.asyncio
async def test_a_link_leading_out_can_be_renamed_and_trashed(app, tmp_path: Path,
                                                             trash_home: Path) -> None:
    """The link itself is what these act on; it was refused as leading outside the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (root / "out_link").symlink_to(outside)
    async with app([root]) as (client, _plugin, _rt):
        job = await finished(client, await client.post("ops/rename?wait=true", json={
            "root": "0", "path": "out_link", "name": "renamed_link"}))
        assert job["state"] == "succeeded", job
        assert (root / "renamed_link").is_symlink() and not (root / "out_link").exists()
        job = await finished(client, await client.post("ops/trash?wait=true", json={
            "root": "0", "paths": ["renamed_link"]}))
        assert job["state"] == "succeeded", job
        assert not (root / "renamed_link").is_symlink()
        # Reading through it is still refused.
        listed = await client.get("list", params={"root": "0", "path": "renamed_link"})
        assert listed.status_code in (400, 404)
    assert (outside / "keep.txt").read_text() == "mine"  # the target is untouched


@pytest.mark.asyncio
async def test_a_trash_step_is_undone_after_a_restart(app, tmp_path: Path,
                                                      trash_home: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "gone.txt").write_text("back")
    async with app([root]) as (client, _plugin, _rt):
        await finished(client, await client.post("ops/trash?wait=true", json={
            "root": "0", "paths": ["gone.txt"]}))
        assert not (root / "gone.txt").exists()
    async with app([root]) as (client, _plugin, _rt):
        assert (await client.get("ops/undo")).json()["undo"]["kind"] == "trash"
        await finished(client, await client.post("ops/undo?wait=true"))
    assert (root / "gone.txt").read_text() == "back"
