// The plugin page (/tests/plugin/<id>): the test tree with last outcomes and flaky marks,
// run one test / one file / the plugin, the failure view, history charts, runs, schedules.

import { api, cancelRun, discover, rerunFailed, runTests } from "./api.js";
import { renderCards } from "./cards.js";
import { durationChart, rateChart } from "./charts.js";
import { LivePage } from "./live.js";
import { LiveRuns, runSummary } from "./runs.js";
import { setupSchedules } from "./schedules.js";
import {
  BAD, Messages, SUCCESS, badge, debounce, fill, fmtDuration, fmtPercent, fmtTime, h, placeInOrder,
  setText, timeEl,
} from "./util.js";

const root = document.getElementById("dashboard");
const pluginId = root.dataset.pluginId;
const messages = new Messages(document.getElementById("messages"));
const names = new Map();
const treeEl = document.getElementById("tree");
const detailsBody = document.getElementById("details-body");
const filterInput = document.getElementById("tree-filter");
const outcomeFilter = document.getElementById("tree-outcome");
const daysSelect = document.getElementById("history-days");

/** nodeid -> {test, li}; file/class/function groups -> {li, tests: [nodeid]} */
const tests = new Map();
const groups = [];
let plugin = null;
let selected = null;
let autoDiscovered = false;
let treeShape = null;

const page = new LivePage({ root, messages, refresh, applyEvent });
const { debug } = page;

const runs = new LiveRuns({ list: document.getElementById("running"),
  section: document.getElementById("running-section"), pluginId, names,
  onCancel: (runId, button) => messages.act(button, () => cancelRun(runId), `Run ${runId} cancelled.`) });
const { list: schedules, form: scheduleForm } = setupSchedules({ messages, names, pluginId });

// -- the tree ----------------------------------------------------------------------------

/** What a test shows now: a result of a run still going beats its stored last result. */
function effective(nodeid) {
  const live = runs.liveResult(nodeid);
  const entry = tests.get(nodeid);
  const last = entry && entry.test.last;
  if (live) return { outcome: live.outcome, duration: live.duration, message: live.message || "" };
  if (last) return { outcome: last.outcome, duration: last.duration, message: last.message };
  return { outcome: "none", duration: null, message: "" };
}

function runButton(text, target, what) {
  const button = h("button", { type: "button", class: "small secondary run-btn",
    "aria-label": `Run ${what}` }, text);
  button.addEventListener("click", (ev) => {
    ev.stopPropagation();
    messages.act(button, () => runTests(pluginId, target), (b) => `Run #${b.run_id} queued: ${what}.`);
  });
  return button;
}

function groupNode(kind, title, runTarget, runLabel, depth) {
  const list = h("ul", { class: "children", role: "group" });
  const twisty = h("button", { type: "button", class: "twisty", "aria-expanded": "true" },
    h("span", { class: "chevron", "aria-hidden": "true" }), h("span", { class: "group-title" }, title));
  twisty.addEventListener("click", () => {
    const open = twisty.getAttribute("aria-expanded") !== "true";
    twisty.setAttribute("aria-expanded", String(open));
    list.hidden = !open;
  });
  const counts = h("span", { class: "node-counts" });
  const li = h("li", { class: `node ${kind}`, style: `--depth:${depth}` },
    h("div", { class: "node-row" }, twisty, counts,
      runTarget ? runButton(runLabel, runTarget, `${kind} ${title}`) : null),
    list);
  const group = { li, list, counts, tests: [] };
  groups.push(group);
  return group;
}

function testLeaf(test, depth, shortName) {
  const nameButton = h("button", { type: "button", class: "test-name",
    title: test.nodeid }, shortName);
  nameButton.addEventListener("click", () => select(test.nodeid, true));
  const li = h("li", { class: "test", style: `--depth:${depth}`,
    dataset: { nodeid: test.nodeid } },
  h("div", { class: "node-row" },
    h("span", { class: "outcome-slot" }),
    nameButton,
    h("span", { class: "tags" }),
    h("span", { class: "duration num" }),
    runButton("Run", test.nodeid, shortName)),
  h("div", { class: "test-msg" }));
  return li;
}

function buildTree(list) {
  tests.clear();
  groups.length = 0;
  const baseCount = new Map();
  for (const t of list) {
    const base = t.name.split("[", 1)[0];
    baseCount.set(base, (baseCount.get(base) || 0) + 1);
  }
  const files = new Map();
  for (const t of list) {
    if (!files.has(t.file)) files.set(t.file, []);
    files.get(t.file).push(t);
  }
  const items = [];
  for (const [file, fileTests] of files) {
    const fileGroup = groupNode("file", file, file, "Run file", 0);
    const classes = new Map();
    for (const t of fileTests) {
      const cls = t.cls || "";
      if (!classes.has(cls)) classes.set(cls, []);
      classes.get(cls).push(t);
    }
    for (const [cls, clsTests] of classes) {
      let parent = fileGroup;
      let depth = 1;
      let clsGroup = null;
      if (cls) {
        clsGroup = groupNode("class", cls, `${file}::${cls}`, "Run class", 1);
        fileGroup.list.append(clsGroup.li);
        parent = clsGroup;
        depth = 2;
      }
      // Parametrised cases under their function: file > class > test > [id].
      const functions = new Map();
      for (const t of clsTests) {
        const base = t.name.split("[", 1)[0];
        if (!functions.has(base)) functions.set(base, []);
        functions.get(base).push(t);
      }
      for (const [base, cases] of functions) {
        const parametrised = cases.length > 1 || cases[0].name.includes("[");
        let target = parent;
        let leafDepth = depth;
        let fnGroup = null;
        if (parametrised) {
          // Only a unique function name selects exactly these cases on the server.
          const runTarget = baseCount.get(base) === cases.length ? base : null;
          fnGroup = groupNode("function", base, runTarget, "Run all", depth);
          parent.list.append(fnGroup.li);
          target = fnGroup;
          leafDepth = depth + 1;
        }
        for (const t of cases) {
          const short = parametrised ? t.name.slice(base.length) || t.name : t.name;
          const li = testLeaf(t, leafDepth, short);
          target.list.append(li);
          tests.set(t.nodeid, { test: t, li });
          for (const g of [fileGroup, clsGroup, fnGroup]) if (g) g.tests.push(t.nodeid);
        }
      }
    }
    items.push(fileGroup.li);
  }
  if (!items.length) {
    items.push(h("li", { class: "placeholder" }, plugin && plugin.has_tests
      ? "No tests collected yet. Discover tests to list them."
      : "This plugin has no tests folder."));
  }
  treeEl.replaceChildren(...items);
  for (const nodeid of tests.keys()) paintTest(nodeid);
  paintGroups();
  applyFilter();
}

function paintTest(nodeid, force = false) {
  const entry = tests.get(nodeid);
  if (!entry) return;
  const { li, test } = entry;
  const now = effective(nodeid);
  if (li.dataset.outcome !== now.outcome) {
    li.dataset.outcome = now.outcome;
    li.className = `test o-${now.outcome}${selected === nodeid ? " selected" : ""}`;
    li.querySelector(".outcome-slot").replaceChildren(badge(now.outcome));
  }
  setText(li.querySelector(".duration"), now.outcome === "running" ? "…" : fmtDuration(now.duration));
  const tags = [];
  if (test.flaky) tags.push(h("span", { class: "tag flaky", title: flakyWhy(test.last) }, "flaky"));
  if (test.collected === false && plugin && plugin.discovered) {
    tags.push(h("span", { class: "tag gone", title: "Discovery no longer finds this test" }, "gone"));
  }
  const tagEl = li.querySelector(".tags");
  if (force || tagEl.childElementCount !== tags.length) tagEl.replaceChildren(...tags);
  li.dataset.flaky = String(Boolean(test.flaky));
  setText(li.querySelector(".test-msg"), BAD.has(now.outcome) ? now.message || "" : "");
}

function flakyWhy(last) {
  if (!last) return "";
  const bits = [];
  if (last.flaky) bits.push("its last result passed only on a retry");
  else if (last.recent_flaky) bits.push(`passed on a retry ${last.recent_flaky}× recently`);
  if (last.flips > 1) bits.push(`flipped between pass and fail ${last.flips}× in its last ${last.decided} results`);
  return bits.join("; ");
}

function tally(nodeids) {
  const c = { total: nodeids.length, good: 0, bad: 0, skipped: 0, none: 0, running: 0, flaky: 0,
    by: {} };
  for (const nodeid of nodeids) {
    const { outcome } = effective(nodeid);
    if (SUCCESS.has(outcome) || BAD.has(outcome)) c.by[outcome] = (c.by[outcome] || 0) + 1;
    if (SUCCESS.has(outcome)) c.good += 1;
    else if (BAD.has(outcome)) c.bad += 1;
    else if (outcome === "running") c.running += 1;
    else if (outcome === "none") c.none += 1;
    else c.skipped += 1;
    if (tests.get(nodeid).test.flaky) c.flaky += 1;
  }
  return c;
}

// Each outcome by its own name, as the cards above and pytest's line say them: "8 passed"
// counted 3 xfailed and an xpassed, "5 failed" two errors.
const OUTCOME_WORDS = [["passed", "passed"], ["xfailed", "xfailed"], ["xpassed", "xpassed"],
  ["failed", "failed"], ["error", "errors"], ["timed_out", "timed out"], ["crashed", "crashed"]];

function countsText(c) {
  const parts = [`${c.total} test${c.total === 1 ? "" : "s"}`];
  for (const [outcome, word] of OUTCOME_WORDS) {
    if (c.by[outcome]) parts.push(`${c.by[outcome]} ${word}`);
  }
  if (c.skipped) parts.push(`${c.skipped} skipped`);
  if (c.running) parts.push(`${c.running} running`);
  if (c.none) parts.push(`${c.none} never run`);
  if (c.flaky) parts.push(`${c.flaky} flaky`);
  return parts.join(" · ");
}

function paintGroups() {
  for (const g of groups) {
    const c = tally(g.tests);
    setText(g.counts, countsText(c));
    g.counts.classList.toggle("has-bad", c.bad > 0);
    g.li.dataset.state = c.bad ? "bad" : c.running ? "running" : c.good ? "good" : "none";
  }
  const all = tally([...tests.keys()]);
  setText(document.getElementById("tree-summary"), tests.size ? countsText(all) : "");
  document.getElementById("rerun-failed").disabled = !all.bad;
}

function applyFilter() {
  const text = filterInput.value.trim().toLowerCase();
  const mode = outcomeFilter.value;
  for (const [nodeid, { li, test }] of tests) {
    const { outcome } = effective(nodeid);
    let show = !text || nodeid.toLowerCase().includes(text);
    if (show && mode) {
      show = mode === "bad" ? BAD.has(outcome)
        : mode === "passed" ? SUCCESS.has(outcome)
          : mode === "skipped" ? outcome === "skipped"
            : mode === "flaky" ? Boolean(test.flaky)
              : mode === "none" ? outcome === "none" : true;
    }
    li.hidden = !show;
  }
  for (const g of [...groups].reverse()) {
    g.li.hidden = g.tests.every((nodeid) => tests.get(nodeid).li.hidden);
  }
}

filterInput.addEventListener("input", debounce(applyFilter, 120));
outcomeFilter.addEventListener("change", applyFilter);

// -- details -----------------------------------------------------------------------------

async function select(nodeid, focus = false) {
  if (selected && tests.has(selected)) {
    tests.get(selected).li.classList.remove("selected");
    tests.get(selected).li.querySelector(".test-name").removeAttribute("aria-current");
  }
  selected = nodeid;
  const entry = tests.get(nodeid);
  if (entry) {
    entry.li.classList.add("selected");
    entry.li.querySelector(".test-name").setAttribute("aria-current", "true");
  }
  history.replaceState(null, "", `#test=${encodeURIComponent(nodeid)}`);
  await loadDetails(nodeid);
  if (focus) document.getElementById("details").focus({ preventScroll: false });
  // One column (a small window): the details are below the tree, out of sight.
  else if (matchMedia("(max-width: 960px)").matches) {
    document.getElementById("details").scrollIntoView({ block: "nearest" });
  }
}

async function loadDetails(nodeid) {
  detailsBody.setAttribute("aria-busy", "true");
  try {
    const body = await api(`/tests/dashboard/plugins/${encodeURIComponent(pluginId)}/test?` +
      new URLSearchParams({ test_name: nodeid }));
    if (selected === nodeid) renderDetails(body);
  } catch (err) {
    if (selected === nodeid) {
      detailsBody.replaceChildren(h("p", { class: "form-error" }, err.message));
    }
  } finally {
    detailsBody.removeAttribute("aria-busy");
  }
}

function renderDetails(body) {
  const nodeid = body.test.nodeid;
  const stats = body.statistics;
  const attempts = body.attempts;
  const latest = attempts[0];
  const failure = attempts.find((a) => BAD.has(a.status));
  const now = effective(nodeid);
  const entry = tests.get(nodeid);
  const runThis = runButton("Run this test", nodeid, nodeid.split("::").pop());
  runThis.classList.remove("secondary");
  const scheduleThis = h("button", { type: "button", class: "small secondary" }, "Schedule…");
  scheduleThis.addEventListener("click", () => scheduleForm.prefill(pluginId, nodeid));

  const parts = [
    h("h3", { class: "details-title" }, h("code", {}, nodeid)),
    h("div", { class: "details-meta" }, badge(now.outcome),
      now.duration !== null && now.duration !== undefined
        ? h("span", {}, fmtDuration(now.duration)) : null,
      entry && entry.test.flaky ? h("span", { class: "tag flaky", title: flakyWhy(entry.test.last) }, "flaky") : null,
      body.collected ? null : h("span", { class: "tag gone" }, "not collected"),
      latest ? h("span", { class: "muted small" }, "ran ", timeEl(Date.parse(latest.timestamp) / 1000)) : null),
    h("div", { class: "details-actions" }, runThis, scheduleThis),
    h("dl", { class: "details-stats" },
      stat("Success rate", fmtPercent(stats.success_rate)),
      stat("Results", String(stats.total)),
      stat("Mean", fmtDuration(stats.mean_duration)),
      stat("p95", fmtDuration(stats.p95_duration)),
      stat("Flip rate", fmtPercent(stats.flip_rate)),
      stat("Last green", stats.last_green ? fmtTime(stats.last_green) : "never")),
  ];
  const failureBox = h("div", { class: "failure-box" });
  if (failure) {
    showFailure(failureBox, failure, failure === latest);
  } else if (latest) {
    fill(failureBox, h("p", { class: "muted" },
      `No failure in the last ${attempts.length} attempt${attempts.length === 1 ? "" : "s"}.`),
    outputBlocks(latest));
  } else {
    failureBox.replaceChildren(h("p", { class: "muted" }, "Never run yet."));
  }
  parts.push(failureBox);
  if (attempts.length) {
    const rows = attempts.map((a) => {
      const show = h("button", { type: "button", class: "small secondary",
        "aria-label": `Show run ${a.run_id} attempt ${a.metadata.attempt}` }, "Show");
      show.addEventListener("click", () => showFailure(failureBox, a, a === latest));
      return h("tr", { class: `o-${a.status}` },
        h("td", {}, `#${a.run_id}`, a.metadata.attempt > 1 ? h("span", { class: "muted small" }, ` try ${a.metadata.attempt}`) : null),
        h("td", {}, badge(a.status)),
        h("td", { class: "num" }, fmtDuration(a.duration)),
        h("td", {}, timeEl(Date.parse(a.timestamp) / 1000)),
        h("td", {}, show));
    });
    parts.push(h("h4", {}, "Attempts"), h("div", { class: "table-wrap" },
      h("table", { class: "grid compact attempts" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Run"), h("th", { scope: "col" }, "Outcome"),
          h("th", { scope: "col", class: "num" }, "Duration"), h("th", { scope: "col" }, "When"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, rows))));
  }
  fill(detailsBody, parts);
}

function stat(term, value) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, value));
}

function showFailure(box, attempt, isLatest) {
  const title = BAD.has(attempt.status)
    ? `${isLatest ? "Failure" : "Earlier failure"} in run #${attempt.run_id}`
    : `Run #${attempt.run_id}`;
  fill(box,
    h("h4", {}, title, " ", badge(attempt.status)),
    attempt.message ? h("p", { class: "failure-msg" }, attempt.message) : null,
    attempt.metadata.phase && attempt.metadata.phase !== "call"
      ? h("p", { class: "muted small" }, `Decided in ${attempt.metadata.phase}`) : null,
    attempt.error ? h("details", { class: "out", open: true },
      h("summary", {}, "Traceback"), h("pre", { class: "traceback", tabindex: "0" }, attempt.error)) : null,
    outputBlocks(attempt));
}

function outputBlocks(attempt) {
  const blocks = [];
  for (const [key, name] of [["stdout", "Captured stdout"], ["stderr", "Captured stderr"], ["log", "Captured log"]]) {
    const text = attempt.metadata[key];
    if (!text) continue;
    const lines = text.split("\n").length;
    blocks.push(h("details", { class: "out", open: lines <= 12 },
      h("summary", {}, `${name} (${lines} line${lines === 1 ? "" : "s"})`),
      h("pre", { tabindex: "0" }, text)));
  }
  if (!blocks.length) blocks.push(h("p", { class: "muted small" }, "No captured output."));
  return h("div", { class: "outputs" }, blocks);
}

// -- history and runs ----------------------------------------------------------------------

function renderHistory(daily) {
  document.getElementById("chart-rate").replaceChildren(rateChart(daily));
  document.getElementById("chart-duration").replaceChildren(durationChart(daily));
  document.querySelector("#history-table tbody").replaceChildren(...daily.filter((d) => d.total)
    .reverse().map((d) => h("tr", {},
      h("td", {}, d.day), h("td", { class: "num" }, String(d.total)),
      h("td", { class: "num" }, String(d.passed)), h("td", { class: "num" }, String(d.failed)),
      h("td", { class: "num" }, fmtPercent(d.success_rate)),
      h("td", { class: "num" }, fmtDuration(d.mean_duration)))));
}

const runRows = new Map();
const runsBody = document.getElementById("runs");

function runRow(run) {
  let tr = runRows.get(run.id);
  if (!tr) {
    tr = h("tr", { dataset: { runId: String(run.id) } },
      h("td", {}, `#${run.id}`), h("td", {}), h("td", {}), h("td", {}),
      h("td", { class: "num" }), h("td", { class: "small" }));
    runRows.set(run.id, tr);
  }
  if (tr.dataset.status !== run.status) {
    tr.dataset.status = run.status;
    tr.cells[1].replaceChildren(badge(run.status));
  }
  setText(tr.cells[2], run.trigger + (run.selection ? ` · ${run.selection.length} selected` : ""));
  if (tr.dataset.queued !== String(run.queued_at)) {
    tr.dataset.queued = String(run.queued_at);
    tr.cells[3].replaceChildren(timeEl(run.queued_at));
  }
  setText(tr.cells[4], fmtDuration(run.duration));
  setText(tr.cells[5], run.error || runSummary(run.counts));
  return tr;
}

function renderRuns(list) {
  const keep = new Set(list.map((r) => r.id));
  for (const [id] of runRows) {
    if (!keep.has(id)) runRows.delete(id);
  }
  placeInOrder(runsBody, list.map(runRow));
  document.getElementById("runs-empty").hidden = list.length > 0;
}

// -- snapshot and events -------------------------------------------------------------------

async function loadStatistics() {
  const params = new URLSearchParams({ plugin_name: pluginId, days: daysSelect.value });
  const stats = (await api(`/tests/statistics?${params}`)).statistics;
  renderCards(root, stats);
  renderHistory(stats.daily);
}

async function refresh() {
  const [snapshot, , scheduled] = await Promise.all([
    api(`/tests/dashboard/plugins/${encodeURIComponent(pluginId)}`),
    loadStatistics(), schedules.fetch()]);
  debug.snapshots += 1;
  plugin = { ...snapshot.plugin, discovered: snapshot.discovered };
  names.set(pluginId, plugin.name);
  for (const id of ["run-plugin", "discover"]) {
    document.getElementById(id).disabled = !plugin.has_tests;
  }
  schedules.setAll(scheduled);
  runs.reset(snapshot.live);
  const shape = snapshot.tests.map((t) => t.nodeid).join("\n");
  if (shape === treeShape) {
    // Same tests: update in place, so focus, scroll and collapsed groups stay.
    for (const t of snapshot.tests) tests.get(t.nodeid).test = t;
    for (const nodeid of tests.keys()) paintTest(nodeid, true);
    paintGroups();
    applyFilter();
  } else {
    treeShape = shape;
    buildTree(snapshot.tests);
  }
  renderRuns(snapshot.runs);
  page.replay(snapshot.last_event_id);
  if (selected && tests.has(selected)) {
    tests.get(selected).li.classList.add("selected");
    loadDetails(selected);
  }
  if (!snapshot.discovered && plugin.has_tests && !autoDiscovered) {
    autoDiscovered = true;
    // The tree lists what pytest collects; without a discovery it would only hold tests
    // that ran before. One discovery, then the tree shows everything.
    discover(pluginId).then(() => page.refreshSoon()).catch((err) => messages.error(err.message));
  }
  return snapshot.last_event_id;
}

const repaintGroups = debounce(() => {
  paintGroups();
  if (outcomeFilter.value) applyFilter();
}, 50);

function applyEvent(topic, data, replay = false) {
  if (!replay) debug.events += 1;
  if (topic.startsWith("schedules.")) {
    if (topic === "schedules.changed") schedules.apply(data.schedule, data.change);
    return;
  }
  const id = data.plugin_id || (data.run && data.run.plugin_id);
  if (id !== pluginId) return;
  runs.apply(topic, data);
  if (topic === "tests.test_started" || topic === "tests.test_finished") {
    paintTest(data.nodeid);
    repaintGroups();
  } else if (topic === "tests.run_queued" || topic === "tests.run_started") {
    const tr = runRow(data.run);
    if (!tr.isConnected) runsBody.prepend(tr);
    document.getElementById("runs-empty").hidden = true;
  } else if (topic === "tests.run_finished") {
    runRow(data.run);
    for (const nodeid of tests.keys()) paintTest(nodeid);
    paintGroups();
    if (!replay) page.refreshSoon();
  }
}

// -- actions ---------------------------------------------------------------------------------

const runPlugin = document.getElementById("run-plugin");
runPlugin.addEventListener("click", () => messages.act(runPlugin, () => runTests(pluginId),
  (b) => `Run #${b.run_id} queued.`));
const rerun = document.getElementById("rerun-failed");
rerun.addEventListener("click", () => messages.act(rerun, () => rerunFailed(pluginId),
  (b) => `Rerunning ${b.tests.length} failed test${b.tests.length === 1 ? "" : "s"} (run #${b.run_id}).`));
const discoverButton = document.getElementById("discover");
discoverButton.addEventListener("click", () => messages.act(discoverButton, () => discover(pluginId),
  (body) => {
    page.refreshSoon();
    const errors = body.plugins[pluginId] ? body.plugins[pluginId].errors : [];
    return `${body.message}.` + (errors.length
      ? ` Collection errors: ${errors.map((e) => e.nodeid || e.file).join(", ")}.` : "");
  }));
daysSelect.addEventListener("change", () => loadStatistics().catch((err) => messages.error(err.message)));

// -- start -------------------------------------------------------------------------------------

function initialSelection() {
  const match = /^#test=(.+)$/.exec(location.hash);
  if (match) return decodeURIComponent(match[1]);
  // Most useful first view: the first test that failed last time.
  for (const [nodeid] of tests) if (BAD.has(effective(nodeid).outcome)) return nodeid;
  return null;
}

page.start(() => {
  const first = initialSelection();
  if (first) select(first);
});
