// Live updates from /tests/events (Server-Sent Events), with catch-up and a polling fallback.
//
// The page loads a snapshot that names the newest event it includes (last_event_id) and
// opens the stream from there (?since=). When the stream drops, the browser reconnects by
// itself and sends Last-Event-ID, so the server replays what was missed. When the browser
// gives up (an HTTP error ends an EventSource for good) we reconnect ourselves with
// ?since=. Only while errors persist do we fall back to refreshing every 30 s.

import { debounce, refreshTimes } from "./util.js";

export const TOPICS = [
  "tests.run_queued", "tests.run_started", "tests.collected", "tests.test_started",
  "tests.test_finished", "tests.run_finished",
  "schedules.changed", "schedules.fired", "schedules.missed", "schedules.skipped",
];

const KEEP_EVENTS = 5000;

export class LiveFeed {
  /**
   * onEvent(topic, data, id): apply one event (must be idempotent: replays happen).
   * resync(): reload the page's snapshot; resolves to its last_event_id.
   * onStatus(state, text): "connecting" | "live" | "reconnecting" | "polling".
   */
  constructor({ url = "/tests/events", onEvent, resync, onStatus, fallbackMs = 30000,
    failuresBeforeFallback = 3 }) {
    Object.assign(this, { url, onEvent, resync, onStatus, fallbackMs, failuresBeforeFallback });
    this.lastId = 0;
    this.failures = 0;
    this.source = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.recent = [];
    this.received = 0;
    window.addEventListener("pagehide", () => this.close());
  }

  start(lastId) {
    this.lastId = lastId || 0;
    if (!window.plexichatLive && !("EventSource" in window)) {
      this.startPolling("this browser cannot receive live updates");
      return;
    }
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.status("connecting", "Connecting…");
    // One shared connection for all pages (client.js), so live pages never use up the
    // browser's connections to the server.
    const url = `${this.url}?since=${this.lastId}`;
    const source = window.plexichatLive ? window.plexichatLive.open(url) : new EventSource(url);
    this.source = source;
    for (const topic of TOPICS) {
      source.addEventListener(topic, (msg) => this.receive(topic, msg));
    }
    // The server no longer had some of what this page missed (it keeps the last 2000
    // events, and counts from 1 again after a restart): the snapshot is reloaded.
    source.addEventListener("stream.gap", (msg) => this.gap(msg));
    source.addEventListener("open", () => this.opened());
    source.addEventListener("error", () => this.failed(source));
  }

  receive(topic, msg) {
    const id = Number(msg.lastEventId) || 0;
    if (id && id <= this.lastId) return; // already applied (a replay overlapping a snapshot)
    let data;
    try {
      data = JSON.parse(msg.data);
    } catch {
      return;
    }
    if (id) this.lastId = id;
    this.received += 1;
    this.recent.push({ topic, data, id });
    if (this.recent.length > KEEP_EVENTS) this.recent.splice(0, this.recent.length - KEEP_EVENTS);
    this.onEvent(topic, data, id);
  }

  gap(msg) {
    const id = Number(msg.lastEventId) || 0;
    if (id > this.lastId) this.lastId = id;
    this.resyncNow();
  }

  /** Events received after `id`, for re-applying on top of a snapshot taken at `id`. */
  since(id) {
    return this.recent.filter((e) => e.id > id);
  }

  async opened() {
    const recovering = this.failures > 0 || this.pollTimer !== null;
    this.failures = 0;
    this.stopPolling();
    this.status("live", "Live");
    if (recovering) await this.resyncNow();
  }

  failed(source) {
    if (source !== this.source) return;
    this.failures += 1;
    if (source.readyState === EventSource.CLOSED) {
      // A fatal answer (401, 5xx, not an event stream): the browser will not retry.
      source.close();
      const delay = Math.min(30000, 1000 * 2 ** Math.min(this.failures - 1, 5));
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }
    if (this.failures >= this.failuresBeforeFallback) {
      this.startPolling("live updates are unavailable");
    } else if (this.pollTimer === null) {
      this.status("reconnecting", "Reconnecting…");
    }
  }

  async resyncNow() {
    try {
      const serverLast = await this.resync();
      if (typeof serverLast === "number" && serverLast < this.lastId) {
        // The server restarted and numbers its events from 1 again.
        this.lastId = serverLast;
        this.recent = [];
        this.connect();
      }
    } catch {
      // The page shows its own message; the next poll or reconnect tries again.
    }
  }

  startPolling(reason) {
    if (this.pollTimer !== null) return;
    this.status("polling", `Refreshing every ${Math.round(this.fallbackMs / 1000)} s (${reason})`);
    this.pollTimer = setInterval(() => this.resyncNow(), this.fallbackMs);
    this.resyncNow();
  }

  stopPolling() {
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  status(state, text) {
    this.state = state;
    if (this.onStatus) this.onStatus(state, text);
  }

  close() {
    clearTimeout(this.retryTimer);
    this.stopPolling();
    if (this.source) this.source.close();
    this.source = null;
  }
}

/** Show the feed's state in the header badge. */
export function statusBadge(el) {
  return (state, text) => {
    el.dataset.state = state;
    el.textContent = text;
    el.title = state === "live" ? "Results arrive as tests finish" : text;
  };
}

/** What every dashboard page does around its feed: the debug object for tests and tooling
 * (window.plexichatDashboard; a page that reloaded would lose it), catching up on events
 * newer than a snapshot, a debounced refresh, fresh relative times and the first load.
 * refresh(): load the page's snapshot; resolves to its last_event_id.
 * applyEvent(topic, data, replay): apply one event (replay: again, on top of a snapshot). */
export class LivePage {
  constructor({ root, messages, refresh, applyEvent }) {
    Object.assign(this, { root, messages, refresh, applyEvent });
    this.debug = { loadedAt: Date.now(), snapshots: 0, events: 0, feed: null };
    window.plexichatDashboard = this.debug;
    this.refreshSoon = debounce(() => refresh().catch((err) => messages.error(err.message)), 300);
  }

  /** Re-apply the events that arrived while a snapshot taken at `lastEventId` was on its way. */
  replay(lastEventId) {
    const feed = this.debug.feed;
    if (!feed) return;
    for (const e of feed.since(lastEventId)) this.applyEvent(e.topic, e.data, true);
  }

  /** Load the first snapshot, then follow the events from it; `onLoaded` runs once the
   * first snapshot is in. */
  async start(onLoaded) {
    const feed = new LiveFeed({ onEvent: (topic, data) => this.applyEvent(topic, data, false),
      resync: this.refresh, onStatus: statusBadge(document.getElementById("conn")) });
    this.debug.feed = feed;
    setInterval(() => refreshTimes(this.root), 30000);
    try {
      feed.start(await this.refresh());
      if (onLoaded) onLoaded();
    } catch (err) {
      this.messages.error(`Could not load the dashboard: ${err.message}`);
      feed.start(0);
    }
  }
}
