"""The plugin in the real app: its routes, 4xx on bad input, the v1 login helper against
the embedded v1 API, saving with secrets moved out, and a run as a job with reports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from api_tester.testing import PASSWORD, loopback_server, running_app, wait_job

from plexichat_desktop.plugins.sse import next_event, read_events


@pytest.mark.asyncio
async def test_send_save_and_run_through_the_app(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app, loopback_server() as srv, app.client() as client:
        assert (await client.get("info", headers={"Authorization": ""})).status_code == 401
        info = (await client.get("info")).json()
        assert info["secrets_backend"] == "file"

        # -- the request editor's send
        sent = await client.post("send", json={"request": {
            "method": "POST", "url": srv.url + "/echo", "body": {"mode": "json",
                                                                  "text": '{"a": 1}'},
            "asserts": [{"source": "jsonpath", "expr": "$.method", "op": "eq",
                         "value": "POST"}]}})
        assert sent.status_code == 200, sent.text
        body = sent.json()
        assert body["passed"] and body["response"]["status"] == 200
        assert body["response"]["kind"] == "json"
        for bad, field, status in [
            ({"url": "file:///etc/passwd"}, "url", 400),
            ({"url": "http://u:p@127.0.0.1/"}, "url", 400),
            ({"url": "http://169.254.169.254/"}, "url", 403),
            ({"url": srv.url + "/{{missing}}"}, "url", 422),
            ({"url": srv.url, "body": {"mode": "json", "text": "{"}}, "body.text", 422),
        ]:
            refused = await client.post("send", json={"request": bad})
            assert refused.status_code == status, (bad, refused.text)
            assert refused.json()["field"] == field
            assert refused.json()["detail"].startswith(field + ":")
        invalid = await client.post("send", json={"request": {"url": "http://x/",
                                                              "method": "BREW"}})
        assert invalid.status_code == 422 and "method" in str(invalid.json()["detail"])

        # -- the v1 login helper against the app's own v1 API
        name = await app.v1_user("ann")
        me = await client.post("send", json={"request": {
            "url": "{{app_url}}/api/v1/auth/me",
            "auth": {"type": "plexichat", "username": name, "password": "{{pw}}"}},
            "variables": {"pw": PASSWORD}})
        assert me.status_code == 200, me.text
        assert me.json()["response"]["status"] == 200
        assert '"username": "ann"' in me.json()["response"]["body"]
        wrong = await client.post("send", json={"request": {
            "url": "{{app_url}}/api/v1/auth/me",
            "auth": {"type": "plexichat", "username": name, "password": "wrong"}}})
        assert wrong.status_code == 422 and wrong.json()["field"] == "auth.username"
        assert "login" in wrong.json()["detail"]

        # -- collections, environments and secrets through the routes
        assert (await client.post("collections", json={"name": "Demo"})).status_code == 201
        assert (await client.post("collections", json={"name": "Demo"})).status_code == 409
        assert (await client.post("collections", json={"name": "../up"})).status_code == 422
        saved = await client.put("collections/Demo/request", params={
            "path": "01-who.request.json"}, json={
            "name": "Who", "url": "{{base}}/whoami",
            "auth": {"type": "bearer", "token": "good-token"},
            "asserts": [{"source": "status", "op": "eq", "value": 200}]})
        assert saved.status_code == 200, saved.text
        assert saved.json()["secrets_moved"] == ["secret.01_who.token"]
        await client.put("collections/Demo/request", params={"path": "02-user.request.json"},
                         json={"name": "User {{who}}", "url": "{{base}}/users/{{who}}",
                               "asserts": [{"source": "jsonpath", "expr": "$.token",
                                            "op": "eq", "value": "tok-ann"}]})
        env = await client.put("collections/Demo/environments/dev", json={
            "name": "dev", "variables": [{"name": "base", "value": srv.url},
                                         {"name": "key", "value": "s3cr3t-env",
                                          "secret": True}]})
        assert env.status_code == 200 and env.json()["variables"][1] == {
            "name": "key", "value": "", "secret": True, "stored": True}
        for bad in (b"[]", b"not json"):  # no object at all: 422 naming the body, not 500
            refused = await client.put("collections/Demo/environments/dev", content=bad)
            assert refused.status_code == 422 and refused.json()["field"] == "body"
        files = b"".join(p.read_bytes() for p in (tmp_path / "collections").rglob("*")
                         if p.is_file())
        assert b"good-token" not in files and b"s3cr3t-env" not in files
        tree = (await client.get("collections")).json()["collections"][0]
        assert tree["environments"] == ["dev"] and len(tree["items"]) == 2
        got = (await client.get("collections/Demo/request",
                                params={"path": "01-who.request.json"})).json()
        assert "{{secret.01_who.token}}" in got["text"]
        for params, status in [({"path": "../x.request.json"}, 422),
                               ({"path": "nope.request.json"}, 404)]:
            answer = await client.get("collections/Demo/request", params=params)
            assert answer.status_code == status and answer.json()["field"] == "path"

        # -- a run: a job, live results, JSON and JUnit reports
        async with client.stream("GET", "stream") as stream:
            events = read_events(stream)
            started = await client.post("run", json={
                "collection": "Demo", "environment": "dev", "csv": "who\nann\nbob\n"})
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
            first = await next_event(events, "result")
            assert first["run"] == run_id and first["total"] == 4
            job = await wait_job(client, run_id)
        assert job["state"] == "succeeded", job
        assert job["result"]["executed"] == 4 and job["result"]["failed"] == 1
        report = (await client.get(f"runs/{run_id}")).json()
        assert [r["passed"] for r in report["results"]] == [True, True, True, False]
        xml = await client.get(f"runs/{run_id}/junit.xml")
        assert xml.headers["content-type"].startswith("application/xml")
        suite = ET.fromstring(xml.content)
        assert suite.get("tests") == "4" and suite.get("failures") == "1"
        assert (await client.get("runs/nope")).status_code == 404
        for bad, field in [({"collection": "Nope"}, "collection"),
                           ({"collection": "Demo", "csv": "a,b\n1,2,3\n"}, "csv"),
                           ({"collection": "Demo", "environment": "prod"}, "environment")]:
            refused = await client.post("run", json=bad)
            assert refused.status_code in (404, 422) and refused.json()["field"] == field

        # -- a run is a job: cancelled, it leaves no half report
        await client.post("collections", json={"name": "Slow"})
        await client.put("collections/Slow/request", params={"path": "slow.request.json"},
                         json={"url": srv.url + "/slow?s=1.5"})
        started = await client.post("run", json={"collection": "Slow",
                                                 "csv": "n\n1\n2\n3\n4\n5\n"})
        run_id = started.json()["id"]
        async with asyncio.timeout(10):
            while (await client.get(f"_host/jobs/{run_id}")).json()["state"] != "running":
                await asyncio.sleep(0.02)
        assert (await client.post(f"_host/jobs/{run_id}/cancel")).status_code == 200
        job = await wait_job(client, run_id)
        assert job["state"] == "cancelled"
        assert (await client.get(f"runs/{run_id}")).status_code == 404


@pytest.mark.asyncio
async def test_a_handed_over_collection_cannot_send_the_app_token(tmp_path: Path) -> None:
    # Review finding: auth.type "app" was honoured for any collection, a shared or an
    # imported one included, by runs and monitors too. Now the user enables it per
    # collection in the page (kept outside the collections folder), and it still goes
    # only to this app's own address.
    import json

    async with running_app(tmp_path) as app, app.client() as client:
        shared = tmp_path / "collections" / "Shared"
        shared.mkdir(parents=True)
        # As a git clone or a shared folder brings it: files only, nothing granted.
        (shared / "collection.json").write_text(json.dumps({"name": "Shared"}))
        request = {"name": "info", "url": "{{app_url}}/plugins/api_tester/api/info",
                   "auth": {"type": "app"}}
        (shared / "info.request.json").write_text(json.dumps(request))
        tree = (await client.get("collections/Shared")).json()
        assert tree["app_token"] is False

        sent = await client.post("send", json={"request": request, "collection": "Shared"})
        assert sent.status_code == 403 and sent.json()["field"] == "auth.type"
        assert "enable" in sent.json()["detail"]
        started = await client.post("run", json={"collection": "Shared"})
        job = await wait_job(client, started.json()["id"])
        report = (await client.get(f"runs/{job['id']}")).json()
        assert report["failed"] == 1 and "may not use the app token" in report["results"][0][
            "error"]
        monitor = (await client.post("monitors", json={
            "name": "m", "collection": "Shared", "enabled": False})).json()
        ran = (await client.post(f"monitors/{monitor['id']}/run")).json()
        assert ran["run"]["status"] == "failed" and "app token" in ran["run"]["detail"]

        # The user enables it in the page: then it is sent, to the app only.
        granted = await client.put("collections/Shared/app-token", json={"enabled": True})
        assert granted.json() == {"collection": "Shared", "enabled": True}
        assert not list(shared.glob("*app*"))  # nothing the collection's files carry
        sent = await client.post("send", json={"request": request, "collection": "Shared"})
        assert sent.status_code == 200 and sent.json()["response"]["status"] == 200
        elsewhere = await client.post("send", json={"collection": "Shared", "request": {
            **request, "url": "http://127.0.0.2:9/x"}})
        assert elsewhere.status_code == 403 and elsewhere.json()["field"] == "auth.type"
        await client.put("collections/Shared/app-token", json={"enabled": False})
        sent = await client.post("send", json={"request": request, "collection": "Shared"})
        assert sent.status_code == 403
