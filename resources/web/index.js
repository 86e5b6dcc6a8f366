// Live plugin states on the host index page, pushed over Server-Sent Events (through the
// app's shared live connection when /_app/live/client.js is loaded).
(function () {
  "use strict";
  const list = document.getElementById("plugins");
  if (!list || !window.EventSource) return;
  const source = window.plexichatLive ? window.plexichatLive.open("/events")
    : new EventSource("/events");
  source.addEventListener("plugin.state", (msg) => {
    const ev = JSON.parse(msg.data);
    const item = list.querySelector(`[data-plugin="${CSS.escape(ev.plugin_id)}"]`);
    if (!item) return;
    const badge = item.querySelector('[data-role="state"]');
    badge.textContent = ev.state;
    badge.className = `state state-${ev.state}`;
    const reason = item.querySelector('[data-role="reason"]');
    reason.textContent = ev.reason || "";
    reason.hidden = !ev.reason || ev.state === "active";
    const pages = item.querySelector('[data-role="pages"]');
    if (pages) pages.hidden = ev.state !== "active";
  });
})();
