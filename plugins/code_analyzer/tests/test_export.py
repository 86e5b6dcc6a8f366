"""Exports: SARIF 2.1.0 validated against the OASIS schema shipped here, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from code_analyzer.export import to_csv, to_json, to_sarif
from code_analyzer.scan import ScanOptions, scan_folder

# Schemata/sarif-schema-2.1.0.json of the OASIS SARIF TC (errata 01), kept here so the
# test runs offline.
SCHEMA = json.loads((Path(__file__).with_name("sarif-schema-2.1.0.json")
                     ).read_text(encoding="utf-8"))
Files = Callable[[Path, dict[str, str | bytes]], None]


def validate(log: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory, make_files: Files) -> dict[str, Any]:
    """One real scan (ruff, bandit and vulture included) shared by the tests here."""
    tmp_path = tmp_path_factory.mktemp("export")
    make_files(tmp_path / "p", {
        "ruff.toml": "[lint]\nselect = ['F']\n",
        "my app/main.py": "import os\nimport subprocess\n\n\ndef go(c):\n"
                          "    return subprocess.call(c, shell=True)\n",
        "broken.py": "def f(:\n",
        "web/x.js": "function f(a) { return a ? 1 : 2; }\n",
    })
    return scan_folder(tmp_path / "p", None, ScanOptions())


def test_sarif_of_a_real_scan_validates(scanned: dict[str, Any]) -> None:
    log = to_sarif(scanned)
    validate(log)
    runs = {r["tool"]["driver"]["name"]: r for r in log["runs"]}
    assert set(runs) >= {"code_analyzer", "ruff", "bandit"}
    ruff = runs["ruff"]
    [result] = [r for r in ruff["results"] if r["ruleId"] == "F401"]
    loc = result["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "my%20app/main.py", "uriBaseId": "SRCROOT"}
    assert loc["region"]["startLine"] == 1 and result["level"] == "warning"
    assert ruff["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "F401"
    bandit = runs["bandit"]["results"]
    assert any(r["ruleId"] == "B602" and r["level"] == "error" for r in bandit)
    own = runs["code_analyzer"]["results"]
    assert [r["ruleId"] for r in own] == ["CA001"]


def test_an_empty_project_gives_a_valid_empty_report(tmp_path: Path) -> None:
    result = scan_folder(tmp_path, None, ScanOptions())
    log = to_sarif(result)
    validate(log)
    assert [r["results"] for r in log["runs"]] == [[]]
    assert result["summary"]["files"] == 0


def test_the_schema_rejects_a_broken_log(scanned: dict[str, Any]) -> None:
    log = to_sarif(scanned)
    log["runs"][0]["results"] = [{"level": "fatal", "message": {"text": "x"}}]
    with pytest.raises(jsonschema.ValidationError):
        validate(log)


def test_csv_and_json(scanned: dict[str, Any]) -> None:
    files = list(csv.DictReader(io.StringIO(to_csv(scanned, "files"))))
    assert [r["path"] for r in files] == ["broken.py", "my app/main.py", "web/x.js"]
    assert files[2]["language"] == "javascript" and files[2]["complexity"] == "2"
    functions = list(csv.DictReader(io.StringIO(to_csv(scanned, "functions"))))
    assert {(r["function"], r["complexity"]) for r in functions} == {("go", "1"), ("f", "2")}
    issues = list(csv.DictReader(io.StringIO(to_csv(scanned, "issues"))))
    assert issues[0]["severity"] == "high" and len(issues) == len(scanned["issues"])
    assert json.loads(to_json(scanned)) == scanned
