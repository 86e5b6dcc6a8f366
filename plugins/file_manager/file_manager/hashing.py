"""Checksums (SHA-256, and BLAKE3 when its package is installed) and a duplicate finder
that groups by size first and hashes only the files that share a size (first 64 KiB,
then the whole file), so a folder of unique sizes costs one stat per file."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from file_manager.worker import Ctl

BUFFER = 1024 * 1024
HEAD = 64 * 1024


def has_blake3() -> bool:
    try:
        import blake3  # noqa: F401
    except ImportError:
        return False
    return True


def digests(ctl: Ctl, path: Path, algorithms: list[str]) -> dict[str, Any]:
    """Hex digests of ``path`` for each algorithm, reading the file once."""
    hashers: dict[str, Any] = {}
    for name in algorithms:
        if name == "blake3":
            import blake3

            hashers[name] = blake3.blake3(max_threads=blake3.blake3.AUTO)
        else:
            hashers[name] = hashlib.new(name)
    size = path.stat().st_size
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(BUFFER):
            ctl.check()
            for h in hashers.values():
                h.update(chunk)
            done += len(chunk)
            ctl.progress(done, size or 1, f"hashing {path.name}")
    return {"size": size, **{name: h.hexdigest() for name, h in hashers.items()}}


def _hash(path: Path, limit: int | None, algorithm: str) -> str:
    if algorithm == "blake3":
        import blake3

        h: Any = blake3.blake3()
    else:
        h = hashlib.sha256()
    with open(path, "rb") as fh:
        if limit is not None:
            h.update(fh.read(limit))
        else:
            while chunk := fh.read(BUFFER):
                h.update(chunk)
    return str(h.hexdigest())


def duplicates(ctl: Ctl, base: Path, root_path: Path, min_size: int,
               hidden: bool = False) -> dict[str, Any]:
    """Groups of files under ``base`` with identical content (symlinks not followed)."""
    algorithm = "blake3" if has_blake3() else "sha256"
    by_size: dict[int, list[Path]] = {}
    # Hard links are one file under several names: deleting one frees nothing, so they
    # are not duplicates of each other (they counted as such, "wasted" overstated).
    first_name: dict[tuple[int, int], Path] = {}
    links: dict[Path, list[Path]] = {}
    scanned = 0
    for folder, dirs, files in os.walk(base):
        ctl.check()
        if not hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not hidden and name.startswith("."):
                continue
            path = Path(folder) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size >= min_size:
                scanned += 1
                inode = (st.st_dev, st.st_ino)
                if inode in first_name:
                    links.setdefault(first_name[inode], []).append(path)
                    continue
                first_name[inode] = path
                by_size.setdefault(st.st_size, []).append(path)
        ctl.progress(0, None, f"listed {scanned} file(s)")
    candidates = [paths for paths in by_size.values() if len(paths) > 1]
    todo = sum(len(p) for p in candidates) or 1
    done = 0
    groups: list[dict[str, Any]] = []
    for paths in candidates:
        by_head: dict[str, list[Path]] = {}
        for path in paths:
            ctl.check()
            try:
                by_head.setdefault(_hash(path, HEAD, algorithm), []).append(path)
            except OSError:
                continue
        for same_head in by_head.values():
            if len(same_head) < 2:
                continue
            by_full: dict[str, list[Path]] = {}
            for path in same_head:
                ctl.check()
                try:
                    by_full.setdefault(_hash(path, None, algorithm), []).append(path)
                except OSError:
                    continue
            for digest, same in by_full.items():
                if len(same) > 1:
                    size = same[0].stat().st_size
                    rel = {p: p.relative_to(root_path).as_posix() for p in same}
                    groups.append({
                        "size": size, "hash": digest, "algorithm": algorithm,
                        "wasted": size * (len(same) - 1),
                        "paths": sorted(rel.values()),
                        # Other names of the same files (hard links): removing one of
                        # them frees nothing.
                        "hard_links": {rel[p]: sorted(q.relative_to(root_path).as_posix()
                                                      for q in links[p])
                                       for p in same if p in links}})
        done += len(paths)
        ctl.progress(done, todo, "comparing files of the same size")
    ctl.progress(todo, todo, f"compared {scanned} file(s)", force=True)
    groups.sort(key=lambda g: g["wasted"], reverse=True)
    return {"groups": groups, "scanned": scanned, "algorithm": algorithm,
            "wasted": sum(g["wasted"] for g in groups)}
