// Data Visualizer page: sources, the SQL editor and chart builder, dashboards.
//
// Charts are Vega-Lite specs drawn by the app's shared bundle (/_app/vendor/charts.js,
// CSP-safe: parsed to an AST, evaluated by vega-interpreter). A panel's rows come from its
// query; refreshing a panel swaps the rows in its existing Vega view (a changeset), and a
// live panel appends streamed rows the same way, so nothing is drawn from scratch.

import {renderChart, vega} from "/_app/vendor/charts.js";
import {createEditor} from "/_app/vendor/editor.js";

const $ = (id) => document.getElementById(id);
const API = "api/";

const state = {
  info: null,
  datasets: [],
  live: [],
  boards: [],
  board: null,
  views: new Map(),         // panel id -> Vega View
  lastResult: null,         // {sql, columns, rows}
  chart: null,              // {sql, spec, builder}
  chartView: null,
  queryId: null,
  refreshTimer: null,
  saving: null,
};

// -- helpers --------------------------------------------------------------------------
async function call(path, options = {}) {
  const response = await fetch(API + path, {credentials: "same-origin", ...options});
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = response.status;
    throw error;
  }
  return body;
}

function post(path, body, method = "POST") {
  return call(path, {method, headers: {"Content-Type": "application/json"},
                     body: JSON.stringify(body)});
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function showError(id, message) {
  const box = $(id);
  box.textContent = message || "";
  box.hidden = !message;
}

function fmtNumber(n) {
  return typeof n === "number" ? n.toLocaleString() : String(n);
}

function objects(result) {
  const names = result.columns.map((c) => c.name);
  return result.rows.map((row) => {
    const item = {};
    names.forEach((name, i) => { item[name] = row[i]; });
    return item;
  });
}

function download(name, href) {
  const link = el("a", {href, download: name});
  document.body.append(link);
  link.click();
  link.remove();
}

function timeRange() {
  const from = $("time-range").value;
  return {from, to: from ? "now" : ""};
}

function variableValues() {
  const values = {};
  for (const variable of (state.board && state.board.variables) || []) {
    values[variable.name] = variable.value ?? "";
  }
  return values;
}

// -- sources --------------------------------------------------------------------------
async function loadSources() {
  const data = await call("datasets");
  state.datasets = data.datasets;
  state.live = data.live;
  state.broken = data.broken || [];
  renderSources();
  fillBuilderSources();
}

function renderSources() {
  const list = $("datasets");
  list.replaceChildren(...state.datasets.map((d) => el("li", {class: "item"},
    el("button", {type: "button", class: "link", title: `Query ${d.name}`,
                  onclick: () => useSource(d.name)}, d.name),
    el("span", {class: "muted small-text"},
       `${fmtNumber(d.rows)} rows · ${d.columns.length} columns · ${d.filename}`),
    el("button", {type: "button", class: "small danger", "aria-label": `Remove ${d.name}`,
                  onclick: () => dropDataset(d.name)}, "×"))));
  if (!state.datasets.length) {
    list.replaceChildren(el("li", {class: "muted small-text"}, "None yet."));
  }
  for (const broken of state.broken) {
    list.append(el("li", {class: "item broken"}, el("strong", {}, broken.name),
      el("span", {class: "small-text", title: broken.reason},
         `cannot be opened; drop the file again to replace it (${broken.reason})`)));
  }
  $("live").replaceChildren(...state.live.map((s) => el("li", {class: "item"},
    el("button", {type: "button", class: "link", title: `Query ${s.name}`,
                  onclick: () => useSource(s.name)}, s.name),
    el("span", {class: "muted small-text"},
       s.error ? s.error : `${s.title} · ${fmtNumber(s.rows)} rows`),
    el("button", {type: "button", class: "small", "aria-label": `Refresh ${s.name}`,
                  onclick: () => refreshLive(s.name)}, "↻"))));
  const total = state.datasets.reduce((sum, d) => sum + d.rows, 0);
  $("summary").textContent = `${state.datasets.length} dataset(s), ${fmtNumber(total)} rows · ` +
    "DuckDB in-process, offline";
}

async function refreshLive(name) {
  try {
    await call(`live/${name}/refresh`, {method: "POST"});
    showError("page-error", "");
  } catch (err) {
    showError("page-error", err.message);
  }
  await loadSources();
}

async function dropDataset(name) {
  if (!confirm(`Remove dataset ${name}? (The original file is not touched.)`)) return;
  await call(`datasets/${name}`, {method: "DELETE"});
  await loadSources();
}

function useSource(name) {
  selectTab("explore");
  state.editing = null;
  $("chart-update").hidden = true;
  sqlEditor.dispatch({changes: {from: 0, to: sqlEditor.state.doc.length,
                                insert: `SELECT * FROM ${name}`}});
  $("chart-type").dataset.source = name;
  runQuery();
  showSummary(name);
}

async function showSummary(name) {
  // DuckDB's SUMMARIZE: what each column holds, before charting it.
  const box = $("summary-box");
  try {
    const preview = await call(`datasets/${name}`);
    const keys = [["column_name", "column"], ["column_type", "type"], ["min", "min"],
                  ["max", "max"], ["approx_unique", "distinct ≈"], ["avg", "mean"],
                  ["q50", "median"], ["null_percentage", "nulls %"]];
    $("summary-title").textContent = `Columns of ${name} (${preview.summary.length})`;
    $("summary-table").replaceChildren(
      el("thead", {}, el("tr", {}, ...keys.map(([, label]) => el("th", {scope: "col"}, label)))),
      el("tbody", {}, ...preview.summary.map((row) => el("tr", {}, ...keys.map(([key]) => {
        const value = row[key];
        const shown = value === null || value === undefined ? "" :
          key === "avg" && !Number.isNaN(Number(value)) ? Number(value).toPrecision(4) : String(value);
        return el("td", {class: typeof value === "number" ? "num" : ""}, shown);
      })))));
    box.hidden = false;
  } catch (err) {
    box.hidden = true;
    showError("query-error", `summary of ${name}: ${err.message}`);
  }
}

async function upload(file) {
  showError("page-error", "");
  document.body.dataset.uploading = "true";
  const params = new URLSearchParams({filename: file.name,
                                      dashboard: $("make-dashboard").checked});
  $("summary").textContent = `Loading ${file.name}…`;
  try {
    const answer = await call(`datasets?${params}`, {method: "POST", body: file});
    await loadSources();
    if (answer.dashboard) {
      await loadBoards(answer.dashboard.id);
      selectTab("dashboard");
    } else {
      useSource(answer.dataset.name);
    }
  } catch (err) {
    showError("page-error", err.message);
    await loadSources();
  } finally {
    delete document.body.dataset.uploading;
  }
}

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  for (const file of event.dataTransfer.files) upload(file);
});
$("file-input").addEventListener("change", (event) => {
  for (const file of event.target.files) upload(file);
  event.target.value = "";
});

// -- tabs -----------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of ["dashboard", "explore"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`view-${tab}`).hidden = tab !== name;
  }
  if (name === "dashboard") resizeViews();
}
$("tab-dashboard").addEventListener("click", () => selectTab("dashboard"));
$("tab-explore").addEventListener("click", () => selectTab("explore"));

// -- SQL ------------------------------------------------------------------------------
const sqlEditor = createEditor($("sql-editor"), {
  language: "sql", doc: "SELECT 42 AS answer",
});
sqlEditor.dom.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    runQuery();
  }
});

function sqlText() {
  return sqlEditor.state.doc.toString();
}

async function runQuery() {
  const sql = sqlText();
  state.queryId = `q${Date.now().toString(36)}`;
  $("stop").disabled = false;
  $("run").disabled = true;
  $("query-status").textContent = "Running…";
  showError("query-error", "");
  try {
    const result = await post("query", {sql, query_id: state.queryId,
                                        time_range: timeRange(), variables: variableValues()});
    state.lastResult = {sql, ...result};
    renderResult(result);
    $("query-status").textContent = `${fmtNumber(result.rows.length)} row(s)` +
      `${result.truncated ? " (cut at the limit; export CSV for all)" : ""} in ${result.seconds} s`;
    fillBuilderFields(result.columns);
    updateExportLink();
  } catch (err) {
    $("query-status").textContent = "";
    showError("query-error", err.message);
  } finally {
    state.queryId = null;
    $("stop").disabled = true;
    $("run").disabled = false;
  }
}

function renderResult(result) {
  const table = $("results");
  const head = el("thead", {}, el("tr", {}, ...result.columns.map((c) =>
    el("th", {scope: "col", title: c.type}, c.name, el("span", {class: "type"}, c.type)))));
  const body = el("tbody");
  for (const row of result.rows.slice(0, 500)) {
    body.append(el("tr", {}, ...row.map((v, i) => el("td", {class: typeof v === "number" ? "num" : ""},
      cellText(v, result.columns[i])))));
  }
  table.replaceChildren(head, body);
}

function cellText(value, column) {
  if (value === null) return "∅";
  if (typeof value === "object") return JSON.stringify(value);
  if (column.kind === "temporal" && typeof value === "string") return value.replace("T", " ");
  return String(value);
}

function updateExportLink() {
  const params = new URLSearchParams({sql: sqlText(), filename: "result.csv",
                                      time_range: JSON.stringify(timeRange()),
                                      variables: JSON.stringify(variableValues())});
  $("export-csv").href = `${API}export.csv?${params}`;
}

$("run").addEventListener("click", runQuery);
$("stop").addEventListener("click", async () => {
  if (!state.queryId) return;
  try { await call(`queries/${state.queryId}/cancel`, {method: "POST"}); } catch { /* done */ }
});
$("export-csv").addEventListener("click", updateExportLink);

// -- chart builder --------------------------------------------------------------------
function option(value, label = value) {
  return el("option", {value}, label);
}

function fillBuilderSources() {
  if (!state.info) return;
  const type = $("chart-type");
  if (!type.options.length) {
    type.replaceChildren(...state.info.chart_types.map((t) => option(t)));
    $("chart-aggregate").replaceChildren(...state.info.aggregates.map((a) => option(a)));
  }
}

function fillBuilderFields(columns) {
  for (const id of ["chart-x", "chart-y", "chart-color"]) {
    const select = $(id);
    const before = select.value;
    const choices = [option("", id === "chart-x" ? "—" : "(none)"),
                     ...columns.map((c) => option(c.name, `${c.name} (${c.kind})`))];
    select.replaceChildren(...choices);
    if ([...select.options].some((o) => o.value === before)) select.value = before;
  }
  const temporal = columns.find((c) => c.kind === "temporal");
  const number = columns.find((c) => c.kind === "quantitative");
  const nominal = columns.find((c) => c.kind === "nominal");
  if (!$("chart-x").value) $("chart-x").value = (temporal || nominal || number || {name: ""}).name;
  if (!$("chart-y").value && number) $("chart-y").value = number.name;
  if (temporal && $("chart-type").value === "bar") $("chart-type").value = "line";
  if ($("chart-aggregate").value === "count" && number) $("chart-aggregate").value = "avg";
}

function builderChoice() {
  const value = (id) => $(id).value || null;
  return {sql: sqlText(), type: $("chart-type").value, x: value("chart-x"),
          y: value("chart-y"), color: value("chart-color"),
          aggregate: $("chart-aggregate").value, title: $("chart-title").value,
          trend: $("chart-trend").checked};
}

async function drawChart(event) {
  if (event) event.preventDefault();
  showError("chart-error", "");
  const choice = builderChoice();
  try {
    const built = await post("chart", {...choice, time_range: timeRange(),
                                       variables: variableValues()});
    state.chart = {sql: built.sql, spec: built.spec, builder: choice};
    await showChart(built.spec, objects(built.result));
  } catch (err) {
    showError("chart-error", err.message);
  }
}

async function showChart(spec, rows) {
  state.chartView = await renderChart($("chart"), withSize(spec, $("chart"), 300));
  await state.chartView.insert("rows", rows).runAsync();
  for (const id of ["chart-svg", "chart-png", "chart-add", "spec-toggle"]) $(id).disabled = false;
  specEditor.dispatch({changes: {from: 0, to: specEditor.state.doc.length,
                                 insert: JSON.stringify(spec, null, 2)}});
}

function withSize(spec, element, height) {
  // Fill the element's width; a spec that sets its own size keeps it.
  const sized = {...spec};
  if (!("width" in sized) && !sized.layer && !sized.hconcat) sized.width = "container";
  if (sized.layer && !("width" in sized)) sized.width = "container";
  if (!("height" in sized)) sized.height = height;
  element.style.minHeight = `${height + 40}px`;
  return sized;
}

$("builder").addEventListener("submit", drawChart);

async function exportImage(view, name, kind) {
  if (!view) return;
  if (kind === "svg") {
    const svg = await view.toSVG();
    download(`${name}.svg`, URL.createObjectURL(new Blob([svg], {type: "image/svg+xml"})));
  } else {
    download(`${name}.png`, await view.toImageURL("png", 2));
  }
}
$("chart-svg").addEventListener("click", () => exportImage(state.chartView, "chart", "svg"));
$("chart-png").addEventListener("click", () => exportImage(state.chartView, "chart", "png"));

const specEditor = createEditor($("spec-editor"), {language: "json", doc: "{}"});
$("spec-toggle").addEventListener("click", () => {
  const box = $("spec-box");
  box.hidden = !box.hidden;
  $("spec-toggle").setAttribute("aria-expanded", String(!box.hidden));
});
$("spec-apply").addEventListener("click", async () => {
  showError("chart-error", "");
  let spec;
  try {
    spec = JSON.parse(specEditor.state.doc.toString());
  } catch (err) {
    showError("chart-error", `spec: not JSON (${err.message})`);
    return;
  }
  try {
    await post("spec/check", {spec});
    const result = await post("query", {sql: state.chart.sql, time_range: timeRange(),
                                        variables: variableValues()});
    state.chart.spec = spec;
    await showChart(spec, objects(result));
  } catch (err) {
    showError("chart-error", err.message);
  }
});

$("chart-add").addEventListener("click", async () => {
  if (!state.chart) return;
  let board = state.boards.find((b) => b.id === $("add-board").value);
  if (!board) board = await createBoard("Dashboard");
  const full = await call(`dashboards/${board.id}`);
  const source = $("chart-type").dataset.source || null;
  full.panels.push({title: state.chart.builder.title || state.chart.spec.title || "",
                    sql: state.chart.sql, spec: state.chart.spec, builder: state.chart.builder,
                    width: 6, height: 260, live: $("add-live").checked, source});
  try {
    await post(`dashboards/${board.id}`, full, "PUT");
    await loadBoards(board.id);
    selectTab("dashboard");
  } catch (err) {
    showError("chart-error", err.message);
  }
});

// -- dashboards -----------------------------------------------------------------------
async function loadBoards(selectId) {
  state.boards = (await call("dashboards")).dashboards;
  const choices = state.boards.map((b) => option(b.id, `${b.title} (${b.panels})`));
  // None yet: the picker says so instead of being a tiny blank box.
  $("board-select").replaceChildren(...(choices.length ? choices.map((o) => o.cloneNode(true))
    : [option("", "none yet")]));
  $("add-board").replaceChildren(...choices, option("", "a new dashboard"));
  const id = selectId || (state.board && state.board.id) || (state.boards[0] || {}).id;
  if (id) {
    $("board-select").value = id;
    $("add-board").value = id;
    await openBoard(id);
  } else {
    state.board = null;
    renderBoard();
  }
}

async function openBoard(id) {
  state.board = await call(`dashboards/${id}`);
  $("time-range").value = state.board.time_range.from || "";
  $("refresh").value = String(state.board.refresh_seconds || 0);
  if (![...$("refresh").options].some((o) => o.selected)) $("refresh").value = "0";
  renderBoard();
  armRefresh();
}

async function createBoard(title) {
  const board = await post("dashboards", {title, panels: []});
  await loadBoards(board.id);
  return board;
}

function saveBoard() {
  // Coalesced: a burst of changes (range, refresh, resize) writes once.
  clearTimeout(state.saving);
  state.saving = setTimeout(async () => {
    if (!state.board) return;
    try {
      const board = {...state.board,
                     panels: state.board.panels.map(({refreshing, ...panel}) => panel)};
      state.board = await post(`dashboards/${state.board.id}`, board, "PUT");
    } catch (err) {
      showError("page-error", err.message);
    }
  }, 300);
}

function renderBoard() {
  for (const view of state.views.values()) view.finalize();
  state.views.clear();
  const grid = $("grid");
  grid.replaceChildren();
  const board = state.board;
  $("board-empty").hidden = Boolean(board && board.panels.length);
  $("board-empty").textContent = board
    ? "This dashboard has no panel yet: build a chart in Explore and add it here."
    : "No dashboard yet. Drop a file on the left for one made from it, or build a chart " +
      "in Explore and add it here.";
  $("board-export").href = board ? `${API}dashboards/${board.id}/export` : "#";
  // Nothing to export or delete without a dashboard (both were enabled).
  $("board-export").hidden = $("board-delete").hidden = !board;
  renderVariables();
  if (!board) return;
  for (const panel of board.panels) {
    const chart = el("div", {class: "chart", id: `panel-${panel.id}`});
    const status = el("span", {class: "muted small-text", id: `status-${panel.id}`});
    const card = el("article", {class: "panel card", style: `grid-column: span ${panel.width}`,
                                "aria-label": panel.title || "Chart"},
      el("div", {class: "panel-head"},
        el("h2", {}, panel.title || "Chart",
           panel.live ? el("span", {class: "badge badge-live"}, "live") : null),
        el("span", {class: "actions"}, status,
          el("button", {type: "button", class: "small ghost", title: "Open in Explore",
                        onclick: () => editPanel(panel)}, "Edit"),
          el("button", {type: "button", class: "small ghost", title: "Download as SVG",
                        onclick: () => exportImage(state.views.get(panel.id), panel.title || "chart", "svg")}, "SVG"),
          el("button", {type: "button", class: "small ghost", title: "Download as PNG",
                        onclick: () => exportImage(state.views.get(panel.id), panel.title || "chart", "png")}, "PNG"),
          el("button", {type: "button", class: "small ghost", title: "Download the rows as CSV",
                        onclick: () => download(`${panel.title || "panel"}.csv`, panelCsv(panel))}, "CSV"),
          el("button", {type: "button", class: "small ghost", title: "Wider / narrower",
                        onclick: () => { panel.width = panel.width === 12 ? 6 : 12; saveBoard(); renderBoard(); }}, "↔"),
          el("button", {type: "button", class: "small danger", title: "Remove the panel",
                        onclick: () => removePanel(panel.id)}, "×"))),
      chart);
    grid.append(card);
    drawPanel(panel, chart, status);
  }
}

function panelCsv(panel) {
  const params = new URLSearchParams({sql: panel.sql,
                                      filename: `${(panel.title || "panel").replace(/[^\w .()-]/g, "_")}.csv`,
                                      time_range: JSON.stringify(timeRange()),
                                      variables: JSON.stringify(variableValues())});
  return `${API}export.csv?${params}`;
}

async function drawPanel(panel, element, status) {
  try {
    const result = await post("query", {sql: panel.sql, time_range: timeRange(),
                                        variables: variableValues()});
    // The card's heading shows the title; the spec keeps it for exports and Explore.
    const spec = {...panel.spec};
    if (spec.title === panel.title) delete spec.title;
    const view = await renderChart(element, withSize(spec, element, panel.height));
    state.views.set(panel.id, view);
    await view.insert("rows", objects(result)).runAsync();
    status.textContent = `${fmtNumber(result.rows.length)} rows · ${result.seconds} s`;
  } catch (err) {
    element.replaceChildren(el("p", {class: "page-error"}, err.message));
  }
}

async function refreshPanel(panel) {
  // New rows into the existing view: it is not rebuilt, so nothing flickers.
  const view = state.views.get(panel.id);
  if (!view || panel.refreshing) return;
  panel.refreshing = true;
  try {
    const result = await post("query", {sql: panel.sql, time_range: timeRange(),
                                        variables: variableValues()});
    await view.change("rows", vega.changeset().remove(() => true)
      .insert(objects(result))).runAsync();
    $(`status-${panel.id}`).textContent =
      `${fmtNumber(result.rows.length)} rows · ${result.seconds} s`;
  } catch (err) {
    $(`status-${panel.id}`).textContent = err.message;
  } finally {
    panel.refreshing = false;
  }
}

async function refreshPanels() {
  if (!state.board) return;
  await Promise.all(state.board.panels.map(refreshPanel));
}

function appendLive(source, rows) {
  if (!state.board || !rows.length) return;
  const from = timeRange().from;
  for (const panel of state.board.panels) {
    if (!panel.live || panel.source !== source) continue;
    const view = state.views.get(panel.id);
    if (!view) continue;
    const builder = panel.builder || {};
    if (builder.aggregate && builder.aggregate !== "none" && builder.type !== "scatter") {
      // An aggregated panel's rows are sums or averages, not the raw rows streamed: its
      // query runs again (on the live table, a few thousand rows at most).
      refreshPanel(panel);
      continue;
    }
    let change = vega.changeset().insert(rows);
    const timeField = builder.x;
    if (from && timeField) {
      // Keep the window: rows that slid out of the time range leave the chart.
      const unit = {s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3}[from.slice(-1)] || 0;
      const cutoff = Date.now() - Number(from.slice(4, -1)) * unit;
      change = change.remove((d) => new Date(d[timeField]).getTime() < cutoff);
    }
    view.change("rows", change).runAsync().then(() => {
      $(`status-${panel.id}`).textContent = `${fmtNumber(view.data("rows").length)} rows · live`;
    });
  }
}

async function removePanel(id) {
  state.board.panels = state.board.panels.filter((p) => p.id !== id);
  saveBoard();
  renderBoard();
}

async function editPanel(panel) {
  // Explore gets the panel's base query and builder choices, so Draw rebuilds it; the
  // chart shown is the panel's own spec until then.
  selectTab("explore");
  const b = panel.builder || {};
  const base = b.sql || (b.source ? `SELECT * FROM ${b.source}` : panel.sql);
  sqlEditor.dispatch({changes: {from: 0, to: sqlEditor.state.doc.length, insert: base}});
  $("chart-type").dataset.source = b.source || panel.source || "";
  await runQuery();
  for (const [id, key] of [["chart-type", "type"], ["chart-x", "x"], ["chart-y", "y"],
                           ["chart-color", "color"], ["chart-aggregate", "aggregate"]]) {
    if (b[key] !== undefined) $(id).value = b[key] ?? "";
  }
  $("chart-trend").checked = Boolean(b.trend);
  $("chart-title").value = panel.title || "";
  $("add-live").checked = Boolean(panel.live);
  state.chart = {sql: panel.sql, spec: panel.spec, builder: b};
  state.editing = {board: state.board.id, panel: panel.id};
  $("chart-update").hidden = false;
  $("chart-update").disabled = false;
  try {
    const result = await post("query", {sql: panel.sql, time_range: timeRange(),
                                        variables: variableValues()});
    await showChart(panel.spec, objects(result));
  } catch (err) {
    showError("chart-error", err.message);
  }
}

$("chart-update").addEventListener("click", async () => {
  const editing = state.editing;
  if (!editing || !state.chart || !state.board || state.board.id !== editing.board) return;
  const panel = state.board.panels.find((p) => p.id === editing.panel);
  if (!panel) return;
  Object.assign(panel, {sql: state.chart.sql, spec: state.chart.spec,
                        builder: state.chart.builder, live: $("add-live").checked,
                        title: $("chart-title").value || panel.title});
  try {
    const board = {...state.board,
                   panels: state.board.panels.map(({refreshing, ...rest}) => rest)};
    state.board = await post(`dashboards/${state.board.id}`, board, "PUT");
    renderBoard();
    selectTab("dashboard");
  } catch (err) {
    showError("chart-error", err.message);
  }
});

function renderVariables() {
  const box = $("variables");
  const variables = (state.board && state.board.variables) || [];
  box.hidden = !variables.length;
  box.replaceChildren(...variables.map((v) => {
    const input = v.options && v.options.length
      ? el("select", {"aria-label": v.label || v.name}, ...v.options.map((o) => option(String(o))))
      : el("input", {"aria-label": v.label || v.name, value: v.value ?? ""});
    input.value = v.value ?? "";
    input.addEventListener("change", () => {
      v.value = input.value;
      saveBoard();
      refreshPanels();
    });
    return el("label", {}, `$${v.name} `, input);
  }));
}

$("variable-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!state.board) await createBoard("Dashboard");
  const variable = {name: $("variable-name").value, value: $("variable-value").value,
                    query: $("variable-query").value, options: []};
  if (variable.query) {
    try {
      const result = await post("query", {sql: variable.query, max_rows: 1000});
      variable.options = result.rows.map((r) => r[0]).filter((v) => v !== null);
      if (!variable.value && variable.options.length) variable.value = String(variable.options[0]);
    } catch (err) {
      showError("page-error", `variable ${variable.name}: ${err.message}`);
      return;
    }
  }
  state.board.variables = state.board.variables.filter((v) => v.name !== variable.name);
  state.board.variables.push(variable);
  saveBoard();
  renderVariables();
  refreshPanels();
});

function armRefresh() {
  clearInterval(state.refreshTimer);
  const seconds = Number($("refresh").value);
  if (seconds > 0) state.refreshTimer = setInterval(refreshPanels, seconds * 1000);
}

$("board-select").addEventListener("change", (event) => openBoard(event.target.value));
$("board-new").addEventListener("click", async () => {
  const title = prompt("Name of the new dashboard", "Dashboard");
  if (title) await createBoard(title);
});
$("board-delete").addEventListener("click", async () => {
  if (!state.board || !confirm(`Delete dashboard ${state.board.title}?`)) return;
  await call(`dashboards/${state.board.id}`, {method: "DELETE"});
  state.board = null;
  await loadBoards();
});
$("board-import").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  try {
    const board = await call("dashboards", {method: "POST", body: await file.text(),
                                            headers: {"Content-Type": "application/json"}});
    await loadBoards(board.id);
    showError("page-error", "");
  } catch (err) {
    showError("page-error", `import ${file.name}: ${err.message}`);
  }
});
$("time-range").addEventListener("change", () => {
  if (state.board) {
    state.board.time_range = timeRange();
    saveBoard();
  }
  refreshPanels();
});
$("refresh").addEventListener("change", () => {
  if (state.board) {
    state.board.refresh_seconds = Number($("refresh").value);
    saveBoard();
  }
  armRefresh();
});
$("board-refresh").addEventListener("click", refreshPanels);

function resizeViews() {
  for (const view of state.views.values()) view.resize().runAsync();
}
window.addEventListener("resize", resizeViews);

// -- live stream ----------------------------------------------------------------------
function connect() {
  const source = window.plexichatLive ? window.plexichatLive.open("api/stream")
    : new EventSource("api/stream");
  source.addEventListener("open", () => {
    $("connection").className = "badge badge-live";
    $("connection").textContent = "Live";
  });
  source.addEventListener("error", () => {
    $("connection").className = "badge badge-wait";
    $("connection").textContent = "Reconnecting…";
  });
  source.addEventListener("rows", (event) => {
    const data = JSON.parse(event.data);
    appendLive(data.source, data.rows);
    const live = state.live.find((s) => s.name === data.source);
    if (live && !data.replace) live.rows += data.rows.length;
  });
  source.addEventListener("dataset", async (event) => {
    // A file loaded again (here or in another window): its panels show the new rows.
    const data = JSON.parse(event.data);
    await loadSources();
    if (state.board && state.board.panels.some((p) => p.source === data.name)) refreshPanels();
  });
}

// -- start ----------------------------------------------------------------------------
async function start() {
  try {
    state.info = await call("info");
    await loadSources();
    await loadBoards();
    connect();
    window.dataVisualizer = {state, refreshPanels, appendLive, runQuery, drawChart, loadBoards,
                             upload};
    document.body.dataset.ready = "true";
  } catch (err) {
    showError("page-error", `Could not load: ${err.message}`);
  }
}

start();
