// The summary cards, from GET /tests/statistics: the same call (and so the same numbers)
// as the native dashboard panel's header.

import { fmtCount, fmtDuration, fmtPercent, label, setText } from "./util.js";

const OTHERS = ["xfailed", "xpassed", "timed_out", "crashed", "not_run"];

export function renderCards(root, stats) {
  const counts = stats.counts || {};
  const values = {
    total: [stats.total, fmtCount(stats.total)],
    passed: [counts.passed, fmtCount(counts.passed)],
    failed: [counts.failed, fmtCount(counts.failed)],
    error: [counts.error, fmtCount(counts.error)],
    skipped: [counts.skipped, fmtCount(counts.skipped)],
    success_rate: [stats.success_rate, fmtPercent(stats.success_rate)],
    mean_duration: [stats.mean_duration, fmtDuration(stats.mean_duration)],
  };
  for (const el of root.querySelectorAll("[data-stat]")) {
    const [raw, text] = values[el.dataset.stat] || [null, "–"];
    const rawText = raw === null || raw === undefined ? "" : String(raw);
    if (el.dataset.value !== rawText) {
      const first = el.dataset.value === undefined;
      el.dataset.value = rawText;
      setText(el, text);
      if (!first) {
        // A short highlight when a number moves, for sighted users; screen readers get
        // the run's end from the running list instead of a stream of card changes.
        el.classList.remove("moved");
        void el.offsetWidth; // restart the animation
        el.classList.add("moved");
        setTimeout(() => el.classList.remove("moved"), 1300);
      }
    }
  }
  const note = root.querySelector("#cards-note");
  if (note) {
    const parts = OTHERS.filter((o) => counts[o]).map((o) => `${fmtCount(counts[o])} ${label(o)}`);
    const bits = [];
    if (parts.length) bits.push(`Also ${parts.join(", ")}.`);
    if (stats.total) {
      bits.push(`Final results of ${fmtCount(stats.runs)} run${stats.runs === 1 ? "" : "s"}` +
        (stats.p95_duration !== null ? `; p95 duration ${fmtDuration(stats.p95_duration)}` : "") +
        (stats.flaky_rate ? `; flaky ${fmtPercent(stats.flaky_rate)}` : "") + ".");
    } else {
      bits.push("No results yet.");
    }
    setText(note, bits.join(" "));
  }
}
