// The signed-out pages: log in and create an account. A successful login stores the token
// (api.startSession), and app.js, told through onAuthChange, shows the app.

import { api } from "./api.js";
import { h, clear, field, showFormErrors, clearFormErrors } from "./ui.js";

function input(id, name, type, autocomplete, extra = {}) {
  return h("input", { id, name, type, autocomplete, required: true, ...extra });
}

function busy(button, on, label) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
  if (label) button.textContent = label;
}

async function login(email, password) {
  const res = await api.request("POST", "/api/auth/login", { email, password });
  await api.startSession(res.access_token);
}

function loginForm(message) {
  const email = input("login-email", "email", "email", "username", { "data-autofocus": "", maxlength: 254 });
  const password = input("login-password", "password", "password", "current-password");
  const submit = h("button", { type: "submit", id: "login-submit", class: "btn btn-primary btn-block" }, "Log in");
  const error = h("p", { id: "login-error", class: "form-error", role: "alert", "data-test": "form-error", hidden: !message },
    message || "");
  if (message) error.classList.add("form-notice");
  const form = h("form", {
    id: "login-form", class: "auth-form", novalidate: true, "aria-labelledby": "auth-title",
    onsubmit: async (e) => {
      e.preventDefault();
      clearFormErrors(form, error);
      error.classList.remove("form-notice");
      if (!email.value.trim() || !password.value) {
        showFormErrors(form, { message: "Enter your email and password.", fields: [] }, error);
        (email.value.trim() ? password : email).focus();
        return;
      }
      busy(submit, true, "Logging in…");
      try {
        await login(email.value.trim(), password.value);
      } catch (err) {
        showFormErrors(form, err, error);
        password.select();
      } finally {
        if (submit.isConnected) busy(submit, false, "Log in");
      }
    },
  },
  error,
  field("Email", email),
  field("Password", password),
  submit);
  return h("div", { class: "auth-card" },
    h("h1", { id: "auth-title" }, "Log in to Taskora"),
    form,
    h("p", { class: "auth-switch" }, "New here? ", h("a", { href: "#/register", id: "show-register" }, "Create an account")));
}

function registerForm() {
  const name = input("register-name", "name", "text", "name", { "data-autofocus": "", maxlength: 255 });
  const email = input("register-email", "email", "email", "email", { maxlength: 254 });
  const password = input("register-password", "password", "password", "new-password");
  const submit = h("button", { type: "submit", id: "register-submit", class: "btn btn-primary btn-block" }, "Create account");
  const error = h("p", { id: "register-error", class: "form-error", role: "alert", "data-test": "form-error", hidden: true });
  const form = h("form", {
    id: "register-form", class: "auth-form", novalidate: true, "aria-labelledby": "auth-title",
    onsubmit: async (e) => {
      e.preventDefault();
      clearFormErrors(form, error);
      const missing = [];
      if (!name.value.trim()) missing.push({ field: "name", message: "Enter your name." });
      if (!/^[^\s@]+@[^\s@]+$/.test(email.value.trim())) missing.push({ field: "email", message: "Enter a valid email address." });
      if (!password.value) missing.push({ field: "password", message: "Choose a password." });
      if (missing.length) {
        showFormErrors(form, { message: "Please fix the fields above.", fields: missing }, error);
        return;
      }
      busy(submit, true, "Creating account…");
      try {
        await api.request("POST", "/api/auth/register",
          { email: email.value.trim(), name: name.value.trim(), password: password.value });
        await login(email.value.trim(), password.value);
      } catch (err) {
        showFormErrors(form, err, error);
      } finally {
        if (submit.isConnected) busy(submit, false, "Create account");
      }
    },
  },
  error,
  field("Name", name),
  field("Email", email),
  field("Password", password),
  submit);
  return h("div", { class: "auth-card" },
    h("h1", { id: "auth-title" }, "Create your account"),
    form,
    h("p", { class: "auth-switch" }, "Already have an account? ", h("a", { href: "#/login", id: "show-login" }, "Log in")));
}

// Renders the login (mode "login") or registration page into container; message: shown above
// the login form (e.g. why the session ended).
export function mountAuth(container, { mode = "login", message = null } = {}) {
  clear(container);
  const page = h("section", { class: "auth-page", "data-test": `${mode}-page` },
    h("div", { class: "auth-brand" }, h("span", { class: "logo", "aria-hidden": "true" }, "✓"), "Taskora"),
    mode === "register" ? registerForm() : loginForm(message));
  container.appendChild(page);
  const first = page.querySelector("[data-autofocus]");
  if (first) first.focus();
  return { unmount() { clear(container); } };
}
