"""Code Analyzer benchmark: a scan of a generated 50,000-line Python tree, cold and cached,
against running radon and ruff by hand on the same tree, in the same run.

* baseline: what a person runs for the same figures, one after the other:
  ``radon raw -j``, ``radon cc -j``, ``radon mi -j``, ``radon hal -j`` and
  ``ruff check --output-format json --no-cache``;
* plugin, cold: ``scan_folder`` with an empty cache, metrics + ruff (the same figures as
  the baseline, plus the import graph), then also with bandit and vulture;
* plugin, cached: the same scan again (content-hash cache hits, tools run again);
* gate: the quality gate after changing one file of the tree (in a git repository),
  against a full scan: what "seconds, locally" means.

    .venv/bin/python benchmarks/code_analyzer_scan.py [--lines 50000] [--workers 0]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins" / "code_analyzer"))

from code_analyzer.gate import GateRule, run_gate  # noqa: E402
from code_analyzer.scan import ScanOptions, scan_folder  # noqa: E402
from code_analyzer.store import Store  # noqa: E402
from code_analyzer.tools import tool_path  # noqa: E402

GIT_ENV = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]


def make_module(rng: random.Random, index: int, lines: int) -> str:
    out = [f'"""Generated module {index}."""', "", "import os", "import json", ""]
    n = 0
    while len(out) < lines:
        n += 1
        branches = rng.randint(0, 9)
        out += ["", f"def func_{index}_{n}(value, other=None):",
                f'    """Function {n}: {branches} branches."""', "    total = 0"]
        for b in range(branches):
            op = rng.choice(["==", ">", "<", "!="])
            out += [f"    if value {op} {b} and other is not None:",
                    f"        total += {b}  # branch {b}",
                    "    else:", f"        total -= {b}"]
        out += ["    for item in range(3):", "        total += item",
                "    return json.dumps({'total': total, 'cwd': os.getcwd()})"]
        if n % 4 == 0:
            out += ["", "", f"class Thing{index}_{n}:", "    def method(self, x):",
                    "        return x * 2 if x else None", ""]
    return "\n".join(out[:lines]) + "\n"


def make_tree(root: Path, total_lines: int) -> int:
    rng = random.Random(14)
    files = 0
    written = 0
    while written < total_lines:
        lines = min(rng.randint(120, 320), total_lines - written)
        folder = root / f"pkg{files // 25}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").touch()
        (folder / f"mod{files}.py").write_text(make_module(rng, files, lines))
        written += lines
        files += 1
    return files


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def by_hand(tree: Path) -> float:
    radon = tool_path("radon")
    ruff = tool_path("ruff")
    assert radon and ruff, "radon and ruff must be installed"
    started = time.perf_counter()
    for command in (["raw", "-j"], ["cc", "-j"], ["mi", "-j"], ["hal", "-j"]):
        subprocess.run([radon, *command, str(tree)], check=True, capture_output=True)
    subprocess.run([ruff, "check", "--output-format", "json", "--no-cache", "--exit-zero",
                    "--isolated", str(tree)], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="code-analyzer-bench-") as tmp:
        tree = Path(tmp) / "tree"
        make_tree(tree, args.lines)
        files = len(list(tree.rglob("*.py")))
        (tree / "ruff.toml").write_text("")  # ruff's defaults in both runs
        print(f"tree: {files} Python files (with empty __init__.py), {args.lines:,} lines")

        baseline = by_hand(tree)
        print(f"baseline  radon raw+cc+mi+hal + ruff, by hand : {baseline:7.2f} s")

        store = Store(Path(tmp) / "cache.sqlite3")
        same = ScanOptions(workers=args.workers, tool_names=("ruff",),
                           ruff_cache_dir=Path(tmp) / "ruff-cache")
        cold, result = timed(scan_folder, tree, store, same)
        s = result["summary"]
        assert s["files"] == files and s["cache_hits"] == 0, s
        print(f"plugin    cold, metrics + ruff                : {cold:7.2f} s  "
              f"({cold / baseline:.2f}x the baseline; {s['functions']} functions)")
        cached, result = timed(scan_folder, tree, store, same)
        assert result["summary"]["cache_hits"] == files, result["summary"]
        print(f"plugin    cached, metrics + ruff              : {cached:7.2f} s  "
              f"({cached / baseline:.2f}x the baseline)")

        full_store = Store(Path(tmp) / "cache-full.sqlite3")
        full = ScanOptions(workers=args.workers, ruff_cache_dir=Path(tmp) / "ruff-cache-full")
        full_cold, _ = timed(scan_folder, tree, full_store, full)
        full_cached, _ = timed(scan_folder, tree, full_store, full)
        print(f"plugin    cold, + bandit + vulture            : {full_cold:7.2f} s  "
              f"({full_cold / baseline:.2f}x the baseline)")
        print(f"plugin    cached, + bandit + vulture          : {full_cached:7.2f} s  "
              f"({full_cached / baseline:.2f}x the baseline)")

        subprocess.run(["git", "-C", str(tree), "init", "-q"], check=True)
        subprocess.run(["git", "-C", str(tree), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(tree), *GIT_ENV, "commit", "-q", "-m", "base"],
                       check=True)
        target = next(tree.glob("pkg0/mod1.py"))
        target.write_text(target.read_text() + "\n\ndef added(x):\n    return x or 1\n")
        gate, verdict = timed(run_gate, tree, GateRule("HEAD"), full_store, full)
        assert verdict["analysed_files"] == 1
        print(f"gate      one changed file vs HEAD            : {gate:7.2f} s  "
              f"({gate / full_cold:.3f}x a cold full scan, {gate / baseline:.2f}x the "
              f"baseline; passed={verdict['passed']})")


if __name__ == "__main__":
    main()
