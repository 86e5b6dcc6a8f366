"""The subprocess runner on its own: UTF-8 across chunk borders, the cap, the timeout, a
cancel."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import psutil
import pytest
from dev_tools import procs

pytestmark = pytest.mark.asyncio

# 3-byte characters never line up with the 64 KiB reads, so many fall across a border.
WRITE = "import sys; sys.stdout.write('€' * 100_000 + 'end')"


async def test_multibyte_text_survives_chunk_borders(tmp_path: Path) -> None:
    seen: list[str] = []
    result = await procs.run([sys.executable, "-c", WRITE], tmp_path, cap=10_000_000,
                             on_output=seen.append)
    assert result.exit_code == 0 and not result.truncated
    assert result.output == "€" * 100_000 + "end"
    assert "".join(seen) == result.output


async def test_terminal_colours_are_not_shown_as_text(tmp_path: Path) -> None:
    """Seen in session 19: a task that colours its output although NO_COLOR is set
    (FORCE_COLOR, --color=yes) showed "[32mPASSED[0m" in the page; a sequence split
    between two reads too."""
    # A coloured word per line; the 64 KiB reads split some sequences in two.
    script = ("import sys; sys.stdout.write(''.join('\\x1b[1;32mok\\x1b[0m \\x1b]0;t\\x07%d\\n'"
              " % n for n in range(20_000)))")
    seen: list[str] = []
    result = await procs.run([sys.executable, "-c", script], tmp_path, cap=10_000_000,
                             on_output=seen.append)
    assert result.exit_code == 0
    assert result.output == "".join(f"ok {n}\n" for n in range(20_000))
    assert "".join(seen) == result.output
    # A title never closed is no reason to hold back what follows (review: 6 MB were
    # held, then dropped); tput's "ESC ( B" and other short sequences go too.
    script = ("import sys; sys.stdout.write('start\\x1b]0;title\\n' + 'line\\n' * 50_000"
              " + '\\x1b(Bend\\x1b7\\n')")
    result = await procs.run([sys.executable, "-c", script], tmp_path, cap=10_000_000)
    assert result.output == "start0;title\n" + "line\n" * 50_000 + "end\n"


async def test_capped_output_keeps_whole_characters(tmp_path: Path) -> None:
    result = await procs.run([sys.executable, "-c", WRITE], tmp_path, cap=4097)
    assert result.truncated and result.total_bytes == 300_003
    assert "\ufffd" not in result.output
    assert result.output.startswith("€€€") and result.output.endswith("€end")


async def test_timeout_stops_the_child_and_says_so(tmp_path: Path) -> None:
    result = await procs.run([sys.executable, "-c", "import time; time.sleep(60)"],
                             tmp_path, timeout=0.2)
    assert result.exit_code is None and "stopped after 0.2 s" in result.output


async def test_nul_in_an_argument_is_refused_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="argument 1 contains a NUL"):
        await procs.run(["echo", "a\x00b"], tmp_path)


# A child that starts a grandchild in its process group at once and names it in a file.
SPAWN = ("import subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
         "open('grandchild.pid', 'w').write(str(child.pid))\n"
         "time.sleep(120)\n")


async def test_a_cancel_while_the_child_is_still_being_connected_ends_its_group(
        tmp_path: Path) -> None:
    """asyncio starts the child, then connects its pipes over a few loop turns; a cancel
    then (the task's Cancel clicked at once, or a loaded machine) made asyncio kill the
    child alone, and what it had started lived on. Seen as a flaky test_tasks failure: the
    grandchild still there, its parent gone, in the child's group."""
    task = asyncio.ensure_future(procs.run([sys.executable, "-c", SPAWN], tmp_path))
    me = psutil.Process()
    for _ in range(100):  # one loop turn at a time, until the child is forked
        await asyncio.sleep(0)
        if any("grandchild.pid" in " ".join(c.cmdline()) for c in me.children()):
            break
    pid_file = tmp_path / "grandchild.pid"
    # The loop is held (no pipe gets connected) until the child has started its own.
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the child never started its grandchild"
        time.sleep(0.01)
    grandchild = psutil.Process(int(pid_file.read_text()))
    task.cancel()
    # Bounded: the grandchild holds the child's output pipe, and the cancel used to wait
    # for it to end by itself (120 s).
    done, _ = await asyncio.wait([task], timeout=30)
    assert done and task.cancelled(), "the cancel waited for what the child had started"
    gone, alive = psutil.wait_procs([grandchild], timeout=10)
    assert gone or grandchild.status() == psutil.STATUS_ZOMBIE, alive
