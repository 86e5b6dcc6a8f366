// Performance Monitor dashboard. No libraries: the page must work offline and the
// host's CSP only allows scripts from this origin. All URLs are relative, so they stay
// inside /plugins/performance_monitor/.
"use strict";

const METRICS = ["cpu", "memory", "disk", "swap"];
const LABELS = { cpu: "CPU", memory: "Memory", disk: "Disk", swap: "Swap" };
const HISTORY_SECONDS = 3600;
// A bar turns amber this many percentage points below its threshold.
const WARN_MARGIN = 10;
const RECONNECT_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  samples: [],        // compact points, oldest first
  latest: null,       // the last full sample
  thresholds: null,
  interval: 2,
  sustain: 3,
  rangeMinutes: 60,
  alerts: { active: [], recent: [] },
};

const $ = (id) => document.getElementById(id);

// ---- formatting ---------------------------------------------------------------------
function formatBytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = value;
  let unit = 0;
  while (Math.abs(size) >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(size)} B`;
  // Three significant digits keep two figures side by side on a narrow card.
  return `${size.toFixed(Math.abs(size) >= 100 ? 0 : 1)} ${units[unit]}`;
}

function formatRate(value) {
  return value === null || value === undefined ? "—" : `${formatBytes(value)}/s`;
}

function formatPercent(value) {
  return value === null || value === undefined ? "—" : `${value.toFixed(1)}%`;
}

function formatTime(timestamp) {
  return new Date(timestamp * 1000).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function level(value, threshold) {
  if (value === null || value === undefined || threshold === undefined) return "ok";
  if (value > threshold) return "over";
  if (value > threshold - WARN_MARGIN) return "warn";
  return "ok";
}

// ---- network ------------------------------------------------------------------------
async function requestJSON(url, options) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = new Error(describeError(response, body));
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function describeError(response, body) {
  if (body && typeof body.detail === "string") return body.detail;
  return `${response.status} ${response.statusText}`.trim();
}

function showPageError(message) {
  const box = $("page-error");
  box.textContent = message;
  box.hidden = !message;
}

// ---- figure cards -------------------------------------------------------------------
function setBar(metric, value) {
  const bar = $(`${metric}-bar`);
  const threshold = state.thresholds ? state.thresholds[metric] : undefined;
  const shown = value === null || value === undefined ? 0 : Math.min(100, Math.max(0, value));
  bar.querySelector(".fill").style.width = `${shown}%`;
  const mark = bar.querySelector(".mark");
  // No mark on a figure that does not exist here (no swap): it would read as a reading.
  if (threshold !== undefined && value !== null && value !== undefined) {
    mark.style.left = `${threshold}%`;
    mark.hidden = false;
  } else {
    mark.hidden = true;
  }
  bar.dataset.level = level(value, threshold);
  $(`card-${metric}`).dataset.level = bar.dataset.level;
  bar.setAttribute("aria-valuenow", String(shown));
  const over = bar.dataset.level === "over" ? ", above" : "";
  bar.setAttribute("aria-valuetext", value === null || value === undefined ? "unknown"
    : `${value.toFixed(1)}%${threshold !== undefined ? ` (threshold ${threshold}%${over})` : ""}`);
}

function renderCards(sample) {
  $("cpu-value").textContent = formatPercent(sample.cpu_percent);
  setBar("cpu", sample.cpu_percent);
  const busiest = sample.cpu_per_core.length ? Math.max(...sample.cpu_per_core) : null;
  $("cpu-detail").textContent = `${sample.cpu_count} core${sample.cpu_count === 1 ? "" : "s"}`
    + (busiest === null ? "" : ` · busiest ${busiest.toFixed(0)}%`);
  renderCores(sample.cpu_per_core);

  $("memory-value").textContent = formatPercent(sample.memory_percent);
  setBar("memory", sample.memory_percent);
  $("memory-detail").textContent =
    `${formatBytes(sample.memory_used)} of ${formatBytes(sample.memory_total)} in use`;

  $("disk-value").textContent = formatPercent(sample.disk_percent);
  setBar("disk", sample.disk_percent);
  $("disk-detail").textContent = `${formatBytes(sample.disk_free)} free of `
    + `${formatBytes(sample.disk_total)} on ${sample.disk_path}`;

  if (sample.swap_total > 0) {
    $("swap-value").textContent = formatPercent(sample.swap_percent);
    setBar("swap", sample.swap_percent);
    $("swap-detail").textContent =
      `${formatBytes(sample.swap_used)} of ${formatBytes(sample.swap_total)} in use`;
  } else {
    $("swap-value").textContent = "None";
    setBar("swap", null);
    $("swap-detail").textContent = "This system has no swap space";
  }

  $("net-in").textContent = formatRate(sample.net_recv_bps);
  $("net-out").textContent = formatRate(sample.net_sent_bps);
  $("io-read").textContent = formatRate(sample.disk_read_bps);
  $("io-write").textContent = formatRate(sample.disk_write_bps);

  const loads = [sample.load_1, sample.load_5, sample.load_15];
  ["load-1", "load-5", "load-15"].forEach((id, i) => {
    $(id).textContent = loads[i] === null ? "—" : loads[i].toFixed(2);
  });
  $("load-detail").textContent = sample.load_1 === null ? "Not available on this system"
    : `${sample.cpu_count} core${sample.cpu_count === 1 ? "" : "s"}`
      + (sample.load_1 > sample.cpu_count ? " · more work than cores" : "");

  $("proc-count").textContent = String(sample.process_count);
  $("host-rss").textContent = formatBytes(sample.host_rss);
  $("updated").textContent = `Updated ${formatTime(sample.timestamp)} · every ${state.interval} s`;
}

function renderCores(perCore) {
  const box = $("cpu-cores");
  while (box.children.length > perCore.length) box.lastChild.remove();
  while (box.children.length < perCore.length) {
    const core = document.createElement("span");
    core.appendChild(document.createElement("span"));
    box.appendChild(core);
  }
  const threshold = state.thresholds ? state.thresholds.cpu : undefined;
  perCore.forEach((value, i) => {
    const core = box.children[i];
    core.title = `Core ${i + 1}: ${value.toFixed(0)}%`;
    core.dataset.level = level(value, threshold);
    core.firstChild.style.height = `${Math.max(2, value)}%`;
  });
}

// ---- chart --------------------------------------------------------------------------
let chartPending = false;

function scheduleChart() {
  if (chartPending) return;
  chartPending = true;
  requestAnimationFrame(() => {
    chartPending = false;
    renderChart();
  });
}

function svg(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (parent) parent.appendChild(el);
  return el;
}

function seriesStats(points, key) {
  const values = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
  if (!values.length) return null;
  const sum = values.reduce((a, b) => a + b, 0);
  return { now: values[values.length - 1], avg: sum / values.length, max: Math.max(...values) };
}

function renderChart() {
  const box = $("chart");
  const width = Math.max(320, Math.round(box.clientWidth || 640));
  const height = 240;
  const pad = { left: 40, right: 12, top: 12, bottom: 26 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const end = state.latest ? state.latest.timestamp : Date.now() / 1000;
  const span = state.rangeMinutes * 60;
  const start = end - span;
  const points = state.samples.filter((p) => p.timestamp >= start);
  const x = (t) => pad.left + ((t - start) / span) * plotW;
  const y = (v) => pad.top + (1 - Math.min(100, Math.max(0, v)) / 100) * plotH;

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-labelledby": "chart-title chart-desc", class: "chart-svg",
  });
  const desc = svg("desc", { id: "chart-desc" }, root);
  desc.textContent = describeChart(points);

  for (const v of [0, 25, 50, 75, 100]) {
    svg("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" },
      root);
    svg("text", { x: pad.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, root)
      .textContent = `${v}%`;
  }
  const tickMinutes = { 5: 1, 15: 5, 30: 5, 60: 10 }[state.rangeMinutes] || 10;
  for (let m = 0; m <= state.rangeMinutes; m += tickMinutes) {
    const t = end - m * 60;
    const label = m === 0 ? "now" : `−${m} min`;
    const anchor = m === 0 ? "end" : (m === state.rangeMinutes ? "start" : "middle");
    svg("text", { x: x(t), y: height - 8, class: "axis", "text-anchor": anchor }, root)
      .textContent = label;
  }

  if (state.thresholds) {
    for (const metric of ["cpu", "memory"]) {
      const ty = y(state.thresholds[metric]);
      svg("line", { x1: pad.left, x2: width - pad.right, y1: ty, y2: ty,
        class: `threshold threshold-${metric}` }, root);
    }
  }

  // A gap of several intervals (the plugin was stopped, the machine slept) breaks the line
  // instead of drawing a misleading straight segment across it.
  const maxGap = Math.max(state.interval * 3, 5);
  for (const [key, cls] of [["memory_percent", "line-memory"], ["cpu_percent", "line-cpu"]]) {
    let d = "";
    let prev = null;
    for (const p of points) {
      if (p[key] === null || p[key] === undefined) { prev = null; continue; }
      const cmd = prev === null || p.timestamp - prev > maxGap ? "M" : "L";
      d += `${cmd}${x(p.timestamp).toFixed(1)},${y(p[key]).toFixed(1)}`;
      prev = p.timestamp;
    }
    if (d) svg("path", { d, class: `line ${cls}` }, root);
  }

  box.replaceChildren(root);
  if (!points.length) {
    const empty = document.createElement("p");
    empty.className = "muted chart-empty";
    empty.textContent = "Collecting data…";
    box.appendChild(empty);
  }
}

function describeChart(points) {
  const range = state.rangeMinutes === 60 ? "the last hour" : `the last ${state.rangeMinutes} minutes`;
  const parts = [`CPU and memory use over ${range}.`];
  for (const [key, label] of [["cpu_percent", "CPU"], ["memory_percent", "Memory"]]) {
    const stats = seriesStats(points, key);
    if (stats) {
      parts.push(`${label} now ${stats.now.toFixed(0)}%, average ${stats.avg.toFixed(0)}%, `
        + `peak ${stats.max.toFixed(0)}%.`);
    }
  }
  if (parts.length === 1) parts.push("No data yet.");
  return parts.join(" ");
}

// ---- history ------------------------------------------------------------------------
const POINT_KEYS = ["timestamp", "cpu_percent", "memory_percent", "swap_percent",
  "disk_percent", "disk_read_bps", "disk_write_bps", "net_sent_bps", "net_recv_bps", "load_1"];

function addPoint(sample) {
  const last = state.samples[state.samples.length - 1];
  if (last && sample.timestamp <= last.timestamp) return;
  const point = {};
  for (const key of POINT_KEYS) point[key] = sample[key];
  state.samples.push(point);
  const cutoff = sample.timestamp - HISTORY_SECONDS;
  let drop = 0;
  while (drop < state.samples.length && state.samples[drop].timestamp < cutoff) drop += 1;
  if (drop) state.samples.splice(0, drop);
}

async function loadHistory() {
  const history = await requestJSON("api/history?minutes=60");
  state.samples = history.samples;
  state.interval = history.interval_seconds;
}

// ---- alerts -------------------------------------------------------------------------
async function loadAlerts() {
  const alerts = await requestJSON("api/alerts");
  state.alerts = alerts;
  state.sustain = alerts.sustain_samples;
  state.interval = alerts.interval_seconds;
  const seconds = +(state.sustain * state.interval).toFixed(1);
  $("thresholds-help").textContent = "An alert starts when a figure stays above its "
    + `threshold for ${state.sustain} samples in a row (${seconds} s), and ends when it `
    + "stays at or under it as long. A threshold of 100 never alerts.";
  renderAlerts();
}

function currentValue(metric) {
  return state.latest ? state.latest[`${metric}_percent`] : null;
}

function renderAlerts() {
  const active = $("active-alerts");
  active.replaceChildren();
  if (!state.alerts.active.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = "No active alerts.";
    active.appendChild(none);
  }
  for (const alert of state.alerts.active) {
    const item = document.createElement("article");
    item.className = "alert";
    const title = document.createElement("h3");
    title.textContent = `${alert.label} above ${alert.threshold}%`
      + (alert.judged_by !== alert.threshold ? ` (ends under ${alert.judged_by}% now)` : "");
    const meta = document.createElement("p");
    meta.className = "alert-meta";
    const now = currentValue(alert.metric);
    meta.textContent = `Since ${formatTime(alert.started_at)} `
      + `(${formatDuration(Date.now() / 1000 - alert.started_at)}) · `
      + `peak ${alert.peak.toFixed(1)}%`
      + (now === null ? "" : ` · now ${now.toFixed(1)}%`);
    item.append(title, meta);
    if (alert.suggestions.length) {
      const heading = document.createElement("p");
      heading.className = "suggest-title";
      heading.textContent = "What you can do:";
      const list = document.createElement("ul");
      list.className = "suggestions";
      for (const text of alert.suggestions) {
        const li = document.createElement("li");
        li.textContent = text;
        list.appendChild(li);
      }
      item.append(heading, list);
    }
    active.appendChild(item);
  }

  const recent = $("recent-alerts");
  recent.replaceChildren();
  if (!state.alerts.recent.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = "None in this session.";
    recent.appendChild(none);
    return;
  }
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const label of ["Figure", "Started", "Lasted", "Peak"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = label;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const alert of state.alerts.recent) {
    const row = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = `${alert.label} > ${alert.threshold}%`;
    row.appendChild(th);
    row.insertCell().textContent = formatTime(alert.started_at);
    row.insertCell().textContent = formatDuration(alert.ended_at - alert.started_at);
    row.insertCell().textContent = `${alert.peak.toFixed(1)}%`;
  }
  const scroller = document.createElement("div");
  scroller.className = "table-scroll";
  scroller.tabIndex = 0;
  scroller.setAttribute("role", "region");
  scroller.setAttribute("aria-label", "Recent alerts");
  scroller.appendChild(table);
  recent.appendChild(scroller);
}

function announce(text) {
  // Only alert starts and ends are announced: live figures would flood a screen reader.
  $("announcer").textContent = text;
}

function onAlertEvent(data) {
  const alert = data.alert;
  if (data.kind === "start") announce(`${alert.label} alert: above ${alert.threshold}%.`);
  if (data.kind === "end") announce(`${alert.label} is back under ${alert.judged_by}%.`);
  loadAlerts().catch((err) => showPageError(`Could not load alerts: ${err.message}`));
}

// ---- thresholds form ----------------------------------------------------------------
const form = $("thresholds-form");
let formDirty = false;

function validateThreshold(raw) {
  const text = raw.trim();
  if (text === "") return "Enter a number.";
  const value = Number(text);
  if (!Number.isFinite(value)) return "Enter a number, such as 80.";
  if (value <= 0) return "Must be greater than 0.";
  if (value > 100) return "Must be at most 100.";
  return "";
}

function setFieldError(metric, message) {
  const input = $(`th-${metric}`);
  $(`th-${metric}-error`).textContent = message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

function fillForm(thresholds, force) {
  if (formDirty && !force) return;
  for (const metric of METRICS) {
    $(`th-${metric}`).value = String(thresholds[metric]);
    setFieldError(metric, "");
  }
  formDirty = false;
}

function applyThresholds(thresholds) {
  state.thresholds = thresholds;
  if (state.latest) renderCards(state.latest);
  scheduleChart();
}

form.addEventListener("input", (event) => {
  formDirty = true;
  const metric = event.target.name;
  // Re-check a field already marked wrong as the user fixes it; do not nag while typing.
  if (METRICS.includes(metric) && event.target.getAttribute("aria-invalid") === "true") {
    setFieldError(metric, validateThreshold(event.target.value));
  }
  $("th-status").textContent = "";
});

form.addEventListener("focusout", (event) => {
  const metric = event.target.name;
  if (METRICS.includes(metric)) setFieldError(metric, validateThreshold(event.target.value));
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("th-status");
  const body = {};
  let firstBad = null;
  for (const metric of METRICS) {
    const input = $(`th-${metric}`);
    const message = validateThreshold(input.value);
    setFieldError(metric, message);
    if (message && !firstBad) firstBad = input;
    body[metric] = Number(input.value);
  }
  if (firstBad) {
    status.textContent = "Please correct the marked fields.";
    status.dataset.kind = "error";
    firstBad.focus();
    return;
  }
  const button = $("th-save");
  button.disabled = true;
  status.textContent = "Saving…";
  status.dataset.kind = "";
  try {
    const saved = await requestJSON("api/thresholds", {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    formDirty = false;
    fillForm(saved, true);
    applyThresholds(saved);
    status.textContent = "Saved. The change lasts until the app restarts.";
    status.dataset.kind = "ok";
  } catch (err) {
    const errors = err.body && err.body.errors;
    if (err.status === 422 && errors) {
      for (const [field, message] of Object.entries(errors)) {
        if (METRICS.includes(field)) setFieldError(field, message);
      }
    }
    status.textContent = `Not saved: ${err.message}`;
    status.dataset.kind = "error";
  } finally {
    button.disabled = false;
  }
});

// ---- live updates -------------------------------------------------------------------
let source = null;
let hadError = false;

function setConnection(kind, text) {
  const badge = $("connection");
  badge.className = `badge badge-${kind}`;
  badge.textContent = text;
}

function onSample(sample) {
  state.latest = sample;
  addPoint(sample);
  renderCards(sample);
  scheduleChart();
  if (state.alerts.active.length) renderAlerts();  // keeps "now" and the duration current
}

function connect() {
  // The app's shared live connection (/_app/live/client.js) when the page has it: a
  // stream per open page would use up the browser's connections to the server.
  source = window.plexichatLive ? window.plexichatLive.open("api/stream")
    : new EventSource("api/stream");
  source.addEventListener("open", () => {
    setConnection("live", "Live");
    showPageError("");
    if (hadError) {
      hadError = false;
      // Samples taken while disconnected are only in the server's history.
      Promise.all([loadHistory(), loadAlerts()])
        .then(scheduleChart)
        .catch((err) => showPageError(`Could not reload history: ${err.message}`));
    }
  });
  source.addEventListener("error", () => {
    hadError = true;
    if (source.readyState === EventSource.CLOSED && window.plexichatLive
        && window.plexichatLive.signedOut) {
      // This browser was signed out (the bar at the top links to the sign-in): no retry
      // brings the stream back.
      setConnection("wait", "Signed out");
      source.close();
      return;
    }
    setConnection("wait", "Reconnecting…");
    if (source.readyState === EventSource.CLOSED) {
      // The browser gives up on an HTTP error (e.g. the plugin was disabled); retry anyway.
      source.close();
      setTimeout(connect, RECONNECT_MS);
    }
  });
  source.addEventListener("sample", (event) => onSample(JSON.parse(event.data)));
  source.addEventListener("alert", (event) => onAlertEvent(JSON.parse(event.data)));
  source.addEventListener("thresholds", (event) => {
    const thresholds = JSON.parse(event.data);
    fillForm(thresholds, false);
    applyThresholds(thresholds);
  });
}

$("range").addEventListener("change", (event) => {
  state.rangeMinutes = Number(event.target.value);
  scheduleChart();
});

if (typeof ResizeObserver === "function") {
  new ResizeObserver(scheduleChart).observe($("chart"));
}

async function start() {
  try {
    await loadHistory();
  } catch (err) {
    showPageError(`Could not load history: ${err.message}`);
  }
  try {
    const [thresholds, current] = await Promise.all([
      requestJSON("api/thresholds"), requestJSON("api/current"), loadAlerts(),
    ]);
    fillForm(thresholds, true);
    applyThresholds(thresholds);
    onSample(current);
  } catch (err) {
    showPageError(`Could not load current figures: ${err.message}`);
  }
  scheduleChart();
  connect();
}

start();
