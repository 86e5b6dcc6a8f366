"""PluginProblem: a plugin's route refuses with a status and a JSON body naming the field,
served by the real core over HTTP."""

from __future__ import annotations

import logging

import pytest

from plexichat_desktop.plugins.api import PluginProblem
from plexichat_desktop.plugins.scaffold import scaffold_plugin

PLUGIN = '''
import asyncio

from plexichat_desktop.plugins.api import Plugin, PluginProblem


class Conflict(PluginProblem):
    def __init__(self, name, other):
        super().__init__(409, "name", f"{name!r} exists", existing=other)


def lookup(key):
    """Blocking work (run in a thread) that refuses deep down."""
    raise PluginProblem(404, "key", f"no entry {key!r}")


class ProblemsPlugin(Plugin):
    def setup(self, ctx):
        async def check(email: str = ""):
            if "@" not in email:
                raise PluginProblem(422, "email", "is not an address")
            return {"ok": email}

        async def entry(key: str):
            return await asyncio.to_thread(lookup, key)

        async def create(name: str):
            raise Conflict(name, "p-1")

        async def busy():
            raise PluginProblem(503, None, "try again in a minute")

        async def broken():
            raise RuntimeError("not a problem, a bug")

        ctx.add_route("/check", check)
        ctx.add_route("/entry/{key}", entry)
        ctx.add_route("/create", create, methods=["POST"])
        ctx.add_route("/busy", busy)
        ctx.add_route("/broken", broken)
'''


@pytest.mark.asyncio
async def test_a_plugin_problem_is_the_routes_answer(start_core, tmp_path, caplog):
    root = scaffold_plugin("problems", tmp_path)
    (root / "problems" / "__init__.py").write_text(PLUGIN)
    core = await start_core(tmp_path)
    api = "/plugins/problems/api"

    with caplog.at_level(logging.INFO):
        r = await core.client.get(f"{api}/check", params={"email": "ann"})
        assert r.status_code == 422
        assert r.json() == {"detail": "email: is not an address", "field": "email"}
        assert (await core.client.get(f"{api}/check", params={"email": "a@b"})).json() == \
            {"ok": "a@b"}

        r = await core.client.get(f"{api}/entry/k1")
        assert r.status_code == 404
        assert r.json() == {"detail": "key: no entry 'k1'", "field": "key"}

        r = await core.client.post(f"{api}/create", params={"name": "x"})
        assert r.status_code == 409
        assert r.json() == {"detail": "name: 'x' exists", "field": "name", "existing": "p-1"}

        r = await core.client.get(f"{api}/busy")
        assert r.status_code == 503
        assert r.json() == {"detail": "try again in a minute", "field": None}
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING
                and "problems" in rec.name], "a problem is an answer, not a failure"

    r = await core.client.get(f"{api}/broken")  # anything else is still a 500
    assert r.status_code == 500 and r.json()["plugin"] == "problems"


def test_a_problem_has_an_error_status():
    with pytest.raises(ValueError, match="4xx or 5xx"):
        PluginProblem(200, "x", "fine")
    problem = PluginProblem(422, "a.b", "too long", limit=3)
    assert (problem.status, problem.field, problem.message) == (422, "a.b", "too long")
    assert problem.body() == {"detail": "a.b: too long", "field": "a.b", "limit": 3}
