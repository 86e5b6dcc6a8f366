#!/usr/bin/env bash
# PlexiChat Desktop set-up in one command, for Debian and Ubuntu.
#   ./bootstrap.sh run  [ARGS...]   install what is missing, then start the app
#   ./bootstrap.sh test [ARGS...]   install what is missing, then lint, type-check, run the tests
#   ./bootstrap.sh bench            install what is missing (and pytest-xdist), run benchmarks
#   ./bootstrap.sh bundle           build the desktop bundle into dist/ (PyInstaller)
#   ./bootstrap.sh bundle-smoke     build the bundle, then start it headless and test it
# Installs: the Debian libraries QtWebEngine needs (apt-get as root or through sudo; otherwise
# it prints the apt-get line to run and stops), a virtual environment in .venv, and the
# package with its test extras. A second run with nothing changed takes about a second.
set -euo pipefail
cd "$(dirname "$0")"
# Some environments (this project's CI among them) set PYTHONDONTWRITEBYTECODE: then every
# process recompiles the app's and the plugins' sources on import, and the test suite starts
# hundreds of them (pytest children, CLI and app subprocesses). An installed app writes its
# byte code once; so do we (into the gitignored __pycache__ folders).
unset PYTHONDONTWRITEBYTECODE

usage() { echo "usage: $0 run|test|bench|bundle|bundle-smoke [ARGS...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
mode=$1; shift
case "$mode" in run|test|bench|bundle|bundle-smoke) ;; *) usage ;; esac
extras=test
[ "$mode" = bench ] && extras=test,bench
case "$mode" in bundle|bundle-smoke) extras=test,package ;; esac

# Shared libraries of QtWebEngine (offscreen) plus the xcb platform plugin (a real display),
# and espeak-ng (the Advanced Client reads aloud with it, offline).
DEB_PACKAGES="libasound2 libdbus-1-3 libegl1 libfontconfig1 libgbm1 libgl1 libglib2.0-0 \
libnss3 libxcomposite1 libxdamage1 libxext6 libxfixes3 libxkbcommon0 libxkbfile1 libxrandr2 \
libxtst6 libxcb-dri3-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxkbcommon-x11-0 \
fonts-dejavu-core espeak-ng"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

deb_installed() {
  # Ubuntu 24.04 renamed some libraries with a t64 suffix; either name will do.
  local pkg
  for pkg in "$1" "${1}t64"; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      return 0
    fi
  done
  return 1
}

install_debian_packages() {
  command -v dpkg-query >/dev/null 2>&1 || {
    echo "note: not a Debian-based system; make sure the QtWebEngine libraries are installed." >&2
    return 0
  }
  local missing=() pkg
  for pkg in $DEB_PACKAGES; do deb_installed "$pkg" || missing+=("$pkg"); done
  local python; python=$(find_python || true)
  if [ -z "$python" ]; then
    missing+=(python3 python3-venv)
  elif ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  local apt=(apt-get install -y --no-install-recommends "${missing[@]}")
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      echo "These Debian packages are missing. Install them, then run this command again:" >&2
      echo "  sudo apt-get update && sudo ${apt[*]}" >&2
      exit 1
    fi
  fi
  echo "Installing Debian packages: ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" -qq >/dev/null
}

install_venv() {
  local python; python=$(find_python) || {
    echo "error: Python 3.11 or newer is needed and was not found." >&2; exit 1; }
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
    echo "Creating the virtual environment in .venv with $python" >&2
    rm -rf .venv
    "$python" -m venv .venv
  fi
  local stamp
  stamp=$(sha256sum < pyproject.toml | cut -d' ' -f1)-$(.venv/bin/python -V 2>&1)-$extras
  if [ "$(cat .venv/.install-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "Installing PlexiChat Desktop and its dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
    echo "$stamp" > .venv/.install-stamp
  fi
}

install_debian_packages
install_venv

if [ "$mode" = run ]; then
  exec .venv/bin/plexichat-desktop "$@"
fi
if [ "$mode" = bundle ] || [ "$mode" = bundle-smoke ]; then
  .venv/bin/python packaging/build_bundle.py
  [ "$mode" = bundle ] && exit 0
  exec .venv/bin/python packaging/smoke.py dist/plexichat-desktop
fi
if [ "$mode" = bench ]; then
  for bench in benchmarks/*.py; do
    echo "== $bench"
    .venv/bin/python "$bench"
  done
  exit 0
fi
export QT_QPA_PLATFORM=offscreen
# On a fresh clone every xdist worker would rewrite the asserts of every test module (and
# compile the app) at the same moment: ~4 s of CPU each, four times over; so would the
# plugins' pytest sessions their byte code. Compiling them and one collection beside mypy
# (~12 s on one core there, the other idle) write both to __pycache__ first; the workers
# and sessions read them. Where they are already written, nothing is done.
warm=
if ! ls tests/__pycache__/*-pytest-*.pyc >/dev/null 2>&1; then
  { .venv/bin/python -m compileall -q plugins plexichat_desktop
    .venv/bin/python -m pytest --collect-only -q -p no:cacheprovider; } >/dev/null 2>&1 &
  warm=$!
fi
.venv/bin/ruff check .
.venv/bin/mypy  # plexichat_desktop/, with the settings of [tool.mypy] in pyproject.toml
# Its outcome is the real run's to report (a collection error fails that run, not this one).
[ -z "$warm" ] || wait "$warm" || true
# Two pytest-xdist workers per core (at most 8): the tests spend much of their time waiting
# on what they drive (pytest children, servers, Chromium), and with one worker per core the
# 2-core machine ran at 1.1-1.4 cores busy (288 s; with 4 workers 194 s, 1.7 busy). The GUI
# tests stay in two groups of their own, one QtWebEngine each (see tests/conftest.py).
# Arguments come last, so -n 0 runs everything in one process.
cores=$(nproc 2>/dev/null || echo 2)
workers=$(( cores * 2 > 8 ? 8 : cores * 2 ))
exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
