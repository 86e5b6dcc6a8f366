"""Plain Python requirements ("radon", "radon>=6") are read and compared without
packaging.requirements; every answer (valid or not, satisfied or not, what is reported)
is the one packaging gives, which decides everything else."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from plexichat_desktop.plugins.requirements import (
    _PLAIN,
    _check_parsed,
    check_python,
    validate_python_requirement,
)

TEXTS = [
    "radon", "radon>=6", "Radon>=6", "tree-sitter-javascript >= 0.23", " radon >=6 ",
    "a>=0", "zope.interface>=5.0.0", "x_y>=1.10", "pkg>=06", "pkg>=1.0.0", "radon\t>=\t6",
    # not plain: packaging decides
    "radon>=6,<7", "radon==6", "radon~=6.1", "radon[extra]>=6", "radon>=6.0rc1",
    "radon>=6; sys_platform == 'plan9'", "radon>=6; python_version >= '3'", "radon>6",
    "radon >= 6.*", "radon>=v6", "radon>=1!6", "radon>=6.",
    # invalid
    "", " ", "-radon", "radon-", "radon>=", "radon>=6 7", "radon >=\n6", "radon\n", "ra don",
    ">=6", "radon>=6;", "ümlaut>=1",
]
VERSIONS = [None, "6", "6.0", "6.0.0", "5.9.9", "7", "10.1", "0.23", "0.22.9", "1.10",
            "1.9", "5", "1.0", "0", "6.0rc1", "6.0.post1", "6.0+local", "1!1.0", "6.0.dev0",
            "garbage", "6.0.0.0.1"]


def valid(text: str) -> bool:
    try:
        Requirement(text)
    except InvalidRequirement:
        return False
    return True


@pytest.mark.parametrize("text", TEXTS)
def test_validation_agrees_with_packaging(text):
    if valid(text):
        validate_python_requirement(text)
    else:
        with pytest.raises(ValueError, match="is not a requirement"):
            validate_python_requirement(text)


def test_plain_texts_are_taken_without_packaging():
    plain = [text for text in TEXTS if _PLAIN.fullmatch(text)]
    assert plain == TEXTS[:11]
    assert all(valid(text) for text in plain)


def answer(check, text: str, optional: bool, version: str | None) -> tuple:
    """What ``check`` answers (or raises), and the names it looked up."""
    asked: list[str] = []

    def installed(name: str) -> str | None:
        asked.append(name)
        return version

    try:
        return check(text, optional, installed), asked
    except Exception as exc:  # packaging refusing the version: the same, or a failure
        return type(exc).__name__, asked


@pytest.mark.parametrize("text", [t for t in TEXTS if valid(t)])
def test_every_answer_is_the_one_packaging_gives(text):
    for version, optional in itertools.product(VERSIONS, (False, True)):
        expected = answer(_check_parsed, text, optional, version)
        assert answer(check_python, text, optional, version) == expected, (text, version)


def test_discovery_imports_no_packaging_requirements_for_plain_entries():
    # The bundled plugins declare plain entries only: their discovery needs neither the
    # requirement parser nor the marker evaluator.
    code = ("import sys\n"
            "from plexichat_desktop.core.paths import bundled_plugins_dir\n"
            "from plexichat_desktop.plugins.checks import check_plugin_folder\n"
            "from plexichat_desktop.plugins.discovery import Source, scan_folder\n"
            "for cand in scan_folder(bundled_plugins_dir(), Source.BUNDLED):\n"
            "    assert check_plugin_folder(cand.root).manifest is not None, cand\n"
            "print(sorted(m for m in sys.modules if m in ('packaging.requirements',\n"
            "                                            'packaging.markers')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
