"""docs/api-v1.md's table of which bundled plugin uses which v1 route stays true.

The original promised that the plugins together use every non-administrator endpoint; the
table says, route by route, which plugins do and which routes none uses yet. It is derived,
not hand-kept: the server's discovery list gives the routes (with their ``admin`` flag), the
API integration layer's endpoint table maps a client method to its route, and each bundled
plugin's sources give the client methods it calls (``<anything>.<group>.<method>(...)``,
read with ``ast``, nothing imported). Each call must also be allowed by the plugin's
declared ``api_scopes``, or ``ctx.api`` would refuse it at run time.

When the test fails it prints the table as it should be; ``PLEXICHAT_UPDATE_DOCS=1`` makes
it write that table between the markers in docs/api-v1.md instead.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from plexichat_desktop.core.paths import bundled_plugins_dir
from plexichat_desktop.plugins.discovery import Source, scan_folder
from plexichat_desktop.plugins.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "api-v1.md"
START, END = "<!-- plugin-usage:start -->", "<!-- plugin-usage:end -->"
LAYER = "api_integration_layer"
NOBODY = "none yet"


def layer_modules():  # type: ignore[no-untyped-def]
    root = str(bundled_plugins_dir() / LAYER)
    if root not in sys.path:
        sys.path.insert(0, root)
    from api_integration_layer import endpoints

    return endpoints


def method_endpoints(names: set[str]) -> dict[tuple[str, str], set[str]]:
    """(group attribute, method) -> endpoint names the client method calls, read from
    groups.py: the endpoint-name strings in its body, and those of the sibling methods it
    calls through ``self``."""
    source = (bundled_plugins_dir() / LAYER / LAYER / "groups.py").read_text()
    tree = ast.parse(source)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    attribute_of: dict[str, str] = {}
    for node in ast.walk(classes["Groups"]):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and isinstance(node.targets[0], ast.Attribute)):
            attribute_of[node.value.func.id] = node.targets[0].attr
    out: dict[tuple[str, str], set[str]] = {}
    for class_name, attr in attribute_of.items():
        direct: dict[str, set[str]] = {}
        calls: dict[str, set[str]] = {}
        for item in classes[class_name].body:
            if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            direct[item.name] = {n.value for n in ast.walk(item) if isinstance(n, ast.Constant)
                                 and isinstance(n.value, str) and n.value in names}
            calls[item.name] = {n.attr for n in ast.walk(item) if isinstance(n, ast.Attribute)
                                and isinstance(n.value, ast.Name) and n.value.id == "self"}
        for method, used in direct.items():
            found = set(used)
            for other in calls[method] & direct.keys():
                found |= direct[other]
            out[attr, method] = found
    return out


def plugin_calls(package: Path, known: dict[tuple[str, str], set[str]]) -> set[str]:
    """Endpoint names a plugin's package calls through the client (its tests and docs
    scripts set up data as any client would, so they do not count)."""
    used: set[str] = set()
    groups = {group for group, _ in known}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr in groups):
                used |= known.get((node.func.value.attr, node.func.attr), set())
    return used


# Both tests read it (every bundled plugin's sources parsed, about a second of CPU), and the
# sources do not change while the tests run: worked out once per process.
@functools.cache
def usage() -> tuple[dict[str, set[str]], list[str]]:
    """(endpoint name -> plugin ids, problems with declared scopes)."""
    endpoints = layer_modules()
    known = method_endpoints(set(endpoints.ENDPOINTS))
    users: dict[str, set[str]] = defaultdict(set)
    problems = []
    for candidate in scan_folder(bundled_plugins_dir(), Source.BUNDLED):
        manifest, _ = load_manifest(candidate.manifest_path)
        if manifest.id == LAYER:
            continue
        granted = manifest.permissions.api_scopes
        package = candidate.root / manifest.module.split(".", 1)[0]
        for name in sorted(plugin_calls(package, known)):
            users[name].add(manifest.id)
            scope = endpoints.ENDPOINTS[name].scope
            if not any(endpoints.scope_matches(g, scope) for g in granted):
                problems.append(f"{manifest.id} calls {name} but does not declare '{scope}' "
                                f"in [permissions] api_scopes")
    return users, problems


def expected_table(routes: list[dict[str, object]]) -> str:
    endpoints = layer_modules()
    by_route = {(e.method, "/api/v1" + ("/" + e.path.strip("/") if e.path.strip("/") else "/")):
                e.name for e in endpoints.ENDPOINTS.values()}
    users, _ = usage()
    lines = ["| route | client method | used by |", "|---|---|---|"]
    for route in sorted(routes, key=lambda r: (str(r["path"]), str(r["method"]))):
        if route["admin"]:
            continue
        key = (str(route["method"]), str(route["path"]).rstrip("/") or "/")
        name = by_route.get(key) or by_route.get((key[0], str(route["path"])))
        who = ", ".join(f"`{p}`" for p in sorted(users.get(name or "", ()))) or NOBODY
        method = f"`{name}`" if name else "not in the client"
        lines.append(f"| `{route['method']} {route['path']}` | {method} | {who} |")
    return "\n".join(lines)


def documented_table() -> str:
    text = DOC.read_text(encoding="utf-8")
    assert START in text and END in text, f"{DOC}: the markers {START} / {END} are missing"
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def test_every_client_call_of_a_bundled_plugin_is_within_its_declared_scopes():
    _, problems = usage()
    assert not problems, "\n".join(problems)


@pytest.mark.asyncio
async def test_the_route_usage_table_in_the_docs_is_true(start_core):
    core = await start_core()
    answer = await core.anonymous.get("/api/v1/")
    assert answer.status_code == 200
    routes = answer.json()["routes"]
    assert all("admin" in r for r in routes)
    expected = expected_table(routes)
    if os.environ.get("PLEXICHAT_UPDATE_DOCS") and documented_table() != expected:
        text = DOC.read_text(encoding="utf-8")
        head, rest = text.split(START, 1)
        DOC.write_text(f"{head}{START}\n{expected}\n{END}{rest.split(END, 1)[1]}",
                       encoding="utf-8")
    assert documented_table() == expected, (
        f"docs/api-v1.md's plugin usage table is stale; between the markers it should "
        f"read:\n\n{expected}\n")
