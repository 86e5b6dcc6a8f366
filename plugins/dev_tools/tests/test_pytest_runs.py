"""pytest of a workspace in a subprocess: a report as a tree, and a rerun of the failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from devtools_helpers import open_env

pytestmark = pytest.mark.asyncio

SUITE = '''\
import os
import pytest

def test_ok():
    pass

def test_flips():
    assert os.path.exists("fixed"), "not fixed yet"

class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        assert n

    @pytest.mark.skip(reason="later")
    def test_skipped(self):
        pass
'''


async def test_report_tree_and_rerun_of_the_failed(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("proj", {"tests/test_things.py": SUITE,
                                   "pytest.ini": "[pytest]\n"})
        ws = str(folder)
        assert (await env.client.get("tests/last", params={"workspace": ws})).json() == {
            "last": None}
        none = await env.client.post("tests/run", json={"workspace": ws, "rerun_failed": True})
        assert none.status_code == 409 and none.json()["field"] == "rerun_failed"

        first = await env.result(await env.client.post("tests/run", json={"workspace": ws,
                                                                              "plugins": False}))
        assert first["autoload"] is False
        assert first["counts"] == {"passed": 3, "failed": 1, "skipped": 1}
        assert first["failed"] == ["tests/test_things.py::test_flips"]
        [flips] = [r for r in first["results"] if r["nodeid"].endswith("test_flips")]
        assert "not fixed yet" in flips["longrepr"]
        [tests_dir] = first["tree"]
        assert tests_dir["name"] == "tests"
        [module] = tests_dir["children"]
        assert module["id"] == "tests/test_things.py"
        assert module["counts"] == {"passed": 3, "failed": 1, "skipped": 1}
        group = next(c for c in module["children"] if c["name"] == "TestGroup")
        assert [c["name"] for c in group["children"]] == ["test_param[1]", "test_param[2]",
                                                          "test_skipped"]
        assert group["children"][0]["id"] == "tests/test_things.py::TestGroup::test_param[1]"

        (folder / "fixed").write_text("")
        rerun = await env.result(await env.client.post("tests/run", json={
            "workspace": ws, "rerun_failed": True, "plugins": False}))
        assert rerun["nodeids"] == ["tests/test_things.py::test_flips"]
        assert rerun["counts"] == {"passed": 1}
        last = (await env.client.get("tests/last", params={"workspace": ws})).json()["last"]
        assert last["counts"] == {"passed": 1}


async def test_a_workspace_below_the_rootdir_reruns_what_it_shows(tmp_path: Path) -> None:
    """Audit: with pytest.ini above the workspace, node ids came relative to it
    ("pkg/tests/t.py::x"); a rerun from the workspace found no such file, ran nothing and
    the job said it succeeded. A test ending the process was "is pytest installed?";
    a parameter id with "::" split the tree."""
    async with open_env(tmp_path) as env:
        top = env.make("p1", {"pytest.ini": "[pytest]\n", "pkg/tests/test_a.py": (
            "import os, pytest\n"
            "def test_bad():\n    assert os.path.exists('fixed')\n"
            "@pytest.mark.parametrize('v', ['x::y'])\n"
            "def test_p(v):\n    pass\n")})
        ws = str(top / "pkg")
        first = await env.result(await env.client.post("tests/run", json={
            "workspace": ws, "plugins": False}))
        assert first["failed"] == ["tests/test_a.py::test_bad"]
        [tests_dir] = first["tree"]
        [module] = tests_dir["children"]
        assert [c["name"] for c in module["children"]] == ["test_bad", "test_p[x::y]"]
        (top / "pkg" / "fixed").write_text("")
        rerun = await env.result(await env.client.post("tests/run", json={
            "workspace": ws, "rerun_failed": True, "plugins": False}))
        assert rerun["counts"] == {"passed": 1}
        folder_run = await env.result(await env.client.post("tests/run", json={
            "workspace": ws, "nodeids": ["tests"], "plugins": False}))
        assert folder_run["counts"] == {"passed": 2}
        # A selection pytest cannot find fails the job, saying so.
        missing = await env.job(await env.client.post("tests/run", json={
            "workspace": ws, "nodeids": ["tests/test_gone.py"], "plugins": False}))
        assert missing["state"] == "failed" and "usage error" in missing["error"]

        exits = env.make("p2", {"test_exit.py": "import os\n"
                                "def test_a():\n    os._exit(3)\n"
                                "def test_b():\n    pass\n"})
        ended = await env.job(await env.client.post("tests/run", json={
            "workspace": str(exits), "plugins": False}))
        assert ended["state"] == "failed"
        assert "after collecting 2 tests" in ended["error"], ended["error"]


async def test_node_ids_are_checked(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("proj", {"t.py": ""})
        for bad in ("--co", "../x.py::t", "/etc/passwd::t"):
            answer = await env.client.post("tests/run", json={"workspace": str(folder),
                                                              "nodeids": ["t.py", bad]})
            assert answer.status_code in (400, 422), answer.text
            assert answer.json()["field"] == "nodeids[1]"
