// Advanced Client page: chat with streaming, context, voice, smart replies, notes and the
// activity panel. Talks to this plugin's routes (api/...) only; the notes' socket goes to
// the v1 server with a ticket (notes.js). Every HTML fragment put into the page comes
// sanitised from the server (markdown-it + nh3); everything else is set as text.
import {Recorder} from "./voice.js";
import {NoteConnection} from "./notes.js";

const $ = (id) => document.getElementById(id);
const state = {
  status: null, models: [], defaultModel: "", presets: [], chats: [], chat: null,
  messages: [], streaming: null, sources: {}, conversations: [], conversation: null,
  notes: [], note: null, connection: null, recorder: null, recording: null, notePreview: false,
};
window.advancedClient = state;  // for people poking around in DevTools, and the GUI tests

class ApiProblem extends Error {
  constructor(message, field, status) { super(message); this.field = field; this.status = status; }
}

async function api(path, {method = "GET", body, raw} = {}) {
  const init = {method, headers: {}};
  if (raw !== undefined) { init.body = raw; init.headers["Content-Type"] = raw.type || "application/octet-stream"; }
  else if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(`api/${path}`, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = {detail: text}; }
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
    else if (key === "html") node.innerHTML = value;  // only ever server-sanitised HTML
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showError(err) {
  const box = $("page-error");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 9000);
}
function notice(text) {
  const box = $("notice");
  box.textContent = text || "";
  box.hidden = !text;
  clearTimeout(notice.timer);
  if (text) notice.timer = setTimeout(() => { box.hidden = true; }, 6000);
}
const guard = (fn) => async (...args) => { try { return await fn(...args); } catch (err) { showError(err); } };
const fmtMs = (ms) => (ms === null || ms === undefined ? "—" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const fmtTime = (value) => {
  if (!value) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toLocaleString(undefined, {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});
};
const fmtBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

// ---- tabs ------------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of document.querySelectorAll('.tabs [role="tab"]')) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
  if (name === "messages") loadConversations();
  if (name === "notes") loadNotes();
  if (name === "library") loadLibrary();
}

// ---- status, models, presets ---------------------------------------------------------------
async function loadStatus() {
  const status = state.status = await api("status");
  $("who").textContent = status.signed_in ? `Signed in as ${status.user.username}` : "Not signed in";
  $("signin").hidden = status.signed_in;
  const v = status.voice;
  const parts = [];
  parts.push(v.speech ? "read-aloud: espeak-ng" : `read-aloud off — ${v.speech_problem}`);
  parts.push(v.recognition ? "dictation and commands: pocketsphinx" : `recognition off — ${v.recognition_problem}`);
  $("voice-state").textContent = parts.join(" · ");
  $("voice-command").disabled = !v.recognition;
  $("dictate").disabled = !v.recognition;
}

async function loadModels() {
  if (!state.status.signed_in) { state.models = []; renderModelPicker(); return; }
  try {
    const data = await api("models");
    state.models = data.models;
    state.defaultModel = data.default_model;
  } catch (err) {
    state.models = [];
    notice(`Models unavailable: ${err.message}`);
  }
  renderModelPicker();
}

function renderModelPicker() {
  const select = $("chat-model");
  select.replaceChildren(el("option", {value: "", text: `server default${state.defaultModel ? ` (${state.defaultModel})` : ""}`}));
  const byProvider = new Map();
  for (const model of state.models) {
    if (!byProvider.has(model.provider)) byProvider.set(model.provider, []);
    byProvider.get(model.provider).push(model);
  }
  for (const [provider, models] of byProvider) {
    const group = el("optgroup", {label: provider});
    for (const model of models) {
      group.append(el("option", {value: model.id, text: `${model.name}${model.deterministic ? " (deterministic)" : ""}`,
        title: model.description}));
    }
    select.append(group);
  }
  if (state.chat) select.value = state.chat.model || "";
}

async function loadPresets() {
  state.presets = (await api("presets")).presets;
  const select = $("chat-preset");
  select.replaceChildren(el("option", {value: "", text: "none"}),
    ...state.presets.map((p) => el("option", {value: p.name, text: p.builtin ? p.name : `${p.name} ★`})));
  if (state.chat) select.value = state.chat.preset || "";
}

// ---- chats -----------------------------------------------------------------------------
async function loadChats() {
  const q = $("chat-search").value.trim();
  state.chats = (await api(`chats?q=${encodeURIComponent(q)}`)).chats;
  const list = $("chat-list");
  list.replaceChildren(...state.chats.map((chat) => el("li", {
    "aria-current": state.chat && state.chat.id === chat.id ? "true" : "false",
    onclick: () => openChat(chat.id).catch(showError),
  }, el("span", {text: chat.title}), el("span", {class: "sub", text: `${chat.message_count} messages · ${fmtTime(chat.updated_at)}`}))));
  $("chat-empty").hidden = state.chats.length > 0;
}

async function newChat() {
  const chat = await api("chats", {method: "POST", body: {}});
  await loadChats();
  await openChat(chat.id);
  $("prompt").focus();
  return chat;
}

async function openChat(id) {
  const data = await api(`chats/${id}`);
  state.chat = data.chat;
  state.messages = data.messages;
  location.hash = `chat/${id}`;
  for (const key of ["chat-title", "chat-model", "chat-preset", "chat-export-md", "chat-export-json", "chat-delete"]) $(key).disabled = false;
  $("chat-title").value = state.chat.title;
  $("chat-model").value = state.chat.model || "";
  $("chat-preset").value = state.chat.preset || "";
  $("chat-system").value = state.chat.system_prompt || "";
  $("chat-temperature").value = state.chat.temperature ?? "";
  $("use-retrieval").checked = state.chat.use_retrieval;
  $("context-budget").value = state.chat.context_budget;
  const preset = state.presets.find((p) => p.name === state.chat.preset);
  $("delete-preset").hidden = !preset || preset.builtin;
  renderMessages();
  renderAttachments();
  for (const li of $("chat-list").children) li.setAttribute("aria-current", "false");
  loadChats().catch(() => {});
}

async function updateChat(fields) {
  if (!state.chat) return;
  state.chat = await api(`chats/${state.chat.id}`, {method: "PATCH", body: fields});
  estimateContext();
}

function messageNode(message) {
  const mine = message.role === "user";
  const body = el("div", {class: "body md", html: message.html});
  const node = el("li", {class: `msg ${message.role} ${message.status === "error" ? "error" : ""}`, "data-id": message.id});
  node.append(el("div", {class: "who"}, el("span", {text: mine ? "You" : (message.model || "Assistant")}),
    el("span", {text: fmtTime(message.created_at)})), body);
  if (!mine) node.append(answerMeta(message));
  return node;
}

function answerMeta(message) {
  const meta = el("div", {class: "meta"});
  if (message.status === "error") meta.append(el("span", {class: "bad", text: `Failed: ${message.error}`}));
  if (message.status === "stopped") meta.append(el("span", {text: "stopped"}));
  if (message.status === "cut") meta.append(el("span", {class: "badge badge-warn", title: "The answer reached the plugin's max_tokens setting before the model ended it.", text: "cut at the length limit"}));
  if (message.first_token_ms !== null && message.first_token_ms !== undefined) meta.append(el("span", {text: `first token ${fmtMs(message.first_token_ms)}`}));
  if (message.latency_ms) meta.append(el("span", {text: `total ${fmtMs(message.latency_ms)}`}));
  if (message.completion_tokens !== null && message.completion_tokens !== undefined) {
    meta.append(el("span", {text: `${message.prompt_tokens} → ${message.completion_tokens} tokens${message.usage_estimated ? " (est.)" : ""}`}));
  }
  if (message.content) {
    meta.append(el("button", {type: "button", text: "Read aloud", onclick: guard(() => readAloud(message.content))}));
    meta.append(el("button", {type: "button", text: "Copy", onclick: () => navigator.clipboard.writeText(message.content).then(() => notice("Copied."), () => notice("The clipboard is not available here."))}));
  }
  const last = state.messages[state.messages.length - 1];
  if (last && last.id === message.id && !state.streaming) {
    meta.append(el("button", {type: "button", text: message.status === "error" ? "Retry" : "Regenerate", onclick: guard(() => send({regenerate: true}))}));
  }
  const wrap = el("div", {}, meta);
  if (message.context && message.context.length) {
    wrap.append(el("ol", {class: "sources", "aria-label": "Sources"}, ...message.context.map((s) =>
      el("li", {text: `${s.kind}: ${s.title} (${s.tokens} tok${s.score !== null ? `, score ${s.score}` : ""}${s.truncated ? ", cut" : ""})`}))));
  }
  return wrap;
}

function renderMessages() {
  const list = $("messages");
  list.replaceChildren(...state.messages.map(messageNode));
  $("chat-welcome").hidden = state.messages.length > 0;
  list.scrollTop = list.scrollHeight;
}

async function send({regenerate = false, text} = {}) {
  if (state.streaming) return;
  if (!state.chat) await newChat();
  const content = text !== undefined ? text : $("prompt").value;
  if (!regenerate && !content.trim()) return;
  if (regenerate) {
    // The answer being replaced goes; the server drops it too.
    const lastUser = state.messages.map((m) => m.role).lastIndexOf("user");
    state.messages = state.messages.slice(0, lastUser + 1);
    renderMessages();
  }
  const controller = new AbortController();
  state.streaming = {controller, text: ""};
  $("send").hidden = true; $("stop").hidden = false;
  const pending = el("li", {class: "msg assistant writing"}, el("div", {class: "who", text: "Assistant"}),
    el("div", {class: "body streaming"}));
  let response;
  try {
    response = await fetch(`api/chats/${state.chat.id}/send`, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({content, regenerate}), signal: controller.signal,
    });
  } catch (err) {
    finishStreaming();
    throw err;
  }
  if (!response.ok) {
    finishStreaming();
    const data = await response.json().catch(() => ({detail: response.statusText}));
    throw new ApiProblem(data.detail, data.field, response.status);
  }
  if (!regenerate) $("prompt").value = "";
  $("chat-welcome").hidden = true;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block);
        const data = /^data: (.*)$/m.exec(block);
        if (event && data) handleStreamEvent(event[1], JSON.parse(data[1]), pending);
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  } finally {
    finishStreaming();
    await openChat(state.chat.id).catch(() => {});
    loadActivity().catch(() => {});  // the timings of this answer
  }
}

function handleStreamEvent(name, data, pending) {
  const list = $("messages");
  if (name === "user") {
    if (!state.messages.some((m) => m.id === data.id)) {
      state.messages.push(data);
      list.append(messageNode(data));
    }
    list.append(pending);
  } else if (name === "context") {
    if (data.pieces.length) {
      pending.append(el("ol", {class: "sources"}, ...data.pieces.map((s) => el("li", {text: `${s.kind}: ${s.title} (${s.tokens} tok)`}))));
    }
    if (data.history_dropped) notice(`${data.history_dropped} older message(s) left out to fit the history budget.`);
  } else if (name === "delta") {
    state.streaming.text += data.text;
    // Plain text while it streams (half a Markdown construct renders badly); the
    // sanitised HTML replaces it when the answer is done.
    pending.querySelector(".body").textContent = state.streaming.text;
  } else if (name === "notice") {
    notice(data.detail);
  } else if (name === "error") {
    pending.classList.add("error");
    pending.append(el("div", {class: "meta"}, el("span", {class: "bad", text: data.detail}),
      data.retry ? el("button", {type: "button", text: "Retry", onclick: guard(() => send({regenerate: true}))}) : null));
  } else if (name === "done") {
    pending.replaceWith(messageNode(data));
  }
  list.scrollTop = list.scrollHeight;
}

function finishStreaming() {
  state.streaming = null;
  $("send").hidden = false; $("stop").hidden = true;
}

async function stop() {
  if (!state.streaming || !state.chat) return;
  await api(`chats/${state.chat.id}/stop`, {method: "POST"}).catch(() => {});
}

function download(url) {
  // Same-origin download: the desktop window saves it (its download handler).
  const link = el("a", {href: url, download: ""});
  document.body.append(link);
  link.click();
  link.remove();
}

// ---- context ---------------------------------------------------------------------------
const KIND_LABEL = {document: "Library", chat: "Chats", conversation: "Conversations", file: "PlexiChat files", note: "Notes"};

async function loadSources() {
  state.sources = await api("sources");
  const select = $("add-context");
  select.replaceChildren(el("option", {value: "", text: "+ Attach…"}));
  for (const [kind, items] of Object.entries(state.sources)) {
    const usable = items.filter((item) => !(kind === "chat" && state.chat && item.id === state.chat.id));
    if (!usable.length) continue;
    select.append(el("optgroup", {label: KIND_LABEL[kind] || kind},
      ...usable.map((item) => el("option", {value: `${kind}:${item.id}`, text: item.title}))));
  }
}

function renderAttachments() {
  const box = $("attachments");
  const items = (state.chat && state.chat.attachments) || [];
  box.replaceChildren(...items.map((item, i) => el("span", {class: "chip"},
    `${KIND_LABEL[item.kind] || item.kind}: ${item.title}`,
    el("button", {type: "button", title: "Remove", "aria-label": `Remove ${item.title}`,
      text: "×", onclick: guard(async () => {
        const next = items.filter((_, j) => j !== i);
        await updateChat({attachments: next});
        renderAttachments();
      })}))));
  estimateContext();
}

async function attach(value) {
  if (!value) return;
  if (!state.chat) await newChat();
  const [kind, ...rest] = value.split(":");
  const id = rest.join(":");
  const item = (state.sources[kind] || []).find((s) => s.id === id);
  const items = [...(state.chat.attachments || [])];
  if (!items.some((a) => a.kind === kind && a.id === id)) items.push({kind, id, title: item ? item.title : id});
  await updateChat({attachments: items});
  renderAttachments();
}

async function estimateContext() {
  const out = $("context-estimate");
  if (!state.chat || (!state.chat.attachments.length && !state.chat.use_retrieval)) { out.textContent = ""; return; }
  try {
    const data = await api("context/preview", {method: "POST", body: {
      question: $("prompt").value || state.chat.title, attachments: state.chat.attachments,
      use_retrieval: state.chat.use_retrieval, budget: state.chat.context_budget}});
    out.textContent = `≈ ${data.tokens} / ${data.budget} tokens in ${data.pieces.length} piece(s)`;
  } catch (err) {
    out.textContent = err.message;
  }
}

/** A new chat with ``item`` attached, opened with a first question ready to send. */
async function askAbout(item, question) {
  const chat = await api("chats", {method: "POST", body: {title: `About ${item.title}`}});
  await api(`chats/${chat.id}`, {method: "PATCH", body: {attachments: [item]}});
  selectTab("assistant");
  await loadChats();
  await openChat(chat.id);
  $("prompt").value = question;
  $("prompt").focus();
  estimateContext();
}

// ---- library ---------------------------------------------------------------------------
async function loadLibrary() {
  const docs = (await api("library")).documents;
  $("library-rows").replaceChildren(...docs.map((d) => el("tr", {},
    el("td", {text: d.name}), el("td", {text: d.kind}), el("td", {text: String(d.words)}),
    el("td", {text: fmtBytes(d.size)}), el("td", {text: fmtTime(d.created_at)}),
    el("td", {}, el("button", {type: "button", class: "small danger", text: "Delete", onclick: guard(async () => {
      await api(`library/${d.id}`, {method: "DELETE"});
      await loadLibrary();
      await loadSources();
    })})))));
  $("library-empty").hidden = docs.length > 0;
}

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  $("upload-error").hidden = true;
  try {
    const doc = await api("library", {method: "POST", body: form});
    notice(`${doc.name} added (${doc.words} words).`);
    $("upload-file").value = "";
    await loadLibrary();
    await loadSources();
  } catch (err) {
    $("upload-error").textContent = err.message;
    $("upload-error").hidden = false;
  }
}

async function probe(event) {
  event.preventDefault();
  const data = await api("context/preview", {method: "POST", body: {
    question: $("probe-q").value, attachments: [], use_retrieval: true, budget: 1500}});
  $("probe-results").replaceChildren(...(data.pieces.length ? data.pieces.map((p) => el("li", {},
    el("b", {text: `${p.kind}: ${p.title}`}), ` — score ${p.score}, ${p.tokens} tokens: `, el("span", {text: p.excerpt})))
    : [el("li", {text: "Nothing matches."})]));
}

// ---- voice -----------------------------------------------------------------------------
async function readAloud(text) {
  const clip = await api("voice/speak", {method: "POST", body: {text, markdown: true}});
  play(clip.clip_url);
}

function play(url) {
  const player = $("player");
  player.hidden = false;
  player.src = url;
  player.play().catch(() => notice("Press play to hear it (the window blocked autoplay)."));
}

function stopReading() { const player = $("player"); player.pause(); player.currentTime = 0; }

async function toggleRecording(kind) {
  const button = kind === "command" ? $("voice-command") : $("dictate");
  if (state.recording) {
    const {recorder, kind: was} = state.recording;
    state.recording = null;
    for (const b of [$("voice-command"), $("dictate")]) b.setAttribute("aria-pressed", "false");
    const wav = await recorder.stop();
    await handleRecording(was, wav);
    return;
  }
  const recorder = new Recorder(state.status.voice.max_seconds);
  try {
    await recorder.start(() => toggleRecording(kind));
  } catch (err) {
    throw new Error(`Microphone not available: ${err.message}. Dictation also takes a WAV file.`);
  }
  state.recording = {recorder, kind};
  button.setAttribute("aria-pressed", "true");
  notice(kind === "command" ? "Listening for a command… press again when done." : "Dictating… press again when done.");
}

async function handleRecording(kind, wav) {
  try {
    await (kind === "command" ? runVoiceCommand(wav) : dictate(wav));
  } finally {
    loadActivity().catch(() => {});  // the recognition timing
  }
}

async function dictate(wav) {
  const result = await api("voice/transcribe", {method: "POST", raw: wav});
  if (!result.text) { notice("Nothing was understood."); return; }
  const box = $("prompt");
  box.value = (box.value ? box.value.replace(/\s*$/, " ") : "") + result.text;
  box.focus();
  notice(`Dictated ${result.seconds} s.`);
}

async function runVoiceCommand(wav) {
  const query = state.chat ? `?chat_id=${encodeURIComponent(state.chat.id)}` : "";
  const result = await api(`voice/command${query}`, {method: "POST", raw: wav});
  if (!result.command) { notice(result.detail); return; }
  notice(`Heard “${result.heard.text}”.`);
  await doAction(result);
}

async function doAction(result) {
  switch (result.action) {
    case "open_chat": selectTab("assistant"); await loadChats(); await openChat(result.chat.id); break;
    case "play": play(result.clip_url); break;
    case "ask": selectTab("assistant"); await send({text: result.text}); break;
    case "stop_reading": stopReading(); break;
    case "send": if (!$("sec-messages").hidden) $("conv-composer").requestSubmit(); else await send(); break;
    case "suggest_replies": selectTab("messages"); if (state.conversation) await suggest(); break;
    case "open_assistant": selectTab("assistant"); break;
    case "open_messages": selectTab("messages"); break;
    case "open_notes": selectTab("notes"); break;
    case "open_settings": $("system-box").open = true; selectTab("assistant"); break;
    default: break;
  }
}

// ---- messaging and smart replies ----------------------------------------------------------
async function loadConversations() {
  const data = await api("messaging/conversations").catch((err) => { showError(err); return {conversations: []}; });
  state.conversations = data.conversations;
  $("conv-list").replaceChildren(...state.conversations.map((c) => el("li", {
    "aria-current": state.conversation === c.user_id ? "true" : "false",
    onclick: () => openConversation(c.user_id).catch(showError),
  }, el("span", {}, el("span", {class: `dot ${c.is_online ? "on" : ""}`}), " ", c.display_name || c.username,
    c.unread_count ? el("span", {class: "badge badge-warn", text: String(c.unread_count)}) : null),
  el("span", {class: "sub", text: c.last_message || ""}))));
  $("conv-empty").hidden = state.conversations.length > 0;
}

async function openConversation(userId) {
  const data = await api(`messaging/conversations/${userId}`);
  state.conversation = userId;
  $("conv-title").textContent = data.other_user.display_name || data.other_user.username;
  $("conv-messages").replaceChildren(...data.messages.map((m) => el("li", {class: `msg ${m.mine ? "mine" : ""}`},
    el("div", {class: "who", text: `${m.mine ? "You" : data.other_user.username} · ${fmtTime(m.timestamp)}`}),
    m.html !== null ? el("div", {class: "body md", html: m.html}) : el("div", {class: "body muted", text: "(end-to-end encrypted)"}))));
  const list = $("conv-messages");
  list.scrollTop = list.scrollHeight;
  for (const key of ["conv-text", "conv-send", "conv-suggest", "conv-ask"]) $(key).disabled = false;
  state.conversationTitle = data.other_user.display_name || data.other_user.username;
  $("smart").hidden = true;
  await suggest();
  loadConversations().catch(() => {});
}

async function suggest() {
  if (!state.conversation) return;
  const data = await api(`messaging/conversations/${state.conversation}/suggestions`);
  const box = $("smart");
  box.hidden = !data.replies.length;
  $("smart-label").textContent = data.label;
  $("smart-label").title = data.source === "ai" ? "Written by a language model — check before sending" : "From fixed patterns, not a model";
  $("smart-reason").textContent = data.reason || "";
  $("smart-replies").replaceChildren(...data.replies.map((reply) => el("button", {
    type: "button", class: "chip reply", text: reply, title: "Put in the composer (nothing is sent yet)",
    onclick: () => { $("conv-text").value = reply; $("conv-text").focus(); },
  })));
}

async function sendToConversation(event) {
  event.preventDefault();
  const text = $("conv-text").value;
  if (!text.trim() || !state.conversation) return;
  await api(`messaging/conversations/${state.conversation}`, {method: "POST", body: {content: text}});
  $("conv-text").value = "";
  await openConversation(state.conversation);
}

// ---- notes -------------------------------------------------------------------------------
async function loadNotes() {
  const data = await api("notes");
  state.notes = data.notes;
  $("note-list").replaceChildren(...state.notes.map((n) => el("li", {
    "aria-current": state.note === n.session_id ? "true" : "false",
    onclick: () => openNote(n.session_id).catch(showError),
  }, el("span", {text: n.title}), el("span", {class: "sub", text: `${n.my_role} · ${n.connected_users} here · ${fmtTime(n.last_modified)}`}))));
  $("note-empty").hidden = state.notes.length > 0;
  if (!data.signed_in) $("note-empty").textContent = "Sign in to PlexiChat to share notes.";
}

async function openNote(id) {
  if (state.connection) state.connection.destroy();
  state.note = id;
  location.hash = `note/${id}`;
  const found = state.notes.find((n) => n.session_id === id);
  $("note-name").textContent = found ? found.title : "Note";
  const element = $("note-editor");
  element.replaceChildren();
  for (const key of ["note-ask", "note-preview", "note-snapshot", "note-export", "note-delete"]) $(key).disabled = false;
  $("note-state").hidden = false;
  const connection = new NoteConnection(element, async () => {
    const ticket = await api(`notes/${id}/ticket`, {method: "POST"});
    $("note-name").textContent = ticket.title;
    return ticket;
  }, {
    onStatus: (status, detail) => {
      const badge = $("note-state");
      badge.textContent = detail ? `${status}: ${detail}` : status;
      badge.className = `badge ${status === "online" ? "badge-ok" : status === "connecting" ? "badge-wait" : "badge-bad"}`;
    },
    onPeers: (peers) => {
      $("note-peers").replaceChildren(...peers.map((p) => el("span", {class: "peer", text: p.me ? `${p.name} (you)` : p.name, style: `background:${p.color}`})));
      renderPresence();
    },
    onText: (text) => { if (state.notePreview) previewNote(text); },
  });
  state.connection = connection;
  await connection.connect();
  loadNoteHistory().catch(() => {});
  loadNotes().catch(() => {});
}

async function previewNote(text) {
  clearTimeout(previewNote.timer);
  previewNote.timer = setTimeout(guard(async () => {
    const data = await api("render", {method: "POST", body: {content: text || " "}});
    $("note-rendered").innerHTML = data.html;  // sanitised by the server
  }), 250);
}

async function loadNoteHistory() {
  if (!state.note) return;
  const data = await api(`notes/${state.note}/history`);
  $("note-history").replaceChildren(...(data.snapshots.length ? data.snapshots.map((s) => el("li", {},
    el("span", {text: `${fmtTime(s.created_at)} · ${s.label || "snapshot"} · ${s.length} chars`}),
    el("button", {type: "button", class: "small", text: "Restore", onclick: guard(async () => {
      await api(`notes/${state.note}/history/${s.snapshot_id}/restore`, {method: "POST"});
      notice("Restored: every window sees it, and the text it replaced was kept as a snapshot.");
      await loadNoteHistory();
    })}))) : [el("li", {class: "muted", text: "No snapshot yet."})]));
}

// ---- activity panel --------------------------------------------------------------------
function renderPresence() {
  const rows = [];
  if (state.connection) {
    for (const peer of state.connection.peers()) {
      rows.push(el("li", {}, el("span", {class: "dot on", style: `background:${peer.color}`}), `${peer.name}${peer.me ? " (you)" : ""} — in this note`));
    }
  }
  for (const person of state.online || []) {
    rows.push(el("li", {}, el("span", {class: `dot ${person.online ? "on" : ""}`}), person.name,
      person.unread ? el("span", {class: "badge badge-warn", text: `${person.unread} new`}) : null));
  }
  $("presence").replaceChildren(...(rows.length ? rows : [el("li", {class: "muted", text: "Nobody yet."})]));
}

function figures(target, pairs) {
  $(target).replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
}

async function loadActivity() {
  const data = await api("activity");
  state.online = data.online;
  renderPresence();
  const n = data.notifications;
  $("unread").textContent = n ? String(n.unread) : "–";
  $("notifications").replaceChildren(...(n && n.latest.length ? n.latest.map((item) => el("li", {},
    el("span", {class: `dot ${item.read ? "" : "on"}`}), el("span", {text: `${item.title}: ${item.message}`})))
    : [el("li", {class: "muted", text: data.signed_in ? "Nothing new." : "Sign in to see them."})]));
  const t = data.client.timings;
  const u = data.client.usage;
  const p = (kind, key) => (t[kind] ? fmtMs(t[kind][key]) : "—");
  figures("client-figures", [
    ["First token p50", p("first_token", "p50_ms")], ["First token p95", p("first_token", "p95_ms")],
    ["Answer p50", p("answer", "p50_ms")], ["Recognition p50", p("recognize", "p50_ms")],
    ["Read-aloud p50", p("speak", "p50_ms")], ["Chats / answers", `${u.chats} / ${u.answers}`],
    ["Tokens in → out", `${u.prompt_tokens} → ${u.completion_tokens}`],
    ["Errors / stopped", `${u.errors} / ${u.stopped}`],
  ]);
  const s = data.server;
  figures("server-figures", s ? [
    ["CPU avg / peak", s.cpu_percent && s.cpu_percent.average !== null ? `${s.cpu_percent.average} / ${s.cpu_percent.peak} %` : "—"],
    ["Memory avg", s.memory_percent && s.memory_percent.average !== null ? `${s.memory_percent.average} %` : "—"],
    ["API p95", s.api && s.api.latency_ms_p95 !== null ? fmtMs(s.api.latency_ms_p95) : "—"],
    ["API requests", s.api ? String(s.api.total_requests) : "—"],
    ["Active alerts", String(s.active_alerts ?? "—")],
  ] : [["Server", data.signed_in ? "unavailable" : "sign in to see it"]]);
}

function followActivity() {
  // Pushed: the plugin follows the account's realtime socket and says when presence,
  // notifications or messages change. The server's figures still move on their own,
  // so the panel also refreshes every 30 s (and every 5 s while the push is down).
  const source = window.plexichatLive ? window.plexichatLive.open("api/activity/events")
    : new EventSource("api/activity/events");
  let timer = null;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => loadActivity().catch(() => {}), 250);
  };
  source.addEventListener("changed", (event) => {
    soon();
    const kind = JSON.parse(event.data).kind;
    if (kind === "message" && !$("sec-messages").hidden) loadConversations().catch(() => {});
  });
  source.addEventListener("live", soon);
  let ticks = 0;
  setInterval(() => {
    ticks += 1;
    const pushed = source.readyState === 1;
    if (!document.hidden && (!pushed || ticks % 6 === 0)) loadActivity().catch(() => {});
  }, 5000);
}

// ---- wiring ----------------------------------------------------------------------------
function wire() {
  for (const tab of document.querySelectorAll('.tabs [role="tab"]')) {
    tab.addEventListener("click", () => selectTab(tab.id.slice(4)));
  }
  $("new-chat").addEventListener("click", guard(newChat));
  let searchTimer;
  $("chat-search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(guard(loadChats), 200); });
  $("chat-title").addEventListener("change", guard(async () => { await updateChat({title: $("chat-title").value || "New chat"}); await loadChats(); }));
  $("chat-model").addEventListener("change", guard(() => updateChat({model: $("chat-model").value || null})));
  $("chat-preset").addEventListener("change", guard(async () => {
    await updateChat({preset: $("chat-preset").value || null});
    await openChat(state.chat.id);
  }));
  $("chat-system").addEventListener("change", guard(() => updateChat({system_prompt: $("chat-system").value})));
  $("chat-temperature").addEventListener("change", guard(() => {
    const value = $("chat-temperature").value;
    return updateChat({temperature: value === "" ? null : Number(value)});
  }));
  $("save-preset").addEventListener("click", guard(async () => {
    const name = prompt("Preset name");
    if (!name) return;
    const value = $("chat-temperature").value;
    await api("presets", {method: "POST", body: {name, system_prompt: $("chat-system").value,
      temperature: value === "" ? null : Number(value), model: $("chat-model").value || null}});
    await loadPresets();
    await updateChat({preset: name});
    $("chat-preset").value = name;
    notice(`Preset “${name}” saved.`);
  }));
  $("delete-preset").addEventListener("click", guard(async () => {
    await api(`presets/${encodeURIComponent(state.chat.preset)}`, {method: "DELETE"});
    await updateChat({preset: null});
    await loadPresets();
    $("delete-preset").hidden = true;
  }));
  $("chat-export-md").addEventListener("click", () => download(`api/chats/${state.chat.id}/export?format=markdown`));
  $("chat-export-json").addEventListener("click", () => download(`api/chats/${state.chat.id}/export?format=json`));
  $("chat-delete").addEventListener("click", guard(async () => {
    if (!confirm(`Delete “${state.chat.title}”?`)) return;
    await api(`chats/${state.chat.id}`, {method: "DELETE"});
    state.chat = null; state.messages = [];
    renderMessages();
    await loadChats();
  }));
  $("composer").addEventListener("submit", (event) => { event.preventDefault(); guard(send)(); });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); guard(send)(); }
  });
  $("stop").addEventListener("click", guard(stop));
  $("add-context").addEventListener("focus", guard(loadSources));
  $("add-context").addEventListener("change", guard(async () => { await attach($("add-context").value); $("add-context").value = ""; }));
  $("use-retrieval").addEventListener("change", guard(() => updateChat({use_retrieval: $("use-retrieval").checked})));
  $("context-budget").addEventListener("change", guard(() => updateChat({context_budget: Number($("context-budget").value) || 0})));
  $("voice-command").addEventListener("click", guard(() => toggleRecording("command")));
  $("dictate").addEventListener("click", guard(() => toggleRecording("dictation")));
  $("dictate-file").addEventListener("change", guard(async () => {
    const file = $("dictate-file").files[0];
    if (file) await handleRecording("dictation", file);
    $("dictate-file").value = "";
  }));
  $("upload").addEventListener("submit", guard(upload));
  $("probe").addEventListener("submit", guard(probe));
  $("conv-composer").addEventListener("submit", guard(sendToConversation));
  $("conv-suggest").addEventListener("click", guard(suggest));
  $("conv-ask").addEventListener("click", guard(() => askAbout(
    {kind: "conversation", id: state.conversation, title: `conversation with ${state.conversationTitle}`},
    "Summarize this conversation: what was decided, and what is still open?")));
  $("note-ask").addEventListener("click", guard(() => askAbout(
    {kind: "note", id: state.note, title: $("note-name").textContent},
    "Summarize this note and list its open points.")));
  $("new-note").addEventListener("submit", guard(async (event) => {
    event.preventDefault();
    const made = await api("notes", {method: "POST", body: {title: $("note-title").value}});
    $("note-title").value = "";
    await loadNotes();
    await openNote(made.session_id);
  }));
  $("note-preview").addEventListener("click", () => {
    state.notePreview = !state.notePreview;
    $("note-preview").setAttribute("aria-pressed", String(state.notePreview));
    $("note-rendered").hidden = !state.notePreview;
    $("note-editor").hidden = state.notePreview;
    if (state.notePreview && state.connection) previewNote(state.connection.text.toString());
  });
  $("note-snapshot").addEventListener("click", guard(async () => {
    const label = prompt("Snapshot label (optional)") ?? "";
    await api(`notes/${state.note}/history`, {method: "POST", body: {label}});
    await loadNoteHistory();
  }));
  $("note-export").addEventListener("click", () => download(`api/notes/${state.note}/export`));
  $("note-delete").addEventListener("click", guard(async () => {
    if (!confirm("Delete this note for everyone?")) return;
    if (state.connection) state.connection.destroy();
    state.connection = null;
    await api(`notes/${state.note}`, {method: "DELETE"});
    state.note = null;
    $("note-editor").replaceChildren();
    await loadNotes();
  }));
  window.addEventListener("beforeunload", () => { if (state.connection) state.connection.destroy(); });
}

async function start() {
  wire();
  await loadStatus();
  await Promise.all([loadPresets(), loadModels(), loadChats()]);
  const [kind, id] = location.hash.slice(1).split("/");
  if (kind === "chat" && id) await openChat(id).catch(() => {});
  else if (kind === "note" && id && state.status.signed_in) {
    selectTab("notes");
    await loadNotes();
    await openNote(id);
  } else if (state.chats.length) await openChat(state.chats[0].id);
  await loadActivity().catch(() => {});
  followActivity();
  document.body.dataset.ready = "true";
}

start().catch(showError);
