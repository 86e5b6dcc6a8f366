// Security Toolkit page: lock screen, vault list and editor, health report with one-click
// fixes, generator, TOTP codes, files (age, hashes, HMAC), import/export, keys and secure
// messages. Every action goes through the plugin's routes (api/...): no secret is kept
// in this page longer than the element showing it, and nothing is stored in the browser.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  unlocked: false,
  locksAt: 0,          // Date.now() when the server will lock the vault (idle)
  entries: [],
  selected: null,      // entry id in the editor, null = new
  report: null,
  totp: [],
  totpFetched: 0,
  file: null,
  contacts: [],
};
const CLIPBOARD_CLEAR_MS = 30000;

// ---- network ---------------------------------------------------------------------------
function describe(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  delete init.touch;
  delete init.raw;
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers = { "Content-Type": "application/json" };
    delete init.json;
  }
  const response = await fetch(`api/${path}`, init);
  if (options.raw && response.ok) return response;
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) {
    const error = new Error(describe(response.status, body));
    error.status = response.status;
    error.field = body && body.field;
    if (response.status === 423) setTimeout(refreshStatus, 0);  // locked meanwhile
    throw error;
  }
  // Routes that read the vault push the server's idle deadline; status and TOTP do not.
  if (state.unlocked && options.touch !== false) state.locksAt = Date.now() + state.idleMs;
  return body;
}

// Typing is work in the vault: told to the server at most every 20 s, so the idle lock
// does not clear an editor in mid-sentence (only requests counted, and typing sends none).
let lastActivity = 0;
document.addEventListener("input", () => {
  if (!state.unlocked || Date.now() - lastActivity < 20000) return;
  lastActivity = Date.now();
  api("activity", { method: "POST" }).catch(() => { /* locked meanwhile: the status says */ });
});

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showError(id, error) {
  const box = $(id);
  box.textContent = error ? (error.message || String(error)) : "";
  if (id === "page-error") box.hidden = !error;
}

function note(text) {
  const box = $("page-note");
  box.textContent = text;
  box.hidden = !text;
  if (text) setTimeout(() => { if (box.textContent === text) box.hidden = true; }, 6000);
}

// Run an async action with its button disabled and its error shown in `errorId`.
async function guarded(button, errorId, action) {
  if (button) button.disabled = true;
  showError(errorId, null);
  try { return await action(); } catch (error) { showError(errorId, error); return undefined; } finally {
    if (button) button.disabled = false;
  }
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea", { class: "sr-only" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  note(`${what} copied; the clipboard is cleared in 30 s.`);
  // One timer, the last copy's: each copy had its own, and an earlier one cleared a
  // later copy after a few seconds.
  clearTimeout(clipboardTimer);
  clipboardTimer = setTimeout(() => clearClipboard(text), CLIPBOARD_CLEAR_MS);
}

let clipboardTimer = null;
async function clearClipboard(copied) {
  try {
    // What the user copied since, elsewhere, stays.
    if (await navigator.clipboard.readText() !== copied) return;
  } catch { /* reading is not allowed here: cleared all the same */ }
  // Chromium drops an empty string without a word (the password stayed on the
  // clipboard for good): a single space replaces it.
  navigator.clipboard.writeText(" ").catch(() => {});
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function filename(response, fallback) {
  const header = response.headers.get("content-disposition") || "";
  const match = /filename="([^"]+)"/.exec(header);
  return match ? match[1] : fallback;
}

function meter(barId, textId, verdict) {
  const bar = $(barId);
  const score = verdict ? verdict.score : 0;
  bar.style.width = verdict ? `${(score + 1) * 20}%` : "0";
  bar.className = `m${score}`;
  if (!textId) return;
  if (!verdict) { $(textId).textContent = ""; return; }
  const times = verdict.crack_times || {};
  const advice = [verdict.warning, ...(verdict.suggestions || [])].filter(Boolean).join(" ");
  $(textId).textContent = `Strength ${score}/4 · offline, slow hash: ${times.offline_slow_hash || "–"} · ` +
    `fast hash: ${times.offline_fast_hash || "–"}${advice ? ` · ${advice}` : ""}`;
}

function debounce(fn, ms) {
  let timer = 0;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// ---- lock state ------------------------------------------------------------------------
async function refreshStatus() {
  let status;
  try { status = await api("status", { touch: false }); } catch (error) { showError("page-error", error); return; }
  showError("page-error", null);
  state.idleMs = status.idle_lock_seconds * 1000;
  const wasUnlocked = state.unlocked;
  state.unlocked = status.unlocked;
  state.v1User = status.v1_user;
  if (status.unlocked) state.locksAt = Date.now() + status.locks_in * 1000;
  $("locked").hidden = status.unlocked;
  $("unlocked").hidden = !status.unlocked;
  $("lock-now").hidden = !status.unlocked;
  const badge = $("lock-state");
  badge.className = `badge ${status.unlocked ? "badge-open" : "badge-locked"}`;
  badge.textContent = status.unlocked ? "Unlocked" : "Locked";
  const kdf = status.kdf ? `Argon2id ${Math.round(status.kdf.memory_kib / 1024)} MiB × ${status.kdf.time_cost}, ${status.kdf.parallelism} lanes` : "";
  $("vault-info").textContent = status.unlocked
    ? `${status.entries} entries · ${kdf} · AES-256-GCM`
    : (status.exists ? `Vault file ${status.path.split("/").pop()} · ${kdf}` : "No vault yet");
  if (!status.unlocked) {
    $("unlock-form").hidden = !status.exists || Boolean(status.damaged);
    $("create-form").hidden = status.exists;
    $("gate-title").textContent = status.exists ? "Unlock the vault" : "Create a vault";
    $("gate-reason").textContent = status.damaged ? status.damaged
      : (status.lock_reason && status.exists ? `Locked: ${status.lock_reason}.` : "");
    if (status.damaged) $("unlock-form").hidden = false;
    if (status.exists) $("unlock-password").focus();
    state.entries = [];
    state.totp = [];
    clearEditor();
  } else if (!wasUnlocked) {
    $("breach-list").value = status.breach_list || "";
    await loadEntries();
    showTab(currentTab());
  }
}

function tickLock() {
  if (!state.unlocked) return;
  const left = Math.max(0, Math.round((state.locksAt - Date.now()) / 1000));
  $("lock-state").textContent = `Unlocked · locks in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  if (left <= 0) refreshStatus();
}

$("unlock-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const button = event.submitter;
  guarded(button, "gate-error", async () => {
    const result = await api("vault/unlock", { method: "POST", json: { password: $("unlock-password").value } });
    $("unlock-password").value = "";
    if (result.upgraded) note("The vault's key derivation was upgraded to the current settings.");
    await refreshStatus();
  });
});

$("create-password").addEventListener("input", debounce(async () => {
  const password = $("create-password").value;
  if (!password) { meter("create-meter", "create-strength", null); return; }
  try { meter("create-meter", "create-strength", await api("strength", { method: "POST", json: { password } })); } catch { /* shown on submit */ }
}, 250));

$("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "gate-error", async () => {
    if ($("create-password").value !== $("create-confirm").value) throw new Error("The two passwords differ.");
    await api("vault/create", { method: "POST", json: { password: $("create-password").value } });
    $("create-password").value = $("create-confirm").value = "";
    await refreshStatus();
  });
});

$("lock-now").addEventListener("click", async () => {
  await api("vault/lock", { method: "POST" }).catch(() => {});
  await refreshStatus();
});

// ---- tabs ------------------------------------------------------------------------------
const TABS = ["vault", "health", "generator", "totp", "files", "transfer", "messages"];
function currentTab() {
  return TABS.find((t) => $(`tab-${t}`).getAttribute("aria-selected") === "true") || "vault";
}
function showTab(name) {
  for (const tab of TABS) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`pane-${tab}`).hidden = tab !== name;
  }
  if (name === "totp") loadTotp();
  if (name === "messages") loadKeys();
}
for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));

// ---- vault list and editor -------------------------------------------------------------
async function loadEntries() {
  const params = new URLSearchParams();
  if ($("search").value) params.set("q", $("search").value);
  const data = await api(`entries?${params}`);
  const folder = $("folder-filter").value;
  state.entries = data.entries.filter((e) => !folder || e.folder === folder);
  const select = $("folder-filter");
  const current = select.value;
  select.replaceChildren(el("option", { value: "", text: "All folders" }),
    ...data.folders.filter(Boolean).map((f) => el("option", { value: f, text: f })));
  select.value = data.folders.includes(current) ? current : "";
  $("folder-list").replaceChildren(...data.folders.filter(Boolean).map((f) => el("option", { value: f })));
  renderEntries(data.total);
}

function host(url) {
  try { return new URL(url).host; } catch { return url; }
}

function renderEntries(total) {
  const list = $("entry-list");
  const items = [];
  let folder = null;
  for (const entry of state.entries) {
    if (entry.folder !== folder) {
      folder = entry.folder;
      items.push(el("li", { class: "folder-head", text: folder || "No folder" }));
    }
    const dots = el("span", { class: `dots s${entry.has_password ? entry.score : 0}`, title: entry.has_password ? `strength ${entry.score}/4` : "no password" },
      el("i"), el("i"), el("i"), el("i"));
    const sub = [entry.username, host(entry.url)].filter(Boolean).join(" · ");
    const title = el("span", { text: entry.title });
    if (entry.has_totp) title.append(el("span", { class: "tag", text: "TOTP" }));
    for (const tag of entry.tags || []) title.append(el("span", { class: "tag", text: tag }));
    items.push(el("li", { "aria-selected": String(entry.id === state.selected) },
      el("button", { type: "button", onclick: () => openEntry(entry.id) }, title, dots, el("span", { class: "sub", text: sub || "—" }))));
  }
  list.replaceChildren(...items);
  $("entry-count").textContent = `${state.entries.length} shown of ${total}`;
}

function clearEditor() {
  state.selected = null;
  for (const id of ["e-title", "e-username", "e-password", "e-url", "e-folder", "e-tags", "e-totp", "e-notes"]) $(id).value = "";
  $("editor-title").textContent = "New entry";
  $("entry-stamps").textContent = "";
  $("e-delete").hidden = $("e-restore").hidden = $("e-history").hidden = true;
  $("e-history-list").replaceChildren();
  meter("e-meter", "e-strength", null);
  showError("entry-error", null);
}

async function openEntry(id) {
  await guarded(null, "entry-error", async () => {
    const entry = await api(`entries/${encodeURIComponent(id)}`);
    state.selected = id;
    state.selectedVersion = entry.version;  // a save over a change made since is refused
    $("e-title").value = entry.title;
    $("e-username").value = entry.username;
    $("e-password").value = entry.password;
    $("e-url").value = entry.url;
    $("e-folder").value = entry.folder;
    $("e-tags").value = (entry.tags || []).join(", ");
    $("e-totp").value = entry.totp;
    $("e-notes").value = entry.notes;
    $("editor-title").textContent = entry.title;
    $("entry-stamps").textContent = `password changed ${entry.password_changed.slice(0, 10)}` +
      (entry.history.length ? ` · ${entry.history.length} previous` : "");
    $("e-delete").hidden = false;
    $("e-restore").hidden = entry.history.length === 0;
    // Each earlier password can be copied (to change it on the site after a fix) without
    // undoing anything; fetched one at a time, as the current one is.
    $("e-history").hidden = entry.history.length === 0;
    $("e-history-list").replaceChildren(...entry.history.map((item, index) => el("li", {},
      el("span", { class: "muted small-text", text: `until ${item.until.slice(0, 16).replace("T", " ")}` }),
      el("button", { type: "button", class: "small ghost", onclick: async () => {
        const earlier = await api(`entries/${encodeURIComponent(id)}/history/${index}`);
        copy(earlier.password, "Earlier password");
      } }, "Copy"))));
    checkEntryStrength();
    renderEntries(state.entries.length);
  });
  showTab("vault");
}

const checkEntryStrength = debounce(async () => {
  const password = $("e-password").value;
  if (!password) { meter("e-meter", "e-strength", null); return; }
  try {
    meter("e-meter", "e-strength", await api("strength", { method: "POST", json: { password, user_inputs: [$("e-title").value, $("e-username").value] } }));
  } catch { /* the save shows errors */ }
}, 250);
$("e-password").addEventListener("input", checkEntryStrength);

function entryBody() {
  return {
    title: $("e-title").value.trim(), username: $("e-username").value, password: $("e-password").value,
    url: $("e-url").value.trim(), folder: $("e-folder").value.trim(), notes: $("e-notes").value,
    totp: $("e-totp").value.trim(), tags: $("e-tags").value.split(",").map((t) => t.trim()).filter(Boolean),
  };
}

$("entry-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded($("e-save"), "entry-error", async () => {
    const body = entryBody();
    const saved = state.selected
      ? await api(`entries/${state.selected}`, { method: "PUT",
        json: { ...body, version: state.selectedVersion } })
      : await api("entries", { method: "POST", json: body });
    note(`Saved “${saved.title}”.`);
    await loadEntries();
    await openEntry(saved.id);
  });
});
$("new-entry").addEventListener("click", () => { clearEditor(); renderEntries(state.entries.length); $("e-title").focus(); });
$("e-delete").addEventListener("click", () => guarded($("e-delete"), "entry-error", async () => {
  if (!state.selected || !window.confirm(`Delete “${$("e-title").value}”?`)) return;
  await api(`entries/${state.selected}`, { method: "DELETE" });
  clearEditor();
  await loadEntries();
}));
$("e-restore").addEventListener("click", () => guarded($("e-restore"), "entry-error", async () => {
  await api(`entries/${state.selected}/restore`, { method: "POST" });
  note("The previous password is current again.");
  await openEntry(state.selected);
}));
$("e-show").addEventListener("click", () => {
  const field = $("e-password");
  const show = field.type === "password";
  field.type = show ? "text" : "password";
  $("e-show").textContent = show ? "Hide" : "Show";
  $("e-show").setAttribute("aria-pressed", String(show));
});
$("e-copy").addEventListener("click", () => { if ($("e-password").value) copy($("e-password").value, "Password"); });
$("e-generate").addEventListener("click", () => guarded($("e-generate"), "entry-error", async () => {
  const made = await api("generate", { method: "POST", json: generatorBody() });
  $("e-password").value = made.values[0];
  meter("e-meter", "e-strength", made.strength);
}));
$("search").addEventListener("input", debounce(() => loadEntries().catch((e) => showError("page-error", e)), 200));
$("folder-filter").addEventListener("change", () => loadEntries().catch((e) => showError("page-error", e)));

// ---- health ----------------------------------------------------------------------------
const KIND_LABEL = { breached: "breached", weak: "weak", reused: "reused", old: "old" };

function renderReport(report) {
  state.report = report;
  const s = report.summary;
  const stat = (n, label, cls) => el("div", { class: `stat ${n ? cls : "ok"}` }, el("b", { text: String(n) }), el("span", { text: label }));
  $("health-summary").replaceChildren(
    stat(s.breached, "breached", "bad"), stat(s.weak, "weak", "warn"), stat(s.reused, "reused", "warn"),
    stat(s.old, "old", "warn"), el("div", { class: "stat ok" }, el("b", { text: String(s.healthy) }), el("span", { text: `healthy of ${report.checked}` })));
  const rows = report.issues.map((issue) => {
    const box = el("input", { type: "checkbox", value: issue.entry_id, "aria-label": `Select ${issue.title}` });
    return el("tr", {},
      el("td", {}, box),
      el("td", {}, el("button", { type: "button", class: "small ghost", onclick: () => openEntry(issue.entry_id) }, issue.title),
        el("div", { class: "sub", text: [issue.username, host(issue.url)].filter(Boolean).join(" · ") })),
      el("td", {}, ...issue.problems.map((p) => el("span", { class: `chip ${p.kind}`, title: p.detail, text: p.kind === "reused" ? `reused #${p.group}` : KIND_LABEL[p.kind] })),
        el("div", { class: "sub", text: issue.problems.map((p) => p.detail).join("; ") })),
      el("td", {}, el("span", { class: `dots s${issue.score}` }, el("i"), el("i"), el("i"), el("i"))),
      el("td", {}, el("button", { type: "button", class: "small", title: "Generate a new password and store it (undo below)", onclick: (ev) => fix([issue.entry_id], ev.currentTarget) }, "Fix")));
  });
  $("health-rows").replaceChildren(...rows);
  $("health-table").hidden = rows.length === 0;
  $("health-actions").hidden = rows.length === 0;
  $("health-all").checked = false;
  if (!rows.length) $("health-summary").append(el("p", { class: "small-text", text: "Nothing to fix: every password is strong, unique, recent and not in the breach list." }));
}

$("health-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "health-error", async () => {
    renderReport(await api("health", { method: "POST", json: { breach_list: $("breach-list").value.trim() } }));
  });
});
$("health-all").addEventListener("change", () => {
  for (const box of $("health-rows").querySelectorAll("input[type=checkbox]")) box.checked = $("health-all").checked;
});
$("fix-selected").addEventListener("click", () => {
  const ids = [...$("health-rows").querySelectorAll("input:checked")].map((b) => b.value);
  if (!ids.length) { showError("health-error", new Error("Select the entries to fix first.")); return; }
  fix(ids, $("fix-selected"));
});

async function fix(ids, button) {
  await guarded(button, "health-error", async () => {
    const kind = $("fix-kind").value;
    const result = await api("health/fix", { method: "POST", json: { entry_ids: ids, kind, breach_list: $("breach-list").value.trim() } });
    renderReport(result.report);
    if (result.note) note(result.note);
    const list = $("fixed-list");
    for (const item of result.fixed) {
      const row = el("li", {}, el("strong", { text: item.title }), ` — new ${kind}, strength ${item.score}/4`,
        el("button", { type: "button", class: "small ghost", onclick: async () => copy((await api(`entries/${item.entry_id}`)).password, "New password") }, "Copy new password"),
        item.url ? el("a", { href: item.url, target: "_blank", rel: "noopener noreferrer", class: "small-text" }, " Open site") : null,
        el("button", { type: "button", class: "small ghost", onclick: async (ev) => {
          await api(`entries/${item.entry_id}/restore`, { method: "POST" });
          ev.currentTarget.closest("li").remove();
          note(`“${item.title}” has its old password again.`);
          $("health-form").requestSubmit();
        } }, "Undo"));
      list.prepend(row);
    }
    $("fixed-box").hidden = false;
    await loadEntries();
  });
}

// ---- generator -------------------------------------------------------------------------
function generatorBody(count = 1) {
  const kind = document.querySelector("input[name=gen-kind]:checked").value;
  return {
    kind, count,
    password: { length: Number($("g-length").value), lower: $("g-lower").checked, upper: $("g-upper").checked,
      digits: $("g-digits").checked, symbols: $("g-symbols").checked, exclude_ambiguous: $("g-ambiguous").checked,
      exclude: $("g-exclude").value },
    passphrase: { words: Number($("g-words").value), separator: $("g-sep").value || "-", capitalize: $("g-cap").checked, number: $("g-num").checked },
  };
}
for (const radio of document.querySelectorAll("input[name=gen-kind]")) {
  radio.addEventListener("change", () => {
    const phrase = document.querySelector("input[name=gen-kind]:checked").value === "passphrase";
    $("gen-password-rules").hidden = phrase;
    $("gen-passphrase-rules").hidden = !phrase;
  });
}
$("g-length").addEventListener("input", () => { $("g-length-out").textContent = $("g-length").value; });
$("g-words").addEventListener("input", () => { $("g-words-out").textContent = $("g-words").value; });
$("gen-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "gen-error", async () => {
    const made = await api("generate", { method: "POST", json: generatorBody(5) });
    const verdict = made.strength;
    $("gen-out").replaceChildren(
      ...made.values.map((value) => el("div", { class: "gen-value" }, el("code", { text: value }),
        el("button", { type: "button", class: "small ghost", onclick: () => copy(value, "Value") }, "Copy"))),
      el("p", { class: "small-text", text: `${made.entropy_bits} bits of entropy from the generator · zxcvbn ${verdict.score}/4 · ` +
        `offline fast-hash attack: ${verdict.crack_times.offline_fast_hash}` }));
  });
});
$("check-password").addEventListener("input", debounce(async () => {
  const password = $("check-password").value;
  if (!password) { meter("check-meter", "check-out", null); return; }
  try { meter("check-meter", "check-out", await api("strength", { method: "POST", json: { password } })); } catch (e) { showError("gen-error", e); }
}, 250));

// ---- TOTP ------------------------------------------------------------------------------
async function loadTotp() {
  try {
    const data = await api("totp", { touch: false });
    state.totp = data.codes;
    state.totpFetched = Date.now();
    renderTotp();
  } catch (error) { showError("totp-error", error); }
}

function renderTotp() {
  const elapsed = (Date.now() - state.totpFetched) / 1000;
  const cards = state.totp.map((c) => {
    const left = Math.max(0, Math.ceil(c.remaining - elapsed));
    const pct = (left / c.period) * 100;
    return el("div", { class: "totp" },
      el("h3", { text: c.title }), el("div", { class: "sub", text: [c.issuer, c.account].filter(Boolean).join(" · ") || " " }),
      el("div", { class: "code", text: `${c.code.slice(0, Math.ceil(c.digits / 2))} ${c.code.slice(Math.ceil(c.digits / 2))}` }),
      el("div", { class: "bar" }, el("span", { class: left <= 5 ? "low" : "", style: `width:${pct}%` })),
      el("div", { class: "row" }, el("span", { text: `${left} s` }),
        el("span", {}, el("button", { type: "button", class: "small ghost", onclick: () => copy(c.code, "Code") }, "Copy"), " ",
          el("button", { type: "button", class: "small ghost", onclick: () => showQr(c) }, "QR"))));
  });
  $("totp-list").replaceChildren(...cards);
  $("totp-empty").hidden = cards.length > 0;
  if (state.totp.some((c) => c.remaining - elapsed <= 0)) loadTotp();
}

function showQr(code) {
  $("qr-img").src = `api/totp/${encodeURIComponent(code.entry_id)}/qr.svg?t=${Date.now()}`;
  $("qr-title").textContent = code.title;
  $("qr-box").hidden = false;
}
$("qr-close").addEventListener("click", () => { $("qr-box").hidden = true; $("qr-img").removeAttribute("src"); });
$("totp-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "totp-error", async () => {
    const added = await api("totp/import", { method: "POST", json: { uri: $("totp-uri").value.trim() } });
    $("totp-uri").value = "";
    note(`Added TOTP to “${added.entry.title}”.`);
    await loadTotp();
    await loadEntries();
  });
});

// ---- files -----------------------------------------------------------------------------
function fileMode() { return document.querySelector("input[name=file-mode]:checked").value; }
function syncFileMode() {
  const mode = fileMode();
  $("enc-opts").hidden = mode !== "encrypt";
  $("pass-opts").hidden = mode === "hash";
  $("hash-opts").hidden = mode !== "hash";
  $("file-go").textContent = { encrypt: "Encrypt", decrypt: "Decrypt", hash: "Hash" }[mode];
}
for (const radio of document.querySelectorAll("input[name=file-mode]")) radio.addEventListener("change", syncFileMode);
syncFileMode();

function takeFile(file) {
  state.file = file || null;
  $("file-name").textContent = file ? `${file.name} (${file.size.toLocaleString()} bytes)` : "";
  if (file && file.name.endsWith(".age")) document.querySelector("input[name=file-mode][value=decrypt]").checked = true;
  syncFileMode();
}
$("file-input").addEventListener("change", () => takeFile($("file-input").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  takeFile(event.dataTransfer.files[0]);
});
drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") $("file-input").click(); });

$("file-go").addEventListener("click", () => guarded($("file-go"), "file-error", async () => {
  if (!state.file) throw new Error("Choose or drop a file first.");
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  const mode = fileMode();
  $("file-out").replaceChildren();
  if (mode === "hash") {
    form.append("expected", $("expected").value);
    const result = await api("files/hash", { method: "POST", body: form });
    const lines = Object.entries(result.digests).map(([name, hex]) => el("div", {}, el("strong", { text: `${name}: ` }), el("code", { text: hex })));
    if (result.verify) lines.unshift(el("p", { class: result.verify.match ? "ok" : "why", text: result.verify.match ? `✓ matches (${result.verify.algorithm})` : "✗ matches none of these digests" }));
    $("file-out").replaceChildren(...lines);
    return;
  }
  if (mode === "encrypt") {
    form.append("recipients", $("recipients").value);
    form.append("to_self", String($("to-self").checked));
  }
  form.append("passphrase", $("file-pass").value);
  const response = await api(`files/${mode}`, { method: "POST", body: form, raw: true });
  const name = filename(response, mode === "encrypt" ? `${state.file.name}.age` : "decrypted");
  download(await response.blob(), name);
  $("file-out").textContent = `${mode === "encrypt" ? "Encrypted" : "Decrypted"}: saved as ${name}.`;
}));

$("hmac-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "hmac-error", async () => {
    const result = await api("hmac", { method: "POST", json: { message: $("hmac-message").value, key: $("hmac-key").value,
      key_encoding: $("hmac-enc").value, algorithm: $("hmac-alg").value, expected: $("hmac-expected").value || null } });
    $("hmac-out").hidden = false;
    $("hmac-out").textContent = `${result.algorithm}: ${result.hmac}` + ("match" in result ? `\n${result.match ? "✓ matches" : "✗ does not match"}` : "");
  });
});
$("hash-text-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "hmac-error", async () => {
    const result = await api("hash", { method: "POST", json: { text: $("hash-text").value } });
    $("hash-text-out").hidden = false;
    $("hash-text-out").textContent = Object.entries(result.digests).map(([n, h]) => `${n}: ${h}`).join("\n");
  });
});

// ---- import / export -------------------------------------------------------------------
$("csv-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "import-error", async () => {
    const file = $("csv-file").files[0];
    const text = file ? await file.text() : $("csv-text").value;
    const result = await api("import/csv", { method: "POST", json: { text } });
    $("import-out").textContent = `Imported ${result.imported} entries from a ${result.format} CSV.` + (result.warnings.length ? ` ${result.warnings.join("; ")}` : "");
    $("csv-text").value = "";
    await loadEntries();
  });
});
$("kdbx-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "import-error", async () => {
    const form = new FormData();
    form.append("file", $("kdbx-file").files[0]);
    form.append("password", $("kdbx-pass").value);
    if ($("kdbx-key").files[0]) form.append("keyfile", $("kdbx-key").files[0]);
    const result = await api("import/kdbx", { method: "POST", body: form });
    $("import-out").textContent = `Imported ${result.imported} entries from the KeePass database.` + (result.warnings.length ? ` ${result.warnings.join("; ")}` : "");
    $("kdbx-pass").value = "";
    await loadEntries();
  });
});
$("export-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "export-error", async () => {
    const format = $("export-format").value;
    if (format !== "kdbx" && !window.confirm("A CSV export holds every password in plain text. Export anyway?")) return;
    const response = await api("export", { method: "POST", json: { format, password: $("export-pass").value }, raw: true });
    const name = filename(response, format === "kdbx" ? "vault-export.kdbx" : "vault.csv");
    download(await response.blob(), name);
    $("export-pass").value = "";
    $("export-out").textContent = `Exported as ${name}.`;
  });
});
$("master-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "export-error", async () => {
    await api("vault/password", { method: "POST", json: { current: $("master-current").value, new: $("master-new").value } });
    $("master-current").value = $("master-new").value = "";
    $("export-out").textContent = "Master password changed.";
  });
});

// ---- keys and messages -----------------------------------------------------------------
async function loadKeys() {
  await guarded(null, "contact-error", async () => {
    const keys = await api("keys");
    $("my-key").textContent = keys.public_key;
    $("my-fingerprint").textContent = keys.fingerprint;
    $("my-age").textContent = keys.age_recipient;
    state.contacts = keys.contacts;
    renderContacts();
    $("publish-key").hidden = keys.published !== false;  // null: not logged in to PlexiChat
    $("publish-state").textContent = keys.published === true ? "✓ published in the PlexiChat key directory"
      : keys.published === false ? "not published yet: contacts cannot fetch it" : "";
    const status = await api("status", { touch: false });
    $("v1-user").textContent = status.v1_user ? `as ${status.v1_user.username}` : "(log in on the API Integration page to send)";
    const select = $("thread-with");
    const current = select.value;
    select.replaceChildren(...state.contacts.map((c) => el("option", { value: c.user_id, text: c.username })));
    if (current && state.contacts.some((c) => c.user_id === current)) select.value = current;
    if (status.v1_user && select.value) await loadThread();
  });
}

function renderContacts() {
  $("contacts").replaceChildren(...state.contacts.map((c) => el("li", {},
    el("div", {}, el("strong", { text: c.username }), " ",
      el("span", { class: `trust ${c.verified ? "verified" : "unverified"}`, text: c.verified ? "verified" : "not verified" }),
      el("span", { class: "muted small-text", text: ` · key ${c.source === "directory" ? "from the directory" : "exchanged by hand"}` })),
    el("div", { class: "small-text" }, "Safety number — compare it with theirs, in person or by voice:"),
    el("div", { class: "safety", text: c.safety_number.split(" ").reduce((out, group, i) => out + (i === 6 ? "\n" : i ? " " : "") + group, "") }),
    el("div", { class: "row-form" },
      el("button", { type: "button", class: "small ghost", onclick: () => setVerified(c, !c.verified) }, c.verified ? "Mark unverified" : "Numbers match: mark verified"),
      el("button", { type: "button", class: "small ghost danger", onclick: () => removeContact(c) }, "Remove")))));
}

async function setVerified(contact, verified) {
  await guarded(null, "contact-error", async () => {
    await api(`contacts/${encodeURIComponent(contact.user_id)}`, { method: "PUT", json: { verified } });
    await loadKeys();
  });
}
async function removeContact(contact) {
  if (!window.confirm(`Forget ${contact.username}'s key?`)) return;
  await guarded(null, "contact-error", async () => {
    await api(`contacts/${encodeURIComponent(contact.user_id)}`, { method: "DELETE" });
    await loadKeys();
  });
}
$("copy-key").addEventListener("click", () => copy($("my-key").textContent, "Public key"));
$("publish-key").addEventListener("click", () => guarded($("publish-key"), "contact-error", async () => {
  await api("keys/publish", { method: "POST" });
  await loadKeys();
}));
$("contact-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "contact-error", async () => {
    await api("contacts", { method: "POST", json: { username: $("contact-user").value.trim(), public_key: $("contact-key").value.trim() } });
    $("contact-user").value = $("contact-key").value = "";
    await loadKeys();
  });
});

const TRUST_TEXT = { verified: "verified", unverified: "key not verified", mine: "sent", plain: "not encrypted",
  "key changed": "KEY CHANGED", "unknown key": "unknown key", "old key": "your old key", unreadable: "unreadable" };

async function loadThread() {
  const userId = $("thread-with").value;
  if (!userId) { $("thread").replaceChildren(); return; }
  const data = await api(`messages/${encodeURIComponent(userId)}`);
  $("thread").replaceChildren(...data.messages.map((m) => el("li", { class: m.from_me ? "me" : "" },
    el("span", { text: m.text === null ? `[${m.error}]` : m.text }),
    el("span", { class: "meta" }, `${new Date(m.timestamp).toLocaleString()} `,
      el("span", { class: `trust ${m.trust.replace(" ", "-")}`, text: TRUST_TEXT[m.trust] || m.trust })))));
  $("thread").scrollTop = $("thread").scrollHeight;
}
$("thread-with").addEventListener("change", () => guarded(null, "send-error", loadThread));
$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, "send-error", async () => {
    const userId = $("thread-with").value;
    if (!userId) throw new Error("Pin a contact's key first.");
    await api(`messages/${encodeURIComponent(userId)}`, { method: "POST", json: { text: $("send-text").value } });
    $("send-text").value = "";
    await loadThread();
  });
});

// ---- start -----------------------------------------------------------------------------
window.securityToolkit = { state, refreshStatus, showTab, openEntry, loadEntries };
refreshStatus();
setInterval(tickLock, 1000);
setInterval(() => { if (state.unlocked && currentTab() === "totp") renderTotp(); }, 1000);
setInterval(() => { if (!document.hidden) refreshStatus(); }, 15000);
