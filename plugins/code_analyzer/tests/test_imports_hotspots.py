"""The Python import graph with its cycles, and hotspots from real git history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from code_analyzer.imports import build_graph
from code_analyzer.scan import ScanOptions, scan_folder

Files = Callable[[Path, dict[str, str | bytes]], None]
NO_TOOLS = ScanOptions(run_tools=False)


def test_cycles_are_flagged_and_lazy_imports_do_not_count(tmp_path: Path,
                                                          make_files: Files) -> None:
    make_files(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "from . import c\n",
        "pkg/c.py": "import pkg.a\nimport os\n",  # a -> b -> c -> a
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from pkg.e import E\n",
        "pkg/e.py": "def f():\n    from pkg import d\n",  # lazy both ways: no cycle
        "src/tool/__init__.py": "from .cli import main\n",
        "src/tool/cli.py": "from ..tool import helpers\n",
        "src/tool/helpers.py": "from tool.cli import main\n",  # cli <-> helpers
    })
    graph = scan_folder(tmp_path, None, NO_TOOLS)["imports"]
    assert graph["cycles"] == [["pkg.a", "pkg.b", "pkg.c"], ["tool.cli", "tool.helpers"]]
    edges = {(e["source"], e["target"]): e["eager"] for e in graph["edges"]}
    assert edges[("pkg.d", "pkg.e")] is False and edges[("pkg.e", "pkg.d")] is False
    assert ("pkg.c", "os") not in edges  # only modules of the folder
    assert graph["modules"] == 9


def test_scanning_a_package_folder_names_modules_as_imports_do(tmp_path: Path,
                                                               make_files: Files) -> None:
    make_files(tmp_path, {"app/__init__.py": "", "app/x.py": "from app.y import Y\n",
                          "app/y.py": "from app import x\nY = 1\n"})
    graph = scan_folder(tmp_path / "app", None, NO_TOOLS)["imports"]
    assert graph["cycles"] == [["app.x", "app.y"]]


def test_a_long_chain_does_not_hit_the_recursion_limit() -> None:
    n = 3000
    files = [{"path": f"m{i}.py", "language": "python",
              "imports": [[f"m{(i + 1) % n}", 0, [], True]]} for i in range(n)]
    [cycle] = build_graph(files)["cycles"]
    assert len(cycle) == n


def test_hotspots_rank_often_changed_complex_files(repo: Path, run_git: Callable[..., str],
                                                   make_files: Files) -> None:
    complex_body = "def f(x):\n" + "".join(
        f"    if x == {i}:\n        return {i}\n" for i in range(6)) + "    return 0\n"
    make_files(repo, {"hot.py": complex_body, "cold.py": complex_body,
                      "busy.py": "X = 1\n"})
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "one")
    for i in range(3):
        (repo / "hot.py").write_text(complex_body + f"# change {i}\n")
        (repo / "busy.py").write_text(f"X = {i}\n")
        run_git(repo, "commit", "-q", "-am", f"change {i}")
    result = scan_folder(repo, None, NO_TOOLS)
    rows = {r["path"]: r for r in result["hotspots"]}
    assert [r["path"] for r in result["hotspots"]] == ["hot.py", "cold.py"]
    assert (rows["hot.py"]["commits"], rows["hot.py"]["complexity"]) == (4, 7)
    assert rows["hot.py"]["score"] == 28 and rows["cold.py"]["score"] == 7
    assert "busy.py" not in rows  # changed often, but nothing complex in it
    assert result["git"].startswith("git history of the last")


def test_no_git_means_no_hotspots_with_the_reason(tmp_path: Path, make_files: Files,
                                                  ) -> None:
    make_files(tmp_path, {"a.py": "def f():\n    return 1\n"})
    result = scan_folder(tmp_path, None, NO_TOOLS)
    assert result["hotspots"] == [] and result["git"] == "not a git repository: no hotspots"


def test_javascript_and_typescript_cycles_through_tree_sitter(tmp_path: Path,
                                                              make_files: Files) -> None:
    make_files(tmp_path, {
        "web/a.ts": "import {b} from './b';\nexport const a = 1;\n",
        "web/b.ts": "import {c} from './util/c.js';\nexport const b = 2;\n",  # c.ts
        "web/util/c.ts": "import {a} from '../a';\nimport type {T} from '../types';\n",
        "web/types.ts": "import {a} from './a';\nexport type T = number;\n",
        "web/lazy.js": "const x = require('./widgets');\nasync function f() {\n"
                       "  await import('./late.mjs');\n}\n",
        "web/widgets/index.jsx": "import React from 'react';\nimport './../lazy';\n",
        "web/late.mjs": "import './lazy.js';\n",
    })
    graph = scan_folder(tmp_path, None, NO_TOOLS)["imports"]
    assert graph["cycles"] == [["web/a.ts", "web/b.ts", "web/util/c.ts"],
                               ["web/lazy.js", "web/widgets/index.jsx"]]
    edges = {(e["source"], e["target"]): e["eager"] for e in graph["edges"]}
    assert edges[("web/util/c.ts", "web/types.ts")] is False  # import type
    assert edges[("web/lazy.js", "web/late.mjs")] is False  # dynamic import()
    assert edges[("web/late.mjs", "web/lazy.js")] is True
    assert not any(target == "react" for _, target in edges)  # packages are outside


def test_without_the_grammars_the_graph_is_python_only(
        tmp_path: Path, make_files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    from code_analyzer import jsimports
    monkeypatch.setattr(jsimports, "_parser", lambda language: None)
    make_files(tmp_path, {"a.ts": "import './b';\n", "b.ts": "import './a';\n"})
    result = scan_folder(tmp_path, None, NO_TOOLS)
    assert result["imports"]["cycles"] == [] and result["summary"]["files"] == 2
