"""Development Tools: the cost of previewing on a copy, against ``ruff format --diff``.

The plugin never lets a formatter touch the workspace: it asks ruff (read-only) which
files would change, copies those (and ruff's config files), runs ``ruff format`` in the
copy, hashes and diffs what changed, and keeps the new bytes for "apply". This measures
that preview until its result is ready (the copy is deleted in the background) on a
generated tree of Python files, one in five badly formatted, against the nearest thing a
person runs by hand, ``ruff format --diff .`` in the tree, alternating rounds.

    .venv/bin/python benchmarks/dev_tools_preview.py [--files 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins" / "dev_tools"))

from dev_tools import gitops, preview, procs, ruffing  # noqa: E402
from dev_tools.workspace import Workspace  # noqa: E402

GOOD = '''def f{n}(a: int, b: int) -> int:
    """Add two numbers, {n}."""
    total = a + b
    for i in range(3):
        total += i * {n}
    return total


'''
BAD = "def g{n}( a,b ):\n    x = {{ 'k':a , 'v' : b }}\n    return [ x,a ,b ]\n\n\n"


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"pkg{i % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(GOOD.format(n=i * 10 + k) for k in range(6))
        if i % 5 == 0:  # one file in five needs formatting
            body += BAD.format(n=i)
        body = body.rstrip("\n") + "\n"
        (folder / f"mod{i}.py").write_text(body)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)


async def plugin_preview(ws: Workspace) -> tuple[int, preview.Copy]:
    """What the format preview job does until its result is ready (the plugin deletes the
    copy in the background afterwards, so that is not timed)."""
    check = await procs.run(ruffing.check_format_command(), ws.path, cap=50_000_000)
    only = ruffing.would_reformat(check.output)
    is_git = (await gitops.repo_state(ws)) is not None
    files = [f for f in await preview.list_files(ws, is_git)
             if f in only or Path(f).name in ruffing.CONFIG_FILES]
    copy = preview.Copy(ws, files, 1_000_000, 10_000_000_000)
    await asyncio.to_thread(copy.fill)
    await procs.run([*ruffing.format_command()[:-1], *sorted(only)], copy.dir,
                    cap=50_000_000)
    changes = await asyncio.to_thread(copy.changes)
    return len(changes), copy


def by_hand(root: Path) -> int:
    out = subprocess.run([ruffing.ruff_binary(), "format", "--diff", "--no-cache", "."],
                         cwd=root, capture_output=True, text=True)
    return len(ruffing.would_reformat(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dev_tools-bench-") as tmp:
        root = Path(tmp)
        make_tree(root, args.files)
        ws = Workspace(root, root)
        plugin_times, hand_times = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            hand = by_hand(root)
            hand_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            changed, copy = asyncio.run(plugin_preview(ws))
            plugin_times.append(time.perf_counter() - start)
            copy.cleanup()
        assert changed == hand, (changed, hand)
        lines = sum(1 for _ in root.rglob("*.py")) and sum(
            p.read_text().count("\n") for p in root.rglob("*.py"))
        print(f"{args.files} files, {lines} lines, {changed} need formatting")
        print(f"ruff format --diff (by hand):      median {statistics.median(hand_times):.3f} s")
        print(f"plugin preview (copy, run, diff):  median {statistics.median(plugin_times):.3f} s")


if __name__ == "__main__":
    main()
