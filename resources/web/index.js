// Live plugin states on the host index page, pushed over Server-Sent Events (through the
// app's shared live connection when /_app/live/client.js is loaded).
(function () {
  "use strict";
  const list = document.getElementById("plugins");
  if (!list || !window.EventSource) return;

  // A degraded plugin runs (its pages open) with optional requirements missing; the
  // record's running/degraded fields say so, the state name alone does not.
  function show(item, plugin) {
    const badge = item.querySelector('[data-role="state"]');
    badge.textContent = plugin.state;
    badge.className = `state state-${plugin.state}`;
    badge.title = plugin.running && plugin.degraded.length
      ? `Running without: ${plugin.degraded.join("; ")}` : "";
    const reason = item.querySelector('[data-role="reason"]');
    const degraded = plugin.running && plugin.degraded.length > 0;
    reason.textContent = degraded ? `Running without: ${plugin.degraded.join("; ")}`
      : (plugin.reason || "");
    reason.classList.toggle("reason-degraded", degraded);
    reason.hidden = !(degraded || (plugin.reason && !plugin.running));
    const pages = item.querySelector('[data-role="pages"]');
    if (pages) pages.hidden = !plugin.running;
  }

  const source = window.plexichatLive ? window.plexichatLive.open("/events")
    : new EventSource("/events");
  source.addEventListener("plugin.state", async (msg) => {
    const ev = JSON.parse(msg.data);
    const item = list.querySelector(`[data-plugin="${CSS.escape(ev.plugin_id)}"]`);
    if (!item) return;
    try {
      const answer = await fetch(`/api/plugins/${encodeURIComponent(ev.plugin_id)}`);
      if (answer.ok) { show(item, await answer.json()); return; }
    } catch (err) { /* the server is going away: show what the event said */ }
    const running = ev.state === "active" || ev.state === "degraded";
    show(item, {state: ev.state, reason: ev.reason, running: running,
                degraded: ev.state === "degraded" && ev.reason ? [ev.reason] : []});
  });
})();
