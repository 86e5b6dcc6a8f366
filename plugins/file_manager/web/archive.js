// Archive browser and packing for the File Manager page: opens an archive clicked in a
// pane as a folder, tests it, extracts it (refused archives name the member) and packs the
// selection. Uses window.fileManager from app.js.
"use strict";

(function () {
  const fm = window.fileManager;
  const $ = (id) => document.getElementById(id);
  const ARCHIVE = /\.(zip|tar|tgz|tar\.gz|tbz2|tar\.bz2|txz|tar\.xz|tzst|tar\.zst|7z)$/i;
  const current = { root: null, path: null, inner: "" };
  const password = () => $("archive-password").value || null;

  async function show(root, path, inner) {
    Object.assign(current, { root, path, inner });
    const params = new URLSearchParams({ root, path, inner });
    let listing;
    try {
      listing = await fm.call(`archive/list?${params}`);
    } catch (err) {
      fm.showError(err.message);
      return;
    }
    $("archive-panel").hidden = false;
    if (current.path !== listing.path) $("archive-password").value = "";
    $("archive-title").textContent = path.split("/").pop();
    $("archive-summary").textContent = `${listing.format} · ${listing.members} member(s) · ` +
      `${fm.size(listing.size)} packed, ${fm.size(listing.unpacked)} unpacked`;
    const refused = $("archive-refused");
    refused.hidden = !listing.refused;
    refused.textContent = listing.refused ? `Unsafe, will not be extracted: ${listing.refused.detail}` : "";
    $("archive-extract").disabled = Boolean(listing.refused);
    const crumbs = $("archive-crumbs");
    crumbs.replaceChildren();
    const parts = listing.inner ? listing.inner.split("/") : [];
    crumbs.append(fm.el("button", { type: "button", textContent: "(top)", onclick: () => show(root, path, "") }));
    parts.forEach((part, i) => {
      const target = parts.slice(0, i + 1).join("/");
      crumbs.append("/", fm.el("button", { type: "button", textContent: part, onclick: () => show(root, path, target) }));
    });
    $("archive-rows").replaceChildren(...listing.entries.map((entry) => {
      const name = entry.type === "dir"
        ? fm.el("button", { type: "button", className: "name-button", textContent: entry.name,
          onclick: () => show(root, path, entry.path) })
        : fm.el("span", { textContent: entry.name });
      return fm.el("tr", { className: `kind-${entry.type}` },
        fm.el("td", {}, name),
        fm.el("td", { className: "num", textContent: fm.size(entry.size) }),
        fm.el("td", { className: "num", textContent: entry.compressed == null ? "" : fm.size(entry.compressed) }),
        fm.el("td", { textContent: entry.mtime ? fm.when(entry.mtime) : "" }),
        fm.el("td", { textContent: entry.type }));
    }));
  }

  document.addEventListener("fm-open", (event) => {
    const { pane, entry } = event.detail;
    if (ARCHIVE.test(entry.name)) show(pane.root, entry.path, "");
  });

  $("archive-close").addEventListener("click", () => { $("archive-panel").hidden = true; });
  $("archive-test").addEventListener("click", async () => {
    try {
      await fm.post("archive/test", { root: current.root, path: current.path, password: password() });
      fm.announce("Testing the archive");
    } catch (err) { fm.showError(err.message); }
  });
  $("archive-extract").addEventListener("click", async () => {
    const to = fm.otherPane();
    try {
      await fm.post("archive/extract", { root: current.root, path: current.path, dest_root: to.root, dest: to.path, password: password() });
      fm.showError("");
    } catch (err) { fm.showError(err.message); }
  });

  // A finished test says its verdict where the archive is shown.
  document.addEventListener("fm-job", (event) => {
    const job = event.detail;
    if (job.name === "test archive" && job.state === "succeeded") {
      const result = job.result;
      $("archive-summary").textContent = result.ok
        ? `Test passed: ${result.members} member(s) read completely`
        : `Test FAILED: ${result.error}`;
    }
  });

  document.addEventListener("fm-ready", () => {
    const select = $("pack-format");
    for (const fmt of fm.state.caps.create_formats || []) {
      select.append(fm.el("option", { value: fmt, textContent: fmt }));
    }
  });
  $("op-pack").addEventListener("click", () => {
    const pane = fm.activePane();
    const paths = pane.selection();
    if (!paths.length) { fm.showError("Select what to pack in the active pane first."); return; }
    $("pack-name").value = paths.length === 1 ? paths[0].split("/").pop() : "archive";
    $("pack-form").hidden = false;
    $("pack-name").focus();
  });
  $("pack-cancel").addEventListener("click", () => { $("pack-form").hidden = true; });
  $("pack-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const from = fm.activePane();
    const to = fm.otherPane();
    $("pack-form").hidden = true;
    try {
      await fm.post("archive/create", { root: from.root, paths: from.selection(), dest_root: to.root,
        dest: to.path, name: $("pack-name").value.trim(), format: $("pack-format").value,
        password: $("pack-password").value || null });
      $("pack-password").value = "";
      fm.showError("");
    } catch (err) { fm.showError(err.message); }
  });
}());
