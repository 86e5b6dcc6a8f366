"""A workspace's own .git/config never runs a program when the page asks git things."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dev_tools import gitops
from dev_tools.workspace import Workspace


def hostile_repo(tmp_path: Path) -> tuple[Path, Path]:
    repo, marker = tmp_path / "repo", tmp_path / "ran"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,  # noqa: E731
                                    capture_output=True)
    run("init", "-q")
    (repo / "a.txt").write_text("a\n")
    run("add", "a.txt")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    # As an unpacked archive or a shared drive could bring it: git would run these.
    run("config", "core.fsmonitor", f"sh -c 'touch {marker}'; false")
    run("config", "core.pager", f"sh -c 'touch {marker}'; cat")
    (repo / "a.txt").write_text("a\nb\n")
    return repo, marker


@pytest.mark.asyncio
async def test_status_and_diff_run_nothing_from_the_repos_config(tmp_path: Path) -> None:
    repo, marker = hostile_repo(tmp_path)
    # Plain git would run it: the test's repository really is hostile.
    subprocess.run(["git", "-C", str(repo), "status"], capture_output=True)
    assert marker.exists()
    marker.unlink()
    ws = Workspace(repo, tmp_path)
    state = await gitops.status(ws)
    assert not state["clean"]
    await gitops.git(ws, "diff")
    assert not marker.exists()


def filter_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose own config sets a clean/smudge filter, a textconv driver and an
    external diff, each creating ``marker`` when git runs it."""
    repo, marker = tmp_path / "frepo", tmp_path / "filter-ran"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,  # noqa: E731
                                    capture_output=True)
    run("init", "-q")
    (repo / ".gitattributes").write_text("*.txt filter=evil diff=evil\n")
    (repo / "a.txt").write_text("a\n")
    run("add", ".")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    touch = f"touch {marker}"
    run("config", "filter.evil.clean", f"sh -c '{touch}; cat'")
    run("config", "filter.evil.smudge", f"sh -c '{touch}; cat'")
    run("config", "filter.evil.process", f"sh -c '{touch}'")
    run("config", "filter.evil.required", "true")
    run("config", "diff.evil.textconv", f"sh -c '{touch}; cat \"$0\"'")
    run("config", "diff.external", f"sh -c '{touch}'")
    run("config", "log.showSignature", "true")
    run("config", "gpg.program", f"sh -c '{touch}'")
    (repo / "a.txt").write_text("b\n")  # same size: status must hash it (clean filter)
    return repo, marker


@pytest.mark.asyncio
async def test_read_only_git_runs_no_filter_or_driver_from_the_repos_config(
        tmp_path: Path) -> None:
    # Review finding: filters and diff drivers from the repository's own config still
    # ran for status and diff (a cloned repository could run commands).
    import os

    from dev_tools import preview

    repo, marker = filter_repo(tmp_path)
    subprocess.run(["git", "-C", str(repo), "diff"], capture_output=True)
    assert marker.exists()  # plain git runs them: the repository really is hostile
    marker.unlink()
    os.utime(repo / "a.txt", (1, 1))  # stat data differs from the index: status hashes
    ws = Workspace(repo, tmp_path)
    state = await gitops.status(ws)
    assert [f["path"] for f in state["files"]] == ["a.txt"]
    shown = await gitops.diff(ws, None, False)
    assert "-a\n+b" in shown["diff"]
    await gitops.diff(ws, "a.txt", True)
    head = (await gitops.log(ws, 5))["commits"][0]["commit"]
    assert "a.txt" in (await gitops.show(ws, head))["text"]
    await gitops.branches(ws)
    assert await preview.list_files(ws, True) == [".gitattributes", "a.txt"]
    assert not marker.exists()
