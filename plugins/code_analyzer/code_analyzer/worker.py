"""A metrics worker process: reads pickled batches on stdin, writes results on stdout.

Started by :class:`code_analyzer.scan.WorkerPool` with ``python -m code_analyzer.worker``
instead of through ``multiprocessing``: spawn re-runs the parent's ``__main__`` (the app,
or a test runner) in every child, fork would copy the app's Qt and event-loop threads.
Frames are an 8-byte big-endian length and a pickle; only our own parent talks to it.
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from code_analyzer.metrics import analyze_batch

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = inp.read(8)
        if len(header) < 8:
            return
        # Only the parent scan writes to this pipe: trusted input.
        batch = pickle.loads(inp.read(int.from_bytes(header, "big")))  # nosec B301
        data = pickle.dumps(analyze_batch(batch), protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "big"))
        out.write(data)
        out.flush()


if __name__ == "__main__":
    main()
