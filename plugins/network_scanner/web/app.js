// Network Scanner page: the scan form with a live allow-list check, the live port grid,
// services, findings, TLS, history with ndiff-style changes, profiles and alerts.
// Everything a service sent (banners, titles, certificate names) is shown with
// textContent only: a scanned host chooses those bytes.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const state = {
    info: null,
    current: null,      // the scan shown: {id, hosts, ports, cells: Map, live}
    scans: [],          // history rows
    ticked: new Set(),  // history ids ticked for comparing
    checkTimer: null,
  };
  const SEVERITIES = ["critical", "high", "medium", "low", "info"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function showError(message) {
    const box = $("page-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function api(path, init) {
    const response = await fetch(`api/${path}`, init);
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : null;
    if (!response.ok) {
      const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail
        : body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; "))
        : `${response.status} ${response.statusText}`;
      const error = new Error(detail);
      error.field = body && body.field;
      throw error;
    }
    return body;
  }

  const post = (path, data, method = "POST") => api(path, {
    method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(data)});

  function when(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    return d.toLocaleString(undefined, {month: "short", day: "numeric", hour: "2-digit",
                                        minute: "2-digit", second: "2-digit"});
  }

  // -- the form ----------------------------------------------------------------------
  function formOptions() {
    return {
      targets: $("targets").value, ports: $("ports").value,
      concurrency: Number($("concurrency").value) || 200,
      connect_timeout: Number($("connect-timeout").value) || 1,
      probe_timeout: Number($("probe-timeout").value) || 2,
      detect: $("detect").checked, tls: $("tls").checked, backend: $("backend").value,
    };
  }

  function setForm(options) {
    $("targets").value = options.targets;
    $("ports").value = options.ports;
    $("concurrency").value = options.concurrency;
    $("connect-timeout").value = options.connect_timeout;
    $("probe-timeout").value = options.probe_timeout;
    $("detect").checked = options.detect;
    $("tls").checked = options.tls;
    $("backend").value = options.backend;
    scheduleCheck();
  }

  function scheduleCheck() {
    clearTimeout(state.checkTimer);
    state.checkTimer = setTimeout(check, 250);
  }

  async function check() {
    let result;
    try {
      result = await post("check", {targets: $("targets").value, ports: $("ports").value});
    } catch (error) {
      showError(error.message);
      return;
    }
    const targets = $("target-status");
    const ports = $("ports-status");
    targets.replaceChildren();
    ports.replaceChildren();
    for (const problem of result.problems) {
      const box = problem.field === "ports" ? ports : targets;
      box.append(el("span", {class: "chip bad", text: "✗ " + problem.detail.replace(/^\w+: /, "")}));
    }
    const hosts = result.hosts || [];
    for (const host of hosts.slice(0, 6)) {
      const label = host.name ? `${host.name} → ${host.address}` : host.address;
      targets.append(el("span", {class: "chip ok", title: host.why, text: `✓ ${label} (${host.why})`}));
    }
    if (hosts.length > 6) targets.append(el("span", {class: "chip ok", text: `+ ${hosts.length - 6} more`}));
    if (result.port_count) ports.append(el("span", {class: "chip ok", text: `✓ ${result.port_count} ports`}));
    $("scan-start").disabled = !result.ok;
  }

  async function startScan(event) {
    event.preventDefault();
    showError("");
    try {
      const started = await post("scans", {...formOptions(), name: $("scan-name").value});
      beginLive(started.scan_id, started.hosts.map((h) => h.address), null, started.port_count);
    } catch (error) {
      showError(error.message);
    }
  }

  // -- the live port grid ----------------------------------------------------------------
  function beginLive(id, hosts, ports, portCount) {
    // The stream's "scan running" event may arrive before the POST's answer: keep it.
    if (state.current && state.current.id === id && state.current.ports && !ports) return;
    state.current = {id, hosts, ports, portCount, cells: new Map(), live: true, counts: {open: 0, closed: 0, filtered: 0}};
    $("scan-caption").textContent = `scanning ${hosts.length} host(s), ${portCount} ports…`;
    renderGrid();
    $("counts").textContent = "";
  }

  function renderGrid() {
    const grid = $("grid");
    grid.replaceChildren();
    const cur = state.current;
    if (!cur) return;
    if (!cur.ports) {
      grid.append(el("p", {class: "muted", text: "Waiting for the port list…"}));
      return;
    }
    if (cur.ports.length * cur.hosts.length > 20000) {
      grid.append(el("p", {class: "muted", text: `${cur.ports.length} ports × ${cur.hosts.length} hosts: too many cells to draw; the counts below are live.`}));
      return;
    }
    const dense = cur.ports.length > 400;
    for (const host of cur.hosts) {
      const cells = el("div", {class: dense ? "cells dense" : "cells", role: "list", "aria-label": `ports of ${host}`});
      for (const port of cur.ports) {
        const key = `${host}:${port}`;
        const known = cur.cells.get(key);
        const cell = el("i", {class: `cell ${known || "pending"}`, title: `${port} ${known || "pending"}`, role: "listitem"});
        cur.cells.set(key, known || "pending");
        cell.dataset.key = key;
        cells.append(cell);
      }
      grid.append(el("div", {class: "host-row"}, el("span", {class: "host mono", text: host}), cells));
    }
  }

  function markPorts(items) {
    const cur = state.current;
    if (!cur) return;
    const grid = $("grid");
    for (const [address, port, portState] of items) {
      const key = `${address}:${port}`;
      if (cur.cells.get(key) !== portState && cur.counts[portState] !== undefined) cur.counts[portState] += 1;
      cur.cells.set(key, portState);
      const cell = grid.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (cell) {
        cell.className = `cell ${portState}`;
        cell.title = `${port} ${portState}`;
      }
    }
    const c = cur.counts;
    $("counts").textContent = `${c.open} open · ${c.filtered} filtered · ${c.closed} closed`;
  }

  // -- a finished scan -----------------------------------------------------------------
  async function showScan(id) {
    let scan;
    try {
      scan = await api(`scans/${encodeURIComponent(id)}`);
    } catch (error) {
      showError(error.message);
      return;
    }
    const listed = new Map(scan.ports.map((p) => [`${p.address}:${p.port}`, p.state]));
    const hosts = scan.hosts.map((h) => h.address);
    const ports = expand(scan.scanned_ports);
    state.current = {id: scan.id, hosts, ports: ports.length <= 4096 ? ports : null,
                     portCount: scan.port_count, cells: new Map(), live: false, counts: {...scan.counts}};
    if (state.current.ports) {
      for (const host of hosts) for (const port of ports) {
        const key = `${host}:${port}`;
        state.current.cells.set(key, listed.get(key) || "closed");
      }
    }
    renderGrid();
    if (!state.current.ports) $("grid").replaceChildren(el("p", {class: "muted", text: `${scan.port_count} ports: the grid shows at most 4096; open and filtered ones are in the table below.`}));
    const c = scan.counts;
    $("counts").textContent = `${c.open} open · ${c.filtered} filtered · ${c.closed} closed` +
      (scan.duration ? ` · ${scan.duration.toFixed(2)} s` : "") + ` · ${scan.backend}`;
    $("scan-caption").textContent = `${scan.name || scan.targets} · ${when(scan.started)}`;
    renderServices(scan);
    renderFindings(scan);
    renderTls(scan);
    renderDiff(scan.diff, scan.diff ? "against the previous scan of the same targets" : "first scan of these targets: nothing to compare yet");
    for (const row of $("history").querySelectorAll("tr")) row.classList.toggle("current", row.dataset.id === scan.id);
  }

  function expand(spec) {
    const out = [];
    for (const part of (spec || "").split(",")) {
      if (!part) continue;
      const [a, b] = part.split("-").map(Number);
      for (let p = a; p <= (b || a); p++) {
        out.push(p);
        if (out.length > 4096) return out;
      }
    }
    return out;
  }

  function renderServices(scan) {
    const body = $("services");
    body.replaceChildren();
    const names = new Map(scan.hosts.map((h) => [h.address, h.name]));
    const rows = scan.ports.filter((p) => p.state === "open" || p.state === "filtered").slice(0, 2000);
    if (!rows.length) {
      body.append(el("tr", {}, el("td", {colspan: 7, class: "muted", text: "No open or filtered port."})));
      return;
    }
    for (const p of rows) {
      const s = p.service || {};
      const facts = s.facts || {};
      const evidence = s.banner || (facts.http_title ? `title: ${facts.http_title}` : "") || p.reason || "";
      const tls = p.tls ? (p.tls.negotiated || "handshake failed") : (s.tls ? "yes" : "");
      body.append(el("tr", {},
        el("td", {class: "mono", text: names.get(p.address) ? `${names.get(p.address)} (${p.address})` : p.address}),
        el("td", {class: "mono", text: p.port}),
        el("td", {class: `state-${p.state}`, text: p.state}),
        el("td", {text: s.name || (p.state === "open" ? "—" : "")}),
        el("td", {text: [s.product, s.version, s.extra ? `(${s.extra})` : ""].filter(Boolean).join(" ")}),
        el("td", {text: tls}),
        el("td", {class: "banner", text: evidence})));
    }
  }

  function renderFindings(scan) {
    const box = $("findings");
    box.replaceChildren();
    const summary = $("severity");
    summary.replaceChildren();
    for (const level of SEVERITIES) {
      const n = scan.severity ? scan.severity[level] : 0;
      if (n) summary.append(el("span", {class: `sev ${level}`, text: `${n} ${level}`}));
    }
    if (!scan.findings.length) {
      box.append(el("p", {class: "muted", text: "No finding for this scan."}));
      return;
    }
    for (const f of scan.findings) {
      const confidence = f.confidence === "confirmed" ? "confirmed" : "banner";
      box.append(el("div", {class: "finding"},
        el("span", {class: `sev ${f.severity}`, text: f.severity}),
        el("span", {class: "title", text: f.title}),
        el("div", {class: "meta"},
          el("span", {class: "mono", text: `${f.address}:${f.port}`}),
          el("span", {class: `conf ${confidence}`, title: confidence === "confirmed" ? "a probe showed it" : "the announced version is in the affected range: check before acting (backports)", text: f.confidence}),
          f.cve && /^CVE-\d{4}-\d{4,7}$/.test(f.cve)
            ? el("a", {class: "mono", href: `https://nvd.nist.gov/vuln/detail/${f.cve}`, target: "_blank", rel: "noopener noreferrer", title: "NVD entry (opens in your browser)", text: f.cve})
            : null,
          f.score !== null && f.score !== undefined ? el("span", {text: `CVSS ${f.score}`}) : null,
          el("span", {text: f.evidence})),
        el("div", {class: "advice", text: f.advice})));
    }
  }

  function renderTls(scan) {
    const box = $("tls-details");
    box.replaceChildren();
    const ports = scan.ports.filter((p) => p.tls);
    if (!ports.length) {
      box.append(el("p", {class: "muted", text: "No TLS port in this scan."}));
      return;
    }
    for (const p of ports) {
      const t = p.tls;
      const card = el("div", {class: "tls-card"}, el("h3", {class: "mono", text: `${p.address}:${p.port}`}));
      if (t.error) {
        card.append(el("p", {class: "muted", text: t.error}));
        box.append(card);
        continue;
      }
      const flags = el("div", {class: "proto"});
      const flag = (ok, text) => flags.append(el("span", {class: `chip ${ok ? "ok" : "bad"}`, text}));
      flag(t.trusted, t.trusted ? "chain trusted" : `chain not trusted: ${t.verify_error || "?"}`);
      flag(!t.expired && !t.not_yet_valid, t.expired ? "expired" : t.not_yet_valid ? "not yet valid" : t.expires_soon ? "expires soon" : "valid dates");
      flag(!t.self_signed, t.self_signed ? "self-signed" : "CA-issued");
      flag(t.name_matches, t.name_matches ? `names ${t.name_checked}` : `does not name ${t.name_checked}`);
      card.append(flags);
      const protos = el("div", {class: "proto"});
      for (const [name, status] of Object.entries(t.protocols || {})) {
        const old = name === "TLSv1.0" || name === "TLSv1.1";
        const cls = status === "accepted" ? (old ? "bad" : "ok") : (status === "refused" && old ? "ok" : "");
        protos.append(el("span", {class: `chip ${cls}`, text: `${name}: ${status}`}));
      }
      for (const [name, item] of Object.entries(t.weak_ciphers || {})) {
        if (item.status === "accepted") protos.append(el("span", {class: "chip bad", title: item.why, text: `${name}: ${item.cipher}`}));
      }
      card.append(protos);
      card.append(el("div", {class: "small-text muted", text: `negotiated ${t.negotiated} with ${t.cipher}`}));
      const chain = el("ol", {class: "chain"});
      for (const c of t.chain || []) {
        chain.append(el("li", {}, `${c.subject} ← ${c.issuer} · ${c.key} · ${c.signature_hash || "?"} · until ${c.not_after.slice(0, 10)} (${c.days_left} days) · `,
          el("span", {class: "mono", text: c.sha256.slice(0, 16)})));
      }
      card.append(chain);
      box.append(card);
    }
  }

  function renderDiff(diff, caption) {
    const list = $("diff");
    list.replaceChildren();
    $("diff-caption").textContent = caption || "";
    if (!diff) return;
    if (!diff.changes.length) {
      list.append(el("li", {class: "muted", text: "No changes."}));
      return;
    }
    for (const change of diff.changes) {
      list.append(el("li", {}, el("span", {class: `kind ${change.kind}`, text: change.kind.replace("-", " ")}),
        el("span", {text: change.detail})));
    }
  }

  // -- history, import, compare ----------------------------------------------------------
  async function loadHistory() {
    let data;
    try {
      data = await api("scans?limit=100");
    } catch (error) {
      showError(error.message);
      return;
    }
    state.scans = data.scans;
    const body = $("history");
    body.replaceChildren();
    if (!data.scans.length) {
      body.append(el("tr", {}, el("td", {colspan: 9, class: "muted", text: "No scan yet."})));
    }
    for (const s of data.scans) {
      const tick = el("input", {type: "checkbox", "aria-label": `compare scan of ${when(s.started)}`});
      tick.checked = state.ticked.has(s.id);
      tick.addEventListener("change", () => {
        if (tick.checked) state.ticked.add(s.id); else state.ticked.delete(s.id);
        $("compare").disabled = state.ticked.size !== 2;
      });
      const open = el("button", {type: "button", class: "small", text: when(s.started), title: "Show this scan"});
      open.addEventListener("click", () => showScan(s.id));
      const del = el("button", {type: "button", class: "small danger", text: "Delete", "aria-label": `delete scan of ${when(s.started)}`});
      del.addEventListener("click", async () => {
        try {
          await api(`scans/${encodeURIComponent(s.id)}`, {method: "DELETE"});
          state.ticked.delete(s.id);
          loadHistory();
        } catch (error) { showError(error.message); }
      });
      const row = el("tr", {},
        el("td", {}, tick), el("td", {}, open), el("td", {text: s.name || ""}),
        el("td", {class: "mono", text: s.targets}), el("td", {text: s.open_ports}),
        el("td", {text: s.findings}),
        el("td", {text: s.change_summary || (s.changes === null ? "—" : "no changes")}),
        el("td", {}, el("a", {href: `api/scans/${encodeURIComponent(s.id)}/export.json`, download: `scan-${s.id}.json`, text: "JSON"}), " ",
          el("a", {href: `api/scans/${encodeURIComponent(s.id)}/export.csv`, download: `scan-${s.id}.csv`, text: "CSV"})),
        el("td", {}, del));
      row.dataset.id = s.id;
      if (state.current && state.current.id === s.id) row.classList.add("current");
      body.append(row);
    }
    $("compare").disabled = state.ticked.size !== 2;
  }

  async function compare() {
    const ids = [...state.ticked];
    const rows = state.scans.filter((s) => ids.includes(s.id)).sort((a, b) => a.started - b.started);
    if (rows.length !== 2) return;
    try {
      const diff = await api(`diff?old=${encodeURIComponent(rows[0].id)}&new=${encodeURIComponent(rows[1].id)}`);
      renderDiff(diff, `${when(rows[0].started)} → ${when(rows[1].started)}: ${diff.summary}`);
      $("changes-title").scrollIntoView({block: "nearest"});
    } catch (error) { showError(error.message); }
  }

  async function importXml(event) {
    event.preventDefault();
    const file = $("import-file").files[0];
    if (!file) { showError("Choose an nmap XML file (nmap -oX) first."); return; }
    try {
      const done = await post("import", {xml: await file.text(), name: file.name});
      showError("");
      await loadHistory();
      showScan(done.id);
    } catch (error) { showError(error.message); }
  }

  // -- profiles and alerts -------------------------------------------------------------
  function renderProfiles(profiles) {
    const list = $("profiles");
    list.replaceChildren();
    if (!profiles.length) list.append(el("li", {class: "muted", text: "No profile yet."}));
    for (const p of profiles) {
      const run = el("button", {type: "button", class: "small", text: "Run now"});
      run.addEventListener("click", async () => {
        try {
          const started = await post(`profiles/${encodeURIComponent(p.id)}/run`, {});
          beginLive(started.scan_id, started.hosts.map((h) => h.address), null, started.port_count);
        } catch (error) { showError(error.message); }
      });
      const load = el("button", {type: "button", class: "small", text: "Load into form"});
      load.addEventListener("click", () => { setForm(p.options); $("profile-name").value = p.name; $("profile-schedule").value = p.schedule; $("profile-notify").checked = p.notify; });
      const del = el("button", {type: "button", class: "small danger", text: "Delete"});
      del.addEventListener("click", async () => {
        try { await api(`profiles/${encodeURIComponent(p.id)}`, {method: "DELETE"}); loadProfiles(); } catch (error) { showError(error.message); }
      });
      list.append(el("li", {},
        el("div", {class: "name", text: p.name}),
        el("div", {class: "line mono", text: `${p.options.targets} · ${p.options.ports}`}),
        el("div", {class: "line", text: (p.schedule ? `rescans ${p.schedule}` : "by hand") + (p.notify ? " · alerts on" : " · alerts off") +
          (p.last_change ? " · last change found" : "")}),
        el("div", {class: "buttons"}, run, load, del)));
    }
  }

  async function loadProfiles() {
    try { renderProfiles((await api("profiles")).profiles); } catch (error) { showError(error.message); }
  }

  async function saveProfile(event) {
    event.preventDefault();
    const name = $("profile-name").value.trim();
    const existing = [...document.querySelectorAll("#profiles .name")].some((n) => n.textContent === name);
    const body = {name, options: formOptions(), schedule: $("profile-schedule").value.trim(), notify: $("profile-notify").checked};
    try {
      if (existing) {
        const all = (await api("profiles")).profiles;
        const match = all.find((p) => p.name === name);
        await post(`profiles/${encodeURIComponent(match.id)}`, body, "PUT");
      } else {
        await post("profiles", body);
      }
      showError("");
      loadProfiles();
    } catch (error) { showError(error.message); }
  }

  function renderAlerts(alerts) {
    const list = $("alerts");
    list.replaceChildren();
    if (!alerts.length) list.append(el("li", {class: "muted", text: "No change seen yet. Scan a profile twice, or let its schedule do it."}));
    for (const a of alerts.slice(0, 12)) {
      const link = el("button", {type: "button", class: "small", text: "Show"});
      link.addEventListener("click", () => showScan(a.id));
      list.append(el("li", {}, el("div", {class: "when", text: `${when(a.started)} · ${a.name || a.targets}`}),
        el("div", {text: a.diff.summary}), link));
    }
  }

  async function loadAlerts() {
    try { renderAlerts((await api("alerts")).alerts); } catch (error) { showError(error.message); }
  }

  // -- start-up and the live stream ------------------------------------------------------
  async function loadInfo() {
    try {
      const info = await api("info");
      state.info = info;
      const allowed = info.allowed_targets.length ? `loopback + ${info.allowed_targets.join(", ")}` : "loopback only (add your hosts in settings: allowed_targets)";
      $("info").textContent = `Allowed: ${allowed} · ${info.rules} advisories, ${info.checks} checks offline · nmap: ${info.nmap ? "found" : "not installed"} · alerts: ${info.notify_user ? `page, app and v1 notification to ${info.notify_user}` : "page and app (log in to the v1 API for notifications)"}`;
      const nmap = $("backend").querySelector('option[value="nmap"]');
      nmap.disabled = !info.nmap;
      if (!info.nmap) nmap.textContent = "nmap (not installed)";
      $("concurrency").value = info.defaults.concurrency;
      $("connect-timeout").value = info.defaults.connect_timeout;
      $("probe-timeout").value = info.defaults.probe_timeout;
    } catch (error) { showError(error.message); }
  }

  function connect() {
    const badge = $("connection");
    const source = window.plexichatLive ? window.plexichatLive.open("api/stream") : new EventSource("api/stream");
    source.addEventListener("open", () => { badge.className = "badge badge-live"; badge.textContent = "Live"; });
    source.addEventListener("error", () => { badge.className = "badge badge-wait"; badge.textContent = "Reconnecting…"; });
    source.addEventListener("running", (e) => {
      // Opened (or reconnected) while a scan runs: follow it from here on.
      const running = JSON.parse(e.data).scans;
      if (!running.length || (state.current && state.current.live)) return;
      const scan = running[0];
      beginLive(scan.scan_id, scan.hosts.map((h) => h.address), scan.ports, scan.port_count);
      $("scan-caption").textContent = `joined a running scan of ${scan.hosts.length} host(s), ${scan.port_count} ports…`;
    });
    source.addEventListener("scan", (e) => {
      const data = JSON.parse(e.data);
      if (data.state === "running") {
        if (!state.current || state.current.id !== data.id || !state.current.ports) {
          const cells = state.current && state.current.id === data.id ? state.current.cells : new Map();
          beginLive(data.id, data.hosts.map((h) => h.address), data.ports, data.port_count);
          state.current.cells = cells;
          renderGrid();
        }
      } else if (data.state === "done") {
        loadHistory().then(() => showScan(data.id));
        if (data.diff && data.diff.changes.length) loadAlerts();
      } else if (state.current && state.current.id === data.id) {
        $("scan-caption").textContent = `${data.state}${data.error ? ": " + data.error : ""}`;
      }
    });
    source.addEventListener("ports", (e) => {
      const data = JSON.parse(e.data);
      if (state.current && state.current.id === data.id) markPorts(data.items);
    });
    source.addEventListener("alert", (e) => {
      const data = JSON.parse(e.data);
      loadAlerts();
      $("diff-caption").textContent = `${data.profile}: ${data.summary}` + (data.notified ? ` (notified ${data.notified})` : "");
    });
    source.addEventListener("profiles", (e) => renderProfiles(JSON.parse(e.data).profiles));
  }

  function start() {
    $("scan-form").addEventListener("submit", startScan);
    $("targets").addEventListener("input", scheduleCheck);
    $("ports").addEventListener("input", scheduleCheck);
    $("profile-form").addEventListener("submit", saveProfile);
    $("import-form").addEventListener("submit", importXml);
    $("compare").addEventListener("click", compare);
    loadInfo().then(check);
    loadHistory().then(() => {
      // The newest scan, unless the stream already joined a running one.
      if (state.scans.length && !(state.current && state.current.live)) showScan(state.scans[0].id);
    });
    loadProfiles();
    loadAlerts();
    connect();
  }

  window.networkScanner = {state, showScan, loadHistory, compare};
  start();
})();
