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

        async def unsendable():
            # Extras that are not JSON (an exception with internals in its text, NaN).
            try:
                open("/nonexistent/secret-config.toml")
            except OSError as exc:
                raise PluginProblem(502, "config", "cannot be read", cause=exc) from None

        async def not_a_number():
            raise PluginProblem(422, "ratio", "out of range", value=float("nan"))

        class Bodyless(PluginProblem):
            def body(self):
                raise KeyError("internal-state-42")

        async def bodyless():
            raise Bodyless(409, "name", "taken")

        ctx.add_route("/check", check)
        ctx.add_route("/entry/{key}", entry)
        ctx.add_route("/create", create, methods=["POST"])
        ctx.add_route("/busy", busy)
        ctx.add_route("/broken", broken)
        ctx.add_route("/unsendable", unsendable)
        ctx.add_route("/nan", not_a_number)
        ctx.add_route("/bodyless", bodyless)
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


@pytest.mark.asyncio
async def test_a_problem_whose_body_is_not_json_still_answers_json(start_core, tmp_path,
                                                                  caplog):
    # A plugin's bug in its problem (extras that are no JSON, a body() that fails) must
    # not turn the answer into the server's bare text 500 or show the extras' internals:
    # the status, detail and field the pages read, and the failure in the plugin's log.
    # Its own id: a package name is imported once per process.
    root = scaffold_plugin("problems_json", tmp_path)
    (root / "problems_json" / "__init__.py").write_text(
        PLUGIN.replace("class ProblemsPlugin", "class ProblemsJsonPlugin"))
    core = await start_core(tmp_path)
    api = "/plugins/problems_json/api"
    with caplog.at_level(logging.INFO):
        r = await core.client.get(f"{api}/unsendable")
        assert r.status_code == 502, r.text
        assert r.json() == {"detail": "config: cannot be read", "field": "config"}
        assert "secret-config" not in r.text and "Traceback" not in r.text
        r = await core.client.get(f"{api}/nan")
        assert r.status_code == 422, r.text
        assert r.json() == {"detail": "ratio: out of range", "field": "ratio"}
        r = await core.client.get(f"{api}/bodyless")
        assert r.status_code == 409, r.text
        assert r.json() == {"detail": "name: taken", "field": "name"}
        assert "internal-state-42" not in r.text
    logged = [rec for rec in caplog.records if rec.name == "plexichat.plugin.problems_json"
              and rec.levelno >= logging.ERROR]
    assert len(logged) == 3, [rec.getMessage() for rec in caplog.records]


def test_extras_do_not_replace_the_detail():
    with pytest.raises(TypeError, match="detail"):
        PluginProblem(422, "x", "why", detail="something else")
