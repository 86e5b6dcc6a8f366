"""Import (curl, OpenAPI 3, Postman v2.1, HAR) and export (curl, httpx), and the ready
collections of the app's own APIs run against the real embedded v1 API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_tester.convert import (
    ConvertProblem,
    from_curl,
    from_har,
    from_openapi,
    from_postman,
    to_curl,
    to_httpx,
)
from api_tester.models import RequestSpec
from api_tester.testing import PASSWORD, loopback_server, running_app, wait_job


def test_curl_import_cases() -> None:
    spec = from_curl("""curl -sSL -X POST 'http://127.0.0.1:8000/api/v1/x?a=1' \\
        -H 'Content-Type: application/json' -H "X-Name: it's" \\
        --data-raw '{"k": "v w"}' -u ann:pw""")
    assert (spec.method, spec.url) == ("POST", "http://127.0.0.1:8000/api/v1/x?a=1")
    assert [(h.name, h.value) for h in spec.headers] == [
        ("Content-Type", "application/json"), ("X-Name", "it's")]
    assert spec.body.mode == "json" and json.loads(spec.body.text) == {"k": "v w"}
    assert (spec.auth.type, spec.auth.username, spec.auth.password) == ("basic", "ann", "pw")
    form = from_curl("curl http://127.0.0.1/f -F name=ann -F 'note=a b'")
    assert form.method == "POST" and form.body.mode == "multipart"
    assert [(f.name, f.value) for f in form.body.fields] == [("name", "ann"), ("note", "a b")]
    get = from_curl("curl -G http://127.0.0.1/s -d q=x -d page=2")
    assert get.method == "GET" and [(p.name, p.value) for p in get.params] == [
        ("q", "x"), ("page", "2")]
    # Audit: --data-urlencode with -G was encoded twice (the params encode what they
    # hold); and user:password@ in the URL went into the collection file, meant for git.
    encoded = from_curl("curl -G --data-urlencode 'q=hello world&more' "
                        "--data-urlencode 'x=a+b' -d 'y=c%20d' http://127.0.0.1:1/echo")
    assert [(p.name, p.value) for p in encoded.params] == [
        ("q", "hello world&more"), ("x", "a+b"), ("y", "c d")]
    creds = from_curl("curl 'http://admin:Sup3r%40Secret@127.0.0.1:18777/echo?a=1'")
    assert creds.url == "http://127.0.0.1:18777/echo?a=1"
    assert (creds.auth.type, creds.auth.username, creds.auth.password) == (
        "basic", "admin", "Sup3r@Secret")
    given = from_curl("curl -u ann:pw 'http://x:y@[::1]:8/p'")
    assert given.url == "http://[::1]:8/p" and given.auth.username == "ann"
    # Variables in the host or port stay as written (review).
    templated = from_curl("curl 'https://u:p@{{apiHost}}:{{port}}/x?q=1'")
    assert templated.url == "https://{{apiHost}}:{{port}}/x?q=1"
    assert (templated.auth.username, templated.auth.password) == ("u", "p")
    plain = from_curl("curl 127.0.0.1:9/x -d a=1 -XPUT")
    assert plain.method == "PUT" and plain.url == "http://127.0.0.1:9/x"
    assert plain.body.content_type == "application/x-www-form-urlencoded"
    for bad, status, words in [
        ("curl http://127.0.0.1/ -d @/etc/passwd", 400, "reads a local file"),
        ("curl http://127.0.0.1/ --data-binary @body.bin", 400, "reads a local file"),
        ("curl http://127.0.0.1/ -F f=@/etc/passwd", 400, "reads a local file"),
        ("curl http://127.0.0.1/ -b cookies.txt", 400, "cookie file"),
        ("curl 'http://127.0.0.1/", 422, "does not parse"),
        ("wget http://127.0.0.1/", 422, "starts with 'curl'"),
        ("curl -H 'A: b'", 422, "no URL"),
        ("curl http://127.0.0.1/ --proxy http://x", 422, "'--proxy' is not supported"),
    ]:
        with pytest.raises(ConvertProblem) as info:
            from_curl(bad)
        assert info.value.status == status and words in str(info.value)
        assert str(info.value).startswith("text: ")


def test_curl_as_browsers_copy_it() -> None:
    """Audit: DevTools' "Copy as cURL" writes bash's $'...' words (shlex: "No closing
    quotation", or a body that kept the '$') and -H 'X-Empty;' for an empty header (kept
    as a header named "X-Empty;", refused at every send)."""
    quoted = from_curl("curl http://127.0.0.1/x --data-raw $'{\"msg\":\"it\\'s \\u00e9\"}' "
                       "-H 'X-Empty;' -H 'Content-Type: application/json'")
    assert quoted.body.text == '{"msg":"it\'s é"}'
    assert [(h.name, h.value) for h in quoted.headers] == [
        ("X-Empty", ""), ("Content-Type", "application/json")]
    escaped = from_curl("curl http://127.0.0.1/x --data-raw $'{\"a\":\"x\\\\ny\"}'")
    assert json.loads(escaped.body.text) == {"a": "x\ny"}
    # A '$' before a closing quote is the word's own (review: 'pa$' lost its '$' and
    # swallowed what followed into one word).
    dollar = from_curl("curl http://127.0.0.1/x -d 'pa$' -H 'X-Re: ^foo$' -d \"a=1$\"")
    assert dollar.body.text == "pa$&a=1$"
    assert (dollar.headers[0].name, dollar.headers[0].value) == ("X-Re", "^foo$")
    with pytest.raises(ConvertProblem, match="not closed"):
        from_curl("curl http://127.0.0.1/x --data-raw $'open")


def test_export_round_trips_through_curl_and_httpx_code_runs() -> None:
    spec = RequestSpec.model_validate({
        "method": "PATCH", "url": "http://127.0.0.1:1/u?x=1", "params": [
            {"name": "q", "value": "a b"}], "headers": [{"name": "X-A", "value": "it's"}],
        "body": {"mode": "json", "text": '{"n": 1}'}, "auth": {"type": "bearer",
                                                              "token": "t0k"}})
    back = from_curl(to_curl(spec))
    assert back.method == "PATCH" and back.url == "http://127.0.0.1:1/u?x=1&q=a+b"
    assert ("Authorization", "Bearer t0k") in [(h.name, h.value) for h in back.headers]
    assert json.loads(back.body.text) == {"n": 1}
    code = to_httpx(spec)
    compile(code, "export.py", "exec")  # valid Python
    assert "httpx.request(" in code and "json={'n': 1}" in code
    assert "'Authorization': 'Bearer t0k'" in code


POSTMAN = {
    "info": {"name": "Shop", "schema":
             "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
    "variable": [{"key": "base", "value": "http://127.0.0.1:1"}],
    "item": [
        {"name": "Orders", "item": [
            {"name": "List orders", "event": [{"listen": "test"}],
             "request": {"method": "GET", "url": {"raw": "{{base}}/orders?limit=5"},
                         "header": [{"key": "Accept", "value": "application/json"},
                                    {"key": "X-Off", "value": "1", "disabled": True}],
                         "auth": {"type": "bearer", "bearer": [{"key": "token",
                                                                "value": "{{tok}}"}]}}},
            {"name": "Create order", "request": {
                "method": "POST", "url": "{{base}}/orders",
                "body": {"mode": "raw", "raw": "{\"id\": 1}",
                         "options": {"raw": {"language": "json"}}}}}]},
        {"name": "Login", "request": {"method": "POST", "url": "{{base}}/login", "body": {
            "mode": "urlencoded", "urlencoded": [{"key": "user", "value": "ann"}]}}},
    ]}

HAR = {"log": {"entries": [
    {"request": {"method": "POST", "url": "http://127.0.0.1:1/api?x=1", "headers": [
        {"name": ":authority", "value": "x"}, {"name": "Content-Type",
                                               "value": "application/json"},
        {"name": "Content-Length", "value": "9"}, {"name": "Accept", "value": "*/*"}],
        "postData": {"mimeType": "application/json", "text": "{\"a\": 1}"}}},
    {"request": {"method": "GET", "url": "http://127.0.0.1:1/img.png", "headers": []}}]}}

OPENAPI = {"openapi": "3.0.3", "info": {"title": "Pets"}, "servers": [{"url": "/v2"}],
           "components": {"schemas": {"Pet": {"type": "object", "required": ["name"],
                                              "properties": {"name": {"type": "string"},
                                                             "age": {"type": "integer"}}}},
                          "securitySchemes": {"key": {"type": "apiKey", "in": "header",
                                                      "name": "X-Key"}}},
           "paths": {"/pets/{petId}": {
               "parameters": [{"name": "petId", "in": "path", "required": True,
                               "schema": {"type": "integer", "example": 4}}],
               "get": {"operationId": "getPet", "tags": ["pets"], "security": [{"key": []}],
                       "parameters": [{"name": "full", "in": "query",
                                       "schema": {"type": "boolean"}}]},
               "put": {"operationId": "putPet", "tags": ["pets"], "requestBody": {
                   "content": {"application/json": {"schema": {
                       "$ref": "#/components/schemas/Pet"}}}}}}}}


POSTMAN_AUTH = {
    "info": {"name": "Inherited", "schema":
             "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
    "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiToken}}"}]},
    "variable": [
        {"key": "apiToken", "value": "pm-live-token-0123456789abcdef", "type": "secret"},
        {"key": "old", "value": "x", "disabled": True}],
    "item": [
        {"name": "User", "request": {"method": "GET", "url": {
            "raw": "{{baseUrl}}/echo/:userId?x=1", "variable": [
                {"key": "userId", "value": "42"}, {"key": "unset"}]}}},
        {"name": "Keyed", "auth": {"type": "apikey", "apikey": [
            {"key": "key", "value": "X-Key"}, {"key": "value", "value": "{{k}}"}]},
         "item": [{"name": "Inside", "request": {"method": "GET", "url": "{{baseUrl}}/k"}},
                  {"name": "Open", "request": {"method": "GET", "url": "{{baseUrl}}/o",
                                               "auth": {"type": "noauth"}}}]},
        {"name": "Query", "request": {"method": "POST", "url": "{{baseUrl}}/graphql", "body": {
            "mode": "graphql", "graphql": {"query": "{ me { id } }",
                                           "variables": "{\"a\": 1}"}}}},
        {"name": "Old style", "request": {"method": "GET", "url": "{{baseUrl}}/b",
                                          "auth": {"type": "basic", "basic": {
                                              "username": "ann", "password": "pw"}}}},
    ]}


def test_postman_auth_path_variables_graphql_and_secret_variables() -> None:
    """Audit: a collection's (and a folder's) auth was dropped from every request, ':id'
    path variables stayed in the URL with their values lost, GraphQL bodies were dropped,
    a disabled variable came in active and a secret one as a plain value."""
    _, variables, items, _ = from_postman(POSTMAN_AUTH)
    assert variables == [{"name": "apiToken", "value": "pm-live-token-0123456789abcdef",
                          "secret": True}]
    specs = {spec.name: spec for _, spec in items}
    user = specs["User"]
    assert user.url == "{{baseUrl}}/echo/42?x=1"
    assert (user.auth.type, user.auth.token) == ("bearer", "{{apiToken}}")
    assert (specs["Inside"].auth.type, specs["Inside"].auth.key) == ("apikey", "X-Key")
    assert specs["Open"].auth.type == "none"
    query = specs["Query"]
    assert query.body.mode == "json"
    assert json.loads(query.body.text) == {"query": "{ me { id } }", "variables": {"a": 1}}
    old = specs["Old style"].auth  # v2.0 writes auth values as an object
    assert (old.type, old.username, old.password) == ("basic", "ann", "pw")


def test_postman_har_and_openapi_import() -> None:
    name, variables, items, scripts = from_postman(POSTMAN)
    assert name == "Shop" and variables == [{"name": "base", "value": "http://127.0.0.1:1",
                                             "secret": False}]
    assert scripts == 1  # test scripts are not run; the count is reported
    # Numbered in Postman's order (audit: a run went alphabetically).
    assert [p for p, _ in items] == ["1-Orders/1-list-orders.request.json",
                                     "1-Orders/2-create-order.request.json",
                                     "2-login.request.json"]
    listed = items[0][1]
    assert listed.url == "{{base}}/orders?limit=5" and listed.auth.token == "{{tok}}"
    assert listed.headers[1].enabled is False
    assert items[1][1].body.mode == "json" and items[2][1].body.mode == "form"
    with pytest.raises(ConvertProblem, match="not a Postman collection"):
        from_postman({"info": {}})

    har = from_har(HAR)
    first = har[0][1]
    assert first.method == "POST" and first.body.mode == "json"
    assert [h.name for h in first.headers] == ["Content-Type", "Accept"]
    assert len(har) == 2
    with pytest.raises(ConvertProblem, match="not a HAR file"):
        from_har({"log": {}})

    title, server, ops, path_vars = from_openapi(OPENAPI)
    assert (title, server, path_vars) == ("Pets", "/v2", {"petId": "4"})
    assert [p for p, _ in ops] == ["pets/1-getpet.request.json", "pets/3-putpet.request.json"]
    get, put = ops[0][1], ops[1][1]
    assert get.url == "{{baseUrl}}/pets/{{petId}}" and get.params[0].enabled is False
    assert (get.auth.type, get.auth.key) == ("apikey", "X-Key")
    assert json.loads(put.body.text) == {"name": "text"}
    with pytest.raises(ConvertProblem, match="not an OpenAPI 3"):
        from_openapi({"swagger": "2.0"})


@pytest.mark.asyncio
async def test_ready_collections_for_the_apps_own_apis(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app, loopback_server() as srv, app.client() as client:
        v1 = await client.post("import/builtin", json={"which": "v1"})
        assert v1.status_code == 200, v1.text
        async with app.client() as raw:
            spec = (await raw.get(f"{app.url}api/v1/openapi.json")).json()
        operations = sum(1 for item in spec["paths"].values() for m in item
                         if m.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"))
        assert len(v1.json()["created"]) == operations > 50
        assert (await client.post("import/builtin", json={"which": "v1"})).status_code == 409
        # Not this start's port: the collection must still run after a restart on another.
        tree = (await client.get("collections/PlexiChat v1")).json()
        assert tree["info"]["variables"][0] == {"name": "baseUrl", "secret": False,
                                                "value": "{{app_url}}/api/v1"}, tree["info"]

        # Fill in the local environment: the password goes to the secret store.
        name = await app.v1_user("carol")
        env = await client.put("collections/PlexiChat v1/environments/local", json={
            "name": "local", "variables": [{"name": "username", "value": name},
                                           {"name": "password", "value": PASSWORD,
                                            "secret": True}]})
        assert env.status_code == 200, env.text
        started = await client.post("run", json={
            "collection": "PlexiChat v1", "folder": "users", "environment": "local"})
        assert started.status_code == 202, started.text
        job = await wait_job(client, started.json()["id"])
        report = (await client.get(f"runs/{job['id']}")).json()
        assert report["results"][-1]["method"] == "DELETE"  # deletes run last
        me = next(r for r in report["results"] if r["path"].startswith("users/1-get-me")
                  and r["method"] == "GET")
        assert me["passed"] and me["status"] == 200, me  # logged in through the v1 helper

        app_collection = await client.post("import/builtin", json={"which": "app"})
        assert app_collection.status_code == 200
        health = next(p for p in app_collection.json()["created"] if "healthz" in p)
        sent = await client.post("send", json={
            "request": (await client.get("collections/PlexiChat app/request",
                                         params={"path": health})).json()["request"],
            "collection": "PlexiChat app"})
        assert sent.status_code == 200 and sent.json()["response"]["status"] == 200
        # The app token is added on the server and only for the app's own address.
        leak = await client.post("send", json={"request": {
            "url": srv.url + "/echo", "auth": {"type": "app"}}})
        assert leak.status_code == 403 and leak.json()["field"] == "auth.type"

        imported = await client.post("import", json={
            "kind": "curl", "collection": "Mine",
            "text": f"curl {srv.url}/echo -H 'Authorization: Bearer literal-secret'"})
        assert imported.status_code == 200, imported.text
        text = (await client.get("collections/Mine/request", params={
            "path": imported.json()["created"][0]})).json()["text"]
        assert "literal-secret" not in text  # secrets moved out on import too
        for kind, payload in [("postman", POSTMAN), ("har", HAR), ("openapi", OPENAPI)]:
            answer = await client.post("import", json={"kind": kind, "collection": kind,
                                                       "text": json.dumps(payload)})
            assert answer.status_code == 200, answer.text
        # A secret Postman variable goes to the secret store, not into the files.
        answer = await client.post("import", json={"kind": "postman", "collection": "pm",
                                                   "text": json.dumps(POSTMAN_AUTH)})
        assert answer.status_code == 200, answer.text
        tree = await client.get("collections/pm")
        assert tree.status_code == 200 and "pm-live-token" not in tree.text
        # A name {{...}} cannot spell is left out and said (it failed the whole import).
        spaced = {**POSTMAN, "variable": [*POSTMAN["variable"],
                                          {"key": "base url", "value": "x"}]}
        answer = await client.post("import", json={"kind": "postman", "collection": "sp",
                                                   "text": json.dumps(spaced)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["variables_skipped"] == ["base url"]
        holding = [p.name for p in tmp_path.rglob("*.json") if "pm-live-token" in p.read_text()]
        assert holding in ([], ["secrets.json"])  # the 0600 store (or the keyring), only
        refused = await client.post("import", json={
            "kind": "curl", "collection": "Mine", "text": "curl -d @/etc/passwd http://x/"})
        assert refused.status_code == 400 and refused.json()["field"] == "text"
        bad = await client.post("import", json={"kind": "har", "collection": "Mine",
                                                "text": "{"})
        assert bad.status_code == 422 and bad.json()["field"] == "text"
        exported = await client.post("export", json={"kind": "curl", "request": {
            "url": srv.url + "/echo"}})
        assert exported.json()["code"] == f"curl {srv.url}/echo"
