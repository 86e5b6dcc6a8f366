"""Installed plugins: distributions on sys.path that register a package in the entry-point
group ``plexichat_desktop.plugins``, found without importing the package. Discovery skips
importlib.metadata's full look-up only when no metadata folder can declare the group."""

import importlib.metadata
import sys
import zipfile
from pathlib import Path

import pytest

from plexichat_desktop.core.entry_points import may_declare
from plexichat_desktop.plugins.discovery import (
    ENTRY_POINT_GROUP,
    Candidate,
    Source,
    installed_candidates,
)


def make_distribution(site: Path, dist: str, entry_points: str | None,
                      package: str | None = None) -> None:
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)
    if package is not None:
        (site / package).mkdir()
        (site / package / "__init__.py").write_text("raise RuntimeError('not imported')\n")
        (site / package / "plugin.toml").write_text(f'id = "{package}"\n')


def full_lookup() -> list[str]:
    return sorted(ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def test_an_installed_plugin_is_found_by_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    make_distribution(site, "h3_demo_dist", f"[{ENTRY_POINT_GROUP}]\ndemo = h3_demo_pkg\n",
                      package="h3_demo_pkg")
    monkeypatch.syspath_prepend(str(site))
    assert may_declare(ENTRY_POINT_GROUP)
    assert "h3_demo_pkg" in full_lookup()
    assert Candidate((site / "h3_demo_pkg").resolve(), Source.INSTALLED) in installed_candidates()


def test_distributions_without_the_group_are_not_plugins(tmp_path, monkeypatch):
    site = tmp_path / "site"
    make_distribution(site, "h3_other_dist", "[console_scripts]\nh3-tool = h3_other:main\n",
                      package="h3_other")
    make_distribution(site, "h3_bare_dist", None)
    monkeypatch.syspath_prepend(str(site))
    # The environment's own distributions included: the quick answer agrees with the full
    # look-up (no plugin is installed in the test environment).
    assert not may_declare(ENTRY_POINT_GROUP) and full_lookup() == []
    assert installed_candidates() == []


def test_only_a_header_of_the_group_leaves_the_answer_to_the_full_look_up(tmp_path,
                                                                           monkeypatch):
    # The group's name as a value or as part of another group's name is no header of it.
    site = tmp_path / "site"
    make_distribution(site, "h3_value_dist",
                      f"[{ENTRY_POINT_GROUP}.extra]\nx = {ENTRY_POINT_GROUP}\n")
    monkeypatch.syspath_prepend(str(site))
    assert not may_declare(ENTRY_POINT_GROUP) and may_declare(f"{ENTRY_POINT_GROUP}.extra")
    # A header in a comment declares nothing, but only the full look-up can tell.
    make_distribution(site, "h3_comment_dist", f"# not [{ENTRY_POINT_GROUP}]\n[x]\ny = z\n")
    monkeypatch.syspath_prepend(str(site))  # (again: importlib's caches see the new folder)
    assert may_declare(ENTRY_POINT_GROUP)
    assert full_lookup() == [] and installed_candidates() == []


@pytest.mark.parametrize("kind", ["zip", "finder"])
def test_what_cannot_be_looked_into_quickly_counts_as_may_declare(tmp_path, monkeypatch, kind):
    if kind == "zip":
        archive = tmp_path / "plugins.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("h3_zip_dist-1.0.dist-info/METADATA", "Name: h3_zip_dist\n")
        monkeypatch.syspath_prepend(str(archive))
    else:
        class Finder:
            @staticmethod
            def find_spec(*args: object) -> None:
                return None

            @staticmethod
            def find_distributions(*args: object) -> list[object]:
                return []

        monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    assert may_declare(ENTRY_POINT_GROUP)
    assert installed_candidates() == []


def test_a_plugin_folder_that_is_not_there_is_said(tmp_path, caplog):
    """A typo in PLEXICHAT_DESKTOP_PLUGINS_PATH left its plugins out without a word."""
    from plexichat_desktop.plugins.discovery import discover

    (tmp_path / "real" / "p").mkdir(parents=True)
    (tmp_path / "real" / "p" / "plugin.toml").write_text('id = "p"\n')
    (tmp_path / "a_file").write_text("")
    with caplog.at_level("WARNING", logger="plexichat_desktop.plugins.discovery"):
        found = discover(None, None, [tmp_path / "typo", tmp_path / "a_file",
                                      tmp_path / "real"], include_installed=False)
    assert [c.root.name for c in found] == ["p"]
    said = [r.getMessage() for r in caplog.records]
    assert any(f"{tmp_path / 'typo'} is missing" in m for m in said), said
    assert any(f"{tmp_path / 'a_file'} is not a folder" in m for m in said), said
