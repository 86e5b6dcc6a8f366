// Development Tools page. No libraries (the app works offline and its CSP allows only
// scripts from this origin). Every URL is relative, so it stays in /plugins/dev_tools/.
// Text from files, tools and git is always put in with textContent, never as HTML.
"use strict";

const RECENT_KEY = "dev_tools.recent";
const state = {
  ws: null,            // the open workspace's info (GET api/workspace)
  pickerPath: "",
  currentRun: null,    // the task run whose output the console shows
  jobWaiters: new Map(),
  gitFiles: { staged: [], changes: [] },
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// ---- HTTP ------------------------------------------------------------------------------
class ApiError extends Error {}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {} };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let url = `api/${path}`;
  if (options.query) url += `?${new URLSearchParams(options.query)}`;
  const response = await fetch(url, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    let detail = body.detail;
    if (Array.isArray(detail)) {  // FastAPI validation errors
      detail = detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
    const error = new ApiError(detail || `HTTP ${response.status}`);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function wsQuery(extra = {}) {
  return { workspace: state.ws ? state.ws.path : "", ...extra };
}

function showError(target, error) {
  const node = typeof target === "string" ? $(target) : target;
  node.textContent = error instanceof Error ? error.message : String(error);
  node.hidden = false;
}

// ---- jobs: the host's component shows them; we wait for the ones we started ------------
function onJob(job) {
  const waiter = state.jobWaiters.get(job.id);
  if (waiter && ["succeeded", "failed", "cancelled"].includes(job.state)) {
    state.jobWaiters.delete(job.id);
    waiter(job);
  }
}

for (const node of document.querySelectorAll("[data-plexichat-jobs]")) {
  node.addEventListener("plexichat-job", (event) => onJob(event.detail));
}

function waitJob(job) {
  return new Promise((resolve) => {
    state.jobWaiters.set(job.id, resolve);
    // The stream may have told about the end before we listened: ask once.
    fetch(`api/_host/jobs/${encodeURIComponent(job.id)}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null)).then((j) => { if (j) onJob(j); })
      .catch(() => {});
  });
}

async function runJob(path, body, statusNode) {
  const job = await api(path, { body });
  if (statusNode) statusNode.textContent = "Running…";
  const done = await waitJob(job);
  if (done.state !== "succeeded") throw new Error(done.error || `job ${done.state}`);
  return done.result;
}

// ---- workspace -------------------------------------------------------------------------
function recent() {
  try { return JSON.parse(localStorage.getItem(RECENT_KEY) || "[]"); } catch { return []; }
}

function remember(path) {
  const list = [path, ...recent().filter((p) => p !== path)].slice(0, 10);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
  $("ws-recent").replaceChildren(...list.map((p) => el("option", { value: p })));
}

async function openWorkspace(path) {
  $("ws-error").hidden = true;
  try {
    state.ws = await api("workspace", { query: { workspace: path } });
  } catch (error) {
    showError("ws-error", error);
    return;
  }
  $("ws-input").value = state.ws.path;
  remember(state.ws.path);
  const info = $("ws-info");
  info.replaceChildren(el("strong", { text: state.ws.name }),
    el("span", { class: "muted mono", text: state.ws.path }),
    ...state.ws.markers.map((m) => el("span", { class: "badge", text: m })));
  if (state.ws.problems.length) {
    info.append(el("span", { class: "bad", text: state.ws.problems.join("; ") }));
  }
  for (const id of ["problems", "fix-view", "format-view", "hooks-view", "git-diff",
    "tests-tree", "tests-detail"]) $(id).replaceChildren();
  $("lint-summary").textContent = "";
  $("tests-summary").textContent = "";
  renderTasks();
  loadHistory();
  refreshGit();
  loadHooks();
  loadLastTests();
}

async function browse(path) {
  try {
    const listing = await api("browse", { query: { path } });
    state.pickerPath = listing.path || "";
    $("picker-path").textContent = listing.path || "Configured roots";
    $("picker-up").disabled = !listing.path;
    $("picker-open").disabled = !listing.path;
    $("picker-up").dataset.parent = listing.parent || "";
    const items = listing.folders.map((f) => el("li", {},
      el("button", { type: "button", onclick: () => browse(f.path) }, `${f.name}/`),
      f.markers.length ? el("span", { class: "muted", text: ` ${f.markers.join(", ")}` }) : null));
    if (!items.length) items.push(el("li", { class: "muted", text: "No sub-folders." }));
    $("picker-list").replaceChildren(...items);
  } catch (error) {
    showError("ws-error", error);
  }
}

function togglePicker(show) {
  $("picker").hidden = !show;
  $("ws-browse").setAttribute("aria-expanded", String(show));
  if (show) browse(state.ws ? state.ws.path : "");
}

// ---- tabs ------------------------------------------------------------------------------
const tabs = [...document.querySelectorAll('[role="tab"]')];
function selectTab(tab) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  localStorage.setItem("dev_tools.tab", tab.id);
}
for (const tab of tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
    selectTab(next);
    next.focus();
  });
}

// ---- diffs -----------------------------------------------------------------------------
function renderDiff(pre, text) {
  pre.replaceChildren();
  if (!text) { pre.textContent = "No changes."; return; }
  for (const line of text.split("\n")) {
    let cls = "";
    if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ")
      || line.startsWith("index ")) cls = "meta";
    else if (line.startsWith("@@")) cls = "hunk";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    pre.append(cls ? el("span", { class: cls, text: line }) : `${line}\n`);
  }
}

// A preview (format, fixes or hooks): one diff per file with Apply, and Apply all.
function renderPreview(container, preview) {
  const pending = preview.files.filter((f) => !f.applied);
  const status = el("span", { class: "muted", role: "status" });
  const head = el("div", { class: "toolbar" },
    el("strong", { text: `${preview.files.length} file(s) would change` }));
  if (pending.length > 1) {
    head.append(el("button", { type: "button", class: "primary",
      onclick: () => apply(preview, [], container, status) }, "Apply all"));
  }
  head.append(status);
  container.replaceChildren(head);
  for (const file of preview.files) {
    const pre = el("pre", { class: "diff", tabindex: "0", "aria-label": `Diff of ${file.path}` });
    renderDiff(pre, file.diff);
    const button = el("button", { type: "button",
      onclick: () => apply(preview, [file.path], container, status) },
    file.applied ? "Applied" : `Apply ${file.kind === "deleted" ? "deletion" : ""}`.trim());
    button.disabled = file.applied;
    container.append(el("div", { class: "file" },
      el("div", { class: "file-head" }, el("span", { class: "grow", text: file.path }),
        el("span", { class: "muted", text: file.kind }), button), pre));
  }
}

async function apply(preview, files, container, status) {
  try {
    const result = await api("preview/apply", { body: { workspace: preview.workspace,
      preview: preview.id, files } });
    for (const file of preview.files) {
      if (result.applied.includes(file.path)) file.applied = true;
    }
    renderPreview(container, preview);
    container.querySelector('[role="status"]').textContent =
      `Wrote ${result.applied.length} file(s).`;
    refreshGit();
  } catch (error) {
    status.textContent = error.status === 409
      ? `${error.message}` : `Not applied: ${error.message}`;
    status.className = "bad";
  }
}

// ---- Problems --------------------------------------------------------------------------
async function lint() {
  if (!state.ws) return;
  const summary = $("lint-summary");
  summary.className = "muted";
  try {
    const result = await runJob("lint", { workspace: state.ws.path }, summary);
    const rows = result.problems.map((p) => el("tr", {},
      el("td", { class: "mono", text: p.path }),
      el("td", { class: "num", text: `${p.line}:${p.column}` }),
      el("td", {}, p.url ? el("a", { href: p.url, target: "_blank", rel: "noopener",
        text: p.rule }) : el("span", { class: "bad", text: p.rule || "syntax" })),
      el("td", { class: p.severity === "error" ? "bad" : "", text: p.message }),
      el("td", { class: "muted", text: p.fix || "" })));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "ok",
      text: "No problems." })));
    $("problems").replaceChildren(...rows);
    summary.textContent = `${result.tools.join(" + ")}: `
      + `${result.total} problem(s); ${result.fixable.safe} with a safe fix, `
      + `${result.fixable.unsafe} with an unsafe fix` + (result.total > result.shown
      ? ` (first ${result.shown} shown)` : "");
  } catch (error) {
    summary.textContent = error.message;
    summary.className = "bad";
  }
}

async function previewInto(path, body, container) {
  container.replaceChildren(el("p", { class: "muted", text: "Running on a copy…" }));
  try {
    const preview = await runJob(path, body);
    renderPreview(container, preview);
    if (preview.exit_code) {
      container.prepend(el("pre", { class: "console bad", text: preview.output,
        "aria-label": "Tool messages" }));
    }
    return preview;
  } catch (error) {
    container.replaceChildren(el("p", { class: "bad", text: error.message }));
    return null;
  }
}

// ---- Tasks -----------------------------------------------------------------------------
// Splits an argument line like a shell would split words ("a b" 'c d' e) but nothing
// else: the result goes to the server as a list and no shell ever reads it.
function splitArgs(text) {
  const args = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let match;
  while ((match = re.exec(text)) !== null) {
    args.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1")
      : match[2] !== undefined ? match[2] : match[3]);
  }
  return args;
}

function renderTasks() {
  const items = state.ws.tasks.map((task) => {
    const input = el("input", { type: "text", "aria-label": `Arguments for ${task.id}`,
      placeholder: "arguments" });
    const status = el("span", { class: "muted small" });
    const run = async () => {
      try {
        const started = await api("tasks/run", { body: { workspace: state.ws.path,
          task: task.id, args: splitArgs(input.value) } });
        state.currentRun = started.run.id;
        // The arguments as the list the program gets: no shell reads them.
        $("console").textContent = `▶ ${task.id} ${JSON.stringify(started.run.args)}\n`;
        $("console-title").textContent = `Output: ${task.id}`;
        status.textContent = "";
        loadHistory();
      } catch (error) {
        status.textContent = error.message;
        status.className = "bad";
      }
    };
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") run(); });
    return el("li", {},
      el("span", { class: "badge", text: task.kind }),
      el("span", { class: "grow", title: task.detail },
        el("strong", { text: task.name }), " ",
        el("span", { class: "muted", text: task.detail })),
      input, el("button", { type: "button", onclick: run, "aria-label": `Run ${task.id}` }, "Run"),
      status);
  });
  if (!items.length) {
    items.push(el("li", { class: "empty",
      text: "No Makefile targets, package.json scripts or [project.scripts] found." }));
  }
  $("tasks").replaceChildren(...items);
}

async function loadHistory() {
  if (!state.ws) return;
  try {
    const { runs } = await api("tasks/history", { query: wsQuery() });
    const items = runs.slice(0, 15).map((run) => el("li", {},
      el("span", { class: `state-${run.state}`, text: run.state }),
      el("button", { type: "button", class: "link grow", onclick: () => showRun(run.id) },
        `${run.task} ${run.args.length ? JSON.stringify(run.args) : ""}`),
      el("span", { class: "muted", text: run.exit_code === null ? ""
        : `exit ${run.exit_code}` }),
      el("span", { class: "muted", text: `${run.duration.toFixed(1)} s` })));
    if (!items.length) items.push(el("li", { class: "empty", text: "No task run yet." }));
    $("history").replaceChildren(...items);
  } catch (error) {
    $("history").replaceChildren(el("li", { class: "bad", text: error.message }));
  }
}

async function showRun(id) {
  try {
    const run = await api(`tasks/history/${encodeURIComponent(id)}`);
    state.currentRun = run.id;
    $("console-title").textContent = `Output: ${run.task} (${run.state})`;
    $("console").textContent = `▶ ${run.task} ${JSON.stringify(run.args)}\n`
      + (run.output || "(no output)\n");
  } catch (error) {
    $("console").textContent = error.message;
  }
}

function listen() {
  const source = window.plexichatLive ? plexichatLive.open("api/events")
    : new EventSource("api/events");
  source.addEventListener("output", (event) => {
    const data = JSON.parse(event.data);
    if (data.run !== state.currentRun) return;
    const pre = $("console");
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(data.text);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("run", async (event) => {
    const run = JSON.parse(event.data);
    if (run.finished_at && run.id === state.currentRun) {
      // The stored output is complete (output streamed before the page knew the run's
      // id, and the tail of a capped run, are only there).
      await showRun(run.id);
      $("console").append(`\n[${run.state}${run.exit_code === null ? ""
        : `, exit ${run.exit_code}`}]\n`);
    }
    if (state.ws && run.workspace === state.ws.path) loadHistory();
  });
}

// ---- Git -------------------------------------------------------------------------------
async function refreshGit() {
  if (!state.ws) return;
  const note = $("git-state");
  try {
    const status = await api("git/status", { query: wsQuery() });
    if (!status.repository) {
      note.textContent = `${status.message} Source control needs a git repository.`;
      for (const id of ["git-staged", "git-changes", "git-log"]) $(id).replaceChildren();
      $("branch-select").replaceChildren();
      return;
    }
    const b = status.branch;
    note.textContent = `On ${b.head || "a detached HEAD"}` + (b.upstream
      ? ` · ${b.upstream} (${b.ahead} ahead, ${b.behind} behind)` : "")
      + (status.clean ? " · clean" : ` · ${status.files.length} changed`)
      // A merge (or cherry-pick, revert, rebase) git is in the middle of: said, or a
      // resolved merge looked like "nothing is staged".
      + (status.operation ? ` · ${status.operation} in progress: resolve, stage, then commit`
        : "");
    const staged = status.files.filter((f) => f.staged);
    const changes = status.files.filter((f) => f.unstaged);
    $("git-staged").replaceChildren(...fileRows(staged, true));
    $("git-changes").replaceChildren(...fileRows(changes, false));
    state.gitFiles = { staged: staged.map((f) => f.path), changes: changes.map((f) => f.path) };
    $("unstage-all").disabled = !staged.length;
    $("stage-all").disabled = !changes.length;
    loadBranches();
    loadLog();
  } catch (error) {
    note.textContent = error.message;
  }
}

function fileRows(files, staged) {
  if (!files.length) return [el("li", { class: "empty", text: "Nothing." })];
  return files.map((f) => el("li", {},
    el("span", { class: `code ${f.conflict ? "bad" : ""}`,
      text: staged ? f.staged : f.unstaged }),
    el("button", { type: "button", class: "link grow",
      onclick: () => showDiff(f.path, staged) }, f.path),
    el("button", { type: "button", class: "small",
      "aria-label": `${staged ? "Unstage" : "Stage"} ${f.path}`,
      onclick: () => stage(f.path, staged) }, staged ? "Unstage" : "Stage")));
}

async function showDiff(path, staged) {
  $("diff-title").textContent = `Diff: ${path}${staged ? " (staged)" : ""}`;
  try {
    const result = await api("git/diff", { query: wsQuery({ path, staged }) });
    renderDiff($("git-diff"), result.diff);
  } catch (error) {
    $("git-diff").textContent = error.message;
  }
}

async function stage(path, unstage) {
  const paths = Array.isArray(path) ? path : [path];
  if (!paths.length) return;
  try {
    await api(unstage ? "git/unstage" : "git/stage", { body: { workspace: state.ws.path,
      paths } });
  } catch (error) {
    $("git-state").textContent = error.message;
  }
  refreshGit();
}

async function loadBranches() {
  try {
    const { branches } = await api("git/branches", { query: wsQuery() });
    $("branch-select").replaceChildren(...branches.filter((b) => !b.remote).map((b) =>
      el("option", { value: b.name, selected: b.current ? "selected" : null,
        text: b.name })));
  } catch { /* the status line already says what is wrong */ }
}

async function loadLog() {
  try {
    const { commits } = await api("git/log", { query: wsQuery({ limit: 50 }) });
    const items = commits.map((c) => el("li", {},
      el("span", { class: "code", text: c.short }),
      el("button", { type: "button", class: "link grow", onclick: () => showCommit(c) },
        c.subject),
      el("span", { class: "muted", text: `${c.author}, ${new Date(c.date * 1000)
        .toLocaleString()}` })));
    if (!items.length) items.push(el("li", { class: "empty", text: "No commit yet." }));
    $("git-log").replaceChildren(...items);
  } catch (error) {
    $("git-log").replaceChildren(el("li", { class: "bad", text: error.message }));
  }
}

async function showCommit(commit) {
  $("diff-title").textContent = `Commit ${commit.short}`;
  try {
    const result = await api("git/show", { query: wsQuery({ commit: commit.commit }) });
    renderDiff($("git-diff"), result.text);
  } catch (error) {
    $("git-diff").textContent = error.message;
  }
}

async function commit(event) {
  event.preventDefault();
  const status = $("commit-status");
  status.className = "muted";
  try {
    const result = await api("git/commit", { body: { workspace: state.ws.path,
      message: $("commit-message").value, amend: $("commit-amend").checked } });
    status.textContent = `Committed ${result.commit.slice(0, 8)}: ${result.subject}`;
    $("commit-message").value = "";
    $("commit-amend").checked = false;
    refreshGit();
  } catch (error) {
    status.textContent = error.message;
    status.className = "bad";
    if (error.status === 422) $("commit-message").focus();
  }
}

async function switchBranch(create) {
  const branch = create ? $("branch-new").value.trim() : $("branch-select").value;
  try {
    await api("git/switch", { body: { workspace: state.ws.path, branch, create } });
    $("branch-new").value = "";
  } catch (error) {
    $("git-state").textContent = error.message;
    return;
  }
  refreshGit();
}

// ---- Hooks -----------------------------------------------------------------------------
async function loadHooks() {
  const list = $("hooks-list");
  if (!state.ws.markers.includes("pre-commit")) {
    list.replaceChildren(el("li", { class: "empty",
      text: "No .pre-commit-config.yaml in this workspace." }));
    $("hooks-run").disabled = true;
    return;
  }
  $("hooks-run").disabled = false;
  try {
    const { hooks, skipped_repos: skipped } = await api("hooks", { query: wsQuery() });
    const items = hooks.map((h) => el("li", {},
      el("input", { type: "checkbox", class: "hook-pick", value: h.id, checked: "",
        "aria-label": `Run hook ${h.id}` }),
      el("span", { class: "badge", text: h.language }),
      el("span", { class: "grow" }, el("strong", { text: h.id }), " ",
        el("span", { class: "muted", text: h.name })),
      h.runnable ? null : el("span", { class: "skipped", text: h.why_not })));
    for (const repo of skipped) {
      items.push(el("li", { class: "muted" }, el("span", { class: "grow",
        text: `${repo}: not run (its environment would be installed from the network)` })));
    }
    list.replaceChildren(...items);
  } catch (error) {
    list.replaceChildren(el("li", { class: "bad", text: error.message }));
  }
}

async function runHooks() {
  const view = $("hooks-view");
  const picks = [...document.querySelectorAll(".hook-pick")];
  // No list (it failed to load): let the server run them all.
  const hooks = picks.length ? picks.filter((c) => c.checked).map((c) => c.value) : null;
  const preview = await previewInto("hooks/preview", { workspace: state.ws.path,
    files: $("hooks-scope").value, hooks }, view);
  if (!preview) return;
  const report = el("ul", { class: "list report", "aria-label": "Hook results" },
    ...preview.hooks.map((h) => el("li", {},
      el("span", { class: h.status, text: h.status }),
      el("span", { class: "grow" }, el("strong", { text: h.id }),
        el("span", { class: "muted", text: ` ${h.files} file(s)` }),
        h.modified.length ? el("span", { class: "modified",
          text: ` changed ${h.modified.join(", ")}` }) : null,
        h.output ? el("pre", { text: h.output }) : null))));
  view.prepend(report);
}

// ---- Tests -----------------------------------------------------------------------------
const OUTCOME_MARK = { passed: "✔", failed: "✘", error: "✘", skipped: "○", xfailed: "○",
  xpassed: "!" };

function treeNode(node) {
  const counts = Object.entries(node.counts).map(([k, v]) => `${v} ${k}`).join(", ");
  const bad = (node.counts.failed || 0) + (node.counts.error || 0);
  if (node.result) {
    const r = node.result;
    return el("li", {}, el("button", { type: "button", class: `link ${r.outcome}`,
      onclick: () => { $("tests-detail").textContent = `${r.nodeid}\n${r.outcome} in `
        + `${r.duration.toFixed(3)} s\n\n${r.longrepr || ""}`; } },
    `${OUTCOME_MARK[r.outcome] || "?"} ${node.name}`));
  }
  const details = el("details", bad ? { open: "" } : {},
    el("summary", { class: bad ? "failed" : "" }, node.name,
      el("span", { class: "count", text: counts }), " ",
      el("button", { type: "button", class: "small", "aria-label": `Run ${node.id}`,
        onclick: (event) => { event.preventDefault(); runTests(false, [node.id]); } }, "Run")),
    el("ul", {}, ...node.children.map(treeNode)));
  return el("li", {}, details);
}

function renderTests(result) {
  const parts = Object.entries(result.counts).map(([k, v]) => `${v} ${k}`);
  $("tests-summary").textContent = parts.length ? parts.join(", ") : "No test ran.";
  $("tests-tree").replaceChildren(...result.tree.map(treeNode));
  $("tests-detail").textContent = result.truncated ? result.output : result.output || "";
  $("tests-rerun").disabled = !result.failed.length;
}

async function runTests(rerun, nodeids = []) {
  const summary = $("tests-summary");
  try {
    renderTests(await runJob("tests/run", { workspace: state.ws.path, rerun_failed: rerun,
      nodeids, plugins: $("tests-plugins").checked }, summary));
  } catch (error) {
    summary.textContent = error.message;
  }
}

async function loadLastTests() {
  $("tests-rerun").disabled = true;
  try {
    const { last } = await api("tests/last", { query: wsQuery() });
    if (last) renderTests(last);
  } catch (error) {
    $("tests-summary").textContent = error.message;
  }
}

// ---- start -----------------------------------------------------------------------------
function needWorkspace(fn) {
  return () => {
    if (!state.ws) { showError("ws-error", "Open a workspace first."); return; }
    fn();
  };
}

$("ws-form").addEventListener("submit", (event) => {
  event.preventDefault();
  openWorkspace($("ws-input").value.trim());
});
$("ws-browse").addEventListener("click", () => togglePicker($("picker").hidden));
$("picker-up").addEventListener("click", () => browse($("picker-up").dataset.parent));
$("picker-open").addEventListener("click", () => {
  togglePicker(false);
  openWorkspace(state.pickerPath);
});
$("lint-run").addEventListener("click", needWorkspace(lint));
$("fix-preview").addEventListener("click", needWorkspace(() => previewInto("fix/preview",
  { workspace: state.ws.path, unsafe: $("fix-unsafe").checked }, $("fix-view"))));
$("format-preview").addEventListener("click", needWorkspace(() => previewInto(
  "format/preview", { workspace: state.ws.path }, $("format-view"))));
$("hooks-run").addEventListener("click", needWorkspace(runHooks));
$("tests-run").addEventListener("click", needWorkspace(() => runTests(false)));
$("tests-rerun").addEventListener("click", needWorkspace(() => runTests(true)));
$("git-refresh").addEventListener("click", needWorkspace(refreshGit));
$("stage-all").addEventListener("click", needWorkspace(() => stage(state.gitFiles.changes,
  false)));
$("unstage-all").addEventListener("click", needWorkspace(() => stage(state.gitFiles.staged,
  true)));
$("branch-switch").addEventListener("click", needWorkspace(() => switchBranch(false)));
$("branch-create").addEventListener("click", needWorkspace(() => switchBranch(true)));
$("commit-form").addEventListener("submit", (event) => {
  if (!state.ws) { event.preventDefault(); showError("ws-error", "Open a workspace first."); return; }
  commit(event);
});

(async function start() {
  const saved = localStorage.getItem("dev_tools.tab");
  if (saved && $(saved)) selectTab($(saved));
  $("ws-recent").replaceChildren(...recent().map((p) => el("option", { value: p })));
  listen();
  try {
    const info = await api("roots");
    const off = [];
    if (!info.tools.git) off.push("git (Source Control)");
    if (!info.tools.ruff) off.push("ruff (Problems, Format)");
    if (!info.tools.make) off.push("make (Make targets)");
    if (!info.tools.npm) off.push("npm (package.json scripts)");
    if (!info.tools.shellcheck) off.push("shellcheck (shell scripts in Problems)");
    if (off.length) {
      $("degraded").textContent = `Not installed, so off: ${off.join(", ")}.`;
      $("degraded").hidden = false;
    }
    const last = recent()[0];
    if (last) await openWorkspace(last);
  } catch (error) {
    showError("ws-error", error);
  }
})();
