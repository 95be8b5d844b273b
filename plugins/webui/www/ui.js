// DOM building, toasts, dialogs and date formatting shared by every view. Text always goes in as
// text nodes: nothing here parses HTML, so user data cannot become markup.

const BOOLEAN_ATTRS = new Set(["checked", "disabled", "hidden", "required", "selected", "multiple",
  "readonly", "open", "autofocus", "novalidate"]);

// h("button", {class: "btn", onclick: fn}, "Save") -> <button class="btn">Save</button>
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [key, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (key.startsWith("on") && typeof v === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), v);
    } else if (key === "style") {
      // an inline style attribute is refused by the page's Content-Security-Policy
      throw new Error("h(): use a class, not a style attribute");
    } else if (key === "value") {
      value = v; // set after the children, so a <select> has its options first
    } else if (key === "checked" || key === "selected" || key === "disabled") {
      el[key] = Boolean(v);
      if (v) el.setAttribute(key, "");
    } else if (BOOLEAN_ATTRS.has(key)) {
      if (v) el.setAttribute(key, "");
    } else {
      el.setAttribute(key === "className" ? "class" : key, v === true ? "" : String(v));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = String(value);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === true) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

// ---- toasts -----------------------------------------------------------------------------------

// Toasts live in <body>, or in the open modal dialog while there is one: everything outside a
// modal dialog is inert and under its backdrop, so a toast there could be neither seen nor heard.
function toastArea() {
  const modal = [...document.querySelectorAll("dialog[open]")].filter((d) => d.matches(":modal")).pop();
  const host = modal || document.body;
  let area = [...host.children].find((c) => c.classList.contains("toasts"));
  if (!area) {
    area = h("div", { class: "toasts", id: modal ? null : "toasts" });
    host.appendChild(area);
  }
  return area;
}

// A closing dialog hands its toasts on to the page (or the dialog under it).
function rehomeToasts(dlg) {
  const inner = [...dlg.children].find((c) => c.classList.contains("toasts"));
  if (!inner || !inner.children.length) return;
  const items = [...inner.children];
  inner.remove();
  const area = toastArea();
  for (const item of items) area.appendChild(item);
}

// kind: "info" | "success" | "error". Errors are announced at once (role=alert) and stay longer.
export function toast(message, kind = "info") {
  const item = h("div", {
    class: `toast toast-${kind}`,
    role: kind === "error" ? "alert" : "status",
    "data-test": "toast",
    "data-kind": kind,
  });
  const close = () => {
    clearTimeout(timer);
    item.classList.add("toast-leaving");
    setTimeout(() => item.remove(), 200);
  };
  item.append(h("span", { class: "toast-text" }, message),
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: close }, "×"));
  const area = toastArea();
  area.appendChild(item);
  while (area.children.length > 4) area.firstElementChild.remove();
  const timer = setTimeout(close, kind === "error" ? 9000 : 5000);
  return item;
}

// ---- dates ------------------------------------------------------------------------------------

function parse(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  weekday: "short", month: "short", day: "numeric", year: "numeric", hour: "numeric", minute: "2-digit",
});
const dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", year: "numeric" });

export function formatDateTime(iso) {
  const d = parse(iso);
  return d ? dateTimeFmt.format(d) : "";
}

export function formatDate(iso) {
  const d = parse(iso);
  return d ? dateFmt.format(d) : "";
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
  ["hour", 3600], ["minute", 60], ["second", 1]];

// "in 3 days", "2 hours ago", "now"
export function relativeTime(iso) {
  const d = parse(iso);
  if (!d) return "";
  const secs = (d.getTime() - Date.now()) / 1000;
  if (Math.abs(secs) < 45) return rtf.format(0, "second");
  for (const [unit, size] of UNITS) {
    if (Math.abs(secs) >= size || unit === "second") return rtf.format(Math.round(secs / size), unit);
  }
  return "";
}

// An ISO time as the value of an <input type="datetime-local"> (local time, minutes).
export function toLocalInput(iso) {
  const d = parse(iso);
  if (!d) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// The value of a datetime-local input (local time) as ISO UTC; null when empty or invalid.
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value); // a date-time without offset is local time
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

// ---- dialogs ----------------------------------------------------------------------------------

// A modal <dialog> appended to <body>, removed when closed. Escape closes it (the browser's
// cancel); focus goes to the first field or button and back to where it was afterwards.
export function openDialog({ id, title, labelId, body, className = "", onClose }) {
  const previous = document.activeElement;
  const headingId = labelId || `${id || "dialog"}-title`;
  const dlg = h("dialog", { id, class: `dialog ${className}`, "aria-labelledby": headingId },
    h("div", { class: "dialog-head" },
      h("h2", { id: headingId }, title),
      h("button", { type: "button", class: "icon-btn", "aria-label": "Close", "data-test": "dialog-close",
        onclick: () => dlg.close("cancel") }, "×")),
    body);
  dlg.addEventListener("close", () => {
    dlg.remove();
    rehomeToasts(dlg);
    if (onClose) onClose(dlg.returnValue);
    if (previous && previous.isConnected && typeof previous.focus === "function") previous.focus();
  });
  document.body.appendChild(dlg);
  dlg.showModal();
  const first = dlg.querySelector("[autofocus], input:not([type=hidden]), select, textarea, .dialog-body button");
  if (first) first.focus();
  return dlg;
}

// Resolves true when the person confirms, false on cancel or Escape.
export function confirmDialog({ title, message, confirmLabel = "OK", danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h("button", { type: "button", id: "confirm-ok", class: danger ? "btn btn-danger" : "btn btn-primary",
      onclick: () => { answer = true; dlg.close("ok"); } }, confirmLabel);
    const cancel = h("button", { type: "button", id: "confirm-cancel", class: "btn",
      onclick: () => dlg.close("cancel") }, "Cancel");
    const dlg = openDialog({
      id: "confirm-dialog", title, className: "dialog-small",
      body: h("div", { class: "dialog-body" }, h("p", { class: "confirm-message" }, message),
        h("div", { class: "dialog-actions" }, cancel, ok)),
      onClose: () => resolve(answer),
    });
    (danger ? cancel : ok).focus();
  });
}

// ---- forms ------------------------------------------------------------------------------------

// Shows an ApiError on a form: 422 entries next to their fields (an element with
// data-error-for="<field>"), everything else in the form's general error element.
export function showFormErrors(form, err, generalEl) {
  clearFormErrors(form, generalEl);
  let placed = 0;
  for (const f of (err && err.fields) || []) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(f.field)}"]`);
    if (!slot) continue;
    slot.textContent = f.message;
    slot.hidden = false;
    const input = form.querySelector(`[name="${CSS.escape(f.field)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      // the message goes once the person changes the field
      input.addEventListener("input", () => {
        slot.textContent = "";
        slot.hidden = true;
        input.removeAttribute("aria-invalid");
      }, { once: true });
    }
    if (!placed++ && input) input.focus();
  }
  if (generalEl && (!placed || placed < ((err && err.fields) || []).length)) {
    generalEl.textContent = err ? err.message : "Something went wrong.";
    generalEl.hidden = false;
  }
}

export function clearFormErrors(form, generalEl) {
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  if (generalEl) {
    generalEl.textContent = "";
    generalEl.hidden = true;
  }
}

// A labelled field: <div class="field"><label>…</label>control<p error></p></div>. The control
// needs an id and a name; the error slot is linked with aria-describedby.
export function field(label, control, { hint, className = "" } = {}) {
  const errId = `${control.id}-error`;
  const hintId = hint ? `${control.id}-hint` : null;
  control.setAttribute("aria-describedby", [hintId, errId].filter(Boolean).join(" "));
  return h("div", { class: `field ${className}` },
    h("label", { for: control.id }, label),
    control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "field-error", id: errId, "data-error-for": control.name, "data-test": "field-error", hidden: true }));
}

export function debounce(fn, ms) {
  let t = null;
  const wrapped = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => { t = null; fn(...args); }, ms);
  };
  wrapped.cancel = () => clearTimeout(t);
  return wrapped;
}

// Black or white text, whichever reads better on a "#RRGGBB" background.
export function textColorFor(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  if (!m) return "#1f2430";
  const n = parseInt(m[1], 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  const lum = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return lum > 0.4 ? "#1f2430" : "#ffffff";
}

// A tag as a chip in its colour (set through the CSSOM, which the CSP allows).
export function tagChip(tag, extra = {}) {
  const chip = h("span", { class: "chip tag-chip", "data-test": "tag-chip", "data-tag-id": tag.id, title: tag.name, ...extra },
    tag.name);
  if (/^#[0-9a-f]{6}$/i.test(tag.color || "")) {
    chip.style.backgroundColor = tag.color;
    chip.style.color = textColorFor(tag.color);
  }
  return chip;
}

// ---- icons ------------------------------------------------------------------------------------

const ICONS = {
  plus: "M12 5v14M5 12h14",
  edit: "M12 20h9M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4Z",
  trash: "M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6M10 11v6M14 11v6",
  repeat: "M17 1l4 4-4 4M3 11V9a4 4 0 0 1 4-4h14M7 23l-4-4 4-4M21 13v2a4 4 0 0 1-4 4H3",
  bell: "M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9M13.73 21a2 2 0 0 1-3.46 0",
  calendar: "M4 5h16v16H4zM16 3v4M8 3v4M4 10h16",
  tag: "M20.59 13.41l-7.17 7.17a2 2 0 0 1-2.83 0L2 12V2h10l8.59 8.59a2 2 0 0 1 0 2.82zM7 7h.01",
  search: "M11 19a8 8 0 1 0 0-16 8 8 0 0 0 0 16zM21 21l-4.35-4.35",
  up: "M12 19V5M5 12l7-7 7 7",
  down: "M12 5v14M19 12l-7 7-7-7",
  user: "M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2M12 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
  chevron: "M6 9l6 6 6-6",
};

// A stroke icon drawn in currentColor, hidden from assistive technology (label its button).
export function icon(name, className = "icon") {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "16", height: "16", fill: "none",
    stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round",
    "aria-hidden": "true", focusable: "false", class: className })) svg.setAttribute(k, v);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name] || "");
  svg.appendChild(path);
  return svg;
}
