"""Build the Linux desktop bundle: dist/plexichat-desktop/ and a .tar.gz of it.

    .venv/bin/python packaging/build_bundle.py      (what `./bootstrap.sh bundle` runs)

Steps: PyInstaller with packaging/plexichat-desktop.spec; the app icon rendered from its
SVG into the usual hicolor sizes; the .desktop entry and install.sh beside the executable;
a tarball named after the version. Prints how long each step took.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop import __version__  # noqa: E402

DIST = REPO / "dist"
BUNDLE = DIST / "plexichat-desktop"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def step(name: str, started: float) -> float:
    now = time.monotonic()
    print(f"   {name}: {now - started:.1f} s", flush=True)
    return now


def render_icons(share: Path) -> None:
    """PNG icons from the SVG (the menus of some desktops only take PNG)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([])
    svg = REPO / "resources" / "icons" / "plexichat-desktop.svg"
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"error: {svg} is not a valid SVG")
    for size in ICON_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        target = share / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        target.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target / "plexichat-desktop.png")):
            raise SystemExit(f"error: could not write the {size}px icon")
    scalable = share / "icons" / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copy2(svg, scalable / "plexichat-desktop.svg")
    del app


def main() -> int:
    started = first = time.monotonic()
    print(f"Building PlexiChat Desktop {__version__} into {BUNDLE}", flush=True)
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(DIST), "--workpath", str(REPO / "build" / "pyinstaller"),
                    str(REPO / "packaging" / "plexichat-desktop.spec")], check=True, cwd=REPO)
    started = step("PyInstaller", started)

    share = BUNDLE / "share"
    render_icons(share)
    (share / "applications").mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "packaging" / "plexichat-desktop.desktop",
                 share / "applications" / "plexichat-desktop.desktop")
    shutil.copy2(REPO / "packaging" / "install.sh", BUNDLE / "install.sh")
    (BUNDLE / "install.sh").chmod(0o755)
    started = step("icons and menu entry", started)

    archive = DIST / f"plexichat-desktop-{__version__}-linux-{platform.machine()}.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(BUNDLE, arcname="plexichat-desktop")
    step("tarball", started)
    size = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    print(f"Bundle: {BUNDLE} ({size / 2**20:.0f} MiB unpacked)")
    print(f"Archive: {archive} ({archive.stat().st_size / 2**20:.0f} MiB)")
    print(f"Total: {time.monotonic() - first:.0f} s. Unpack it anywhere, run ./install.sh for the "
          "applications menu, or start ./plexichat-desktop.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
