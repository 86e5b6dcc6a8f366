// The shared side of plexichatLive (client.js): ONE connection to the server's live hub for
// every page of this browser profile, tabs and windows alike. Chromium allows six HTTP/1.1
// connections per host; a stream per page used them all up and every other request of the
// app waited (see plexichat_desktop/server/live_hub.py for the server half).
//
// Pages send: {type: "hello", lock} | {type: "sub", id, url, lastEventId} |
//   {type: "unsub", id} | {type: "bye"}
// Pages get:  {type: "open", id} | {type: "event", id, name, data, lastEventId} |
//   {type: "error", id, readyState, status, detail, signedOut}: signedOut true (readyState
//   2, status 401) when this browser is signed out (the app restarted, or signed browsers
//   out): no retries then. A followed stream's own 401 is a refusal like any other.
"use strict";

const HUB = "/_live/stream";
const RETRY_MS = 3000;
// Any request that needs this browser's sign-in: an EventSource cannot read why the server
// refused it, this answer can (401: signed out, which no retry mends).
const PROBE = "/healthz";
const SIGNED_OUT = "Signed out: the app restarted or signed this browser out.";

const ports = new Map();   // MessagePort -> Set of subscription ids
const subs = new Map();    // id -> {port, url, lastEventId, open}
let source = null;
let hubId = null;
let hubFailures = 0;
let hubRetry = null;
let pending = { subscribe: new Set(), unsubscribe: new Set() };
let flushQueued = false;

self.addEventListener("connect", (event) => {
  const port = event.ports[0];
  ports.set(port, new Set());
  port.addEventListener("message", (msg) => fromPage(port, msg.data || {}));
  port.start();
});

function fromPage(port, msg) {
  if (msg.type === "hello" && msg.lock && self.navigator && navigator.locks) {
    // The page holds this lock for its whole life: we get it once the page is gone,
    // even when it never said "bye" (a closed view, a crashed renderer).
    navigator.locks.request(msg.lock, () => dropPort(port));
  } else if (msg.type === "sub") {
    subs.set(msg.id, { port, url: msg.url, lastEventId: msg.lastEventId || null, open: false });
    (ports.get(port) || ports.set(port, new Set()).get(port)).add(msg.id);
    want(msg.id);
  } else if (msg.type === "unsub") {
    drop(msg.id);
  } else if (msg.type === "bye") {
    dropPort(port);
  }
}

function want(id) {
  pending.unsubscribe.delete(id);
  pending.subscribe.add(id);
  ensureHub();
  queueFlush();
}

function drop(id) {
  const sub = subs.get(id);
  if (!sub) return;
  subs.delete(id);
  const owned = ports.get(sub.port);
  if (owned) owned.delete(id);
  pending.subscribe.delete(id);
  pending.unsubscribe.add(id);
  queueFlush();
}

function dropPort(port) {
  const owned = ports.get(port);
  if (!owned) return;
  for (const id of [...owned]) drop(id);
  ports.delete(port);
  port.close();
  if (ports.size === 0 && source) {
    // Nobody is listening: free the connection until a page comes back.
    source.close();
    source = null;
    hubId = null;
  }
}

function post(sub, message) {
  try {
    sub.port.postMessage(message);
  } catch {
    dropPort(sub.port);
  }
}

// ---- the hub connection ----------------------------------------------------------------
function ensureHub() {
  if (source || hubRetry) return;
  hubId = null;
  source = new EventSource(HUB);
  const current = source;
  current.addEventListener("hello", (msg) => {
    hubFailures = 0;
    hubId = JSON.parse(msg.data).hub;
    // A new connection carries nothing yet: ask again for everything, from the last ids.
    pending = { subscribe: new Set(subs.keys()), unsubscribe: new Set() };
    queueFlush();
  });
  current.addEventListener("m", (msg) => {
    for (const item of JSON.parse(msg.data)) route(item);
  });
  current.addEventListener("error", () => {
    if (current !== source) return;
    hubId = null;
    for (const [id, sub] of subs) {
      sub.open = false;
      post(sub, { type: "error", id, readyState: 0 });
    }
    if (current.readyState === EventSource.CLOSED) {
      // An HTTP error ends an EventSource for good: ask why, then try again, more slowly
      // each time, unless this browser is signed out (it retried a 401 for ever).
      current.close();
      source = null;
      hubRetry = -1;  // ensureHub() waits for the answer
      refusedBecause().then((status) => {
        hubRetry = null;
        if (status === 401) {
          signedOut();
          return;
        }
        hubFailures += 1;
        const delay = Math.min(30000, 1000 * 2 ** Math.min(hubFailures - 1, 5));
        hubRetry = setTimeout(() => { hubRetry = null; if (subs.size) ensureHub(); }, delay);
      });
    }
  });
}

async function refusedBecause() {
  try {
    return (await fetch(PROBE, { cache: "no-store" })).status;
  } catch {
    return 0;  // the server is away: an ordinary retry
  }
}

function signedOut() {
  // Every stream ends as a refused one; a page that asks again starts over (after it
  // signed in again, say).
  hubFailures = 0;
  hubId = null;
  if (source) {
    source.close();
    source = null;
  }
  for (const [id, sub] of [...subs]) {
    post(sub, { type: "error", id, readyState: 2, status: 401, detail: SIGNED_OUT,
      signedOut: true });
    drop(id);
  }
  pending = { subscribe: new Set(), unsubscribe: new Set() };
}

function route(item) {
  const sub = subs.get(item.s);
  if (!sub) return; // unsubscribed while this was on its way
  if (item.t === "open") {
    sub.open = true;
    post(sub, { type: "open", id: item.s });
  } else if (item.t === "event") {
    if (item.i !== null && item.i !== undefined) sub.lastEventId = item.i;
    post(sub, { type: "event", id: item.s, name: item.e, data: item.d,
      lastEventId: item.i === null || item.i === undefined ? "" : item.i });
  } else if (item.t === "end") {
    // The stream ended (a plugin restarted, the server is stopping): as EventSource does,
    // reconnect after a pause and resume from the last id.
    sub.open = false;
    post(sub, { type: "error", id: item.s, readyState: 0 });
    setTimeout(() => { if (subs.get(item.s) === sub) want(item.s); }, RETRY_MS);
  } else if (item.t === "fail") {
    post(sub, { type: "error", id: item.s, readyState: 2, status: item.status,
      detail: item.detail });
    drop(item.s);
  }
}

function queueFlush() {
  if (flushQueued) return;
  flushQueued = true;
  // Subscriptions of one page load arrive together: one request for all of them.
  setTimeout(flush, 0);
}

async function flush() {
  flushQueued = false;
  if (!hubId) return; // sent once the hub says hello
  const body = {
    subscribe: [...pending.subscribe].filter((id) => subs.has(id)).map((id) => {
      const sub = subs.get(id);
      return { id, url: sub.url, last_event_id: sub.lastEventId };
    }),
    unsubscribe: [...pending.unsubscribe],
  };
  pending = { subscribe: new Set(), unsubscribe: new Set() };
  if (!body.subscribe.length && !body.unsubscribe.length) return;
  const sentTo = hubId;
  try {
    const answer = await fetch(`/_live/${encodeURIComponent(sentTo)}`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (answer.status === 401) {
      signedOut();  // "sign out all browsers" leaves the open hub stream running
    } else if (answer.status === 404 && sentTo === hubId && source) {
      // The server no longer knows this connection: start a fresh one.
      source.close();
      source = null;
      ensureHub();
    }
  } catch {
    // The hub connection's own error handling reconnects and resubscribes.
  }
}
