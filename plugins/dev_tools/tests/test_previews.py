"""Format, fixes and local hooks run on a copy; changes shown, written only on approval,
and only over files that did not change since the preview."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dev_tools import hooks, ruffing
from devtools_helpers import git, make_repo, open_env

pytestmark = pytest.mark.asyncio

UGLY = "x = {  'a':1 }\n"
PRETTY = 'x = {"a": 1}\n'
# F401 (unused import) has a safe fix; RUF005 (collection literal concatenation) an unsafe one.
LINTED = "import os\nfoo = [1]\nbar = foo + [2]\n"
RUFF_CONFIG = '[tool.ruff.lint]\nselect = ["F", "RUF005"]\n'
HOOKS = """\
repos:
  - repo: https://github.com/astral-sh/ruff-pre-commit
    rev: v0.6.0
    hooks: [{id: ruff}]
  - repo: local
    hooks:
      - id: strip-todo
        name: strip TODO lines
        language: system
        entry: sed -i /TODO/d
        types: [python]
      - id: no-print
        name: no print
        language: pygrep
        entry: 'print\\('
        files: '\\.py$'
      - id: missing-tool
        name: needs a tool that is not installed
        language: system
        entry: definitely-not-installed-tool
      - id: docker-thing
        name: docker
        language: docker_image
        entry: foo
  - repo: meta
    hooks: [{id: identity}]
"""


async def test_a_config_extending_another_toml_file_is_followed(tmp_path: Path) -> None:
    """Audit: the preview copied only the files to format and files named like ruff's
    configs, so `extend = "config/ruff-base.toml"` failed the whole preview."""
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("ext", {
            "ruff.toml": 'extend = "config/ruff-base.toml"\n',
            "config/ruff-base.toml": "[format]\nquote-style = \"single\"\n",
            "src/m.py": UGLY}))
        result = await env.result(await env.client.post("format/preview", json={
            "workspace": str(folder)}))
        assert result["exit_code"] in (0, 1), result["output"]
        [changed] = result["files"]
        assert changed["path"] == "src/m.py" and "+x = {'a': 1}" in changed["diff"]


async def test_format_preview_then_apply_per_file_with_conflict_409(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("fmt", {"a.py": UGLY, "b.py": UGLY, "ok.py": PRETTY,
                                            "broken.py": "def (:\n"}))
        ws = str(folder)
        result = await env.result(await env.client.post("format/preview", json={"workspace": ws}))
        files = {f["path"]: f for f in result["files"]}
        assert set(files) == {"a.py", "b.py"}
        # A file ruff cannot parse is reported; the others are still previewed.
        assert result["exit_code"] == 2 and "broken.py" in result["output"]
        assert "-x = {  'a':1 }\n+x = {\"a\": 1}\n" in files["a.py"]["diff"]
        assert (folder / "a.py").read_text() == UGLY  # nothing written by the preview

        applied = await env.client.post("preview/apply", json={
            "workspace": ws, "preview": result["id"], "files": ["a.py"]})
        assert applied.status_code == 200 and applied.json()["applied"] == ["a.py"]
        assert (folder / "a.py").read_text() == PRETTY

        (folder / "b.py").write_text(UGLY + "y = 2\n")  # edited after the preview
        conflict = await env.client.post("preview/apply", json={
            "workspace": ws, "preview": result["id"], "files": ["b.py"]})
        assert conflict.status_code == 409 and conflict.json()["conflicts"] == ["b.py"]
        assert (folder / "b.py").read_text() == UGLY + "y = 2\n"  # untouched
        again = await env.client.post("preview/apply", json={
            "workspace": ws, "preview": result["id"], "files": ["a.py"]})
        # Applied already (a second click): said so, nothing written (audit: it was a 409
        # "changed since the preview").
        assert again.status_code == 200, again.text
        assert again.json()["applied"] == [] and again.json()["already_applied"] == ["a.py"]
        (folder / "a.py").write_text(PRETTY + "z = 3\n")  # then edited: that is a change
        edited = await env.client.post("preview/apply", json={
            "workspace": ws, "preview": result["id"], "files": ["a.py"]})
        assert edited.status_code == 409 and edited.json()["conflicts"] == ["a.py"]

        unknown = await env.client.post("preview/apply", json={
            "workspace": ws, "preview": result["id"], "files": ["ok.py"]})
        assert unknown.status_code == 404 and unknown.json()["field"] == "files[0]"
        gone = await env.client.post("preview/apply", json={"workspace": ws, "preview": "nope"})
        assert gone.status_code == 404 and gone.json()["field"] == "preview"


async def test_lint_problems_with_rule_links_and_fix_kinds(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("lint", {"pyproject.toml": RUFF_CONFIG, "m.py": LINTED,
                                   "broken.py": "def (:\n"})
        result = await env.result(await env.client.post("lint", json={"workspace": str(folder)}))
        by_rule = {p["rule"]: p for p in result["problems"]}
        assert by_rule["F401"]["path"] == "m.py" and by_rule["F401"]["line"] == 1
        assert by_rule["F401"]["url"] == "https://docs.astral.sh/ruff/rules/unused-import"
        assert by_rule["F401"]["fix"] == "safe"
        assert by_rule["RUF005"]["fix"] == "unsafe"
        syntax = [p for p in result["problems"] if p["path"] == "broken.py"]
        assert syntax and syntax[0]["syntax_error"] and syntax[0]["severity"] == "error"
        assert syntax[0]["url"] is None
        assert not (folder / ".ruff_cache").exists()  # reading writes nothing


async def test_shell_scripts_join_the_problems_through_shellcheck(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("sh", {"deploy.sh": "#!/bin/sh\necho $1\n",
                                 "bin/run": "#!/bin/bash\ncd somewhere\n", "ok.py": ""})
        result = await env.result(await env.client.post("lint",
                                                        json={"workspace": str(folder)}))
        assert result["tools"] == ["ruff", "shellcheck"]
        found = {(p["path"], p["rule"]): p for p in result["problems"]}
        assert set(found) == {("bin/run", "SC2164"), ("deploy.sh", "SC2086")}
        assert found[("deploy.sh", "SC2086")]["url"] == \
            "https://www.shellcheck.net/wiki/SC2086"
        assert found[("deploy.sh", "SC2086")]["line"] == 2


async def test_safe_fixes_by_default_unsafe_only_on_request(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        config = "[tool.ruff]\nunsafe-fixes = true\n" + RUFF_CONFIG
        folder = env.make("fix", {"pyproject.toml": config, "m.py": LINTED})
        ws = str(folder)
        safe = await env.result(await env.client.post("fix/preview", json={"workspace": ws}))
        diff = safe["files"][0]["diff"]
        assert "-import os\n" in diff
        assert "+bar = [*foo, 2]" not in diff  # unsafe fix left out despite the project setting
        assert (folder / "m.py").read_text() == LINTED
        unsafe = await env.result(await env.client.post("fix/preview", json={"workspace": ws,
                                                                             "unsafe": True}))
        assert "+bar = [*foo, 2]" in unsafe["files"][0]["diff"]
        applied = await env.client.post("preview/apply", json={"workspace": ws,
                                                               "preview": safe["id"]})
        assert applied.status_code == 200
        assert (folder / "m.py").read_text() == "foo = [1]\nbar = foo + [2]\n"


async def test_local_hooks_run_on_a_copy_and_every_change_waits_for_approval(
        tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("hooks", {
            ".pre-commit-config.yaml": HOOKS, "a.py": "x = 1  # TODO remove\nprint(x)\n",
            "b.py": "y = 2\n", "notes.md": "TODO stays: not python\n"}))
        ws = str(folder)
        listed = (await env.client.get("hooks", params={"workspace": ws})).json()
        assert listed["skipped_repos"] == ["https://github.com/astral-sh/ruff-pre-commit"]
        assert [h["id"] for h in listed["hooks"]] == [
            "strip-todo", "no-print", "missing-tool", "docker-thing", "identity"]

        result = await env.result(await env.client.post("hooks/preview", json={"workspace": ws}))
        hooks = {h["id"]: h for h in result["hooks"]}
        assert hooks["strip-todo"]["status"] == "modified"
        assert hooks["strip-todo"]["modified"] == ["a.py"] and hooks["strip-todo"]["files"] == 2
        assert hooks["no-print"]["status"] == "failed" and "a.py:1:print(x)" in \
            hooks["no-print"]["output"]  # it sees the copy as the previous hook left it
        assert hooks["missing-tool"]["status"] == "skipped"
        assert "not installed" in hooks["missing-tool"]["output"]
        assert hooks["docker-thing"]["status"] == "skipped"
        assert hooks["identity"]["output"].split() == [".pre-commit-config.yaml", "a.py",
                                                       "b.py", "notes.md"]
        assert result["passed"] is False
        assert [f["path"] for f in result["files"]] == ["a.py"]
        assert "-x = 1  # TODO remove\n" in result["files"][0]["diff"]
        assert (folder / "a.py").read_text().startswith("x = 1  # TODO")  # not yet written

        applied = await env.client.post("preview/apply", json={"workspace": ws,
                                                               "preview": result["id"]})
        assert applied.status_code == 200
        assert (folder / "a.py").read_text() == "print(x)\n"

        # Only staged files: b.py staged, the others not.
        (folder / "b.py").write_text("y = 2  # TODO\n")
        git(folder, "add", "b.py")
        staged = await env.result(await env.client.post("hooks/preview", json={
            "workspace": ws, "files": "staged", "hooks": ["strip-todo"]}))
        assert [h["files"] for h in staged["hooks"]] == [1]
        assert [f["path"] for f in staged["files"]] == ["b.py"]

        unknown = await env.client.post("hooks/preview", json={"workspace": ws, "hooks": ["zzz"]})
        assert unknown.status_code == 404 and unknown.json()["field"] == "hooks[0]"
        bad_scope = await env.client.post("hooks/preview", json={"workspace": ws, "files": "x"})
        assert bad_scope.status_code == 422


async def test_a_bad_or_missing_hook_config_is_a_4xx(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        none = env.make("none", {"a.py": ""})
        answer = await env.client.get("hooks", params={"workspace": str(none)})
        assert answer.status_code == 404
        bad = env.make("bad", {".pre-commit-config.yaml": "repos: [\n"})
        answer = await env.client.get("hooks", params={"workspace": str(bad)})
        assert answer.status_code == 422 and answer.json()["field"] == ".pre-commit-config.yaml"


async def test_hook_tools_come_from_the_workspace_venv_and_the_apps_environment(
        tmp_path: Path) -> None:
    config = """\
repos:
  - repo: local
    hooks:
      - {id: ruff-format, name: ruff format, language: system, entry: ruff format,
         types: [python]}
      - {id: own-tool, name: own tool, language: system, entry: stamp, files: '\\.txt$'}
"""
    async with open_env(tmp_path) as env:
        stamp = '#!/bin/sh\nfor f; do echo stamped > "$f"; done\n'
        folder = env.make("venv", {".pre-commit-config.yaml": config, "a.py": UGLY,
                                   "n.txt": "x\n", ".venv/bin/stamp": stamp})
        (folder / ".venv/bin/stamp").chmod(0o755)
        result = await env.result(await env.client.post("hooks/preview",
                                                        json={"workspace": str(folder)}))
        assert {h["id"]: h["status"] for h in result["hooks"]} == {
            "ruff-format": "modified", "own-tool": "modified"}, result["hooks"]
        changed = {f["path"]: f["diff"] for f in result["files"]}
        assert set(changed) == {"a.py", "n.txt"} and "+stamped" in changed["n.txt"]
        assert (folder / "n.txt").read_text() == "x\n"


async def test_missing_ruff_or_pyyaml_turns_only_their_feature_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_env(tmp_path) as env:
        folder = make_repo(env.make("bare", {".pre-commit-config.yaml": "repos: []\n",
                                             "a.py": UGLY}))
        ws = str(folder)
        empty = tmp_path / "empty-path"
        empty.mkdir()
        monkeypatch.setitem(sys.modules, "ruff.__main__", None)  # import fails
        monkeypatch.setitem(sys.modules, "yaml", None)
        monkeypatch.setenv("PATH", f"{empty}:/usr/bin:/bin")
        monkeypatch.setattr(hooks.sys, "executable", str(empty / "python"))
        roots = (await env.client.get("roots")).json()
        assert roots["tools"]["ruff"] is False
        for route in ("lint", "format/preview", "fix/preview", "hooks/preview"):
            answer = await env.client.post(route, json={"workspace": ws})
            assert answer.status_code == 409, (route, answer.text)
            assert "not installed" in answer.json()["detail"]
        # Everything else still works.
        status = (await env.client.get("git/status", params={"workspace": ws})).json()
        assert status["repository"] is True


async def test_apply_never_writes_through_a_symlink_out_of_the_workspace(
        tmp_path: Path) -> None:
    config = """\
repos:
  - repo: local
    hooks:
      - id: make-dir
        name: creates out/x.txt
        language: script
        entry: mk.sh
        always_run: true
        pass_filenames: false
"""
    async with open_env(tmp_path) as env:
        outside = tmp_path / "outside"
        outside.mkdir()
        folder = env.make("links", {".pre-commit-config.yaml": config,
                                    "mk.sh": "#!/bin/sh\nmkdir -p out && echo x > out/x.txt\n"})
        (folder / "mk.sh").chmod(0o755)
        (folder / "out").symlink_to(outside, target_is_directory=True)
        result = await env.result(await env.client.post("hooks/preview",
                                                        json={"workspace": str(folder)}))
        assert [f["path"] for f in result["files"]] == ["out/x.txt"]
        refused = await env.client.post("preview/apply", json={
            "workspace": str(folder), "preview": result["id"], "files": ["out/x.txt"]})
        assert refused.status_code == 409 and refused.json()["field"] == "files[0]"
        assert "outside" in refused.json()["detail"]
        assert list(outside.iterdir()) == []


async def test_the_files_to_format_are_read_from_diff_headers_only() -> None:
    diff = ("--- a.py\n+++ a.py\n@@ -1 +1 @@\n--- x\n+++ y\n"
            "--- sub/b c.py\n+++ sub/b c.py\n@@ -1 +1 @@\n-y=1\n+y = 1\n")
    assert ruffing.would_reformat(diff) == {"a.py", "sub/b c.py"}
    assert ruffing.messages("error: Failed to parse x.py\n--- a.py\n") == \
        "error: Failed to parse x.py\n"


async def test_the_preview_copy_judges_sizes_before_reading(tmp_path: Path) -> None:
    # Review finding: Copy.fill read each whole file, then compared with the cap.
    import os

    from dev_tools.errors import ApiError
    from dev_tools.preview import Copy
    from dev_tools.workspace import Workspace

    ws = Workspace(tmp_path, tmp_path)
    (tmp_path / "small.py").write_text("x = 1\n")
    os.mkfifo(tmp_path / "pipe.py")  # never blocks the copy waiting for a writer
    with open(tmp_path / "huge.bin", "wb") as handle:
        handle.truncate(64 * 1024**3)  # sparse: 64 GiB to read, none on disk
    copy = Copy(ws, ["small.py", "pipe.py"], 10, 1_000_000)
    try:
        copy.fill()
        assert sorted(copy.before) == ["small.py"]
    finally:
        copy.cleanup()
    copy = Copy(ws, ["small.py", "huge.bin"], 10, 1_000_000)
    try:
        with pytest.raises(ApiError) as refused:
            copy.fill()
        assert refused.value.status == 413 and "max_copy_bytes" in str(refused.value)
    finally:
        copy.cleanup()
    # The budget is for all files together: the second file's size is judged against
    # what is left of it.
    (tmp_path / "half.bin").write_bytes(b"x" * 600_000)
    (tmp_path / "half2.bin").write_bytes(b"x" * 600_000)
    copy = Copy(ws, ["half.bin", "half2.bin"], 10, 1_000_000)
    try:
        with pytest.raises(ApiError, match="max_copy_bytes"):
            copy.fill()
    finally:
        copy.cleanup()
