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
        assert info["app_url"] == app.url.rstrip("/")  # what {{app_url}} expands to

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

    async with running_app(tmp_path, v1=False) as app, app.client() as client:
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


QUERY_KEY = "query-secret-1234567890"
PLAIN_HEADER = "plain-header-secret-99"


@pytest.mark.asyncio
async def test_reports_and_logs_mask_secrets_and_report_files_are_private(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Review finding: query-string API keys and captured tokens were written in clear
    # in run reports (0644 files), a header named by a custom auth.key stayed in the
    # collection file, and the same went into a monitor's log line.
    import json
    import logging
    import stat

    caplog.set_level(logging.WARNING)
    async with running_app(tmp_path, v1=False) as app, loopback_server() as srv, \
            app.client() as client:
        assert (await client.post("collections", json={"name": "S"})).status_code == 201
        saved = await client.put("collections/S/request", params={
            "path": "1-key.request.json"}, json={
                "name": "key", "url": srv.url + "/echo?x=1",
                "auth": {"type": "apikey", "key": "api_key", "value": QUERY_KEY,
                         "where": "query"},
                "asserts": [{"source": "jsonpath", "expr": "$.query", "op": "eq",
                             "value": "nope"}]})
        assert saved.status_code == 200, saved.text
        saved = await client.put("collections/S/request", params={
            "path": "2-token.request.json"}, json={
                "name": "token", "url": srv.url + "/users/someone",
                "captures": [{"name": "access_token", "source": "jsonpath",
                              "expr": "$.token"}]})
        assert saved.status_code == 200
        custom = await client.put("collections/S/request", params={
            "path": "3-custom.request.json"}, json={
                "name": "custom", "url": srv.url + "/echo?t={{access_token}}",
                "headers": [{"name": "X-Plain", "value": PLAIN_HEADER}],
                "auth": {"type": "apikey", "key": "X-Plain", "value": "other-secret-77"}})
        assert custom.json()["secrets_moved"] == ["secret.3_custom.apikey",
                                                  "secret.3_custom.x_plain"]
        folder = tmp_path / "collections" / "S"
        assert PLAIN_HEADER not in (folder / "3-custom.request.json").read_text()
        assert QUERY_KEY not in (folder / "1-key.request.json").read_text()

        started = await client.post("run", json={"collection": "S"})
        job = await wait_job(client, started.json()["id"])
        report = (await client.get(f"runs/{job['id']}")).json()
        text = json.dumps(report)
        for secret in (QUERY_KEY, "tok-someone", PLAIN_HEADER):
            assert secret not in text
        assert "api_key=…7890" in report["results"][0]["url"]  # at most the last 4
        assert report["results"][1]["captures"] == {"access_token": "…"}  # short: none
        assert report["results"][2]["url"].endswith("t=…")
        file = app.plugin().reports_dir / f"{job['id']}.json"
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert QUERY_KEY not in file.read_text()
        junit = (await client.get(f"runs/{job['id']}/junit.xml")).text
        assert QUERY_KEY not in junit

        monitor = (await client.post("monitors", json={
            "name": "m", "collection": "S", "enabled": False})).json()
        ran = (await client.post(f"monitors/{monitor['id']}/run")).json()
        assert ran["run"]["status"] == "failed"
        assert "api_key" in caplog.text  # the transition was logged ...
        assert QUERY_KEY not in caplog.text  # ... without the key
        assert QUERY_KEY not in (app.plugin().ctx.data_dir / "monitors.json").read_text()


@pytest.mark.asyncio
async def test_a_corrupt_report_and_a_non_json_openapi_are_4xx_naming_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review finding: both were 500s.
    async def not_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 9\r\nConnection: close\r\n\r\nnot json!")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_json, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, running_app(tmp_path, v1=False) as app, app.client() as client:
        reports = app.plugin().reports_dir
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "broken.json").write_text("{")
        (reports / "alist.json").write_text("[1, 2]")
        for run_id in ("broken", "alist"):
            for path in (f"runs/{run_id}", f"runs/{run_id}/junit.xml"):
                answer = await client.get(path)
                assert answer.status_code == 422, answer.text
                assert answer.json()["field"] == "run_id"
                assert f"{run_id}.json" in answer.json()["detail"]

        monkeypatch.setattr(app.plugin().ctx, "server_url", f"http://127.0.0.1:{port}/")
        answer = await client.post("import/builtin", json={"which": "app"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "which"
        assert f"127.0.0.1:{port}/openapi.json is not a JSON" in answer.json()["detail"]
        bad = await client.post("import", json={"kind": "openapi", "collection": "X",
                                                "text": '{"openapi": "3.0.0", "paths": {},'
                                                        ' "info": "a string"}'})
        assert bad.status_code == 422 and bad.json()["field"] == "text"


@pytest.mark.asyncio
async def test_the_run_list_outlives_a_restart(tmp_path: Path) -> None:
    """The reports were kept on disk but the list of runs was memory only: after a
    restart the page listed no run although each report could still be opened."""
    async with running_app(tmp_path, v1=False) as app, loopback_server() as srv, \
            app.client() as client:
        await client.post("collections", json={"name": "Kept"})
        await client.put("collections/Kept/request", params={"path": "a.request.json"},
                         json={"url": srv.url + "/echo"})
        ids = []
        for _ in range(2):
            started = await client.post("run", json={"collection": "Kept"})
            ids.append((await wait_job(client, started.json()["id"]))["id"])
        before = (await client.get("runs")).json()["runs"]
        assert [r["id"] for r in before] == ids[::-1]  # newest first
    async with running_app(tmp_path, v1=False) as app, app.client() as client:
        assert (await client.get("runs")).json()["runs"] == before
        assert (await client.get(f"runs/{ids[0]}")).json()["results"][0]["passed"] is not None
    # Reports kept before the index: the list is made from their files.
    (tmp_path / "home" / "data" / "plugin-data" / "api_tester" / "reports" / "index.json"
     ).unlink()
    async with running_app(tmp_path, v1=False) as app, app.client() as client:
        assert {r["id"] for r in (await client.get("runs")).json()["runs"]} == set(ids)


@pytest.mark.asyncio
async def test_requests_whose_names_look_alike_keep_their_own_secrets(tmp_path: Path
                                                                       ) -> None:
    """A secret's name comes from the request's path, and "users/get", "users-get" and
    "users_get" all gave "users_get": saving the second replaced the first one's token in
    the store, so the first request went out with the wrong credential."""
    async with running_app(tmp_path, v1=False) as app, loopback_server() as srv, \
            app.client() as client:
        await client.post("collections", json={"name": "Alike"})
        tokens = {"users/get.request.json": "token-of-the-folder-one",
                  "users-get.request.json": "token-of-the-dashed-one",
                  "users_get.request.json": "token-of-the-underscored-one"}
        names = set()
        for path, token in tokens.items():
            saved = await client.put("collections/Alike/request", params={"path": path},
                                     json={"name": path, "url": srv.url + "/echo",
                                           "auth": {"type": "bearer", "token": token},
                                           "asserts": [{"source": "jsonpath",
                                                        "expr": "$.headers.authorization",
                                                        "op": "eq",
                                                        "value": f"Bearer {token}"}]})
            assert saved.status_code == 200, saved.text
            names.update(saved.json()["secrets_moved"])
        assert len(names) == 3, names
        # Saved again with a new token, a request keeps its own name (no new secret left
        # behind for each edit), and the others' tokens stay.
        again = await client.put("collections/Alike/request",
                                 params={"path": "users-get.request.json"},
                                 json={"url": srv.url + "/echo",
                                       "auth": {"type": "bearer", "token": "rotated"},
                                       "asserts": [{"source": "jsonpath",
                                                    "expr": "$.headers.authorization",
                                                    "op": "eq", "value": "Bearer rotated"}]})
        assert set(again.json()["secrets_moved"]) <= names, again.json()
        started = await client.post("run", json={"collection": "Alike"})
        job = await wait_job(client, started.json()["id"])
        assert job["state"] == "succeeded", job
        report = (await client.get(f"runs/{job['id']}")).json()
        assert [r["passed"] for r in report["results"]] == [True, True, True], report
        # The same holds for an import: a curl command imported twice.
        for token in ("first-import-token", "second-import-token"):
            imported = await client.post("import", json={
                "kind": "curl", "collection": "Alike",
                "text": f"curl {srv.url}/echo -H 'Authorization: Bearer {token}'"})
            assert imported.status_code in (200, 201), imported.text
        files = list((tmp_path / "collections" / "Alike").rglob("*.request.json"))
        assert len(files) == 5
        assert not any("import-token" in file.read_text() for file in files)
        secrets = app.plugin().secrets
        stored = [secrets.get(name) or "" for name in secrets.names("Alike:")]
        for token in ("first-import-token", "second-import-token"):
            assert sum(token in value for value in stored) == 1, stored
