// File Manager page: two panes over the plugin's roots, operations as host jobs.
// No libraries and no inline script (CSP script-src 'self'); URLs are relative so they
// stay inside /plugins/file_manager/.
"use strict";

const $ = (id) => document.getElementById(id);
const API = "api/";
const state = { roots: [], caps: {}, panes: [], active: 0, undo: null, nameAction: null };

// ---- helpers ------------------------------------------------------------------------
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = -1;
  do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString([], {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
}

function showError(text) {
  const box = $("page-error");
  box.textContent = text || "";
  box.hidden = !text;
}

function announce(text) {
  $("announcer").textContent = text;
}

async function call(path, options) {
  const response = await fetch(API + path, options);
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail;
    throw new Error(typeof detail === "string" ? detail : `${response.status} ${response.statusText}`);
  }
  return body;
}

function post(path, data) {
  return call(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
  });
}

function joinPath(folder, name) {
  return folder ? `${folder}/${name}` : name;
}

// ---- panes --------------------------------------------------------------------------
class Pane {
  constructor(section, index) {
    this.index = index;
    this.section = section;
    this.root = state.roots.length > index ? state.roots[index].id : (state.roots[0] || {}).id;
    this.path = "";
    this.sort = "name";
    this.order = "asc";
    this.entries = [];
    this.selected = new Set();
    section.append(document.getElementById("pane-template").content.cloneNode(true));
    const q = (sel) => section.querySelector(sel);
    this.rootSelect = q(".root");
    for (const root of state.roots) {
      this.rootSelect.append(el("option", { value: root.id, textContent: root.name, title: root.path }));
    }
    this.rootSelect.value = this.root;
    this.rootSelect.addEventListener("change", () => { this.root = this.rootSelect.value; this.go(""); });
    q(".up").addEventListener("click", () => { if (this.parent !== null) this.go(this.parent); });
    this.filter = q(".filter");
    let timer = null;
    this.filter.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => this.load(), 200); });
    this.hidden = q(".hidden-toggle");
    this.hidden.addEventListener("change", () => this.load());
    q(".refresh").addEventListener("click", () => this.load());
    for (const button of section.querySelectorAll(".sort")) {
      button.addEventListener("click", () => {
        const key = button.dataset.sort;
        this.order = this.sort === key && this.order === "asc" ? "desc" : "asc";
        this.sort = key;
        this.load();
      });
    }
    this.body = q("tbody");
    this.cursor = 0;
    // Commander keys on the list: arrows move, Enter opens, Space/Insert select,
    // Backspace goes up.
    this.wrap = q(".table-wrap");
    this.wrap.tabIndex = 0;
    this.wrap.setAttribute("aria-label", "Files; arrow keys move, Enter opens, Space selects, Backspace goes up");
    this.wrap.addEventListener("keydown", (event) => this.key(event));
    this.crumbs = q(".crumbs");
    this.status = q(".pane-status");
    section.addEventListener("focusin", () => activate(this.index));
    section.addEventListener("click", () => activate(this.index));
  }

  go(path) {
    this.path = path;
    this.cursor = 0;
    this.selected.clear();
    this.load();
  }

  async load() {
    const params = new URLSearchParams({
      root: this.root, path: this.path, sort: this.sort, order: this.order,
      filter: this.filter.value, hidden: String(this.hidden.checked),
    });
    try {
      const listing = await call(`list?${params}`);
      this.entries = listing.entries;
      this.parent = listing.parent;
      this.writable = listing.writable;
      this.render(listing);
      showError("");
    } catch (err) {
      showError(err.message);
    }
  }

  render(listing) {
    for (const button of this.section.querySelectorAll(".sort")) {
      const on = button.dataset.sort === this.sort;
      if (on) button.setAttribute("aria-sort", this.order === "asc" ? "ascending" : "descending");
      else button.removeAttribute("aria-sort");
    }
    this.crumbs.replaceChildren();
    const root = state.roots.find((r) => r.id === this.root);
    const parts = listing.path ? listing.path.split("/") : [];
    this.crumbs.append(el("button", { type: "button", textContent: root ? root.name : "/", onclick: () => this.go("") }));
    parts.forEach((part, i) => {
      const target = parts.slice(0, i + 1).join("/");
      this.crumbs.append("/", el("button", { type: "button", textContent: part, onclick: () => this.go(target) }));
    });
    const rows = listing.entries.map((entry) => this.row(entry));
    this.body.replaceChildren(...rows);
    if (!rows.length) {
      // An empty pane says why: a home folder of only dotfiles looked broken.
      const why = listing.hidden_count && !this.hidden.checked
        ? `Only hidden items here (${listing.hidden_count}): tick "Hidden" to see them.`
        : "This folder is empty.";
      this.body.append(el("tr", { className: "empty-row" },
        el("td", { colSpan: 6, className: "muted", textContent: why })));
    }
    this.cursor = Math.min(this.cursor, Math.max(0, rows.length - 1));
    if (rows.length) rows[this.cursor].classList.add("cursor");
    const extra = listing.truncated ? ` (showing ${listing.entries.length})` : "";
    const hidden = listing.hidden_count && !this.hidden.checked ? `, ${listing.hidden_count} hidden` : "";
    const ro = listing.writable ? "" : " · read-only";
    this.status.textContent = `${listing.total} item(s)${extra}${hidden}${ro}`;
  }

  row(entry) {
    const tr = el("tr", { className: `kind-${entry.type}` });
    const isDir = entry.type === "dir" || entry.link_type === "dir";
    const box = el("input", { type: "checkbox", checked: this.selected.has(entry.path) });
    box.setAttribute("aria-label", `Select ${entry.name}`);
    box.addEventListener("change", () => this.toggle(entry.path, box.checked, tr));
    const name = el("button", { type: "button", className: "name-button", textContent: entry.name, title: entry.name });
    name.addEventListener("click", (event) => {
      event.stopPropagation();
      if (isDir) this.go(entry.path);
      else this.open(entry);
    });
    const nameCell = el("td", {}, name);
    if (entry.type === "symlink") {
      nameCell.append(" ", el("span", { className: entry.link_inside ? "muted" : "outside",
        textContent: entry.link_inside ? `→ ${entry.link}` : `→ ${entry.link} (outside the root)` }));
    }
    tr.append(
      el("td", { className: "check" }, box), nameCell,
      el("td", { className: "num", textContent: isDir ? "" : size(entry.size) }),
      el("td", { textContent: when(entry.mtime) }),
      el("td", { textContent: entry.type === "file" ? (entry.mime || "file") : entry.type }),
      el("td", { className: "mode", textContent: entry.mode, title: entry.octal }),
    );
    tr.addEventListener("click", () => {
      box.checked = !box.checked;
      this.toggle(entry.path, box.checked, tr);
      this.moveCursor([...this.body.rows].indexOf(tr));
    });
    if (this.selected.has(entry.path)) tr.classList.add("selected");
    return tr;
  }

  key(event) {
    const rows = [...this.body.rows].filter((row) => !row.classList.contains("empty-row"));
    if (!rows.length && event.key !== "Backspace") return;
    const entry = this.entries[this.cursor];
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      this.moveCursor(this.cursor + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Home" || event.key === "End") {
      this.moveCursor(event.key === "Home" ? 0 : rows.length - 1);
    } else if (event.key === "Enter" && entry) {
      if (entry.type === "dir" || entry.link_type === "dir") this.go(entry.path);
      else this.open(entry);
    } else if ((event.key === " " || event.key === "Insert") && entry) {
      const box = rows[this.cursor].querySelector("input");
      box.checked = !box.checked;
      this.toggle(entry.path, box.checked, rows[this.cursor]);
      if (event.key === "Insert") this.moveCursor(this.cursor + 1);
    } else if (event.key === "Backspace" && this.parent !== null && this.parent !== undefined) {
      this.go(this.parent);
    } else {
      return;
    }
    event.preventDefault();
  }

  moveCursor(index) {
    const rows = [...this.body.rows].filter((row) => !row.classList.contains("empty-row"));
    if (!rows.length) return;
    this.cursor = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach((row, i) => row.classList.toggle("cursor", i === this.cursor));
    rows[this.cursor].scrollIntoView({ block: "nearest" });
  }

  toggle(path, on, tr) {
    if (on) this.selected.add(path); else this.selected.delete(path);
    tr.classList.toggle("selected", on);
  }

  open(entry) {
    document.dispatchEvent(new CustomEvent("fm-open", { detail: { pane: this, entry } }));
  }

  selection() {
    return [...this.selected];
  }
}

function activate(index) {
  state.active = index;
  state.panes.forEach((pane, i) => pane.section.classList.toggle("active", i === index));
}

function activePane() { return state.panes[state.active]; }
function otherPane() { return state.panes[1 - state.active]; }

function refreshAll() {
  for (const pane of state.panes) pane.load();
  refreshUndo();
}

async function refreshUndo() {
  try {
    const body = await call("ops/undo");
    state.undo = body.undo;
    const button = $("op-undo");
    button.disabled = !state.undo;
    button.textContent = state.undo ? `Undo ${state.undo.description}` : "Undo";
  } catch (err) { showError(err.message); }
}

// ---- operations ---------------------------------------------------------------------
async function run(path, data) {
  try {
    const job = await post(path, data);
    announce(`${job.name} started`);
    showError("");
  } catch (err) {
    showError(err.message);
  }
}

function transfer(kind) {
  const from = activePane();
  const to = otherPane();
  const paths = from.selection();
  if (!paths.length) { showError("Select something in the active pane first."); return; }
  run(`ops/${kind}`, { root: from.root, paths, dest_root: to.root, dest: to.path,
    conflict: $("conflict").value });
}

function askName(label, initial, action) {
  state.nameAction = action;
  $("name-label").textContent = label;
  $("name-input").value = initial;
  $("name-form").hidden = false;
  $("name-input").focus();
  $("name-input").select();
}

function wireToolbar() {
  $("op-copy").addEventListener("click", () => transfer("copy"));
  $("op-move").addEventListener("click", () => transfer("move"));
  $("op-mkdir").addEventListener("click", () => {
    const pane = activePane();
    askName("New folder name", "", (name) => run("ops/mkdir", { root: pane.root, path: pane.path, name }));
  });
  $("op-rename").addEventListener("click", () => {
    const pane = activePane();
    const paths = pane.selection();
    if (paths.length !== 1) { showError("Select exactly one item to rename."); return; }
    const current = paths[0].split("/").pop();
    askName(`Rename ${current} to`, current, (name) => run("ops/rename", { root: pane.root, path: paths[0], name }));
  });
  $("op-trash").addEventListener("click", () => {
    const pane = activePane();
    const paths = pane.selection();
    if (!paths.length) { showError("Select something to send to the trash."); return; }
    run("ops/trash", { root: pane.root, paths });
  });
  $("op-undo").addEventListener("click", () => run("ops/undo", {}));
  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("name-input").value.trim();
    $("name-form").hidden = true;
    if (name && state.nameAction) state.nameAction(name);
  });
  $("name-cancel").addEventListener("click", () => { $("name-form").hidden = true; });
  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type !== "checkbox") return;
    const keys = { F5: "op-copy", F6: "op-move", F7: "op-mkdir", Delete: "op-trash" };
    if (keys[event.key]) { event.preventDefault(); $(keys[event.key]).click(); }
    if (event.key === "Tab" && event.ctrlKey) { event.preventDefault(); activate(1 - state.active); }
  });
  // A finished job changes the folders: reload both panes and the undo button.
  const jobs = document.querySelector("[data-plexichat-jobs]");
  jobs.addEventListener("plexichat-job", (event) => {
    const job = event.detail;
    if (["succeeded", "failed", "cancelled"].includes(job.state)) {
      refreshAll();
      document.dispatchEvent(new CustomEvent("fm-job", { detail: job }));
    }
  });
}

async function start() {
  try {
    const info = await call("roots");
    state.roots = info.roots;
    state.caps = info.capabilities;
    if (info.degraded && info.degraded.length) {
      $("degraded").textContent = `Some features are off: ${info.degraded.join("; ")}`;
      $("degraded").hidden = false;
    }
  } catch (err) {
    showError(`The roots could not be read: ${err.message}`);
    return;
  }
  state.panes = [new Pane($("pane-left"), 0), new Pane($("pane-right"), 1)];
  activate(0);
  wireToolbar();
  refreshAll();
  document.dispatchEvent(new CustomEvent("fm-ready"));
}

window.fileManager = { state, call, post, el, size, when, showError, announce, activePane, otherPane, joinPath, refreshAll };
// After every script of the page has run: archive.js, tools.js and sync.js listen for
// "fm-ready", and the roots request may answer before they have loaded.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
