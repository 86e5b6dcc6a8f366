// API Tester page: collections tree, request editor, response viewer, runner, monitors.
// Everything goes through the plugin's routes (api/...); nothing here talks to the
// targets directly, so the network guard on the server decides what may be reached.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  collections: [],
  collection: null,   // selected collection name
  folder: "",         // selected folder path ("" = whole collection)
  path: null,         // selected request path
  runId: null,
};

// ---- network ------------------------------------------------------------------------
function describe(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers = { "Content-Type": "application/json" };
    delete init.json;
  }
  const response = await fetch(`api/${path}`, init);
  let body = null;
  const text = await response.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) {
    const error = new Error(describe(response.status, body));
    error.status = response.status;
    error.field = body && body.field;
    throw error;
  }
  return body;
}

function showError(error) {
  const box = $("page-error");
  if (!error) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = error.message || String(error);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// ---- editor <-> request -------------------------------------------------------------
function pairs(text, separator) {
  const out = [];
  for (const raw of text.split("\n")) {
    if (!raw.trim()) continue;
    const enabled = !raw.trimStart().startsWith("#");
    const line = enabled ? raw : raw.trimStart().slice(1);
    const at = line.indexOf(separator);
    const name = (at < 0 ? line : line.slice(0, at)).trim();
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    out.push({ name, value, enabled });
  }
  return out;
}

function unpairs(list, separator) {
  return (list || []).map((p) => `${p.enabled === false ? "#" : ""}${p.name}${separator}${separator === ":" ? " " : ""}${p.value}`).join("\n");
}

function parseJSONField(id, label) {
  const text = $(id).value.trim() || "[]";
  try {
    const value = JSON.parse(text);
    if (!Array.isArray(value)) throw new Error("not a list");
    $(id).removeAttribute("aria-invalid");
    return value;
  } catch (err) {
    $(id).setAttribute("aria-invalid", "true");
    throw new Error(`${label}: not a JSON list (${err.message})`);
  }
}

function requestFromForm() {
  const mode = $("body-mode").value;
  const body = { mode };
  if (mode === "json" || mode === "raw") body.text = $("body-text").value;
  if (mode === "raw" && $("body-type").value.trim()) body.content_type = $("body-type").value.trim();
  if (mode === "form" || mode === "multipart") {
    const before = (state.loaded && state.loaded.body && state.loaded.body.fields) || [];
    body.fields = pairs($("body-text").value, "=").map((p) => {
      let field = p;
      // name:="…" holds a value written as JSON text (one with a line break: one line
      // per field could not hold it, and it came back as two fields).
      if (field.name.endsWith(":")) {
        try { field = { ...field, name: field.name.slice(0, -1), value: JSON.parse(field.value) }; }
        catch (err) { throw new Error(`Body: ${field.name}= needs a JSON string (${err.message})`); }
      }
      const at = field.name.indexOf("@");
      if (mode === "multipart" && at > 0) {
        field = { name: field.name.slice(0, at), filename: field.name.slice(at + 1), value: field.value, enabled: field.enabled };
      }
      // What the editor does not show (a part's content type) stays as it was.
      const same = before.find((b) => b.name === field.name && (b.filename || "") === (field.filename || ""));
      return same && same.content_type ? { ...field, content_type: same.content_type } : field;
    });
  }
  const auth = { type: $("auth-type").value };
  const fields = { bearer: ["token"], basic: ["username", "password"],
    apikey: ["key", "value", "where"], plexichat: ["username", "password", "base"], app: [] }[auth.type] || [];
  for (const f of fields) auth[f] = $(`auth-${f}`).value;
  // Fields this form does not edit (a description, say) are kept as they were loaded:
  // an unchanged request opened and saved lost them.
  const kept = { ...(state.loaded || {}) };
  for (const owned of ["name", "method", "url", "params", "headers", "body", "auth", "captures", "asserts"]) {
    delete kept[owned];
  }
  return {
    ...kept,
    name: $("request-name").value || "Untitled",
    method: $("method").value,
    url: $("url").value,
    params: pairs($("params").value, "="),
    headers: pairs($("headers").value, ":"),
    body, auth,
    captures: parseJSONField("captures", "Captures"),
    asserts: parseJSONField("asserts", "Assertions"),
  };
}

function formFromRequest(spec) {
  state.loaded = spec;
  $("request-name").value = spec.name || "Untitled";
  $("method").value = spec.method || "GET";
  $("url").value = spec.url || "";
  $("params").value = unpairs(spec.params, "=");
  $("headers").value = unpairs(spec.headers, ":");
  const body = spec.body || { mode: "none" };
  $("body-mode").value = body.mode || "none";
  $("body-type").value = body.content_type || "";
  if (body.mode === "form" || body.mode === "multipart") {
    $("body-text").value = (body.fields || []).map((f) => {
      const multiline = /[\r\n]/.test(f.value || "");
      return `${f.enabled === false ? "#" : ""}${f.name}${f.filename ? "@" + f.filename : ""}` +
        (multiline ? `:=${JSON.stringify(f.value)}` : `=${f.value}`);
    }).join("\n");
  } else {
    $("body-text").value = body.text || "";
  }
  const auth = spec.auth || { type: "none" };
  $("auth-type").value = auth.type || "none";
  for (const f of ["token", "username", "password", "key", "value", "base"]) $(`auth-${f}`).value = auth[f] || "";
  $("auth-where").value = auth.where || "header";
  $("captures").value = JSON.stringify(spec.captures || [], null, 1);
  $("asserts").value = JSON.stringify(spec.asserts || [], null, 1);
  showAuthFields();
}

function showAuthFields() {
  const type = $("auth-type").value;
  for (const node of document.querySelectorAll("[data-auth]")) {
    node.hidden = !node.dataset.auth.split(" ").includes(type);
  }
}

// ---- tabs ---------------------------------------------------------------------------
function selectTab(tab) {
  for (const other of document.querySelectorAll('.tabs [role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
}

// ---- response -----------------------------------------------------------------------
function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(2)} MB`;
}

function statusClass(status) {
  if (status >= 200 && status < 300) return "status-ok";
  if (status >= 300 && status < 400) return "status-warn";
  return "status-bad";
}

function renderChecks(target, assertions, captures, error) {
  target.replaceChildren();
  for (const a of assertions || []) {
    target.append(el("div", { class: a.passed ? "pass" : "fail",
      text: a.passed ? a.assertion : `${a.assertion} — ${a.message}` }));
  }
  for (const [name, value] of Object.entries(captures || {})) {
    target.append(el("div", { class: "muted", text: `captured ${name} = ${value}` }));
  }
  if (error) target.append(el("div", { class: "fail", text: error }));
}

function renderResponse(result) {
  const r = result.response;
  const meta = $("response-meta");
  meta.replaceChildren(
    el("span", { class: statusClass(r.status), text: `${r.status} ${r.reason}` }),
    ` · ${r.timing.total_ms.toFixed(1)} ms (first byte ${r.timing.ttfb_ms.toFixed(1)} ms)`,
    ` · ${formatBytes(r.size)}${r.body_truncated ? " (cut at the size limit)" : ""}`,
    r.redirects.length ? ` · ${r.redirects.length} redirect(s)` : "");
  renderChecks($("checks-out"), result.assertions, result.captures, result.error);
  $("response-headers").replaceChildren(...r.headers.map(([k, v]) =>
    el("tr", {}, el("td", { text: k }), el("td", { text: v }))));
  let text = r.body;
  if (r.kind === "binary") text = `Binary body, ${formatBytes(r.size)} (${r.content_type || "no type"}); first bytes:\n\n${r.body}`;
  else if (r.preview_truncated) text += `\n\n… shown up to the preview limit; ${formatBytes(r.size)} received.`;
  $("response-body").textContent = text;
}

async function send(event) {
  event.preventDefault();
  showError(null);
  $("url-error").textContent = "";
  $("url").removeAttribute("aria-invalid");
  let request;
  try { request = requestFromForm(); } catch (err) { showError(err); return; }
  $("send").disabled = true;
  $("response-meta").textContent = "Sending…";
  try {
    const result = await api("send", { method: "POST", json: {
      request, collection: state.collection, environment: $("environment").value || null } });
    renderResponse(result);
  } catch (err) {
    $("response-meta").textContent = "Not sent.";
    if (err.field === "url") {
      $("url").setAttribute("aria-invalid", "true");
      $("url-error").textContent = err.message;
    } else {
      showError(err);
    }
  } finally {
    $("send").disabled = false;
  }
}

// ---- collections --------------------------------------------------------------------
function treeNode(item, collection) {
  if (item.type === "folder") {
    const li = el("li", { role: "treeitem", "aria-expanded": "true" });
    const selected = state.collection === collection && state.folder === item.path && !state.path;
    li.append(el("div", { class: "node", "aria-selected": String(selected) },
      el("span", { "aria-hidden": "true", text: "▸" }),
      el("button", { type: "button", class: "link", text: item.name,
        title: `Folder ${item.path}: select it to run it`,
        onclick: () => selectFolder(collection, item.path) })));
    li.append(el("ul", { role: "group" }, ...item.items.map((i) => treeNode(i, collection))));
    return li;
  }
  const selected = state.collection === collection && state.path === item.path;
  return el("li", { role: "treeitem" }, el("div", { class: "node", "aria-selected": String(selected) },
    el("span", { class: `method ${item.method}`, text: item.method }),
    el("button", { type: "button", class: "link", text: item.name, title: item.error || item.path,
      onclick: () => openRequest(collection, item.path) })));
}

function renderTree() {
  const root = el("ul", { role: "group" });
  for (const c of state.collections) {
    const selected = state.collection === c.name && !state.folder && !state.path;
    const li = el("li", { role: "treeitem", class: "collection", "aria-expanded": "true" },
      el("div", { class: "node", "aria-selected": String(selected) },
        el("button", { type: "button", class: "link", text: c.name,
          onclick: () => selectFolder(c.name, "") })),
      el("ul", { role: "group" }, ...c.items.map((i) => treeNode(i, c.name))));
    root.append(li);
  }
  if (!state.collections.length) root.append(el("li", { class: "muted", text: "No collection yet: create one, or import one below." }));
  $("tree").replaceChildren(root);
  const chosen = state.collections.find((c) => c.name === state.collection) || {};
  $("app-token-grant").checked = Boolean(chosen.app_token);
  $("app-token-grant").disabled = !state.collection;
  const envs = chosen.environments || [];
  const current = $("environment").value;
  $("environment").replaceChildren(el("option", { value: "", text: "(none)" }),
    ...envs.map((e) => el("option", { value: e, text: e })));
  if (envs.includes(current)) $("environment").value = current;
  $("run-target").textContent = state.collection
    ? `Runs ${state.collection}${state.folder ? "/" + state.folder : ""}` : "Select a collection or folder.";
  $("run-button").disabled = !state.collection;
}

// The app token is granted per collection, here only (never by a collection's files).
async function setAppTokenGrant() {
  const box = $("app-token-grant");
  if (!state.collection) return;
  try {
    const data = await api(`collections/${encodeURIComponent(state.collection)}/app-token`,
      { method: "PUT", json: { enabled: box.checked } });
    const chosen = state.collections.find((c) => c.name === state.collection);
    if (chosen) chosen.app_token = data.enabled;
    showError(null);
  } catch (err) {
    box.checked = !box.checked;
    showError(err);
  }
}

async function loadTree() {
  try {
    const data = await api("collections");
    state.collections = data.collections;
    $("collections-root").textContent = `Folder: ${data.root}`;
    if (!state.collection && state.collections.length) state.collection = state.collections[0].name;
    renderTree();
  } catch (err) {
    showError(err);
  }
}

function selectFolder(collection, folder) {
  state.collection = collection;
  state.folder = folder;
  state.path = null;
  renderTree();
}

async function openRequest(collection, path) {
  try {
    const data = await api(`collections/${encodeURIComponent(collection)}/request?path=${encodeURIComponent(path)}`);
    state.collection = collection;
    state.path = path;
    state.folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    formFromRequest(data.request);
    $("save-path").value = path;
    renderTree();
  } catch (err) {
    showError(err);
  }
}

async function save(event) {
  event.preventDefault();
  showError(null);
  if (!state.collection) { showError(new Error("Select or create a collection first.")); return; }
  let path = $("save-path").value.trim();
  if (!path) path = `${($("request-name").value || "request").toLowerCase().replace(/[^a-z0-9]+/g, "-")}.request.json`;
  if (!path.endsWith(".request.json")) path += ".request.json";
  try {
    const data = await api(`collections/${encodeURIComponent(state.collection)}/request?path=${encodeURIComponent(path)}`,
      { method: "PUT", json: requestFromForm() });
    formFromRequest(data.request);
    state.path = path;
    $("save-path").value = path;
    $("save-status").textContent = data.secrets_moved.length
      ? `Saved; ${data.secrets_moved.length} secret(s) moved to the secret store.` : "Saved.";
    await loadTree();
  } catch (err) {
    showError(err);
  }
}

async function createCollection(event) {
  event.preventDefault();
  const name = $("new-collection-name").value.trim();
  try {
    await api("collections", { method: "POST", json: { name } });
    state.collection = name;
    state.folder = "";
    $("new-collection-name").value = "";
    await loadTree();
  } catch (err) {
    showError(err);
  }
}

async function deleteRequest() {
  showError(null);
  if (!state.collection || !state.path) { showError(new Error("Open a saved request to delete it.")); return; }
  try {
    await api(`collections/${encodeURIComponent(state.collection)}/request?path=${encodeURIComponent(state.path)}`, { method: "DELETE" });
    $("save-status").textContent = `Deleted ${state.path}.`;
    state.path = null;
    await loadTree();
  } catch (err) {
    showError(err);
  }
}

// ---- environments -------------------------------------------------------------------
async function loadEnvironment() {
  const name = $("environment").value;
  $("env-name").value = name;
  $("env-status").textContent = "";
  if (!name || !state.collection) { $("env-vars").value = ""; return; }
  try {
    const env = await api(`collections/${encodeURIComponent(state.collection)}/environments/${encodeURIComponent(name)}`);
    $("env-vars").value = env.variables.map((v) => `${v.secret ? "!" : ""}${v.name}=${v.value}`).join("\n");
    const stored = env.variables.filter((v) => v.secret);
    if (stored.length) {
      $("env-status").textContent = stored.map((v) => `${v.name}: ${v.stored ? "stored" : "not set"}`).join(", ");
    }
  } catch (err) {
    showError(err);
  }
}

async function saveEnvironment(event) {
  event.preventDefault();
  showError(null);
  if (!state.collection) { showError(new Error("Select a collection first.")); return; }
  const name = $("env-name").value.trim();
  const variables = pairs($("env-vars").value, "=").filter((p) => p.enabled).map((p) => {
    const secret = p.name.startsWith("!");
    return { name: secret ? p.name.slice(1) : p.name, value: p.value, secret };
  });
  try {
    await api(`collections/${encodeURIComponent(state.collection)}/environments/${encodeURIComponent(name)}`,
      { method: "PUT", json: { name, variables } });
    await loadTree();
    $("environment").value = name;
    await loadEnvironment();
    $("env-status").textContent = `Saved ${name}. ${$("env-status").textContent}`;
  } catch (err) {
    showError(err);
  }
}

// ---- runner -------------------------------------------------------------------------
async function startRun(event) {
  event.preventDefault();
  showError(null);
  try {
    const job = await api("run", { method: "POST", json: {
      collection: state.collection, folder: state.folder, environment: $("environment").value || null,
      csv: $("run-csv").value, stop_on_fail: $("stop-on-fail").checked } });
    state.runId = job.id;
    $("run-results").replaceChildren();
    $("run-summary").textContent = "Running…";
  } catch (err) {
    showError(err);
  }
}

function addResult(data) {
  if (data.run !== state.runId) return;
  const r = data.result;
  const why = r.error || (r.assertions || []).filter((a) => !a.passed).map((a) => a.message).join("; ");
  $("run-results").append(el("tr", {},
    el("td", { text: `${r.iteration}` }),
    el("td", {}, el("span", { class: `method ${r.method}`, text: r.method }), ` ${r.name}`),
    el("td", { class: r.status ? statusClass(r.status) : "", text: r.status ?? "—" }),
    el("td", { text: r.duration_ms != null ? `${r.duration_ms.toFixed(1)} ms` : "—" }),
    el("td", {}, el("span", { class: r.passed ? "status-ok" : "status-bad", text: r.passed ? "passed" : "failed" }),
      why ? el("div", { class: "why", text: why }) : null)));
  $("run-summary").textContent = `${data.done} of ${data.total} done`;
}

function finishRun(data) {
  if (data.id !== state.runId) return;
  const summary = $("run-summary");
  summary.replaceChildren(`${data.passed} passed, ${data.failed} failed${data.stopped_early ? " (stopped at the first failure)" : ""} · reports: `,
    el("a", { href: `api/runs/${data.id}`, text: "JSON" }), " · ",
    el("a", { href: `api/runs/${data.id}/junit.xml`, text: "JUnit XML" }));
}

// ---- import / export ----------------------------------------------------------------
async function importText(event) {
  event.preventDefault();
  showError(null);
  const collection = $("import-collection").value.trim();
  try {
    const data = await api("import", { method: "POST", json: { kind: $("import-kind").value,
      collection, text: $("import-text").value } });
    $("import-status").textContent = `Imported ${data.created.length} request(s) into ${data.collection}` +
      (data.scripts_skipped ? `; ${data.scripts_skipped} script(s) not imported` : "");
    state.collection = collection;
    state.folder = "";
    await loadTree();
  } catch (err) {
    showError(err);
  }
}

async function importBuiltin(which) {
  showError(null);
  try {
    const data = await api("import/builtin", { method: "POST", json: { which } });
    $("import-status").textContent = `${data.collection}: ${data.created.length} requests` +
      (which === "v1" ? "; fill in the local environment's username and password" : "");
    state.collection = data.collection;
    state.folder = "";
    await loadTree();
  } catch (err) {
    showError(err);
  }
}

async function exportAs(kind) {
  showError(null);
  try {
    const data = await api("export", { method: "POST", json: { kind, request: requestFromForm() } });
    $("export-out").hidden = false;
    $("export-out").textContent = data.code;
  } catch (err) {
    showError(err);
  }
}

// ---- load test ----------------------------------------------------------------------
async function startLoad(event) {
  event.preventDefault();
  showError(null);
  try {
    const body = { request: requestFromForm(), collection: state.collection,
      environment: $("environment").value || null, users: Number($("load-users").value),
      duration: Number($("load-duration").value) };
    if ($("load-max").value) body.max_requests = Number($("load-max").value);
    const job = await api("load", { method: "POST", json: body });
    state.loadId = job.id;
    $("load-figures").replaceChildren();
  } catch (err) {
    showError(err);
  }
}

function loadFigures(data) {
  if (data.job !== state.loadId) return;
  const ms = (v) => (v == null ? "—" : `${v.toFixed(1)} ms`);
  const rows = [["Requests", `${data.requests} in ${data.elapsed_s.toFixed(1)} s`],
    ["Requests/s", data.rps.toFixed(1)],
    ["Latency p50 / p95 / p99", `${ms(data.p50_ms)} / ${ms(data.p95_ms)} / ${ms(data.p99_ms)}`],
    ["Errors", `${data.errors} (${(data.error_rate * 100).toFixed(2)} %)`],
    ["Statuses", Object.entries(data.statuses).map(([k, v]) => `${k}: ${v}`).join(", ") || "—"]];
  if (data.final) rows.push(["Per second", (data.per_second || []).join(" ")]);
  $("load-figures").replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: v }))));
}

// ---- monitors -----------------------------------------------------------------------
function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "never";
}

function renderMonitors(list, problems = []) {
  const box = $("monitors");
  box.replaceChildren();
  for (const text of problems) box.append(el("p", { class: "why small-text", role: "alert", text }));
  if (!list.length) { box.append(el("p", { class: "muted", text: "No monitor yet." })); return; }
  for (const m of list) {
    const status = m.status || "unknown";
    const last = m.last_run;
    const card = el("article", { class: "card", "aria-label": `Monitor ${m.name}` },
      el("h3", {}, el("span", { class: `pill ${status}`, text: status }), m.name),
      el("p", { class: "muted small-text", text: `${m.collection}${m.folder ? "/" + m.folder : ""}${m.environment ? " · " + m.environment : ""} · ${m.schedule}${m.enabled ? "" : " (off)"} · last run ${when(last && last.at)}` }));
    if (last && last.detail) card.append(el("p", { class: "why small-text", text: last.detail }));
    for (const t of (m.transitions || []).slice(-3).reverse()) {
      card.append(el("p", { class: "transition", text: `${when(t.at)}: ${t.from || "new"} → ${t.to}` }));
    }
    card.append(el("div", { class: "row-form" },
      el("button", { type: "button", class: "small", text: "Run now", onclick: () => runMonitor(m.id) }),
      el("button", { type: "button", class: "small ghost", text: "Delete", onclick: () => deleteMonitor(m.id) })));
    box.append(card);
  }
}

async function loadMonitors() {
  try {
    const answer = await api("monitors");
    renderMonitors(answer.monitors, answer.problems || []);
  } catch (err) { showError(err); }
}

async function createMonitor(event) {
  event.preventDefault();
  showError(null);
  if (!state.collection) { showError(new Error("Select a collection or folder to monitor first.")); return; }
  try {
    await api("monitors", { method: "POST", json: { name: $("monitor-name").value,
      schedule: $("monitor-schedule").value, collection: state.collection, folder: state.folder,
      environment: $("environment").value || null } });
    $("monitor-name").value = "";
    await loadMonitors();
  } catch (err) {
    showError(err);
  }
}

async function runMonitor(id) {
  try { await api(`monitors/${encodeURIComponent(id)}/run`, { method: "POST" }); await loadMonitors(); } catch (err) { showError(err); }
}

async function deleteMonitor(id) {
  try { await api(`monitors/${encodeURIComponent(id)}`, { method: "DELETE" }); await loadMonitors(); } catch (err) { showError(err); }
}

function transition(data) {
  $("monitor-notice").textContent = `Monitor “${data.name}” went from ${data.from || "new"} to ${data.to}${data.detail ? ": " + data.detail : ""}`;
}

// ---- live ---------------------------------------------------------------------------
function connect() {
  const source = window.plexichatLive ? window.plexichatLive.open("api/stream") : new EventSource("api/stream");
  const badge = $("connection");
  source.addEventListener("open", () => { badge.className = "badge badge-live"; badge.textContent = "Live"; });
  source.addEventListener("error", () => { badge.className = "badge badge-wait"; badge.textContent = "Reconnecting…"; });
  source.addEventListener("result", (e) => addResult(JSON.parse(e.data)));
  source.addEventListener("run", (e) => finishRun(JSON.parse(e.data)));
  for (const [name, handler] of extraEvents) source.addEventListener(name, (e) => handler(JSON.parse(e.data)));
}
const extraEvents = [["monitors", (d) => renderMonitors(d.monitors, d.problems || [])], ["monitor", transition],
  ["load", loadFigures]];

async function loadInfo() {
  try {
    const info = await api("info");
    const hosts = info.allowed_hosts.length ? info.allowed_hosts.join(", ") : "none";
    $("load-users").max = info.limits.users;
    $("load-duration").max = info.limits.seconds;
    $("load-caps").textContent = `Sends the request above from up to ${info.limits.users} virtual users for up to ${info.limits.seconds} s; loopback and allowed hosts only.`;
    $("limits").textContent = `Targets: loopback and allowed hosts (${hosts}) · secrets in the ${info.secrets_backend === "keyring" ? "keyring" : "0600 secrets file"}`;
  } catch (err) {
    showError(err);
  }
}

function init() {
  for (const tab of document.querySelectorAll('.tabs [role="tab"]')) tab.addEventListener("click", () => selectTab(tab));
  $("auth-type").addEventListener("change", showAuthFields);
  $("request-form").addEventListener("submit", send);
  $("save-form").addEventListener("submit", save);
  $("new-collection").addEventListener("submit", createCollection);
  $("run-form").addEventListener("submit", startRun);
  $("refresh-tree").addEventListener("click", loadTree);
  $("monitor-form").addEventListener("submit", createMonitor);
  $("import-form").addEventListener("submit", importText);
  $("load-form").addEventListener("submit", startLoad);
  $("delete-request").addEventListener("click", deleteRequest);
  $("environment").addEventListener("change", loadEnvironment);
  $("app-token-grant").addEventListener("change", setAppTokenGrant);
  $("env-form").addEventListener("submit", saveEnvironment);
  $("builtin-v1").addEventListener("click", () => importBuiltin("v1"));
  $("builtin-app").addEventListener("click", () => importBuiltin("app"));
  $("export-curl").addEventListener("click", () => exportAs("curl"));
  $("export-httpx").addEventListener("click", () => exportAs("httpx"));
  showAuthFields();
  connect();
  loadInfo();
  loadTree();
  loadMonitors();
}

window.apiTester = { api, el, state, loadTree, formFromRequest, showError, extraEvents, describe };
init();
