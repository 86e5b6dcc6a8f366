// Code Analyzer page. An ES module (the charts bundle is one); no inline script, no eval:
// the host's CSP allows scripts from this origin only. URLs are relative to the page, so
// they stay inside /plugins/code_analyzer/.
import {renderChart} from "/_app/vendor/charts.js";

const API = "api/";
const MAX_ROWS = 500;
const SEVERITY_ORDER = {high: 0, medium: 1, low: 2};
const $ = (id) => document.getElementById(id);

const state = {
  scan: null,
  scanId: null,
  trend: [],
  handledJobs: new Set(),
  issueSort: {key: "severity", dir: 1},
  tableSort: {files: {key: "complexity", dir: -1}, functions: {key: "complexity", dir: -1}},
};

// ---- helpers --------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function fmt(value, digits = 0) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value !== "number") return String(value);
  return value.toLocaleString(undefined, {maximumFractionDigits: digits});
}

async function requestJSON(url, options = {}) {
  const response = await fetch(url, {credentials: "same-origin", ...options});
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.detail) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.errors = (body && body.errors) || {};
    throw error;
  }
  return body;
}

function postJSON(url, data) {
  return requestJSON(url, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(data),
  });
}

function showError(message) {
  const box = $("page-error");
  box.textContent = message || "";
  box.hidden = !message;
}

function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const p of document.querySelectorAll(".field-error")) p.textContent = "";
}

function fieldError(field, message) {
  const target = $(`${field}-error`);
  if (!target) return false;
  target.textContent = message;
  const input = document.querySelector(`[aria-describedby~="${field}-error"]`);
  if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  return true;
}

function reportRequestError(error) {
  const fields = Object.keys(error.errors || {});
  if (!fields.length || !fields.every((f) => fieldError(f, error.errors[f]))) {
    showError(error.message);
  }
}

// ---- start-up ---------------------------------------------------------------------------
async function loadRoots() {
  try {
    const info = await requestJSON(`${API}roots`);
    $("roots").replaceChildren(...info.roots.map((r) => el("option", {value: r})));
    $("roots-text").textContent = info.roots.join(", ");
    const folder = $("folder");
    if (!folder.value) folder.value = localStorage.getItem("code_analyzer.folder") || info.roots[0];
    $("gate-cc").value = info.gate_defaults.max_complexity;
    $("gate-mi").value = info.gate_defaults.min_maintainability;
    const missing = Object.entries(info.tools).filter(([, ok]) => !ok).map(([name]) => name);
    const badge = $("tools-status");
    if (missing.length || info.missing.length) {
      badge.className = "badge badge-wait";
      badge.textContent = missing.length ? `Degraded: ${missing.join(", ")} missing` : "Degraded";
      badge.title = info.missing.join("\n");
    } else {
      badge.className = "badge badge-ok";
      badge.textContent = "ruff · bandit · vulture ready";
    }
  } catch (error) {
    showError(`Could not read the settings: ${error.message}`);
  }
}

async function loadLatest() {
  // The last gate of this session (jobs live as long as the app) is shown again on reload.
  const {jobs} = await requestJSON(`${API}_host/jobs`);
  const gate = jobs.find((j) => j.name === "gate" && j.state === "succeeded");
  if (gate) {
    state.handledJobs.add(gate.id);
    renderGate(gate.result);
  }
  const {scans} = await requestJSON(`${API}scans?limit=1`);
  if (scans.length) await loadScan(scans[scans.length - 1].id);
}

// ---- forms ------------------------------------------------------------------------------
$("scan-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearFieldErrors(form);
  showError("");
  const folder = $("folder").value.trim();
  if (!folder) { fieldError("folder", "folder: enter a folder to scan"); return; }
  localStorage.setItem("code_analyzer.folder", folder);
  $("scan-button").disabled = true;
  try {
    await postJSON(`${API}scan`, {folder, run_tools: $("run-tools").checked});
  } catch (error) {
    reportRequestError(error);
  } finally {
    $("scan-button").disabled = false;
  }
});

$("gate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors(event.currentTarget);
  clearFieldErrors($("scan-form"));
  showError("");
  const folder = $("folder").value.trim();
  if (!folder) { fieldError("folder", "folder: enter the folder of the change"); return; }
  const body = {folder, ref: $("gate-ref").value.trim(), fail_on: $("gate-fail-on").value};
  const cc = $("gate-cc").value.trim();
  const mi = $("gate-mi").value.trim();
  if (cc) body.max_complexity = Number(cc);
  if (mi) body.min_maintainability = Number(mi);
  $("gate-button").disabled = true;
  try {
    await postJSON(`${API}gate`, body);
  } catch (error) {
    reportRequestError(error);
  } finally {
    $("gate-button").disabled = false;
  }
});

// Finished jobs arrive through the host's jobs component.
$("jobs").addEventListener("plexichat-job", (event) => {
  const job = event.detail;
  if (job.state !== "succeeded" || state.handledJobs.has(job.id)) return;
  state.handledJobs.add(job.id);
  if (job.name === "scan" && job.result) {
    loadScan(job.result.scan_id).catch((error) => showError(error.message));
  } else if (job.name === "gate" && job.result) {
    renderGate(job.result);
  } else if (job.name === "history" && job.result) {
    state.history = job.result.points;
    state.historyFolder = job.result.folder;
    renderHistory().catch((error) => showError(error.message));
  }
});

$("history-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors(event.currentTarget);
  showError("");
  const folder = $("folder").value.trim();
  if (!folder) { fieldError("folder", "folder: enter the folder of a git repository"); return; }
  $("history-button").disabled = true;
  try {
    await postJSON(`${API}history`, {folder, commits: Number($("history-commits").value)});
  } catch (error) {
    reportRequestError(error);
  } finally {
    $("history-button").disabled = false;
  }
});

// Past commits measured from git objects (wily's view), with the same metric as the trend.
async function renderHistory() {
  if (!state.history) return;
  const element = $("history-chart");
  element.hidden = false;
  const metric = $("trend-metric").value;
  const label = $("trend-metric").selectedOptions[0].textContent;
  const values = state.history.map((p) => ({
    commit: p.commit.slice(0, 8), subject: p.subject,
    when: new Date(p.time * 1000).toLocaleString(),
    value: metric === "issues_total" ? p.findings : p[metric],
  })).filter((v) => v.value !== null && v.value !== undefined);
  await renderChart(element, {
    width: "container", height: 180,
    title: metric === "issues_total" ? "own findings per commit (tools are not run on history)"
      : `${label} per commit of ${state.historyFolder}`,
    data: {values},
    mark: {type: "line", point: true},
    encoding: {
      x: {field: "commit", type: "ordinal", sort: null, title: null, axis: {labelAngle: -45}},
      y: {field: "value", type: "quantitative", title: label, scale: {zero: false}},
      tooltip: [{field: "commit"}, {field: "subject"}, {field: "when"},
        {field: "value", title: label}],
    },
  });
}

// ---- gate -------------------------------------------------------------------------------
function renderGate(result) {
  $("gate-panel").hidden = false;
  const badge = $("gate-badge");
  badge.className = `badge badge-big ${result.passed ? "badge-ok" : "badge-bad"}`;
  badge.textContent = result.passed ? "Passed" : "Failed";
  $("gate-summary").textContent =
    `Against ${result.ref} (${result.commit.slice(0, 10)}): ${result.analysed_files} changed ` +
    `source files, ${result.new_lines} new lines, ${result.new_issues_total} new issues, ` +
    `in ${result.seconds.toFixed(2)} s.`;
  // Changed files the gate could not read (too big, a link) are judged by nobody: said.
  const skipped = result.skipped || [];
  $("gate-skipped").hidden = !skipped.length;
  $("gate-skipped").textContent = skipped.length
    ? `Not analysed (${skipped.length}): ` + skipped.map((s) => `${s.path} (${s.reason})`).join("; ")
    : "";
  $("gate-conditions").replaceChildren(...result.conditions.map((c) => el("tr", {},
    el("td", {text: c.name}), el("td", {className: "num", text: fmt(c.threshold, 2)}),
    el("td", {className: "num", text: fmt(c.actual, 2)}),
    el("td", {className: c.passed ? "pass" : "fail", text: c.passed ? "passed" : "failed"}))));
  const issues = result.new_issues.map((i) => el("li", {}, severityTag(i.severity), " ",
    ruleLink(i), ` ${i.path}:${i.line} — ${i.message}`));
  $("gate-issues").replaceChildren(...(issues.length ? issues
    : [el("li", {className: "muted", text: "No new issue on the changed lines."})]));
  const limit = Number($("gate-cc").value) || Infinity;
  const rows = result.functions.slice(0, MAX_ROWS).map((f) => el("tr", {},
    el("td", {className: "path", text: f.name}), el("td", {className: "path", text: `${f.path}:${f.line}`}),
    el("td", {className: `num${f.complexity > limit ? " over" : ""}`, text: f.complexity}),
    el("td", {className: "num", text: fmt(f.base_complexity)})));
  $("gate-functions").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", {colspan: 4, className: "muted", text: "No function was changed."}))]));
  $("gate-panel").scrollIntoView({block: "nearest"});
}

function severityTag(severity) {
  return el("span", {className: `sev sev-${severity}`, text: severity});
}

function ruleLink(issue) {
  if (!issue.link) return el("code", {text: issue.rule});
  return el("a", {href: issue.link, target: "_blank", rel: "noopener noreferrer"},
    el("code", {text: issue.rule}));
}

// ---- scan results -----------------------------------------------------------------------
async function loadScan(scanId) {
  const scan = await requestJSON(`${API}scans/${scanId}`);
  state.scan = scan;
  state.scanId = scanId;
  $("results").hidden = false;
  const when = new Date().toLocaleTimeString();
  $("scan-title").textContent = `Scan #${scanId} of ${scan.folder} (shown ${when})`;
  for (const [id, query] of [["export-json", "format=json"], ["export-csv-files", "format=csv&kind=files"],
    ["export-csv-functions", "format=csv&kind=functions"], ["export-csv-issues", "format=csv&kind=issues"],
    ["export-sarif", "format=sarif"]]) {
    $(id).href = `${API}scans/${scanId}/export?${query}`;
  }
  renderCards(scan.summary);
  fillToolFilter(scan.issues);
  renderIssues();
  renderTable();
  renderHotspots(scan);
  renderImports(scan);
  await Promise.all([renderDistribution(scan), loadTrend(scan.folder)]);
}

function card(title, value, detail, level) {
  return el("article", {className: "card", "data-level": level},
    el("h3", {text: title}), el("p", {className: "big", text: value}),
    detail ? el("p", {className: "detail", text: detail}) : null);
}

function renderCards(s) {
  const issues = s.issues;
  $("cards").replaceChildren(
    card("Files", fmt(s.files), `${fmt(s.cache_hits)} from cache · ${fmt(s.skipped)} skipped`),
    card("Source lines", fmt(s.sloc), `${fmt(s.comments)} comment · ${fmt(s.blank)} blank`),
    card("Functions", fmt(s.functions), `total complexity ${fmt(s.complexity_total)}`),
    card("Mean complexity", fmt(s.complexity_mean, 2), `max ${fmt(s.complexity_max)}`,
      s.complexity_max > 20 ? "warn" : undefined),
    card("Maintainability", fmt(s.mi_mean, 1), s.mi_min === null ? "Python files only"
      : `lowest ${fmt(s.mi_min, 1)}`, s.mi_min !== null && s.mi_min < 10 ? "warn" : undefined),
    card("Issues", fmt(issues.high + issues.medium + issues.low),
      `${issues.high} high · ${issues.medium} medium · ${issues.low} low`,
      issues.high ? "bad" : undefined),
    card("Import cycles", fmt(s.cycles), "Python and JS/TS, import-time only",
      s.cycles ? "warn" : undefined),
    card("Scan time", `${fmt(s.seconds, 2)} s`, "cached files are not analysed again"),
  );
}

// ---- issues -----------------------------------------------------------------------------
function fillToolFilter(issues) {
  const select = $("filter-tool");
  const current = select.value;
  const tools = [...new Set(issues.map((i) => i.tool))].sort();
  select.replaceChildren(el("option", {value: "", text: "all"}),
    ...tools.map((t) => el("option", {value: t, text: t})));
  select.value = tools.includes(current) ? current : "";
  const lines = (state.scan.tools || []).map((t) => `${t.tool}: ${t.status === "ok"
    ? `${t.issues} in ${t.seconds.toFixed(1)} s${t.detail ? ` (${t.detail})` : ""}`
    : `${t.status} (${t.detail})`}`);
  $("tools-line").textContent = lines.length ? lines.join(" · ") : "Tools were not run for this scan.";
}

function compare(a, b, key) {
  if (key === "severity") return SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity];
  const x = a[key];
  const y = b[key];
  if (x === y) return 0;
  if (x === null || x === undefined) return 1;
  if (y === null || y === undefined) return -1;
  if (typeof x === "number" && typeof y === "number") return x - y;
  return String(x).localeCompare(String(y));
}

function renderIssues() {
  if (!state.scan) return;
  const severity = $("filter-severity").value;
  const tool = $("filter-tool").value;
  const fixOnly = $("filter-fix").checked;
  const text = $("filter-text").value.trim().toLowerCase();
  const {key, dir} = state.issueSort;
  const rows = state.scan.issues.filter((i) => (!severity || i.severity === severity)
    && (!tool || i.tool === tool) && (!fixOnly || i.fix_available)
    && (!text || `${i.rule} ${i.path} ${i.message}`.toLowerCase().includes(text)))
    .sort((a, b) => dir * compare(a, b, key) || compare(a, b, "path") || a.line - b.line);
  $("issues-count").textContent = `(${rows.length} of ${state.scan.issues.length})`;
  const body = $("issues-table").tBodies[0];
  body.replaceChildren(...rows.slice(0, MAX_ROWS).map((i) => el("tr", {},
    el("td", {}, severityTag(i.severity)), el("td", {text: i.tool}), el("td", {}, ruleLink(i)),
    el("td", {className: "path", text: `${i.path}:${i.line}:${i.column}`}),
    el("td", {text: i.message}),
    el("td", {text: i.fix_available ? (i.fix_applicability || "yes") : ""}))));
  if (!rows.length) {
    body.append(el("tr", {}, el("td", {colspan: 6, className: "muted", text: "No issue matches."})));
  }
  $("issues-more").textContent = rows.length > MAX_ROWS
    ? `Showing the first ${MAX_ROWS}; narrow the filters or export the list.` : "";
  markSorted($("issues-table"), key, dir);
}

for (const id of ["filter-severity", "filter-tool", "filter-fix"]) {
  $(id).addEventListener("change", renderIssues);
}
$("filter-text").addEventListener("input", renderIssues);
$("issues-table").tHead.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-sort]");
  if (!button) return;
  const key = button.dataset.sort;
  state.issueSort = {key, dir: state.issueSort.key === key ? -state.issueSort.dir : 1};
  renderIssues();
});

function markSorted(table, key, dir) {
  for (const th of table.tHead.querySelectorAll("th")) {
    const button = th.querySelector("button");
    if (button && button.dataset.sort === key) {
      th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    } else {
      th.removeAttribute("aria-sort");
    }
  }
}

// ---- files / functions table ------------------------------------------------------------
const COLUMNS = {
  files: [
    ["path", "File"], ["language", "Language"], ["sloc", "SLOC", true], ["comments", "Comments", true],
    ["blank", "Blank", true], ["function_count", "Functions", true], ["complexity", "Complexity", true],
    ["max_complexity", "Max CC", true], ["mi", "MI", true], ["volume", "Halstead volume", true],
  ],
  functions: [
    ["name", "Function"], ["path", "File"], ["line", "Line", true],
    ["complexity", "Complexity", true], ["params", "Parameters", true],
  ],
};

function tableKind() {
  return document.querySelector('input[name="table-kind"]:checked').value;
}

function tableRows(kind) {
  const files = state.scan.files;
  if (kind === "files") {
    return files.map((f) => ({...f, function_count: f.functions.length,
      volume: f.halstead ? f.halstead.volume : null}));
  }
  return files.flatMap((f) => f.functions.map((fn) => ({...fn, path: f.path,
    params: fn.params ?? null})));
}

function renderTable() {
  if (!state.scan) return;
  const kind = tableKind();
  const columns = COLUMNS[kind];
  const {key, dir} = state.tableSort[kind];
  const text = $("table-filter").value.trim().toLowerCase();
  const rows = tableRows(kind)
    .filter((r) => !text || `${r.path} ${r.name || ""}`.toLowerCase().includes(text))
    .sort((a, b) => dir * compare(a, b, key) || compare(a, b, "path"));
  const table = $("metrics-table");
  table.tHead.replaceChildren(el("tr", {}, ...columns.map(([k, label, num]) =>
    el("th", {scope: "col", className: num ? "num" : undefined},
      el("button", {type: "button", "data-sort": k, text: label})))));
  const limit = Number($("gate-cc").value) || Infinity;
  table.tBodies[0].replaceChildren(...rows.slice(0, MAX_ROWS).map((r) => el("tr", {},
    ...columns.map(([k, , num]) => {
      const over = (k === "complexity" && kind === "functions" && r[k] > limit)
        || (k === "max_complexity" && r[k] > limit);
      const cls = [num ? "num" : "", k === "path" || k === "name" ? "path" : "",
        over ? "over" : ""].filter(Boolean).join(" ");
      return el("td", {className: cls || undefined, text: fmt(r[k], k === "mi" ? 1 : 0)});
    }))));
  $("table-more").textContent = rows.length > MAX_ROWS
    ? `Showing ${MAX_ROWS} of ${rows.length}; sort or search to see others, or export CSV.`
    : `${rows.length} ${kind}`;
  markSorted(table, key, dir);
}

$("metrics-table").tHead.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-sort]");
  if (!button) return;
  const kind = tableKind();
  const key = button.dataset.sort;
  const current = state.tableSort[kind];
  state.tableSort[kind] = {key, dir: current.key === key ? -current.dir : -1};
  renderTable();
});
for (const radio of document.querySelectorAll('input[name="table-kind"]')) {
  radio.addEventListener("change", renderTable);
}
$("table-filter").addEventListener("input", renderTable);

// ---- hotspots, imports, skipped ---------------------------------------------------------
function renderHotspots(scan) {
  $("hotspots-note").textContent = scan.hotspots.length
    ? `From the ${scan.git}; the score is commits × total complexity.` : scan.git;
  $("hotspots").replaceChildren(...scan.hotspots.slice(0, 30).map((h) => el("tr", {},
    el("td", {className: "path", text: h.path}), el("td", {className: "num", text: fmt(h.commits)}),
    el("td", {className: "num", text: fmt(h.churn)}), el("td", {className: "num", text: fmt(h.complexity)}),
    el("td", {className: "num", text: fmt(h.score)}))));
}

function renderImports(scan) {
  const graph = scan.imports;
  $("imports-note").textContent =
    `${graph.modules} modules (Python, JS/TS), ${graph.edges.length} internal imports, ` +
    `${graph.cycles.length} cycles.`;
  $("cycles").replaceChildren(...(graph.cycles.length
    ? graph.cycles.map((c) => el("li", {className: "path", text: `${c.join(" → ")} → ${c[0]}`}))
    : [el("li", {className: "muted", text: "No import cycle."})]));
  $("skipped").replaceChildren(...(scan.skipped.length
    ? scan.skipped.slice(0, 100).map((s) => el("li", {}, el("span", {className: "path", text: s.path}),
      ` — ${s.reason}`))
    : [el("li", {className: "muted", text: "None."})]));
}

// ---- charts -----------------------------------------------------------------------------
const BUCKETS = [["A 1–5", 5], ["B 6–10", 10], ["C 11–20", 20], ["D 21–30", 30], ["E 31–40", 40],
  ["F 41+", Infinity]];

async function renderDistribution(scan) {
  const counts = BUCKETS.map(([rank]) => ({rank, functions: 0}));
  for (const f of scan.files) {
    for (const fn of f.functions) {
      counts[BUCKETS.findIndex(([, max]) => fn.complexity <= max)].functions += 1;
    }
  }
  await renderChart($("dist-chart"), {
    width: "container", height: 180,
    data: {values: counts},
    mark: {type: "bar", tooltip: true},
    encoding: {
      x: {field: "rank", type: "ordinal", sort: null, title: "complexity rank (radon)"},
      y: {field: "functions", type: "quantitative", title: "functions"},
      color: {field: "rank", type: "ordinal", sort: null, legend: null,
        scale: {range: ["#1f9d55", "#6cbf4a", "#d9b310", "#e8870e", "#d64545", "#8f1f1f"]}},
    },
  });
}

async function loadTrend(folder) {
  const {scans} = await requestJSON(`${API}scans?folder=${encodeURIComponent(folder)}&limit=200`);
  state.trend = scans;
  await renderTrend();
}

async function renderTrend() {
  const metric = $("trend-metric").value;
  const label = $("trend-metric").selectedOptions[0].textContent;
  const counts = metric === "sloc" || metric === "issues_total";
  // One point per stored scan, in order: scans minutes apart would crowd a time axis.
  const values = state.trend.map((s) => ({
    scan: `#${s.id}`,
    when: new Date(s.finished_at * 1000).toLocaleString(),
    value: metric === "issues_total" ? s.issues.high + s.issues.medium + s.issues.low : s[metric],
  })).filter((v) => v.value !== null && v.value !== undefined);
  await renderChart($("trend-chart"), {
    width: "container", height: 180,
    data: {values},
    mark: {type: "line", point: true},
    encoding: {
      x: {field: "scan", type: "ordinal", sort: null, title: "scan", axis: {labelAngle: 0}},
      y: {field: "value", type: "quantitative", title: label, scale: {zero: counts},
        axis: {format: counts ? "~s" : ".1f"}},
      tooltip: [{field: "when", title: "finished"}, {field: "value", title: label,
        format: counts ? "," : ".2f"}],
    },
  });
}
$("trend-metric").addEventListener("change", () => {
  renderTrend().catch((e) => showError(e.message));
  renderHistory().catch((e) => showError(e.message));
});

// ---- go ---------------------------------------------------------------------------------
loadRoots();
loadLatest().catch((error) => showError(`Could not load the last scan: ${error.message}`));
