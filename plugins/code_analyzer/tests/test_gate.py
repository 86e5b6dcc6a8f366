"""The quality gate on new code, in real git repositories made here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from code_analyzer.gate import GateError, GateRule, run_gate
from code_analyzer.scan import ScanOptions
from code_analyzer.store import Store

Git = Callable[..., str]
Files = Callable[[Path, dict[str, str | bytes]], None]
OPTIONS = ScanOptions()

BASE = '''\
import subprocess


def run(cmd):
    """Old code: its problem is not new, so the gate does not count it."""
    return subprocess.call(cmd, shell=True)


def ok(x):
    return x + 1
'''

NEW_HIGH = BASE + '''

def more(cmd):
    return subprocess.Popen(cmd, shell=True)
'''


def branches(n: int) -> str:
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(n))
    return f"\n\ndef branchy(x):\n{body}    return -1\n"


def committed(repo: Path, git: Git, make_files: Files, files: dict[str, str | bytes],
              message: str = "base") -> None:
    make_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def conditions(result: dict) -> dict[str, bool]:
    return {c["name"].split(" ")[0] + " " + c["name"].split(" ")[1]: c["passed"]
            for c in result["conditions"]}


def test_gate_flips_when_a_high_issue_is_added_and_back_when_removed(
        repo: Path, run_git: Git, make_files: Files) -> None:
    committed(repo, run_git, make_files, {"app.py": BASE, "README.md": "x\n"})
    rule = GateRule("HEAD")
    clean = run_gate(repo, rule, None, OPTIONS)
    assert clean["passed"] is True and clean["analysed_files"] == 0
    # The old shell=True (line 6) is not new code: the gate passes on an unrelated change.
    (repo / "app.py").write_text(BASE + "\n\ndef ok2(x):\n    return x + 2\n")
    unrelated = run_gate(repo, rule, None, OPTIONS)
    assert unrelated["passed"] is True, unrelated["new_issues"]
    assert [f["name"] for f in unrelated["functions"]] == ["ok2"]
    # A new shell=True (bandit B602, high) on a new line fails it, uncommitted...
    (repo / "app.py").write_text(NEW_HIGH)
    failed = run_gate(repo, rule, None, OPTIONS)
    assert failed["passed"] is False
    [blocking] = [i for i in failed["new_issues"] if i["severity"] == "high"]
    assert (blocking["tool"], blocking["rule"], blocking["line"]) == ("bandit", "B602", 14)
    assert failed["conditions"][0]["actual"] == 1 and not failed["conditions"][0]["passed"]
    # ...and committed, against the parent commit: the same answer.
    run_git(repo, "commit", "-q", "-am", "more")
    assert run_gate(repo, rule, None, OPTIONS)["passed"] is True  # nothing new since HEAD
    against_parent = run_gate(repo, GateRule("HEAD~1"), None, OPTIONS)
    assert against_parent["passed"] is False
    assert against_parent["commit"] == run_git(repo, "rev-parse", "HEAD~1").strip()
    # Removing it passes again.
    (repo / "app.py").write_text(BASE)
    assert run_gate(repo, GateRule("HEAD~1"), None, OPTIONS)["passed"] is True


def test_complexity_and_maintainability_conditions(repo: Path, run_git: Git,
                                                   make_files: Files, tmp_path: Path) -> None:
    committed(repo, run_git, make_files, {"pkg/mod.py": BASE})
    run_git(repo, "tag", "v1")
    (repo / "pkg/mod.py").write_text(BASE + branches(20))
    store = Store(tmp_path / "cache.sqlite3")
    result = run_gate(repo, GateRule("v1", max_complexity=15, min_maintainability=0),
                      store, OPTIONS)
    assert result["passed"] is False
    [fn] = result["functions"]
    assert (fn["name"], fn["complexity"], fn["base_complexity"]) == ("branchy", 21, None)
    assert [c["passed"] for c in result["conditions"]] == [True, False, True, True]
    assert result["conditions"][1]["actual"] == 21
    loose = run_gate(repo, GateRule("v1", max_complexity=25, min_maintainability=100),
                     store, OPTIONS)
    assert [c["passed"] for c in loose["conditions"]] == [True, True, False, True]
    [f] = loose["files"]
    assert f["path"] == "pkg/mod.py" and f["mi"] < f["base_mi"]


def test_untracked_files_and_subfolders_are_new_code(repo: Path, run_git: Git,
                                                     make_files: Files) -> None:
    committed(repo, run_git, make_files, {"a/keep.py": "x = 1\n", "b/other.py": "y = 1\n",
                                          ".gitignore": "ignored.py\n"})
    make_files(repo, {"a/new.py": "def f(:\n", "ignored.py": "def g(:\n",
                      "b/new.py": "def h(:\n"})
    result = run_gate(repo / "a", GateRule("HEAD"), None, OPTIONS)
    assert result["passed"] is False
    assert {(i["path"], i["rule"]) for i in result["new_issues"]} >= {("new.py", "CA001")}
    assert {i["path"] for i in result["new_issues"]} == {"new.py"}  # only inside a/


def test_a_submodule_shown_as_a_log_shifts_no_lines(repo: Path, run_git: Git,
                                                    make_files: Files, tmp_path: Path) -> None:
    """Review: with diff.submodule=log a changed submodule has no 'diff --git' section, and
    matching sections by position gave each later file the lines of the one before."""
    sub = tmp_path / "subrepo"
    sub.mkdir()
    run_git(sub, "init", "-q")
    committed(sub, run_git, make_files, {"s.txt": "1\n"})
    run_git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub),
            "sub")
    committed(repo, run_git, make_files, {"x.py": BASE, "y.py": BASE})
    committed(sub, run_git, make_files, {"s.txt": "2\n"}, "moved")
    run_git(repo / "sub", "pull", "-q", "origin", "HEAD")
    (repo / "y.py").write_text(NEW_HIGH)
    run_git(repo, "config", "diff.submodule", "log")
    result = run_gate(repo, GateRule("HEAD"), None, OPTIONS)
    assert {(i["path"], i["rule"]) for i in result["new_issues"]
            if i["severity"] == "high"} == {("y.py", "B602")}


def test_new_lines_count_in_files_whatever_their_names(repo: Path, run_git: Git,
                                                       make_files: Files) -> None:
    """Audit: git writes '+++ b/my file.py<TAB>' and '+++ "b/quo\\"te.py"', so the new
    lines of a modified file whose name has a space, a quote or a backslash were missed
    and the gate passed on them. A type change (a file made a link) is two sections of
    the patch: the files after it must not shift onto another's lines."""
    names = ["my file.py", 'quo"te.py', "back\\slash.py", "z.py"]
    committed(repo, run_git, make_files, {**dict.fromkeys(names, BASE), "link.py": BASE})
    (repo / "link.py").unlink()
    (repo / "link.py").symlink_to("z.py")
    for name in names:
        (repo / name).write_text(NEW_HIGH)
    result = run_gate(repo, GateRule("HEAD"), None, OPTIONS)
    assert result["passed"] is False
    high = {(i["path"], i["rule"], i["line"]) for i in result["new_issues"]
            if i["severity"] == "high"}
    assert high == {(name, "B602", 14) for name in names}
    assert {f["path"]: f["new_lines"] for f in result["files"]} == dict.fromkeys(names, 4)


def test_code_that_does_not_compile_fails_the_gate(repo: Path, run_git: Git,
                                                   make_files: Files) -> None:
    """Audit: 'def f(a, a)' parses (ast.parse takes it, so no CA001) but does not
    compile; ruff says 'invalid-syntax', which was graded low, and the gate passed."""
    committed(repo, run_git, make_files, {"app.py": BASE})
    make_files(repo, {"dup.py": "def f(a, a):\n    return a\n"})
    result = run_gate(repo, GateRule("HEAD"), None, OPTIONS)
    assert result["passed"] is False
    [issue] = [i for i in result["new_issues"] if i["path"] == "dup.py"]
    assert (issue["tool"], issue["rule"], issue["severity"]) == (
        "ruff", "invalid-syntax", "high")


def test_changed_files_the_gate_cannot_read_are_listed(repo: Path, run_git: Git,
                                                       make_files: Files) -> None:
    """Audit: a changed file over max_file_kb (or a link) was dropped without a word; with
    only that file changed, the gate passed on code nobody judged."""
    committed(repo, run_git, make_files, {"app.py": BASE})
    big = "def h():\n    return undefined_name\n" + "# padding\n" * 120_000
    make_files(repo, {"big.py": big})
    (repo / "alias.py").symlink_to("app.py")
    result = run_gate(repo, GateRule("HEAD"), None, ScanOptions(max_bytes=1024 * 1024))
    assert result["analysed_files"] == 0
    reasons = {s["path"]: s["reason"] for s in result["skipped"]}
    assert set(reasons) == {"big.py", "alias.py"}
    assert "too large" in reasons["big.py"] and "max_file_kb" in reasons["big.py"]
    assert reasons["alias.py"].startswith("symlink to app.py")
    # And the gate does not pass on code nobody read (review: only listed, it passed).
    assert result["passed"] is False
    assert result["conditions"][-1] == {"name": "every changed source file analysed",
                                        "threshold": 0, "actual": 1, "passed": False}


def test_a_bad_ref_or_folder_names_the_field(repo: Path, run_git: Git, make_files: Files,
                                             tmp_path: Path) -> None:
    committed(repo, run_git, make_files, {"a.py": "x = 1\n"})
    with pytest.raises(GateError, match=r"^ref: 'nope' names no commit"):
        run_gate(repo, GateRule("nope"), None, OPTIONS)
    with pytest.raises(GateError, match=r"^ref: '--output=x' is not a git ref"):
        run_gate(repo, GateRule("--output=x"), None, OPTIONS)
    for bad in ("a b", "main\n--output=x", "x\x00", "main\n"):
        with pytest.raises(GateError, match="is not a git ref"):
            run_gate(repo, GateRule(bad), None, OPTIONS)
    # A branch named in another script is a ref like any other (it was refused).
    run_git(repo, "branch", "fëature")
    assert run_gate(repo, GateRule("fëature"), None, OPTIONS)["passed"] is True
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GateError, match=r"^folder: .* is not inside a git repository"):
        run_gate(plain, GateRule("HEAD"), None, OPTIONS)


def test_old_versions_are_read_in_one_batch(repo: Path, run_git: Git, make_files: Files,
                                            ) -> None:
    from code_analyzer.gitutil import show_many
    blob = bytes(range(256)) * 3  # binary, with newlines inside
    committed(repo, run_git, make_files, {"a.py": "x = 1\n", "sub/b.bin": blob,
                                          "empty.py": ""})
    head = run_git(repo, "rev-parse", "HEAD").strip()
    got = show_many(repo, head, ["sub/b.bin", "missing.py", "a.py", "sub", "empty.py"])
    assert got == {"sub/b.bin": blob, "missing.py": None, "a.py": b"x = 1\n", "sub": None,
                   "empty.py": b""}


def test_history_of_past_commits_analyses_only_what_changed(
        repo: Path, run_git: Git, make_files: Files, tmp_path: Path) -> None:
    from code_analyzer.history import HistoryError, history
    committed(repo, run_git, make_files, {"app.py": BASE, "web/x.js": "function f(a) {"
                                          " return a ? 1 : 2; }\n", "big.py": "x = 1\n" * 2000})
    committed(repo, run_git, make_files, {"app.py": BASE + branches(3)}, "branchy")
    committed(repo, run_git, make_files, {"README.md": "docs only\n"}, "docs")
    (repo / "app.py").write_text("broken(\n")  # the working tree is not history
    store = Store(tmp_path / "cache.sqlite3")
    result = history(repo, 10, store, ScanOptions(max_bytes=5000))
    points = result["points"]
    assert [p["subject"] for p in points] == ["base", "branchy", "docs"]
    assert [p["files"] for p in points] == [2, 2, 2]  # big.py is over max_bytes
    assert [p["complexity_max"] for p in points] == [2, 4, 4]  # x.js's f, then branchy
    assert points[1]["functions"] == points[0]["functions"] + 1
    assert points[2]["sloc"] == points[1]["sloc"] and points[0]["findings"] == 0
    assert result["analysed_files"] == 3  # app.py twice, x.js once; the rest cached
    assert history(repo, 10, store, ScanOptions(max_bytes=5000))["analysed_files"] == 0
    with pytest.raises(HistoryError, match=r"^folder: "):
        history(tmp_path, 5, None, OPTIONS)
