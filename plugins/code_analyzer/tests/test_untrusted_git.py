"""The quality gate asks git about a repository whose .git/config is not trusted."""

from __future__ import annotations

import subprocess
from pathlib import Path

from code_analyzer import gitutil


def test_the_gate_runs_nothing_from_the_repos_config(tmp_path: Path) -> None:
    repo, marker = tmp_path / "repo", tmp_path / "ran"
    repo.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    run("init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    run("add", "a.py")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    run("config", "core.fsmonitor", f"sh -c 'touch {marker}'; false")
    (repo / "a.py").write_text("x = 1\ny = 2\n")
    commit = gitutil.resolve_ref(repo, "HEAD")
    changed = gitutil.changes(repo, commit, "")
    assert changed  # the change is seen ...
    assert not marker.exists()  # ... and nothing of the repository's config ran


def test_new_lines_of_files_with_non_ascii_names_count(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    run("init", "-q")
    for name in ("café.py", "plain.py"):
        (repo / name).write_text("x = 1\n")
    run("add", ".")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    for name in ("café.py", "plain.py"):
        (repo / name).write_text("x = 1\ny = 2\nz = 3\n")
    changed = gitutil.changes(repo, gitutil.resolve_ref(repo, "HEAD"), "")
    # The new lines of café.py count like those of plain.py (git quoted its name before).
    assert {c.path: c.lines for c in changed} == {"café.py": {2, 3}, "plain.py": {2, 3}}


def test_the_gate_runs_no_filter_or_diff_driver_from_the_repos_config(tmp_path: Path
                                                                       ) -> None:
    # Review finding: clean filters and textconv drivers of the repository's own config
    # ran when the gate diffed the working tree.
    import os

    repo, marker = tmp_path / "repo", tmp_path / "ran"
    repo.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    run("init", "-q")
    (repo / ".gitattributes").write_text("*.py filter=evil diff=evil\n")
    (repo / "a.py").write_text("x = 1\n")
    run("add", ".")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    run("config", "filter.evil.clean", f"sh -c 'touch {marker}; cat'")
    run("config", "filter.evil.required", "true")
    run("config", "diff.evil.textconv", f"sh -c 'touch {marker}; cat \"$0\"'")
    run("config", "diff.external", f"sh -c 'touch {marker}'")
    (repo / "a.py").write_text("x = 2\ny = 2\n")
    subprocess.run(["git", "-C", str(repo), "diff"], capture_output=True)
    assert marker.exists()  # plain git runs them: the repository really is hostile
    marker.unlink()
    os.utime(repo / "a.py", (1, 1))
    changed = gitutil.changes(repo, gitutil.resolve_ref(repo, "HEAD"), "")
    assert {c.path: c.lines for c in changed} == {"a.py": {1, 2}}
    assert not marker.exists()
