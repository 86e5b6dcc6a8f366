// API Integration page. No libraries: the page works offline and the host's CSP only
// allows scripts from this origin. URLs are relative, so they stay inside
// /plugins/api_integration_layer/.
"use strict";

const MAX_ROWS = 200;
const $ = (id) => document.getElementById(id);
// held: the requests that came while the log was paused, shown when it goes on.
const state = { status: null, mode: "login", paused: false, rows: 0, held: [], warning: "" };

// ---- formatting ---------------------------------------------------------------------
function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 0) return "expired";
  if (s < 120) return `in ${s} s`;
  if (s < 7200) return `in ${Math.round(s / 60)} min`;
  return `in ${Math.round(s / 3600)} h`;
}

function detailText(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const loc = (d.loc || []).filter((x) => x !== "body").join(".");
      return loc ? `${loc}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

function setText(id, text) {
  $(id).textContent = text;
}

// ---- status -------------------------------------------------------------------------
function renderStatus(status) {
  state.status = status;
  const conn = status.connection;
  const badge = $("connection");
  const labels = { online: "Online", offline: "Offline", unknown: "Connecting…" };
  badge.textContent = labels[conn.state] || conn.state;
  badge.className = "badge " + ({ online: "badge-live", offline: "badge-down" }[conn.state]
    || "badge-wait");
  setText("base-url", status.base_url);
  setText("server-kind", status.embedded ? "embedded server of this app" : "remote server");
  const server = status.server;
  setText("server-name", server ? `${server.name} ${server.version || ""} (${server.server || "?"})` : "—");
  setText("server-routes", server
    ? `${server.routes} served, ${server.supported} known to the client` +
      (server.missing_on_server.length ? `, ${server.missing_on_server.length} missing` : "")
    : "—");
  setText("server-latency", conn.latency_ms == null ? "—" : `${conn.latency_ms.toFixed(1)} ms`);
  setText("server-error", conn.last_error || "none");

  const user = status.user;
  $("signed-in").hidden = !user;
  $("auth-form").hidden = !!user;
  if (user) {
    setText("user-name", user.display_name && user.display_name !== user.username
      ? `${user.display_name} (@${user.username})` : `@${user.username}`);
    setText("user-id", user.id);
    const session = status.session;
    setText("session-expiry", session ? `${clock(session.expires_at)} (${duration(session.expires_in)})` : "—");
    setText("session-refreshes", session ? String(session.refreshes) : "0");
  }
  const where = { keyring: "the keyring", file: "a private file (0600)",
    memory: "memory only" }[status.token_storage] || status.token_storage;
  // Not kept: signed in until the app stops ("Keep me logged in" was not ticked).
  setText("token-storage", status.session && status.session.kept === false
    ? "nowhere: until the app stops" : where);

  renderLimit(status.rate_limit);
  const cache = status.cache;
  setText("cache-entries", cache.enabled ? `${cache.entries} of ${cache.max_entries} (TTL ${cache.ttl} s)` : "off");
  setText("cache-rate", cache.hit_rate == null ? "—"
    : `${(cache.hit_rate * 100).toFixed(1)} % (${cache.hits} hits, ${cache.misses} misses)`);
  setText("cache-invalidations", String(cache.invalidations));
  setText("requests-total", String(status.requests_total));
  $("consumers-none").hidden = status.consumers.length > 0;
  $("consumers").replaceChildren(...status.consumers.map((c) => {
    const item = document.createElement("li");
    const name = document.createElement("b");
    name.textContent = c.plugin_id;
    const scopes = document.createElement("span");
    scopes.className = "muted scopes";
    scopes.textContent = c.scopes.join(" · ") || "no scopes";
    item.append(name, " ", scopes);
    return item;
  }));
}

function renderLimit(limit) {
  const bar = $("tokens-bar");
  if (limit.tokens == null) {
    setText("limit-tokens", "no client-side limit");
    bar.querySelector(".fill").style.width = "100%";
    bar.setAttribute("aria-valuenow", "100");
    bar.className = "bar";
  } else {
    const pct = Math.max(0, Math.min(100, (limit.tokens / limit.burst) * 100));
    setText("limit-tokens", `${limit.tokens.toFixed(1)} of ${limit.burst}`);
    bar.querySelector(".fill").style.width = `${pct}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(pct)));
    bar.className = "bar" + (pct < 5 ? " empty" : pct < 25 ? " low" : "");
  }
  setText("limit-rate", limit.rate_per_second ? `${limit.rate_per_second} / s` : "unlimited");
  setText("limit-throttled", `${limit.throttled} request(s), ${limit.waited_seconds.toFixed(2)} s`);
  setText("limit-server", String(limit.server_limited));
  const paused = Object.entries(limit.paused || {});
  setText("limit-paused", paused.length
    ? paused.map(([key, s]) => `${key === "*" ? "all requests" : key} for ${s.toFixed(1)} s`).join(", ")
    : "no");
}

// ---- request log --------------------------------------------------------------------
function statusClass(status) {
  if (status == null || status >= 500) return "status-bad";
  if (status >= 400) return "status-warn";
  return "status-ok";
}

function addRow(record, fresh) {
  const row = document.createElement("tr");
  if (fresh) row.className = "fresh";
  const cells = [
    clock(record.at),
    record.method,
    record.path,
    record.status == null ? "no answer" : String(record.status),
    record.cache_hit ? "—" : `${record.latency_ms.toFixed(1)} ms`,
    record.cache_hit ? "hit" : "",
    record.caller || "",
  ];
  cells.forEach((text, i) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (i === 2) cell.className = "path";
    if (i === 3) cell.className = statusClass(record.status);
    if (i === 4) cell.className = "num";
    if (i === 5 && record.cache_hit) cell.className = "hit";
    if (record.attempts > 1 && i === 3) cell.title = `attempts: ${record.statuses.join(", ")}`;
    if (record.error && i === 3) cell.title = (cell.title ? cell.title + "\n" : "") + record.error;
    row.appendChild(cell);
  });
  const body = $("log-rows");
  body.insertBefore(row, body.firstChild);
  while (body.children.length > MAX_ROWS) body.removeChild(body.lastChild);
  $("log-empty").hidden = true;
}

// ---- forms --------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  $("tab-login").setAttribute("aria-selected", String(mode === "login"));
  $("tab-register").setAttribute("aria-selected", String(mode === "register"));
  document.querySelectorAll(".register-only").forEach((el) => { el.hidden = mode !== "register"; });
  $("f-password").autocomplete = mode === "register" ? "new-password" : "current-password";
  setText("submit", mode === "register" ? "Create account and log in" : "Log in");
  state.mfaToken = null;
  $("mfa-step").hidden = true;
  $("form-error").hidden = true;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    throw new Error(data && data.detail !== undefined ? detailText(data.detail)
      : `HTTP ${response.status}`);
  }
  return data;
}

async function submitForm(event) {
  event.preventDefault();
  const error = $("form-error");
  error.hidden = true;
  const body = {
    username: $("f-username").value.trim(),
    password: $("f-password").value,
    remember_me: $("f-remember").checked,
  };
  if (state.mode === "register") {
    body.email = $("f-email").value.trim();
    const display = $("f-display").value.trim();
    if (display) body.display_name = display;
  }
  $("submit").disabled = true;
  try {
    let answer;
    if (state.mfaToken) {
      // The second step of a login with 2FA: the code (or a recovery code).
      answer = await post("api/login-2fa", { mfa_token: state.mfaToken, code: $("f-mfa").value });
    } else {
      answer = await post(state.mode === "register" ? "api/register" : "api/login", body);
    }
    if (answer && answer.requires_mfa) {
      state.mfaToken = answer.mfa_token;
      $("mfa-step").hidden = false;
      setText("submit", "Confirm code");
      $("f-mfa").focus();
      return;
    }
    state.mfaToken = null;
    $("mfa-step").hidden = true;
    $("f-mfa").value = "";
    renderStatus(answer);
    $("f-password").value = "";
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  } finally {
    $("submit").disabled = false;
  }
}

async function logout() {
  $("logout").disabled = true;
  try {
    const answer = await post("api/logout");
    // Kept over the status events that follow (they clear passing errors).
    state.warning = answer.warning || "";
    renderStatus(answer);
    showError(state.warning);
  } catch (err) {
    showError(`Logging out failed: ${err.message}`);
  } finally {
    $("logout").disabled = false;
  }
}

function showError(text) {
  const el = $("page-error");
  el.textContent = text;
  el.hidden = !text;
}

// ---- start --------------------------------------------------------------------------
// A failed answer is an error with the route's own words (a 500 was read as a status).
async function getJson(path) {
  const answer = await fetch(path, { credentials: "same-origin" });
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    const detail = body && body.detail ? body.detail : `HTTP ${answer.status}`;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

async function load() {
  try {
    const [status, log] = await Promise.all([getJson("api/status"), getJson("api/log")]);
    renderStatus(status);
    log.requests.forEach((record) => addRow(record, false));
  } catch (err) {
    showError(`Could not load the status: ${err.message}`);
  }
  follow();
}

const RECONNECT_MS = 5000;

function follow() {
  // The app's shared live connection (/_app/live/client.js) when the page has it: a
  // stream per open page would use up the browser's connections to the server.
  const events = window.plexichatLive ? window.plexichatLive.open("api/events")
    : new EventSource("api/events");
  events.addEventListener("status", (e) => {
    const status = JSON.parse(e.data);
    if (status.user) state.warning = "";  // signed in again: the old warning is done
    showError(state.warning || "");
    renderStatus(status);
  });
  events.addEventListener("request", (e) => {
    const record = JSON.parse(e.data);
    if (!state.paused) addRow(record, true);
    else {
      state.held.push(record);
      if (state.held.length > MAX_ROWS) state.held.shift();
      setText("log-held", `(${state.held.length} held)`);
    }
    if (record.rate_limit) renderLimit(record.rate_limit);
    if (state.status) {
      state.status.requests_total += 1;
      setText("requests-total", String(state.status.requests_total));
    }
  });
  events.addEventListener("error", () => {
    const badge = $("connection");
    badge.textContent = "Reconnecting…";
    badge.className = "badge badge-wait";
    if (events.readyState === EventSource.CLOSED) {
      // Refused (e.g. the plugin was disabled): the browser will not retry by itself.
      events.close();
      setTimeout(follow, RECONNECT_MS);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("auth-form").addEventListener("submit", submitForm);
  $("tab-login").addEventListener("click", () => setMode("login"));
  $("tab-register").addEventListener("click", () => setMode("register"));
  $("logout").addEventListener("click", logout);
  $("pause-log").addEventListener("change", (e) => {
    state.paused = e.target.checked;
    if (state.paused) return;
    // Going on shows what came meanwhile (it was dropped: a gap in the log).
    state.held.forEach((record) => addRow(record, true));
    state.held = [];
    setText("log-held", "");
  });
  setMode("login");
  load();
});
