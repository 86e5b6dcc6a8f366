"""Opening a folder as a workspace: inside the roots only, project markers detected."""

from __future__ import annotations

from pathlib import Path

import pytest
from devtools_helpers import make_repo, open_env

pytestmark = pytest.mark.asyncio


async def test_detects_markers_and_tasks(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("proj", {
            "pyproject.toml": '[project]\nname = "p"\n[project.scripts]\np = "p.cli:main"\n',
            "package.json": '{"scripts": {"build": "node build.js"}}',
            "Makefile": ".PHONY: test\n# Run the tests\ntest:\n\tpytest\nlint: ## ruff\n\truff .\n",
            ".pre-commit-config.yaml": "repos: []\n",
        })
        make_repo(folder)
        answer = await env.client.get("workspace", params={"workspace": str(folder)})
        assert answer.status_code == 200, answer.text
        info = answer.json()
        assert info["markers"] == ["Makefile", "git", "package.json", "pre-commit", "pyproject"]
        assert info["repository"] is True
        assert {t["id"]: t["detail"] for t in info["tasks"]} == {
            "make:test": "Run the tests", "make:lint": "ruff", "npm:build": "node build.js",
            "script:p": "p.cli:main"}

        relative = await env.client.get("workspace", params={"workspace": "proj"})
        assert relative.status_code == 200 and relative.json()["path"] == str(folder)


@pytest.mark.parametrize(("value", "status", "words"), [
    ("", 422, "required"),
    ("/etc", 400, "outside"),
    ("proj/../..", 400, "'..'"),
    ("missing", 404, "does not exist"),
    ("proj/file.txt", 422, "not a folder"),
    ("proj/\x00x", 400, "NUL"),
])
async def test_refuses_bad_workspaces_naming_the_field(tmp_path: Path, value: str, status: int,
                                                       words: str) -> None:
    async with open_env(tmp_path) as env:
        env.make("proj", {"file.txt": "x"})
        answer = await env.client.get("workspace", params={"workspace": value})
        assert answer.status_code == status, answer.text
        body = answer.json()
        assert body["field"] == "workspace" and words in body["detail"], body


async def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        outside = tmp_path / "outside"
        outside.mkdir()
        (env.root / "link").symlink_to(outside, target_is_directory=True)
        answer = await env.client.get("workspace", params={"workspace": "link"})
        assert answer.status_code == 400 and "outside" in answer.json()["detail"]


async def test_browse_lists_roots_then_folders_with_markers(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        env.make("b_proj", {"pyproject.toml": ""})
        env.make("a_plain", {"x.txt": ""})
        env.make(".hidden", {"x": ""})
        roots = (await env.client.get("browse")).json()
        assert [f["path"] for f in roots["folders"]] == [str(env.root)]
        listing = (await env.client.get("browse", params={"path": str(env.root)})).json()
        assert [(f["name"], f["markers"]) for f in listing["folders"]] == [
            ("a_plain", []), ("b_proj", ["pyproject"])]
        assert listing["parent"] == ""  # the root has no parent to go up to
        refused = await env.client.get("browse", params={"path": "/"})
        assert refused.status_code == 400 and refused.json()["field"] == "path"


async def test_malformed_project_files_are_reported_not_fatal(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("odd", {"package.json": '{"scripts": ["not", "a", "map"]}',
                                  "pyproject.toml": 'project = "text"\n',
                                  "Makefile": "all:\n\ttrue\n"})
        info = (await env.client.get("workspace", params={"workspace": str(folder)})).json()
        assert [t["id"] for t in info["tasks"]] == ["make:all"]
        broken = env.make("broken", {"pyproject.toml": "[project\n",
                                     ".pre-commit-config.yaml": "repos: [{repo: local, "
                                                                "hooks: 3}]\n"})
        info = (await env.client.get("workspace", params={"workspace": str(broken)})).json()
        assert info["tasks"] == [] and info["problems"][0].startswith("pyproject.toml:")
        hooks = await env.client.get("hooks", params={"workspace": str(broken)})
        assert hooks.status_code == 422 and "hooks must be a list" in hooks.json()["detail"]


async def test_browse_answers_file_system_errors_as_4xx_naming_the_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review finding: browse answered 500 for errors other than a permission denied
    # while listing (a name too long for the file system, a loop, EACCES on stat).
    import errno
    import os

    from dev_tools import workspace

    async with open_env(tmp_path) as env:
        # Each part is short enough for safe_path, the whole too long for the kernel.
        deep = "/".join(["d" * 203] * 20)
        answer = await env.client.get("browse", params={"path": deep})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "path" and "too long" in answer.json()["detail"]

        env.make("proj", {"a.txt": "a"})
        real_scandir = os.scandir
        for error, status, words in (
                (OSError(errno.ELOOP, "Too many levels of symbolic links"), 400, "levels"),
                (PermissionError(errno.EACCES, "Permission denied"), 403, "permission"),
                (OSError(errno.EIO, "Input/output error"), 409, "Input/output")):
            def failing(path: object, error: OSError = error) -> object:
                if str(path).endswith("proj"):
                    raise error
                return real_scandir(path)  # type: ignore[arg-type]

            monkeypatch.setattr(workspace.os, "scandir", failing)
            answer = await env.client.get("browse", params={"path": "proj"})
            assert answer.status_code == status, answer.text
            assert "proj" in answer.json()["detail"] and words in answer.json()["detail"]
            assert answer.json()["field"] == "path"
        monkeypatch.setattr(workspace.os, "scandir", real_scandir)

        real_stat = Path.stat

        def stat_denied(self: Path, **kw: object) -> object:
            if self.name == "proj":
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_stat(self, **kw)  # type: ignore[arg-type]

        # As root the kernel never denies: the denial comes from a patched stat.
        monkeypatch.setattr(workspace.Path, "stat", stat_denied)
        answer = await env.client.get("browse", params={"path": "proj"})
        assert answer.status_code == 403 and "permission denied" in answer.json()["detail"]
