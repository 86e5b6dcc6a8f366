"""Captures and assertions: each kind passes and fails with a readable message; captured
values chain into the next request; the runner reads CSV and writes JUnit and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from api_tester.checks import CheckProblem, capture, check
from api_tester.engine import Engine, junit, parse_csv, run
from api_tester.models import Assertion, Capture, RequestSpec
from api_tester.sender import Exchange, RequestProblem, Sender
from api_tester.storage import Collections, SecretStore
from api_tester.testing import loopback_server


def exchange(body: Any = None, status: int = 200, headers: Any = (),
             total_ms: float = 12.5) -> Exchange:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return Exchange("GET", "http://127.0.0.1/x", [], 0, status, "OK", "HTTP/1.1",
                    [("Content-Type", "application/json"), *headers], raw, False, 1.0,
                    total_ms)


DOC = {"user": {"id": 7, "name": "Ann", "roles": ["admin", "dev"]}, "items": [1, 2, 3]}

CASES = [
    # (assertion, passes, words of the failure message)
    ({"source": "status", "op": "eq", "value": 200}, True, ""),
    ({"source": "status", "op": "eq", "value": 201}, False, "expected eq 201, found 200"),
    ({"source": "status", "op": "lt", "value": 300}, True, ""),
    ({"source": "header", "expr": "x-id", "op": "eq", "value": "abc"}, True, ""),
    ({"source": "header", "expr": "X-Missing", "op": "exists"}, False, "found nothing"),
    ({"source": "jsonpath", "expr": "$.user.name", "op": "eq", "value": "Ann"}, True, ""),
    ({"source": "jsonpath", "expr": "$.user.id", "op": "ge", "value": 8}, False,
     "jsonpath '$.user.id': expected ge 8, found 7"),
    ({"source": "jsonpath", "expr": "$.user.roles", "op": "contains", "value": "dev"}, True,
     ""),
    ({"source": "jsonpath", "expr": "$.items[?(@ > 1)]", "op": "eq", "value": [2, 3]}, True,
     ""),
    # One match of a filter is still a list (seen in session 19: it became the item, so
    # the same assertion passed or failed with how much the data held).
    ({"source": "jsonpath", "expr": "$.items[?(@ > 2)]", "op": "eq", "value": [3]}, True,
     ""),
    ({"source": "jsonpath", "expr": "$.items[2:]", "op": "eq", "value": [3]}, True, ""),
    ({"source": "jsonpath", "expr": "$..name", "op": "eq", "value": ["Ann"]}, True, ""),
    ({"source": "jsonpath", "expr": "$.items[2]", "op": "eq", "value": 3}, True, ""),
    ({"source": "jsonpath", "expr": "$.items[*] + 1", "op": "eq", "value": [2, 3, 4]}, True,
     ""),
    ({"source": "jsonpath", "expr": "$.user.id + 1", "op": "eq", "value": 8}, True, ""),
    ({"source": "jsonpath", "expr": "$.nope", "op": "not_exists"}, True, ""),
    ({"source": "regex", "expr": r'"name": "(\w+)"', "op": "eq", "value": "Ann"}, True, ""),
    ({"source": "regex", "expr": "Bob", "op": "exists"}, False, "found nothing"),
    ({"source": "duration", "op": "lt", "value": 1000}, True, ""),
    ({"source": "duration", "op": "lt", "value": 5}, False, "expected lt 5, found 12.5"),
    ({"source": "body", "op": "contains", "value": "roles"}, True, ""),
    ({"source": "schema", "op": "valid", "value": {
        "type": "object", "required": ["user"],
        "properties": {"user": {"type": "object", "properties": {"id": {"type": "integer"}}}}}},
     True, ""),
    ({"source": "schema", "op": "valid", "value": {
        "type": "object", "properties": {"user": {"properties": {"id": {"type": "string"}}}}}},
     False, "schema: $['user']['id']: 7 is not of type 'string'"),
    ({"source": "jsonpath", "expr": "$[", "op": "exists"}, False, "is not valid"),
    ({"source": "schema", "op": "valid", "value": {"type": 12}}, False,
     "not a valid JSON Schema"),
]


@pytest.mark.parametrize(("assertion", "passes", "words"), CASES)
def test_assertion_kinds(assertion: dict[str, Any], passes: bool, words: str) -> None:
    result = check(exchange(DOC, headers=[("X-Id", "abc")]), Assertion(**assertion))
    assert result["passed"] is passes, result
    assert words in result["message"]
    assert result["assertion"].startswith(assertion["source"])


FLAGS = {"ok": True, "f": False, "n": None, "count": 3, "obj": {"ok": True, "k": "v"},
         "list": [1, {"a": True}]}


@pytest.mark.parametrize(("expr", "op", "value", "passes"), [
    # Audit: Python's equality made true eq 1 and null eq "None" pass, and an expected
    # value from a variable (text: "true", "null") could never match.
    ("$.ok", "eq", 1, False), ("$.f", "eq", 0, False), ("$.n", "eq", "None", False),
    ("$.ok", "eq", True, True), ("$.ok", "eq", "true", True), ("$.f", "eq", "false", True),
    ("$.n", "eq", None, True), ("$.n", "eq", "null", True), ("$.ok", "ne", "1", True),
    ("$.count", "eq", "3", True), ("$.count", "eq", 3.0, True),
    ("$.obj", "eq", '{"ok": true, "k": "v"}', True),
    # An object expected in an object (or a list) was a 500: Python's "in" hashed it.
    ("$.obj", "contains", {"ok": True}, True), ("$.obj", "contains", {"ok": 1}, False),
    ("$.obj", "contains", "k", True), ("$.obj", "contains", [1], False),
    ("$.list", "contains", {"a": True}, True), ("$.list", "contains", "1", True),
    ("$.list", "not_contains", 2, True),
    # Inside objects and lists too, and JSON text is only text (review).
    ("$.obj", "eq", {"ok": 1, "k": "v"}, False), ("$.list", "eq", [True, {"a": True}], False),
    ("$.list", "contains", {"a": 1}, False), ("$.obj.k", "eq", "v", True),
])
def test_equality_and_contains_as_json_means_them(expr: str, op: str, value: Any,
                                                  passes: bool) -> None:
    result = check(exchange(FLAGS), Assertion(source="jsonpath", expr=expr, op=op,
                                              value=value))
    assert result["passed"] is passes, result


def test_text_sources_stand_for_what_they_spell() -> None:
    """A header or a regex group is text by nature: 42 and true match "42" and "true"
    there; in a JSON body the string "true" is not true."""
    spelled = exchange({"flag": "true"}, headers=[("X-Count", "42"), ("X-On", "true")])
    for assertion, passes in (
            ({"source": "header", "expr": "x-count", "op": "eq", "value": 42}, True),
            ({"source": "header", "expr": "x-on", "op": "eq", "value": True}, True),
            ({"source": "jsonpath", "expr": "$.flag", "op": "eq", "value": True}, False),
            ({"source": "jsonpath", "expr": "$.flag", "op": "eq", "value": "true"}, True)):
        assert check(spelled, Assertion(**assertion))["passed"] is passes, assertion


def test_a_declared_charset_is_how_the_body_is_read() -> None:
    """Audit: a text/plain; charset=iso-8859-1 body 'caf\\xe9' was read as UTF-8
    ('caf\\ufffd'), so no assertion on it could match."""
    latin = Exchange("GET", "http://127.0.0.1/x", [], 0, 200, "OK", "HTTP/1.1",
                     [("Content-Type", "text/plain; charset=iso-8859-1")], b"caf\xe9",
                     False, 1.0, 2.0)
    for assertion in ({"source": "body", "op": "contains", "value": "café"},
                      {"source": "regex", "expr": "caf(.)", "op": "eq", "value": "é"}):
        assert check(latin, Assertion(**assertion))["passed"], assertion
    assert latin.view(1000)["body"] == "café"


def test_captures() -> None:
    ex = exchange(DOC, headers=[("Location", "/users/7")])
    assert capture(ex, Capture(name="id", source="jsonpath", expr="$.user.id")) == "7"
    assert capture(ex, Capture(name="r", source="jsonpath", expr="$.user.roles")) == \
        '["admin", "dev"]'
    assert capture(ex, Capture(name="loc", source="header", expr="location")) == "/users/7"
    assert capture(ex, Capture(name="s", source="status")) == "200"
    # A filter's one match is captured as itself (to put in a URL), several as a list; a
    # path naming a one-item list keeps the list.
    assert capture(ex, Capture(name="f", source="jsonpath", expr="$.items[?(@ > 2)]")) == "3"
    assert capture(ex, Capture(name="g", source="jsonpath", expr="$.items[?(@ > 1)]")) == \
        "[2, 3]"
    one = exchange({"roles": ["dev"]})
    assert capture(one, Capture(name="r", source="jsonpath", expr="$.roles")) == '["dev"]'
    with pytest.raises(CheckProblem, match=r"capture 'x': jsonpath '\$.none' found nothing"):
        capture(ex, Capture(name="x", source="jsonpath", expr="$.none"))
    with pytest.raises(CheckProblem, match="not JSON"):
        capture(exchange(b"<html>"), Capture(name="x", source="jsonpath", expr="$.a"))


def test_csv_rows_and_errors() -> None:
    assert parse_csv("\ufeffname;code\nann;200\nbob;404\n") == [
        {"name": "ann", "code": "200"}, {"name": "bob", "code": "404"}]
    assert parse_csv('a,b\n"x, y","line\nbreak"\n') == [{"a": "x, y", "b": "line\nbreak"}]
    with pytest.raises(RequestProblem, match="csv: line 3: more values"):
        parse_csv("a,b\n1,2\n1,2,3\n")


@pytest.mark.asyncio
async def test_chained_run_with_csv_stop_on_fail_and_reports(tmp_path: Path) -> None:
    eng = Engine(Collections(tmp_path), SecretStore(tmp_path, "file"), Sender())
    async with loopback_server() as srv:
        items = [
            ("login.request.json", RequestSpec.model_validate({
                "name": "login", "url": "{{base}}/users/{{name}}",
                "captures": [{"name": "token", "source": "jsonpath", "expr": "$.token"}],
                "asserts": [{"source": "status", "op": "eq", "value": 200}]})),
            ("use.request.json", RequestSpec.model_validate({
                "name": "use", "url": "{{base}}/echo",
                "headers": [{"name": "X-Token", "value": "{{token}}"}],
                "asserts": [{"source": "jsonpath", "expr": "$.headers['x-token']",
                             "op": "eq", "value": "tok-{{name}}"},
                            {"source": "jsonpath", "expr": "$.headers['x-token']",
                             "op": "ne", "value": "tok-bob"}]})),
        ]
        seen: list[tuple[int, int]] = []
        report = await run(eng, items, {"base": srv.url}, parse_csv("name\nann\nbob\ncid\n"),
                           on_result=lambda r, done, total: seen.append((done, total)))
        # Expected values use variables too; only bob's row breaks the second assertion.
        # A value captured under a secret name ("token") is masked in the report, and
        # wherever it appears in it (review finding: captured tokens were in clear).
        results = report["results"]
        assert [r["captures"].get("token") for r in results[::2]] == ["…", "…", "…"]
        assert "tok-cid" not in json.dumps(report)
        assert seen[-1] == (6, 6) and report["executed"] == 6
        assert [r["passed"] for r in results] == [True, True, True, False, True, True]
        assert results[3]["assertions"][0]["passed"] is True
        assert "expected ne '…', found '…'" in results[3]["assertions"][1]["message"]

        stopped = await run(eng, items, {"base": srv.url}, parse_csv("name\nann\nbob\n"),
                            stop_on_fail=True)
        assert stopped["stopped_early"] and stopped["executed"] == 4  # bob's "use" failed

        missing = await run(eng, items[1:], {"base": srv.url})
        assert missing["failed"] == 1
        assert missing["results"][0]["error"].startswith(
            "headers[0].value: variable 'token' is not defined")

    xml = junit(report, "demo")
    suite = ET.fromstring(xml.split("\n", 1)[1])
    assert suite.tag == "testsuite" and suite.get("tests") == "6"
    assert suite.get("failures") == str(report["failed"])
    cases = suite.findall("testcase")
    assert cases[0].get("name") == "login [1]" and cases[0].get("classname") == "demo.login"
    assert cases[3].find("failure") is not None
    error_xml = ET.fromstring(junit(missing, "m").split("\n", 1)[1])
    assert error_xml.find("testcase/error") is not None
    json.dumps(report)  # the JSON report is serialisable as is
