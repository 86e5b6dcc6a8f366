// The recent-results table: stored results from the snapshot, with rows added and recoloured
// live as tests start and finish. Rows are keyed by "run_id:nodeid" (the API's test_id).

import { badge, fmtDuration, h, placeInOrder, setText, timeEl } from "./util.js";

export class RecentResults {
  constructor({ tbody, empty, names, cap = 25 }) {
    Object.assign(this, { tbody, empty, names, cap });
    this.rows = new Map();
  }

  /** Rows, newest first: {key, run_id, plugin, nodeid, outcome, duration, ts, message}. */
  setAll(rows) {
    const shown = rows.slice(0, this.cap);
    const keep = new Set(shown.map((row) => row.key));
    for (const [key] of this.rows) {
      if (!keep.has(key)) this.rows.delete(key);
    }
    placeInOrder(this.tbody, shown.map((row) => this.upsertRow(row)));
    this.empty.hidden = this.rows.size > 0;
  }

  /** A live row: new ones go on top. */
  upsert(row) {
    const isNew = !this.rows.has(row.key);
    const tr = this.upsertRow(row);
    if (isNew) {
      this.tbody.prepend(tr);
      while (this.tbody.children.length > this.cap) {
        const last = this.tbody.lastElementChild;
        this.rows.delete(last.dataset.key);
        last.remove();
      }
    }
    this.empty.hidden = true;
  }

  upsertRow(row) {
    let tr = this.rows.get(row.key);
    if (!tr) {
      const [file, ...rest] = row.nodeid.split("::");
      const link = h("a", { href: `/tests/plugin/${encodeURIComponent(row.plugin)}#test=${encodeURIComponent(row.nodeid)}` },
        rest.join("::") || file);
      tr = h("tr", { class: "result-row", dataset: { key: row.key, nodeid: row.nodeid,
        runId: String(row.run_id), plugin: row.plugin } },
      h("td", { class: "outcome-cell" }),
      h("td", { class: "test-cell" }, link, h("div", { class: "muted small" }, file)),
      h("td", {}, this.names.get(row.plugin) || row.plugin),
      h("td", { class: "num duration" }),
      h("td", { class: "when" }));
      this.rows.set(row.key, tr);
    }
    if (tr.dataset.outcome !== row.outcome) {
      tr.dataset.outcome = row.outcome;
      tr.className = `result-row o-${row.outcome}`;
      tr.cells[0].replaceChildren(badge(row.outcome));
    }
    tr.title = row.message || "";
    setText(tr.cells[3], row.outcome === "running" ? "…" : fmtDuration(row.duration));
    if (tr.dataset.ts !== String(row.ts || "")) {
      tr.dataset.ts = String(row.ts || "");
      tr.cells[4].replaceChildren(timeEl(row.ts));
    }
    return tr;
  }
}

export function fromResult(result) {
  return { key: result.test_id, run_id: result.run_id, plugin: result.plugin_name,
    nodeid: result.test_name, outcome: result.status, duration: result.duration,
    ts: result.timestamp ? Date.parse(result.timestamp) / 1000 : null,
    message: result.message };
}
