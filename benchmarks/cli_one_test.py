"""One selected test from the command line on a large suite: the manager's CLI against
plain pytest on the same node id, in the same run.

A generated plugin holds ``--files`` x ``--tests`` tests (5,000 by default). Each round
times ``plexichat-desktop test PLUGIN::FILE::TEST --json`` and
``python -m pytest FILE::TEST`` (interleaved), then prints the medians and their ratio.

    .venv/bin/python benchmarks/cli_one_test.py [--files 100] [--tests 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(root: Path, files: int, tests: int) -> Path:
    folder = root / "big_suite"
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text('id = "big_suite"\nname = "Big suite"\n'
                                        'version = "1.0.0"\nentry = "big_suite_pkg:Plugin"\n')
    for f in range(files):
        body = [f"def test_{t}():\n    assert {t} >= 0\n" for t in range(tests)]
        (folder / "tests" / f"test_file_{f:03d}.py").write_text("\n".join(body))
    return folder


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = generate(root / "plugins", args.files, args.tests)
        node = f"tests/test_file_{args.files // 2:03d}.py::test_{args.tests // 2}"
        env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(root / "home"),
               "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(root / "plugins")}
        plain_env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        ours, theirs = [], []
        for _ in range(args.rounds):
            elapsed, out = timed([sys.executable, "-m", "plexichat_desktop", "test",
                                  f"big_suite::{node}", "--json"], folder, env)
            results = json.loads(out)["results"]
            assert [r["nodeid"] for r in results] == [node], results
            ours.append(elapsed)
            elapsed, _ = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                node], folder, plain_env)
            theirs.append(elapsed)
        ours_ms, theirs_ms = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
        print(f"one test of {args.files * args.tests} from the CLI, median of {args.rounds}:")
        print(f"  plexichat-desktop test PLUGIN::{node}: {ours_ms:7.0f} ms")
        print(f"  plain pytest {node} (baseline):  {theirs_ms:7.0f} ms")
        print(f"  ratio: {ours_ms / theirs_ms:.2f}x")


if __name__ == "__main__":
    main()
