"""core.entry_points.spare_pydantic_plugin_scan: pydantic is told there are no pydantic
plugins only when no distribution declares one, before it looks itself; a declared plugin
is still loaded by pydantic. Each case in a fresh interpreter: pydantic looks once per
process."""

import subprocess
import sys
from pathlib import Path

SPARED = r"""
import importlib.metadata
from pydantic.plugin import _loader
from plexichat_desktop.core.entry_points import spare_pydantic_plugin_scan

assert _loader._plugins is None  # nothing built a model yet
spare_pydantic_plugin_scan()
declared = list(importlib.metadata.entry_points(group="pydantic"))
# This environment declares none (else pydantic is left to look, as the next test shows).
print(_loader._plugins, declared)
"""

DECLARED = r"""
from pydantic import BaseModel
from pydantic.plugin import _loader
from plexichat_desktop.core.entry_points import spare_pydantic_plugin_scan

spare_pydantic_plugin_scan()
assert _loader._plugins is None  # left to pydantic

class Model(BaseModel):
    x: int

print(sorted(_loader._plugins), Model(x=1).x)
"""

AFTER_A_MODEL = r"""
from pydantic import BaseModel
from pydantic.plugin import _loader
from plexichat_desktop.core.entry_points import spare_pydantic_plugin_scan

class Model(BaseModel):
    x: int

looked = _loader._plugins
spare_pydantic_plugin_scan()
print(_loader._plugins is looked)
"""

PLUGIN = """
class Plugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None


plugin = Plugin()
"""


def run(code: str, pythonpath: Path | None = None) -> str:
    import os

    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath),
                                                          env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pydantic_is_spared_its_look_up_when_no_plugin_is_declared():
    assert run(SPARED) == "{} []"


def test_a_declared_pydantic_plugin_is_still_loaded_by_pydantic(tmp_path):
    info = tmp_path / "h3_pydantic_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: h3-pydantic-plugin\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nh3 = h3_pydantic_plugin:plugin\n")
    (tmp_path / "h3_pydantic_plugin.py").write_text(PLUGIN)
    assert run(DECLARED, tmp_path) == "['h3_pydantic_plugin:plugin'] 1"


def test_nothing_changes_once_pydantic_has_looked():
    assert run(AFTER_A_MODEL) == "True"
