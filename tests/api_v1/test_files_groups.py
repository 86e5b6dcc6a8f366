"""v1 files (uploads with limits, downloads, sharing) and groups."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts of its own; those that need the first account (the administrator), count what
# the whole server holds, or need settings of their own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@OWN_SERVER
async def test_upload_download_share_delete(make_v1):
    v1 = await make_v1()
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cid = await v1.account("cid")
    data = b"report line\n" * 100
    r = await ann.client.post("/files/upload", files={"file": ("../../etc/Report.TXT", data,
                                                               "application/x-evil")},
                              data={"description": "quarterly", "is_public": "false"})
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["filename"] == "Report.TXT" and info["size"] == len(data)
    assert info["content_type"] == "text/plain" and info["file_type"] == "txt"
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["uploaded_by"] == ann.id and info["is_public"] is False
    assert info["description"] == "quarterly" and info["shared_with"] == []
    file_id = info["id"]
    assert v1.api.file_path(file_id).read_bytes() == data

    r = await ann.client.get(f"/files/{file_id}/download")
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-disposition"].startswith("attachment;")
    assert 'filename="Report.TXT"' in r.headers["content-disposition"]
    assert r.headers["x-content-sha256"] == info["sha256"]
    assert r.headers["x-content-type-options"] == "nosniff"

    # ben cannot see it at all (404), then it is shared with him (read, not delete: 403).
    for path in (f"/files/{file_id}/info", f"/files/{file_id}/download"):
        assert (await ben.client.get(path)).status_code == 404, path
    assert (await ben.client.delete(f"/files/{file_id}")).status_code == 404
    r = await ann.client.post(f"/files/{file_id}/share", json={"user_id": ben.id})
    assert r.status_code == 200 and r.json()["shared_with"] == ben.id
    assert (await ben.client.get(f"/files/{file_id}/download")).content == data
    r = await ben.client.delete(f"/files/{file_id}")
    assert r.status_code == 403 and "owner" in r.json()["detail"]
    r = await ben.client.post(f"/files/{file_id}/share", json={"user_id": cid.id})
    assert r.status_code == 403
    assert (await cid.client.get(f"/files/{file_id}/info")).status_code == 404
    r = await ann.client.post(f"/files/{file_id}/share", json={"user_id": ann.id})
    assert r.status_code == 400
    r = await ann.client.post(f"/files/{file_id}/share",
                              json={"user_id": "00000000-0000-4000-8000-000000000000"})
    assert r.status_code == 404
    r = await ann.client.post(f"/files/{file_id}/share", json={"user_id": ben.id,
                                                               "permission": "admin"})
    assert r.status_code == 422

    owner_view = (await ann.client.get(f"/files/{file_id}/info")).json()
    assert owner_view["download_count"] == 2 and owner_view["shared_with"][0]["user_id"] == ben.id
    assert "shared_with" not in (await ben.client.get(f"/files/{file_id}/info")).json()

    await ann.client.post("/files/upload", files={"file": ("pic.png", b"\x89PNG....", "x/y")},
                          data={"is_public": "true"})
    own = (await ann.client.get("/files/")).json()
    assert own["total"] == 2 and own["files"][0]["filename"] == "pic.png"
    assert (await ann.client.get("/files", params={"file_type": "png"})).json()["total"] == 1
    shared = (await ben.client.get("/files/", params={"scope": "shared"})).json()
    assert [f["id"] for f in shared["files"]] == [file_id]
    public = (await cid.client.get("/files/", params={"scope": "public"})).json()
    assert [f["filename"] for f in public["files"]] == ["pic.png"]
    assert (await ben.client.get("/files/", params={"scope": "all"})).json()["total"] == 2
    assert (await ann.client.get("/files/?scope=everything")).status_code == 422

    stats = (await ann.client.get("/files/stats")).json()
    assert stats["total_files"] == 2 and stats["file_types"] == {"txt": 1, "png": 1}
    assert stats["public_files"] == 1 and stats["shared_files"] == 1
    assert stats["total_size_bytes"] == len(data) + 8

    r = await ann.client.delete(f"/files/{file_id}/share/{ben.id}")
    assert r.status_code == 200
    assert (await ben.client.get(f"/files/{file_id}/info")).status_code == 404
    r = await ann.client.delete(f"/files/{file_id}")
    assert r.status_code == 200 and not v1.api.file_path(file_id).exists()
    assert (await ann.client.get(f"/files/{file_id}/info")).status_code == 404


@OWN_SERVER
async def test_upload_limits(make_v1):
    v1 = await make_v1(max_upload_mb=0.01, allowed_upload_types=[".txt", "csv"])
    ann = await v1.account("ann")
    limit = int(0.01 * (1 << 20))
    ok = await ann.client.post("/files/upload", files={"file": ("ok.csv", b"x" * limit)})
    assert ok.status_code == 201, ok.text
    r = await ann.client.post("/files/upload", files={"file": ("big.txt", b"x" * (limit + 1))})
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]
    # Far over the limit: refused from Content-Length before the body is read.
    r = await ann.client.post("/files/upload",
                              files={"file": ("huge.txt", b"x" * (limit * 20))})
    assert r.status_code == 413 and "too large" in r.json()["detail"]

    # Without Content-Length (chunked), the stream is cut off once over the limit.
    async def chunks():
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="c.txt"'
        yield b"\r\nContent-Type: text/plain\r\n\r\n"
        for _ in range(20):
            yield b"y" * limit
        yield b"\r\n" + boundary + b"--\r\n"

    try:
        r = await ann.client.post("/files/upload", content=chunks(),
                                  headers={"Content-Type": "multipart/form-data; "
                                                           "boundary=b0undary"})
        assert r.status_code == 413
    except httpx.TransportError:
        pass  # the server may close the connection while we are still sending
    assert not list(v1.api.files_dir.rglob("*.part"))

    for name in ("run.exe", "noext", "archive.tar.gz", "page.HTML"):
        r = await ann.client.post("/files/upload", files={"file": (name, b"data")})
        assert r.status_code == 400, name
        assert "not allowed" in r.json()["detail"] and ".csv" in r.json()["detail"]
    r = await ann.client.post("/files/upload", files={"file": ("", b"data")})
    assert r.status_code == 422
    r = await ann.client.post("/files/upload", data={"description": "no file"})
    assert r.status_code == 422 and "file" in r.text
    r = await ann.client.post("/files/upload", json={"file": "not multipart"})
    assert r.status_code == 422
    r = await ann.client.post("/files/upload", files={"file": ("a.txt", b"x")},
                              data={"is_public": "maybe"})
    assert r.status_code == 422
    own = (await ann.client.get("/files/")).json()
    assert own["total"] == 1
    # Oversized JSON bodies elsewhere are refused too.
    r = await ann.client.post("/messages/send", content=b"{" + b" " * (2 << 20) + b"}",
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 413


async def test_groups(v1):
    ann = await v1.account("ann")
    ben = await v1.account("ben")
    cid = await v1.account("cid")
    r = await ann.client.post("/groups/create", json={"name": "Climbers", "description":
                                                      "ropes", "max_members": 2})
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["owner_id"] == ann.id and group["member_count"] == 1
    assert group["is_public"] is True and group["role"] == "owner" and group["is_member"]
    gid = group["id"]

    r = await ben.client.post(f"/groups/{gid}/join")
    assert r.status_code == 200 and r.json()["group"]["member_count"] == 2
    assert (await ben.client.post(f"/groups/{gid}/join")).status_code == 409
    r = await cid.client.post(f"/groups/{gid}/join")
    assert r.status_code == 409 and "full" in r.json()["detail"]
    members = (await cid.client.get(f"/groups/{gid}/members")).json()
    assert members["total"] == 2 and members["members"][0]["role"] == "owner"
    assert members["group_id"] == gid

    r = await ben.client.put(f"/groups/{gid}", json={"name": "Mine now"})
    assert r.status_code == 403
    r = await ann.client.put(f"/groups/{gid}", json={"max_members": 5, "name": "Climbers 2"})
    assert r.status_code == 200 and r.json()["name"] == "Climbers 2"
    r = await ann.client.put(f"/groups/{gid}", json={"name": None})
    assert r.status_code == 422
    assert (await cid.client.post(f"/groups/{gid}/join")).status_code == 200
    r = await ann.client.put(f"/groups/{gid}", json={"max_members": 2})
    assert r.status_code == 409 and "already has 3 members" in r.json()["detail"]
    assert (await cid.client.post(f"/groups/{gid}/leave")).status_code == 200
    assert (await cid.client.post(f"/groups/{gid}/leave")).status_code == 409
    r = await ann.client.post(f"/groups/{gid}/leave")
    assert r.status_code == 409 and "owner" in r.json()["detail"]

    # A private group is invisible (404) to outsiders until they are invited.
    r = await ann.client.post("/groups/create", json={"name": "Secret", "type": "private"})
    assert r.status_code == 201 and r.json()["is_public"] is False
    secret = r.json()["id"]
    for call in (cid.client.get(f"/groups/{secret}"), cid.client.post(f"/groups/{secret}/join"),
                 cid.client.get(f"/groups/{secret}/members")):
        assert (await call).status_code == 404
    r = await cid.client.post(f"/groups/{secret}/invite", json={"user_ids": [ben.id]})
    assert r.status_code == 404
    r = await ann.client.post(f"/groups/{secret}/invite",
                              json={"user_ids": [cid.id, ann.id], "message": "come"})
    assert r.status_code == 200, r.text
    assert r.json()["invited_users"] == [cid.id] and r.json()["already_members"] == [ann.id]
    note = (await cid.client.get("/notifications/")).json()["notifications"][0]
    assert note["type"] == "group_invite" and note["metadata"]["group_id"] == secret
    assert (await cid.client.get(f"/groups/{secret}")).json()["invited"] is True
    assert (await cid.client.post(f"/groups/{secret}/join")).status_code == 200
    r = await ann.client.post(f"/groups/{secret}/invite",
                              json={"user_ids": ["00000000-0000-4000-8000-000000000000"]})
    assert r.status_code == 404 and "user_ids" in r.json()["detail"]
    r = await ben.client.post(f"/groups/{gid}/invite", json={"user_ids": []})
    assert r.status_code == 422

    listing = (await ben.client.get("/groups/")).json()
    assert listing["total"] == 1 and listing["has_more"] is False  # the secret is hidden
    assert (await cid.client.get("/groups")).json()["total"] == 2
    assert (await cid.client.get("/groups/", params={"type": "private"})).json()["total"] == 1
    mine = (await ben.client.get("/groups/my/groups")).json()
    assert [g["id"] for g in mine["groups"]] == [gid]
    stats = (await ann.client.get("/groups/stats")).json()
    assert stats["owned_groups"] == 2 and stats["by_type"] == {"group": 1, "private": 1}

    bad = [({"name": ""}, 422), ({"name": "x", "type": "guild"}, 422),
           ({"name": "x", "type": "private", "is_public": True}, 422),
           ({"name": "x", "max_members": 1}, 422), ({"description": "no name"}, 422)]
    for body, status in bad:
        assert (await ann.client.post("/groups/create", json=body)).status_code == status, body

    assert (await ben.client.delete(f"/groups/{gid}")).status_code == 403
    assert (await ann.client.delete(f"/groups/{gid}")).status_code == 200
    assert (await ben.client.get(f"/groups/{gid}")).status_code == 404
