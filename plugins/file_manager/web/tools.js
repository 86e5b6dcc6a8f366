// Search (streamed as it finds), checksums and duplicates for the File Manager page.
// The search stream is read with fetch (not EventSource) so a refused pattern shows the
// server's 4xx message, and a new search or Stop aborts the old one.
"use strict";

(function () {
  const fm = window.fileManager;
  const $ = (id) => document.getElementById(id);
  let controller = null;
  let found = 0;

  function openInPane(path, isDir) {
    const pane = fm.activePane();
    const folder = isDir ? path : path.split("/").slice(0, -1).join("/");
    pane.go(folder);
  }

  function addResult(hit) {
    found += 1;
    const button = fm.el("button", { type: "button", className: "name-button", textContent: hit.path,
      onclick: () => openInPane(hit.path, hit.type === "dir") });
    const item = fm.el("li", {}, button);
    if (hit.type === "dir") item.append(" (folder)");
    for (const line of hit.lines || []) {
      item.append(fm.el("div", { className: "muted", textContent: `  ${line.line}: ${line.text}` }));
    }
    $("search-results").append(item);
  }

  function parseBlock(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    return data.length ? [name, JSON.parse(data.join("\n"))] : null;
  }

  function handle(name, data) {
    if (name === "match") addResult(data);
    else if (name === "progress") $("search-status").textContent = `Searching… ${data.scanned} file(s) read, ${data.matches} match(es)`;
    else if (name === "done") {
      const s = data.skipped;
      $("search-status").textContent = `${data.matches} match(es) in ${data.scanned} file(s)` +
        (data.truncated ? " (stopped at the result limit)" : "") +
        ` · skipped: ${s.ignored} ignored, ${s.binary} binary, ${s.too_large} too large`;
      return true;
    } else if (name === "error") {
      fm.showError(data.detail);
      return true;
    }
    return false;
  }

  async function startSearch(event) {
    event.preventDefault();
    stopSearch();
    const pane = fm.activePane();
    const params = new URLSearchParams({
      root: pane.root, path: pane.path, name: $("search-name").value,
      mode: $("search-mode").value, content: $("search-content").value,
      content_mode: $("search-content-mode").value, case: String($("search-case").checked),
      gitignore: String($("search-gitignore").checked), hidden: String($("search-hidden").checked),
    });
    $("search-results").replaceChildren();
    found = 0;
    controller = new AbortController();
    $("search-stop").disabled = false;
    $("search-status").textContent = "Searching…";
    try {
      const response = await fetch(`api/search?${params}`, { signal: controller.signal });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.detail || `${response.status} ${response.statusText}`);
      }
      fm.showError("");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let finished = false;
      while (!finished) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while (!finished && (cut = buffer.indexOf("\n\n")) >= 0) {
          const parsed = parseBlock(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (parsed) finished = handle(parsed[0], parsed[1]);
        }
      }
      controller.abort();
    } catch (err) {
      if (err.name !== "AbortError") {
        fm.showError(err.message);
        $("search-status").textContent = "";
      }
    } finally {
      $("search-stop").disabled = true;
    }
  }

  function stopSearch() {
    if (controller) {
      controller.abort();
      controller = null;
      $("search-status").textContent = `Stopped after ${found} match(es).`;
    }
  }

  $("search-form").addEventListener("submit", startSearch);
  $("search-stop").addEventListener("click", stopSearch);

  $("dupes-start").addEventListener("click", async () => {
    const pane = fm.activePane();
    try {
      await fm.post("duplicates", { root: pane.root, path: pane.path });
      $("search-status").textContent = "Looking for duplicates (see Jobs)…";
    } catch (err) { fm.showError(err.message); }
  });

  $("op-hash").addEventListener("click", async () => {
    const pane = fm.activePane();
    const paths = pane.selection();
    if (paths.length !== 1) { fm.showError("Select one file for its checksum."); return; }
    const algorithms = fm.state.caps.blake3 ? ["sha256", "blake3"] : ["sha256"];
    try {
      await fm.post("hash", { root: pane.root, path: paths[0], algorithms });
    } catch (err) { fm.showError(err.message); }
  });

  $("op-details").addEventListener("click", async () => {
    const pane = fm.activePane();
    const paths = pane.selection();
    if (paths.length !== 1) { fm.showError("Select one file for its details."); return; }
    try {
      const info = await fm.call(`metadata?${new URLSearchParams({ root: pane.root, path: paths[0] })}`);
      fm.showError("");
      $("search-status").textContent = `Details of ${info.path}`;
      const rows = [["Size", fm.size(info.size)], ["Modified", fm.when(info.mtime)],
        ["Permissions", `${info.mode} (${info.octal})`], ["Type", info.mime || info.type]];
      for (const [key, value] of Object.entries(info.fields || {})) rows.push([key, value]);
      if (info.missing) rows.push(["Note", `install ${info.missing} to read its ${info.kind} details`]);
      if (info.error) rows.push(["Could not read", info.error]);
      $("search-results").replaceChildren(...rows.map(([k, v]) => fm.el("li", { textContent: `${k}: ${v}` })));
    } catch (err) { fm.showError(err.message); }
  });

  document.addEventListener("fm-job", (event) => {
    const job = event.detail;
    if (job.state !== "succeeded") return;
    if (job.name === "hash") {
      $("search-results").replaceChildren();
      const r = job.result;
      $("search-status").textContent = `Checksums of ${r.path} (${fm.size(r.size)})`;
      for (const key of ["sha256", "blake3"]) {
        if (r[key]) $("search-results").append(fm.el("li", { textContent: `${key.toUpperCase()}  ${r[key]}` }));
      }
    } else if (job.name === "duplicates") {
      const r = job.result;
      $("search-results").replaceChildren();
      $("search-status").textContent = `${r.groups.length} group(s) of identical files among ${r.scanned}; ` +
        `${fm.size(r.wasted)} could be freed (${r.algorithm})`;
      for (const group of r.groups) {
        const item = fm.el("li", { textContent: `${fm.size(group.size)} × ${group.paths.length}` });
        for (const path of group.paths) {
          // Other names of the same file: deleting them frees nothing.
          const others = (group.hard_links || {})[path] || [];
          item.append(fm.el("div", {}, fm.el("button", { type: "button", className: "name-button",
            textContent: path, onclick: () => openInPane(path, false) }),
          others.length ? fm.el("span", { className: "muted",
            textContent: ` (also named ${others.join(", ")}: a hard link, the same file)` }) : ""));
        }
        $("search-results").append(item);
      }
    }
  });
}());
