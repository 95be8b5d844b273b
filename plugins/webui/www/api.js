// The API client: JSON over fetch with the session's Bearer token, and every failure turned
// into an ApiError whose message a person can read.

const TOKEN_KEY = "taskora.token";

// The API's field names as people read them (422 messages: "Title: …").
const FIELD_NAMES = {
  title: "Title", description: "Description", priority: "Priority", due_date: "Due date",
  reminder_at: "Reminder", recurrence_rule: "Repeat", recurrence_interval: "Interval",
  is_recurring: "Repeat", tag_ids: "Tags", name: "Name", color: "Colour", email: "Email",
  password: "Password", message: "Message", completed: "Completed",
};

export class ApiError extends Error {
  constructor(message, { status = 0, detail = null, code = null, retryAfter = null, fields = [] } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;          // HTTP status, 0 when the server could not be reached
    this.detail = detail;          // the response's `detail` as sent
    this.code = code;              // e.g. "AI_UNAVAILABLE" where the API gives one
    this.retryAfter = retryAfter;  // seconds, from Retry-After
    this.fields = fields;          // 422: [{field, message}]
  }
}

let user = null;
const listeners = new Set();

function emit(reason) {
  for (const fn of [...listeners]) {
    try { fn(user, reason); } catch (e) { console.error(e); }
  }
}

// fn(user, reason): called on login (user set) and logout or an expired session (user null,
// reason a message to show on the login page, or null).
export function onAuthChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function storedToken() {
  try { return localStorage.getItem(TOKEN_KEY); } catch { return null; }
}

function fieldLabel(name) {
  if (FIELD_NAMES[name]) return FIELD_NAMES[name];
  const s = String(name).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function retrySeconds(headers) {
  const v = headers && headers.get("Retry-After");
  if (!v) return null;
  const n = Number(v);
  if (Number.isFinite(n)) return Math.max(0, Math.round(n));
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.round((at - Date.now()) / 1000));
}

const STATUS_TEXT = {
  400: "The request was not accepted.",
  403: "You don't have access to this.",
  404: "Not found. It may have been deleted.",
  409: "That conflicts with something that already exists.",
  413: "That is too large to send.",
  429: "Too many requests.",
  500: "Something went wrong on the server. Please try again.",
  502: "The server is not available right now.",
  503: "The service is busy or unavailable right now.",
  504: "The server took too long to answer.",
};

// The people-readable ApiError for a failed response.
function toError(status, data, headers) {
  const detail = data && typeof data === "object" && "detail" in data ? data.detail : null;
  const retryAfter = retrySeconds(headers);
  let message = null;
  let code = null;
  const fields = [];
  if (Array.isArray(detail)) {
    const lines = [];
    for (const d of detail) {
      const loc = Array.isArray(d.loc) ? d.loc : [];
      const name = loc.length > 1 ? loc[loc.length - 1] : null;
      let msg = typeof d.msg === "string" ? d.msg : "Invalid value";
      if (d.type === "json_invalid") msg = "The request was not valid JSON";
      if (name !== null && typeof name !== "number") {
        fields.push({ field: String(name), message: msg });
        lines.push(`${fieldLabel(name)}: ${msg}`);
      } else {
        lines.push(msg);
      }
    }
    message = lines.join("; ") || "Some fields are not valid.";
  } else if (typeof detail === "string" && detail) {
    message = detail;
  } else if (detail && typeof detail === "object") {
    code = typeof detail.code === "string" ? detail.code : null;
    message = typeof detail.message === "string" ? detail.message : null;
  }
  if (!message || status === 500) message = STATUS_TEXT[status] || `The request failed (HTTP ${status}).`;
  if ((status === 429 || status === 503) && retryAfter !== null && !/try again/i.test(message)) {
    message = `${message.replace(/\.?$/, ".")} Try again in ${retryAfter} second${retryAfter === 1 ? "" : "s"}.`;
  }
  return new ApiError(message, { status, detail, code, retryAfter, fields });
}

function buildUrl(path, query) {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "" || v === false) continue;
    qs.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const s = qs.toString();
  return s ? `${path}${path.includes("?") ? "&" : "?"}${s}` : path;
}

async function send(method, path, body, query) {
  const token = storedToken();
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(buildUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError("Cannot reach the server. Check your connection and try again.", { status: 0 });
  }
  let data = null;
  const type = res.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try { data = await res.json(); } catch { data = null; }
  } else {
    try { await res.text(); } catch { /* the body does not matter */ }
  }
  if (res.ok) return { data, headers: res.headers };
  const err = toError(res.status, data, res.headers);
  // a request that carried the session and was refused: the session is over
  if (res.status === 401 && token && storedToken() === token) {
    const expired = err.message === "Token has expired";
    api.clearSession(expired ? "Your session has expired. Please log in again."
      : "Your session is no longer valid. Please log in again.");
  }
  throw err;
}

export const api = {
  get token() { return storedToken(); },
  get user() { return user; },

  // JSON in and out; resolves to the parsed body, throws ApiError.
  async request(method, path, body = undefined, query = undefined) {
    return (await send(method, path, body, query)).data;
  },

  // As request, with the response headers (e.g. X-Total-Count): {data, headers}.
  async requestWithHeaders(method, path, body = undefined, query = undefined) {
    return send(method, path, body, query);
  },

  // Keeps a new token and loads its user; announces the login.
  async startSession(token) {
    try { localStorage.setItem(TOKEN_KEY, token); } catch { /* private mode: this tab only */ }
    return this.loadUser();
  },

  // The user of the stored token (GET /api/auth/me); null without a token.
  async loadUser() {
    if (!storedToken()) return null;
    const me = await this.request("GET", "/api/auth/me");
    const changed = !user || user.id !== me.id;
    user = { id: me.id, email: me.email, name: me.name, created_at: me.created_at };
    if (changed) emit(null);
    return user;
  },

  // Forgets the session here (the token and the user); reason is shown on the login page.
  clearSession(reason = null) {
    const had = user !== null || storedToken() !== null;
    try { localStorage.removeItem(TOKEN_KEY); } catch { /* nothing stored */ }
    user = null;
    if (had) emit(reason);
  },
};

// Another tab logged out (or in as someone else): follow it.
window.addEventListener("storage", (e) => {
  if (e.key !== TOKEN_KEY && e.key !== null) return;
  if (!storedToken()) {
    if (user) {
      user = null;
      emit("You were logged out in another tab.");
    }
  } else if (user) {
    api.loadUser().catch(() => {});
  }
});
