"""Exports of a stored scan: JSON (everything), CSV (files, functions or issues) and
SARIF 2.1.0 (issues, one run per tool, so code-scanning viewers show each tool's rules)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import quote

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_URIS = {
    "code_analyzer": "https://github.com/rubik/radon",
    "ruff": "https://docs.astral.sh/ruff/",
    "bandit": "https://bandit.readthedocs.io/",
    "vulture": "https://github.com/jendrikseipp/vulture",
}
LEVELS = {"high": "error", "medium": "warning", "low": "note"}
CSV_KINDS = ("files", "functions", "issues")


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)


def to_csv(result: dict[str, Any], kind: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if kind == "files":
        writer.writerow(["path", "language", "loc", "sloc", "comments", "blank", "functions",
                         "complexity", "max_complexity", "mi", "halstead_volume"])
        for f in result["files"]:
            writer.writerow([f["path"], f["language"], f["loc"], f["sloc"], f["comments"],
                             f["blank"], len(f["functions"]), f["complexity"],
                             f["max_complexity"], "" if f["mi"] is None else f["mi"],
                             (f["halstead"] or {}).get("volume", "")])
    elif kind == "functions":
        writer.writerow(["path", "function", "line", "end_line", "complexity"])
        for f in result["files"]:
            for fn in f["functions"]:
                writer.writerow([f["path"], fn["name"], fn["line"], fn["end_line"],
                                 fn["complexity"]])
    else:
        writer.writerow(["severity", "tool", "rule", "path", "line", "column", "message",
                         "fix_available", "link"])
        for i in result["issues"]:
            writer.writerow([i["severity"], i["tool"], i["rule"], i["path"], i["line"],
                             i["column"], i["message"], i["fix_available"], i["link"] or ""])
    return out.getvalue()


def to_sarif(result: dict[str, Any]) -> dict[str, Any]:
    by_tool: dict[str, list[dict[str, Any]]] = {"code_analyzer": []}
    for issue in result["issues"]:
        by_tool.setdefault(issue["tool"], []).append(issue)
    folder = result["folder"].rstrip("/") + "/"
    runs = []
    for tool, issues in by_tool.items():
        rules: dict[str, dict[str, Any]] = {}
        results = []
        for issue in issues:
            if issue["rule"] not in rules:
                rule: dict[str, Any] = {"id": issue["rule"]}
                if issue.get("link"):
                    rule["helpUri"] = issue["link"]
                rules[issue["rule"]] = rule
            entry: dict[str, Any] = {
                "ruleId": issue["rule"],
                "ruleIndex": list(rules).index(issue["rule"]),
                "level": LEVELS.get(issue["severity"], "note"),
                "message": {"text": issue["message"] or issue["rule"]},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": quote(issue["path"]), "uriBaseId": "SRCROOT"},
                    "region": {"startLine": max(1, int(issue["line"])),
                               "startColumn": max(1, int(issue["column"]))}}}],
                "properties": {"severity": issue["severity"],
                               "fixAvailable": bool(issue.get("fix_available"))},
            }
            results.append(entry)
        runs.append({
            "tool": {"driver": {"name": tool, "informationUri": TOOL_URIS.get(
                tool, TOOL_URIS["code_analyzer"]), "rules": list(rules.values())}},
            "originalUriBaseIds": {"SRCROOT": {"uri": "file://" + quote(folder)}},
            "results": results,
        })
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}
