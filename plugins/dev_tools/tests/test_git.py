"""Source control on real repositories made in the test with the real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from devtools_helpers import git, make_repo, open_env

pytestmark = pytest.mark.asyncio


async def test_status_stage_diff_unstage_commit_log_branches(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("repo", {"a.py": "x = 1\n", "notes.txt": "hi\n"}))
        ws = str(folder)
        status = (await env.client.get("git/status", params={"workspace": ws})).json()
        assert status["repository"] is True and status["branch"]["head"] == "main"
        assert {(f["path"], f["untracked"]) for f in status["files"]} == {
            ("a.py", True), ("notes.txt", True)}

        # Before the first commit "unstage" must still work (there is no HEAD to restore from).
        staged = (await env.client.post("git/stage", json={"workspace": ws,
                                                           "paths": ["a.py", "notes.txt"]})).json()
        assert {f["path"]: f["staged"] for f in staged["files"]} == {"a.py": "added",
                                                                     "notes.txt": "added"}
        unstaged = (await env.client.post("git/unstage", json={"workspace": ws,
                                                               "paths": ["notes.txt"]})).json()
        assert {f["path"]: f["untracked"] for f in unstaged["files"]} == {"a.py": False,
                                                                          "notes.txt": True}
        empty = await env.client.post("git/commit", json={"workspace": ws, "message": "  \n "})
        assert empty.status_code == 422 and empty.json()["field"] == "message"
        first = await env.client.post("git/commit", json={"workspace": ws, "message": "First"})
        assert first.status_code == 200, first.text
        assert first.json()["subject"] == "First"

        (folder / "a.py").write_text("x = 2\n")
        diff = (await env.client.get("git/diff", params={"workspace": ws, "path": "a.py"})).json()
        assert "-x = 1\n+x = 2\n" in diff["diff"]
        new_file = (await env.client.get("git/diff", params={"workspace": ws,
                                                             "path": "notes.txt"})).json()
        assert "+hi" in new_file["diff"]  # an untracked file shows as all new
        await env.client.post("git/stage", json={"workspace": ws, "paths": ["a.py"]})
        cached = (await env.client.get("git/diff", params={"workspace": ws, "staged": "true"})
                  ).json()
        assert "+x = 2" in cached["diff"]
        back = (await env.client.post("git/unstage", json={"workspace": ws, "paths": ["a.py"]})
                ).json()
        assert {f["path"]: (f["staged"], f["unstaged"]) for f in back["files"]}["a.py"] == (
            None, "modified")
        nothing = await env.client.post("git/commit", json={"workspace": ws, "message": "x"})
        assert nothing.status_code == 409 and "nothing is staged" in nothing.json()["detail"]

        await env.client.post("git/stage", json={"workspace": ws, "paths": ["a.py"]})
        # A message that looks like options or shell is just a message (it goes in on stdin).
        message = "--amend; rm -rf / $(x)\n\nbody"
        assert (await env.client.post("git/commit", json={"workspace": ws, "message": message})
                ).status_code == 200
        log = (await env.client.get("git/log", params={"workspace": ws})).json()["commits"]
        assert [c["subject"] for c in log] == ["--amend; rm -rf / $(x)", "First"]
        # Any revision, not only a branch (audit: HEAD~1 was "not a valid branch name").
        for ref, subjects in (("HEAD~1", ["First"]), (log[1]["short"], ["First"]),
                              ("main", ["--amend; rm -rf / $(x)", "First"])):
            answer = await env.client.get("git/log", params={"workspace": ws, "ref": ref})
            assert [c["subject"] for c in answer.json()["commits"]] == subjects, ref
        for ref in ("--all", "nope~9", "HEAD~99"):
            answer = await env.client.get("git/log", params={"workspace": ws, "ref": ref})
            assert answer.status_code == 422 and answer.json()["field"] == "ref", ref
        shown = (await env.client.get("git/show", params={"workspace": ws,
                                                          "commit": log[0]["commit"]})).json()
        assert "+x = 2" in shown["text"] and "body" in shown["text"]

        switched = await env.client.post("git/switch", json={"workspace": ws,
                                                             "branch": "feature", "create": True})
        assert switched.status_code == 200
        names = {b["name"]: b["current"] for b in switched.json()["branches"]}
        assert names == {"feature": True, "main": False}
        assert git(folder, "branch", "--show-current").strip() == "feature"
        for bad in ("-D", "a..b", "x y", "@{-1}"):
            refused = await env.client.post("git/switch", json={"workspace": ws, "branch": bad})
            assert refused.status_code == 422 and refused.json()["field"] == "branch"


async def test_a_non_git_folder_shows_a_clear_state(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("plain", {"a.txt": "x"})
        ws = str(folder)
        status = (await env.client.get("git/status", params={"workspace": ws})).json()
        assert status == {"repository": False, "git_available": True,
                          "message": "plain is not a git repository."}
        for route in ("git/log", "git/branches", "git/diff"):
            answer = await env.client.get(route, params={"workspace": ws})
            assert answer.status_code == 409, route
            assert answer.json()["state"] == "not_a_repository"
        commit = await env.client.post("git/commit", json={"workspace": ws, "message": "m"})
        assert commit.status_code == 409


async def test_paths_outside_the_workspace_are_refused(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("repo", {"a.py": ""}))
        for bad, status in (("../x", 400), ("/etc/passwd", 400), ("", 422)):
            answer = await env.client.post("git/stage", json={"workspace": str(folder),
                                                              "paths": ["a.py", bad]})
            assert answer.status_code in (status, 422), answer.text
            assert "paths" in answer.text


async def test_a_workspace_inside_a_repository_speaks_its_own_paths(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        repo = make_repo(env.make("mono", {"app/a.py": "x = 1\n", "other/b.py": ""}))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "init")
        (repo / "app" / "a.py").write_text("x = 2\n")
        (repo / "other" / "b.py").write_text("y\n")
        ws = str(repo / "app")
        status = (await env.client.get("git/status", params={"workspace": ws})).json()
        assert status["prefix"] == "app/"
        assert [f["path"] for f in status["files"]] == ["a.py"]  # only this folder
        staged = (await env.client.post("git/stage", json={"workspace": ws,
                                                           "paths": ["a.py"]})).json()
        assert [(f["path"], f["staged"]) for f in staged["files"]] == [("a.py", "modified")]
        assert git(repo, "diff", "--cached", "--name-only").split() == ["app/a.py"]


async def test_a_sub_folder_commit_never_takes_what_is_staged_outside_it(
        tmp_path: Path) -> None:
    """Audit: the page shows the workspace's folder only, and a commit took the whole
    index: a file staged elsewhere in the repository went in unseen."""
    async with open_env(tmp_path) as env:
        repo = make_repo(env.make("mono", {"top.txt": "1\n", "sub/in.txt": "1\n"}))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "init")
        (repo / "top.txt").write_text("2\n")
        git(repo, "add", "top.txt")
        (repo / "sub" / "in.txt").write_text("2\n")
        ws = str(repo / "sub")
        await env.client.post("git/stage", json={"workspace": ws, "paths": ["in.txt"]})
        refused = await env.client.post("git/commit", json={"workspace": ws,
                                                            "message": "sub only"})
        assert refused.status_code == 409 and refused.json()["outside"] == ["top.txt"]
        assert "top.txt" in refused.json()["detail"]
        git(repo, "restore", "--staged", "top.txt")
        done = await env.client.post("git/commit", json={"workspace": ws,
                                                         "message": "sub only"})
        assert done.status_code == 200, done.text
        assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["sub/in.txt"]


async def test_a_merge_resolved_to_head_is_shown_and_committed(tmp_path: Path) -> None:
    """Audit: a merge whose resolution kept our side staged nothing, so the commit was
    refused ('nothing is staged') and the status never said a merge was going on."""
    async with open_env(tmp_path) as env:
        repo = make_repo(env.make("merging", {"f.txt": "base\n"}))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "base")
        git(repo, "switch", "-qc", "theirs")
        (repo / "f.txt").write_text("theirs\n")
        git(repo, "commit", "-qam", "theirs")
        git(repo, "switch", "-q", "main")
        (repo / "f.txt").write_text("ours\n")
        git(repo, "commit", "-qam", "ours")
        subprocess.run(["git", "merge", "theirs"], cwd=repo, capture_output=True)  # conflicts
        ws = str(repo)
        status = (await env.client.get("git/status", params={"workspace": ws})).json()
        assert status["operation"] == "merge"
        early = await env.client.post("git/commit", json={"workspace": ws, "message": "m"})
        assert early.status_code == 409 and "conflicts left" in early.json()["detail"]
        (repo / "f.txt").write_text("ours\n")
        await env.client.post("git/stage", json={"workspace": ws, "paths": ["f.txt"]})
        amend = await env.client.post("git/commit", json={"workspace": ws, "message": "m",
                                                          "amend": True})
        assert amend.status_code == 409 and amend.json()["field"] == "amend"
        done = await env.client.post("git/commit", json={"workspace": ws,
                                                         "message": "Merge theirs"})
        assert done.status_code == 200, done.text
        assert len(git(repo, "log", "-1", "--format=%P").split()) == 2  # a merge commit
        status = (await env.client.get("git/status", params={"workspace": ws})).json()
        assert status["operation"] is None


async def test_amending_at_a_rebase_edit_stop_is_allowed(tmp_path: Path) -> None:
    """Review: a rebase in progress refused the amend its 'edit' stop is for."""
    import os

    async with open_env(tmp_path) as env:
        repo = make_repo(env.make("rebasing", {"a.txt": "1\n"}))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "one")
        (repo / "a.txt").write_text("2\n")
        git(repo, "commit", "-qam", "two")
        subprocess.run(["git", "rebase", "-i", "HEAD~1"], cwd=repo, check=True,
                       capture_output=True,
                       env={**os.environ, "GIT_SEQUENCE_EDITOR": "sed -i s/^pick/edit/"})
        ws = str(repo)
        assert (await env.client.get("git/status", params={"workspace": ws})
                ).json()["operation"] == "rebase"
        amended = await env.client.post("git/commit", json={"workspace": ws,
                                                            "message": "two, amended",
                                                            "amend": True})
        assert amended.status_code == 200, amended.text
        assert git(repo, "log", "-1", "--format=%s").strip() == "two, amended"


async def test_a_detached_head_lists_only_real_branches(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        repo = make_repo(env.make("detached", {"a.txt": "a\n"}))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "one")
        git(repo, "switch", "-q", "--detach")
        ws = str(repo)
        names = [b["name"] for b in (await env.client.get(
            "git/branches", params={"workspace": ws})).json()["branches"]]
        assert names == ["main"]  # no "(HEAD detached at ...)" posing as a branch
        status = (await env.client.get("git/status", params={"workspace": ws})).json()
        assert status["branch"]["head"] is None


async def test_links_are_staged_and_diffed_as_links(tmp_path: Path) -> None:
    """Audit: a link to a file outside the workspace, or a dangling one, was refused as
    leading outside: git stages the link itself, and Stage all failed on it."""
    async with open_env(tmp_path) as env:
        repo = make_repo(env.make("links", {"a.txt": "a\n"}))
        (repo / "hostlink").symlink_to("/etc/hostname")
        (repo / "dangling").symlink_to("../nowhere")
        ws = str(repo)
        staged = await env.client.post("git/stage", json={
            "workspace": ws, "paths": ["a.txt", "dangling", "hostlink"]})
        assert staged.status_code == 200, staged.text
        assert sorted(git(repo, "diff", "--cached", "--name-only").split()) == [
            "a.txt", "dangling", "hostlink"]
        diff = (await env.client.get("git/diff", params={
            "workspace": ws, "path": "hostlink", "staged": "true"})).json()
        assert "+/etc/hostname" in diff["diff"]
        # A folder that leads out is still refused.
        (repo / "out").symlink_to(tmp_path)
        answer = await env.client.post("git/stage", json={"workspace": ws,
                                                          "paths": ["out/x"]})
        assert answer.status_code == 400 and "paths[0]" in answer.text


async def test_paths_are_literal_not_pathspec_magic(tmp_path: Path) -> None:
    """A workspace inside a bigger repository: ':(top)*' passed the path check (it is a
    valid file name) and git read it as magic, staging every file of the repository."""
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("repo", {"sub/a.py": "x = 1\n", "secret.env": "K=v\n"}))
        ws = str(folder / "sub")
        for magic in (":(top)*", ":/*", "*"):
            answer = await env.client.post("git/stage", json={"workspace": ws,
                                                              "paths": [magic]})
            assert answer.status_code == 409, answer.text  # no such file
        assert git(folder, "diff", "--cached", "--name-only") == ""
        staged = await env.client.post("git/stage", json={"workspace": ws, "paths": ["a.py"]})
        assert staged.status_code == 200, staged.text
        assert git(folder, "diff", "--cached", "--name-only") == "sub/a.py\n"


async def test_commit_hooks_see_pathspecs_as_git_reads_them(tmp_path: Path) -> None:
    """Literal pathspecs are for the paths Dev Tools passes, not for the repository's
    hooks: a pre-commit hook listing "git diff --cached --name-only -- '*.py'" saw no
    file when the commit came from Dev Tools."""
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("repo", {"a.py": "x = 1\n"}))
        seen = folder / "seen.txt"
        hook = folder / ".git" / "hooks" / "pre-commit"
        hook.write_text("#!/bin/sh\ngit diff --cached --name-only -- '*.py' > "
                        f"'{seen}'\n")
        hook.chmod(0o755)
        ws = str(folder)
        await env.client.post("git/stage", json={"workspace": ws, "paths": ["a.py"]})
        done = await env.client.post("git/commit", json={"workspace": ws, "message": "x"})
        assert done.status_code == 200, done.text
        assert seen.read_text() == "a.py\n"


async def test_unstaging_a_rename_unstages_both_of_its_paths(tmp_path: Path) -> None:
    """The page lists a staged rename once, by its new path; unstaging it left the old
    path's deletion staged (and Unstage all, which sends the listed paths, did too)."""
    async with open_env(tmp_path) as env:
        for name, asked in (("new", ["b.txt"]), ("old", ["a.txt"])):
            repo = make_repo(env.make(name, {"a.txt": "1\n2\n3\n4\n5\n", "c.txt": "c\n"}))
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "init")
            git(repo, "mv", "a.txt", "b.txt")
            (repo / "c.txt").write_text("d\n")
            git(repo, "add", "c.txt")
            ws = str(repo)
            listed = (await env.client.get("git/status", params={"workspace": ws})).json()
            assert {(f["path"], f.get("from"), f["staged"]) for f in listed["files"]} == {
                ("b.txt", "a.txt", "renamed"), ("c.txt", None, "modified")}
            back = (await env.client.post("git/unstage", json={"workspace": ws,
                                                               "paths": asked})).json()
            assert {f["path"]: (f["staged"], f["unstaged"]) for f in back["files"]} == {
                "a.txt": (None, "deleted"), "b.txt": (None, "untracked"),
                "c.txt": ("modified", None)}, name
            assert git(repo, "diff", "--cached", "--name-only").split() == ["c.txt"]
            assert git(repo, "ls-files", "--", "a.txt", "b.txt").split() == ["a.txt"]
