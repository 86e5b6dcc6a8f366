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


async def test_node_ids_are_checked(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        folder = env.make("proj", {"t.py": ""})
        for bad in ("--co", "../x.py::t", "/etc/passwd::t"):
            answer = await env.client.post("tests/run", json={"workspace": str(folder),
                                                              "nodeids": ["t.py", bad]})
            assert answer.status_code in (400, 422), answer.text
            assert answer.json()["field"] == "nodeids[1]"
