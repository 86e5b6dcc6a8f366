"""Collections on disk: byte-stable files, the tree, bad names, and secrets kept out."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from api_tester.models import CollectionInfo, Environment, RequestSpec
from api_tester.storage import Collections, SecretStore, StorageProblem, dumps, externalize

FULL = RequestSpec.model_validate({
    "name": "Create user", "method": "POST", "url": "{{base}}/users?x=1",
    "params": [{"name": "verbose", "value": "1"}, {"name": "off", "value": "", "enabled": False}],
    "headers": [{"name": "Accept", "value": "application/json"}],
    "body": {"mode": "json", "text": "{\n  \"name\": \"Zoë\"\n}"},
    "auth": {"type": "bearer", "token": "{{token}}"},
    "captures": [{"name": "id", "source": "jsonpath", "expr": "$.id"}],
    "asserts": [{"source": "status", "op": "eq", "value": 201},
                {"source": "schema", "op": "valid", "value": {"type": "object"}}],
    "description": "Makes a user.\nTwo lines."})


def test_files_round_trip_byte_for_byte(tmp_path: Path) -> None:
    store = Collections(tmp_path)
    store.create("Demo", CollectionInfo(name="Demo", description="d"))
    store.write("Demo", "users/create.request.json", FULL)
    file = tmp_path / "Demo" / "users" / "create.request.json"
    first = file.read_bytes()
    # Human-readable and diff-friendly: one field per line, UTF-8 as is, final newline.
    assert first.endswith(b"}\n") and "Zoë".encode() in first and b'"method": "POST"' in first
    loaded = store.read("Demo", "users/create.request.json")
    assert loaded == FULL
    store.write("Demo", "users/create.request.json", loaded)
    assert file.read_bytes() == first
    # A hand edit in the same style survives a load and save untouched too.
    edited = first.replace(b'"Create user"', b'"Create a user"')
    file.write_bytes(edited)
    store.write("Demo", "users/create.request.json", store.read("Demo",
                                                                "users/create.request.json"))
    assert file.read_bytes() == edited
    # Defaults are left out, so a minimal request is a minimal file.
    assert dumps(RequestSpec(url="http://127.0.0.1/")) == '{\n  "url": "http://127.0.0.1/"\n}\n'

    store.write("Demo", "a-first.request.json", RequestSpec(name="First", url="http://x/"))
    tree = store.tree("Demo")
    assert [i["name"] for i in tree["items"]] == ["First", "users"]
    assert tree["items"][1]["items"][0] == {"type": "request", "name": "Create a user",
                                            "method": "POST",
                                            "path": "users/create.request.json"}
    assert [p for p, _ in store.requests("Demo")] == ["a-first.request.json",
                                                       "users/create.request.json"]
    assert [p for p, _ in store.requests("Demo", "users")] == ["users/create.request.json"]


@pytest.mark.parametrize(("collection", "path", "words"), [
    ("../x", "a.request.json", "collection: '../x' must be"),
    ("Demo", "../../etc/x.request.json", "path: '../../etc/x.request.json' contains '..'"),
    ("Demo", "/etc/x.request.json", "is outside the allowed folder"),
    ("Demo", "a.txt", "must end with .request.json"),
    ("Demo", "environments/x.request.json", "reserved or hidden"),
    ("Demo", "a\x00.request.json", "NUL"),
    ("Nope", "a.request.json", "'Nope' does not exist"),
])
def test_bad_names_are_refused(tmp_path: Path, collection: str, path: str, words: str) -> None:
    store = Collections(tmp_path)
    store.create("Demo")
    with pytest.raises(StorageProblem) as info:
        store.write(collection, path, FULL)
    assert words in str(info.value)


def test_a_broken_file_is_named_not_fatal(tmp_path: Path) -> None:
    store = Collections(tmp_path)
    store.create("Demo")
    (tmp_path / "Demo" / "bad.request.json").write_text('{"url": 3, "surprise": 1}')
    with pytest.raises(StorageProblem, match=r"Demo/bad\.request\.json: url: "):
        store.read("Demo", "bad.request.json")
    item = store.tree("Demo")["items"][0]
    assert item["method"] == "?" and "surprise" in item["error"]


def test_secrets_never_reach_the_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secrets = SecretStore(data, "file")
    assert secrets.backend == "file"
    spec = RequestSpec.model_validate({
        "url": "http://127.0.0.1/", "auth": {"type": "basic", "username": "ann",
                                             "password": "hunter2-literal"},
        "headers": [{"name": "Cookie", "value": "sid=cookie-literal"},
                    {"name": "X-Plain", "value": "visible"}]})
    clean, moved = externalize(spec, "users/login")
    assert clean.auth.password == "{{secret.users_login.password}}"
    assert clean.headers[0].value == "{{secret.users_login.cookie}}"
    assert clean.headers[1].value == "visible"
    assert moved == {"secret.users_login.password": "hunter2-literal",
                     "secret.users_login.cookie": "sid=cookie-literal"}
    for name, value in moved.items():
        secrets.set(f"Demo:{name}", value)
    assert secrets.values("Demo:secret.") == {"users_login.password": "hunter2-literal",
                                              "users_login.cookie": "sid=cookie-literal"}
    assert stat.S_IMODE(os.stat(data / "secrets.json").st_mode) == 0o600
    store = Collections(tmp_path / "collections")
    store.create("Demo")
    store.write("Demo", "users/login.request.json", clean)
    store.write_env("Demo", Environment.model_validate({"name": "dev", "variables": [
        {"name": "base", "value": "http://127.0.0.1"}, {"name": "pw", "secret": True}]}))
    everything = b"".join(p.read_bytes() for p in (tmp_path / "collections").rglob("*")
                          if p.is_file())
    assert b"hunter2-literal" not in everything and b"cookie-literal" not in everything
    # A value already written as a variable stays as it is.
    again, none = externalize(clean, "users/login")
    assert again == clean and none == {}
    secrets.delete("Demo:secret.users_login.cookie")
    assert secrets.names("Demo:") == ["Demo:secret.users_login.password"]


def test_credentials_in_a_body_are_moved_out_too() -> None:
    """Audit: password= and client_secret= form fields, and a JSON body's "password",
    went into the file meant for git as they were."""
    form = RequestSpec.model_validate({"url": "http://127.0.0.1/", "method": "POST", "body": {
        "mode": "form", "fields": [{"name": "password", "value": "hunter2-form"},
                                   {"name": "client_secret", "value": "cs-123456789"},
                                   {"name": "user", "value": "ann"}]}})
    clean, moved = externalize(form, "login")
    assert [f.value for f in clean.body.fields] == [
        "{{secret.login.body.password}}", "{{secret.login.body.client_secret}}", "ann"]
    assert set(moved.values()) == {"hunter2-form", "cs-123456789"}
    as_json = RequestSpec.model_validate({"url": "http://127.0.0.1/", "method": "POST",
                                          "body": {"mode": "json", "text":
                                                   '{"user": "ann", "password": "hunter2"}'}})
    clean, moved = externalize(as_json, "login")
    assert json.loads(clean.body.text) == {"user": "ann",
                                           "password": "{{secret.login.body.password}}"}
    assert moved == {"secret.login.body.password": "hunter2"}
    again, none = externalize(clean, "login")  # saved again: nothing more to move
    assert again == clean and none == {}


def test_credential_names_by_their_look() -> None:
    """Review of the word rule: names written as one word (JSESSIONID, apitoken,
    clientsecret), plurals and capitals run into lower case (APIkey, CSRFtoken) had fallen
    out, so they were written to git, shown and sent across redirects in clear."""
    from api_tester.redact import is_secret_field, is_secret_name

    secret = ["JSESSIONID", "csrftoken", "csrfmiddlewaretoken", "apitoken", "refreshtoken",
              "authkey", "appkey", "apisecret", "clientsecret", "privatekey", "passkey",
              "bearertoken", "jwttoken", "authcode", "oauth2", "tokens", "api_keys", "apiKeys",
              "access_tokens", "APIkey", "CSRFtoken", "JWTtoken", "AUTHkey", "IDtoken", "X-API-KEY",
              "X-Auth", "PRIVATE-TOKEN", "x-amz-security-token", "sessionid", "X-CSRF-Token",
              "Authorization", "Cookie", "X-Hub-Signature-256", "sig", "xAuthToken", "X-Session"]
    plain = ["author", ":authority", "design", "keywords", "monkey", "signal", "assign", "Accept",
             "page"]
    assert [n for n in secret if not is_secret_name(n)] == []
    assert [n for n in plain if is_secret_name(n)] == []
    fields = ["password", "pwd", "client_secret", "apiKey", "refresh_token", "id_token",
              "privateKey", "authorization", "cookie", "session_id", "signature",
              "csrfmiddlewaretoken", "tokens", "password_confirmation"]
    data = ["key", "keys", "sig", "session", "token_type", "token_expires", "key_length", "author",
            "keywords"]
    assert [n for n in fields if not is_secret_field(n)] == []
    assert [n for n in data if is_secret_field(n)] == []


def test_only_credential_names_are_moved_and_the_body_stays_as_written() -> None:
    """Review: names were matched by substring ("author" holds "auth", "design" "sig",
    "keywords" "key": all three went to the secret store), and a JSON body with a password
    was read and written again (duplicate keys, 1e400 and number spellings lost)."""
    spec = RequestSpec.model_validate({
        "url": "http://127.0.0.1/?author=ann&api_key=k-123456", "method": "POST",
        "params": [{"name": "design", "value": "flat"}, {"name": "sig", "value": "s-1"}],
        "headers": [{"name": "X-Keywords", "value": "a,b"},
                    {"name": "xAuthToken", "value": "t-1"}],
        "body": {"mode": "form", "fields": [{"name": "author", "value": "ann"},
                                            {"name": "token_type", "value": "bearer"},
                                            {"name": "refreshToken", "value": "r-1"}]}})
    clean, moved = externalize(spec, "q")
    assert clean.url == "http://127.0.0.1/?author=ann&api_key={{secret.q.url.query.api_key}}"
    assert [p.value for p in clean.params] == ["flat", "{{secret.q.query.sig}}"]
    assert [h.value for h in clean.headers] == ["a,b", "{{secret.q.xauthtoken}}"]
    assert [f.value for f in clean.body.fields] == [
        "ann", "bearer", "{{secret.q.body.refreshtoken}}"]
    assert set(moved.values()) == {"k-123456", "s-1", "t-1", "r-1"}
    written = ('{\n  "amount": 1.50, "big": 1e400, "tag": "x", "tag": "y",\n'
               '  "password": "hunter\\u0032", "nested": {"password": 1}}')
    body = RequestSpec.model_validate({"url": "http://127.0.0.1/", "method": "POST",
                                       "body": {"mode": "json", "text": written}})
    clean, moved = externalize(body, "pay")
    assert clean.body.text == written.replace('"hunter\\u0032"',
                                              '"{{secret.pay.body.password}}"')
    assert moved == {"secret.pay.body.password": "hunter2"}
    # Written twice at the top (parsers differ on which counts): left as it is.
    twice = RequestSpec.model_validate({"url": "http://127.0.0.1/", "method": "POST", "body": {
        "mode": "json", "text": '{"password": "a-1", "password": "b-2"}'}})
    assert externalize(twice, "t") == (twice, {})
    listed = twice.model_copy(update={"body": twice.body.model_copy(update={
        "text": '[["password", "p"], 1]'})})
    assert externalize(listed, "t") == (listed, {})  # not an object: nothing to move
    # The same key in a nested object (before or after) or inside a string: the top-level
    # one moves, the others stay (review: the top-level one stayed in the file).
    for text in ('{"password": "x-1", "user": {"password": "x-1"}}',
                 '{"user": {"password": "x-1"}, "note": "\\"password\\": \\"x-1\\"", '
                 '"password" :\n "x-1"}'):
        nested = RequestSpec.model_validate({"url": "http://127.0.0.1/", "method": "POST",
                                             "body": {"mode": "json", "text": text}})
        clean, moved = externalize(nested, "n")
        assert moved == {"secret.n.body.password": "x-1"}, text
        after = json.loads(clean.body.text)
        assert after["password"] == "{{secret.n.body.password}}", text
        assert after["user"] == {"password": "x-1"}, text


def test_a_credential_in_the_urls_own_query_is_moved_out_too() -> None:
    """A pasted (or curl-imported) URL kept ?api_key=... in the collection file in clear,
    while the same name in the params list went to the secret store."""
    spec = RequestSpec.model_validate({
        "url": "http://127.0.0.1:9/x?page=2&api_key=LEAKED%2Fkey&token={{t}}&Access_Token="
               "abc#frag"})
    clean, moved = externalize(spec, "q/k")
    assert clean.url == ("http://127.0.0.1:9/x?page=2&api_key={{secret.q_k.url.query.api_key}}"
                         "&token={{t}}&Access_Token={{secret.q_k.url.query.access_token}}#frag")
    # Stored as written in the URL: substituted back, the request is the same.
    assert moved == {"secret.q_k.url.query.api_key": "LEAKED%2Fkey",
                     "secret.q_k.url.query.access_token": "abc"}
    assert externalize(clean, "q/k") == (clean, {})
    # Repeated names (or names with the same slug) each keep their own value.
    twice = RequestSpec.model_validate({
        "url": "http://127.0.0.1/?token=AAA&token=BBB&api-key=K1&api_key=K2&token=AAA"})
    clean, moved = externalize(twice, "r")
    assert clean.url == ("http://127.0.0.1/?token={{secret.r.url.query.token}}"
                         "&token={{secret.r.url.query.token.2}}"
                         "&api-key={{secret.r.url.query.api_key}}"
                         "&api_key={{secret.r.url.query.api_key.2}}"
                         "&token={{secret.r.url.query.token}}")
    assert moved == {"secret.r.url.query.token": "AAA", "secret.r.url.query.token.2": "BBB",
                     "secret.r.url.query.api_key": "K1",
                     "secret.r.url.query.api_key.2": "K2"}
    # The second edited later: its new value must not take the first one's name.
    edited = clean.model_copy(update={"url": clean.url.replace(
        "token={{secret.r.url.query.token.2}}", "token=CCC")})
    again, moved_again = externalize(edited, "r")
    assert moved_again == {"secret.r.url.query.token.2": "CCC"}  # its own name again
    assert again.url.startswith("http://127.0.0.1/?token={{secret.r.url.query.token}}"
                                "&token={{secret.r.url.query.token.2}}")  # A keeps its own
    plain = RequestSpec.model_validate({"url": "http://127.0.0.1/?q=a&b"})
    assert externalize(plain, "p") == (plain, {})


def test_a_requests_own_secret_names_are_its_own_through_a_linked_folder(tmp_path: Path
                                                                           ) -> None:
    """Review finding: with the collections folder reached through a link, a request's
    own file was not recognised as its own, so its names counted as another request's
    and each edit of its token stored a new secret (the old one left behind)."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    store = Collections(tmp_path / "linked")
    store.create("Demo")
    spec = RequestSpec.model_validate({"url": "http://127.0.0.1/",
                                       "auth": {"type": "bearer", "token": "t1"}})
    clean, moved = externalize(spec, "users/get", store.secret_refs("Demo"))
    store.write("Demo", "users/get.request.json", clean)
    assert store.secret_refs("Demo", "users/get.request.json") == set()
    _, moved_again = externalize(
        RequestSpec.model_validate({"url": "http://127.0.0.1/",
                                    "auth": {"type": "bearer", "token": "t2"}}),
        "users/get", store.secret_refs("Demo", "users/get.request.json"))
    assert set(moved_again) == set(moved)  # the same name, its value replaced
