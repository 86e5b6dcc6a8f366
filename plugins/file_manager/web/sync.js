// Sync plan for the File Manager page: a dry run of the active pane's folder against a
// cloud folder on PlexiChat, shown file by file with a checkbox each; only ticked rows
// are sent to /sync/apply. Deletions start unticked.
"use strict";

(function () {
  const fm = window.fileManager;
  const $ = (id) => document.getElementById(id);
  const SYMBOL = { "upload": "+ up", "update-cloud": "~ up", "download": "+ down",
    "update-local": "~ down", "delete-cloud": "− cloud", "delete-local": "− here",
    "conflict": "⚠ both" };
  let plan = null;

  async function status() {
    try {
      const s = await fm.call("sync/status");
      if (!s.available) $("sync-user").textContent = `Sync is unavailable: ${s.reason}`;
      else if (!s.user) $("sync-user").textContent = "Nobody is signed in to PlexiChat: sign in on the API Integration page, then plan.";
      else $("sync-user").textContent = `Cloud: files of ${s.user.username}. At most ${s.max_delete} deletion(s) per sync.`;
    } catch (err) { $("sync-user").textContent = err.message; }
  }

  function side(s) {
    return s ? fm.size(s.size) : "—";
  }

  function updateCount() {
    const ticked = [...document.querySelectorAll(".sync-approve")].filter((b) => b.checked).length;
    $("sync-count").textContent = `${ticked} of ${plan ? plan.items.length : 0} change(s) ticked`;
    $("sync-apply").disabled = ticked === 0;
  }

  function render(result) {
    plan = result;
    $("sync-plan-box").hidden = false;
    $("sync-result").replaceChildren();
    $("sync-summary").textContent = `${result.items.length} change(s), ${result.skipped.length} skipped, ` +
      `${result.unchanged} unchanged. Nothing has been written yet.`;
    $("sync-rows").replaceChildren(...result.items.map((item) => {
      const box = fm.el("input", { type: "checkbox", className: "sync-approve", checked: item.approved });
      box.dataset.path = item.path;
      box.setAttribute("aria-label", `Approve ${item.action} of ${item.path}`);
      box.addEventListener("change", updateCount);
      return fm.el("tr", {},
        fm.el("td", { className: "check" }, box),
        fm.el("td", { className: `action action-${item.action}`, textContent: SYMBOL[item.action] || item.action, title: item.action }),
        fm.el("td", { textContent: item.path }),
        fm.el("td", { className: "muted", textContent: item.reason }),
        fm.el("td", { className: "num", textContent: side(item.local) }),
        fm.el("td", { className: "num", textContent: side(item.cloud) }));
    }));
    $("sync-skipped").replaceChildren(...result.skipped.map((s) =>
      fm.el("li", { className: "muted", textContent: `skipped ${s.path}: ${s.reason}` })));
    updateCount();
  }

  $("sync-all").addEventListener("change", () => {
    for (const box of document.querySelectorAll(".sync-approve")) box.checked = $("sync-all").checked;
    updateCount();
  });

  $("sync-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const pane = fm.activePane();
    try {
      await fm.post("sync/plan", { root: pane.root, path: pane.path, cloud: $("sync-cloud").value.trim() });
      $("sync-summary").textContent = "Planning…";
      fm.showError("");
    } catch (err) { fm.showError(err.message); }
  });

  $("sync-apply").addEventListener("click", async () => {
    if (!plan) return;
    const approve = [...document.querySelectorAll(".sync-approve")].filter((b) => b.checked).map((b) => b.dataset.path);
    try {
      await fm.post("sync/apply", { plan_id: plan.id, approve });
      $("sync-plan-box").hidden = true;
      plan = null;
      fm.showError("");
    } catch (err) { fm.showError(err.message); }
  });

  document.addEventListener("fm-ready", status);

  document.addEventListener("fm-job", (event) => {
    const job = event.detail;
    if (job.state !== "succeeded") return;
    if (job.name === "sync plan") render(job.result);
    else if (job.name === "sync") {
      const r = job.result;
      $("sync-result").replaceChildren(
        ...r.done.map((d) => fm.el("li", { className: "ok", textContent: `${d.action}: ${d.path}` })),
        ...r.skipped.map((s) => fm.el("li", { className: "bad", textContent: `skipped ${s.path}: ${s.reason}` })));
    }
  });
}());
