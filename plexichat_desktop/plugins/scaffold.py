"""``plexichat-desktop plugins new``: a complete, working plugin to start from.

What it writes uses the platform: a settings model the host validates (``ctx.config``),
a route, a job with progress and cancel (``ctx.jobs``), a page that starts the job and
shows it with the host's jobs component, tests that pass as written (one runs the plugin in
the app through the harness, :mod:`plexichat_desktop.testing.harness`) and a ``pytest.ini``
that loads the harness under the test manager and plain pytest alike. The files are
templates below with ``__ID__``, ``__TITLE__`` and ``__CLASS__`` filled in.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from plexichat_desktop.core.paths import bundled_plugins_dir
from plexichat_desktop.plugins.checks import check_plugin_folder, module_name_taken
from plexichat_desktop.plugins.manifest import ID_PATTERN, RESERVED_PACKAGES

MANIFEST = '''id = "__ID__"
name = "__TITLE__"
version = "0.1.0"
description = "What __TITLE__ does, in one sentence."
author = ""
license = "MIT"
entry = "__ID__:__CLASS__"

[[pages]]
title = "__TITLE__"
path = "index.html"

# Python packages and programs it needs, checked before it starts, e.g.
# [requires_python]
# packages = ["radon>=6"]          # missing -> the plugin is "incompatible"
# optional = ["semgrep>=1.100"]    # missing -> "degraded" (ctx.has("semgrep") is False)
# [requires_system]
# binaries = ["git"]

[tests]
timeout = 60

[settings]
# Defaults; users override them in [plugin.__ID__] of settings.toml.
greeting = "Hello"
steps = 20
'''

PACKAGE = '''"""__TITLE__: a PlexiChat Desktop plugin."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.jobs import JobHandle
from plexichat_desktop.plugins.settings import PluginSettings


class Settings(PluginSettings):
    """The settings and their ranges; the host checks them before setup (ctx.config)."""

    greeting: str = Field("Hello", min_length=1, max_length=100)
    steps: int = Field(20, ge=1, le=10_000)


class CountRequest(BaseModel):
    text: str = Field(max_length=100_000)


def make_greeting(greeting: str, who: str) -> dict[str, str]:
    """The answer of the /hello route; kept apart so tests can call it directly."""
    return {"message": f"{greeting}, {who}!"}


async def count_words(job: JobHandle, text: str, steps: int) -> dict[str, int]:
    """A job: long work that reports progress and can be cancelled from the page."""
    words = text.split()
    for step in range(1, steps + 1):
        await asyncio.sleep(0)  # real work awaits here; a cancel arrives at an await
        job.progress(step, steps, f"step {step} of {steps}")
    return {"words": len(words)}


class __CLASS__(Plugin):
    settings_model = Settings

    def setup(self, ctx: PluginContext) -> None:
        config: Settings = ctx.config

        async def hello(who: str = "world") -> dict[str, str]:
            return make_greeting(config.greeting, who)

        async def count(body: CountRequest) -> dict[str, Any]:
            job = ctx.jobs.start("count words", count_words, body.text, config.steps)
            return job.to_dict()

        ctx.add_route("/hello", hello)
        ctx.add_route("/count", count, methods=["POST"])
        ctx.logger.info("__ID__ is set up")
'''

PAGE = '''<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>__TITLE__</title>
  <link rel="stylesheet" href="/_app/plugins/jobs.css">
  <link rel="stylesheet" href="style.css">
</head>
<body>
  <h1>__TITLE__</h1>
  <p id="message">Loading...</p>
  <form id="count-form">
    <label for="text">Text to count</label>
    <textarea id="text" rows="3">one two three</textarea>
    <button type="submit">Count words</button>
  </form>
  <h2>Jobs</h2>
  <section data-plexichat-jobs data-empty="No jobs yet." aria-label="Jobs"></section>
  <script src="/_app/live/client.js"></script>
  <script src="/_app/plugins/jobs.js"></script>
  <script src="app.js"></script>
</body>
</html>
'''

STYLE = '''body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 40rem; }
form { display: grid; gap: .5rem; margin: 1rem 0; }
'''

SCRIPT = '''// Relative URLs stay inside /plugins/<id>/; scripts come from this origin only (CSP).
fetch("api/hello?who=PlexiChat")
  .then((r) => r.json())
  .then((data) => { document.getElementById("message").textContent = data.message; })
  .catch((err) => { document.getElementById("message").textContent = String(err); });

// Start a job; the jobs component above shows its progress bar and a Cancel button.
document.getElementById("count-form").addEventListener("submit", (event) => {
  event.preventDefault();
  fetch("api/count", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text: document.getElementById("text").value }),
  }).catch((err) => { document.getElementById("message").textContent = String(err); });
});
'''

TEST = '''"""Tests of __TITLE__: its parts on their own, then the plugin running in the app.

pytest.ini loads the host's harness, so these run the same under plexichat-desktop test,
plain pytest and an IDE: plexichat_app, plain async tests and the [tests] timeout.
"""

import logging

from __ID__ import Settings, count_words, make_greeting
from plexichat_desktop.plugins.jobs import JobManager
from plexichat_desktop.testing.harness import PlexiChatApp


def test_greeting_and_settings() -> None:
    assert make_greeting("Hello", "world") == {"message": "Hello, world!"}
    assert Settings.from_settings({"steps": 5}).steps == 5


async def test_the_count_job_on_its_own() -> None:  # a plain async test: no marker needed
    jobs = JobManager("__ID__", logging.getLogger("test"))
    job = jobs.start("count words", count_words, "one two three", 4)
    done = await jobs.wait(job.id)
    assert (done.state, done.result, done.fraction) == ("succeeded", {"words": 3}, 1.0)


def test_route_page_and_job_in_the_app(plexichat_app: PlexiChatApp) -> None:
    client = plexichat_app.client  # /plugins/__ID__/ with the app's token
    assert client.get("api/hello", params={"who": "you"}).json() == {"message": "Hello, you!"}
    assert 'id="message"' in client.get("").text
    started = client.post("api/count", json={"text": "a b c d"})
    assert started.status_code == 200, started.text
    jobs = plexichat_app.record.context.jobs  # plugin objects live on the app's loop:
    done = plexichat_app.call(jobs.wait(started.json()["id"]))  # call() runs work there
    assert (done.state, done.result) == ("succeeded", {"words": 4})
    assert client.get(f"api/_host/jobs/{done.id}").json()["state"] == "succeeded"
'''

PYTEST_INI = '''# Read by plexichat-desktop test and by plain pytest / an IDE alike: the host's
# harness (the plexichat_app fixture, plain async tests, the [tests] timeout) and the
# plugin folder on the import path.
[pytest]
testpaths = tests
pythonpath = .
addopts = -p plexichat_desktop.testing.harness --import-mode=importlib
# pytest-asyncio's loop for async fixtures, set so that plain pytest does not warn it is
# unset (the harness makes the key known where pytest-asyncio is not loaded).
asyncio_default_fixture_loop_scope = function
'''


def _title(plugin_id: str) -> str:
    return " ".join(part.capitalize() for part in plugin_id.split("_"))


def _class_name(plugin_id: str) -> str:
    return "".join(part.capitalize() for part in plugin_id.split("_")) + "Plugin"


def scaffold_plugin(plugin_id: str, parent: Path, name: str | None = None) -> Path:
    """Create ``parent/<plugin_id>/``: a manifest, a package with a validated settings
    model, a route and a job, a page that starts the job and shows it with the host's jobs
    component, tests that pass as written (one with the harness's app) and the pytest.ini
    that loads the harness. ``ValueError`` for an id that is not valid or whose
    package name another module has; ``FileExistsError`` when the folder exists."""
    if not re.match(ID_PATTERN, plugin_id):
        raise ValueError(f"{plugin_id!r} is not a valid plugin id: use 2-64 lowercase letters, "
                         "digits and underscores, starting with a letter")
    if plugin_id in RESERVED_PACKAGES:
        raise ValueError(f"{plugin_id!r} cannot be a plugin id: its package folder would "
                         f"be {RESERVED_PACKAGES[plugin_id]}; choose another id")
    root = parent / plugin_id
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another id or --dir")
    taken = module_name_taken(plugin_id, root)
    if taken is not None:
        raise ValueError(f"{plugin_id!r} cannot be a plugin id here: its package name "
                         f"'{plugin_id}' is already taken by {taken}; choose another id")
    bundled = bundled_plugins_dir() / plugin_id
    if (bundled / "plugin.toml").is_file():
        # The app loads the bundled one and fails this one as a duplicate id.
        raise ValueError(f"{plugin_id!r} is the id of a plugin that comes with the app "
                         f"({bundled}); choose another id")
    title = (name or _title(plugin_id)).replace('"', "'")
    files = {
        "plugin.toml": MANIFEST,
        f"{plugin_id}/__init__.py": PACKAGE,
        "web/index.html": PAGE,
        "web/style.css": STYLE,
        "web/app.js": SCRIPT,
        f"tests/test_{plugin_id}.py": TEST,
        "pytest.ini": PYTEST_INI,
    }
    for rel, template in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shown = html.escape(title) if rel.endswith(".html") else title
        text = (template.replace("__CLASS__", _class_name(plugin_id))
                .replace("__ID__", plugin_id).replace("__TITLE__", shown))
        target.write_text(text, encoding="utf-8")
    # The same validator as `plugins validate`, the list and the app: what it makes works.
    result = check_plugin_folder(root)
    if not result.ok:
        raise ValueError(f"the new plugin in {root} does not validate: "
                         + "; ".join(result.errors))
    return root
