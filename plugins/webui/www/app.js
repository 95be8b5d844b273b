// The app's entry: boots the session, gates the views behind login, routes #/tasks #/analytics
// #/assistant, and runs the header (navigation, connection badge, bell, account menu).

import { api, onAuthChange } from "./api.js";
import { live } from "./live.js";
import * as ui from "./ui.js";
import { mountAuth } from "./auth.js";
import * as tasks from "./tasks.js";
import * as analytics from "./analytics.js";
import * as chat from "./chat.js";
import { mountBell } from "./notifications.js";

const ROUTES = {
  "#/tasks": { view: tasks, title: "Tasks", nav: "nav-tasks" },
  "#/analytics": { view: analytics, title: "Analytics", nav: "nav-analytics" },
  "#/assistant": { view: chat, title: "Assistant", nav: "nav-assistant" },
};
const DEFAULT_ROUTE = "#/tasks";
const STATE_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
const STATE_HINT = {
  connecting: "Connecting to live updates",
  live: "Live updates are on: changes appear as they happen",
  reconnecting: "Live updates interrupted; reconnecting",
  offline: "Offline: changes will appear when the connection is back",
};

const main = document.getElementById("main");
const header = document.getElementById("app-header");
const badge = document.getElementById("conn-state");
const bellSlot = document.getElementById("bell-slot");
const accountButton = document.getElementById("account-button");
const accountMenu = document.getElementById("account-menu");

let current = null;   // {key, handle} of the mounted view
let bell = null;      // what mountBell returned
let signedIn = null;  // the user id the app is showing
let authMessage = null;

function routeKey() {
  const hash = location.hash.split("?")[0];
  return ROUTES[hash] ? hash : null;
}

function unmountView() {
  if (!current) return;
  try { current.handle?.unmount?.(); } catch (e) { console.error(e); }
  current = null;
  ui.clear(main);
}

function context() {
  return { api, live, ui, user: api.user, navigate: (hash) => { location.hash = hash; } };
}

// Shows what the hash names: the login or register page when signed out, else a view.
function route({ focus = true } = {}) {
  if (!api.user) {
    const mode = location.hash === "#/register" ? "register" : "login";
    if (current && current.key === `auth:${mode}`) return;
    unmountView();
    current = { key: `auth:${mode}`, handle: mountAuth(main, { mode, message: mode === "login" ? authMessage : null }) };
    document.title = mode === "register" ? "Create account · Taskora" : "Log in · Taskora";
    return;
  }
  const key = routeKey();
  if (!key) {
    location.replace(DEFAULT_ROUTE); // a hashchange follows, which routes
    if (location.hash === DEFAULT_ROUTE) route({ focus });
    return;
  }
  if (current && current.key === key) return;
  unmountView();
  const r = ROUTES[key];
  for (const k of Object.keys(ROUTES)) {
    const link = document.getElementById(ROUTES[k].nav);
    if (k === key) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${r.title} · Taskora`;
  let handle = null;
  try {
    handle = r.view.mount(main, context());
  } catch (e) {
    console.error(e);
    main.appendChild(ui.h("p", { class: "load-error", role: "alert" }, `This page could not be shown: ${e.message}`));
  }
  current = { key, handle };
  if (focus) {
    const heading = main.querySelector("h1");
    if (heading) {
      if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  }
}

function showSignedIn(user) {
  const again = signedIn !== null;
  signedIn = user.id;
  authMessage = null;
  header.hidden = false;
  document.body.classList.add("signed-in");
  const display = user.name || user.email;
  document.getElementById("account-name").textContent = display;
  document.getElementById("account-initial").textContent = (display || "?").trim().charAt(0).toUpperCase();
  document.getElementById("account-menu-name").textContent = user.name || "";
  document.getElementById("account-email").textContent = user.email;
  document.getElementById("account-email").title = user.email;
  accountButton.setAttribute("aria-label", `Account: ${display}`);
  if (again) {
    // another account in this tab (changed in another tab): start the views afresh
    unmountView();
    unmountBell();
    live.stop();
    forgetViewState();
  }
  live.start();
  mountTheBell();
  if (location.hash === "#/login" || location.hash === "#/register" || !routeKey()) {
    location.replace(DEFAULT_ROUTE);
  }
  unmountView();
  route({ focus: true });
}

// What the views kept for this tab's session (filters, pages) belonged to the user who left.
function forgetViewState() {
  try {
    for (const key of Object.keys(sessionStorage)) if (key.startsWith("taskora.")) sessionStorage.removeItem(key);
  } catch {
    // storage unavailable: nothing was kept
  }
}

function showSignedOut(reason) {
  signedIn = null;
  forgetViewState();
  authMessage = reason;
  live.stop();
  closeMenu();
  for (const d of document.querySelectorAll("dialog[open]")) d.close("signed-out");
  unmountBell();
  unmountView();
  header.hidden = true;
  document.body.classList.remove("signed-in");
  route();
}

function mountTheBell() {
  ui.clear(bellSlot);
  try {
    bell = mountBell(bellSlot, context()) || null;
  } catch (e) {
    console.error(e);
  }
}

function unmountBell() {
  try { bell?.unmount?.(); } catch (e) { console.error(e); }
  bell = null;
  ui.clear(bellSlot);
}

// ---- header ---------------------------------------------------------------------------------

function showState(state) {
  badge.dataset.state = state;
  badge.textContent = STATE_TEXT[state] || state;
  badge.title = STATE_HINT[state] || "";
}

function openMenu() {
  accountMenu.hidden = false;
  accountButton.setAttribute("aria-expanded", "true");
  accountMenu.querySelector("button").focus();
}

function closeMenu({ focusButton = false } = {}) {
  if (accountMenu.hidden) return;
  accountMenu.hidden = true;
  accountButton.setAttribute("aria-expanded", "false");
  if (focusButton) accountButton.focus();
}

async function logout() {
  closeMenu();
  try {
    await api.request("POST", "/api/auth/logout");
  } catch {
    // the session ends here either way
  }
  api.clearSession("You have logged out.");
}

async function deleteAccount() {
  closeMenu();
  const ok = await ui.confirmDialog({
    title: "Delete your account?",
    message: "This permanently deletes your account and all your tasks, tags and conversations. It cannot be undone.",
    confirmLabel: "Delete my account",
    danger: true,
  });
  if (!ok) return;
  try {
    await api.request("DELETE", "/api/auth/delete-account");
    api.clearSession("Your account was deleted.");
  } catch (err) {
    ui.toast(err.message, "error");
  }
}

function wireHeader() {
  live.onState(showState);
  showState(live.state);
  accountButton.addEventListener("click", () => (accountMenu.hidden ? openMenu() : closeMenu()));
  accountMenu.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeMenu({ focusButton: true });
  });
  accountButton.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeMenu();
  });
  document.addEventListener("click", (e) => {
    if (!accountMenu.hidden && !accountMenu.contains(e.target) && !accountButton.contains(e.target)) closeMenu();
  });
  accountMenu.addEventListener("focusout", (e) => {
    if (e.relatedTarget && !accountMenu.contains(e.relatedTarget) && e.relatedTarget !== accountButton) closeMenu();
  });
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("delete-account").addEventListener("click", deleteAccount);
}

// ---- boot -----------------------------------------------------------------------------------

function bootFailed(err) {
  ui.clear(main);
  main.appendChild(ui.h("section", { class: "boot-error", role: "alert" },
    ui.h("h1", {}, "Taskora is not available"),
    ui.h("p", {}, err.message),
    ui.h("button", { type: "button", id: "boot-retry", class: "btn btn-primary", onclick: boot }, "Try again")));
}

async function boot() {
  if (!api.token) {
    route();
    return;
  }
  try {
    await api.loadUser(); // announces the user: onAuthChange shows the app
  } catch (err) {
    if (err.status === 401) return; // the session was cleared and the login page shown
    bootFailed(err);
  }
}

onAuthChange((user, reason) => {
  if (user) showSignedIn(user);
  else showSignedOut(reason);
});
window.addEventListener("hashchange", () => route());
wireHeader();
boot();
