// User Manager: the account console. Talks only to this plugin's routes (api/...), which
// act through the API integration layer's session. No inline script (the CSP forbids it).

const $ = (id) => document.getElementById(id);
const state = {
  overview: null, mfaToken: null, logOffset: 0, logTotal: 0, codes: [], strengthSeq: 0,
  strength: null, lateWatch: null,
};

const EVENT_LABELS = {
  login: "Signed in", login_failed: "Failed sign-in", new_device: "New device",
  logout: "Signed out", session_revoked: "Sessions ended",
  "2fa_setup_started": "2FA set-up started", "2fa_enabled": "2FA turned on",
  "2fa_disabled": "2FA turned off", recovery_codes_regenerated: "New recovery codes",
  recovery_code_used: "Recovery code used", password_changed: "Password changed",
  password_reset: "Password reset", password_reset_issued: "Reset token issued",
};
const BAD_EVENTS = new Set(["login_failed", "new_device", "2fa_disabled",
  "password_reset_issued"]);

// ---- helpers --------------------------------------------------------------------------
function detailText(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const loc = (d.loc || []).filter((x) => x !== "body" && x !== "query").join(".");
      return loc ? `${loc}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  if (detail && typeof detail === "object") return JSON.stringify(detail);
  return String(detail);
}

class RequestError extends Error {
  constructor(status, data) {
    super(data && data.detail !== undefined ? detailText(data.detail) : `HTTP ${status}`);
    this.status = status;
    this.data = data || {};
  }
}

async function call(path, { method = "GET", body } = {}) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const error = new RequestError(response.status, data);
    // The session ended elsewhere (signed out, password reset): show the sign-in form.
    if (response.status === 409 && data && data.signed_out && path !== "api/overview") {
      loadOverview();
    }
    throw error;
  }
  return data;
}

function show(id, on) { $(id).hidden = !on; }
function setText(id, text) { $(id).textContent = text; }

function fail(id, err) {
  const el = $(id);
  el.textContent = err instanceof Error ? err.message : String(err);
  el.hidden = false;
}

function note(text) {
  const el = $("page-note");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(note.timer);
  note.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function ago(iso) {
  if (!iso) return "—";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

async function busy(buttonId, work) {
  const b = $(buttonId);
  b.disabled = true;
  try { return await work(); } finally { b.disabled = false; }
}

function saveText(filename, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    // No clipboard permission (a desktop window without it): copy through a selection.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    area.remove();
    return ok;
  }
}

// ---- overview ---------------------------------------------------------------------------
async function loadOverview() {
  $("page-error").hidden = true;
  let data;
  try {
    data = await call("api/overview");
  } catch (err) {
    fail("page-error", err);
    setText("who", "Unavailable");
    $("who").className = "badge badge-bad";
    return;
  }
  state.overview = data;
  const where = data.server.embedded ? "the embedded server on this computer (works offline)"
    : data.server.base_url;
  setText("server-line", `Account on ${where}`);
  show("signed-out", !data.signed_in);
  show("signed-in", data.signed_in);
  show("sign-out", data.signed_in);
  if (!data.signed_in) {
    if (data.ended) note(`The session ended: ${data.ended}`);
    setText("who", "Signed out");
    $("who").className = "badge badge-wait";
    return;
  }
  const user = data.user;
  setText("who", user.is_admin ? `${user.username} · administrator` : user.username);
  $("who").className = "badge badge-live";
  renderProfile(user);
  renderMfa(data.mfa);
  renderNewDevices(data.recent_new_devices || []);
  show("nav-admin", user.is_admin);
  show("sec-admin", user.is_admin);
  await Promise.all([loadSessions(), loadLog(true), user.is_admin ? loadUsers() : null]);
}

function renderProfile(user) {
  const name = user.display_name || user.username;
  setText("avatar", name.slice(0, 1).toUpperCase());
  setText("id-name", name);
  setText("id-user", `@${user.username}`);
  $("pf-display").value = user.display_name || "";
  $("pf-email").value = user.email || "";
  $("pf-first").value = user.first_name || "";
  $("pf-last").value = user.last_name || "";
  setText("pf-username", user.username);
  setText("pf-created", when(user.created_at));
  setText("pf-last-login", when(user.last_login));
  setText("delete-username", user.username);
  $("delete-confirm").placeholder = user.username;
  show("delete-admin-row", Boolean(user.is_admin));
  updateDeleteButton();
}

// ---- sign in, forgot ---------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  $("si-error").hidden = true;
  await busy("si-submit", async () => {
    try {
      if (state.mfaToken) {
        const done = await call("api/login-2fa", { method: "POST",
          body: { mfa_token: state.mfaToken, code: $("si-code").value } });
        if (done.recovery_codes_remaining !== null && done.recovery_codes_remaining !== undefined) {
          note(`Signed in with a recovery code: ${done.recovery_codes_remaining} left.`);
        }
      } else {
        const answer = await call("api/login", { method: "POST", body: {
          username: $("si-username").value.trim(), password: $("si-password").value,
          remember_me: $("si-remember").checked } });
        if (answer.requires_mfa) {
          state.mfaToken = answer.mfa_token;
          show("si-mfa-step", true);
          setText("si-submit", "Confirm code");
          $("si-code").focus();
          return;
        }
      }
      resetSignIn();
      await loadOverview();
    } catch (err) {
      // The ticket expired (or was used up): start again from the password.
      if (state.mfaToken && /mfa_token/.test(err.message)) resetSignIn();
      fail("si-error", err);
    }
  });
}

function resetSignIn() {
  state.mfaToken = null;
  show("si-mfa-step", false);
  $("si-code").value = "";
  $("si-password").value = "";
  setText("si-submit", "Sign in");
}

async function forgot(event) {
  event.preventDefault();
  $("fg-error").hidden = true;
  const kind = document.querySelector('input[name="fg-kind"]:checked').value;
  const body = { username: $("fg-username").value.trim(), new_password: $("fg-password").value };
  body[kind] = $("fg-secret").value.trim();
  await busy("fg-submit", async () => {
    try {
      const result = await call("api/forgot", { method: "POST", body });
      $("fg-secret").value = "";
      $("fg-password").value = "";
      note(result.two_factor_disabled
        ? "Password set, and two-factor sign-in is off: sign in with the new password, then set it up again."
        : "Password set. Sign in with the new password.");
      $("si-username").value = body.username;
      $("si-password").focus();
    } catch (err) { fail("fg-error", err); }
  });
}

async function signOut() {
  try {
    await call("api/logout", { method: "POST" });
  } catch (err) { fail("page-error", err); }
  await loadOverview();
}

// ---- profile and password -----------------------------------------------------------------
async function saveProfile(event) {
  event.preventDefault();
  $("pf-error").hidden = true;
  const body = { display_name: $("pf-display").value.trim() || null,
    first_name: $("pf-first").value.trim() || null, last_name: $("pf-last").value.trim() || null };
  const email = $("pf-email").value.trim();
  if (email) body.email = email;
  await busy("pf-save", async () => {
    try {
      renderProfile(await call("api/profile", { method: "PUT", body }));
      note("Profile saved.");
    } catch (err) { fail("pf-error", err); }
  });
}

let strengthTimer = null;
function scheduleStrength() {
  clearTimeout(strengthTimer);
  strengthTimer = setTimeout(measure, 200);
  updatePasswordButton();
}

async function measure() {
  const seq = ++state.strengthSeq;
  const password = $("pw-new").value;
  let result;
  try {
    result = await call("api/password/strength", { method: "POST", body: { password } });
  } catch (err) {
    if (seq === state.strengthSeq) setText("pw-feedback", err.message);
    return;
  }
  if (seq !== state.strengthSeq) return;  // a newer keystroke is being measured
  state.strength = result;
  renderStrength(result, password);
  updatePasswordButton();
}

function renderStrength(r, password) {
  const meter = $("pw-meter");
  meter.setAttribute("aria-valuenow", String(password ? r.score : 0));
  meter.dataset.score = password ? String(r.score) : "";
  setText("pw-label", password ? `Strength: ${r.label}` : "Type a new password");
  setText("pw-crack", password && r.crack_time
    ? `About ${r.crack_time} to crack offline; ${r.crack_time_online} guessing online.` : "");
  const list = $("pw-checks");
  list.replaceChildren(...r.checks.map((c) => {
    const li = document.createElement("li");
    li.className = c.ok ? "ok" : "bad";
    li.textContent = c.text;
    return li;
  }));
  const tips = [r.warning, ...r.suggestions].filter(Boolean);
  if (password && r.score < r.min_score) tips.unshift(`Needs a score of ${r.min_score} or more here.`);
  setText("pw-feedback", password ? tips.join(" ") : "");
}

function updatePasswordButton() {
  const r = state.strength;
  const pw = $("pw-new").value;
  const same = pw === $("pw-repeat").value;
  $("pw-submit").disabled = !(r && r.acceptable && pw && same && $("pw-current").value);
  $("pw-repeat").setCustomValidity(same ? "" : "The passwords differ");
}

async function changePassword(event) {
  event.preventDefault();
  $("pw-error").hidden = true;
  if ($("pw-new").value !== $("pw-repeat").value) {
    fail("pw-error", "The two new passwords differ.");
    return;
  }
  await busy("pw-submit", async () => {
    try {
      const result = await call("api/password/change", { method: "POST", body: {
        current_password: $("pw-current").value, new_password: $("pw-new").value,
        end_other_sessions: $("pw-end-others").checked } });
      ["pw-current", "pw-new", "pw-repeat"].forEach((id) => { $(id).value = ""; });
      state.strength = null;
      renderStrength({ score: 0, label: "", checks: [], warning: "", suggestions: [], min_score: 0 }, "");
      note(`Password changed${result.sessions_ended ? `; ${result.sessions_ended} other session(s) signed out` : ""}.`);
      await Promise.all([loadSessions(), loadLog(true)]);
    } catch (err) { fail("pw-error", err); }
  });
  updatePasswordButton();
}

// ---- two-factor ---------------------------------------------------------------------------
function renderMfa(mfa) {
  const on = mfa.enabled;
  $("mfa-badge").className = on ? "badge badge-live" : "badge badge-wait";
  setText("mfa-badge", on ? "On" : "Off");
  setText("nav-2fa", on ? "on" : "off");
  $("nav-2fa").className = on ? "pill pill-ok" : "pill pill-warn";
  setText("mfa-summary", on
    ? `Signing in asks for a code from your authenticator app (turned on ${when(mfa.enabled_at)}). ` +
      `${mfa.recovery_codes_remaining} of ${mfa.recovery_codes_total} recovery codes left.`
    : "Only your password protects the account. Add a code from an authenticator app: a stolen password is then not enough.");
  const low = on && mfa.low_recovery_codes;
  const unreadable = on && mfa.secret_readable === false;
  show("mfa-low", low || unreadable);
  if (unreadable) {
    setText("mfa-low", "This server cannot read your authenticator key (its key file is " +
      "missing or another one, e.g. after restoring a backup on another computer): codes " +
      "from your app are refused. Turn two-factor sign-in off with a recovery code and set it up again.");
  } else if (low) {
    setText("mfa-low", mfa.recovery_codes_remaining === 0
      ? "No recovery codes left: make new ones now, or losing your phone locks you out."
      : `Only ${mfa.recovery_codes_remaining} recovery code(s) left: make new ones.`);
  }
  show("mfa-on-actions", on);
  show("mfa-off-actions", !on && $("mfa-wizard").hidden);
  show("delete-code-row", on);  // deleting the account asks for a code too
  if (mfa.recovery_codes_unseen) {
    // The call that made the codes timed out after the server made them: the user has
    // 2FA on and no codes until new ones are made, and must be told so every time.
    stopLateWatch();
    setText("mfa-unseen", "Two-factor sign-in is on, but its recovery codes were never " +
      "shown (the server answered too late). Make new ones now with your password and a " +
      "current code: until then, losing your phone locks you out.");
    show("mfa-unseen", true);
  } else if (!state.lateWatch) {
    show("mfa-unseen", false);
  }
}

// After a timed-out 2FA set-up the server may still turn 2FA on: look every few seconds
// (for longer than the layer's slow_timeout) so the page says so when it happens.
function watchForLateMfa(message) {
  stopLateWatch();
  setText("mfa-unseen", message);
  show("mfa-unseen", true);
  const until = Date.now() + 180_000;
  state.lateWatch = setInterval(async () => {
    if (Date.now() > until) { stopLateWatch(); return; }
    try { renderMfa(await call("api/2fa")); } catch (_) { /* still busy: next time */ }
  }, 3000);
}

function stopLateWatch() {
  if (state.lateWatch) clearInterval(state.lateWatch);
  state.lateWatch = null;
}

// A 504 with recovery_codes_unseen: codes were (or may yet be) made and never shown.
function codesLost(err) {
  const data = err instanceof RequestError ? err.data : {};
  if (!data.recovery_codes_unseen) return false;
  show("mfa-wizard", false);
  $("mfa-qr").removeAttribute("src");
  setText("mfa-key", "—");
  show("codes-panel", false);
  if (data.mfa && data.mfa.enabled) {
    renderMfa(data.mfa);
    setText("mfa-unseen", err.message);
    $("regen-password").focus();
  } else {
    if (data.mfa) renderMfa(data.mfa);
    watchForLateMfa(err.message);
  }
  $("sec-2fa").scrollIntoView({ block: "nearest" });
  return true;
}

async function refreshMfa() {
  try { renderMfa(await call("api/2fa")); } catch (err) { fail("page-error", err); }
}

async function startSetup(event) {
  event.preventDefault();
  $("mfa-error").hidden = true;
  $("mfa-start-error").hidden = true;
  await busy("mfa-start", async () => {
    let setup;
    try {
      // The password confirms it: a stolen session alone cannot add an authenticator.
      setup = await call("api/2fa/setup", { method: "POST",
        body: { password: $("mfa-password").value } });
    } catch (err) { fail("mfa-start-error", err); return; }
    $("mfa-password").value = "";
    // An <img> of the SVG: no markup from an answer is ever put into the page.
    $("mfa-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(setup.qr_svg)}`;
    setText("mfa-key", setup.secret_grouped || setup.secret);
    $("mfa-key").dataset.secret = setup.secret;
    show("mfa-wizard", true);
    show("mfa-off-actions", false);
    $("mfa-code").value = "";
    $("mfa-code").focus();
  });
}

async function verifySetup(event) {
  event.preventDefault();
  $("mfa-error").hidden = true;
  await busy("mfa-verify", async () => {
    try {
      const result = await call("api/2fa/verify", { method: "POST",
        body: { code: $("mfa-code").value.trim() } });
      show("mfa-wizard", false);
      $("mfa-qr").removeAttribute("src");
      setText("mfa-key", "—");
      showCodes(result.recovery_codes);
      await refreshMfa();
      await loadLog(true);
    } catch (err) { if (!codesLost(err)) fail("mfa-error", err); }
  });
}

function cancelSetup() {
  show("mfa-wizard", false);
  $("mfa-qr").removeAttribute("src");
  show("mfa-off-actions", true);
}

function showCodes(codes) {
  state.codes = codes;
  $("codes-list").replaceChildren(...codes.map((c) => {
    const li = document.createElement("li");
    li.textContent = c;
    return li;
  }));
  show("codes-panel", true);
  $("codes-panel").scrollIntoView({ block: "nearest" });
}

function codesText() {
  const user = state.overview && state.overview.user ? state.overview.user.username : "";
  return [`PlexiChat recovery codes for ${user}`, `Made ${new Date().toISOString()}`,
    "Each code works once.", "", ...state.codes, ""].join("\n");
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
}

function printableSheet() {
  const user = state.overview && state.overview.user ? state.overview.user.username : "";
  const items = state.codes.map((c) => `<li>${escapeHtml(c)}</li>`).join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>PlexiChat recovery codes</title><style>
body{font:14px/1.5 system-ui,sans-serif;margin:2cm}ol{columns:2;font:16px ui-monospace,monospace}
</style></head><body><h1>PlexiChat recovery codes</h1>
<p>Account <strong>${escapeHtml(user)}</strong>, made ${escapeHtml(new Date().toLocaleString())}.
Each code works once: to sign in without your authenticator app, or to reset a forgotten
password. Print this page (Ctrl+P), keep it somewhere safe, then delete the file.</p>
<ol>${items}</ol></body></html>\n`;
}

async function regenerate(event) {
  event.preventDefault();
  $("regen-error").hidden = true;
  await busy("regen-submit", async () => {
    try {
      const result = await call("api/2fa/regenerate", { method: "POST",
        body: { password: $("regen-password").value, code: $("regen-code").value.trim() } });
      $("regen-password").value = "";
      $("regen-code").value = "";
      showCodes(result.recovery_codes);
      await refreshMfa();
    } catch (err) { if (!codesLost(err)) fail("regen-error", err); }
  });
}

async function disableMfa(event) {
  event.preventDefault();
  $("disable-error").hidden = true;
  await busy("disable-submit", async () => {
    try {
      await call("api/2fa/disable", { method: "POST", body: {
        password: $("disable-password").value, code: $("disable-code").value.trim() } });
      $("disable-password").value = "";
      $("disable-code").value = "";
      show("codes-panel", false);
      note("Two-factor sign-in is off.");
      await refreshMfa();
      await loadLog(true);
    } catch (err) { fail("disable-error", err); }
  });
}

// ---- sessions ----------------------------------------------------------------------------
function renderNewDevices(events) {
  const recent = events.filter((e) => Date.now() - new Date(e.at).getTime() < 7 * 86400_000);
  show("new-devices", recent.length > 0);
  if (recent.length) {
    setText("new-devices", `New device${recent.length > 1 ? "s" : ""} this week: ` +
      recent.map((e) => `${e.device_label} (${ago(e.at)})`).join(", ") +
      ". Not you? Sign that session out and change your password.");
  }
}

async function loadSessions() {
  let data;
  try { data = await call("api/sessions"); } catch (err) { fail("page-error", err); return; }
  setText("nav-sessions", String(data.total));
  $("sessions-rows").replaceChildren(...data.sessions.map((s) => {
    const tr = document.createElement("tr");
    const device = cell(s.device_label || "unknown client");
    if (s.current) {
      const badge = document.createElement("span");
      badge.className = "pill pill-ok";
      badge.textContent = "this session";
      device.append(" ", badge);
    }
    if (s.connected) {
      const live = document.createElement("span");
      live.className = "pill";
      live.textContent = "connected";
      device.append(" ", live);
    }
    tr.append(device, cell(when(s.created_at)), cell(ago(s.last_used_at)),
      cell(when(s.expires_at)));
    const actions = document.createElement("td");
    actions.className = "actions";
    actions.append(button(s.current ? "Sign out" : "Sign out", "small", async () => {
      try {
        await call(`api/sessions/${encodeURIComponent(s.id)}/revoke`, { method: "POST" });
        if (s.current) { await loadOverview(); return; }
        note(`Signed out ${s.device_label}.`);
        await Promise.all([loadSessions(), loadLog(true)]);
      } catch (err) { fail("page-error", err); }
    }));
    tr.append(actions);
    if (s.current) tr.className = "current";
    return tr;
  }));
  $("revoke-others").disabled = data.total < 2;
}

async function revokeOthers() {
  await busy("revoke-others", async () => {
    try {
      const result = await call("api/sessions/revoke-others", { method: "POST" });
      note(`Signed out ${result.sessions_ended} other session(s).`);
      await Promise.all([loadSessions(), loadLog(true)]);
    } catch (err) { fail("page-error", err); }
  });
}

// ---- security log -------------------------------------------------------------------------
function describeEvent(e) {
  const d = e.detail || {};
  switch (e.kind) {
    case "login": return `${d.method === "password" ? "password" : d.method === "totp"
      ? "password and code" : "password and recovery code"}${d.new_device ? ", new device" : ""}`;
    case "login_failed": return { password: "wrong password", "2fa_code": "wrong 2FA code",
      recovery_code: "wrong recovery code" }[d.reason] || d.reason || "";
    case "recovery_code_used": return `${d.remaining} left`;
    case "password_changed": return d.sessions_ended ? `${d.sessions_ended} other session(s) signed out` : "";
    case "password_reset": return `with a ${d.method === "reset_token" ? "reset token" : "recovery code"}`;
    case "password_reset_issued": return `by ${d.issued_by}, valid until ${when(d.expires_at)}${d.disable_2fa ? ", switches 2FA off" : ""}`;
    case "session_revoked": return `${(d.sessions || []).length} session(s)`;
    case "2fa_disabled": return d.confirmed_with === "reset_token"
      ? `by the administrator ${d.by_administrator || ""}'s reset token`
      : `confirmed with a ${d.confirmed_with === "totp" ? "code" : "recovery code"}`;
    case "recovery_codes_regenerated": return d.confirmed_with ? `confirmed with a ${d.confirmed_with === "totp" ? "code" : "recovery code"}` : "";
    default: return "";
  }
}

async function loadLog(reset) {
  if (reset) state.logOffset = 0;
  const kind = $("log-kind").value;
  const query = new URLSearchParams({ offset: String(state.logOffset) });
  if (kind) query.set("kind", kind);
  let data;
  try { data = await call(`api/security-log?${query}`); } catch (err) { fail("page-error", err); return; }
  const select = $("log-kind");
  if (select.options.length === 1) {
    for (const k of data.kinds) select.add(new Option(EVENT_LABELS[k] || k, k));
  }
  const rows = data.events.map((e) => {
    const tr = document.createElement("tr");
    const what = cell(EVENT_LABELS[e.kind] || e.kind);
    if (BAD_EVENTS.has(e.kind)) what.className = "event-bad";
    tr.append(cell(when(e.at)), what, cell(e.device_label || "—"), cell(describeEvent(e)));
    return tr;
  });
  if (reset) $("log-rows").replaceChildren(...rows); else $("log-rows").append(...rows);
  state.logOffset += data.events.length;
  state.logTotal = data.total;
  setText("log-count", `${state.logOffset} of ${data.total} entries`);
  show("log-more", data.has_more);
}

// ---- your data ----------------------------------------------------------------------------
function updateDeleteButton() {
  const user = state.overview && state.overview.user;
  $("delete-submit").disabled = !user || $("delete-confirm").value !== user.username ||
    !$("delete-password").value;
}

async function deleteAccount(event) {
  event.preventDefault();
  $("delete-error").hidden = true;
  await busy("delete-submit", async () => {
    try {
      await call("api/delete-account", { method: "POST", body: {
        confirm: $("delete-confirm").value, password: $("delete-password").value,
        code: $("delete-code").value.trim(), confirm_admin: $("delete-admin-ok").checked } });
      ["delete-confirm", "delete-password", "delete-code"].forEach((id) => { $(id).value = ""; });
      $("delete-admin-ok").checked = false;
      note("The account was deleted.");
      await loadOverview();
    } catch (err) { fail("delete-error", err); }
  });
  updateDeleteButton();
}

// ---- administration -----------------------------------------------------------------------
// Errors of the list and its actions are shown above it: the page's own banner sat
// thousands of pixels above a row clicked far down.
function adminFail(err) {
  fail("admin-error", err);
  $("admin-error").scrollIntoView({ block: "nearest" });
}

async function loadUsers(event, more = false) {
  if (event) event.preventDefault();
  const query = $("admin-query").value.trim();
  const offset = more ? $("admin-rows").children.length : 0;
  let data;
  try {
    data = await call(`api/admin/users?${new URLSearchParams({ query, offset })}`);
  } catch (err) { adminFail(err); return; }
  $("admin-error").hidden = true;
  const me = state.overview.user.id;
  const rows = data.users.map((u) => {
    const tr = document.createElement("tr");
    const who = cell(u.display_name && u.display_name !== u.username
      ? `${u.display_name} (@${u.username})` : `@${u.username}`);
    tr.append(who, cell(when(u.created_at)), cell(u.is_online ? "online" : "—"));
    const actions = document.createElement("td");
    actions.className = "actions";
    if (u.id !== me) {
      actions.append(button("Issue reset token", "small", () => issueToken(u)));
    }
    tr.append(actions);
    return tr;
  });
  if (more) $("admin-rows").append(...rows);
  else $("admin-rows").replaceChildren(...rows);
  // Past 50 the list went on nowhere: the rest could only be found by searching.
  const shown = $("admin-rows").children.length;
  setText("admin-count", `${shown} of ${data.total} user(s)${query ? ` matching “${query}”` : ""}`);
  $("admin-more").hidden = shown >= data.total || data.users.length === 0;
}

async function issueToken(user) {
  const box = $("admin-token");
  const off2fa = $("admin-disable-2fa").checked;
  const name = `@${user.username}`;
  // Asked first: a token tells the user at once (a high-priority notice) and ends any
  // earlier one, so a second click left the first token handed over dead.
  if (!window.confirm(`Issue a one-time password reset token for ${name}?` +
      (off2fa ? " Using it also switches their two-factor sign-in OFF." : "") +
      " Any token issued before for them stops working, and they are notified.")) return;
  try {
    const t = await call("api/admin/reset-token", { method: "POST", body: {
      user_id: user.id, disable_2fa: off2fa,
      expires_minutes: Number($("admin-expires").value) } });
    // For this token only: a box left ticked switched 2FA off for every later one.
    $("admin-disable-2fa").checked = false;
    $("admin-error").hidden = true;
    box.replaceChildren();
    const text = document.createElement("p");
    text.textContent = `One-time reset token for @${t.username}, valid until ${when(t.expires_at)}. ` +
      "Hand it over yourself; they enter it under “Forgot your password?”." +
      (t.disable_2fa ? " Using it also switches their two-factor sign-in off." : "");
    const code = document.createElement("code");
    code.className = "key";
    code.textContent = t.reset_token;
    box.append(text, code, " ", button("Copy", "small", async () => {
      note(await copyText(t.reset_token) ? "Copied." : "Copy failed: select the token instead.");
    }));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });  // it appeared far above a row lower down
  } catch (err) { adminFail(err); }
}

// ---- wiring ----------------------------------------------------------------------------
function wire() {
  $("refresh").addEventListener("click", loadOverview);
  $("sign-out").addEventListener("click", signOut);
  $("signin-form").addEventListener("submit", signIn);
  $("forgot-form").addEventListener("submit", forgot);
  document.querySelectorAll('input[name="fg-kind"]').forEach((r) => r.addEventListener("change", () => {
    setText("fg-secret-label", r.value === "reset_token" ? "Reset token" : "Recovery code");
  }));
  $("profile-form").addEventListener("submit", saveProfile);
  $("password-form").addEventListener("submit", changePassword);
  $("pw-new").addEventListener("input", scheduleStrength);
  $("pw-repeat").addEventListener("input", updatePasswordButton);
  $("pw-current").addEventListener("input", updatePasswordButton);
  $("mfa-start-form").addEventListener("submit", startSetup);
  $("mfa-verify-form").addEventListener("submit", verifySetup);
  $("mfa-cancel").addEventListener("click", cancelSetup);
  $("mfa-copy-key").addEventListener("click", async () => {
    note(await copyText($("mfa-key").dataset.secret || "") ? "Key copied." : "Copy failed: type the key instead.");
  });
  $("codes-download").addEventListener("click", () => saveText("plexichat-recovery-codes.txt", codesText()));
  $("codes-copy").addEventListener("click", async () => {
    note(await copyText(codesText()) ? "Recovery codes copied." : "Copy failed: download them instead.");
  });
  // The desktop window has no print dialog: there, "Print" saves a printable sheet to
  // open in any browser; a browser prints the page itself (print CSS shows only the codes).
  const desktop = /QtWebEngine/.test(navigator.userAgent);
  if (desktop) setText("codes-print", "Printable sheet (.html)");
  $("codes-print").addEventListener("click", () => {
    if (desktop) saveText("plexichat-recovery-codes.html", printableSheet(), "text/html");
    else window.print();
  });
  $("codes-done").addEventListener("click", () => { show("codes-panel", false); state.codes = []; });
  $("regen-form").addEventListener("submit", regenerate);
  $("disable-form").addEventListener("submit", disableMfa);
  $("revoke-others").addEventListener("click", revokeOthers);
  $("log-kind").addEventListener("change", () => loadLog(true));
  $("log-more").addEventListener("click", () => loadLog(false));
  $("delete-confirm").addEventListener("input", updateDeleteButton);
  $("delete-password").addEventListener("input", updateDeleteButton);
  $("delete-form").addEventListener("submit", deleteAccount);
  $("admin-search").addEventListener("submit", (event) => loadUsers(event));
  $("admin-more").addEventListener("click", () => loadUsers(null, true));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.overview && state.overview.signed_in) {
      loadSessions();
    }
  });
}

// Live: the plugin relays the account's security notifications and the end of its
// session from the realtime socket (api/events); the browser reconnects by itself.
function follow() {
  const source = new EventSource("api/events");
  const signedIn = () => state.overview && state.overview.signed_in;
  source.addEventListener("security", (event) => {
    const data = JSON.parse(event.data);
    note(`${data.title}: ${data.message}`);
    if (signedIn()) loadOverview();
  });
  source.addEventListener("signed_out", () => { if (signedIn()) loadOverview(); });
  source.addEventListener("refresh", () => { if (signedIn()) loadOverview(); });
}

wire();
follow();
loadOverview().then(() => {
  if (state.overview && state.overview.signed_in) measure();
});
window.userManager = { state, loadOverview, showCodes, measure };
