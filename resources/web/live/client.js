// plexichatLive.open(url): an EventSource for pages of PlexiChat Desktop that does not cost
// a connection per page. Every page of the browser profile shares one connection to the
// server through a SharedWorker (worker.js); Chromium's six connections per host stay free
// for page loads and clicks however many live pages are open.
//
// The object returned behaves as an EventSource: addEventListener(name, fn) with
// MessageEvents (data, lastEventId), "open" and "error" events, readyState, close(). An
// "error" with readyState CLOSED means the server refused the stream (as an HTTP error
// ends an EventSource); otherwise the stream resumes by itself from the last event id.
// When this browser is signed out (the app restarted, or signed browsers out) every stream
// ends with status 401, the page gets a bar with a "Sign in again" link, and streams
// opened afterwards end at once instead of asking the server again.
// Without SharedWorker (or if it cannot start) open() returns a plain EventSource.
//
// Load it as a classic script before the page's own: <script src="/_app/live/client.js">.
(function () {
  "use strict";
  if (window.plexichatLive) return;

  const CONNECTING = 0;
  const OPEN = 1;
  const CLOSED = 2;
  const WORKER_URL = "/_app/live/worker.js";
  const pageId = (self.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const sources = new Map();  // id -> LiveSource
  let port = null;
  let counter = 0;
  let mode = "direct";
  const opened = [];  // every stream this page asked for, for streams() below
  let signedOut = null;  // why, once the worker said this browser is signed out

  class LiveSource extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = CONNECTING;
      this.onopen = null;
      this.onerror = null;
      this.onmessage = null;
      this.id = `${pageId}:${(counter += 1)}`;
      this.lastEventId = "";
      this.status = null;
      this.detail = "";
    }

    deliver(msg) {
      if (this.readyState === CLOSED) return;
      if (msg.type === "open") {
        this.readyState = OPEN;
        this.fire(new Event("open"), this.onopen);
      } else if (msg.type === "event") {
        if (msg.lastEventId) this.lastEventId = msg.lastEventId;
        const event = new MessageEvent(msg.name, { data: msg.data, lastEventId: msg.lastEventId,
          origin: location.origin });
        this.fire(event, msg.name === "message" ? this.onmessage : null);
      } else if (msg.type === "error") {
        this.readyState = msg.readyState === CLOSED ? CLOSED : CONNECTING;
        this.status = msg.status || null;
        this.detail = msg.detail || "";
        if (this.readyState === CLOSED) sources.delete(this.id);
        if (msg.signedOut) noteSignedOut(this.detail);  // not a route's own 401
        this.fire(new Event("error"), this.onerror);
      }
    }

    fire(event, handler) {
      if (typeof handler === "function") handler.call(this, event);
      this.dispatchEvent(event);
    }

    close() {
      if (this.readyState === CLOSED) return;
      this.readyState = CLOSED;
      sources.delete(this.id);
      if (port) port.postMessage({ type: "unsub", id: this.id });
    }
  }
  LiveSource.CONNECTING = CONNECTING;
  LiveSource.OPEN = OPEN;
  LiveSource.CLOSED = CLOSED;
  Object.assign(LiveSource.prototype, { CONNECTING, OPEN, CLOSED });

  function startWorker() {
    if (typeof SharedWorker !== "function") return false;
    try {
      const worker = new SharedWorker(WORKER_URL, { name: "plexichat-live" });
      port = worker.port;
      worker.addEventListener("error", () => fallBack("the shared worker failed to start"));
    } catch (err) {
      return false;
    }
    port.addEventListener("message", (msg) => {
      const data = msg.data || {};
      const source = sources.get(data.id);
      if (source) source.deliver(data);
    });
    port.start();
    if (navigator.locks) {
      // Held until this page is gone: how the worker learns of pages that never said bye.
      const lock = `plexichat-live-page-${pageId}`;
      navigator.locks.request(lock, () => {
        port.postMessage({ type: "hello", lock });
        return new Promise(() => {});
      });
    }
    window.addEventListener("pagehide", (event) => {
      if (!event.persisted && port) port.postMessage({ type: "bye" });
    });
    mode = "shared";
    return true;
  }

  function fallBack(reason) {
    if (mode !== "shared") return;
    mode = "direct";
    port = null;
    console.warn(`plexichatLive: ${reason}; each stream opens its own connection`);
    // Streams already asked for end as refused ones do; their pages reconnect, and get a
    // plain EventSource then.
    for (const source of [...sources.values()]) {
      source.deliver({ type: "error", readyState: CLOSED, detail: reason });
    }
  }

  function noteSignedOut(detail) {
    if (signedOut !== null) return;
    signedOut = detail || "Signed out.";
    const show = () => {
      const bar = document.createElement("div");
      bar.id = "plexichat-signed-out";
      bar.setAttribute("role", "alert");
      // Styled through the CSSOM; first in the page and sticky, so it hides nothing of it.
      Object.assign(bar.style, { position: "sticky", top: "0", zIndex: "2147483647",
        padding: "8px 16px", background: "#b42318", color: "#ffffff",
        font: "14px system-ui, sans-serif", textAlign: "center" });
      const link = document.createElement("a");
      link.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
      link.textContent = "Sign in again";
      Object.assign(link.style, { color: "#ffffff", fontWeight: "600", marginLeft: "8px" });
      bar.append(`${signedOut} `, link);
      document.body.prepend(bar);
    };
    if (document.body) show();
    else document.addEventListener("DOMContentLoaded", show, { once: true });
  }

  function open(url) {
    const absolute = new URL(url, location.href);
    if (mode !== "shared" || absolute.origin !== location.origin) {
      const direct = new EventSource(absolute.href);
      opened.push(direct);
      return direct;
    }
    const source = new LiveSource(absolute.href);
    opened.push(source);
    if (signedOut !== null) {
      // Refused as the others were, without asking the server again (a page that
      // reconnects on every refusal would otherwise ask it for ever).
      setTimeout(() => source.deliver({ type: "error", readyState: CLOSED, status: 401,
        detail: signedOut, signedOut: true }), 0);
      return source;
    }
    sources.set(source.id, source);
    port.postMessage({ type: "sub", id: source.id, url: absolute.pathname + absolute.search,
      lastEventId: null });
    return source;
  }

  startWorker();
  window.plexichatLive = {
    open,
    get mode() { return mode; },
    /** For tests and tooling: the streams of this page and their states. */
    streams: () => opened.map((s) => ({ url: s.url, readyState: s.readyState })),
    /** Why this browser is signed out ("" when it is not). */
    get signedOut() { return signedOut || ""; },
    CONNECTING, OPEN, CLOSED,
  };
})();
