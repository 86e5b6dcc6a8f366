"""A project scan on real files: .gitignore, bad files, the cache, workers, cancel, tools."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from code_analyzer.scan import ScanCancelled, ScanOptions, scan_folder
from code_analyzer.store import Store
from code_analyzer.walk import discover

Files = Callable[[Path, dict[str, str | bytes]], None]
NO_TOOLS = ScanOptions(run_tools=False)


def test_gitignore_nested_ignores_and_excluded_folders(tmp_path: Path, make_files: Files,
                                                       ) -> None:
    make_files(tmp_path, {
        ".gitignore": "build/\n*.gen.py\n!keep.gen.py\n",
        "app.py": "x = 1\n", "build/out.py": "x = 1\n", "a.gen.py": "x = 1\n",
        "keep.gen.py": "x = 1\n", "sub/.gitignore": "local.py\n", "sub/local.py": "x\n",
        "sub/kept.py": "x = 1\n", "other/local.py": "x = 1\n",
        ".venv/lib/site.py": "x = 1\n", "notes.txt": "not code\n", "web/app.ts": "let a=1;\n",
    })
    found, skipped = discover(tmp_path, max_bytes=10_000, exclude=[".venv"])
    assert [c.rel for c in found] == ["app.py", "keep.gen.py", "other/local.py",
                                      "sub/kept.py", "web/app.ts"]
    assert [c.language for c in found][-1] == "typescript"
    assert skipped == []


def test_gitignores_as_git_reads_them_above_and_below(tmp_path: Path, make_files: Files,
                                                     ) -> None:
    """Audit: a scan of a subfolder of a repository ignored the repository's .gitignore
    (generated code counted), and a deeper '!name' did not take back what a .gitignore
    above ignored. Compared with git's own list of the same tree."""
    import subprocess

    make_files(tmp_path, {
        ".gitignore": "generated/\n*_gen.py\n", "top.py": "x = 1\n",
        "pkg/b.py": "x = 1\n", "pkg/generated/a.py": "x = 1\n",
        "pkg/sub/keep_gen.py": "x = 1\n", "pkg/sub/other_gen.py": "x = 1\n",
        "pkg/sub/.gitignore": "!keep_gen.py\n",
    })
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    listed = subprocess.run(["git", "-C", str(tmp_path / "pkg"), "ls-files", "-co",
                             "--exclude-standard", "--", "*.py"], check=True,
                            capture_output=True, text=True).stdout.split()
    assert listed == ["b.py", "sub/keep_gen.py"]
    found, _ = discover(tmp_path / "pkg", max_bytes=10_000)
    assert [c.rel for c in found] == listed
    # Not inside a repository: a .gitignore above the folder means nothing to git.
    (tmp_path / ".git").rename(tmp_path / "not-git")
    found, _ = discover(tmp_path / "pkg", max_bytes=10_000)
    assert [c.rel for c in found] == ["b.py", "generated/a.py", "sub/keep_gen.py",
                                      "sub/other_gen.py"]


def test_bad_files_are_skipped_or_findings(tmp_path: Path, make_files: Files) -> None:
    make_files(tmp_path, {
        "ok.py": "def f():\n    return 1\n",
        "broken.py": "def f(:\n",
        "latin.py": b"# caf\xe9\nx = 1\n",
        # Declared as PEP 263 says: Python reads it, so it is no "not UTF-8" (audit).
        "declared.py": b"# -*- coding: latin-1 -*-\n# caf\xe9\nx = 1\n",
        # A codec that is no text encoding (review: it failed the whole scan).
        "rot.py": b"# coding: rot13\nx = 1\n",
        "blob.py": b"\x00\x01binary",
        "huge.py": "x = 1\n" * 400,
    })
    (tmp_path / "loop_a.py").symlink_to(tmp_path / "loop_b.py")
    (tmp_path / "loop_b.py").symlink_to(tmp_path / "loop_a.py")
    outside = tmp_path.parent / f"{tmp_path.name}_outside.py"
    outside.write_text("x = 1\n")
    (tmp_path / "escape.py").symlink_to(outside)
    (tmp_path / "dir_loop").symlink_to(tmp_path, target_is_directory=True)
    result = scan_folder(tmp_path, None, ScanOptions(run_tools=False, max_bytes=1000))
    assert [f["path"] for f in result["files"]] == ["broken.py", "declared.py", "latin.py",
                                                    "ok.py", "rot.py"]
    skipped = {s["path"]: s["reason"] for s in result["skipped"]}
    assert skipped["loop_a.py"] == skipped["loop_b.py"] == "symlink loop"
    assert skipped["escape.py"] == "symlink leading outside the scanned folder"
    assert skipped["huge.py"].startswith("too large: 2 KiB")
    assert skipped["blob.py"] == "binary (NUL bytes)"
    assert skipped["dir_loop"] == "symlinked folder, not followed"
    rules = {(i["path"], i["rule"]) for i in result["issues"]}
    assert ("broken.py", "CA001") in rules and ("latin.py", "CA002") in rules
    assert not {r for r in rules if r[0] == "declared.py"}
    assert result["summary"]["issues"]["high"] == 1


def test_pipes_sockets_and_devices_are_skipped_not_opened(
        tmp_path: Path, make_files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO named like source hung the scan in open() (waiting for a writer): the job
    could not be cancelled and the app could not exit. Such files are listed as skipped
    without being opened, and one that became a FIFO after the listing is not waited for."""
    import socket

    from code_analyzer import scan as scan_module

    make_files(tmp_path, {"ok.py": "x = 1\n", "later.py": "y = 2\n"})
    os.mkfifo(tmp_path / "pipe.py")
    listener = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(tmp_path)  # a relative name: the test manager's tmp path is longer
    listener.bind("sock.py")     # than a socket address may be (108 bytes)
    (tmp_path / "null.py").symlink_to("/dev/null")
    try:
        candidates, _ = discover(tmp_path, max_bytes=10_000)
        assert [c.rel for c in candidates] == ["later.py", "ok.py"]
        (tmp_path / "later.py").unlink()
        os.mkfifo(tmp_path / "later.py")  # swapped after the listing: read without waiting
        assert scan_module._read(candidates[0]) == "a named pipe (FIFO), not read"
        result = scan_folder(tmp_path, None, NO_TOOLS)
    finally:
        listener.close()
    assert [f["path"] for f in result["files"]] == ["ok.py"]
    skipped = {s["path"]: s["reason"] for s in result["skipped"]}
    assert skipped["pipe.py"] == skipped["later.py"] == "a named pipe (FIFO), not read"
    assert skipped["sock.py"] == "a socket, not read"
    assert skipped["null.py"] == "symlink leading outside the scanned folder"


def test_second_scan_comes_from_the_content_cache(tmp_path: Path, make_files: Files,
                                                  four_branches: str) -> None:
    src = tmp_path / "src"
    make_files(src, {"a.py": four_branches, "b.py": "def g():\n    return 2\n",
                     "c.js": "function h(x) { return x ? 1 : 2; }\n"})
    store = Store(tmp_path / "db" / "cache.sqlite3")
    first = scan_folder(src, store, NO_TOOLS)
    assert first["summary"]["cache_hits"] == 0
    second = scan_folder(src, store, NO_TOOLS)
    assert second["summary"]["cache_hits"] == 3
    assert second["files"] == first["files"]
    (src / "b.py").write_text("def g(x):\n    return 2 if x else 3\n")
    (src / "copy.py").write_text(four_branches)  # same content, other name: a hit
    third = scan_folder(src, store, NO_TOOLS)
    assert third["summary"]["cache_hits"] == 3
    by_path = {f["path"]: f for f in third["files"]}
    assert by_path["b.py"]["functions"][0]["complexity"] == 2
    assert by_path["copy.py"]["functions"] == by_path["a.py"]["functions"]
    s = third["summary"]
    assert s["files"] == 4 and s["functions"] == 4 and s["complexity_max"] == 5
    assert s["languages"] == {"python": by_path["a.py"]["sloc"] * 2 + 2, "javascript": 1}


def test_worker_processes_give_the_same_figures(tmp_path: Path, make_files: Files) -> None:
    make_files(tmp_path, {f"m{i:03}.py": f"def f{i}(x):\n    if x > {i}:\n        return x\n"
                                         f"    return {i}\n" for i in range(70)})
    parallel = scan_folder(tmp_path, None, ScanOptions(run_tools=False, workers=2))
    serial = scan_folder(tmp_path, None, ScanOptions(run_tools=False, workers=1))
    assert parallel["files"] == serial["files"]
    assert parallel["summary"]["functions"] == 70
    assert {fn["complexity"] for f in parallel["files"] for fn in f["functions"]} == {2}


def test_cancel_stops_the_scan_and_progress_is_reported(tmp_path: Path,
                                                        make_files: Files) -> None:
    make_files(tmp_path, {f"m{i:03}.py": "x = 1\n" for i in range(40)})
    cancel = threading.Event()
    seen: list[tuple[float, float | None, str]] = []

    def progress(done: float, total: float | None, message: str) -> None:
        seen.append((done, total, message))
        if done >= 10:
            cancel.set()

    with pytest.raises(ScanCancelled):
        scan_folder(tmp_path, None, NO_TOOLS, cancel, progress)
    assert seen[0] == (0, None, "listing files")
    assert any(total == 40 and done >= 10 for done, total, _ in seen)
    assert all(done < 40 for done, _, _ in seen)


@pytest.mark.skipif(os.name == "nt", reason="POSIX paths")
def test_ruff_bandit_and_vulture_feed_one_issue_list(tmp_path: Path, make_files: Files,
                                                     ) -> None:
    make_files(tmp_path, {
        "ruff.toml": "[lint]\nselect = ['F', 'E9']\n",
        "app.py": ("import os\nimport subprocess\n\n\n"
                   "def run(cmd):\n    subprocess.call(cmd, shell=True)\n"
                   "    return undefined_name\n\n\n"
                   "def unused_helper():\n    return 1\n    print('never')\n"),
        "tests/test_app.py": "def test_x():\n    assert True\n",
    })
    store = Store(tmp_path.parent / f"{tmp_path.name}-cache.sqlite3")
    options = ScanOptions(vulture_min_confidence=60,
                          ruff_cache_dir=tmp_path.parent / f"{tmp_path.name}-ruff")
    result = scan_folder(tmp_path, store, options)
    assert [(t["tool"], t["status"]) for t in result["tools"]] == [
        ("ruff", "ok"), ("bandit", "ok"), ("vulture", "ok")]
    issues = {(i["tool"], i["rule"]): i for i in result["issues"]}
    unused = issues[("ruff", "F401")]
    assert unused["path"] == "app.py" and unused["line"] == 1 and unused["severity"] == "medium"
    assert unused["fix_available"] is True and unused["fix_applicability"] == "safe"
    assert unused["link"].startswith("https://docs.astral.sh/ruff/rules/")
    assert issues[("ruff", "F821")]["severity"] == "high"
    shell = issues[("bandit", "B602")]
    assert shell["severity"] == "high" and shell["line"] == 6 and shell["link"].startswith(
        "https://bandit.readthedocs.io/")
    assert ("bandit", "B101") not in issues  # assert in tests is how pytest works
    assert issues[("vulture", "unused-function")]["line"] == 10
    assert issues[("vulture", "unreachable-code")]["severity"] == "medium"
    severities = [i["severity"] for i in result["issues"]]
    assert severities == sorted(severities, key=("high", "medium", "low").index)
    assert not (tmp_path / ".ruff_cache").exists()  # nothing written into the project
    # Again: bandit's findings come from the content cache, the list is the same.
    again = scan_folder(tmp_path, store, options)
    assert again["issues"] == result["issues"]
    assert {t["tool"]: t["detail"] for t in again["tools"]}["bandit"] == "2 files from the cache"


def test_cached_bandit_findings_are_the_same_for_a_copy_under_tests(
        tmp_path: Path, make_files: Files) -> None:
    """Audit: the cache is per content and held the test copy's list, asserts left out,
    so on the second scan src/a.py's B101 was gone too (a false drop in the trend)."""
    body = "def check(x):\n    assert x > 0\n    return x\n"
    make_files(tmp_path, {"src/a.py": body, "tests/test_a.py": body})
    store = Store(tmp_path.parent / f"{tmp_path.name}-cache.sqlite3")
    options = ScanOptions(ruff_cache_dir=tmp_path.parent / f"{tmp_path.name}-ruff")
    for _ in range(2):
        result = scan_folder(tmp_path, store, options)
        found = {(i["path"], i["rule"]) for i in result["issues"] if i["tool"] == "bandit"}
        assert found == {("src/a.py", "B101")}


def test_a_gitignore_that_is_no_regular_file_or_too_big_is_not_read(tmp_path: Path,
                                                                      make_files: Files,
                                                                      ) -> None:
    # Review finding: a .gitignore linked to /dev/zero or made a FIFO was read without
    # end (or blocked the walk waiting for a writer). Only regular files, capped, count.
    from code_analyzer import walk

    make_files(tmp_path, {"a/x.py": "x = 1\n", "b/x.py": "x = 1\n", "c/x.py": "x = 1\n",
                          "d/x.py": "x = 1\n", "real": "x.py\n"})
    (tmp_path / "a" / ".gitignore").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "b" / ".gitignore")
    (tmp_path / "c" / ".gitignore").symlink_to(tmp_path / "real")  # git skips these too
    (tmp_path / "d" / ".gitignore").write_text("x.py\n" + "#" * walk.MAX_GITIGNORE_BYTES)
    found, _ = discover(tmp_path, max_bytes=10_000)
    assert [c.rel for c in found] == ["a/x.py", "b/x.py", "c/x.py", "d/x.py"]
    (tmp_path / "d" / ".gitignore").write_text("x.py\n")
    assert [c.rel for c in discover(tmp_path, max_bytes=10_000)[0]] == [
        "a/x.py", "b/x.py", "c/x.py"]
