"""File Manager copy benchmark: one large file copied through the plugin's copy job (HTTP
request -> job -> worker thread -> temp file + rename, with progress and cancel checks)
against ``cp`` of the same file, in the same run.

Starts the app core in this process with the File Manager (and the API layer it requires)
on a loopback port, a temporary folder as its only root, writes a file of ``--size-mb``
MiB of random data there, then alternates rounds: ``cp src out-cp`` and ``POST
/plugins/file_manager/api/ops/copy?wait=true``. Each output is deleted before the next
round; the source stays in the page cache for both, so this compares the copying paths,
not the disk. Checks that every copy is byte-identical (size and SHA-256 of the last).

    .venv/bin/python benchmarks/file_manager_copy.py [--size-mb 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins" / "api_integration_layer"))

from api_integration_layer.testing import embedded_server, plugin_folder  # noqa: E402


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


async def main(size_mb: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fm-bench-") as tmp:
        base = Path(tmp)
        free = shutil.disk_usage(base).free
        if free < 3.2 * size_mb * 1024 * 1024:
            raise SystemExit(f"need {3.2 * size_mb:.0f} MiB free in {base}, have "
                             f"{free // 2**20} MiB; pass a smaller --size-mb")
        root = base / "root"
        (root / "plugin").mkdir(parents=True)
        src = root / "big.bin"
        block = os.urandom(8 * 1024 * 1024)
        with open(src, "wb") as fh:
            for _ in range(size_mb // 8):
                fh.write(block)
        want = src.stat().st_size
        folder = plugin_folder(base, REPO / "plugins" / "file_manager",
                               REPO / "plugins" / "api_integration_layer")
        async with embedded_server(base / "home", plugin_dirs=[folder], plugin_settings={
                "file_manager": {"roots": [str(root)]}}) as server, httpx.AsyncClient(
                base_url=f"{server.url}plugins/file_manager/api/", timeout=600,
                headers=server.app_headers) as client:
            cp_times: list[float] = []
            job_times: list[float] = []
            for _ in range(rounds):
                out = root / "out-cp.bin"
                started = time.perf_counter()
                subprocess.run(["cp", str(src), str(out)], check=True)
                cp_times.append(time.perf_counter() - started)
                assert out.stat().st_size == want
                out.unlink()

                started = time.perf_counter()
                answer = await client.post("ops/copy?wait=true", json={
                    "root": "0", "paths": ["big.bin"], "dest_root": "0", "dest": "plugin"})
                job_times.append(time.perf_counter() - started)
                job = answer.json()
                assert job["state"] == "succeeded", job
                copied = root / "plugin" / "big.bin"
                assert copied.stat().st_size == want
                if len(job_times) == rounds:
                    assert sha256(copied) == sha256(src), "the copy differs from the source"
                copied.unlink()

        mib = want / 2**20
        cp_best, job_best = min(cp_times), min(job_times)
        print(f"file: {mib:.0f} MiB, {rounds} round(s), best of each")
        print(f"cp (baseline):       {cp_best:7.3f} s  {mib / cp_best:8.0f} MiB/s  "
              f"(median {statistics.median(cp_times):.3f} s)")
        print(f"plugin copy job:     {job_best:7.3f} s  {mib / job_best:8.0f} MiB/s  "
              f"(median {statistics.median(job_times):.3f} s)")
        print(f"ratio job / cp:      {job_best / cp_best:7.2f}x the time of cp")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="file size in MiB (>= 8)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(max(8, args.size_mb), max(1, args.rounds)))
