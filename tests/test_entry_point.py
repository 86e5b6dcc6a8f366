"""python -m plexichat_desktop: which arguments reach the test runner's child modes."""

import ast
from pathlib import Path


def test_every_child_mode_flag_is_seen_by_the_entry_point():
    # __main__ imports the child modes only for a first argument with this prefix.
    import plexichat_desktop
    from plexichat_desktop.testing import child

    main = Path(plexichat_desktop.__file__).with_name("__main__.py")
    prefix = next(node.value.value for node in ast.parse(main.read_text()).body
                  if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", "") == "CHILD_FLAG_PREFIX")
    flags = [value for name, value in vars(child).items()
             if name.endswith("_FLAG") and isinstance(value, str)]
    assert len(flags) == 3 and all(flag.startswith(prefix) for flag in flags)


LISTEN_FIRST = r"""
import asyncio, sys
from plexichat_desktop.cli import _load, build_parser
from plexichat_desktop.runtime import Listener

args = build_parser().parse_args(["serve", "--port", "0"])
paths, settings = _load(args)


async def main():
    listener = Listener(paths, settings)
    await listener.start()
    try:
        print(sorted(name for name in sys.modules if name.split(".")[0] in (
            "fastapi", "statistics", "jinja2")
            or name.startswith(("plexichat_desktop.plugins", "plexichat_desktop.testing",
                                "plexichat_desktop.server.v1", "plexichat_desktop.server.app"))))
    finally:
        await listener.stop()

asyncio.run(main())
"""


def test_serve_listens_before_it_imports_the_core(home):
    # What serve runs before its port answers: argument parsing, settings, the listener.
    # The framework, the plugin host, the test manager and the v1 API come after.
    # (multiprocessing is not checked: uvicorn imports it itself.)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LISTEN_FIRST], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
