"""The one read model of test results: which attempt is final, what is flaky, counts,
success rates and live progress.

Every surface asks this module: the store (its ``is_final``/``flaky`` columns), the
manager (run status, counts, progress events), the CLI, the /tests API, both dashboards.
Nothing else derives these, so the web tree, the native tree and the CLI cannot disagree.

Two words, two meanings, kept apart:

* a result *passed on retry* (``TestResult.flaky``, the store's ``flaky`` column, the
  ``flaky`` count of a run): within one run, the final attempt succeeded after an
  earlier attempt failed;
* a test is *marked flaky* (:func:`is_flaky`, the mark in both trees): over its recent
  final results it passed on a retry at least once, or it flipped between success and
  failure more than once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from plexichat_desktop.testing.models import BAD_OUTCOMES, Outcome, TestAttempt

SUCCESS_OUTCOMES = frozenset({Outcome.PASSED, Outcome.XFAILED, Outcome.XPASSED})
"""Outcomes that count as a success in rates (xpassed: pytest itself exits 0 for it)."""
NEUTRAL_OUTCOMES = frozenset({Outcome.SKIPPED, Outcome.NOT_RUN})
"""Outcomes that are neither a success nor a failure."""
FLAKY_WINDOW = 30
"""How many recent final results of a test :func:`is_flaky` looks at."""


def is_success(outcome: str) -> bool:
    return outcome in SUCCESS_OUTCOMES


def is_bad(outcome: str) -> bool:
    return outcome in BAD_OUTCOMES


def passed_on_retry(final: str, others: Iterable[str]) -> bool:
    """Whether a final outcome ``final`` succeeded after one of the ``others`` (the
    test's earlier attempts in the same run) failed."""
    return is_success(final) and any(is_bad(o) for o in others)


def group_attempts(attempts: Iterable[TestAttempt]) -> dict[tuple[int, str], list[TestAttempt]]:
    """Attempts per (run, test), in the order given (insertion order in the store)."""
    groups: dict[tuple[int, str], list[TestAttempt]] = {}
    for attempt in attempts:
        groups.setdefault((attempt.run_id, attempt.nodeid), []).append(attempt)
    return groups


def final_attempt(tries: Sequence[TestAttempt]) -> TestAttempt:
    """The attempt that decides: the highest attempt number, the later one on a tie (a
    fresh child after a crash repeats the number of the attempt it replaces)."""
    best = 0
    for i, attempt in enumerate(tries):
        if attempt.attempt >= tries[best].attempt:
            best = i
    return tries[best]


@dataclass
class TestResult:
    """One test's result in one run: its final attempt and what the others add."""

    __test__ = False

    run_id: int
    plugin_id: str
    nodeid: str
    outcome: str
    attempts: int
    flaky: bool                 # passed on retry within this run
    duration: float
    message: str
    phase: str | None
    longrepr: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    final: TestAttempt | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("final")
        return data


def results_of(attempts: Iterable[TestAttempt]) -> list[TestResult]:
    """Per (run, test) results, in the order tests first appear."""
    out = []
    for tries in group_attempts(attempts).values():
        final = final_attempt(tries)
        others = [str(t.outcome) for t in tries if t is not final]
        out.append(TestResult(
            run_id=final.run_id, plugin_id=final.plugin_id, nodeid=final.nodeid,
            outcome=str(final.outcome), attempts=len(tries),
            flaky=passed_on_retry(str(final.outcome), others), duration=final.duration,
            message=final.message, phase=final.phase, longrepr=final.longrepr,
            reports=list(final.reports), final=final))
    return out


def run_counts(attempts: Iterable[TestAttempt]) -> dict[str, int]:
    """Counts of a run: one outcome per test (its final attempt), ``flaky`` (passed on
    retry), ``total`` (tests), and what pytest's summary line counts besides:
    ``errors at teardown`` (a teardown that failed after the call had failed: pytest says
    "1 failed, 1 error"), ``subtests failed`` and ``subtests passed``.

    Two differences from pytest's line, both so that a test has exactly one outcome: a
    test whose call passed and whose teardown failed is an ``error`` (pytest counts a
    passed and an error), and a unittest test whose subtest failed is ``failed`` (pytest
    counts it passed, beside the failed subtest)."""
    counts: dict[str, int] = {}

    def add(key: str, n: int = 1) -> None:
        counts[key] = counts.get(key, 0) + n

    results = results_of(attempts)
    for result in results:
        add(result.outcome)
        if result.flaky:
            add("flaky")
        for report in result.reports:
            if report.get("kind") == "teardown":
                add("errors at teardown")
            elif report.get("kind") == "subtest":
                add(f"subtests {report.get('outcome')}", int(report.get("count", 1)))
    counts["total"] = len(results)
    return counts


def success_rate(counts: Mapping[str, int]) -> float | None:
    """Successes over successes + failures (skipped and not run are neither); None when
    nothing was decided."""
    good = sum(counts.get(str(o), 0) for o in SUCCESS_OUTCOMES)
    bad = sum(counts.get(str(o), 0) for o in BAD_OUTCOMES)
    return good / (good + bad) if good + bad else None


def flips(outcomes: Iterable[str]) -> tuple[int, int]:
    """``(flips, decided)`` over outcomes newest first: how often a test switched between
    success and failure, and how many results were either (neutral ones left out)."""
    oks = [is_success(o) for o in outcomes if o not in NEUTRAL_OUTCOMES]
    return sum(oks[i] != oks[i - 1] for i in range(1, len(oks))), len(oks)


def is_flaky(summary: Mapping[str, Any]) -> bool:
    """The flaky mark of a test, from its summary (see ``ResultStore.test_summaries``):
    its last result passed only on a retry, or within its recent results one did, or it
    went from pass to fail and back (more than one flip)."""
    return bool(summary.get("flaky") or summary.get("recent_flaky")
                or summary.get("flips", 0) > 1)


class RunProgress:
    """Live progress of one run: ``completed`` counts tests (not attempts) that have a
    result, out of ``total`` tests; a rerun of a failed test does not move it."""

    def __init__(self, total: int = 0):
        self.total = total
        self._done: set[str] = set()
        self._announced = False

    @property
    def completed(self) -> int:
        return len(self._done)

    def collected(self, count: int) -> bool:
        """The first child's collection sizes the run (a selected function may stand for
        several parametrised cases; later children collect less). True the first time."""
        if self._announced:
            return False
        self._announced = True
        self.total = max(self.total, count)
        return True

    def finished(self, nodeid: str) -> None:
        self._done.add(nodeid)
        self.total = max(self.total, self.completed)
