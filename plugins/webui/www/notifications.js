// The bell in the header: the unread count on a button, and a panel (a modal <dialog>) listing
// the user's notifications (GET /api/notifications, newest first) with "Mark as read"
// (POST /api/notifications/{id}/read).
//
// Notifications are not pushed as events of their own: the notifications plugin writes the
// notification row and the task.reminder event in one transaction, and the stream carries
// task.reminder, so the bell refetches on task.reminder, on a resync, when the page becomes
// visible again and when the panel opens. There is no bulk route: "Mark all as read" posts
// each unread notification in turn.

import { h, toast, formatDateTime, relativeTime, clear } from "./ui.js";
import { api, ApiError } from "./api.js";
import { live } from "./live.js";

const LIST_LIMIT = 50; // shown in the panel
const UNREAD_LIMIT = 100; // counted for the badge; a full page shows "99+"

const SVG_NS = "http://www.w3.org/2000/svg";

function bellIcon() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "bell-icon");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute(
    "d",
    "M12 2a6 6 0 0 0-6 6v3.6l-1.7 3.4A1 1 0 0 0 5.2 16.5h13.6a1 1 0 0 0 .9-1.5L18 11.6V8a6 6 0 0 0-6-6zm0 20a3 3 0 0 0 2.8-2h-5.6A3 3 0 0 0 12 22z",
  );
  svg.appendChild(path);
  return svg;
}

function errorText(err) {
  return err instanceof ApiError || (err && err.message) ? err.message : "Something went wrong";
}

export function mountBell(container, ctx = {}) {
  const client = ctx.api || api;
  const events = ctx.live || live;

  let items = []; // the panel's list, newest first
  let unread = 0; // how many unread (capped at UNREAD_LIMIT)
  let loaded = false; // the panel's list has been fetched at least once
  let seq = 0; // answers of older refetches are dropped
  let busy = false; // a "mark all" in progress
  let lastError = "";
  let alive = true;

  const badge = h("span", { class: "bell-badge", "data-test": "bell-badge", "aria-hidden": "true" });
  badge.hidden = true;
  const button = h(
    "button",
    {
      type: "button",
      id: "bell-button",
      class: "bell-button",
      "data-test": "bell-button",
      "aria-haspopup": "dialog",
      "aria-expanded": "false",
      "aria-controls": "bell-panel",
      "aria-label": "Notifications, 0 unread",
    },
    bellIcon(),
    badge,
  );

  const status = h("p", { class: "bell-status", id: "bell-status", role: "status" });
  const list = h("ul", { class: "bell-list", id: "bell-list", "data-test": "bell-list" });
  const markAll = h(
    "button",
    { type: "button", class: "bell-mark-all", id: "bell-mark-all", "data-test": "bell-mark-all" },
    "Mark all as read",
  );
  markAll.hidden = true;
  const closeBtn = h(
    "button",
    { type: "button", class: "bell-close", id: "bell-close", "aria-label": "Close notifications" },
    "×",
  );
  const heading = h("h2", { class: "bell-heading", id: "bell-heading", tabindex: "-1" }, "Notifications");
  const panel = h(
    "dialog",
    { class: "bell-panel", id: "bell-panel", "data-test": "bell-panel", "aria-labelledby": "bell-heading" },
    h("div", { class: "bell-panel-head" }, heading, markAll, closeBtn),
    status,
    list,
  );

  const wrap = h("div", { class: "bell" }, button, panel);
  container.appendChild(wrap);

  function setUnread(n) {
    unread = Math.max(0, n);
    const shown = unread >= UNREAD_LIMIT ? `${UNREAD_LIMIT - 1}+` : String(unread);
    button.setAttribute("aria-label", `Notifications, ${shown} unread`);
    badge.textContent = shown;
    badge.hidden = unread === 0;
    button.classList.toggle("bell-has-unread", unread > 0);
  }

  function renderItem(n) {
    const isUnread = !n.read_at;
    const li = h("li", {
      class: isUnread ? "bell-item bell-unread" : "bell-item",
      "data-test": "bell-item",
      "data-notification-id": String(n.id),
      "data-unread": isUnread ? "true" : "false",
      tabindex: "-1",
    });
    const title = h("p", { class: "bell-item-title" });
    if (isUnread) title.appendChild(h("span", { class: "bell-sr-only" }, "Unread: "));
    title.appendChild(document.createTextNode(n.title || "Reminder"));
    li.appendChild(title);
    if (n.message) li.appendChild(h("p", { class: "bell-item-message" }, n.message));
    const time = h("time", { class: "bell-item-time", datetime: n.created_at || "" });
    time.textContent = n.created_at ? relativeTime(n.created_at) : "";
    if (n.created_at) time.setAttribute("title", formatDateTime(n.created_at));
    const foot = h("div", { class: "bell-item-foot" }, time);
    if (isUnread) {
      const b = h(
        "button",
        {
          type: "button",
          class: "bell-mark-read",
          "data-test": "bell-mark-read",
          "aria-label": `Mark as read: ${n.title || "Reminder"}`,
        },
        "Mark as read",
      );
      b.addEventListener("click", () => markRead(n.id, li, b));
      foot.appendChild(b);
    }
    li.appendChild(foot);
    return li;
  }

  function renderPanel() {
    clear(list);
    markAll.hidden = unread === 0 || !loaded;
    markAll.disabled = busy;
    if (!loaded) {
      status.textContent = lastError || "Loading…";
      status.classList.toggle("bell-status-error", !!lastError);
      return;
    }
    status.classList.toggle("bell-status-error", !!lastError);
    if (lastError) status.textContent = lastError;
    else if (items.length === 0) status.textContent = "No notifications yet.";
    else status.textContent = unread ? `${unread >= UNREAD_LIMIT ? "99+" : unread} unread` : "All read.";
    for (const n of items) list.appendChild(renderItem(n));
  }

  // Fetches the unread count, and the list too when `withList` (the panel is open or was).
  async function refresh(withList = panel.open || loaded) {
    const mine = ++seq;
    try {
      const unreadP = client.request("GET", "/api/notifications", undefined, {
        unread: "true",
        limit: String(UNREAD_LIMIT),
      });
      const listP = withList
        ? client.request("GET", "/api/notifications", undefined, { limit: String(LIST_LIMIT) })
        : null;
      const [unreadList, all] = await Promise.all([unreadP, listP]);
      if (!alive || mine !== seq) return;
      setUnread(Array.isArray(unreadList) ? unreadList.length : 0);
      if (all) {
        items = Array.isArray(all) ? all : [];
        loaded = true;
      }
      lastError = "";
    } catch (err) {
      if (!alive || mine !== seq) return;
      lastError = `Could not load notifications: ${errorText(err)}`;
    }
    if (panel.open) renderPanel();
  }

  async function markRead(id, li, b) {
    b.disabled = true;
    try {
      const updated = await client.request("POST", `/api/notifications/${encodeURIComponent(id)}/read`);
      if (!alive) return;
      const i = items.findIndex((x) => x.id === id);
      if (i >= 0) items[i] = updated && updated.id === id ? updated : { ...items[i], read_at: new Date().toISOString() };
      setUnread(unread - 1);
      const fresh = renderItem(items[i] || updated);
      li.replaceWith(fresh);
      markAll.hidden = unread === 0;
      status.textContent = unread ? `${unread} unread` : "All read.";
      fresh.focus(); // the button it had is gone: keep focus on the item, inside the panel
    } catch (err) {
      if (!alive) return;
      b.disabled = false;
      toast(`Could not mark as read: ${errorText(err)}`, "error");
    }
  }

  async function markAllRead() {
    if (busy) return;
    busy = true;
    markAll.disabled = true;
    status.textContent = "Marking all as read…";
    let failed = null;
    try {
      const pending = await client.request("GET", "/api/notifications", undefined, {
        unread: "true",
        limit: String(UNREAD_LIMIT),
      });
      for (const n of Array.isArray(pending) ? pending : []) {
        if (!alive) return;
        try {
          await client.request("POST", `/api/notifications/${encodeURIComponent(n.id)}/read`);
        } catch (err) {
          failed = err;
          break;
        }
      }
    } catch (err) {
      failed = err;
    }
    busy = false;
    if (!alive) return;
    if (failed) toast(`Could not mark all as read: ${errorText(failed)}`, "error");
    await refresh(true);
    heading.focus();
  }

  // Places the panel just under the bell, right edges aligned (CSS keeps it on screen).
  function place() {
    const r = button.getBoundingClientRect();
    const top = Math.max(8, Math.round(r.bottom + 6));
    panel.style.setProperty("--bell-top", `${top}px`);
    panel.style.setProperty("--bell-right", `${Math.max(8, Math.round(window.innerWidth - r.right))}px`);
  }

  function open() {
    if (panel.open) return;
    place();
    panel.showModal();
    button.setAttribute("aria-expanded", "true");
    renderPanel();
    heading.focus();
    refresh(true);
  }

  function close() {
    if (panel.open) panel.close();
  }

  const onButton = () => (panel.open ? close() : open());
  const onClose = () => {
    button.setAttribute("aria-expanded", "false");
    if (alive) button.focus();
  };
  // A click on the backdrop (outside the panel's box) closes it.
  const onPanelClick = (e) => {
    if (e.target !== panel) return;
    const r = panel.getBoundingClientRect();
    const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
    if (!inside) close();
  };
  const onVisible = () => {
    if (document.visibilityState === "visible") refresh();
  };

  button.addEventListener("click", onButton);
  closeBtn.addEventListener("click", close);
  markAll.addEventListener("click", markAllRead);
  panel.addEventListener("close", onClose);
  panel.addEventListener("click", onPanelClick);
  document.addEventListener("visibilitychange", onVisible);

  const unsubs = [];
  unsubs.push(
    events.on("task.reminder", (ev) => {
      if (!alive) return;
      const p = (ev && ev.payload) || {};
      toast(p.title ? `Reminder: ${p.title}` : "Reminder", "info");
      refresh();
    }),
  );
  const r = events.onResync(() => alive && refresh());
  if (typeof r === "function") unsubs.push(r);

  setUnread(0);
  refresh(false);

  return {
    refresh,
    unmount() {
      alive = false;
      for (const u of unsubs) if (typeof u === "function") u();
      document.removeEventListener("visibilitychange", onVisible);
      if (panel.open) panel.close();
      wrap.remove();
    },
  };
}
