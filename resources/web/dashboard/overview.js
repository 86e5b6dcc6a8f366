// The overview page (/tests): cards, plugins with sparklines, recent results, schedules,
// all live from /tests/events.

import { api, cancelRun, discover, rerunFailed, runTests } from "./api.js";
import { renderCards } from "./cards.js";
import { sparkline } from "./charts.js";
import { LivePage } from "./live.js";
import { RecentResults, fromResult } from "./recent.js";
import { LiveRuns } from "./runs.js";
import { setupSchedules } from "./schedules.js";
import { Messages, badge, fmtCount, fmtPercent, h, placeInOrder, setText, timeEl } from "./util.js";

const root = document.getElementById("dashboard");
const messages = new Messages(document.getElementById("messages"));
const names = new Map();
const plugins = new Map(); // id -> overview row
const rowEls = new Map();
const tbody = document.getElementById("plugins");
const RECENT = 15;

const recent = new RecentResults({ tbody: document.getElementById("recent"),
  empty: document.getElementById("recent-empty"), names, cap: RECENT });
const runs = new LiveRuns({ list: document.getElementById("running"),
  section: document.getElementById("running-section"), names,
  onCancel: (runId, button) => messages.act(button, () => cancelRun(runId), `Run ${runId} cancelled.`),
  onChange: (entry, runId, finished) => pluginLive(entry ? entry.run.plugin_id : finished.plugin_id) });
const { list: schedules } = setupSchedules({ messages, names });

const page = new LivePage({ root, messages, refresh, applyEvent });
const { debug } = page;

// -- the plugin table ------------------------------------------------------------------

function pluginRow(p) {
  let tr = rowEls.get(p.id);
  if (!tr) {
    const run = h("button", { type: "button", class: "small", "aria-label": `Run ${p.name}` }, "Run");
    const rerun = h("button", { type: "button", class: "small secondary",
      "aria-label": `Rerun failed tests of ${p.name}` }, "Rerun failed");
    run.addEventListener("click", () => messages.act(run, () => runTests(p.id),
      (b) => `${p.name}: run #${b.run_id} queued.`));
    rerun.addEventListener("click", () => messages.act(rerun, () => rerunFailed(p.id),
      (b) => `${p.name}: rerunning ${b.tests.length} failed test${b.tests.length === 1 ? "" : "s"} (run #${b.run_id}).`));
    tr = h("tr", { dataset: { pluginId: p.id } },
      h("th", { scope: "row" },
        h("a", { href: `/tests/plugin/${encodeURIComponent(p.id)}`, class: "plugin-name" }, p.name),
        h("div", { class: "muted small plugin-sub" })),
      h("td", { class: "num tests-count" }),
      h("td", { class: "last-run" }),
      h("td", { class: "num rate" }),
      h("td", { class: "spark-cell" }),
      h("td", { class: "actions" }, run, rerun,
        h("a", { class: "button small secondary details-link", href: `/tests/plugin/${encodeURIComponent(p.id)}`,
          "aria-label": `Details of ${p.name}` }, "Details")));
    rowEls.set(p.id, tr);
  }
  const [runButton, rerunButton] = tr.querySelectorAll("button");
  runButton.disabled = !p.has_tests;
  rerunButton.disabled = !p.failed_tests;
  rerunButton.title = p.failed_tests ? `${p.failed_tests} test(s) failed last time` : "No failed tests";
  const sub = [p.id];
  if (!p.has_tests) sub.push("no tests folder");
  if (p.flaky_tests) sub.push(`${p.flaky_tests} flaky`);
  setText(tr.querySelector(".plugin-sub"), sub.join(" · "));
  setText(tr.querySelector(".tests-count"), p.tests === null ? "–" : fmtCount(p.tests));
  tr.querySelector(".tests-count").title = p.tests_source === "results"
    ? "From results; discover to count the tests pytest collects now" : "";
  setText(tr.querySelector(".rate"), fmtPercent(p.success_rate));
  tr.querySelector(".spark-cell").replaceChildren(sparkline(p.sparkline));
  return tr;
}

/** The "last run" cell: a live run beats the stored last run. */
function pluginLive(pluginId) {
  const tr = rowEls.get(pluginId);
  const p = plugins.get(pluginId);
  if (!tr || !p) return;
  const cell = tr.querySelector(".last-run");
  const live = runs.forPlugin(pluginId);
  const going = live.find((e) => e.run.status === "running") || live[0];
  if (going) {
    tr.dataset.state = going.run.status;
    if (p.tests === null && going.total) setText(tr.querySelector(".tests-count"), fmtCount(going.total));
    const text = going.run.status === "running"
      ? (going.total ? `${going.completed} of ${going.total}` : "starting") : "waiting";
    if (cell.dataset.live !== `${going.run.id}:${text}`) {
      cell.dataset.live = `${going.run.id}:${text}`;
      cell.replaceChildren(badge(going.run.status), " ", h("span", { class: "muted small" }, text));
    }
    return;
  }
  tr.dataset.state = "idle";
  delete cell.dataset.live;
  const last = p.last_run;
  cell.replaceChildren(...(last ? [badge(last.status), " ", timeEl(last.finished_at)]
    : [h("span", { class: "muted" }, p.has_tests ? "never run" : "–")]));
  const run = tr.querySelector(".last-run");
  run.title = last && last.error ? last.error : "";
}

// -- snapshot and events ---------------------------------------------------------------

async function refresh() {
  const [overview, stats, scheduled] = await Promise.all([
    api(`/tests/dashboard/overview?recent=${RECENT}`), api("/tests/statistics"),
    schedules.fetch()]);
  debug.snapshots += 1;
  renderCards(root, stats.statistics);
  plugins.clear();
  for (const p of overview.plugins) {
    plugins.set(p.id, p);
    names.set(p.id, p.name);
  }
  const ordered = overview.plugins.map(pluginRow);
  placeInOrder(tbody, ordered);
  if (!ordered.length) {
    tbody.replaceChildren(h("tr", { class: "placeholder" }, h("td", { colspan: "6" },
      "No plugins with tests. Add a tests/ folder to a plugin, then discover.")));
  }
  schedules.setAll(scheduled);
  runs.reset(overview.live);
  recent.setAll(overview.recent_results.map(fromResult));
  for (const entry of overview.live) overlay(entry);
  for (const p of overview.plugins) pluginLive(p.id);
  // Events that arrived while the snapshot was on its way: they are newer than it.
  page.replay(overview.last_event_id);
  collectOnce(overview.plugins.filter((p) => p.has_tests && p.tests === null));
  return overview.last_event_id;
}

/** Plugins never collected and never run would show "–" tests: collect each once, as
 * the plugin page does, refreshing as each comes in. One at a time: a collection is a
 * pytest run of seconds, and all pages of the app share Chromium's six connections to
 * the server. Fifteen at once held every one of them, so other pages' loads and the live
 * hub's subscriptions waited tens of seconds (tests/gui/test_live_pages.py). */
const collected = new Set();
async function collectOnce(pending) {
  const ids = pending.map((p) => p.id).filter((id) => !collected.has(id));
  for (const id of ids) collected.add(id);
  for (const id of ids) {
    try {
      await discover(id);
      page.refreshSoon();
    } catch (err) {
      messages.error(err.message);
    }
  }
}

/** Results of a run still going are not stored yet: show them from the snapshot's live
 * part, oldest first so the newest ends on top, then the test running now. */
function overlay(entry) {
  const done = Object.entries(entry.results || {})
    .sort((x, y) => (x[1].finished_at || 0) - (y[1].finished_at || 0));
  const row = (nodeid, fields) => ({ key: `${entry.run.id}:${nodeid}`, run_id: entry.run.id,
    plugin: entry.run.plugin_id, nodeid, ...fields });
  for (const [nodeid, r] of done) {
    recent.upsert(row(nodeid, { outcome: r.outcome, duration: r.duration, ts: r.finished_at,
      message: r.message }));
  }
  if (entry.current && !(entry.current in (entry.results || {}))) {
    recent.upsert(row(entry.current, { outcome: "running", duration: null,
      ts: entry.current_since }));
  }
}

function applyEvent(topic, data, replay = false) {
  if (!replay) debug.events += 1;
  if (topic.startsWith("schedules.")) {
    if (topic === "schedules.changed") schedules.apply(data.schedule, data.change);
    else if (topic === "schedules.skipped" && !replay) messages.show(`A scheduled run was skipped: ${data.reason}`);
    return;
  }
  runs.apply(topic, data);
  if (topic === "tests.test_started" || topic === "tests.test_finished") {
    const finished = topic === "tests.test_finished";
    recent.upsert({ key: `${data.run_id}:${data.nodeid}`, run_id: data.run_id,
      plugin: data.plugin_id, nodeid: data.nodeid,
      outcome: finished ? data.outcome : "running", duration: finished ? data.duration : null,
      ts: data.timestamp, message: finished ? data.message : "" });
  } else if (topic === "tests.run_finished" && !replay) {
    page.refreshSoon();
  }
}

// -- actions ---------------------------------------------------------------------------

const discoverButton = document.getElementById("discover");
discoverButton.addEventListener("click", () => messages.act(discoverButton, discover, (body) => {
  const broken = Object.entries(body.plugins).filter(([, p]) => p.errors.length).map(([id]) => id);
  page.refreshSoon();
  return `${body.message} in ${Object.keys(body.plugins).length} plugins` +
    (broken.length ? `; collection errors in ${broken.join(", ")}.` : ".");
}));

const runAllButton = document.getElementById("run-all");
runAllButton.addEventListener("click", () => {
  const ids = [...plugins.values()].filter((p) => p.has_tests).map((p) => p.id);
  if (!ids.length) {
    messages.error("No plugin has tests to run.");
    return;
  }
  messages.act(runAllButton, () => api("/tests/bulk-run", { method: "POST", body: { plugins: ids } }),
    (body) => `Queued ${body.run_ids.length} runs.`);
});

// -- start -----------------------------------------------------------------------------

page.start();
