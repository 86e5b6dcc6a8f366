"""The subprocess runner on its own: UTF-8 across chunk borders, the cap, the timeout."""

from __future__ import annotations

import sys
from pathlib import Path

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
