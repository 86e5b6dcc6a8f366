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
