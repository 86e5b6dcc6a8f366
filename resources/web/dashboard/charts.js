// Inline SVG charts: a sparkline of a plugin's last runs, and per-day history charts.
// Colours come from CSS classes (dashboard.css), so light and dark themes both apply.

import { fmtDuration, fmtPercent, label } from "./util.js";

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

function title(text) {
  const t = s("title");
  t.textContent = text;
  return t;
}

/** One bar per finished run, oldest left: height = its success rate, colour = its status. */
export function sparkline(runs, { width = 132, height = 28, slots = 20 } = {}) {
  const svg = s("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img" });
  if (!runs.length) {
    svg.setAttribute("aria-label", "No runs yet");
    svg.append(s("line", { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5,
      class: "spark-base" }));
    return svg;
  }
  const gap = 2;
  const barW = Math.max(2, (width - gap * (slots - 1)) / slots);
  const offset = (slots - runs.length) * (barW + gap);
  let passed = 0;
  runs.forEach((run, i) => {
    const rate = run.success_rate;
    if (run.status === "passed") passed += 1;
    const barH = rate === null ? 3 : Math.max(3, rate * (height - 2));
    const x = offset + i * (barW + gap);
    const when = run.finished_at ? new Date(run.finished_at * 1000).toLocaleString() : "";
    svg.append(s("rect", { x: x.toFixed(1), y: (height - barH).toFixed(1),
      width: barW.toFixed(1), height: barH.toFixed(1), rx: 1, class: `bar s-${run.status}` },
    title(`Run #${run.id}: ${label(run.status)}, ${fmtPercent(rate)} of ${run.total} ` +
      `tests passed${when ? ` (${when})` : ""}`)));
  });
  svg.setAttribute("aria-label", `Last ${runs.length} runs: ${passed} passed, ` +
    `${runs.length - passed} did not; newest ${label(runs[runs.length - 1].status)}`);
  return svg;
}

const PAD = { left: 44, right: 10, top: 10, bottom: 26 };

function frame(width, height, caption) {
  return s("svg", { class: "chart-svg", viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": caption });
}

function dayLabel(day) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

function xAxis(svg, days, x, height, width) {
  const every = Math.max(1, Math.ceil(days.length / 7));
  days.forEach((row, i) => {
    if (i % every !== 0 && i !== days.length - 1) return;
    const text = s("text", { x: x(i).toFixed(1), y: height - 8, class: "axis",
      "text-anchor": i === days.length - 1 ? "end" : "middle" });
    text.textContent = dayLabel(row.day);
    svg.append(text);
  });
  svg.append(s("line", { x1: PAD.left, x2: width - PAD.right, y1: height - PAD.bottom,
    y2: height - PAD.bottom, class: "grid-line" }));
}

function yGrid(svg, ticks, y, width, format) {
  for (const value of ticks) {
    const yy = y(value);
    svg.append(s("line", { x1: PAD.left, x2: width - PAD.right, y1: yy, y2: yy,
      class: "grid-line faint" }));
    const text = s("text", { x: PAD.left - 6, y: yy + 4, class: "axis", "text-anchor": "end" });
    text.textContent = format(value);
    svg.append(text);
  }
}

/** Pass rate per day: a line over days with results (gaps where none), dots coloured by
 * whether the day was all green. */
export function rateChart(daily, { width = 560, height = 180 } = {}) {
  const withData = daily.filter((d) => d.success_rate !== null);
  const svg = frame(width, height, withData.length
    ? `Pass rate per day over ${daily.length} days: lowest ${fmtPercent(Math.min(...withData.map((d) => d.success_rate)))}, ` +
      `latest ${fmtPercent(withData[withData.length - 1].success_rate)}`
    : `No results in the last ${daily.length} days`);
  const innerW = width - PAD.left - PAD.right;
  const innerH = height - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (daily.length === 1 ? innerW / 2 : (i * innerW) / (daily.length - 1));
  const y = (v) => PAD.top + (1 - v) * innerH;
  yGrid(svg, [0, 0.5, 1], y, width, (v) => `${v * 100}%`);
  xAxis(svg, daily, x, height, width);
  let path = "";
  let area = "";
  let open = false;
  let segStart = 0;
  daily.forEach((d, i) => {
    if (d.success_rate === null) {
      if (open) area += `L${x(i - 1).toFixed(1)},${y(0)}L${x(segStart).toFixed(1)},${y(0)}Z`;
      open = false;
      return;
    }
    const cmd = open ? "L" : "M";
    if (!open) segStart = i;
    path += `${cmd}${x(i).toFixed(1)},${y(d.success_rate).toFixed(1)}`;
    area += `${cmd}${x(i).toFixed(1)},${y(d.success_rate).toFixed(1)}`;
    open = true;
  });
  if (open) area += `L${x(daily.length - 1).toFixed(1)},${y(0)}L${x(segStart).toFixed(1)},${y(0)}Z`;
  if (area) svg.append(s("path", { d: area, class: "rate-area" }));
  if (path) svg.append(s("path", { d: path, class: "rate-line", fill: "none" }));
  daily.forEach((d, i) => {
    if (d.success_rate === null) return;
    svg.append(s("circle", { cx: x(i).toFixed(1), cy: y(d.success_rate).toFixed(1), r: 3.2,
      class: d.failed ? "dot dot-bad" : "dot dot-ok" },
    title(`${dayLabel(d.day)}: ${fmtPercent(d.success_rate)} passed (${d.passed} of ` +
      `${d.passed + d.failed}; ${d.skipped} skipped)`)));
  });
  return svg;
}

/** Mean test duration per day, as bars. */
export function durationChart(daily, { width = 560, height = 180 } = {}) {
  const values = daily.map((d) => d.mean_duration);
  const max = Math.max(0, ...values.filter((v) => v !== null));
  const svg = frame(width, height, max
    ? `Mean test duration per day over ${daily.length} days, up to ${fmtDuration(max)}`
    : `No results in the last ${daily.length} days`);
  const innerW = width - PAD.left - PAD.right;
  const innerH = height - PAD.top - PAD.bottom;
  const top = niceCeil(max || 1);
  const slot = innerW / daily.length;
  const x = (i) => PAD.left + slot * (i + 0.5);
  const y = (v) => PAD.top + (1 - v / top) * innerH;
  yGrid(svg, [0, top / 2, top], y, width, (v) => fmtDuration(v).replace(" ", "\u202f"));
  xAxis(svg, daily, x, height, width);
  daily.forEach((d, i) => {
    if (d.mean_duration === null) return;
    const barH = Math.max(1.5, innerH - (y(d.mean_duration) - PAD.top));
    const w = Math.max(2, slot * 0.7);
    svg.append(s("rect", { x: (x(i) - w / 2).toFixed(1), y: (PAD.top + innerH - barH).toFixed(1),
      width: w.toFixed(1), height: barH.toFixed(1), rx: 1.5, class: "duration-bar" },
    title(`${dayLabel(d.day)}: mean ${fmtDuration(d.mean_duration)} over ${d.total} results`)));
  });
  return svg;
}

function niceCeil(v) {
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}
