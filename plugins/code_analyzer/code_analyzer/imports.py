"""The import graph of a scanned folder, and its cycles (Tarjan's SCCs): Python from
``ast``, JavaScript/TypeScript from tree-sitter (``jsimports``), relative imports only.

Module names come from file paths relative to the folder (``pkg/sub/mod.py`` ->
``pkg.sub.mod``, ``pkg/__init__.py`` -> ``pkg``), also tried under a ``src/`` layout. Only
imports that resolve to a module of the folder make edges; lazy imports (inside a
function or ``if TYPE_CHECKING:``) are kept as edges but do not make cycles, since they do
not run at import time.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any


def module_name(rel: str) -> str | None:
    if not rel.endswith(".py"):
        return None
    parts = rel[:-3].split("/")
    if parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def _resolve(source: str, is_package: bool, module: str, level: int, names: list[str],
             known: set[str]) -> list[str]:
    if level:
        base = source.split(".") if is_package else source.split(".")[:-1]
        if level > 1:
            base = base[:len(base) - (level - 1)] if len(base) >= level - 1 else []
        target = ".".join([*base, module] if module else base)
    else:
        target = module
    found = []
    for name in names:
        sub = f"{target}.{name}" if target else name
        if sub in known:  # "from pkg import mod" imports the module pkg.mod
            found.append(sub)
    if not found:
        # The longest known prefix: "import a.b.c" runs a, a.b and a.b.c.
        parts = target.split(".") if target else []
        while parts:
            candidate = ".".join(parts)
            if candidate in known:
                found.append(candidate)
                break
            parts.pop()
    return found


def package_prefix(folder: Path) -> str:
    """``a.b`` when ``folder`` is the package ``b`` inside the package ``a``: a scan of a
    package folder then names modules as its own imports do."""
    names: list[str] = []
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        names.insert(0, folder.name)
        folder = folder.parent
    return ".".join(names)


def _modules(files: list[dict[str, Any]], prefix: str) -> dict[str, dict[str, Any]]:
    modules: dict[str, dict[str, Any]] = {}
    for f in files:
        if f.get("language") != "python":
            continue
        name = module_name(f["path"])
        if name is None and f["path"] == "__init__.py":
            name = prefix or None
        elif name is not None and prefix:
            name = f"{prefix}.{name}"
        if name is not None:
            modules.setdefault(name, f)
    return modules


JS_LANGUAGES = ("javascript", "typescript", "tsx")
JS_SUFFIXES = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs")


def _js_edges(files: list[dict[str, Any]], edges: dict[tuple[str, str], bool]) -> set[str]:
    """Edges between JS/TS files (named by their path), from relative specifiers only:
    a bare specifier is a package, outside the folder."""
    paths = {f["path"] for f in files if f.get("language") in JS_LANGUAGES}
    for f in files:
        if f["path"] not in paths:
            continue
        here = posixpath.dirname(f["path"])
        for spec, eager in f.get("imports", []):
            if not spec.startswith("."):
                continue
            target = _js_target(posixpath.normpath(posixpath.join(here, spec)), paths)
            if target is not None and target != f["path"]:
                key = (f["path"], target)
                edges[key] = edges.get(key, False) or eager
    return paths


def _js_target(base: str, paths: set[str]) -> str | None:
    stem, ext = posixpath.splitext(base)
    # "./a.js" may name a.ts (TypeScript's rule), "./a" a file or a folder's index.
    tries = [base] if ext not in JS_SUFFIXES else [base, *(stem + s for s in JS_SUFFIXES)]
    tries += [base + s for s in JS_SUFFIXES] + [f"{base}/index{s}" for s in JS_SUFFIXES]
    return next((t for t in tries if t in paths), None)


def build_graph(files: list[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """``{"modules": n, "edges": [{source, target, eager}], "cycles": [[module...]]}``;
    Python modules by dotted name, JS/TS modules by path."""
    modules = _modules(files, prefix)
    known = set(modules)
    edges: dict[tuple[str, str], bool] = {}
    for name, f in modules.items():
        is_package = f["path"].endswith("__init__.py")
        for module, level, names, eager in f.get("imports", []):
            for target in _resolve(name, is_package, module, level, names or [], known):
                if target != name:
                    edges[(name, target)] = edges.get((name, target), False) or eager
    known |= _js_edges(files, edges)
    graph: dict[str, list[str]] = {m: [] for m in known}
    for (a, b), eager in edges.items():
        if eager:
            graph[a].append(b)
    cycles = sorted((sorted(c) for c in _sccs(graph) if len(c) > 1),
                    key=lambda c: (-len(c), c))
    return {"modules": len(known),
            "edges": [{"source": a, "target": b, "eager": e}
                      for (a, b), e in sorted(edges.items())],
            "cycles": cycles}


def _sccs(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a deep package tree must not hit the recursion
    limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result
