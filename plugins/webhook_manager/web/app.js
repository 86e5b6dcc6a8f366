// Webhook Manager page: endpoints, the live delivery log, the inspector and templates.
// Talks only to this plugin's routes (api/...); live updates come from api/stream (SSE).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  signedIn: false, catalogue: [], endpoints: [], selected: null, snippets: null, lang: "python",
  deliveries: [], logOffset: 0, logTotal: 0, delivery: null,
  inboxes: [], inbox: null, captures: [], presets: {}, status: null,
};

class ApiProblem extends Error {
  constructor(message, field, status) { super(message); this.field = field; this.status = status; }
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: {} };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(`api/${path}`, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!response.ok) {
    let detail = data && data.detail !== undefined ? data.detail : response.statusText;
    if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).filter((p) => p !== "body" && p !== "query").join(".")}: ${d.msg}`).join("; ");
    throw new ApiProblem(String(detail), data && data.field, response.status);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showError(err, where) {
  const box = where ? $(where) : $("page-error");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}
function clearError(where) { const box = $(where || "page-error"); box.hidden = true; box.textContent = ""; }
function notice(text) { const box = $("notice"); box.textContent = text; box.hidden = !text; }

const fmtTime = (value) => {
  if (!value) return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
};
const fmtMs = (ms) => (ms === null || ms === undefined ? "—" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const fmtRate = (rate) => (rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(rate === 1 ? 0 : 1)} %`);
const shortUrl = (url) => { try { const u = new URL(url); return u.host + (u.pathname.length > 24 ? u.pathname.slice(0, 22) + "…" : u.pathname); } catch { return url; } };
const localInput = (date) => { const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000); return d.toISOString().slice(0, 16); };
const isoOf = (input) => (input ? new Date(input).toISOString() : null);
const badge = (text, kind) => el("span", { class: `badge badge-${kind}`, text });
const statusKind = { delivered: "ok", failed: "bad", retrying: "warn", pending: "wait", healthy: "ok", degraded: "warn", failing: "bad", disabled: "bad", idle: "wait" };

// ---- tabs ---------------------------------------------------------------------------
function selectTab(tab) {
  for (const other of document.querySelectorAll('.tabs [role="tab"]')) {
    const on = other === tab;
    other.setAttribute("aria-selected", String(on));
    $(other.getAttribute("aria-controls")).hidden = !on;
  }
  if (tab.id === "tab-deliveries" && state.signedIn) loadLog(true);
  if (tab.id === "tab-inspector") loadInboxes();
}

// ---- secret shown once ----------------------------------------------------------------
function showSecret(secret, header, extra) {
  $("secret-value").textContent = secret;
  $("secret-header").textContent = header || "X-PlexiChat-Signature";
  $("secret-extra").textContent = extra || "";
  $("secret-dialog").showModal();
}
function closeSecret() { $("secret-value").textContent = ""; $("secret-dialog").close(); }
async function copyText(text, button) {
  try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; }
  catch {
    // No clipboard permission: select the text so Ctrl+C copies it.
    const range = document.createRange(); range.selectNodeContents($("secret-value"));
    const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 2500);
}

// ---- status and catalogue -----------------------------------------------------------
async function loadStatus() {
  const status = await api("status");
  state.status = status;
  state.signedIn = Boolean(status.user);
  const inspector = status.inspector.url ? `inspector on ${status.inspector.url}` : "inspector not running";
  $("who").textContent = (status.user ? `Signed in as ${status.user.username}` : "Not signed in") + ` · ${inspector}`
    + (status.inspector.problem ? ` (${status.inspector.problem})` : "");
  $("signin").hidden = state.signedIn;
  // Signed out, the server's events are unknown and nothing can be created: said in
  // the form (its Events box was an empty frame, and Create failed on submit).
  $("new-endpoint").querySelector("button[type=submit]").disabled = !state.signedIn;
  if (!state.signedIn) {
    const events = $("new-events");
    events.replaceChildren(events.querySelector("legend"), el("p", { class: "muted small-text",
      text: "The server's events show here once you are signed in." }));
  }
  $("inspector-addr").textContent = status.inspector.url
    ? `Listening on ${status.inspector.url} (this machine only). Window ±${status.tolerance_seconds} s, bodies up to ${Math.round(status.max_body_bytes / 1024)} KiB, ${status.rate_limit_per_minute} requests a minute per inbox.`
    : "The inspector is not running.";
  $("endpoint-none").textContent = state.signedIn ? "Select an endpoint, or create one."
    : "Your endpoints show here once you are signed in.";
  $("new-disable").value = status.default_disable_after;
  $("ib-forward-hosts").textContent = `Forwards reach loopback and the allowed hosts: ${status.forward_allowed_hosts.join(", ") || "none"} (setting forward_allowed_hosts).`;
}

async function loadCatalogue() {
  const cat = await api("catalogue");
  state.catalogue = cat.events;
  state.adminOnly = new Set(cat.admin_only || []);
  fillEvents($("new-events"), ["*"]);
  const options = ["", ...cat.events].map((e) => el("option", { value: e, text: e || "any" }));
  $("f-event").replaceChildren(...options);
  $("ib-hook-events").replaceChildren(el("option", { value: "*", text: "every event (*)" }),
    ...cat.events.map((e) => el("option", { value: e, text: e })));
}

function fillEvents(fieldset, chosen) {
  const legend = fieldset.querySelector("legend");
  const boxes = ["*", ...state.catalogue].map((name) => el("label", { class: "check" },
    el("input", { type: "checkbox", value: name, checked: chosen.includes(name) }),
    name === "*" ? " all (*)" : ` ${name}${state.adminOnly && state.adminOnly.has(name) ? " (admin)" : ""}`));
  fieldset.replaceChildren(legend, ...boxes);
}
const chosenEvents = (fieldset) => [...fieldset.querySelectorAll("input:checked")].map((i) => i.value);

// ---- endpoints ----------------------------------------------------------------------
async function loadEndpoints() {
  if (!state.signedIn) return;
  const data = await api("endpoints");
  state.endpoints = data.endpoints;
  renderEndpoints();
  const opts = [el("option", { value: "", text: "all" }), ...state.endpoints.map((e) => el("option", { value: e.id, text: e.description || shortUrl(e.url) }))];
  const current = $("f-endpoint").value;
  $("f-endpoint").replaceChildren(...opts);
  $("f-endpoint").value = current;
  if (state.selected) {
    const fresh = state.endpoints.find((e) => e.id === state.selected.id);
    if (fresh) showEndpoint(fresh, false); else hideEndpoint();
  } else if (state.endpoints.length) showEndpoint(state.endpoints[0], true);
}

function renderEndpoints() {
  $("endpoint-empty").hidden = state.endpoints.length > 0;
  $("endpoint-list").replaceChildren(...state.endpoints.map((hook) => {
    const h = hook.health;
    return el("li", {},
      el("button", { type: "button", class: `card${state.selected && state.selected.id === hook.id ? " selected" : ""}`, "data-id": hook.id, onclick: () => showEndpoint(hook, true) },
        el("span", { class: "card-top" }, el("b", { text: hook.description || shortUrl(hook.url) }), badge(h.state, statusKind[h.state] || "wait")),
        el("span", { class: "muted small-text", text: shortUrl(hook.url) }),
        el("span", { class: "small-text" }, `${fmtRate(h.success_rate)} ok · p95 ${fmtMs(h.p95_ms)} · ${h.consecutive_failures}${h.disable_after ? "/" + h.disable_after : ""} failed in a row`)));
  }));
}

function hideEndpoint() { state.selected = null; $("endpoint-body").hidden = true; $("endpoint-none").hidden = false; }

async function showEndpoint(hook, loadSnippets) {
  state.selected = hook;
  renderEndpoints();
  $("endpoint-none").hidden = true;
  $("endpoint-body").hidden = false;
  $("ep-title").textContent = hook.description || shortUrl(hook.url);
  const h = hook.health;
  const st = $("ep-state"); st.className = `badge badge-${statusKind[h.state] || "wait"}`; st.textContent = h.state;
  const figures = [["Success", fmtRate(h.success_rate)], ["p95", fmtMs(h.p95_ms)], ["Failures in a row", `${h.consecutive_failures}${h.disable_after ? " of " + h.disable_after : ""}`],
    ["Delivered", hook.deliveries_delivered], ["Failed", hook.deliveries_failed], ["Pending", hook.deliveries_pending], ["Last success", fmtTime(h.last_success_at)], ["Secret", hook.secret_hint + (hook.previous_secret_expires_at ? " (+ old until " + fmtTime(hook.previous_secret_expires_at) + ")" : "")]];
  $("ep-figures").replaceChildren(...figures.map(([k, v]) => el("div", { class: "fig" }, el("dt", { text: k }), el("dd", { text: String(v) }))));
  $("ep-disabled").hidden = !hook.disabled_reason;
  $("ep-disabled").textContent = hook.disabled_reason ? `Switched off ${fmtTime(hook.disabled_at)}: ${hook.disabled_reason}. Fix the receiver, tick Active and save, then recover the failed deliveries.` : "";
  // Do not overwrite what the user is typing in the form of the same endpoint.
  if (loadSnippets || document.activeElement === document.body) {
    $("ep-url").value = hook.url;
    $("ep-description").value = hook.description || "";
    $("ep-active").checked = hook.active;
    $("ep-disable").value = hook.disable_after;
    fillEvents($("ep-events"), hook.events);
  }
  if (loadSnippets) {
    if (!$("recover-since").value) $("recover-since").value = localInput(new Date(Date.now() - 86400000));
    try { state.snippets = await api(`endpoints/${hook.id}/snippets`); renderSnippet(); } catch (err) { showError(err); }
  }
}

function renderSnippet() {
  $("snippet").textContent = state.snippets ? state.snippets[state.lang] : "";
  for (const b of document.querySelectorAll("[data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
}

// The server's URL rules, checked here first: a typo is answered without a round trip.
function checkUrl(text) {
  let url;
  try { url = new URL(text); } catch { throw new ApiProblem("url: must be an absolute http:// or https:// URL", "url", 422); }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) throw new ApiProblem("url: must be an absolute http:// or https:// URL", "url", 422);
  if (url.username || url.password) throw new ApiProblem("url: must not carry a user name or password", "url", 422);
}

async function createEndpoint(event) {
  event.preventDefault();
  clearError("new-endpoint-error");
  try {
    checkUrl($("new-url").value.trim());
    if (!chosenEvents($("new-events")).length) throw new ApiProblem("events: choose at least one", "events", 422);
    const hook = await api("endpoints", { method: "POST", body: {
      url: $("new-url").value.trim(), events: chosenEvents($("new-events")),
      description: $("new-description").value.trim() || null,
      disable_after: $("new-disable").value === "" ? null : Number($("new-disable").value) } });
    $("new-url").value = ""; $("new-description").value = "";
    showSecret(hook.secret, hook.signature_header, `Endpoint ${hook.url}`);
    state.selected = { id: hook.id };
    await loadEndpoints();
  } catch (err) { showError(err, "new-endpoint-error"); }
}

async function saveEndpoint(event) {
  event.preventDefault();
  clearError("edit-error");
  try {
    checkUrl($("ep-url").value.trim());
    if (!chosenEvents($("ep-events")).length) throw new ApiProblem("events: choose at least one", "events", 422);
    await api(`endpoints/${state.selected.id}`, { method: "PUT", body: {
      url: $("ep-url").value.trim(), events: chosenEvents($("ep-events")),
      description: $("ep-description").value.trim() || null, active: $("ep-active").checked,
      disable_after: Number($("ep-disable").value || 0) } });
    document.activeElement.blur();
    await loadEndpoints();
    showEndpoint(state.endpoints.find((e) => e.id === state.selected.id), true);
  } catch (err) { showError(err, "edit-error"); }
}

async function testEndpoint() {
  const button = $("ep-test");
  button.disabled = true; button.textContent = "Sending…";
  try {
    const d = await api(`endpoints/${state.selected.id}/test`, { method: "POST" });
    const last = d.attempts[d.attempts.length - 1];
    notice(`Test delivery ${d.status}` + (last ? ` — HTTP ${last.status_code ?? "none"} in ${fmtMs(last.duration_ms)}${last.error ? ": " + last.error : ""}` : ""));
    await loadEndpoints();
  } catch (err) { showError(err); }
  button.disabled = false; button.textContent = "Send test";
}

async function deleteEndpoint() {
  if (!confirm(`Delete ${state.selected.url} and its delivery log?`)) return;
  try { await api(`endpoints/${state.selected.id}`, { method: "DELETE" }); hideEndpoint(); await loadEndpoints(); }
  catch (err) { showError(err); }
}

async function recover(event) {
  event.preventDefault();
  try {
    const r = await api(`endpoints/${state.selected.id}/recover`, { method: "POST", body: { since: isoOf($("recover-since").value) } });
    $("recover-result").textContent = r.recovered
      ? `${r.recovered} failed deliver${r.recovered === 1 ? "y" : "ies"} queued again${r.remaining ? `; ${r.remaining} more: recover again` : ""}.`
      : "Nothing to recover: no failed delivery in that window that was not sent again already.";
  } catch (err) { $("recover-result").textContent = err.message; }
}

async function rotate(event) {
  event.preventDefault();
  try {
    const grace = Number($("rotate-grace").value);
    const hook = await api(`endpoints/${state.selected.id}/rotate`, { method: "POST", body: { grace_seconds: grace } });
    const inboxes = hook.inboxes_updated && hook.inboxes_updated.length ? " The inspector's inbox for it was updated too." : "";
    showSecret(hook.secret, hook.signature_header, (grace ? `The old secret stays valid until ${fmtTime(hook.previous_secret_expires_at)}.` : "The old secret stopped working now.") + inboxes);
    await loadEndpoints();
  } catch (err) { showError(err); }
}

// ---- delivery log -------------------------------------------------------------------
function logQuery(offset) {
  const q = new URLSearchParams({ limit: "50", offset: String(offset) });
  for (const [key, id] of [["webhook_id", "f-endpoint"], ["status", "f-status"], ["event", "f-event"]]) if ($(id).value) q.set(key, $(id).value);
  if ($("f-since").value) q.set("since", isoOf($("f-since").value));
  return q;
}

async function loadLog(reset) {
  if (!state.signedIn) return;
  try {
    const offset = reset ? 0 : state.logOffset;
    const data = await api(`deliveries?${logQuery(offset)}`);
    state.deliveries = reset ? data.deliveries : [...state.deliveries, ...data.deliveries];
    state.logOffset = offset + data.deliveries.length;
    state.logTotal = data.total;
    renderLog();
  } catch (err) { showError(err); }
}

function matchesFilters(d) {
  if ($("f-endpoint").value && d.webhook_id !== $("f-endpoint").value) return false;
  if ($("f-status").value && d.status !== $("f-status").value) return false;
  if ($("f-event").value && d.event !== $("f-event").value) return false;
  if ($("f-since").value && new Date(d.created_at) < new Date($("f-since").value)) return false;
  return true;
}

function renderLog() {
  const names = new Map(state.endpoints.map((e) => [e.id, e.description || shortUrl(e.url)]));
  $("log-rows").replaceChildren(...state.deliveries.map((d) => {
    const last = d.attempts[d.attempts.length - 1];
    return el("tr", { class: state.delivery && state.delivery.id === d.id ? "selected" : null, tabindex: "0", "data-id": d.id, onclick: () => showDelivery(d), onkeydown: (e) => { if (e.key === "Enter") showDelivery(d); } },
      el("td", { text: fmtTime(d.created_at) }), el("td", { text: names.get(d.webhook_id) || d.webhook_id.slice(0, 8) }),
      el("td", {}, d.event, d.redelivery_of ? el("span", { class: "muted", text: " ↻" }) : null),
      el("td", {}, badge(d.status, statusKind[d.status])), el("td", { text: String(d.attempt_count) }),
      el("td", { text: d.response_status ?? "—" }), el("td", { text: last ? fmtMs(last.duration_ms) : "—" }));
  }));
  $("log-empty").hidden = state.deliveries.length > 0;
  $("log-more").hidden = state.logOffset >= state.logTotal;
  $("log-count").textContent = `${state.logTotal} deliver${state.logTotal === 1 ? "y" : "ies"}`;
}

// Endpoint health follows finished deliveries, at most every 3 s.
let healthTimer = null;
function refreshHealthSoon() {
  if (healthTimer) return;
  healthTimer = setTimeout(() => { healthTimer = null; loadEndpoints().catch(showError); }, 3000);
}

function liveDelivery(d) {
  if (d.status === "delivered" || d.status === "failed") refreshHealthSoon();
  const index = state.deliveries.findIndex((x) => x.id === d.id);
  if (index >= 0) state.deliveries[index] = d;
  else if (matchesFilters(d)) { state.deliveries.unshift(d); state.logTotal += 1; state.logOffset += 1; }
  else return;
  renderLog();
  if (state.delivery && state.delivery.id === d.id) showDelivery(d);
}

function showDelivery(d) {
  state.delivery = d;
  $("delivery-none").hidden = true; $("delivery-body").hidden = false;
  $("d-title").textContent = `${d.event} · ${d.status}`;
  $("d-meta").textContent = `Delivery ${d.id} · created ${fmtTime(d.created_at)}` + (d.redelivery_of ? ` · resend of ${d.redelivery_of}` : "")
    + (d.next_attempt_at ? ` · next attempt ${fmtTime(d.next_attempt_at)}` : "");
  $("d-resend").disabled = d.status === "pending" || d.status === "retrying";
  $("d-attempts").replaceChildren(...d.attempts.map((a) => el("li", {},
    el("div", { class: "row" }, badge(a.error ? "failed" : "ok", a.error ? "bad" : "ok"), el("b", { text: `HTTP ${a.status_code ?? "—"}` }),
      el("span", { text: fmtMs(a.duration_ms) }), el("span", { class: "muted", text: fmtTime(a.at) })),
    a.error ? el("p", { class: "small-text bad", text: a.error }) : null,
    Object.keys(a.request_headers || {}).length ? el("details", {}, el("summary", { text: "Headers sent" }), el("pre", { class: "code", text: Object.entries(a.request_headers).map(([k, v]) => `${k}: ${v}`).join("\n") })) : null,
    a.response ? el("details", {}, el("summary", { text: "Receiver's answer" }), el("pre", { class: "code", text: a.response })) : null)));
  if (!d.attempts.length) $("d-attempts").replaceChildren(el("li", { class: "muted", text: "Not attempted yet." }));
  $("d-payload").textContent = JSON.stringify(d.payload, null, 2);
  renderLog();
}

async function resend() {
  try {
    const d = await api(`deliveries/${state.delivery.id}/resend`, { method: "POST" });
    liveDelivery(d);
    notice(`Sent again as ${d.id.slice(0, 8)}…: ${d.status}`);
  } catch (err) { showError(err); }
}

// ---- inspector ----------------------------------------------------------------------
async function loadInboxes() {
  try {
    const data = await api("inboxes");
    state.inboxes = data.inboxes;
    renderInboxes();
    const current = state.inbox && state.inboxes.find((i) => i.id === state.inbox.id);
    if (current) showInbox(current, false); else if (state.inboxes.length) showInbox(state.inboxes[0], true);
    else { $("inbox-body").hidden = true; $("inbox-none").hidden = false; }
  } catch (err) { showError(err); }
}

function renderInboxes() {
  $("tpl-inbox").replaceChildren(...state.inboxes.map((ib) => el("option", { value: ib.id, text: ib.name })));
  $("tpl-use").hidden = state.inboxes.length === 0;
  $("inbox-list").replaceChildren(...state.inboxes.map((ib) => el("li", {},
    el("button", { type: "button", class: `card${state.inbox && state.inbox.id === ib.id ? " selected" : ""}`, onclick: () => showInbox(ib, true) },
      el("span", { class: "card-top" }, el("b", { text: ib.name }), badge(ib.has_secret ? "verifies" : "no secret", ib.has_secret ? "ok" : "warn")),
      el("span", { class: "muted small-text", text: `${ib.captures ?? 0} captured · answers ${ib.respond_status}${ib.forward_url ? " · forwards" : ""}` })))));
}

async function showInbox(ib, reload) {
  state.inbox = ib;
  renderInboxes();
  $("inbox-none").hidden = true; $("inbox-body").hidden = false;
  $("ib-title").textContent = ib.name;
  $("ib-url").textContent = ib.url;
  $("ib-secret").textContent = ib.has_secret
    ? `Verifies with the secret ${ib.secret_hint}${ib.secrets_in_force > 1 ? ` and the previous one until ${fmtTime(ib.previous_expires_at)}` : ""}${ib.webhook_id ? " (of its webhook)" : ""}.`
    : "No secret yet: every request fails the signature check. Create a webhook to this inbox, or set a secret.";
  $("ib-hook").hidden = !state.signedIn || Boolean(ib.webhook_id);
  if (reload) {
    $("ib-tolerance").value = ib.tolerance; $("ib-status").value = String(ib.respond_status);
    $("ib-forward-url").value = ib.forward_url || "";
    const preset = Object.entries(state.presets).find(([, p]) => p.template === ib.forward_template);
    const custom = $("ib-preset").querySelector('option[value="custom"]');
    if (custom) custom.remove();
    if (ib.forward_template && !preset) $("ib-preset").append(el("option", { value: "custom", text: "custom (from the Templates tab)" }));
    $("ib-preset").value = preset ? preset[0] : ib.forward_template ? "custom" : "slack";
    $("cap-detail").hidden = true;
    await loadCaptures();
  }
}

async function loadCaptures() {
  if (!state.inbox) return;
  const verdict = $("ib-verdict").value;
  const data = await api(`inboxes/${state.inbox.id}/captures${verdict ? "?verdict=" + verdict : ""}`);
  state.captures = data.captures;
  renderCaptures();
}

function forwardText(f) {
  if (!f) return "—";
  return f.ok ? `sent (${f.status})` : `failed${f.status ? " (" + f.status + ")" : ""}`;
}

function renderCaptures() {
  $("cap-empty").hidden = state.captures.length > 0;
  $("cap-rows").replaceChildren(...state.captures.map((c) => el("tr", { tabindex: "0", onclick: () => showCapture(c.id), onkeydown: (e) => { if (e.key === "Enter") showCapture(c.id); } },
    el("td", { text: fmtTime(c.at) }), el("td", { text: c.event || `${c.method} (no event)` }),
    el("td", {}, badge(c.verdict.ok ? "pass" : "fail", c.verdict.ok ? "ok" : "bad")),
    el("td", { class: "reason", text: c.verdict.reason }), el("td", { text: `${c.size} B` }),
    el("td", { text: forwardText(c.forward) }))));
}

async function showCapture(id) {
  try {
    const c = await api(`captures/${id}`);
    $("cap-detail").hidden = false;
    $("cap-title").textContent = `${c.method} ${c.event || ""} · ${fmtTime(c.at)} · answered ${c.response_status}`;
    $("cap-checks").replaceChildren(...c.verdict.checks.map((k) => el("li", {}, badge(k.ok ? "pass" : "fail", k.ok ? "ok" : "bad"), ` ${k.name}: ${k.detail}`)));
    $("cap-headers").textContent = Object.entries(c.headers).map(([k, v]) => `${k}: ${v}`).join("\n");
    let body = c.body;
    if (c.body_encoding === "text") { try { body = JSON.stringify(JSON.parse(c.body), null, 2); } catch { /* not JSON: as received */ } }
    $("cap-body").textContent = c.body_encoding === "hex" ? `(binary, hex) ${body}` : body;
    const f = c.forward;
    $("cap-forward").textContent = f ? `Forward: ${forwardText(f)}${f.error ? " — " + f.error : ""}${f.attempts && f.attempts.length ? " — " + f.attempts.map((a) => `#${a.attempt} ${a.status ?? a.error} in ${fmtMs(a.duration_ms)}`).join(", ") : ""}` : "";
  } catch (err) { showError(err); }
}

async function createInbox(event) {
  event.preventDefault();
  clearError("inbox-error");
  try {
    const ib = await api("inboxes", { method: "POST", body: { name: $("inbox-name").value.trim(), secret: $("inbox-secret").value || null } });
    $("inbox-name").value = ""; $("inbox-secret").value = "";
    state.inbox = ib;
    await loadInboxes();
  } catch (err) { showError(err, "inbox-error"); }
}

async function saveInbox(event) {
  event.preventDefault();
  try {
    const body = { tolerance: Number($("ib-tolerance").value), respond_status: Number($("ib-status").value) };
    if ($("ib-new-secret").value) body.secret = $("ib-new-secret").value;  // else unchanged
    const ib = await api(`inboxes/${state.inbox.id}`, { method: "PUT", body });
    $("ib-new-secret").value = "";
    notice(`Inbox “${ib.name}” answers ${ib.respond_status}, accepts timestamps within ±${ib.tolerance} s${body.secret ? " and verifies with the new secret" : ""}.`);
    await loadInboxes();
  } catch (err) { showError(err); }
}

async function inboxWebhook(event) {
  event.preventDefault();
  try {
    const hook = await api(`inboxes/${state.inbox.id}/webhook`, { method: "POST", body: { events: [$("ib-hook-events").value] } });
    showSecret(hook.secret, hook.signature_header, "The inbox keeps it to verify deliveries; your own receivers need a copy.");
    await Promise.all([loadInboxes(), loadEndpoints()]);
  } catch (err) { showError(err); }
}

async function saveForward(event) {
  event.preventDefault();
  clearError("ib-forward-error");
  try {
    const body = { forward_url: $("ib-forward-url").value.trim() || null };
    if (body.forward_url) {
      checkUrl(body.forward_url);
      // The network guard's rule (loopback or an allowed host), checked here first.
      const host = new URL(body.forward_url).hostname.replace(/^\[|\]$/g, "").toLowerCase();
      const local = host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\./.test(host);
      const literal = /^[0-9.]+$/.test(host) || host.includes(":");  // networks: the server decides
      if (!local && !literal && !state.status.forward_allowed_hosts.map((h) => h.toLowerCase()).includes(host)) {
        throw new ApiProblem(`forward_url: ${host} is not loopback and not on the allowed hosts (${state.status.forward_allowed_hosts.join(", ") || "none"}); add it to forward_allowed_hosts`, "forward_url", 422);
      }
    }
    const preset = state.presets[$("ib-preset").value];
    if (preset) body.forward_template = preset.template;  // "custom": keep the saved one
    await api(`inboxes/${state.inbox.id}`, { method: "PUT", body });
    notice("Forwarding saved: verified deliveries to this inbox are sent on.");
    await loadInboxes();
  } catch (err) { showError(err, "ib-forward-error"); }
}

async function stopForward() {
  try { await api(`inboxes/${state.inbox.id}`, { method: "PUT", body: { forward_url: null, forward_template: null } }); $("ib-forward-url").value = ""; await loadInboxes(); }
  catch (err) { showError(err); }
}

async function deleteInbox() {
  if (!confirm(`Delete the inbox “${state.inbox.name}” and its captures?`)) return;
  try { await api(`inboxes/${state.inbox.id}`, { method: "DELETE" }); state.inbox = null; await loadInboxes(); }
  catch (err) { showError(err); }
}

function liveCapture(c) {
  const ib = state.inboxes.find((i) => i.id === c.inbox_id);
  if (ib) { ib.captures = (ib.captures || 0) + 1; renderInboxes(); }
  if (!state.inbox || c.inbox_id !== state.inbox.id) return;
  const verdict = $("ib-verdict").value;
  if (verdict && (verdict === "pass") !== c.verdict.ok) return;
  state.captures.unshift(c);
  renderCaptures();
}

function liveForward(f) {
  const c = state.captures.find((x) => x.id === f.capture_id);
  if (c) { c.forward = f; renderCaptures(); }
}

// ---- templates ----------------------------------------------------------------------
async function loadTemplates() {
  const data = await api("templates");
  state.presets = data.presets;
  const options = () => Object.entries(data.presets).map(([key, p]) => el("option", { value: key, text: p.title }));
  $("tpl-preset").replaceChildren(...options());
  $("ib-preset").replaceChildren(...options());
  $("tpl-text").value = data.presets.slack.template;
}

async function preview(event) {
  if (event) event.preventDefault();
  clearError("tpl-error");
  try {
    const r = await api("templates/preview", { method: "POST", body: { template: $("tpl-text").value, event: $("tpl-event").value || "message.sent" } });
    $("tpl-output").textContent = JSON.stringify(r.output, null, 2);
  } catch (err) {
    showError(err, "tpl-error");
    $("tpl-output").textContent = "";
  }
}

async function useTemplate(event) {
  event.preventDefault();
  const id = $("tpl-inbox").value;
  try {
    // Checked and saved by the plugin; a wrong template is refused with its line.
    const ib = await api(`inboxes/${id}`, { method: "PUT", body: { forward_template: $("tpl-text").value } });
    $("tpl-use-result").textContent = ib.forward_url ? `Saved: “${ib.name}” forwards with it.` : `Saved to “${ib.name}”; set its target URL on the Inspector tab.`;
    await loadInboxes();
  } catch (err) { $("tpl-use-result").textContent = err.message; }
}

// ---- live ---------------------------------------------------------------------------
function connect() {
  const source = window.plexichatLive ? window.plexichatLive.open("api/stream") : new EventSource("api/stream");
  const live = $("connection");
  source.addEventListener("open", () => { live.className = "badge badge-ok"; live.textContent = "Live"; });
  source.addEventListener("error", () => { live.className = "badge badge-wait"; live.textContent = "Reconnecting…"; });
  source.addEventListener("delivery", (e) => liveDelivery(JSON.parse(e.data)));
  // More changed at once than the stream pushes one by one: read the log again.
  source.addEventListener("resync", () => {
    if (state.signedIn) { loadLog(true); refreshHealthSoon(); }
  });
  source.addEventListener("capture", (e) => liveCapture(JSON.parse(e.data)));
  source.addEventListener("forward", (e) => liveForward(JSON.parse(e.data)));
  source.addEventListener("disabled", (e) => {
    const d = JSON.parse(e.data);
    notice(`Endpoint ${d.url} was switched off: ${d.reason}.`);
    loadEndpoints().catch(showError);
  });
}

async function init() {
  for (const tab of document.querySelectorAll('.tabs [role="tab"]')) tab.addEventListener("click", () => selectTab(tab));
  $("new-endpoint").addEventListener("submit", createEndpoint);
  $("edit-endpoint").addEventListener("submit", saveEndpoint);
  $("reload-endpoints").addEventListener("click", () => loadEndpoints().catch(showError));
  $("ep-test").addEventListener("click", testEndpoint);
  $("ep-delete").addEventListener("click", deleteEndpoint);
  $("recover-form").addEventListener("submit", recover);
  for (const b of document.querySelectorAll("[data-ago]")) b.addEventListener("click", () => { $("recover-since").value = localInput(new Date(Date.now() - Number(b.dataset.ago) * 1000)); });
  $("rotate-form").addEventListener("submit", rotate);
  for (const b of document.querySelectorAll("[data-lang]")) b.addEventListener("click", () => { state.lang = b.dataset.lang; renderSnippet(); });
  $("log-filters").addEventListener("submit", (e) => { e.preventDefault(); loadLog(true); });
  $("log-more").addEventListener("click", () => loadLog(false));
  $("d-resend").addEventListener("click", resend);
  $("new-inbox").addEventListener("submit", createInbox);
  $("ib-settings").addEventListener("submit", saveInbox);
  $("ib-hook").addEventListener("submit", inboxWebhook);
  $("ib-forward").addEventListener("submit", saveForward);
  $("ib-forward-off").addEventListener("click", stopForward);
  $("ib-delete").addEventListener("click", deleteInbox);
  $("ib-verdict").addEventListener("change", () => loadCaptures().catch(showError));
  $("ib-clear").addEventListener("click", async () => { try { await api(`inboxes/${state.inbox.id}/captures`, { method: "DELETE" }); await loadCaptures(); } catch (err) { showError(err); } });
  $("ib-copy").addEventListener("click", async () => { try { await navigator.clipboard.writeText($("ib-url").textContent); $("ib-copy").textContent = "Copied"; } catch { $("ib-copy").textContent = "Select and copy"; } });
  $("tpl-form").addEventListener("submit", preview);
  $("tpl-use").addEventListener("submit", useTemplate);
  $("tpl-preset").addEventListener("change", () => { $("tpl-text").value = state.presets[$("tpl-preset").value].template; preview(); });
  $("secret-copy").addEventListener("click", () => copyText($("secret-value").textContent, $("secret-copy")));
  $("secret-close").addEventListener("click", closeSecret);
  $("secret-dialog").addEventListener("cancel", () => { $("secret-value").textContent = ""; });
  try {
    await Promise.all([loadStatus(), loadTemplates()]);
    $("tpl-event").replaceChildren(...["message.sent", "user.login", "file.uploaded", "system.alert", "webhook.test"].map((e) => el("option", { value: e, text: e })));
    if (state.signedIn) { await loadCatalogue(); await loadEndpoints(); }
    await loadInboxes();
    await preview();
  } catch (err) { showError(err); }
  connect();
  // Signing in happens on the API Integration page: notice it without a reload.
  setInterval(async () => {
    if (state.signedIn) return;
    try {
      await loadStatus();
      if (state.signedIn) { await loadCatalogue(); await loadEndpoints(); if (state.inbox) showInbox(state.inbox, false); }
    } catch (err) { showError(err); }
  }, 10000);
}

window.webhookManager = { state, loadEndpoints, loadLog, loadInboxes, showDelivery, selectTab };
init();
