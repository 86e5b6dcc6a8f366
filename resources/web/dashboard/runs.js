// Runs queued or going: a progress bar per running suite, fed by the event stream.
// Every update sets state from the event's own numbers (completed, total, outcome), so
// applying an event twice (a replay after a reconnect) changes nothing.

import { BAD, SUCCESS, badge, h, label, setText } from "./util.js";

export class LiveRuns {
  /** onChange(entry | null, runId): a run started, moved or ended. */
  constructor({ list, section, pluginId = null, names = new Map(), onCancel, onChange }) {
    Object.assign(this, { list, section, pluginId, names, onCancel, onChange });
    this.runs = new Map();
    this.items = new Map();
  }

  wants(pluginId) {
    return this.pluginId === null || this.pluginId === pluginId;
  }

  /** Replace everything with a snapshot's `live` list. */
  reset(live) {
    const seen = new Set();
    for (const item of live) {
      if (!this.wants(item.run.plugin_id)) continue;
      const results = new Map(Object.entries(item.results || {}));
      this.runs.set(item.run.id, { run: item.run, completed: item.completed, total: item.total,
        results, current: item.current });
      seen.add(item.run.id);
      this.render(item.run.id);
    }
    for (const id of [...this.runs.keys()]) {
      if (!seen.has(id)) this.remove(id);
    }
    this.toggleSection();
  }

  /** Apply one tests.* event; returns the affected entry (or undefined). */
  apply(topic, data) {
    if (topic === "tests.run_queued" || topic === "tests.run_started") {
      const run = data.run;
      if (!this.wants(run.plugin_id)) return undefined;
      const entry = this.runs.get(run.id) || { completed: 0, total: (run.selection || []).length,
        results: new Map(), current: null };
      entry.run = run;
      this.runs.set(run.id, entry);
      this.render(run.id);
      this.toggleSection();
      return entry;
    }
    if (topic === "tests.run_finished") {
      const had = this.runs.has(data.run.id);
      this.remove(data.run.id);
      this.toggleSection();
      if (had && this.onChange) this.onChange(null, data.run.id, data.run);
      return undefined;
    }
    const entry = this.runs.get(data.run_id);
    if (!entry) return undefined;
    if (topic === "tests.collected") {
      entry.total = data.total || entry.total;
    } else if (topic === "tests.test_started") {
      entry.current = data.nodeid;
    } else if (topic === "tests.test_finished") {
      entry.results.set(data.nodeid, { outcome: data.outcome, duration: data.duration,
        message: data.message });
      entry.completed = Math.max(entry.completed, data.completed);
      entry.total = data.total || entry.total;
      if (entry.current === data.nodeid) entry.current = null;
    }
    this.render(data.run_id);
    return entry;
  }

  /** The live outcome of a test in a run still going, if any. */
  liveResult(nodeid) {
    let found;
    for (const entry of this.runs.values()) {
      if (entry.results.has(nodeid)) found = { ...entry.results.get(nodeid), run_id: entry.run.id };
      else if (entry.current === nodeid && entry.run.status === "running") {
        found = { outcome: "running", run_id: entry.run.id };
      }
    }
    return found;
  }

  forPlugin(pluginId) {
    return [...this.runs.values()].filter((e) => e.run.plugin_id === pluginId);
  }

  remove(runId) {
    this.runs.delete(runId);
    const item = this.items.get(runId);
    if (item) item.remove();
    this.items.delete(runId);
  }

  toggleSection() {
    if (this.section) this.section.hidden = this.runs.size === 0;
  }

  render(runId) {
    const entry = this.runs.get(runId);
    if (!entry) return;
    let item = this.items.get(runId);
    const name = this.names.get(entry.run.plugin_id) || entry.run.plugin_id;
    if (!item) {
      const cancel = h("button", { type: "button", class: "small secondary",
        "aria-label": `Cancel run ${runId} of ${name}` }, "Cancel");
      cancel.addEventListener("click", () => this.onCancel && this.onCancel(runId, cancel));
      item = h("li", { class: "run-item", dataset: { runId: String(runId) } },
        h("div", { class: "run-line" },
          h("a", { href: `/tests/plugin/${encodeURIComponent(entry.run.plugin_id)}`,
            class: "run-name" }, name),
          h("span", { class: "muted" }, `run #${runId}`),
          h("span", { class: "run-status" }),
          h("span", { class: "run-counts" }),
          cancel),
        h("progress", { max: "1", "aria-label": `Progress of ${name}, run ${runId}` }),
        h("div", { class: "run-current muted" }));
      this.items.set(runId, item);
      this.list.append(item);
    }
    const status = entry.run.status;
    item.dataset.status = status;
    const statusEl = item.querySelector(".run-status");
    if (statusEl.dataset.status !== status) {
      statusEl.dataset.status = status;
      statusEl.replaceChildren(badge(status));
    }
    const counts = { good: 0, bad: 0, other: 0 };
    for (const r of entry.results.values()) {
      if (SUCCESS.has(r.outcome)) counts.good += 1;
      else if (BAD.has(r.outcome)) counts.bad += 1;
      else counts.other += 1;
    }
    const progress = item.querySelector("progress");
    if (entry.total) {
      progress.max = entry.total;
      progress.value = Math.min(entry.completed, entry.total);
    } else if (status === "running") {
      progress.removeAttribute("value"); // indeterminate until pytest has collected
    } else {
      progress.value = 0;
    }
    item.dataset.completed = String(entry.completed);
    item.dataset.failed = String(counts.bad);
    const of = entry.total ? `${entry.completed} of ${entry.total}` : `${entry.completed} done`;
    const parts = status === "queued" ? ["waiting for a worker"]
      : [of, `${counts.good} passed`];
    if (counts.bad) parts.push(`${counts.bad} failed`);
    if (counts.other) parts.push(`${counts.other} other`);
    setText(item.querySelector(".run-counts"), parts.join(" · "));
    item.querySelector(".run-counts").classList.toggle("has-bad", counts.bad > 0);
    setText(item.querySelector(".run-current"),
      entry.current ? `Running ${entry.current}` : status === "running" ? "Starting…" : "");
    if (this.onChange) this.onChange(entry, runId);
  }
}

export function runSummary(counts) {
  if (!counts || !counts.total) return "";
  const order = ["passed", "failed", "error", "skipped", "xfailed", "xpassed", "timed_out",
    "crashed", "not_run"];
  return order.filter((o) => counts[o]).map((o) => `${counts[o]} ${label(o)}`).join(", ");
}
