"""``plexichat-desktop plugins new``: a complete, working plugin to start from."""

from __future__ import annotations

import re
from pathlib import Path

from plexichat_desktop.plugins.checks import check_plugin_folder, module_name_taken
from plexichat_desktop.plugins.manifest import ID_PATTERN


def _title(plugin_id: str) -> str:
    return " ".join(part.capitalize() for part in plugin_id.split("_"))


def _class_name(plugin_id: str) -> str:
    return "".join(part.capitalize() for part in plugin_id.split("_")) + "Plugin"


def scaffold_plugin(plugin_id: str, parent: Path, name: str | None = None) -> Path:
    """Create ``parent/<plugin_id>/`` with a manifest, package, page and a passing test."""
    if not re.match(ID_PATTERN, plugin_id):
        raise ValueError(f"{plugin_id!r} is not a valid plugin id: use 2-64 lowercase letters, "
                         "digits and underscores, starting with a letter")
    root = parent / plugin_id
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another id or --dir")
    taken = module_name_taken(plugin_id, root)
    if taken is not None:
        raise ValueError(f"{plugin_id!r} cannot be a plugin id here: its package name "
                         f"'{plugin_id}' is already taken by {taken}; choose another id")
    title = name or _title(plugin_id)
    cls = _class_name(plugin_id)
    files = {
        "plugin.toml": f'''id = "{plugin_id}"
name = "{title}"
version = "0.1.0"
description = "What {title} does, in one sentence."
author = ""
license = "MIT"
entry = "{plugin_id}:{cls}"

[[pages]]
title = "{title}"
path = "index.html"

[tests]
timeout = 60

[settings]
greeting = "Hello"
''',
        f"{plugin_id}/__init__.py": f'''"""{title}: a PlexiChat Desktop plugin."""

from __future__ import annotations

from plexichat_desktop.plugins.api import Plugin, PluginContext


def make_greeting(greeting: str, who: str) -> dict[str, str]:
    """The answer of the /hello route; kept apart so tests can call it directly."""
    return {{"message": f"{{greeting}}, {{who}}!"}}


class {cls}(Plugin):
    def setup(self, ctx: PluginContext) -> None:
        greeting = ctx.settings["greeting"]

        async def hello(who: str = "world") -> dict[str, str]:
            return make_greeting(greeting, who)

        ctx.add_route("/hello", hello)
        ctx.logger.info("{plugin_id} is set up")
''',
        "web/index.html": f'''<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="style.css">
</head>
<body>
  <h1>{title}</h1>
  <p id="message">Loading...</p>
  <script src="app.js"></script>
</body>
</html>
''',
        "web/style.css": "body { font-family: system-ui, sans-serif; margin: 2rem; }\n",
        "web/app.js": '''// Fetch the plugin's own route; relative URLs stay inside /plugins/<id>/.
fetch("api/hello?who=PlexiChat")
  .then((r) => r.json())
  .then((data) => { document.getElementById("message").textContent = data.message; })
  .catch((err) => { document.getElementById("message").textContent = String(err); });
''',
        f"tests/test_{plugin_id}.py": f'''from {plugin_id} import make_greeting


def test_greeting_names_who() -> None:
    assert make_greeting("Hello", "world") == {{"message": "Hello, world!"}}
''',
    }
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    # The same validator as `plugins validate`, the list and the app: what it makes works.
    result = check_plugin_folder(root)
    if not result.ok:
        raise ValueError(f"the new plugin in {root} does not validate: "
                         + "; ".join(result.errors))
    return root
