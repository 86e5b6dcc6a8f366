"""A missing tool is reported with the reason; the scan still gives everything else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from code_analyzer import tools
from code_analyzer.scan import ScanOptions, scan_folder


def test_a_missing_tool_is_named_and_the_scan_goes_on(
        tmp_path: Path, make_files: Callable[[Path, dict[str, str | bytes]], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(tmp_path, {"a.py": "import os\n\n\ndef f(x):\n    return x\n"})
    real = tools.tool_path
    monkeypatch.setattr(tools, "tool_path", lambda n: None if n == "bandit" else real(n))
    result = scan_folder(tmp_path, None, ScanOptions(tool_names=("ruff", "bandit")))
    by_tool = {t["tool"]: t for t in result["tools"]}
    assert by_tool["bandit"]["status"] == "missing"
    assert "pip install 'bandit>=1.7'" in by_tool["bandit"]["detail"]
    assert by_tool["ruff"]["status"] == "ok" and "vulture" not in by_tool
    assert result["summary"]["functions"] == 1
