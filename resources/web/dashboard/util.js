// Small DOM and formatting helpers shared by the dashboard pages.

export const SUCCESS = new Set(["passed", "xfailed", "xpassed"]);
export const BAD = new Set(["failed", "error", "timed_out", "crashed"]);

const LABELS = {
  passed: "passed", failed: "failed", error: "error", skipped: "skipped",
  xfailed: "xfailed", xpassed: "xpassed", timed_out: "timed out", crashed: "crashed",
  not_run: "not run", running: "running", queued: "queued", no_tests: "no tests",
  cancelled: "cancelled", interrupted: "interrupted", none: "never run",
};

export function label(outcome) {
  return LABELS[outcome] || String(outcome || "").replace(/_/g, " ");
}

/** h("tr", {class: "x", dataset: {id: 1}, onclick: fn}, child, "text", ...) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An outcome (or run status) badge: colour plus the word, never colour alone. */
export function badge(outcome, extra) {
  const key = outcome || "none";
  return h("span", { class: `badge o-${key}${extra ? " " + extra : ""}` }, label(key));
}

/** Make `nodes` the children of `parent`, in order, moving only what is out of place: a
 * node that is re-inserted loses keyboard focus, so a refresh must not touch the rest. */
export function placeInOrder(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

/** replaceChildren that skips null/undefined/false (the DOM would print them). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds === 0) return "0 ms";
  if (seconds < 0.00005) return "<0.1 ms";
  if (seconds < 0.01) return `${(seconds * 1000).toFixed(1)} ms`;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function fmtPercent(ratio) {
  if (ratio === null || ratio === undefined) return "–";
  const pct = ratio * 100;
  return `${pct >= 99.95 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)} %`;
}

export function fmtCount(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString();
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** UNIX seconds -> local date and time. */
export function fmtTime(ts) {
  return ts ? dateTime.format(new Date(ts * 1000)) : "–";
}

export function fmtClock(ts) {
  return ts ? timeOnly.format(new Date(ts * 1000)) : "–";
}

/** UNIX seconds -> "3 minutes ago" / "in 2 hours". */
export function fmtRelative(ts, now = Date.now() / 1000) {
  if (!ts) return "–";
  const delta = ts - now;
  const abs = Math.abs(delta);
  if (abs < 45) return delta < 0 ? "just now" : "in a few seconds";
  const steps = [[60, "second"], [3600, "minute"], [86400, "hour"], [86400 * 30, "day"],
    [86400 * 365, "month"], [Infinity, "year"]];
  const sizes = { second: 1, minute: 60, hour: 3600, day: 86400, month: 86400 * 30,
    year: 86400 * 365 };
  for (const [limit, unit] of steps) {
    if (abs < limit) return relative.format(Math.round(delta / sizes[unit]), unit);
  }
  return fmtTime(ts);
}

/** A <time> element showing a relative time, kept fresh by refreshTimes(). */
export function timeEl(ts) {
  if (!ts) return h("span", { class: "muted" }, "–");
  return h("time", { datetime: new Date(ts * 1000).toISOString(), title: fmtTime(ts),
    dataset: { ts: String(ts) } }, fmtRelative(ts));
}

export function refreshTimes(root = document) {
  const now = Date.now() / 1000;
  for (const el of root.querySelectorAll("time[data-ts]")) {
    setText(el, fmtRelative(Number(el.dataset.ts), now));
  }
}

/** Inline messages instead of alert(): status text that fades, errors that stay until
 * dismissed (or replaced by the same message). */
export class Messages {
  constructor(el) {
    this.el = el;
  }

  show(text, kind = "info", { timeout } = {}) {
    for (const old of this.el.children) {
      if (old.dataset.text === text) old.remove();
    }
    const close = h("button", { type: "button", class: "icon", "aria-label": "Dismiss message" }, "×");
    const item = h("div", { class: `message m-${kind}`, role: kind === "error" ? "alert" : "status",
      dataset: { text } }, h("span", {}, text), close);
    close.addEventListener("click", () => item.remove());
    this.el.prepend(item);
    while (this.el.children.length > 4) this.el.lastElementChild.remove();
    const wait = timeout ?? (kind === "error" ? 0 : 6000);
    if (wait) setTimeout(() => item.remove(), wait);
    return item;
  }

  error(text) { return this.show(text, "error"); }
  ok(text) { return this.show(text, "ok"); }

  /** Run `action` behind busy(button), then say `done` (a text, or a function of the
   * action's result giving one) or the error. Resolves to the result, undefined on error. */
  async act(button, action, done) {
    return busy(button, async () => {
      try {
        const body = await action();
        if (done) this.ok(typeof done === "function" ? done(body) : done);
        return body;
      } catch (err) {
        this.error(err.message);
        return undefined;
      }
    });
  }
}

/** Run fn at most once per `ms`, the last call winning; returns a promise of its result. */
export function debounce(fn, ms) {
  let timer = null;
  let waiting = [];
  return (...args) => new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const settle = waiting;
      waiting = [];
      try {
        const value = await fn(...args);
        settle.forEach((w) => w.resolve(value));
      } catch (err) {
        settle.forEach((w) => w.reject(err));
      }
    }, ms);
  });
}

/** Disable a button while its action runs, so a double click does not queue twice. */
export async function busy(button, action) {
  if (button.disabled) return undefined;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
