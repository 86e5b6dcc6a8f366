// System Manager page: backups, schedules with a retention dry run, off-site copies, the
// restore wizard, maintenance, health and history. Everything comes from api/... of this
// plugin; the page re-reads its state when the plugin's stream says something changed.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  let state = null;
  let backups = [];
  let retentionShown = null;   // {scope, policy, timezone, delete: [ids]}

  // -- helpers ----------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function detailText(body, status) {
    const detail = body && body.detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
    }
    return detail ? String(detail) : `HTTP ${status}`;
  }

  async function api(path, options) {
    const init = Object.assign({ headers: {} }, options || {});
    if (init.json !== undefined) {
      init.body = JSON.stringify(init.json);
      init.headers["Content-Type"] = "application/json";
      delete init.json;
    }
    const response = await fetch(`api/${path}`, init);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const error = new Error(detailText(body, response.status));
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function showError(error) {
    const box = $("page-error");
    if (!error) { box.hidden = true; return; }
    box.textContent = error.message || String(error);
    box.hidden = false;
  }

  async function act(fn) {
    try { showError(null); await fn(); } catch (e) { showError(e); }
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = Number(n);
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  function when(value) {
    if (!value) return "–";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return "–";
    return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit" });
  }

  function ago(value) {
    if (!value) return "never";
    const ms = Date.now() - (typeof value === "number" ? value * 1000 : new Date(value).getTime());
    const minutes = Math.round(ms / 60000);
    if (minutes < 1) return "just now";
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 48) return `${hours} h ago`;
    return `${Math.round(hours / 24)} days ago`;
  }

  function tag(text, kind, title) {
    return el("span", { class: `tag ${kind || ""}`, title: title || null, text });
  }

  function statusKind(status) {
    return { succeeded: "ok", failed: "bad", skipped: "warn", interrupted: "warn",
      cancelled: "warn", running: "running" }[status] || "";
  }

  function policyText(p) {
    if (!p) return "";
    return ["last", "daily", "weekly", "monthly", "yearly"]
      .filter((k) => p[k]).map((k) => `${p[k]} ${k}`).join(", ") || "newest only";
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  // -- tabs -------------------------------------------------------------------------------
  function selectTab(name) {
    for (const button of document.querySelectorAll(".tabs [role=tab]")) {
      button.setAttribute("aria-selected", String(button.dataset.tab === name));
    }
    for (const panel of document.querySelectorAll(".tab")) {
      panel.hidden = panel.id !== `tab-${name}`;
    }
    if (name === "maintenance") loadUsage();
    try { sessionStorage.setItem("system_manager.tab", name); } catch (e) { /* private mode */ }
  }

  // -- rendering --------------------------------------------------------------------------
  function renderHeader() {
    const account = state.account;
    const badge = $("account");
    badge.className = `badge ${account.admin ? "badge-ok" : "badge-bad"}`;
    badge.textContent = account.admin ? `administrator: ${account.user}`
      : account.logged_in ? `${account.user}: not an administrator` : "not logged in";
    const notice = $("admin-needed");
    notice.hidden = account.admin;
    notice.textContent = account.admin ? "" : `Administrator needed. ${account.reason}`;
    const win = state.window_now;
    $("window-badge").hidden = !win;
    if (win) $("window-badge").textContent = `Maintenance window “${win.name}” until ${when(win.ends_at)}`;
    $("unread").textContent = state.unread;
    $("bell").classList.toggle("has-unread", state.unread > 0);
  }

  function renderCards() {
    const completed = backups.filter((b) => b.status === "completed");
    const newest = completed[0];
    const drilled = completed.find((b) => b.catalog && b.catalog.drill);
    const firing = state.alerts.filter((a) => a.state === "firing");
    const nextRuns = state.schedules.filter((s) => s.enabled && s.next_fire_at)
      .map((s) => s.next_fire_at).sort();
    const card = (label, value, sub, kind) => el("div", { class: `card ${kind || ""}` },
      el("div", { class: "label", text: label }), el("div", { class: "value", text: value }),
      el("div", { class: "sub", text: sub || "" }));
    $("summary-cards").replaceChildren(
      card("Newest backup", newest ? ago(newest.created_at) : "none",
        newest ? `${bytes(newest.size)} · ${newest.name}` : "press “Back up now”",
        newest ? "ok" : "warn"),
      card("Last restore drill", drilled ? (drilled.catalog.drill.ok ? "passed" : "FAILED") : "none yet",
        drilled ? `${ago(drilled.catalog.drill.at)} · ${drilled.name}` : "drills restore into a throw-away server",
        drilled ? (drilled.catalog.drill.ok ? "ok" : "bad") : "warn"),
      card("Next scheduled backup", nextRuns.length ? when(nextRuns[0]) : "none",
        `${state.schedules.length} schedule(s)`, nextRuns.length ? "" : "warn"),
      card("Alerts", firing.length ? String(firing.length) : "none",
        firing.map((a) => a.message).join("; ") || "health watch is quiet", firing.length ? "bad" : "ok"),
      card("Backups kept", String(completed.length), `${bytes(completed.reduce((n, b) => n + (b.size || 0), 0))} in total`),
    );
  }

  function checksCell(b) {
    const c = b.catalog || {};
    const out = [];
    if (c.verify) out.push(tag(c.verify.ok ? "archive ✓" : "archive ✗", c.verify.ok ? "ok" : "bad",
      c.verify.detail || `tested ${when(c.verify.at)}`));
    if (c.drill) out.push(tag(c.drill.ok ? "drill ✓" : "drill ✗", c.drill.ok ? "ok" : "bad",
      c.drill.detail || `restore drill ${when(c.drill.at)}`));
    if (!out.length) out.push(el("span", { class: "muted", text: "not checked" }));
    return out;
  }

  function origin(b) {
    const c = b.catalog || {};
    if (c.origin === "schedule") {
      const s = state.schedules.find((x) => x.id === c.source_id);
      return tag(s ? s.name : "schedule (removed)", "");
    }
    return tag(c.origin || "other", c.origin === "safety" ? "warn" : "");
  }

  function renderBackups() {
    const targets = state.targets;
    const newestCompleted = backups.find((b) => b.status === "completed");
    const rows = backups.map((b) => {
      const counts = b.counts ? `${b.counts.users} users · ${b.counts.messages} msgs · ${b.counts.files} files` : "";
      const copy = el("select", { "aria-label": `Copy ${b.name} to`, disabled: b.status !== "completed" || !targets.length },
        el("option", { value: "", text: "copy to…" }),
        targets.map((t) => el("option", { value: t.id, text: t.name })));
      copy.addEventListener("change", () => act(async () => {
        if (!copy.value) return;
        await api(`backups/${b.id}/copy`, { method: "POST", json: { target_id: copy.value } });
        copy.value = "";
      }));
      const done = b.status === "completed";
      return el("tr", {},
        el("td", {}, el("div", { text: b.name }), el("div", { class: "muted mono", title: b.checksum || "", text: b.checksum ? `${b.checksum.slice(0, 16)}…` : b.status })),
        el("td", { title: b.created_at, text: when(b.created_at) }),
        el("td", { text: bytes(b.size) }),
        el("td", {}, origin(b)),
        el("td", {}, b.status === "completed" ? checksCell(b) : tag(b.status, b.status === "failed" ? "bad" : "warn", b.error || "")),
        el("td", { class: "muted", text: counts }),
        el("td", { class: "actions-cell" },
          el("button", { type: "button", disabled: !done, title: "Download, check SHA-256, test the archive and restore it into a throw-away server",
            onclick: () => act(() => api(`backups/${b.id}/verify`, { method: "POST", json: { drill: true } })) }, "Verify + drill"),
          copy,
          el("button", { type: "button", disabled: !done, onclick: () => { selectTab("restore"); $("rw-backup").value = b.id; wizardDetails(); } }, "Restore…"),
          el("button", { type: "button", class: "danger", disabled: !done || b === newestCompleted,
            title: b === newestCompleted ? "The newest backup is never deleted from here" : "Delete this backup",
            onclick: () => act(async () => {
              if (!confirm(`Delete backup “${b.name}”? Its off-site copies are kept.`)) return;
              await api(`backups/${b.id}`, { method: "DELETE" });
              await refresh();
            }) }, "Delete")));
    });
    fill($("backups-table").tBodies[0], rows);
    $("backups-empty").hidden = backups.length > 0;
    const select = $("bn-target");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "no off-site copy" }),
      ...targets.map((t) => el("option", { value: t.id, text: `copy to ${t.name}` })));
    select.value = chosen;
  }

  function renderSchedules() {
    const rows = state.schedules.map((s) => {
      const last = s.last_run;
      return el("tr", {},
        el("td", {}, el("strong", { text: s.name }), s.enabled ? "" : tag("off", "warn")),
        el("td", {}, el("code", { text: s.expression }), s.timezone ? el("div", { class: "muted", text: s.timezone }) : ""),
        el("td", { text: s.running ? "running now" : when(s.next_fire_at) }),
        el("td", {}, last ? tag(last.status, statusKind(last.status), last.summary) : el("span", { class: "muted", text: "never" }),
          last ? el("div", { class: "muted", text: ago(last.finished_at) }) : "",
          s.skipped ? el("div", { class: "muted", text: `${s.skipped} fire(s) skipped while running` }) : ""),
        el("td", {}, s.verify ? tag("archive test") : "", s.drill ? tag("drill") : "",
          (s.targets || []).map((tid) => tag(`→ ${(state.targets.find((t) => t.id === tid) || { name: "?" }).name}`))),
        el("td", { text: policyText(s.policy) }),
        el("td", { class: "actions-cell" },
          el("button", { type: "button", disabled: s.running, onclick: () => act(() => api(`schedules/${s.id}/run`, { method: "POST" })) }, "Run now"),
          el("button", { type: "button", onclick: () => editSchedule(s) }, "Edit"),
          el("button", { type: "button", class: "danger", onclick: () => act(async () => {
            if (!confirm(`Delete schedule “${s.name}”? Its backups stay.`)) return;
            await api(`schedules/${s.id}`, { method: "DELETE" });
          }) }, "Delete")));
    });
    fill($("schedules-table").tBodies[0], rows);
    $("schedules-empty").hidden = state.schedules.length > 0;
    const box = $("sf-targets");
    const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    const options = state.targets.length ? state.targets.map((t) => el("label", {},
      el("input", { type: "checkbox", value: t.id, checked: checked.has(t.id) }), t.name))
      : [el("span", { class: "muted", text: "no off-site target yet (see Off-site)" })];
    box.replaceChildren(el("legend", { text: "Copy to" }), ...options);
  }

  function scheduleBody() {
    const num = (id) => Number($(id).value || 0);
    return {
      name: $("sf-name").value.trim(), expression: $("sf-expression").value.trim(),
      timezone: $("sf-timezone").value.trim() || null, enabled: $("sf-enabled").checked,
      verify: $("sf-verify").checked, drill: $("sf-drill").checked,
      targets: [...$("sf-targets").querySelectorAll("input:checked")].map((i) => i.value),
      policy: { last: num("sf-last"), daily: num("sf-daily"), weekly: num("sf-weekly"),
        monthly: num("sf-monthly"), yearly: num("sf-yearly") },
    };
  }

  function editSchedule(s) {
    $("sf-id").value = s.id;
    $("schedule-form-title").textContent = `Edit “${s.name}”`;
    $("sf-name").value = s.name;
    $("sf-expression").value = s.expression;
    $("sf-timezone").value = s.timezone || "";
    $("sf-enabled").checked = s.enabled;
    $("sf-verify").checked = s.verify;
    $("sf-drill").checked = s.drill;
    for (const box of $("sf-targets").querySelectorAll("input")) box.checked = (s.targets || []).includes(box.value);
    for (const k of ["last", "daily", "weekly", "monthly", "yearly"]) $(`sf-${k}`).value = s.policy[k];
    $("sf-name").focus();
  }

  function resetSchedule() {
    $("schedule-form").reset();
    $("sf-id").value = "";
    $("schedule-form-title").textContent = "New schedule";
    $("retention-panel").hidden = true;
  }

  async function previewRetention() {
    const body = scheduleBody();
    const scope = $("sf-id").value || "all";
    const plan = await api("retention/preview", { method: "POST", json: { scope, policy: body.policy, timezone: body.timezone } });
    retentionShown = { scope, policy: body.policy, timezone: body.timezone, delete: plan.delete };
    $("retention-panel").hidden = false;
    $("retention-summary").textContent = `${scope === "all" ? "all backups" : "this schedule's backups"}: keep ${plan.keep}, delete ${plan.delete.length} (zone ${plan.timezone})`;
    $("retention-apply").disabled = plan.delete.length === 0;
    fill($("retention-table").tBodies[0], plan.decisions.map((d) => el("tr", { class: d.keep ? "" : "delete" },
      el("td", {}, d.keep ? tag("keep", "ok") : tag("delete", "bad")),
      el("td", {}, d.label || d.id, " ", el("span", { class: "muted mono", text: d.id.slice(0, 8) })),
      el("td", { text: d.local }),
      el("td", {}, d.reasons.length ? d.reasons.map((r) => tag(r)) : el("span", { class: "muted", text: "no rule keeps it" })))));
    if (!plan.decisions.length) fill($("retention-table").tBodies[0], [el("tr", {}, el("td", { colspan: 4, class: "muted", text: "No completed backup in this scope yet." }))]);
  }

  function renderTargets() {
    fill($("targets-table").tBodies[0], state.targets.map((t) => el("tr", {},
      el("td", { text: t.name }), el("td", {}, el("code", { text: t.path })),
      el("td", { text: `${t.keep} newest` }),
      el("td", {}, t.encrypt ? tag(t.password_set ? "encrypted" : "encrypted, no password!", t.password_set ? "ok" : "bad") : tag("plain")),
      el("td", { class: "actions-cell" },
        el("button", { type: "button", onclick: () => editTarget(t) }, "Edit"),
        el("button", { type: "button", onclick: () => act(() => showCopies(t, false)) }, "Copies"),
        el("button", { type: "button", onclick: () => act(() => showCopies(t, true)), title: "Re-hash every copy against its recorded SHA-256" }, "Verify copies"),
        el("button", { type: "button", class: "danger", onclick: () => act(async () => {
          if (!confirm(`Remove target “${t.name}”? The copies in the folder stay.`)) return;
          await api(`targets/${t.id}`, { method: "DELETE" });
        }) }, "Remove")))));
    $("targets-empty").hidden = state.targets.length > 0;
  }

  function editTarget(t) {
    $("tf-id").value = t.id;
    $("target-form-title").textContent = `Edit “${t.name}”`;
    $("tf-name").value = t.name;
    $("tf-path").value = t.path;
    $("tf-keep").value = t.keep;
    $("tf-encrypt").checked = t.encrypt;
    $("tf-password").value = "";
    $("tf-submit").textContent = "Save target";
    $("tf-reset").hidden = false;
    $("tf-name").focus();
  }

  function resetTarget() {
    $("target-form").reset();
    $("tf-id").value = "";
    $("target-form-title").textContent = "Add a target";
    $("tf-submit").textContent = "Add target";
    $("tf-reset").hidden = true;
  }

  async function showCopies(target, verify) {
    const listing = await api(`targets/${target.id}/copies${verify ? "?verify=true" : ""}`);
    $("copies-panel").hidden = false;
    $("copies-title").textContent = `Copies in “${target.name}”`;
    $("copies-reach").textContent = listing.reachable ? `${listing.copies.length} copies` : listing.reason;
    fill($("copies-table").tBodies[0], listing.copies.map((c) => {
      // A copy none of the target's passwords opens (made elsewhere, or before a change
      // the plugin did not see) is brought back with its own password, typed here.
      const locked = c.check && c.check.locked;
      const own = locked ? el("input", { type: "password", autocomplete: "off",
        placeholder: "its password", "aria-label": `Password of ${c.file}` }) : null;
      const body = () => (own && own.value ? { file: c.file, password: own.value } : { file: c.file });
      return el("tr", {},
        el("td", {}, el("code", { text: c.file }), c.encrypted ? tag("encrypted", "ok") : ""),
        el("td", { text: when((c.backup || {}).created_at) }),
        el("td", { text: bytes(c.stored_size) }),
        el("td", {}, c.check ? tag(c.check.ok ? "SHA-256 ✓" : (locked ? "no known password" : "damaged"),
          c.check.ok ? "ok" : "bad", c.check.reason || c.check.sha256)
          : (c.present ? el("span", { class: "muted", text: "not verified" }) : tag("file missing", "bad"))),
        el("td", { class: "actions-cell" }, own || "", el("button", { type: "button", disabled: !c.present,
          title: "Decrypt if needed, check, and upload to the server as a backup you can restore",
          onclick: () => act(() => api(`targets/${target.id}/import`, { method: "POST", json: body() })) }, "Bring back")));
    }));
  }

  // -- restore wizard ---------------------------------------------------------------------
  function renderWizard() {
    const select = $("rw-backup");
    const chosen = select.value;
    const completed = backups.filter((b) => b.status === "completed");
    select.replaceChildren(el("option", { value: "", text: completed.length ? "choose a backup…" : "no backup to restore" }),
      ...completed.map((b) => el("option", { value: b.id, text: `${when(b.created_at)} · ${b.name}` })));
    select.value = completed.some((b) => b.id === chosen) ? chosen : "";
    wizardDetails();
  }

  function wizardDetails() {
    const b = backups.find((x) => x.id === $("rw-backup").value);
    const box = $("rw-details");
    if (!b) { box.replaceChildren(); updateMatch(); return; }
    const c = b.catalog || {};
    box.replaceChildren(
      el("div", {}, `Made ${when(b.created_at)}, ${bytes(b.size)}; `, b.counts ? Object.entries(b.counts).map(([k, v]) => `${v} ${k}`).join(", ") : ""),
      el("div", {}, "Recorded SHA-256: ", el("code", { text: b.checksum })),
      el("div", {}, "Checks: ", checksCell(b), c.drill && c.drill.ok ? " — a drill restored it successfully" : " — consider a drill first"));
    updateMatch();
    // The server's own answer to "can this be restored now": the safety backup made
    // first must not push this one out of the kept backups.
    api(`restore/preflight?backup_id=${encodeURIComponent(b.id)}`).then((pre) => {
      if (pre.blocked && $("rw-backup").value === b.id) {
        box.append(el("div", { className: "tag bad", text: pre.blocked }));
      }
    }).catch(() => {});
  }

  function updateMatch() {
    const b = backups.find((x) => x.id === $("rw-backup").value);
    const typed = $("rw-checksum").value.trim().toLowerCase();
    const out = $("rw-match");
    if (!b || !typed) { out.textContent = ""; return; }
    out.textContent = typed === b.checksum ? "✓ matches the recorded SHA-256" : "✗ differs from the recorded SHA-256: the restore will be refused";
    out.className = typed === b.checksum ? "tag ok" : "tag bad";
  }

  async function runRestore(event) {
    event.preventDefault();
    const body = { backup_id: $("rw-backup").value, checksum: $("rw-checksum").value.trim(), confirm: $("rw-confirm").checked };
    const job = await api("restore", { method: "POST", json: body });
    const out = $("rw-result");
    out.hidden = false;
    out.className = "result";
    out.textContent = `Restore started (job ${job.id}): safety backup first, then the restore. Progress below in Backups › Running work.`;
    watchJob(job.id, (done) => {
      out.className = `result ${done.state === "succeeded" ? "ok" : "bad"}`;
      if (done.state === "succeeded") {
        const r = done.result;
        out.replaceChildren(el("strong", { text: "Restored. " }),
          `Counts now: ${Object.entries(r.counts).map(([k, v]) => `${v} ${k}`).join(", ")}. `,
          `Safety backup: “${r.safety_backup.name}” (restore it the same way to undo). ${r.note}`);
      } else {
        out.textContent = `Not restored: ${done.error || done.state}. Nothing was replaced unless the history says so.`;
      }
      $("rw-confirm").checked = false;
    });
  }

  const jobWatchers = new Map();
  function watchJob(id, callback) { jobWatchers.set(id, callback); }

  // -- maintenance ------------------------------------------------------------------------
  function renderMaintenance() {
    const m = state.maintenance;
    $("mf-enabled").checked = m.enabled;
    $("mf-expression").value = m.expression;
    $("mf-window").checked = m.only_in_window;
    for (const box of document.querySelectorAll("input[name=task]")) box.checked = m.tasks.includes(box.value);
    $("mf-log-days").value = m.log_days;
    $("mf-temp-days").value = m.temp_days;
    $("mf-test-days").value = m.test_keep_days;
    $("mf-test-runs").value = m.test_keep_runs;
    const last = m.last_run;
    $("mf-next").textContent = (m.enabled && m.next_fire_at ? `next: ${when(m.next_fire_at)}` : "not scheduled")
      + (last ? ` · last: ${last.status} ${ago(last.finished_at)}` : "");
    const list = $("windows-list");
    list.replaceChildren(...state.windows.map((w) => el("li", {},
      el("span", { class: `dot ${w.active ? "ok" : ""}` }),
      el("strong", { text: w.name }), el("span", { class: "muted", text: w.describe + (w.timezone ? ` (${w.timezone})` : "") }),
      el("span", { class: "spacer" }),
      el("span", { class: "muted", text: w.active ? "active now" : `next ${when(w.next_start)}` }),
      el("button", { type: "button", class: "small danger", onclick: () => act(() => api(`windows/${w.id}`, { method: "DELETE" })) }, "Remove"))));
    if (!state.windows.length) list.replaceChildren(el("li", { class: "muted", text: "No window: alerts always notify; scheduled maintenance set to windows only never runs." }));
  }

  function maintenanceBody() {
    return {
      enabled: $("mf-enabled").checked, expression: $("mf-expression").value.trim(),
      only_in_window: $("mf-window").checked,
      tasks: [...document.querySelectorAll("input[name=task]:checked")].map((i) => i.value),
      log_days: Number($("mf-log-days").value), temp_days: Number($("mf-temp-days").value),
      test_keep_days: Number($("mf-test-days").value), test_keep_runs: Number($("mf-test-runs").value),
    };
  }

  async function previewMaintenance() {
    const p = await api("maintenance/preview", { method: "POST" });
    const box = $("maint-preview");
    box.hidden = false;
    box.replaceChildren(
      el("h2", { text: "What maintenance would do now" }),
      el("p", {}, `Clean-up: ${p.cleanup.length} entries, ${bytes(p.cleanup_bytes)}. `,
        `Test results: ${p.test_results.runs} of ${p.test_results.total_runs} runs would be deleted. `,
        `SQLite: ${p.databases.length} databases (${p.databases.filter((d) => d.vacuum).length} may be vacuumed).`),
      el("table", { class: "grid" }, el("tbody", {},
        p.cleanup.slice(0, 50).map((e) => el("tr", {}, el("td", {}, el("code", { text: e.path })), el("td", { text: bytes(e.bytes) }),
          el("td", { text: `${e.age_days} days` }), el("td", { class: "muted", text: e.reason }))),
        p.databases.map((d) => el("tr", {}, el("td", {}, el("code", { text: d.path })), el("td", { text: bytes(d.bytes) }),
          el("td", { text: d.owner }), el("td", { class: "muted", text: d.vacuum ? "check + VACUUM" : "check only (in use by the app)" }))))));
  }

  async function loadUsage() {
    try {
      const u = await api("maintenance/usage");
      $("disk-free").textContent = `${bytes(u.disk.free)} free of ${bytes(u.disk.total)} (${u.disk.free_percent} %)`;
      const rows = [...u.plugins.map((p) => ({ name: p.plugin, bytes: p.bytes, files: p.files })),
        ...u.areas.map((a) => ({ name: a.area, bytes: a.bytes, files: a.files, area: true }))];
      const max = Math.max(1, ...rows.map((r) => r.bytes));
      fill($("usage-table").tBodies[0], rows.map((r) => el("tr", {},
        el("td", {}, r.area ? el("em", { text: r.name }) : r.name),
        el("td", { class: "muted", text: `${r.files} files` }),
        el("td", { text: bytes(r.bytes) }),
        el("td", {}, el("div", { class: "bar" }, el("span", { style: `width:${Math.max(1, 100 * r.bytes / max)}%` }))))));
    } catch (e) { showError(e); }
  }

  function renderDays() {
    const box = $("wf-days");
    if (box.children.length) return;
    DAY_NAMES.forEach((name, index) => box.append(el("label", {},
      el("input", { type: "checkbox", value: index, checked: index === 6 }), name)));
  }

  // -- health and history ------------------------------------------------------------------
  function renderHealth() {
    const h = state.health;
    const alerts = Object.fromEntries(state.alerts.map((a) => [a.key, a]));
    $("health-when").textContent = h.checked_at ? `checked ${ago(h.checked_at)}` + (h.window ? ` · inside “${h.window.name}”: alerts quiet` : "") : "not checked yet";
    fill($("health-table").tBodies[0], (h.checks || []).map((c) => el("tr", {},
      el("td", {}, el("span", { class: `dot ${c.ok ? "ok" : (c.severity === "critical" ? "bad" : "warn")}` })),
      el("td", { text: c.label || c.key }), el("td", { text: c.message }),
      el("td", { class: "muted", text: alerts[c.key] && alerts[c.key].state === "firing" ? ago(alerts[c.key].since) : "" }))));
    const cfg = state.health_config;
    $("hf-enabled").checked = cfg.enabled;
    $("hf-interval").value = cfg.interval_minutes;
    $("hf-free-pct").value = cfg.disk_min_free_percent;
    $("hf-free-gb").value = cfg.disk_min_free_gb;
    $("hf-age").value = cfg.backup_max_age_hours;
    $("hf-v1").checked = cfg.check_v1;
    $("hf-perf").checked = cfg.check_performance;
  }

  function renderHistory() {
    fill($("history-table").tBodies[0], state.history.map((h) => {
      const steps = ((h.details || {}).steps || []);
      return el("tr", {},
        el("td", {}, el("span", { class: `dot ${statusKind(h.status)}`, title: h.status })),
        el("td", {}, el("strong", { text: h.kind }), " ", h.name, el("div", { class: "muted", text: h.trigger })),
        el("td", { text: when(h.started_at) }),
        el("td", { text: h.finished_at ? `${Math.max(0, h.finished_at - h.started_at).toFixed(1)} s` : "…" }),
        el("td", {}, el("div", { text: h.summary }),
          steps.length ? el("ul", { class: "steplist" }, steps.map((s) => el("li", { class: s.ok ? "" : "bad", text: `${s.step}: ${s.detail}` }))) : ""));
    }));
    $("notes-list").replaceChildren(...state.notifications.map((n) => el("li", { class: `${n.read ? "" : "unread"} ${n.suppressed ? "suppressed" : ""}` },
      el("span", { class: `dot ${n.level === "error" ? "bad" : n.level === "warning" ? "warn" : n.level === "success" ? "ok" : ""}` }),
      el("span", {}, el("strong", { text: n.title }), " ", n.message,
        n.suppressed ? tag("suppressed: maintenance window", "warn") : "",
        el("div", { class: "muted", text: when(n.at) })))));
    if (!state.notifications.length) $("notes-list").replaceChildren(el("li", { class: "muted", text: "No notification." }));
  }

  // -- loading ----------------------------------------------------------------------------
  let refreshing = null;
  let again = false;
  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      try {
        state = await api("state");
        backups = [];
        if (state.account.admin) {
          try { backups = (await api("backups")).backups; } catch (e) { if (e.status !== 403) throw e; }
        }
        renderHeader();
        renderCards();
        renderBackups();
        renderSchedules();
        renderTargets();
        renderWizard();
        renderMaintenance();
        renderHealth();
        renderHistory();
        showError(null);
      } catch (e) {
        showError(e);
      } finally {
        refreshing = null;
        if (again) { again = false; refresh(); }
      }
    })();
    return refreshing;
  }

  let timer = null;
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  function connect() {
    const badge = $("connection");
    const source = window.plexichatLive ? window.plexichatLive.open("api/stream") : new EventSource("api/stream");
    source.addEventListener("open", () => { badge.className = "badge badge-live"; badge.textContent = "Live"; });
    source.addEventListener("error", () => { badge.className = "badge badge-wait"; badge.textContent = "Reconnecting…"; });
    source.addEventListener("changed", soon);
    source.addEventListener("notification", soon);
    for (const section of document.querySelectorAll("[data-plexichat-jobs]")) {
      section.addEventListener("plexichat-job", (event) => {
        const job = event.detail;
        if (["succeeded", "failed", "cancelled"].includes(job.state)) {
          const callback = jobWatchers.get(job.id);
          if (callback) { jobWatchers.delete(job.id); callback(job); }
          soon();
        }
      });
    }
  }

  // -- wiring -----------------------------------------------------------------------------
  function wire() {
    for (const button of document.querySelectorAll(".tabs [role=tab]")) {
      button.addEventListener("click", () => selectTab(button.dataset.tab));
    }
    $("bell").addEventListener("click", () => selectTab("history"));
    $("backup-now").addEventListener("submit", (event) => { event.preventDefault(); act(async () => {
      const target = $("bn-target").value;
      await api("backups", { method: "POST", json: { verify: $("bn-verify").checked, drill: $("bn-drill").checked, targets: target ? [target] : [] } });
    }); });
    $("schedule-form").addEventListener("submit", (event) => { event.preventDefault(); act(async () => {
      const id = $("sf-id").value;
      await api(id ? `schedules/${id}` : "schedules", { method: id ? "PUT" : "POST", json: scheduleBody() });
      resetSchedule();
      await refresh();
    }); });
    $("sf-reset").addEventListener("click", resetSchedule);
    $("sf-preview").addEventListener("click", () => act(previewRetention));
    $("retention-apply").addEventListener("click", () => act(async () => {
      if (!retentionShown || !retentionShown.delete.length) return;
      if (!confirm(`Delete the ${retentionShown.delete.length} backup(s) marked “delete”? Nothing else is touched.`)) return;
      const done = await api("retention/apply", { method: "POST", json: retentionShown });
      $("retention-summary").textContent = `deleted ${done.deleted.length}` + (done.errors.length ? `; errors: ${done.errors.join("; ")}` : "") + (done.left_alone.length ? `; ${done.left_alone.length} now kept by the policy were left alone` : "");
      $("retention-apply").disabled = true;
      await refresh();
    }));
    $("target-form").addEventListener("submit", (event) => { event.preventDefault(); act(async () => {
      const id = $("tf-id").value;
      await api(id ? `targets/${id}` : "targets", { method: id ? "PUT" : "POST", json: { name: $("tf-name").value.trim(), path: $("tf-path").value.trim(),
        keep: Number($("tf-keep").value), encrypt: $("tf-encrypt").checked, password: $("tf-password").value || null } });
      resetTarget();
      await refresh();
    }); });
    $("tf-reset").addEventListener("click", resetTarget);
    $("rw-backup").addEventListener("change", wizardDetails);
    $("rw-checksum").addEventListener("input", updateMatch);
    $("rw-use-recorded").addEventListener("click", () => {
      const b = backups.find((x) => x.id === $("rw-backup").value);
      if (b) { $("rw-checksum").value = b.checksum; updateMatch(); }
    });
    $("rw-drill").addEventListener("click", () => act(async () => {
      const id = $("rw-backup").value;
      if (!id) throw new Error("backup: choose the backup first");
      const job = await api(`backups/${id}/verify`, { method: "POST", json: { drill: true } });
      const out = $("rw-result");
      out.hidden = false;
      out.className = "result";
      out.textContent = "Restore drill running in a throw-away server…";
      watchJob(job.id, (done) => {
        const ok = done.state === "succeeded" && done.result.ok;
        out.className = `result ${ok ? "ok" : "bad"}`;
        out.replaceChildren(el("strong", { text: ok ? "Drill passed. " : "Drill found problems. " }),
          el("ul", { class: "steplist" }, ((done.result || {}).steps || []).map((s) => el("li", { class: s.ok ? "" : "bad", text: `${s.step}: ${s.detail}` }))),
          done.error || "");
      });
    }));
    $("restore-form").addEventListener("submit", (event) => act(() => runRestore(event)));
    $("maint-form").addEventListener("submit", (event) => { event.preventDefault(); act(async () => {
      await api("maintenance", { method: "PUT", json: maintenanceBody() });
      await refresh();
    }); });
    $("mf-preview").addEventListener("click", () => act(previewMaintenance));
    $("mf-run").addEventListener("click", () => act(() => api("maintenance/run", { method: "POST", json: maintenanceBody() })));
    $("window-form").addEventListener("submit", (event) => { event.preventDefault(); act(async () => {
      const days = [...$("wf-days").querySelectorAll("input:checked")].map((i) => Number(i.value));
      await api("windows", { method: "POST", json: { name: $("wf-name").value.trim(), days, start: $("wf-start").value, minutes: Number($("wf-minutes").value) } });
      $("wf-name").value = "";
    }); });
    $("health-check").addEventListener("click", () => act(async () => { await api("health/check", { method: "POST" }); await refresh(); }));
    $("health-form").addEventListener("submit", (event) => { event.preventDefault(); act(async () => {
      await api("health/config", { method: "PUT", json: { enabled: $("hf-enabled").checked, interval_minutes: Number($("hf-interval").value),
        disk_min_free_percent: Number($("hf-free-pct").value), disk_min_free_gb: Number($("hf-free-gb").value),
        backup_max_age_hours: Number($("hf-age").value), check_v1: $("hf-v1").checked, check_performance: $("hf-perf").checked } });
      await refresh();
    }); });
    $("mark-read").addEventListener("click", () => act(() => api("notifications/read", { method: "POST" })));
  }

  wire();
  renderDays();
  let first = "backups";
  try { first = sessionStorage.getItem("system_manager.tab") || first; } catch (e) { /* private mode */ }
  selectTab(first);
  refresh().then(() => {
    // The watch runs every few minutes; a page opened before its first run checks now.
    if (state && !state.health.checked_at) act(() => api("health/check", { method: "POST" }));
  });
  connect();
})();
