"""Sync with the real embedded v1 files API: a dry-run plan approved file by file, the
bisync matrix (new, changed, deleted on either side; both changed -> conflict copy),
the max-delete guard, files the server refuses listed as skipped with the reason, and
SHA-256 verification of what was written."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from api_integration_layer.testing import PASSWORD


async def finished(client: Any, answer: Any) -> dict[str, Any]:
    assert answer.status_code in (200, 202), answer.text
    job = answer.json()
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        await asyncio.sleep(0.05)
        job = (await client.get(f"_host/jobs/{job['id']}")).json()
    assert job["state"] == "succeeded", job
    return job["result"]


async def plan(client: Any) -> dict[str, Any]:
    return await finished(client, await client.post("sync/plan?wait=true", json={
        "root": "0", "path": "notes", "cloud": "Notes"}))


def actions(p: dict[str, Any]) -> dict[str, str]:
    return {i["path"]: i["action"] for i in p["items"]}


async def cloud_files(api: Any) -> dict[str, bytes]:
    """The cloud side as the v1 API shows it: relative path -> content."""
    out = {}
    for info in (await api.files.list(limit=100)).files:
        if info.description and info.description.startswith("fm-sync:Notes:"):
            data = await api.files.download(info.id)
            assert hashlib.sha256(data.content).hexdigest() == info.sha256
            out[info.description.removeprefix("fm-sync:Notes:")] = data.content
    return out


@pytest.mark.asyncio
async def test_sync_plan_approval_matrix_conflicts_and_guards(
        app, tmp_path: Path, trash_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    notes = root / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.txt").write_text("alpha")
    (notes / "sub" / "b.txt").write_text("bravo")
    (notes / "c.txt").write_text("charlie")
    (notes / "tool.exe").write_bytes(b"MZ...")
    (notes / "big.csv").write_bytes(b"1," * 700_000)  # 1.4 MB, over the test's 1 MiB
    async with app([root], api={"max_upload_mb": 1.0}, sync_max_delete=1) as (
            client, _plugin, server), asyncio.timeout(60):
        answer = await client.post("sync/plan", json={"root": "0", "path": "notes",
                                                      "cloud": "Notes"})
        assert answer.status_code == 409 and answer.json()["field"] == "cloud"
        for body, field in (({"root": "0", "path": "notes", "cloud": "../x"}, "cloud"),
                            ({"root": "0", "path": "notes", "cloud": ""}, "cloud"),
                            ({"root": "0", "path": "../..", "cloud": "Notes"}, "path"),
                            ({"root": "0", "path": "notes/a.txt", "cloud": "Notes"}, "path")):
            answer = await client.post("sync/plan", json=body)
            assert 400 <= answer.status_code < 500 and answer.json()["field"] == field, body
        answer = await client.post("sync/apply", json={"plan_id": "x", "approve": "all"})
        assert answer.status_code == 422 and answer.json()["field"] == "approve"

        layer = server.plugin("api_integration_layer")
        await layer.client.auth.register("ann", "ann@example.org", PASSWORD)
        await layer.client.auth.login("ann", PASSWORD)
        api = layer.client
        status = (await client.get("sync/status")).json()
        assert status["user"]["username"] == "ann" and status["max_delete"] == 1, status

        first = await plan(client)
        assert actions(first) == {"a.txt": "upload", "sub/b.txt": "upload", "c.txt": "upload"}
        skipped = {s["path"]: s["reason"] for s in first["skipped"]}
        assert skipped["tool.exe"] == "type '.exe' is not allowed by the server"
        assert "over the server's upload limit" in skipped["big.csv"]
        assert await cloud_files(api) == {}  # a plan writes nothing

        # Approve two of three: only those go up.
        result = await finished(client, await client.post("sync/apply?wait=true", json={
            "plan_id": first["id"], "approve": ["a.txt", "sub/b.txt"]}))
        assert sorted(d["path"] for d in result["done"]) == ["a.txt", "sub/b.txt"]
        assert await cloud_files(api) == {"a.txt": b"alpha", "sub/b.txt": b"bravo"}
        answer = await client.post("sync/apply", json={"plan_id": first["id"],
                                                       "approve": ["c.txt"]})
        assert answer.status_code == 404 and answer.json()["field"] == "plan_id"

        second = await plan(client)
        assert actions(second) == {"c.txt": "upload"}
        await finished(client, await client.post("sync/apply?wait=true", json={
            "plan_id": second["id"], "approve": ["c.txt"]}))

        # Changes on both sides, and one file changed on both: a conflict.
        (notes / "a.txt").write_text("alpha, edited here")
        ids = {i.description.removeprefix("fm-sync:Notes:"): i.id
               for i in (await api.files.list(limit=100)).files}
        await api.files.delete(ids["sub/b.txt"])
        await api.files.delete(ids["c.txt"])
        await api.files.upload(b"charlie, edited in the cloud", "c.txt",
                               description="fm-sync:Notes:c.txt")
        await api.files.upload(b"delta from the cloud", "d.txt",
                               description="fm-sync:Notes:d.txt")
        (notes / "c.txt").write_text("charlie, edited here too")
        third = await plan(client)
        assert actions(third) == {"a.txt": "update-cloud", "sub/b.txt": "delete-local",
                                  "c.txt": "conflict", "d.txt": "download"}
        by_path = {i["path"]: i for i in third["items"]}
        assert by_path["sub/b.txt"]["approved"] is False  # deletes start unticked
        assert by_path["a.txt"]["approved"] is True

        # The unknown path and the max-delete guard are refused before anything runs.
        answer = await client.post("sync/apply", json={"plan_id": third["id"],
                                                       "approve": ["nope.txt"]})
        assert answer.status_code == 422 and answer.json()["field"] == "approve[0]"

        # A file changed after the plan is skipped, not overwritten.
        (notes / "a.txt").write_text("alpha, edited again after the plan")
        result = await finished(client, await client.post("sync/apply?wait=true", json={
            "plan_id": third["id"], "approve": list(actions(third))}))
        done = {d["path"] for d in result["done"]}
        assert done == {"sub/b.txt", "c.txt", "d.txt"}
        assert result["skipped"] == [{"path": "a.txt", "action": "update-cloud",
                                      "reason": "changed since the plan; plan again"}]
        assert not (notes / "sub" / "b.txt").exists()  # to the trash, not unlinked
        assert any(p.name.startswith("b") for p in (trash_home / "Trash" / "files").iterdir())
        assert (notes / "d.txt").read_text() == "delta from the cloud"
        conflict = [p for p in notes.iterdir() if "cloud conflict" in p.name]
        assert [p.read_text() for p in conflict] == ["charlie, edited in the cloud"]
        assert (notes / "c.txt").read_text() == "charlie, edited here too"
        cloud = await cloud_files(api)
        assert cloud["c.txt"] == b"charlie, edited here too" and "sub/b.txt" not in cloud

        # Two local deletions with a max-delete of 1: refused, naming the field.
        fourth = await plan(client)
        (notes / "d.txt").unlink()
        (notes / "c.txt").unlink()
        fifth = await plan(client)
        deletes = [p for p, a in actions(fifth).items() if a == "delete-cloud"]
        assert sorted(deletes) == ["c.txt", "d.txt"], (fourth, fifth)
        answer = await client.post("sync/apply", json={"plan_id": fifth["id"],
                                                       "approve": deletes})
        assert answer.status_code == 409 and answer.json()["field"] == "approve"
        assert "max-delete" in answer.json()["detail"]

        # A server whose limits are not known in advance: what it refuses during the sync
        # is listed as skipped with its own reason, and the rest goes on.
        from file_manager import sync

        async def unknown_limits(api: Any) -> sync.Limits:
            return sync.Limits(None, None)

        monkeypatch.setattr(sync, "server_limits", unknown_limits)
        sixth = await plan(client)
        assert {"tool.exe", "big.csv"} <= set(actions(sixth))
        result = await finished(client, await client.post("sync/apply?wait=true", json={
            "plan_id": sixth["id"], "approve": ["tool.exe", "big.csv"]}))
        reasons = {s["path"]: s["reason"] for s in result["skipped"]}
        assert result["done"] == [] and set(reasons) == {"tool.exe", "big.csv"}
        assert "(400)" in reasons["tool.exe"] and "'.exe' is not allowed" in reasons["tool.exe"]
        assert "(413)" in reasons["big.csv"]


def test_the_bisync_matrix_decides_every_combination(tmp_path: Path) -> None:
    from file_manager import sync

    def side(sha: str, size: int = 5, cloud_id: str | None = None) -> sync.Side:
        return sync.Side(sha, size, None, cloud_id)

    baseline = sync.Baseline(tmp_path / "base.json")
    for name in ("same", "l-changed", "c-changed", "both-changed", "both-same-change",
                 "l-deleted", "c-deleted", "both-deleted", "l-del-c-chg", "l-chg-c-del"):
        baseline.entries[name] = {"sha256": "base", "size": 5}
    local = {"same": side("base"), "l-changed": side("L"), "c-changed": side("base"),
             "both-changed": side("L"), "both-same-change": side("X"),
             "c-deleted": side("base"), "l-chg-c-del": side("L"), "l-new": side("N"),
             "both-new": side("A"), "both-new-same": side("S"), "big.txt": side("B", 99),
             "app.exe": side("E")}
    cloud = {"same": side("base", cloud_id="1"), "l-changed": side("base", cloud_id="2"),
             "c-changed": side("C", cloud_id="3"), "both-changed": side("C", cloud_id="4"),
             "both-same-change": side("X", cloud_id="5"), "l-deleted": side("base"),
             "l-del-c-chg": side("C"), "c-new": side("N"), "both-new": side("B"),
             "both-new-same": side("S")}
    limits = sync.Limits(max_upload_bytes=50, allowed_types=frozenset({".txt", ""}))
    items, skipped, unchanged = sync.classify(local, cloud, baseline, limits)
    assert {i.path: i.action for i in items} == {
        "l-changed": "update-cloud", "c-changed": "update-local",
        "both-changed": "conflict", "l-deleted": "delete-cloud",
        "c-deleted": "delete-local", "l-del-c-chg": "download", "l-chg-c-del": "upload",
        "l-new": "upload", "c-new": "download", "both-new": "conflict"}
    assert {s["path"]: s["reason"].split(",")[0] for s in skipped} == {
        "big.txt": "99 bytes", "app.exe": "type '.exe' is not allowed by the server"}
    assert unchanged == 3  # same, both-same-change, both-new-same; both-deleted vanishes
    assert [i.approved for i in items if i.action.startswith("delete")] == [False, False]
    assert sync.conflict_name("a/notes.txt", 0).startswith("a/notes (cloud conflict ")


@pytest.mark.asyncio
async def test_identical_on_both_sides_is_settled_into_the_baseline(tmp_path: Path) -> None:
    """Both sides got the same content outside the sync: applying any plan records it,
    so the next edit on one side is an update, not a conflict. (The cloud here is a
    stand-in listing one file: the applier's bookkeeping is what is tested.)"""
    from file_manager import sync

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "n.txt").write_text("same")
    sha = hashlib.sha256(b"same").hexdigest()

    class Files:
        async def list(self, **_: Any) -> Any:
            info = type("Info", (), {"id": "c1", "sha256": sha, "size": 4, "uploaded_at": None,
                                     "description": "fm-sync:C:n.txt"})()
            return type("Page", (), {"files": [info], "has_more": False})()

    api = type("Api", (), {"files": Files()})()
    baseline = sync.Baseline(tmp_path / "base.json")
    local = sync.scan_local(folder, baseline)
    remote = await sync.scan_cloud(api, "C")
    items, _skipped, unchanged = sync.classify(local, remote, baseline, sync.Limits(None, None))
    assert items == [] and unchanged == 1
    plan = sync.Plan("p", str(folder), "C", items, [], unchanged, settle=[
        ("n.txt", local["n.txt"], remote["n.txt"])])
    await sync.Applier(api, folder, plan, baseline, None, lambda *a: None).run([])
    assert baseline.entries["n.txt"]["sha256"] == sha
    assert sync.Baseline(tmp_path / "base.json").entries["n.txt"]["cloud_id"] == "c1"


@pytest.mark.asyncio
async def test_cloud_names_never_leave_the_synced_folder(tmp_path: Path) -> None:
    """The cloud decides the names: one that would land outside the folder (absolute,
    "..", a backslash) is never planned, written or trashed."""
    import types

    from file_manager import sync

    folder = tmp_path / "root" / "synced"
    folder.mkdir(parents=True)
    data = b"evil\n"
    sha = hashlib.sha256(data).hexdigest()
    names = ["../../OUTSIDE.txt", str(tmp_path / "abs.txt"), "a/../../b.txt", "x\\y.txt",
             "ok.txt"]

    class Files:
        async def list(self, **_: Any) -> Any:
            return types.SimpleNamespace(has_more=False, files=[types.SimpleNamespace(
                description=f"fm-sync:c:{name}", sha256=sha, size=len(data), id=str(n),
                uploaded_at=None) for n, name in enumerate(names)])

        async def download_to(self, file_id: str, target: Any) -> None:
            Path(target).write_bytes(data)

    class System:
        async def capabilities(self) -> Any:
            raise RuntimeError("no capabilities here")

    api = types.SimpleNamespace(files=Files(), system=System())
    assert set(await sync.scan_cloud(api, "c")) == {"ok.txt"}
    baseline = sync.Baseline(tmp_path / "base.json")
    plan = await sync.make_plan(api, folder, "c", baseline)
    assert [item.path for item in plan.items] == ["ok.txt"]
    await sync.Applier(api, folder, plan, baseline, lambda _p: None,
                       lambda *_a: None).run(plan.items)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.txt"))
    assert written == ["root/synced/ok.txt"]
    # A baseline entry from an older version with such a name is never touched either.
    assert not sync.safe_rel("../x") and not sync.safe_rel("/etc/passwd")
    assert sync.safe_rel("notes/today.txt")
