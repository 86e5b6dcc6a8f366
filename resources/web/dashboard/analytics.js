// The analytics page (/tests/analytics): failure patterns, slow tests with suggestions and
// the category breakdown, from /tests/analytics/*; reloaded when a run finishes.

import { api } from "./api.js";
import { LivePage } from "./live.js";
import { Messages, fill, fmtCount, fmtDuration, fmtPercent, h, timeEl } from "./util.js";

const root = document.getElementById("dashboard");
const messages = new Messages(document.getElementById("messages"));
const pluginSelect = document.getElementById("f-plugin");
const categorySelect = document.getElementById("f-category");
const sinceInput = document.getElementById("f-since");

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== undefined) q.set(key, value);
  const text = q.toString();
  return text ? `?${text}` : "";
}

function testLink(pluginId, nodeid) {
  return h("a", { href: `/tests/plugin/${encodeURIComponent(pluginId)}#test=${encodeURIComponent(nodeid)}`,
    title: `${pluginId}::${nodeid}` }, nodeid.split("::").slice(1).join("::") || nodeid);
}

function renderPatterns(patterns) {
  const rows = patterns.map((p) => {
    const tests = p.tests.slice(0, 3).map((t) => {
      const [pluginId, ...rest] = t.split("::");
      return h("li", {}, testLink(pluginId, rest.join("::")));
    });
    if (p.tests_affected > 3) tests.push(h("li", { class: "muted" }, `and ${p.tests_affected - 3} more`));
    const example = p.example && p.example.message
      ? h("div", { class: "muted small failure-msg" }, `Latest: ${p.example.message}`) : null;
    return h("tr", { dataset: { pattern: p.id } },
      h("td", {}, h("code", { class: "signature" }, p.signature), example),
      h("td", { class: "num" }, fmtCount(p.count)),
      h("td", {}, h("ul", { class: "plain" }, ...tests)),
      h("td", {}, timeEl(p.first_seen), h("span", { class: "muted small" }, ` run #${p.first_run_id}`)),
      h("td", {}, timeEl(p.last_seen), h("span", { class: "muted small" }, ` run #${p.last_run_id}`)));
  });
  fill(document.getElementById("patterns"), ...rows);
  document.getElementById("patterns-empty").hidden = rows.length > 0;
}

function evidenceText(evidence) {
  return Object.entries(evidence)
    .filter(([, value]) => typeof value === "number")
    .map(([key, value]) => `${key.replaceAll("_", " ")} ${Number.isInteger(value) ? value : value.toFixed(3)}`)
    .join(", ");
}

function renderDurations(report) {
  fill(document.getElementById("slow"), ...report.slowest_tests.map((t) => h("tr", {},
    h("td", {}, testLink(t.plugin_id, t.nodeid), h("span", { class: "muted small" }, ` ${t.plugin_id}`)),
    h("td", { class: "num" }, fmtDuration(t.median)),
    h("td", { class: "num" }, fmtDuration(t.last)))));
  fill(document.getElementById("slow-plugins"), ...report.slowest_plugins.map((p) =>
    h("li", {}, h("strong", {}, p.plugin_id), ` ${fmtDuration(p.median_run)} per run (median of ${p.runs})`)));
  const findings = [...report.slower, ...report.suggestions].map((f) => h("li", { dataset: { kind: f.kind } },
    h("span", { class: `tag ${f.kind === "slower" ? "flaky" : ""}` }, f.kind.replaceAll("_", " ")), " ",
    f.nodeid.includes("::") ? testLink(f.plugin_id, f.nodeid) : h("code", {}, `${f.plugin_id}/${f.nodeid}`),
    h("div", {}, f.text),
    h("div", { class: "muted small" }, `Evidence: ${evidenceText(f.evidence) || JSON.stringify(f.evidence)}`)));
  fill(document.getElementById("hints"), ...findings);
  document.getElementById("hints-empty").hidden = findings.length > 0;
}

function renderCategories(categories) {
  fill(document.getElementById("cats"), ...Object.entries(categories).map(([name, c]) => {
    const passed = (c.counts.passed || 0) + (c.counts.xfailed || 0) + (c.counts.xpassed || 0);
    const failed = (c.counts.failed || 0) + (c.counts.error || 0) + (c.counts.timed_out || 0) + (c.counts.crashed || 0);
    return h("tr", { dataset: { category: name } },
      h("th", { scope: "row" }, name),
      h("td", { class: "num" }, fmtCount(c.total)),
      h("td", { class: "num" }, fmtCount(passed)),
      h("td", { class: "num" }, fmtCount(failed)),
      h("td", { class: "num" }, c.success_rate === null ? "–" : fmtPercent(c.success_rate)),
      h("td", { class: "num" }, fmtDuration(c.mean_duration)));
  }));
}

async function refresh() {
  const plugin = pluginSelect.value;
  const category = categorySelect.value;
  const since = sinceInput.value.trim();
  const [live, failures, durations, categories] = await Promise.all([
    api("/tests/live-updates"),
    api(`/tests/analytics/failures${query({ plugin_name: plugin, category, new_since_run: since })}`),
    api(`/tests/analytics/durations${query({ plugin_name: plugin })}`),
    api(`/tests/analytics/categories${query({ plugin_name: plugin })}`),
  ]);
  renderPatterns(failures.patterns);
  renderDurations(durations);
  renderCategories(categories.categories);
  page.debug.snapshots += 1;
  return live.last_event_id;
}

function applyEvent(topic, data, replay = false) {
  if (!replay) page.debug.events += 1;
  if (topic === "tests.run_finished" && !replay) page.refreshSoon();
}

const page = new LivePage({ root, messages, refresh, applyEvent });
for (const el of [pluginSelect, categorySelect, sinceInput]) {
  el.addEventListener("change", () => {
    const params = query({ plugin: pluginSelect.value });
    history.replaceState(null, "", `/tests/analytics${params}`);
    page.refreshSoon();
  });
}
document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
page.start();
