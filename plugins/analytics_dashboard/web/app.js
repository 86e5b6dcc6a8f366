// Analytics Dashboard page: KPI cards, a trend chart, reports, alert rules and
// subscriptions. Charts are Vega-Lite through the app's vendored, CSP-safe bundle.
import {renderChart} from "/_app/vendor/charts.js";

const $ = (id) => document.getElementById(id);
const state = {
  days: Number(localStorage.getItem("analytics.days")) || 30,
  metric: localStorage.getItem("analytics.metric") || "messages",
  report: localStorage.getItem("analytics.report") || "activity",
  status: null, overview: null, rules: [],
};
// Each loader numbers its requests; an answer that is no longer the newest (the period or
// the metric changed while it was on its way) is dropped instead of drawn over a newer one.
const latest = {};
const ticket = (name) => (latest[name] = (latest[name] || 0) + 1);
const stale = (name, n) => latest[name] !== n;
// Chart colours follow the page's theme (the CSS variables of style.css).
function colors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {bar: v("--blue", "#3563e9"), average: v("--accent", "#1f7a63"),
          anomaly: v("--bad", "#d64545"), forecast: v("--warn", "#c77c02"),
          previous: v("--muted", "#5d6779")};
}

// -- helpers ------------------------------------------------------------------------------
async function api(path, options = {}) {
  const response = await fetch(`api/${path}`, {
    headers: {"Content-Type": "application/json"}, ...options});
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const error = new Error(describe(body, response.status));
    error.status = response.status;
    error.body = body || {};
    throw error;
  }
  return body;
}

function describe(body, status) {
  if (!body) return `HTTP ${status}`;
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    return body.detail.map((d) => {
      const where = (d.loc || []).filter((p) => p !== "body" && p !== "query").join(".");
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  return `HTTP ${status}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showError(message) {
  const box = $("page-error");
  box.hidden = !message;
  box.textContent = message || "";
}

const when = (ts) => new Date(ts * 1000).toLocaleString(undefined, {
  dateStyle: "medium", timeStyle: "short"});
const number = (v) => (typeof v === "number" ? v.toLocaleString(undefined, {
  maximumFractionDigits: 1}) : v === null || v === undefined ? "–" : String(v));
const bytes = (n) => {
  if (typeof n !== "number") return number(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toLocaleString(undefined, {maximumFractionDigits: i ? 1 : 0})} ${units[i]}`;
};
const cell = (name, value) => (name.includes("bytes") ? bytes(value) : number(value));
const label = (key) => (state.status?.metrics.find((m) => m.key === key) || {label: key}).label;

// -- status, period, tabs -------------------------------------------------------------------
async function loadStatus() {
  const status = await api("status");
  state.status = status;
  const who = $("who");
  if (!status.signed_in) {
    who.textContent = "Not signed in";
    who.className = "badge badge-bad";
    $("period-text").textContent = "No figures until you sign in.";
    showError("");
    const box = $("page-error");
    box.hidden = false;
    box.replaceChildren("Not signed in to PlexiChat. ",
      el("a", {href: "/plugins/api_integration_layer/", text: "Sign in on the API Integration page"}),
      ", then press Refresh.");
    // The trend card says what it waits for (it was a blank chart under a heading).
    $("trend-words").textContent = "The daily trend shows here once you are signed in.";
    $("trend-chart").replaceChildren();
    $("trend-legend").textContent = "";
    $("anomalies").replaceChildren();
    $("anomalies-title").hidden = true;
  } else {
    who.textContent = `${status.user.username}${status.is_admin ? " · administrator" : ""}`;
    who.className = "badge badge-live";
  }
  fillSelect($("trend-metric"), status.metrics.filter((m) => m.series), state.metric);
  fillSelect($("rule-metric"), status.metrics, "failed_logins");
  const reports = status.reports.map((r) => ({key: r.type, label:
    r.type.replace("_", " ") + (r.admin_only ? " (administrators)" : "")}));
  fillSelect($("report-type"), reports, state.report);
  fillSelect($("sub-report"), reports, "activity");
  return status;
}

function fillSelect(select, items, chosen) {
  select.replaceChildren(...items.map((i) => el("option", {value: i.key, text: i.label})));
  if (items.some((i) => i.key === chosen)) select.value = chosen;
}

function setPeriod(days) {
  state.days = days;
  localStorage.setItem("analytics.days", String(days));
  for (const button of document.querySelectorAll(".seg")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.days) === days));
  }
}

function showView(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
    $(`view-${tab.dataset.view}`).hidden = !on;
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "reports") loadReport().catch(report_failed);
  if (name === "alerts") loadAutomation().catch((e) => showError(e.message));
  if (name === "overview") loadTrend().catch((e) => showError(e.message));
}

function report_failed(error) { showError(error.message); }

// -- overview ---------------------------------------------------------------------------
async function loadOverview(fresh = false) {
  const n = ticket("overview");
  const data = await api(`overview?days=${state.days}${fresh ? "&fresh=true" : ""}`);
  if (stale("overview", n)) return;
  state.overview = data;
  const since = data.since ? data.since.slice(0, 10) : "?";
  const before = data.previous_since ? data.previous_since.slice(0, 10) : "?";
  $("period-text").textContent = `Last ${data.days} days (UTC) from ${since}, each compared ` +
    `with the ${data.days} days from ${before}. Figures of ` +
    // The server's time of the figures: cached ones were labelled with the page's clock.
    `${(data.generated_at ? new Date(data.generated_at) : new Date()).toLocaleTimeString()}.`;
  $("kpis").replaceChildren(...data.kpis.map(kpiCard));
}

function kpiCard(k) {
  const chipClass = k.good === true ? "chip good" : k.good === false ? "chip bad" : "chip";
  // The delivery rate has no daily series; its card shows the failed deliveries' trend.
  const seriesKey = k.key === "webhook_delivery_rate" ? "webhook_failed" : k.key;
  const card = el("button", {type: "button", class: "kpi", title: `${k.label}: ${k.help}`,
                             "aria-pressed": String(seriesKey === state.metric),
                             "data-metric": seriesKey || ""},
    el("span", {class: "label", text: k.label}),
    el("span", {class: "value", text: k.value_text}),
    el("span", {class: chipClass, text: k.change_text,
                title: k.change === null ? `n/a: ${k.why}` : k.why}),
    el("span", {class: "vs", text: `previous: ${k.previous_text}`}));
  card.addEventListener("click", () => {
    $("trend-metric").value = seriesKey;
    chooseMetric(seriesKey);
  });
  return card;
}

function chooseMetric(key) {
  state.metric = key;
  localStorage.setItem("analytics.metric", key);
  for (const card of document.querySelectorAll(".kpi")) {
    card.setAttribute("aria-pressed", String(card.dataset.metric === key));
  }
  loadTrend().catch((e) => showError(e.message));
}

async function loadTrend(fresh = false) {
  const forecast = $("trend-forecast").checked ? state.status?.settings?.forecast_days || 14 : 0;
  const compare = $("trend-compare").checked;
  const n = ticket("trend");
  const data = await api(`trends?days=${state.days}&metrics=${state.metric}` +
                         `&forecast=${forecast}&compare=${compare}${fresh ? "&fresh=true" : ""}`);
  if (stale("trend", n)) return;
  const trend = data.metrics[state.metric];
  const change = trend.summary.change === null ? "n/a (nothing in the first half)"
    : `${(trend.summary.change * 100).toFixed(0)} %`;
  $("trend-words").textContent = trend.summary.words;
  const summary = trend.summary;
  const versus = summary.change_vs_previous;
  // Distinct users of each day do not add up: such a metric is told by its average day.
  const amount = (total, mean) => (summary.summable ? `total ${number(total)}`
    : `${number(mean)} a day on average`);
  const previous = compare && summary.previous_mean !== null
    ? ` · grey dotted: the same average ${data.days} days earlier (` +
      `${amount(summary.previous_total, summary.previous_mean)}; this period ` +
      `${versus === null ? "n/a: nothing before" : `${versus > 0 ? "+" : ""}${(versus * 100).toFixed(0)} %`})`
    : "";
  $("trend-legend").textContent =
    `Bars: ${trend.unit} per UTC day · line: ${trend.window}-day moving average${previous} · ` +
    `red dots: unusual days (robust z beyond ±${data.threshold}) · change first → second ` +
    `half: ${change} · ${amount(summary.total, summary.mean_per_day)}` +
    (forecast ? ` · amber: forecast with its 95 % band. ${trend.forecast_note || ""}` : "");
  // Newest first: the day someone asks about is usually a recent one.
  const list = trend.anomalies.slice().reverse().map((a) => el("li", {class: a.direction,
                                                                       text: a.explanation}));
  $("anomalies-title").hidden = false;
  $("anomalies").replaceChildren(...(list.length ? list : [el("li", {class: "none",
    text: `No unusual day in this period: every day is within ±${data.threshold} robust ` +
          "standard deviations of the median of the days before it."})]));
  await renderChart($("trend-chart"), trendSpec(trend));
}

function trendSpec(trend) {
  const COLORS = colors();
  // A UTC time unit formats its labels in UTC by itself ("formatType: utc" was taken for
  // a custom type, warned about and dropped with the format).
  const x = {field: "date", type: "temporal", timeUnit: "utcyearmonthdate", title: null,
             axis: {labelOverlap: true, format: "%d %b"}};
  // Lines and dots on the middle of their day's bar (they sat on its left edge).
  const xMid = {...x, bandPosition: 0.5};
  const y = {type: "quantitative", title: trend.unit};
  const tooltip = [{field: "date", type: "temporal", timeUnit: "utcyearmonthdate", title: "day"},
                   {field: "count", type: "quantitative", title: trend.unit},
                   {field: "previous", type: "quantitative", title: "same day, period before"},
                   {field: "average", type: "quantitative", title: "moving average",
                    format: ".1f"}];
  const layers = [];
  if (trend.forecast.length) {
    layers.push(
      {data: {values: trend.forecast}, mark: {type: "area", color: COLORS.forecast, opacity: 0.18},
       encoding: {x: xMid, y: {...y, field: "lower"}, y2: {field: "upper"}}},
      {data: {values: trend.forecast}, mark: {type: "line", color: COLORS.forecast,
                                                strokeDash: [5, 3]},
       encoding: {x: xMid, y: {...y, field: "value"},
                  tooltip: [{field: "date", type: "temporal", timeUnit: "utcyearmonthdate",
                             title: "forecast day"},
                            {field: "value", title: "forecast", format: ".1f"},
                            {field: "lower", title: "low", format: ".1f"},
                            {field: "upper", title: "high", format: ".1f"}]}});
  }
  layers.push(
    {mark: {type: "bar", color: COLORS.bar, opacity: 0.45},
     encoding: {x, y: {...y, field: "count"}, tooltip}});
  if (trend.points.some((p) => p.previous !== null)) {
    // The previous period's moving average: its raw days would hide this period's bars.
    layers.push({transform: [{filter: {field: "previous_average", valid: true}}],
                 mark: {type: "line", color: COLORS.previous, strokeWidth: 2, strokeDash: [2, 2]},
                 encoding: {x: xMid, y: {...y, field: "previous_average"}}});
  }
  layers.push(
    {transform: [{filter: {field: "average", valid: true}}],
     mark: {type: "line", color: COLORS.average, strokeWidth: 2},
     encoding: {x: xMid, y: {...y, field: "average"}}},
    {transform: [{filter: {field: "anomaly", oneOf: ["up", "down"]}}],
     mark: {type: "point", filled: true, size: 90, color: COLORS.anomaly},
     encoding: {x: xMid, y: {...y, field: "count"}, tooltip}});
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: "container", height: 260, data: {values: trend.points}, layer: layers,
  };
}

// -- reports ----------------------------------------------------------------------------
async function loadReport(fresh = false) {
  const type = $("report-type").value || state.report;
  state.report = type;
  localStorage.setItem("analytics.report", type);
  const base = `api/reports/${type}/export?days=${state.days}`;
  const note = $("report-note");
  note.hidden = true;
  for (const [id, fmt] of [["export-csv", "csv"], ["export-pdf", "pdf"]]) {
    const link = $(id);
    link.href = `${base}&format=${fmt}`;
    link.classList.remove("disabled");
    link.removeAttribute("aria-disabled");
  }
  // Known to be refused: say so without asking (the server would answer 403 anyway).
  const info = state.status?.reports.find((r) => r.type === type);
  if (info && info.admin_only && state.status.is_admin === false) {
    adminNeeded(type);
    return;
  }
  let data;
  const n = ticket("report");
  try {
    data = await api(`reports/${type}?days=${state.days}${fresh ? "&fresh=true" : ""}`);
    if (stale("report", n)) return;
  } catch (error) {
    if (error.body && error.body.admin_needed) {
      adminNeeded(type);
      return;
    }
    throw error;
  }
  $("report-title").textContent = `${data.title} · last ${data.period_days} days`;
  $("report-summary").textContent = Object.entries(data.summary)
    .map(([k, v]) => `${k.replaceAll("_", " ")}: ${typeof v === "object" && v !== null
      ? Object.entries(v).map(([a, b]) => `${a} ${number(b)}`).join(", ") || "–"
      : cell(k, v)}`).join(" · ");
  renderTable(data.columns, data.rows);
  const rows = data.rows.map((r) => Object.fromEntries(data.columns.map((c, i) => [c, r[i]])));
  if (!rows.length || !data.chart.y.length) {
    $("report-chart").replaceChildren(el("p", {class: "muted", text: "Nothing to chart in this period."}));
    return;
  }
  await renderChart($("report-chart"), reportSpec(data, rows));
}

function adminNeeded(type) {
  const note = $("report-note");
  const user = state.status?.user?.username || "this account";
  note.replaceChildren(el("strong", {text: "Administrator needed"}),
    `The ${type.replace("_", " ")} report names individual users, so PlexiChat shows it to ` +
    `its administrator only. You are signed in as ${user}. Every other report works as usual.`);
  note.hidden = false;
  $("report-title").textContent = type.replace("_", " ");
  $("report-summary").textContent = "";
  $("report-chart").replaceChildren();
  $("report-table").replaceChildren();
  for (const id of ["export-csv", "export-pdf"]) {
    $(id).classList.add("disabled");
    $(id).setAttribute("aria-disabled", "true");
    $(id).removeAttribute("href");
  }
}

function renderTable(columns, rows) {
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  const head = el("tr", {}, ...columns.map((c, i) => el("th", {class: numeric[i] ? "num" : null,
                                                                 text: c.replaceAll("_", " ")})));
  const body = rows.map((r) => el("tr", {}, ...r.map((v, i) => el("td", {
    class: numeric[i] ? "num" : null, text: cell(columns[i], v),
    title: columns[i].includes("bytes") ? `${number(v)} bytes` : null}))));
  if (!rows.length) body.push(el("tr", {}, el("td", {colspan: String(columns.length),
                                                       class: "muted", text: "No rows in this period."})));
  $("report-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

function reportSpec(data, source) {
  // Column names as people read them ("new users"), for the axes and the legend.
  const pretty = (name) => name.replaceAll("_", " ");
  const rows = source.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [pretty(k), v])));
  const x = pretty(data.chart.x);
  const y = data.chart.y.map(pretty);
  const mark = data.chart.mark;
  const temporal = data.chart.x === "date";
  const xEnc = temporal
    ? {field: x, type: "temporal", timeUnit: "utcyearmonthdate", title: null,
       axis: {format: "%d %b", labelOverlap: true}}
    // The server's order (most first, hours in order) is the order to read them in.
    : {field: x, type: "ordinal", title: x, sort: null, axis: {labelAngle: -40}};
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: "container", height: 240, data: {values: rows},
    transform: [{fold: y, as: ["series", "value"]}],
    mark: {type: mark, tooltip: true, ...(mark === "line" ? {point: false, strokeWidth: 2} : {})},
    encoding: {
      x: xEnc,
      y: {field: "value", type: "quantitative", title: y.length === 1 ? y[0] : null,
          // Side by side, not stacked: messages and files are not parts of one total.
          ...(mark === "bar" && y.length > 1 ? {stack: null} : {})},
      ...(mark === "bar" && y.length > 1 ? {xOffset: {field: "series", type: "nominal"}} : {}),
      color: {field: "series", type: "nominal", title: null, scale: {domain: y},
              legend: y.length > 1 ? {orient: "top"} : null},
    },
  };
}

// -- alerts and subscriptions -----------------------------------------------------------
async function loadAutomation() {
  const [rules, subs, events, files] = await Promise.all([
    api("rules"), api("subscriptions"), api("events?limit=40"), api("files")]);
  state.rules = rules.rules;
  $("rules-note").textContent = `Checked every ${rules.check_every_minutes} minutes and ` +
    "on Check now; a rule sends when it fires and when it resolves, never while it stays the same.";
  $("rules").replaceChildren(...(rules.rules.length ? rules.rules.map(ruleItem)
    : [el("li", {class: "muted", text: "No rules yet."})]));
  $("subscriptions").replaceChildren(...(subs.subscriptions.length
    ? subs.subscriptions.map(subItem) : [el("li", {class: "muted", text: "No subscriptions yet."})]));
  $("events").replaceChildren(...(events.events.length ? events.events.map(eventItem)
    : [el("li", {class: "muted", text: "Nothing yet: fires, resolutions and reports show here."})]));
  $("files").replaceChildren(...(files.files.length ? files.files.map((f) => el("li", {},
    el("time", {text: when(f.modified)}),
    el("a", {href: `api/files/${encodeURIComponent(f.name)}`, download: f.name, text: f.name}),
    ` (${(f.size / 1024).toFixed(1)} KiB)`)) : [el("li", {class: "muted", text: "No reports kept yet."})]));
  updateFiring();
}

function updateFiring(count = null) {
  const firing = count ?? state.rules.filter((r) => r.enabled && r.state.status === "firing").length;
  const badge = $("firing-count");
  badge.hidden = firing === 0;
  badge.textContent = String(firing);
  badge.title = `${firing} rule(s) firing`;
}

function ruleItem(rule) {
  const status = !rule.enabled ? "off" : rule.state.status;
  const channel = rule.channel === "webhook" ? `webhook ${new URL(rule.webhook_url).host}` : "notification";
  const lines = [rule.state.last_message || "Not checked yet.",
                 `Sends to: ${channel}; cooldown ${rule.cooldown_minutes} min.`];
  if (rule.state.last_checked_at) lines.push(`Last check ${when(rule.state.last_checked_at)}.`);
  if (rule.state.last_error) lines.push(`Problem: ${rule.state.last_error}`);
  if (rule.channel === "webhook") lines.push(`Signing secret: ${rule.secret}`);
  return el("li", {},
    el("div", {}, el("span", {class: "title", text: rule.name}),
       el("span", {class: `state ${status}`, text: status === "off" ? "paused" : status}),
       el("div", {class: "muted small-text", text: `When ${rule.condition}`})),
    el("div", {class: "actions"},
       button("Test", async (b) => {
         b.disabled = true;
         try {
           await api(`rules/${rule.id}/test`, {method: "POST"});
           b.textContent = "Sent ✓";
         } catch (error) { showError(`Test of “${rule.name}”: ${error.message}`); b.disabled = false; }
       }),
       button("Edit", () => editRule(rule)),
       button(rule.enabled ? "Pause" : "Resume", () => saveRule(rule, {enabled: !rule.enabled})),
       button("Delete", () => remove(`rules/${rule.id}`, `Delete the rule “${rule.name}”?`))),
    el("div", {class: "detail", text: lines.join(" ")}));
}

function subItem(sub) {
  const status = !sub.enabled ? "off" : sub.last_status === "failed" ? "failed" : "ok";
  const lines = [`${sub.report.replace("_", " ")} over ${sub.days} days as ${sub.format.toUpperCase()}, ` +
                 `schedule “${sub.schedule}”, next ${when(sub.next_run_at)}.`];
  if (sub.last_run_at) lines.push(`Last run ${when(sub.last_run_at)}: ${sub.last_status}` +
                                  (sub.last_error ? ` (${sub.last_error})` : "") + ".");
  if (sub.channel === "webhook") lines.push(`Signing secret: ${sub.secret}`);
  const item = el("li", {},
    el("div", {}, el("span", {class: "title", text: sub.name}),
       el("span", {class: `state ${status}`, text: status === "off" ? "paused" : status === "ok" ? "active" : "failing"})),
    el("div", {class: "actions"},
       button("Run now", async (b) => {
         b.disabled = true;
         try { await api(`subscriptions/${sub.id}/run`, {method: "POST"}); }
         catch (error) { showError(error.message); }
         await loadAutomation();
       }),
       button(sub.enabled ? "Pause" : "Resume", () => saveSubscription(sub, {enabled: !sub.enabled})),
       button("Delete", () => remove(`subscriptions/${sub.id}`, `Delete the subscription “${sub.name}” and the reports it kept?`))),
    el("div", {class: "detail", text: lines.join(" ")}));
  if (sub.last_file) {
    item.querySelector(".detail").append(" ", el("a", {
      href: `api/files/${encodeURIComponent(sub.last_file)}`, download: sub.last_file,
      text: "Latest file"}));
  }
  return item;
}

function eventItem(event) {
  const kind = event.kind.replace("alert.", "").replace("report.", "report ");
  const css = event.kind.split(".").pop();
  const extra = [];
  if (event.note) extra.push(event.note);
  if (event.delivered === false) extra.push(`not delivered: ${event.delivery_error}`);
  return el("li", {}, el("time", {text: when(event.at)}),
            el("span", {class: `kind ${css}`, text: kind}),
            event.rule_name ? `${event.rule_name}: ` : "", event.message,
            extra.length ? el("span", {class: "muted", text: ` (${extra.join("; ")})`}) : null);
}

function button(text, action) {
  const node = el("button", {type: "button", class: "small ghost", text});
  node.addEventListener("click", () => action(node));
  return node;
}

async function remove(path, question) {
  if (!confirm(question)) return;
  try { await api(path, {method: "DELETE"}); } catch (error) { showError(error.message); }
  await loadAutomation();
}

// Fill the rule form with a rule; saving it then changes that rule (its state is kept, so
// a changed threshold resolves or fires at the next check, as a transition).
function editRule(rule) {
  const form = $("rule-form");
  form.reset();
  for (const field of form.elements) {
    if (!field.name || !(field.name in rule) || rule[field.name] === null) continue;
    field.value = String(rule[field.name]);
  }
  const anomaly = rule.kind === "anomaly";
  document.querySelector(".when-threshold").hidden = anomaly;
  document.querySelector(".when-anomaly").hidden = !anomaly;
  const url = form.querySelector(".webhook-url");
  url.hidden = rule.channel !== "webhook";
  url.required = !url.hidden;
  form.dataset.editing = rule.id;
  form.dataset.enabled = String(rule.enabled);
  form.querySelector('button[type="submit"]').textContent = "Save rule";
  $("rule-box").querySelector("summary").textContent = `Edit “${rule.name}”`;
  $("rule-box").open = true;
  $("rule-name").focus();
}

function stopEditing(form) {
  delete form.dataset.editing;
  form.querySelector('button[type="submit"]').textContent = "Add rule";
  $("rule-box").querySelector("summary").textContent = "New alert rule";
}

async function saveRule(rule, change) {
  const fields = ["name", "metric", "kind", "operator", "value", "window_days", "direction",
                  "sensitivity", "channel", "webhook_url", "cooldown_minutes", "enabled"];
  const body = Object.fromEntries(fields.map((f) => [f, rule[f]]));
  try {
    await api(`rules/${rule.id}`, {method: "PUT", body: JSON.stringify({...body, ...change})});
  } catch (error) { showError(error.message); }
  await loadAutomation();
}

async function saveSubscription(sub, change) {
  const fields = ["name", "report", "days", "format", "schedule", "channel", "webhook_url",
                  "upload", "enabled"];
  const body = Object.fromEntries(fields.map((f) => [f, sub[f]]));
  try {
    await api(`subscriptions/${sub.id}`, {method: "PUT", body: JSON.stringify({...body, ...change})});
  } catch (error) { showError(error.message); }
  await loadAutomation();
}

function formBody(form, numbers) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.closest("[hidden]") || field.hidden) continue;
    if (field.type === "checkbox") body[field.name] = field.checked;
    else if (field.value !== "") body[field.name] = numbers.includes(field.name) ? Number(field.value) : field.value;
  }
  return body;
}

function wireForm(form, path, numbers, done) {
  const status = form.querySelector(".form-status");
  for (const channel of form.querySelectorAll(".channel")) {
    const url = form.querySelector(".webhook-url");
    channel.addEventListener("change", () => { url.hidden = channel.value !== "webhook"; url.required = !url.hidden; });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "Saving…";
    try {
      const body = formBody(form, numbers);
      if (form.dataset.editing) {
        body.enabled = form.dataset.enabled !== "false";
        await api(`${path}/${form.dataset.editing}`, {method: "PUT", body: JSON.stringify(body)});
        stopEditing(form);
      } else {
        await api(path, {method: "POST", body: JSON.stringify(body)});
      }
      status.textContent = "Saved.";
      form.reset();
      // The fields shown depend on the selects (rule kind, channel): show the defaults'.
      for (const select of form.querySelectorAll("select")) select.dispatchEvent(new Event("change"));
      for (const url of form.querySelectorAll(".webhook-url")) url.hidden = true;
      done();
      await loadAutomation();
    } catch (error) {
      status.textContent = error.message;
    }
  });
}

// -- live ---------------------------------------------------------------------------------
// A rule checked on its schedule, a report sent or a change from another window: the
// server says so at once, and the open views follow.
function connect() {
  const source = window.plexichatLive ? window.plexichatLive.open("api/stream")
    : new EventSource("api/stream");
  source.addEventListener("automation", (event) => {
    const data = JSON.parse(event.data);
    updateFiring(data.firing);
    if (data.why !== "connected" && !$("view-alerts").hidden) {
      loadAutomation().catch((e) => showError(e.message));
    }
  });
}

// -- start --------------------------------------------------------------------------------
async function refresh(fresh = false) {
  showError("");
  try {
    const status = await loadStatus();
    if (!status.signed_in) return;
    await loadOverview(fresh);
    const view = (location.hash || "#overview").slice(1);
    if (view === "overview") await loadTrend(fresh);
    else if (view === "reports") await loadReport(fresh);
    else await loadAutomation();
    if (view !== "alerts") {
      const rules = await api("rules");
      state.rules = rules.rules;
      updateFiring();
    }
  } catch (error) {
    showError(error.message);
  }
}

function start() {
  setPeriod([7, 30, 90, 365].includes(state.days) ? state.days : 30);
  for (const button of document.querySelectorAll(".seg")) {
    button.addEventListener("click", () => { setPeriod(Number(button.dataset.days)); refresh(); });
  }
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  $("refresh").addEventListener("click", () => refresh(true));
  $("trend-metric").addEventListener("change", (e) => chooseMetric(e.target.value));
  $("trend-forecast").addEventListener("change", () => loadTrend().catch((e) => showError(e.message)));
  $("trend-compare").addEventListener("change", () => loadTrend().catch((e) => showError(e.message)));
  $("report-type").addEventListener("change", () => loadReport().catch(report_failed));
  $("rule-kind").addEventListener("change", (e) => {
    const anomaly = e.target.value === "anomaly";
    document.querySelector(".when-threshold").hidden = anomaly;
    document.querySelector(".when-anomaly").hidden = !anomaly;
  });
  $("check-now").addEventListener("click", async () => {
    $("check-now").disabled = true;
    try { await api("rules/check", {method: "POST"}); } catch (error) { showError(error.message); }
    $("check-now").disabled = false;
    await loadAutomation();
  });
  wireForm($("rule-form"), "rules", ["value", "window_days", "sensitivity", "cooldown_minutes"],
           () => { $("rule-box").open = false; });
  wireForm($("sub-form"), "subscriptions", ["days"], () => { $("sub-box").open = false; });
  const view = (location.hash || "#overview").slice(1);
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.dataset.view === (["overview", "reports", "alerts"].includes(view) ? view : "overview");
    tab.setAttribute("aria-selected", String(on));
    $(`view-${tab.dataset.view}`).hidden = !on;
  }
  window.addEventListener("hashchange", () => showView((location.hash || "#overview").slice(1)));
  refresh();
  connect();
  // Figures change slowly; a refresh every 5 minutes keeps an open tab current.
  setInterval(() => { if (!document.hidden) refresh(); }, 300000);
}

start();
