// The assistant: the user's conversations (GET /api/{user}/conversations, newest first), one
// conversation's messages (GET .../conversations/{cid}/messages, oldest first), and a message
// box that posts to POST /api/{user}/chat. The assistant's answer comes with the tool calls it
// made (tool, params, result), shown in a collapsed <details> under the answer.
//
// When the provider is unavailable (503 AI_UNAVAILABLE with Retry-After) the text stays in the
// box and the page says when to try again. The server keeps the question of an existing
// conversation even then, so its bubble stays, marked "not answered"; a first message leaves
// nothing behind on the server, so its bubble goes.
//
// Narrow screens show either the list or the open conversation (class chat-thread-open on the
// view); wide ones show both side by side.

import { h, toast, formatDateTime, relativeTime, clear } from "./ui.js";
import { api, ApiError } from "./api.js";
import { live } from "./live.js";

const MAX_CHARS = 2000;
const PAGE = 20; // conversations per page
const MSG_PAGE = 50; // messages first shown; "load earlier" asks for 50 more
const MSG_MAX = 200; // the most the messages route gives

// "30 s", "2 min", "1 h 5 min"
export function waitText(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.ceil(s / 60);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  return m % 60 ? `${hrs} h ${m % 60} min` : `${hrs} h`;
}

function errorText(err) {
  if (err instanceof ApiError || (err && err.message)) return err.message;
  return "Something went wrong";
}

// The people-readable text for a failed send.
export function sendErrorText(err) {
  const code = err && err.code;
  if (code === "AI_UNAVAILABLE" || (err && err.status === 503)) {
    const ra = Number(err.retryAfter);
    return Number.isFinite(ra) && ra > 0
      ? `The assistant is unavailable; try again in ${waitText(ra)}.`
      : "The assistant is unavailable; try again later.";
  }
  if (err && err.status === 429) {
    const ra = Number(err.retryAfter);
    const base = errorText(err);
    return Number.isFinite(ra) && ra > 0 && !/tomorrow/i.test(base) ? `${base} (try again in ${waitText(ra)})` : base;
  }
  return errorText(err);
}

// Length in characters as the server counts them (code points, not UTF-16 units).
const charCount = (s) => Array.from(s).length;

function pretty(v) {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

function toolCalls(calls) {
  if (!Array.isArray(calls) || calls.length === 0) return null;
  const names = calls.map((c) => (c && c.tool) || "tool");
  const list = h("ol", { class: "chat-tool-list" });
  for (const c of calls) {
    const failed = c && c.result && typeof c.result === "object" && !Array.isArray(c.result) && "error" in c.result;
    list.appendChild(
      h(
        "li",
        { class: failed ? "chat-tool chat-tool-failed" : "chat-tool", "data-test": "chat-tool-call", "data-tool": String((c && c.tool) || "") },
        h("p", { class: "chat-tool-name" }, h("code", {}, String((c && c.tool) || "tool")), failed ? " (failed)" : ""),
        h("p", { class: "chat-tool-label" }, "Parameters"),
        h("pre", { class: "chat-tool-json" }, pretty(c && c.params)),
        h("p", { class: "chat-tool-label" }, "Result"),
        h("pre", { class: "chat-tool-json" }, pretty(c && c.result)),
      ),
    );
  }
  return h(
    "details",
    { class: "chat-tools", "data-test": "chat-tool-calls" },
    h("summary", { class: "chat-tools-summary" }, `${calls.length === 1 ? "1 tool call" : `${calls.length} tool calls`}: ${names.join(", ")}`),
    list,
  );
}

function messageItem(m) {
  const role = m.role === "assistant" ? "assistant" : "user";
  const li = h("li", {
    class: `chat-msg chat-msg-${role}`,
    "data-test": "chat-message",
    "data-role": role,
  });
  if (m.id != null) li.setAttribute("data-message-id", String(m.id));
  li.appendChild(h("p", { class: "chat-msg-who" }, role === "assistant" ? "Assistant" : "You"));
  li.appendChild(h("div", { class: "chat-msg-text", "data-test": "chat-message-text" }, String(m.content ?? "")));
  const tools = role === "assistant" ? toolCalls(m.tool_calls) : null;
  if (tools) li.appendChild(tools);
  if (m.created_at) {
    const t = h("time", { class: "chat-msg-time", datetime: m.created_at });
    t.textContent = formatDateTime(m.created_at);
    li.appendChild(t);
  }
  return li;
}

export function mount(container, ctx = {}) {
  const client = ctx.api || api;
  const events = ctx.live || live;
  const user = ctx.user || client.user || {};
  const base = `/api/${encodeURIComponent(String(user.id ?? ""))}`;

  let alive = true;
  let conversations = [];
  let total = 0;
  let current = null; // the open conversation's id, null for a new one
  let msgLimit = MSG_PAGE;
  let sending = false;
  let listSeq = 0;
  let msgSeq = 0;
  let pendingDelete = null;
  let firstList = true;

  // ---- the list ----
  const newBtn = h("button", { type: "button", class: "chat-new", id: "chat-new", "data-test": "chat-new" }, "New conversation");
  const convStatus = h("p", { class: "chat-conv-status", id: "chat-conv-status", role: "status" });
  const convList = h("ul", { class: "chat-conv-list", id: "chat-conversations", "data-test": "chat-conversations" });
  const moreBtn = h("button", { type: "button", class: "chat-more", id: "chat-more-conversations" }, "Show more conversations");
  moreBtn.hidden = true;
  const side = h(
    "section",
    { class: "chat-side", "aria-labelledby": "chat-conv-heading" },
    h("div", { class: "chat-side-head" }, h("h2", { class: "chat-h2", id: "chat-conv-heading" }, "Conversations"), newBtn),
    convStatus,
    convList,
    moreBtn,
  );

  // ---- the thread ----
  const backBtn = h("button", { type: "button", class: "chat-back", id: "chat-back" }, "← Conversations");
  const threadHeading = h("h2", { class: "chat-h2", id: "chat-thread-heading", tabindex: "-1" }, "New conversation");
  const earlierBtn = h(
    "button",
    { type: "button", class: "chat-earlier", id: "chat-load-earlier", "data-test": "chat-load-earlier" },
    "Load earlier messages",
  );
  earlierBtn.hidden = true;
  const earlierNote = h("p", { class: "chat-note", id: "chat-earlier-note" }, "Older messages of this conversation are not shown.");
  earlierNote.hidden = true;
  const intro = h(
    "p",
    { class: "chat-intro", id: "chat-intro" },
    "Ask the assistant to add, list, complete, update or delete your tasks, e.g. “Add a task to buy milk tomorrow”.",
  );
  const messages = h("ol", {
    class: "chat-messages",
    id: "chat-messages",
    "data-test": "chat-messages",
    role: "log",
    "aria-live": "polite",
    "aria-labelledby": "chat-thread-heading",
  });
  const thinking = h(
    "p",
    { class: "chat-thinking", id: "chat-thinking", "data-test": "chat-thinking", role: "status" },
    h("span", { class: "chat-dots", "aria-hidden": "true" }, h("span", {}), h("span", {}), h("span", {})),
    " The assistant is thinking…",
  );
  thinking.hidden = true;
  const scroller = h("div", { class: "chat-scroll", id: "chat-scroll" }, earlierBtn, earlierNote, intro, messages, thinking);

  const error = h("p", { class: "chat-error", id: "chat-error", "data-test": "chat-error", role: "alert" });
  error.hidden = true;
  const input = h("textarea", {
    id: "chat-input",
    class: "chat-input",
    "data-test": "chat-input",
    rows: "3",
    maxlength: String(MAX_CHARS * 2), // UTF-16 units; the real check counts characters below
    placeholder: "Message the assistant",
    "aria-describedby": "chat-hint chat-count",
  });
  const count = h("span", { class: "chat-count", id: "chat-count" }, `0 / ${MAX_CHARS}`);
  const sendBtn = h("button", { type: "submit", class: "chat-send", id: "chat-send", "data-test": "chat-send" }, "Send");
  const form = h(
    "form",
    { class: "chat-form", id: "chat-form", "data-test": "chat-form", novalidate: "" },
    h("label", { for: "chat-input", class: "chat-label" }, "Message"),
    input,
    h(
      "div",
      { class: "chat-form-row" },
      h("span", { class: "chat-hint", id: "chat-hint" }, "Enter sends, Shift+Enter adds a line."),
      count,
      sendBtn,
    ),
  );
  const thread = h(
    "section",
    { class: "chat-thread", "aria-labelledby": "chat-thread-heading" },
    h("div", { class: "chat-thread-head" }, backBtn, threadHeading),
    scroller,
    error,
    form,
  );

  // ---- delete confirmation ----
  const confirmText = h("p", { class: "chat-confirm-text", id: "chat-confirm-text" });
  const confirmYes = h("button", { type: "button", class: "chat-danger", id: "chat-delete-confirm", "data-test": "chat-delete-confirm" }, "Delete");
  const confirmNo = h("button", { type: "button", class: "chat-cancel", id: "chat-delete-cancel" }, "Cancel");
  const confirm = h(
    "dialog",
    { class: "chat-confirm", id: "chat-delete-dialog", "aria-labelledby": "chat-confirm-title", "aria-describedby": "chat-confirm-text" },
    h("h2", { class: "chat-h2", id: "chat-confirm-title" }, "Delete conversation?"),
    confirmText,
    h("div", { class: "chat-confirm-actions" }, confirmNo, confirmYes),
  );

  const view = h(
    "div",
    { class: "chat-view", id: "chat-view" },
    h("h1", { class: "chat-title", id: "chat-title" }, "Assistant"),
    h("div", { class: "chat-layout" }, side, thread),
    confirm,
  );
  container.appendChild(view);

  // ---- helpers ----
  // soft: a hint about the text in the box, gone once it is typed in (a failure stays)
  let errorSoft = false;
  function showError(text, soft = false) {
    error.textContent = text || "";
    error.hidden = !text;
    errorSoft = soft;
  }

  function setThreadOpen(open) {
    view.classList.toggle("chat-thread-open", open);
  }

  function scrollToEnd() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function updateCount() {
    const n = charCount(input.value);
    count.textContent = `${n} / ${MAX_CHARS}`;
    count.classList.toggle("chat-count-over", n > MAX_CHARS);
  }

  function setSending(on) {
    sending = on;
    input.readOnly = on; // not disabled: the focus stays in the box
    input.setAttribute("aria-busy", on ? "true" : "false");
    sendBtn.disabled = on;
    sendBtn.textContent = on ? "Sending…" : "Send";
    thinking.hidden = !on;
    newBtn.disabled = on;
    if (on) scrollToEnd();
  }

  function convLabel(c) {
    return c.last_message ? String(c.last_message) : "(no messages)";
  }

  function renderConversations() {
    clear(convList);
    if (conversations.length === 0) {
      convStatus.textContent = "No conversations yet.";
    } else {
      convStatus.textContent = "";
    }
    for (const c of conversations) {
      const open = h(
        "button",
        {
          type: "button",
          class: "chat-conv-open",
          "data-test": "chat-conversation-open",
        },
        h("span", { class: "chat-conv-last" }, convLabel(c)),
        h(
          "span",
          { class: "chat-conv-meta" },
          `${c.message_count === 1 ? "1 message" : `${c.message_count ?? 0} messages`} · ${c.updated_at ? relativeTime(c.updated_at) : ""}`,
        ),
      );
      if (c.id === current) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => openConversation(c.id, true));
      const del = h(
        "button",
        {
          type: "button",
          class: "chat-conv-delete",
          "data-test": "chat-conversation-delete",
          "aria-label": `Delete conversation: ${convLabel(c).slice(0, 60)}`,
        },
        "Delete",
      );
      del.addEventListener("click", () => askDelete(c, del));
      convList.appendChild(
        h(
          "li",
          {
            class: c.id === current ? "chat-conv chat-conv-current" : "chat-conv",
            "data-test": "chat-conversation",
            "data-conversation-id": String(c.id),
          },
          open,
          del,
        ),
      );
    }
    moreBtn.hidden = conversations.length >= total;
  }

  // Marks the open conversation's row (without rebuilding the list: focus stays where it is).
  function markCurrent() {
    for (const li of convList.children) {
      const on = li.getAttribute("data-conversation-id") === String(current);
      li.classList.toggle("chat-conv-current", on);
      const b = li.querySelector(".chat-conv-open");
      if (on) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
  }

  async function loadConversations(append = false) {
    const mine = ++listSeq;
    if (!append && conversations.length === 0) convStatus.textContent = "Loading…";
    try {
      const r = await client.request("GET", `${base}/conversations`, undefined, {
        limit: String(append ? PAGE : Math.max(PAGE, conversations.length)),
        offset: String(append ? conversations.length : 0),
      });
      if (!alive || mine !== listSeq) return;
      const got = (r && Array.isArray(r.conversations) && r.conversations) || [];
      total = Number(r && r.total) || got.length;
      if (append) {
        const seen = new Set(conversations.map((c) => c.id));
        conversations = conversations.concat(got.filter((c) => !seen.has(c.id)));
      } else {
        conversations = got;
      }
      renderConversations();
      // nothing to pick from: straight to a new conversation (narrow screens show one pane)
      if (firstList && conversations.length === 0 && current == null) setThreadOpen(true);
      firstList = false;
    } catch (err) {
      if (!alive || mine !== listSeq) return;
      convStatus.textContent = `Could not load conversations: ${errorText(err)}`;
    }
  }

  function startNew(focus = true) {
    msgSeq++;
    current = null;
    msgLimit = MSG_PAGE;
    clear(messages);
    intro.hidden = false;
    earlierBtn.hidden = true;
    earlierNote.hidden = true;
    threadHeading.textContent = "New conversation";
    showError("");
    markCurrent();
    setThreadOpen(true);
    if (focus) input.focus();
  }

  // Loads the open conversation's newest msgLimit messages. keepPlace: the earlier ones were
  // asked for, so the reader stays where they were.
  async function loadMessages(keepPlace = false) {
    const mine = ++msgSeq;
    const cid = current;
    messages.setAttribute("aria-busy", "true");
    earlierBtn.disabled = true;
    try {
      const r = await client.request("GET", `${base}/conversations/${encodeURIComponent(cid)}/messages`, undefined, {
        limit: String(msgLimit),
      });
      if (!alive || mine !== msgSeq) return;
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      clear(messages);
      const list = (r && Array.isArray(r.messages) && r.messages) || [];
      for (const m of list) messages.appendChild(messageItem(m));
      intro.hidden = list.length > 0;
      const more = !!(r && r.has_more);
      earlierBtn.hidden = !more || msgLimit >= MSG_MAX;
      earlierNote.hidden = !(more && msgLimit >= MSG_MAX);
      if (keepPlace) scroller.scrollTop = scroller.scrollHeight - fromBottom;
      else scrollToEnd();
    } catch (err) {
      if (!alive || mine !== msgSeq) return;
      if (err && err.status === 404) {
        toast("That conversation no longer exists.", "error");
        loadConversations();
        startNew(false);
        return;
      }
      showError(`Could not load the messages: ${errorText(err)}`);
    } finally {
      if (alive && mine === msgSeq) {
        messages.setAttribute("aria-busy", "false");
        earlierBtn.disabled = false;
      }
    }
  }

  function openConversation(cid, focus) {
    if (sending) return;
    current = cid;
    msgLimit = MSG_PAGE;
    threadHeading.textContent = "Conversation";
    showError("");
    clear(messages);
    markCurrent();
    setThreadOpen(true);
    loadMessages(false);
    if (focus) threadHeading.focus();
  }

  function askDelete(c, opener) {
    pendingDelete = { c, opener };
    const n = Number(c.message_count) || 0;
    confirmText.textContent = `“${convLabel(c).slice(0, 80)}” and its ${n === 1 ? "1 message" : `${n} messages`} will be deleted. This cannot be undone.`;
    confirmYes.disabled = false;
    confirm.showModal();
    confirmNo.focus();
  }

  async function doDelete() {
    if (!pendingDelete) return;
    const { c } = pendingDelete;
    confirmYes.disabled = true;
    try {
      await client.request("DELETE", `${base}/conversations/${encodeURIComponent(c.id)}`);
      if (!alive) return;
      pendingDelete.opener = null; // gone with its row
      confirm.close();
      conversations = conversations.filter((x) => x.id !== c.id);
      total = Math.max(0, total - 1);
      if (current === c.id) startNew(false);
      renderConversations();
      toast("Conversation deleted", "success");
      (convList.querySelector("button") || newBtn).focus();
      loadConversations();
    } catch (err) {
      if (!alive) return;
      confirmYes.disabled = false;
      confirm.close();
      toast(`Could not delete the conversation: ${errorText(err)}`, "error");
      if (err && err.status === 404) loadConversations();
    }
  }

  async function send() {
    if (sending) return;
    const text = input.value;
    if (!text.trim()) {
      showError("Please enter a message.", true);
      input.focus();
      return;
    }
    if (charCount(text) > MAX_CHARS) {
      showError(`The message is too long: at most ${MAX_CHARS} characters.`, true);
      input.focus();
      return;
    }
    showError("");
    const cid = current;
    const mine = msgSeq; // a conversation opened meanwhile makes this answer stale
    const bubble = messageItem({ role: "user", content: text, created_at: new Date().toISOString() });
    bubble.classList.add("chat-msg-pending");
    messages.appendChild(bubble);
    intro.hidden = true;
    setSending(true);
    try {
      const body = { message: text };
      if (cid != null) body.conversation_id = cid;
      const r = await client.request("POST", `${base}/chat`, body);
      if (!alive) return;
      bubble.classList.remove("chat-msg-pending");
      if (current === cid && mine === msgSeq) {
        input.value = "";
        updateCount();
        messages.appendChild(
          messageItem({
            role: "assistant",
            content: r && r.response,
            tool_calls: r && r.tool_calls,
            created_at: new Date().toISOString(),
          }),
        );
        if (cid == null && r && r.conversation_id != null) {
          current = r.conversation_id;
          threadHeading.textContent = "Conversation";
        }
      }
      loadConversations();
    } catch (err) {
      if (!alive) return;
      // the text stays in the box to send again
      if (cid == null || (err && err.status === 404)) bubble.remove();
      else {
        bubble.classList.remove("chat-msg-pending");
        bubble.classList.add("chat-msg-unanswered");
        bubble.appendChild(h("p", { class: "chat-msg-flag" }, "Not answered"));
      }
      intro.hidden = messages.childElementCount > 0;
      showError(sendErrorText(err));
      if (err && err.status === 404 && err.code !== "AI_UNAVAILABLE") {
        loadConversations();
        startNew(false);
        showError("That conversation no longer exists; your message will start a new one.");
      }
    } finally {
      if (alive) {
        setSending(false);
        scrollToEnd();
        input.focus();
      }
    }
  }

  // ---- events ----
  const onKey = (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      send();
    }
  };
  input.addEventListener("keydown", onKey);
  input.addEventListener("input", () => {
    updateCount();
    if (errorSoft && input.value.trim() && charCount(input.value) <= MAX_CHARS) showError("");
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  newBtn.addEventListener("click", () => startNew(true));
  moreBtn.addEventListener("click", () => loadConversations(true));
  earlierBtn.addEventListener("click", () => {
    msgLimit = Math.min(MSG_MAX, msgLimit + MSG_PAGE);
    loadMessages(true);
  });
  backBtn.addEventListener("click", () => {
    setThreadOpen(false);
    const row = current != null && convList.querySelector(`[data-conversation-id="${CSS.escape(String(current))}"] button`);
    (row || newBtn).focus();
  });
  confirmNo.addEventListener("click", () => confirm.close());
  confirmYes.addEventListener("click", doDelete);
  confirm.addEventListener("close", () => {
    const p = pendingDelete;
    pendingDelete = null;
    if (alive && p && p.opener && p.opener.isConnected) p.opener.focus();
  });

  const unsubs = [];
  const r = events.onResync(() => {
    if (!alive) return;
    loadConversations();
    if (current != null && !sending) loadMessages(true);
  });
  if (typeof r === "function") unsubs.push(r);

  updateCount();
  loadConversations();
  startNew(false);
  setThreadOpen(false);

  return {
    unmount() {
      alive = false;
      for (const u of unsubs) if (typeof u === "function") u();
      if (confirm.open) confirm.close();
      view.remove();
    },
  };
}
