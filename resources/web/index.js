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
    const degraded = plugin.running && plugin.degraded.length > 0;
    badge.title = degraded ? `Running without: ${plugin.degraded.join("; ")}` : "";
    const reason = item.querySelector('[data-role="reason"]');
    reason.textContent = degraded ? `Running without: ${plugin.degraded.join("; ")}`
      : (plugin.reason || "");
    reason.classList.toggle("reason-degraded", degraded);
    reason.hidden = !(degraded || (plugin.reason && !plugin.running));
    const pages = item.querySelector('[data-role="pages"]');
    if (pages) pages.hidden = !plugin.running;
  }

  const card = (id) => list.querySelector(`[data-plugin="${CSS.escape(id)}"]`);
  // One state change sends several events (starting, then running): their answers may
  // come back out of order, and only the newest question's answer is shown.
  let asked = 0;
  const newest = new Map();  // plugin id -> number of the newest question about it

  async function refresh(ids, url) {
    const number = (asked += 1);
    ids.forEach((id) => newest.set(id, number));
    try {
      const answer = await fetch(url);
      if (!answer.ok) return false;
      const body = await answer.json();
      for (const plugin of body.plugins || [body]) {
        const item = card(plugin.id);
        if (item && newest.get(plugin.id) === number) show(item, plugin);
      }
      return true;
    } catch (err) {
      return false;  // the server is going away; the next event or open tries again
    }
  }

  const source = window.plexichatLive ? window.plexichatLive.open("/events")
    : new EventSource("/events");
  // Events sent while the stream was away (a reconnect, the app restarting) are gone:
  // each time it (re)opens, every card is brought up to date from the records.
  source.addEventListener("open", () => {
    const ids = [...list.querySelectorAll("[data-plugin]")].map((i) => i.dataset.plugin);
    refresh(ids, "/api/plugins");
  });
  source.addEventListener("plugin.state", async (msg) => {
    const ev = JSON.parse(msg.data);
    const item = card(ev.plugin_id);
    if (!item) return;
    if (await refresh([ev.plugin_id], `/api/plugins/${encodeURIComponent(ev.plugin_id)}`)) {
      return;
    }
    const running = ev.state === "active" || ev.state === "degraded";
    show(item, {state: ev.state, reason: ev.reason, running: running,
                degraded: ev.state === "degraded" && ev.reason ? [ev.reason] : []});
  });
})();
