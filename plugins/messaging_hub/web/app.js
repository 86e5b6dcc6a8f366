// Messaging Hub page. Talks only to this plugin's routes (api/...) and follows its event
// stream (api/stream). Text from messages is put into the page with textContent; the only
// HTML inserted is the server's sanitised markdown rendering (markdown-it without raw
// HTML, then the nh3 allow-list).
import { renderChart } from "/_app/vendor/charts.js";

const $ = (id) => document.getElementById(id);
const state = {
  status: null, filter: "all", q: "", rows: [], cursor: -1, open: null, other: null,
  messages: new Map(), order: [], nextOffset: 0, hasMore: false, replyTo: null,
  templates: [], tplEditing: null, tplVars: {}, undo: null, outboxTab: "open", heldSeen: new Set(),
  // composerChanged: typed here since the draft was loaded or saved; stash: what was typed
  // before a template was picked, {to, text}.
  composerChanged: false, stash: null,
  zone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
  draftTimer: null, inboxTimer: null, analyticsSeq: 0,
};

class ApiProblem extends Error {
  constructor(message, field, status, data) { super(message); this.field = field; this.status = status; this.data = data; }
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
    throw new ApiProblem(String(detail), data && data.field, response.status, data);
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
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

function showError(target, problem) {
  const node = $(target);
  if (!problem) { node.hidden = true; node.textContent = ""; return; }
  node.hidden = false;
  node.textContent = problem.message || String(problem);
}

function pageError(problem) { showError("page-error", problem); }

// -- time helpers -----------------------------------------------------------------------
function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

// "just now", "5 min ago", "3 h ago", "2 d ago"
function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// -- tabs -------------------------------------------------------------------------------
const TABS = ["inbox", "outbox", "templates", "analytics", "away"];
function showTab(name) {
  for (const tab of TABS) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`sec-${tab}`).hidden = tab !== name;
  }
  if (!state.status || !state.status.signed_in) return;
  if (name === "outbox") loadOutbox();
  if (name === "templates") loadTemplates();
  if (name === "analytics") loadAnalytics();
  if (name === "away") loadAway();
}
for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));

// -- status and the live stream ------------------------------------------------------------
function setConnection(text, kind) {
  const badge = $("connection");
  badge.textContent = text;
  badge.className = `badge badge-${kind}`;
}

async function loadStatus() {
  state.status = await api("status");
  const signed = state.status.signed_in;
  $("signin").hidden = signed;
  $("who").textContent = signed ? `as ${state.status.user.display_name}` : "not signed in";
  $("sec-inbox").classList.toggle("disabled", !signed);
  $("sec-inbox").inert = !signed;
  $("chat-none").textContent = signed ? "Pick a conversation, or start one on the left."
    : "Your conversations show here once you are signed in.";
  setLive(state.status.live);
  return signed;
}

function setLive(live) {
  if (live === "open") setConnection("Live", "ok");
  else if (live === "signed out") setConnection("Signed out", "wait");
  else setConnection(live === "connecting" ? "Connecting…" : "Reconnecting…", "wait");
}

function follow() {
  const source = window.plexichatLive ? window.plexichatLive.open("api/stream") : new EventSource("api/stream");
  const on = (name, fn) => source.addEventListener(name, (event) => {
    try { fn(JSON.parse(event.data)); } catch (err) { console.warn("event", name, err); }
  });
  on("live", (data) => {
    setLive(data.state);
    if (data.state === "open" && data.reconnect) refreshAll();
    if (data.state === "open" && state.status && !state.status.signed_in) start();
  });
  on("message", (msg) => {
    const partner = msg.mine ? msg.recipient_id : msg.sender_id;
    if (state.open === partner) addMessage(msg, true);
    else if (state.open && msg.thread_id && state.messages.has(msg.thread_id)) addMessage(msg, true);
    if (openThreadId && (msg.thread_id === openThreadId)) openThread(openThreadId);
    scheduleInbox();
  });
  on("message_updated", (msg) => { if (state.messages.has(msg.id)) { state.messages.set(msg.id, msg); renderMessage(msg); } });
  on("message_deleted", (data) => {
    state.messages.delete(data.id);
    const node = document.querySelector(`[data-id="${CSS.escape(data.id)}"]`);
    if (node) node.remove();
    scheduleInbox();
  });
  on("reaction", (data) => {
    const msg = state.messages.get(data.message_id);
    if (!msg) return;
    const mine = new Set((msg.reactions || []).filter((r) => r.me).map((r) => r.emoji));
    if (data.user_id === state.status.user.id) {
      if (data.action === "added") mine.add(data.emoji); else mine.delete(data.emoji);
    }
    msg.reactions = data.reactions.map((r) => ({ ...r, me: mine.has(r.emoji) }));
    renderMessage(msg);
  });
  on("presence_update", (data) => {
    const row = state.rows.find((r) => r.user_id === data.user_id);
    if (row) { row.is_online = data.status !== "offline"; renderInbox(); }
    if (state.open === data.user_id) $("chat-online").hidden = data.status === "offline";
  });
  on("outbox", (item) => {
    if (state.open === item.recipient_id) renderPending();
    if (!$("sec-outbox").hidden) loadOutbox();
    if (state.undo && state.undo.id === item.id && item.state !== "pending") hideToast();
    if (item.state === "failed") pageError(new Error(`A message could not be sent: ${item.error}. It is kept in the Outbox (Failed) to retry.`));
    if (item.state === "held" && !state.heldSeen.has(item.id)) {
      state.heldSeen.add(item.id);
      pageError(new Error(`Your edit was not sent: ${heldLead(item)} It is kept in the Outbox: send it as a new message, or discard it.`));
    }
    scheduleInbox();
  });
  on("away", () => { if (!$("sec-away").hidden) loadAway(); });
  source.addEventListener("error", () => { if (source.readyState === 2) setConnection("Offline", "bad"); });
}

// -- the inbox -----------------------------------------------------------------------------
const FILTER_LABELS = { all: "All", waiting: "Waiting on you", unread: "Unread", scheduled: "Scheduled", drafts: "Drafts" };

function scheduleInbox() {
  clearTimeout(state.inboxTimer);
  state.inboxTimer = setTimeout(() => loadInbox().catch(pageError), 150);
}

async function loadInbox() {
  const data = await api(`inbox?filter=${encodeURIComponent(state.filter)}&q=${encodeURIComponent(state.q)}`);
  state.rows = data.conversations;
  renderFilters(data.counts);
  renderInbox();
  const row = state.rows.find((r) => r.user_id === state.open);
  if (row) { $("chat-waiting").hidden = !row.waiting; }
}

function renderFilters(counts) {
  const box = $("filters");
  box.replaceChildren(...Object.entries(FILTER_LABELS).map(([key, label], i) => el("button", {
    type: "button", class: `filter${state.filter === key ? " active" : ""}${key === "waiting" && counts[key] ? " hot" : ""}`,
    "aria-pressed": String(state.filter === key), title: `Alt+${i + 1}`,
    onclick: () => { state.filter = key; loadInbox().catch(pageError); },
  }, label, el("span", { class: "count", text: String(counts[key] ?? 0) }))));
}

function renderInbox() {
  const list = $("conv-list");
  list.replaceChildren(...state.rows.map((row, index) => {
    const preview = row.last_message ?? (row.draft ? "Draft" : row.scheduled ? "Scheduled message" : "");
    return el("li", {
      role: "option", "data-user": row.user_id, "aria-selected": String(row.user_id === state.open),
      class: `conv${index === state.cursor ? " cursor" : ""}${row.unread_count ? " unread" : ""}`,
      onclick: () => { state.cursor = index; openConversation(row.user_id); },
    },
    el("div", { class: "conv-top" },
      el("span", { class: `dot${row.is_online ? "" : " off"}`, title: row.is_online ? "online" : "offline" }),
      el("strong", { class: "conv-name", text: row.display_name }),
      el("span", { class: "muted small-text", text: when(row.last_message_time) })),
    el("div", { class: "conv-preview" },
      el("span", { class: "muted", text: `${row.last_from === "me" ? "You: " : ""}${preview}` })),
    el("div", { class: "conv-marks" },
      row.waiting ? el("span", { class: "badge badge-warn", text: `waiting ${duration((Date.now() - new Date(row.waiting_since).getTime()) / 1000)}` }) : null,
      row.unread_count ? el("span", { class: "badge badge-accent", text: `${row.unread_count} new` }) : null,
      row.draft ? el("span", { class: "badge badge-wait", text: "draft" }) : null,
      row.scheduled ? el("span", { class: "badge badge-wait", text: `${row.scheduled} scheduled` }) : null));
  }));
  $("conv-empty").hidden = state.rows.length > 0;
}

function moveCursor(step) {
  if (!state.rows.length) return;
  state.cursor = Math.max(0, Math.min(state.rows.length - 1, state.cursor + step));
  renderInbox();
  const node = $("conv-list").children[state.cursor];
  if (node) node.scrollIntoView({ block: "nearest" });
}

$("inbox-q").addEventListener("input", () => { state.q = $("inbox-q").value.trim(); scheduleInbox(); });

// -- a conversation --------------------------------------------------------------------------
async function openConversation(userId, around = null) {
  await saveDraftNow();
  state.open = userId;
  state.replyTo = null;
  $("tpl-pick").value = "";
  renderTplVars(null);
  showError("composer-error", null);
  $("reply-note").hidden = true;
  const query = around ? `around=${encodeURIComponent(around)}` : "limit=50";
  const data = await api(`conversation/${encodeURIComponent(userId)}?${query}`);
  state.other = data.other_user;
  state.messages = new Map();
  state.order = [];
  state.nextOffset = data.next_offset;
  state.hasMore = data.has_more;
  $("chat-none").hidden = true;
  $("chat-body").hidden = false;
  $("chat-title").textContent = data.other_user ? data.other_user.display_name : userId;
  const row = state.rows.find((r) => r.user_id === userId);
  $("chat-online").hidden = !(row && row.is_online);
  $("chat-waiting").hidden = !(row && row.waiting);
  $("messages").replaceChildren();
  for (const msg of data.messages) addMessage(msg, false);
  $("load-older").hidden = !state.hasMore;
  const draft = data.draft;
  if (draft && draft.reply_to && state.messages.has(draft.reply_to)) startReply(state.messages.get(draft.reply_to));
  $("content").value = draft ? draft.content : "";
  $("msg-type").value = draft ? draft.message_type : "text";
  state.composerChanged = false;
  $("draft-state").textContent = draft ? "draft restored" : "";
  updateComposer();
  renderPending(data.outbox);
  if (around) {
    const node = document.querySelector(`[data-id="${CSS.escape(around)}"]`);
    if (node) { node.classList.add("found"); node.scrollIntoView({ block: "center" }); }
  } else {
    $("messages").scrollTop = $("messages").scrollHeight;
  }
  renderInbox();
  scheduleInbox();
}

$("load-older").addEventListener("click", async () => {
  const data = await api(`conversation/${encodeURIComponent(state.open)}?limit=50&offset=${state.nextOffset}`);
  const list = $("messages");
  const before = list.scrollHeight;
  for (const msg of [...data.messages].reverse()) addMessage(msg, false, true);
  state.nextOffset = data.next_offset;
  state.hasMore = data.has_more;
  $("load-older").hidden = !state.hasMore;
  list.scrollTop = list.scrollHeight - before;
});

function body(msg) {
  if (msg.message_type === "code") return el("pre", { class: "code" }, el("code", { text: msg.content }));
  if (msg.message_type === "markdown" && msg.html !== undefined) {
    const div = el("div", { class: "md" });
    div.innerHTML = msg.html;  // sanitised on the server (markdown-it without HTML + nh3)
    return div;
  }
  return el("div", { class: "text", text: msg.content });
}

function messageNode(msg) {
  const who = msg.mine ? "You" : (state.other ? state.other.display_name : "");
  const reactions = el("div", { class: "reactions" }, (msg.reactions || []).map((r) => el("button", {
    type: "button", class: `chip${r.me ? " me" : ""}`, title: r.me ? "Take back" : "React too",
    onclick: () => toggleReaction(msg, r.emoji, r.me),
  }, `${r.emoji} ${r.count}`)));
  const actions = el("div", { class: "actions" },
    el("button", { type: "button", class: "link", text: "React", onclick: (e) => pickReaction(e, msg) }),
    el("button", { type: "button", class: "link", text: "Reply in thread", onclick: () => startReply(msg) }),
    msg.mine ? el("button", { type: "button", class: "link", text: "Edit", onclick: () => editMessage(msg) }) : null,
    msg.mine ? el("button", { type: "button", class: "link danger-text", text: "Delete", onclick: () => deleteMessage(msg) }) : null);
  const threadLink = msg.reply_count ? el("button", { type: "button", class: "link thread-link",
    text: `${msg.reply_count} ${msg.reply_count === 1 ? "reply" : "replies"}`, onclick: () => openThread(msg.id) }) : null;
  const inThread = msg.reply_to ? el("button", { type: "button", class: "link small-text", text: "↳ in a thread",
    onclick: () => openThread(msg.thread_id || msg.reply_to) }) : null;
  return el("li", { class: `msg${msg.mine ? " mine" : ""}${msg.auto ? " auto" : ""}`, "data-id": msg.id },
    el("div", { class: "meta" }, el("strong", { text: who }),
      el("span", { class: "muted small-text", text: when(msg.timestamp), title: new Date(msg.timestamp).toLocaleString() }),
      msg.edited ? el("span", { class: "muted small-text", text: "(edited)" }) : null,
      msg.auto ? el("span", { class: "badge badge-wait", text: "auto-reply" }) : null, inThread),
    body(msg), reactions, threadLink, actions);
}

function addMessage(msg, live, prepend = false) {
  if (state.messages.has(msg.id)) { state.messages.set(msg.id, msg); renderMessage(msg); return; }
  state.messages.set(msg.id, msg);
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const node = messageNode(msg);
  if (prepend) list.prepend(node); else list.append(node);
  if (live && atBottom) list.scrollTop = list.scrollHeight;
  if (msg.thread_id && state.messages.has(msg.thread_id) && live) {
    const root = state.messages.get(msg.thread_id);
    root.reply_count = (root.reply_count || 0) + 1;
    renderMessage(root);
  }
}

function renderMessage(msg) {
  const node = document.querySelector(`#messages [data-id="${CSS.escape(msg.id)}"]`);
  if (node) node.replaceWith(messageNode(msg));
}

async function toggleReaction(msg, emoji, mine) {
  try {
    const updated = mine
      ? await api(`messages/${msg.id}/reactions?emoji=${encodeURIComponent(emoji)}`, { method: "DELETE" })
      : await api(`messages/${msg.id}/reactions`, { method: "POST", body: { emoji } });
    state.messages.set(msg.id, { ...msg, ...updated });
    renderMessage(state.messages.get(msg.id));
  } catch (err) { pageError(err); }
}

function pickReaction(event, msg) {
  document.querySelectorAll(".emoji-pick").forEach((n) => n.remove());
  const pick = el("div", { class: "emoji-pick", role: "menu" }, state.status.reactions.map((emoji) => el("button", {
    type: "button", role: "menuitem", text: emoji, onclick: () => { pick.remove(); toggleReaction(msg, emoji, false); },
  })));
  event.target.closest(".msg").append(pick);
  pick.querySelector("button").focus();
}

function startReply(msg) {
  state.replyTo = msg.id;
  $("reply-note").hidden = false;
  $("reply-text").textContent = `“${msg.content.slice(0, 60)}${msg.content.length > 60 ? "…" : ""}”`;
  $("content").focus();
}
$("reply-cancel").addEventListener("click", () => { state.replyTo = null; $("reply-note").hidden = true; });

async function editMessage(msg) {
  const node = document.querySelector(`#messages [data-id="${CSS.escape(msg.id)}"]`);
  const area = el("textarea", { rows: "3", maxlength: "10000", class: "edit-area" });
  area.value = msg.content;
  const error = el("p", { class: "field-error", hidden: true });
  const save = async () => {
    try {
      const updated = await api(`messages/${msg.id}`, { method: "PATCH", body: { content: area.value } });
      state.messages.set(msg.id, updated);
      renderMessage(updated);
    } catch (err) { error.hidden = false; error.textContent = err.message; }
  };
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
    if (e.key === "Escape") { e.stopPropagation(); renderMessage(msg); }
  });
  node.replaceChildren(area, error, el("div", { class: "row compact" },
    el("button", { type: "button", class: "small", text: "Save", onclick: save }),
    el("button", { type: "button", class: "small", text: "Cancel", onclick: () => renderMessage(msg) })));
  area.focus();
}

async function deleteMessage(msg) {
  try {
    await api(`messages/${msg.id}`, { method: "DELETE" });
    state.messages.delete(msg.id);
    document.querySelector(`#messages [data-id="${CSS.escape(msg.id)}"]`)?.remove();
  } catch (err) { pageError(err); }
}

// -- threads and search results (the right panel) --------------------------------------------
let openThreadId = null;
async function openThread(messageId) {
  try {
    const data = await api(`thread/${encodeURIComponent(messageId)}`);
    openThreadId = data.thread_id;
    $("right").hidden = false;
    $("right-title").textContent = `Thread · ${data.total} ${data.total === 1 ? "reply" : "replies"}`;
    const items = [data.root, ...data.messages].filter(Boolean);
    $("right-body").replaceChildren(el("ol", { class: "messages thread" }, items.map(messageNode)),
      el("button", { type: "button", class: "small", text: "Reply in this thread",
        onclick: () => startReply(data.messages.length ? data.messages[data.messages.length - 1] : data.root) }));
  } catch (err) { pageError(err); }
}
$("right-close").addEventListener("click", closeRight);
function closeRight() { $("right").hidden = true; openThreadId = null; }

const searchFilter = { user: "", since: "" };
$("search-form").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });

function searchFilters() {
  // Who with and since when; kept while the panel shows results.
  const who = el("select", { "aria-label": "Messages with", onchange: (e) => { searchFilter.user = e.target.value; runSearch(); } },
    el("option", { value: "", text: "with anyone" }),
    state.rows.map((r) => el("option", { value: r.user_id, text: `with ${r.display_name}` })));
  who.value = searchFilter.user;
  const since = el("input", { type: "date", "aria-label": "Since", value: searchFilter.since,
    onchange: (e) => { searchFilter.since = e.target.value; runSearch(); } });
  return el("div", { class: "row compact" }, who, el("label", { class: "small-text" }, "since ", since));
}

async function runSearch() {
  const q = $("search-q").value.trim();
  if (!q) return;
  showTab("inbox");
  try {
    let query = `search?q=${encodeURIComponent(q)}`;
    if (searchFilter.user) query += `&user_id=${encodeURIComponent(searchFilter.user)}`;
    if (searchFilter.since) query += `&since=${encodeURIComponent(new Date(`${searchFilter.since}T00:00`).toISOString())}`;
    const data = await api(query);
    openThreadId = null;
    $("right").hidden = false;
    $("right-title").textContent = `${data.total} found for “${q}”`;
    $("right-body").replaceChildren(searchFilters(), el("ul", { class: "results" }, data.results.map((hit) => el("li", {},
      el("button", { type: "button", class: "result", onclick: () => openConversation(hit.contact_id, hit.message_id).catch(pageError) },
        el("span", { class: "small-text muted", text: `${hit.mine ? "You → " : ""}${hit.contact || "?"} · ${when(hit.created_at)}` }),
        el("span", { text: hit.content }))))));
    if (!data.results.length) $("right-body").append(el("p", { class: "muted", text: "Nothing found." }));
  } catch (err) { pageError(err); }
}

// -- the composer ------------------------------------------------------------------------------
function updateComposer() {
  const text = $("content").value;
  const max = state.status ? state.status.max_content : 10000;
  $("counter").textContent = `${text.length} / ${max}`;
  $("counter").classList.toggle("bad", text.length > max);
  $("preview-btn").hidden = $("msg-type").value !== "markdown";
  $("content").classList.toggle("mono", $("msg-type").value === "code");
  if ($("msg-type").value !== "markdown") $("md-preview").hidden = true;
}

$("content").addEventListener("input", () => {
  state.composerChanged = true;
  updateComposer();
  showError("composer-error", null);
  $("draft-state").textContent = "…";
  clearTimeout(state.draftTimer);
  state.draftTimer = setTimeout(() => saveDraftNow().catch(pageError), 600);
});
$("msg-type").addEventListener("change", () => {
  state.composerChanged = true;
  updateComposer();
  saveDraftNow().catch(pageError);
});

async function saveDraftNow() {
  clearTimeout(state.draftTimer);
  if (!state.open || !state.status || !state.status.signed_in) return;
  if ($("tpl-pick").value) return;  // the composer shows a template, not a draft
  // Only what this page changed: another tab's draft was deleted by a stale, empty
  // composer here saved on a switch of conversation.
  if (!state.composerChanged) return;
  state.composerChanged = false;
  const content = $("content").value;
  const saved = await api(`drafts/${encodeURIComponent(state.open)}`, { method: "PUT",
    body: { content, message_type: $("msg-type").value, reply_to: state.replyTo } });
  $("draft-state").textContent = saved.draft ? "draft saved" : "";
}

$("preview-btn").addEventListener("click", async () => {
  const box = $("md-preview");
  if (!box.hidden) { box.hidden = true; return; }
  const data = await api("render", { method: "POST", body: { content: $("content").value } });
  box.innerHTML = data.html;  // sanitised on the server
  box.hidden = false;
});

async function send(sendAt = null) {
  showError("composer-error", null);
  const tplId = $("tpl-pick").value;
  const payload = { recipient_id: state.open, message_type: $("msg-type").value, timezone: state.zone };
  if (tplId) { payload.template_id = tplId; payload.variables = collectVars(); }
  else payload.content = $("content").value;
  if (state.replyTo) payload.reply_to = state.replyTo;
  if (sendAt) payload.send_at = sendAt.toISOString();
  const max = state.status.max_content;
  if (!tplId && payload.content.length > max) {
    showError("composer-error", new Error(`content: ${payload.content.length} characters; a message has at most ${max}`));
    return;
  }
  if (!tplId && !payload.content.trim()) { showError("composer-error", new Error("content: the message is empty")); return; }
  try {
    if (tplId) {
      // Checked here first, so a variable left empty is shown without a refused request.
      const tpl = state.templates.find((t) => t.id === tplId);
      const lint = await api("templates/check", { method: "POST", body: { body: tpl.body, variables: payload.variables, recipient_id: state.open, timezone: state.zone } });
      if (lint.missing.length) {
        throw new ApiProblem(`variables.${lint.missing[0]}: undefined variable${lint.missing.length > 1 ? "s" : ""} ${lint.missing.join(", ")}: give a value before sending`, `variables.${lint.missing[0]}`, 422);
      }
      if (lint.problem) throw new ApiProblem(lint.problem, "body", 422);
    }
    const item = await api("send", { method: "POST", body: payload });
    // A template's message is what it rendered to, not its source text.
    const content = tplId ? item.content : $("content").value;
    const type = $("msg-type").value;
    $("content").value = "";
    $("tpl-pick").value = "";
    renderTplVars(null);
    state.replyTo = null;
    $("reply-note").hidden = true;
    $("draft-state").textContent = "";
    updateComposer();
    if (item.kind === "undo" && item.undo_seconds > 0) showUndo(item, content, type, Boolean(tplId));
    else if (item.kind === "scheduled") toast(`Scheduled for ${new Date(item.send_at).toLocaleString()}`);
    renderPending();
  } catch (err) {
    showError("composer-error", err);
    if (err.field && err.field.startsWith("variables.")) {
      const wanted = new Set(Object.keys(collectVars()));
      document.querySelectorAll("#tpl-vars [data-var]").forEach((input) => {
        if (!wanted.has(input.dataset.var)) input.classList.add("invalid");
      });
      const first = document.querySelector("#tpl-vars .invalid");
      if (first) first.focus();
    }
  }
}

$("composer").addEventListener("submit", (event) => { event.preventDefault(); send(); });
$("content").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); send(); }
});
$("later-btn").addEventListener("click", () => {
  const value = $("send-at").value;
  if (!value) {
    const soon = new Date(Date.now() + 3600 * 1000);
    $("send-at").value = localInput(soon);
    showError("composer-error", new Error("send_at: pick when it should leave (an hour from now is filled in), then press Send later again"));
    return;
  }
  send(new Date(value));
});

// The undo window: the message waits in the outbox; Undo takes it back into the composer.
let toastTimer = null;
function toast(text) {
  $("toast-text").textContent = text;
  $("toast-undo").hidden = true;
  $("toast").hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, 4000);
}
function hideToast() { $("toast").hidden = true; state.undo = null; clearInterval(toastTimer); clearTimeout(toastTimer); }
function showUndo(item, content, type, template = false) {
  state.undo = { id: item.id, content, type, template, recipient: item.recipient_id, until: Date.now() + item.undo_seconds * 1000 };
  $("toast-undo").hidden = false;
  $("toast").hidden = false;
  const tick = () => {
    const left = Math.ceil((state.undo ? state.undo.until - Date.now() : 0) / 1000);
    if (left <= 0) { $("toast-text").textContent = "Sending…"; return; }
    $("toast-text").textContent = `Sending in ${left} s`;
  };
  tick();
  clearInterval(toastTimer);
  toastTimer = setInterval(tick, 250);
}
$("toast-undo").addEventListener("click", async () => {
  const undo = state.undo;
  if (!undo) return;
  try {
    await api(`outbox/${undo.id}/cancel`, { method: "POST" });
    let where = "it is back in the composer";
    // A template send kept the draft typed before it: an undo never writes over a draft.
    const draftThere = undo.template && (state.open === undo.recipient
      ? $("content").value.trim() !== ""
      : Boolean((await api(`drafts/${encodeURIComponent(undo.recipient)}`)).draft));
    if (draftThere) {
      where = "the draft you had there is kept";
    } else if (state.open === undo.recipient) {
      $("content").value = undo.content;
      $("msg-type").value = undo.type;
      state.composerChanged = true;
      updateComposer();
      $("content").focus();
      saveDraftNow().catch(pageError);
    } else {
      // Another conversation is open: kept as the recipient's draft (it was lost).
      await api(`drafts/${encodeURIComponent(undo.recipient)}`, { method: "PUT",
        body: { content: undo.content, message_type: undo.type, reply_to: null } });
      where = "it is kept as a draft in its conversation";
      loadInbox().catch(pageError);
    }
    hideToast();
    toast(`Not sent: ${where}`);
  } catch (err) { hideToast(); pageError(err); }
});

// What a held edit lost to: the text the recipient got instead.
function heldLead(item) {
  const got = item.delivered && item.delivered.content;
  const gone = item.delivered && item.delivered.deleted ? " (deleted since)" : "";
  return got ? `“${got.slice(0, 120)}”${gone} had already been delivered.` : "an earlier text of this message had already been delivered.";
}

// A pending message whose last send got no answer may be on the server already.
function doubtText(item) {
  return `No answer to the last send (${item.error || "unknown"}): it may have been delivered. A changed text is checked against the server first.`;
}

async function renderPending(items) {
  if (!state.open) return;
  if (!items) {
    const data = await api(`outbox?state=open&recipient_id=${encodeURIComponent(state.open)}`);
    const failed = await api(`outbox?state=failed&recipient_id=${encodeURIComponent(state.open)}`);
    items = [...data.items, ...failed.items];
  }
  const shown = items.filter((i) => i.kind === "scheduled" || i.state === "failed" || i.state === "held" || i.in_doubt);
  const label = (item) => item.state === "failed" ? `Failed: ${item.error}`
    : item.state === "held" ? `Edit not sent: ${heldLead(item)}`
      : item.in_doubt ? "Not confirmed: may have been delivered"
        : `Scheduled ${new Date(item.send_at).toLocaleString()}`;
  $("pending").replaceChildren(...shown.map((item) => el("div", { class: `pending-item state-${item.state}${item.in_doubt ? " doubt" : ""}` },
    el("span", { class: "small-text", text: label(item), title: item.in_doubt ? doubtText(item) : "" }),
    el("span", { class: "pending-text", text: item.content.slice(0, 120) }),
    item.state === "failed"
      ? el("button", { type: "button", class: "small", text: "Retry", onclick: () => api(`outbox/${item.id}/retry`, { method: "POST" }).then(() => renderPending()).catch(pageError) })
      : el("button", { type: "button", class: "small", text: item.state === "held" ? "Send as new message" : "Send now", onclick: () => api(`outbox/${item.id}/send-now`, { method: "POST" }).then(() => renderPending()).catch(pageError) }),
    item.state === "pending" || item.state === "held" ? el("button", { type: "button", class: "small", text: item.state === "held" ? "Discard" : "Cancel", onclick: () => api(`outbox/${item.id}/cancel`, { method: "POST" }).then(() => renderPending()).catch(pageError) }) : null)));
}

// -- templates in the composer ------------------------------------------------------------------
function fillTemplatePicker() {
  const pick = $("tpl-pick");
  const keep = pick.value;
  pick.replaceChildren(el("option", { value: "", text: "Template…" }),
    ...state.templates.map((t) => el("option", { value: t.id, text: t.name })));
  pick.value = state.templates.some((t) => t.id === keep) ? keep : "";
}

$("tpl-pick").addEventListener("change", () => {
  const tpl = state.templates.find((t) => t.id === $("tpl-pick").value);
  renderTplVars(tpl || null);
  if (tpl) { $("msg-type").value = tpl.message_type; updateComposer(); lintComposerTemplate(); }
});

function renderTplVars(tpl) {
  const box = $("tpl-vars");
  state.tplVars = {};
  if (!tpl) {
    box.hidden = true; box.replaceChildren(); $("content").readOnly = false;
    // What was typed before the template was picked comes back (it was overwritten, and
    // a template send deleted its draft).
    if (state.stash && state.stash.to === state.open) {
      $("content").value = state.stash.text;
      $("draft-state").textContent = state.stash.text ? "draft restored" : "";
    }
    state.stash = null;
    return;
  }
  if (!state.stash) state.stash = { to: state.open, text: $("content").value };
  $("content").readOnly = true;
  $("content").value = tpl.body;
  box.hidden = false;
  box.replaceChildren(el("span", { class: "small-text muted", text: tpl.needs.length ? "Fill in:" : "No variables to fill in." }),
    ...tpl.needs.map((name) => el("label", { class: "small-text" }, name,
      el("input", { "data-var": name, maxlength: "500", oninput: (e) => { e.target.classList.remove("invalid"); lintComposerTemplate(); } }))),
    el("div", { class: "small-text lint", id: "tpl-vars-lint" }));
}

function collectVars() {
  const out = {};
  document.querySelectorAll("#tpl-vars [data-var]").forEach((input) => { if (input.value !== "") out[input.dataset.var] = input.value; });
  return out;
}

let lintSeq = 0;
async function lintComposerTemplate() {
  const tpl = state.templates.find((t) => t.id === $("tpl-pick").value);
  if (!tpl) return;
  const seq = ++lintSeq;
  const data = await api("templates/check", { method: "POST", body: { body: tpl.body, variables: collectVars(), recipient_id: state.open, timezone: state.zone } });
  if (seq !== lintSeq) return;
  const box = $("tpl-vars-lint");
  if (!box) return;
  if (data.problem) { box.textContent = data.problem; box.className = "small-text bad"; return; }
  if (data.missing.length) { box.textContent = `Missing: ${data.missing.join(", ")}`; box.className = "small-text bad"; return; }
  box.textContent = `Will send: ${data.preview}`;
  box.className = "small-text ok-text";
}

// -- the outbox tab ------------------------------------------------------------------------------
$("outbox-state").addEventListener("change", () => loadOutbox());
async function loadOutbox() {
  const data = await api(`outbox?state=${$("outbox-state").value}`);
  const names = new Map(state.rows.map((r) => [r.user_id, r.display_name]));
  $("outbox-list").replaceChildren(...data.items.map((item) => {
    const at = el("input", { type: "datetime-local", value: localInput(new Date(item.send_at)) });
    const text = el("textarea", { rows: "2", maxlength: "10000" });
    text.value = item.content;
    const error = el("p", { class: "field-error", hidden: true });
    const pending = item.state === "pending";
    const held = item.state === "held";
    const save = async () => {
      try {
        // A held edit has no time: it leaves when the user sends it.
        await api(`outbox/${item.id}`, { method: "PATCH", body: held ? { content: text.value } : { content: text.value, send_at: new Date(at.value).toISOString() } });
        loadOutbox();
      } catch (err) {
        error.hidden = false;
        error.textContent = err.message;
        // Already delivered: the list shows what went out, and the edit held apart.
        if (err.data && err.data.item) loadOutbox();
      }
    };
    const badge = held ? ["bad", "edit not sent"] : item.in_doubt ? ["warn", "not confirmed"]
      : item.state === "failed" ? ["bad", "failed"] : item.state === "sent" ? ["ok", "sent"]
        : ["wait", item.kind === "scheduled" && pending ? "scheduled" : item.state];
    const whenText = item.state === "sent" ? `sent ${when(item.sent_at)}` : held ? `edited ${when(item.created_at)}`
      : `${pending ? "leaves" : "was due"} ${new Date(item.send_at).toLocaleString()}`;
    return el("li", { class: `card ${item.state}${item.in_doubt ? " doubt" : ""}`, "data-item": item.id },
      el("div", { class: "row compact" }, el("strong", { text: `To ${names.get(item.recipient_id) || item.recipient_id}` }),
        el("span", { class: `badge badge-${badge[0]}`, text: badge[1] }),
        el("span", { class: "muted small-text", text: whenText })),
      held ? el("div", { class: "delivered" },
        el("span", { class: "small-text bad", text: `Not sent: ${heldLead(item)}` }),
        item.delivered && item.delivered.content ? el("div", { class: "pre muted", text: item.delivered.content }) : null,
        el("span", { class: "small-text muted", text: "Your edit:" })) : null,
      pending || held ? text : el("div", { class: "pre", text: item.content || "(an earlier text; not known here)" }),
      item.in_doubt ? el("p", { class: "small-text warn-text", text: doubtText(item) })
        : item.error ? el("p", { class: "small-text bad", text: item.error }) : null,
      item.note && !held ? el("p", { class: "small-text muted", text: item.note }) : null,
      error,
      pending ? el("div", { class: "row compact" }, at,
        el("button", { type: "button", class: "small", text: "Save", onclick: save }),
        el("button", { type: "button", class: "small", text: "Send now", onclick: () => api(`outbox/${item.id}/send-now`, { method: "POST" }).then(loadOutbox).catch(pageError) }),
        el("button", { type: "button", class: "small danger", text: "Cancel", onclick: () => api(`outbox/${item.id}/cancel`, { method: "POST" }).then(loadOutbox).catch(pageError) })) : null,
      held ? el("div", { class: "row compact" },
        el("button", { type: "button", class: "small", text: "Save", onclick: save }),
        el("button", { type: "button", class: "small", text: "Send as new message", onclick: () => api(`outbox/${item.id}/send-now`, { method: "POST" }).then(loadOutbox).catch(pageError) }),
        el("button", { type: "button", class: "small danger", text: "Discard", onclick: () => api(`outbox/${item.id}/cancel`, { method: "POST" }).then(loadOutbox).catch(pageError) })) : null,
      item.state === "failed" ? el("button", { type: "button", class: "small", text: "Retry", onclick: () => api(`outbox/${item.id}/retry`, { method: "POST" }).then(loadOutbox).catch(pageError) }) : null);
  }));
  $("outbox-empty").hidden = data.items.length > 0;
}

// -- the templates tab -----------------------------------------------------------------------------
async function loadTemplates() {
  const data = await api("templates");
  state.templates = data.templates;
  fillTemplatePicker();
  $("tpl-builtins").textContent = `Always available: ${Object.entries(data.builtins).map(([k, v]) => `{{ ${k} }} ${v}`).join("; ")}.`;
  $("tpl-list").replaceChildren(...state.templates.map((t) => el("li", {
    class: `card clickable${state.tplEditing === t.id ? " selected" : ""}`, onclick: () => editTemplate(t),
  }, el("div", { class: "row compact" }, el("strong", { text: t.name }), el("span", { class: "muted small-text", text: `${t.message_type} · used ${t.uses}×` })),
  t.description ? el("div", { class: "muted small-text", text: t.description }) : null,
  el("div", { class: "small-text", text: t.needs.length ? `asks for: ${t.needs.join(", ")}` : "no variables to fill in" }))));
  $("tpl-empty").hidden = state.templates.length > 0;
}

function editTemplate(t) {
  state.tplEditing = t ? t.id : null;
  $("tpl-form-title").textContent = t ? `Edit “${t.name}”` : "New template";
  $("tpl-name").value = t ? t.name : "";
  $("tpl-type").value = t ? t.message_type : "text";
  $("tpl-desc").value = t ? t.description : "";
  $("tpl-body").value = t ? t.body : "";
  $("tpl-delete").hidden = !t;
  showError("tpl-error", null);
  lintTemplateForm();
  loadTemplates().catch(pageError);
}
$("tpl-new").addEventListener("click", () => editTemplate(null));

let tplLintTimer = null;
$("tpl-body").addEventListener("input", () => { clearTimeout(tplLintTimer); tplLintTimer = setTimeout(lintTemplateForm, 200); });
async function lintTemplateForm() {
  const source = $("tpl-body").value;
  if (!source) { $("tpl-lint").replaceChildren(); $("tpl-preview").textContent = ""; return; }
  const data = await api("templates/check", { method: "POST", body: { body: source, timezone: state.zone } });
  const chips = data.variables.map((name) => el("span", {
    class: `chip ${data.builtin.includes(name) ? "builtin" : "asks"}`,
    title: data.builtin.includes(name) ? "filled in for you" : "asked for when sending", text: name }));
  $("tpl-lint").replaceChildren(data.problem ? el("span", { class: "bad", text: data.problem }) : el("span", { class: "muted", text: data.variables.length ? "Variables: " : "No variables." }), ...chips);
  $("tpl-preview").textContent = data.sample ?? "";
}

$("tpl-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const payload = { name: $("tpl-name").value, body: $("tpl-body").value, message_type: $("tpl-type").value, description: $("tpl-desc").value };
  try {
    const saved = state.tplEditing
      ? await api(`templates/${state.tplEditing}`, { method: "PUT", body: payload })
      : await api("templates", { method: "POST", body: payload });
    state.tplEditing = saved.id;
    showError("tpl-error", null);
    await loadTemplates();
    editTemplate(saved);
  } catch (err) { showError("tpl-error", err); }
});
$("tpl-delete").addEventListener("click", async () => {
  if (!state.tplEditing) return;
  await api(`templates/${state.tplEditing}`, { method: "DELETE" }).catch(pageError);
  editTemplate(null);
});

// -- analytics ----------------------------------------------------------------------------------
function analyticsQuery() {
  return `days=${$("an-days").value}&tz=${encodeURIComponent(state.zone)}&gap_hours=${encodeURIComponent($("an-gap").value || "8")}`;
}
$("an-days").addEventListener("change", () => loadAnalytics());
$("an-gap").addEventListener("change", () => loadAnalytics());

function kpi(label, now, before, change, format, lowerIsBetter = false) {
  let trend = "";
  let cls = "flat";
  if (change !== null && change !== undefined) {
    trend = `${change > 0 ? "▲" : change < 0 ? "▼" : "="} ${Math.abs(change * 100).toFixed(0)} %`;
    const good = lowerIsBetter ? change < 0 : change > 0;
    cls = change === 0 ? "flat" : good ? "good" : "worse";
  } else if (before !== null && before !== undefined) trend = "no comparison";
  return el("div", { class: "kpi" }, el("span", { class: "muted small-text", text: label }),
    el("strong", { text: format(now) }),
    el("span", { class: `small-text trend ${cls}`, text: trend || "–" }),
    el("span", { class: "muted small-text", text: `before: ${format(before)}` }));
}

async function loadAnalytics() {
  const seq = ++state.analyticsSeq;
  $("csv-contacts").href = `api/analytics.csv?kind=contacts&${analyticsQuery()}`;
  $("csv-daily").href = `api/analytics.csv?kind=daily&${analyticsQuery()}`;
  $("an-note").textContent = "Reading your conversations…";
  const data = await api(`analytics?${analyticsQuery()}`);
  if (seq !== state.analyticsSeq) return;  // a newer request was made meanwhile
  const c = data.current; const p = data.previous; const ch = data.change;
  $("an-note").textContent = `${data.messages_read} messages read from the server; ${new Date(data.period.start).toLocaleDateString()} – now, against the ${data.period.days} days before; times in ${data.period.timezone}. Auto-replies count as neither question nor answer.`;
  const n = (v) => (v === null || v === undefined ? "–" : String(v));
  $("kpis").replaceChildren(
    kpi("Median response", c.median_response_seconds, p.median_response_seconds, ch.median_response_seconds, duration, true),
    kpi("Median first response", c.median_first_response_seconds, p.median_first_response_seconds, ch.median_first_response_seconds, duration, true),
    kpi("90 % answered within", c.p90_response_seconds, p.p90_response_seconds, ch.p90_response_seconds, duration, true),
    kpi("Received", c.received, p.received, ch.received, n),
    kpi("Sent", c.sent, p.sent, ch.sent, n),
    kpi("Conversations opened", c.conversations_opened, p.conversations_opened, ch.conversations_opened, n),
    el("div", { class: "kpi warn" }, el("span", { class: "muted small-text", text: "Waiting on you now" }),
      el("strong", { text: String(data.waiting.length) }),
      el("span", { class: "small-text", text: data.waiting.slice(0, 3).map((w) => `${w.name} (${duration(w.seconds)})`).join(", ") || "nobody" })));

  const days = data.by_day.flatMap((d) => [{ date: d.date, direction: "received", count: d.received }, { date: d.date, direction: "sent", count: d.sent }]);
  await renderChart($("chart-days"), {
    width: "container", height: 170, data: { values: days },
    mark: { type: "bar", tooltip: true },
    encoding: {
      x: { field: "date", type: "ordinal", title: null, axis: { labelAngle: -45, labelOverlap: true } },
      y: { field: "count", type: "quantitative", title: "messages", stack: true, axis: { format: "d" } },
      color: { field: "direction", type: "nominal", title: null, scale: { domain: ["received", "sent"] } },
    },
  });
  const cells = [];
  for (const row of data.by_hour) {
    const found = cells.find((x) => x.weekday === row.weekday && x.hour === row.hour);
    if (found) found.count += row.count; else cells.push({ weekday: row.weekday, hour: row.hour, count: row.count });
  }
  await renderChart($("chart-hours"), {
    width: "container", height: 170, data: { values: cells },
    mark: { type: "rect", tooltip: true },
    encoding: {
      x: { field: "hour", type: "ordinal", title: "hour", scale: { domain: [...Array(24).keys()] } },
      y: { field: "weekday", type: "ordinal", title: null, sort: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], scale: { domain: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] } },
      color: { field: "count", type: "quantitative", title: "messages", scale: { scheme: "blues" }, legend: { format: "d" } },
    },
  });
  const medians = data.contacts.filter((x) => x.median_response_seconds !== null).slice(0, 12).map((x) => ({
    contact: x.name, hours: Math.round(x.median_response_seconds / 36) / 100,
    period: "now" })).concat(data.contacts.filter((x) => x.previous_median_response_seconds !== null).slice(0, 12).map((x) => ({
    contact: x.name, hours: Math.round(x.previous_median_response_seconds / 36) / 100, period: "before" })));
  await renderChart($("chart-contacts"), {
    width: "container", height: 170, data: { values: medians },
    mark: { type: "bar", tooltip: true },
    encoding: {
      y: { field: "contact", type: "nominal", title: null },
      yOffset: { field: "period", sort: ["now", "before"] },
      x: { field: "hours", type: "quantitative", title: "hours", axis: { format: ".1f" } },
      color: { field: "period", type: "nominal", title: null, scale: { domain: ["now", "before"] } },
    },
  });
  $("an-table").tBodies[0].replaceChildren(...data.contacts.map((x) => el("tr", {},
    el("td", {}, el("button", { type: "button", class: "link", text: x.name, onclick: () => { showTab("inbox"); openConversation(x.contact_id).catch(pageError); } })),
    el("td", { text: String(x.received) }), el("td", { text: String(x.sent) }), el("td", { text: String(x.replies) }),
    el("td", { text: duration(x.median_response_seconds) }),
    el("td", { class: x.median_response_change === null ? "muted" : x.median_response_change <= 0 ? "ok-text" : "bad", text: x.median_response_change === null ? "–" : `${x.median_response_change > 0 ? "+" : ""}${Math.round(x.median_response_change * 100)} %` }),
    el("td", { text: duration(x.median_first_response_seconds) }),
    el("td", { class: x.waiting_since ? "bad" : "muted", text: x.waiting_since ? ago(x.waiting_since) : "–" }))));
}

// -- away -------------------------------------------------------------------------------------
async function loadAway() {
  const data = await api("away");
  const s = data.settings;
  $("away-marker").textContent = data.marker;
  $("away-enabled").checked = s.enabled;
  $("away-until").value = s.until ? localInput(new Date(s.until)) : "";
  $("away-qs").value = s.quiet_start || "";
  $("away-qe").value = s.quiet_end || "";
  $("away-window").value = s.window_hours;
  $("away-message").value = s.message;
  $("away-vars").textContent = `Variables: ${data.variables.map((v) => `{{ ${v} }}`).join(" ")}`;
  $("away-preview").textContent = data.preview;
  renderAwayState(data);
  $("away-log").replaceChildren(...data.decisions.map((d) => el("li", { class: d.decision },
    el("span", { class: `badge badge-${d.decision === "replied" ? "ok" : d.decision === "failed" ? "bad" : "wait"}`, text: d.decision }),
    el("span", { class: "small-text", text: ` ${when(new Date(d.at * 1000).toISOString())} · ${state.rows.find((r) => r.user_id === d.partner_id)?.display_name || d.partner_id.slice(0, 8)} · ${d.reason}` }))));
  if (!data.decisions.length) $("away-log").append(el("li", { class: "muted small-text", text: "Nothing received while this page was watching." }));
}

function renderAwayState(data) {
  $("away-badge").hidden = !data.away_now;
  $("away-state").textContent = `${data.away_now ? "Away now" : "Not away now"}${data.next_change ? ` · changes ${new Date(data.next_change).toLocaleString()}` : ""}`;
}

$("away-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const until = $("away-until").value;
  const body = {
    enabled: $("away-enabled").checked, until: until ? new Date(until).toISOString() : null,
    quiet_start: $("away-qs").value || null, quiet_end: $("away-qe").value || null,
    window_hours: Number($("away-window").value), message: $("away-message").value, timezone: state.zone,
  };
  try {
    await api("away", { method: "PUT", body });
    showError("away-error", null);
    await loadAway();
  } catch (err) { showError("away-error", err); }
});

// -- starting a conversation ---------------------------------------------------------------------
let peopleTimer = null;
$("new-conv-q").addEventListener("input", () => {
  clearTimeout(peopleTimer);
  const q = $("new-conv-q").value.trim();
  if (!q) { $("new-conv-results").replaceChildren(); return; }
  peopleTimer = setTimeout(async () => {
    const data = await api(`users?q=${encodeURIComponent(q)}`).catch(pageError);
    if (!data) return;
    $("new-conv-results").replaceChildren(...data.users.map((u) => el("li", {},
      el("button", { type: "button", class: "link", text: `${u.display_name || u.username} (@${u.username})`,
        onclick: () => { $("new-conv-q").value = ""; $("new-conv-results").replaceChildren(); openConversation(u.id).catch(pageError); $("content").focus(); } }))));
  }, 200);
});
$("new-conv").addEventListener("submit", (event) => event.preventDefault());

// -- keyboard ------------------------------------------------------------------------------------
document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (event.key === "Escape") {
    document.querySelectorAll(".emoji-pick").forEach((n) => n.remove());
    if (!$("right").hidden) closeRight();
    else if (typing) document.activeElement.blur();
    return;
  }
  if (event.altKey && /^[1-5]$/.test(event.key)) {
    state.filter = Object.keys(FILTER_LABELS)[Number(event.key) - 1];
    loadInbox().catch(pageError);
    event.preventDefault();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey || $("sec-inbox").hidden) return;
  if (event.key === "j" || event.key === "ArrowDown") { moveCursor(1); event.preventDefault(); }
  else if (event.key === "k" || event.key === "ArrowUp") { moveCursor(-1); event.preventDefault(); }
  else if (event.key === "Enter" && state.rows[state.cursor]) { openConversation(state.rows[state.cursor].user_id).catch(pageError); }
  else if (event.key === "c" && state.open) { $("content").focus(); event.preventDefault(); }
  else if (event.key === "/") { $("search-q").focus(); event.preventDefault(); }
});

// -- start ----------------------------------------------------------------------------------------
async function refreshAll() {
  await loadInbox();
  if (state.open) await openConversation(state.open);
}

async function start() {
  try {
    if (!(await loadStatus())) return;
    await Promise.all([loadInbox(), loadTemplates()]);
    const away = await api("away");
    renderAwayState(away);
  } catch (err) { pageError(err); }
}

window.addEventListener("beforeunload", () => { saveDraftNow(); });
follow();
start();
