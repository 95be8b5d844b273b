// The live event stream (GET /api/events/stream): one EventSource per tab, reopened with backoff
// after an error, and the events handed to the views that subscribed to them.

import { api } from "./api.js";

// Named SSE events must be listened for by name; these are the types of EVENTS.md. live.on()
// with another name adds it.
const KNOWN_TYPES = ["task.created", "task.updated", "task.completed", "task.deleted", "task.recurred",
  "task.reminder", "user.registered", "user.login", "user.logout", "user.deleted",
  "chat.message_sent", "chat.response_received", "notification.created"];

const handlers = new Map(); // type or "*" -> Set(fn)
const resyncHandlers = new Set();
const stateHandlers = new Set();
const types = new Set(KNOWN_TYPES);

let source = null;
let state = "offline";
let running = false;
let retryTimer = null;
let failures = 0;
let lastEventId = "";
let lastProbe = 0;
let everConnected = false; // since start(): a later "connected" is a reconnection

function setState(next) {
  if (state === next) return;
  state = next;
  for (const fn of [...stateHandlers]) {
    try { fn(state); } catch (e) { console.error(e); }
  }
}

function dispatch(type, msg) {
  if (msg.lastEventId) lastEventId = msg.lastEventId;
  let event;
  try { event = JSON.parse(msg.data); } catch { return; }
  for (const key of [type, "*"]) {
    for (const fn of [...(handlers.get(key) || [])]) {
      try { fn(event); } catch (e) { console.error(e); }
    }
  }
}

function resync() {
  for (const fn of [...resyncHandlers]) {
    try { fn(); } catch (e) { console.error(e); }
  }
}

function listen(src, type) {
  src.addEventListener(type, (msg) => { if (src === source) dispatch(type, msg); });
}

function open() {
  clearTimeout(retryTimer);
  retryTimer = null;
  const token = api.token;
  if (!running || !token) return;
  if (!navigator.onLine) {
    setState("offline");
    return;
  }
  setState(failures ? "reconnecting" : "connecting");
  // a new EventSource sends no Last-Event-ID header of its own: pass where this tab stopped
  const qs = new URLSearchParams({ token });
  if (lastEventId) qs.set("last_event_id", lastEventId);
  const src = new EventSource(`/api/events/stream?${qs}`);
  source = src;
  const reopening = everConnected;
  src.addEventListener("connected", (msg) => {
    if (src !== source) return;
    failures = 0;
    everConnected = true;
    setState("live");
    // After a reconnection the views refetch even when the server resumed the stream: a resume
    // is only as good as the broker's log, and one refetch per reconnection is cheap. (A
    // `resync` event that follows is coalesced by the views' debounce.)
    if (reopening) resync();
  });
  src.addEventListener("resync", () => { if (src === source) resync(); });
  src.addEventListener("reconnect", () => {
    // the server is going away: reopen now (to another replica), not after the browser's delay
    if (src !== source) return;
    src.close();
    source = null;
    failures = 1;
    open();
  });
  for (const type of types) listen(src, type);
  src.onerror = () => {
    if (src !== source) return;
    // take over from the browser's own retry so the delay grows and the badge says so
    src.close();
    source = null;
    failures += 1;
    setState(navigator.onLine ? "reconnecting" : "offline");
    probeSession();
    const delay = Math.min(30000, 1000 * 2 ** Math.min(failures - 1, 5)) * (0.75 + Math.random() * 0.5);
    retryTimer = setTimeout(open, delay);
  };
}

// An EventSource cannot tell a refused token from a network error: ask the API, whose 401
// ends the session (and so the stream). At most once a minute.
function probeSession() {
  if (Date.now() - lastProbe < 60000) return;
  lastProbe = Date.now();
  api.request("GET", "/api/auth/me").catch(() => {});
}

function close() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (source) source.close();
  source = null;
}

window.addEventListener("online", () => {
  if (running && !source) {
    failures = Math.max(failures, 1);
    open();
  }
});
window.addEventListener("offline", () => {
  if (!running) return;
  close();
  setState("offline");
});

export const live = {
  // fn(event) for each event of that type ("*": every type); returns the unsubscribe function.
  on(type, fn) {
    if (!handlers.has(type)) handlers.set(type, new Set());
    handlers.get(type).add(fn);
    if (type !== "*" && !types.has(type)) {
      types.add(type);
      if (source) listen(source, type);
    }
    return () => handlers.get(type)?.delete(fn);
  },

  // fn() when the server says events were missed: refetch what is shown.
  onResync(fn) {
    resyncHandlers.add(fn);
    return () => resyncHandlers.delete(fn);
  },

  // fn(state) on every change of state; returns the unsubscribe function.
  onState(fn) {
    stateHandlers.add(fn);
    return () => stateHandlers.delete(fn);
  },

  // "connecting" | "live" | "reconnecting" | "offline"
  get state() { return state; },

  // Opens the stream for the current session (app.js, after login).
  start() {
    if (running) return;
    running = true;
    failures = 0;
    lastEventId = "";
    everConnected = false;
    open();
  },

  // Closes it (logout).
  stop() {
    running = false;
    close();
    lastEventId = "";
    setState("offline");
  },
};
