// plexichatJobs: the host's job list for plugin pages: a progress bar and a Cancel button
// per job, live over the plugin's job stream (GET api/_host/jobs/events).
//
// Use it from a plugin page (no inline script: the CSP allows scripts from this origin):
//
//   <link rel="stylesheet" href="/_app/plugins/jobs.css">
//   <section data-plexichat-jobs aria-label="Jobs"></section>
//   <script src="/_app/live/client.js"></script>     (optional: shares one connection)
//   <script src="/_app/plugins/jobs.js"></script>
//
// Every element with data-plexichat-jobs is filled at load. Attributes: data-names="a,b"
// shows only jobs with those names; data-empty="No exports yet" is the text with no job;
// data-limit="10" shows the newest N. From a script: plexichatJobs.mount(element, options)
// with the same options ({names, empty, limit}) returns {refresh(), close()}; the element
// fires "plexichat-job" CustomEvents (detail: the job) on every change, e.g. to show a
// finished export's result. Jobs come from ctx.jobs.start(...) in the plugin's Python side.
(function () {
  "use strict";
  if (window.plexichatJobs) return;

  const match = location.pathname.match(/^\/plugins\/([a-z][a-z0-9_]{1,63})\//);
  const BASE = match ? `/plugins/${match[1]}/api/_host/jobs` : null;
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

  function openStream(url) {
    if (window.plexichatLive) return window.plexichatLive.open(url);
    return new EventSource(url);
  }

  function text(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined && content !== null) node.textContent = String(content);
    return node;
  }

  function summary(job) {
    if (job.state === "failed") return job.error || "failed";
    if (job.state === "cancelled") return "cancelled";
    if (job.state === "succeeded") return job.message || "done";
    if (job.state === "queued") return "waiting for a free slot";
    const parts = [];
    if (job.total) parts.push(`${job.done ?? 0} / ${job.total}`);
    if (job.message) parts.push(job.message);
    return parts.join(" · ") || "running";
  }

  function mount(element, options = {}) {
    if (!BASE) throw new Error("plexichatJobs works on plugin pages (/plugins/<id>/...)");
    const names = options.names ? new Set(options.names) : null;
    const limit = options.limit || 50;
    const jobs = new Map();
    const list = text("ul", "pc-jobs-list");
    const empty = text("p", "pc-jobs-empty", options.empty || "No jobs.");
    const status = text("p", "pc-jobs-status");
    status.setAttribute("role", "status");
    element.classList.add("pc-jobs");
    element.replaceChildren(list, empty, status);

    async function cancel(job, button) {
      button.disabled = true;
      try {
        const response = await fetch(`${BASE}/${encodeURIComponent(job.id)}/cancel`, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" }, body: "{}",
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          status.textContent = body.detail || `Cancel failed (HTTP ${response.status})`;
          button.disabled = false;
        }
      } catch (err) {
        status.textContent = `Cancel failed: ${err}`;
        button.disabled = false;
      }
    }

    function row(job) {
      const item = text("li", `pc-job pc-job-${job.state}`);
      item.dataset.jobId = job.id;
      item.dataset.state = job.state;
      const head = text("div", "pc-job-head");
      head.append(text("span", "pc-job-name", job.name), text("span", "pc-job-state", job.state));
      const bar = document.createElement("progress");
      bar.className = "pc-job-bar";
      bar.max = 1;
      if (job.fraction !== null && job.fraction !== undefined) bar.value = job.fraction;
      else if (FINISHED.has(job.state)) bar.value = 0;
      // else: no value -> an indeterminate bar
      bar.setAttribute("aria-label", `${job.name} progress`);
      const line = text("div", "pc-job-line");
      line.append(text("span", "pc-job-message", summary(job)));
      if (!FINISHED.has(job.state)) {
        const button = text("button", "pc-job-cancel", job.cancel_requested ? "Cancelling…"
          : "Cancel");
        button.type = "button";
        button.disabled = !!job.cancel_requested;
        button.addEventListener("click", () => cancel(job, button));
        line.append(button);
      }
      item.append(head, bar, line);
      return item;
    }

    function render() {
      const shown = [...jobs.values()]
        .filter((job) => !names || names.has(job.name))
        .sort((a, b) => b.created_at - a.created_at)
        .slice(0, limit);
      list.replaceChildren(...shown.map(row));
      empty.hidden = shown.length > 0;
    }

    function update(job) {
      jobs.set(job.id, job);
      render();
      element.dispatchEvent(new CustomEvent("plexichat-job", { detail: job }));
    }

    async function refresh() {
      const response = await fetch(BASE, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`GET ${BASE}: HTTP ${response.status}`);
      const body = await response.json();
      jobs.clear();
      for (const job of body.jobs) jobs.set(job.id, job);
      render();
    }

    const stream = openStream(`${BASE}/events`);
    stream.addEventListener("jobs", (event) => {
      jobs.clear();
      for (const job of JSON.parse(event.data)) jobs.set(job.id, job);
      status.textContent = "";
      render();
    });
    stream.addEventListener("job", (event) => update(JSON.parse(event.data)));
    stream.addEventListener("error", () => {
      if (stream.readyState === 2) {
        status.textContent = "Live updates stopped; showing the last known state.";
        refresh().catch((err) => { status.textContent = String(err); });
      }
    });
    render();
    return { refresh, close: () => stream.close(), element };
  }

  function mountAll() {
    for (const element of document.querySelectorAll("[data-plexichat-jobs]")) {
      if (element.dataset.plexichatJobsMounted) continue;
      element.dataset.plexichatJobsMounted = "1";
      const names = element.dataset.names ? element.dataset.names.split(",")
        .map((n) => n.trim()).filter(Boolean) : null;
      mount(element, { names, empty: element.dataset.empty,
        limit: Number(element.dataset.limit) || undefined });
    }
  }

  window.plexichatJobs = { mount, mountAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
