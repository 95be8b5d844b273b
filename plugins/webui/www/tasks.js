// The tasks view (#/tasks): a filtered, sorted, paged list that follows the live stream, and the
// create/edit dialog. The filters are kept for the tab's session.

import {
  h, clear, toast, formatDateTime, relativeTime, confirmDialog, debounce, icon, tagChip, openDialog, field,
  showFormErrors, clearFormErrors, toLocalInput, fromLocalInput,
} from "./ui.js";
import { openTagManager } from "./tags.js";

const STATE_KEY = "taskora.tasks.view";
const DEFAULTS = { search: "", status: "all", priority: "", tag: "", overdue: false,
  sort_by: "created_at", order: "desc", limit: 20, offset: 0 };
const PRIORITIES = [["urgent", "Urgent"], ["high", "High"], ["medium", "Medium"], ["low", "Low"]];
export const PRIORITY_LABEL = Object.fromEntries(PRIORITIES);
const SORTS = [["created_at", "Created"], ["due_date", "Due date"], ["priority", "Priority"], ["title", "Title"]];
const RULE_LABEL = { daily: "Daily", weekly: "Weekly", monthly: "Monthly" };
const LIVE_TYPES = ["task.created", "task.updated", "task.completed", "task.deleted", "task.recurred", "task.reminder"];

function loadState() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STATE_KEY) || "{}");
    const s = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) if (typeof saved[k] === typeof DEFAULTS[k]) s[k] = saved[k];
    return s;
  } catch {
    return { ...DEFAULTS };
  }
}

function saveState(s) {
  try { sessionStorage.setItem(STATE_KEY, JSON.stringify(s)); } catch { /* not kept: fine */ }
}

function filtersActive(s) {
  return Boolean(s.search || s.status !== "all" || s.priority || s.tag || s.overdue);
}

export function isOverdue(task, now = Date.now()) {
  if (task.completed || !task.due_date) return false;
  const t = Date.parse(task.due_date);
  return !Number.isNaN(t) && t < now;
}

export function recurrenceText(task) {
  if (!task.is_recurring || !task.recurrence_rule) return null;
  if (task.recurrence_rule === "custom") {
    const n = task.recurrence_interval || 1;
    return n === 1 ? "Every day" : `Every ${n} days`;
  }
  return RULE_LABEL[task.recurrence_rule] || task.recurrence_rule;
}

function select(id, name, options, value, extra = {}) {
  return h("select", { id, name, value, ...extra },
    options.map(([v, label]) => h("option", { value: v }, label)));
}

function labelled(label, control, className = "") {
  return h("div", { class: `filter ${className}` }, h("label", { for: control.id }, label), control);
}

export function mount(container, ctx) {
  const { api, live } = ctx;
  const state = loadState();
  let tags = [];
  let seq = 0;
  let destroyed = false;
  let lastRows = [];
  let lastKey = null;
  const pending = new Set(); // task ids with a completion under way
  const unsubs = [];

  // ---- the page's parts ----
  const list = h("ul", { id: "task-list", class: "task-list", "aria-labelledby": "tasks-heading" });
  const empty = h("div", { id: "task-empty", class: "empty-state", "data-test": "task-empty", hidden: true });
  const loadError = h("div", { id: "task-load-error", class: "load-error", role: "alert", hidden: true });
  const pageInfo = h("span", { id: "page-info", class: "page-info", "aria-live": "polite" });
  const prev = h("button", { type: "button", id: "page-prev", class: "btn",
    onclick: () => goPage(-1) }, "Previous");
  const next = h("button", { type: "button", id: "page-next", class: "btn",
    onclick: () => goPage(1) }, "Next");
  const pageSize = select("page-size", "limit", [10, 20, 50, 100].map((n) => [String(n), String(n)]),
    String(state.limit), { onchange: () => { state.limit = Number(pageSize.value); state.offset = 0; changed(); } });
  const pager = h("nav", { class: "pager", "aria-label": "Pages", hidden: true },
    h("div", { class: "pager-size" }, h("label", { for: "page-size" }, "Per page"), pageSize),
    pageInfo,
    h("div", { class: "pager-buttons" }, prev, next));

  const search = h("input", { id: "task-search", name: "search", type: "search", placeholder: "Search title or description",
    value: state.search, autocomplete: "off", maxlength: 200 });
  const onSearch = debounce(() => { state.search = search.value.trim(); state.offset = 0; changed(); }, 300);
  search.addEventListener("input", onSearch);
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); onSearch.cancel(); state.search = search.value.trim(); state.offset = 0; changed(); }
  });
  const status = select("filter-status", "status",
    [["all", "All"], ["pending", "Pending"], ["completed", "Completed"]], state.status);
  const priority = select("filter-priority", "priority", [["", "Any priority"], ...PRIORITIES], state.priority);
  const tagFilter = h("select", { id: "filter-tag", name: "tag" }, h("option", { value: "" }, "Any tag"));
  const overdue = h("input", { id: "filter-overdue", name: "overdue", type: "checkbox", checked: state.overdue });
  const sortBy = select("sort-by", "sort_by", SORTS, state.sort_by);
  const sortOrder = h("button", { type: "button", id: "sort-order", class: "btn btn-icon-text",
    onclick: () => { state.order = state.order === "asc" ? "desc" : "asc"; state.offset = 0; changed(); } });
  const clearBtn = h("button", { type: "button", id: "clear-filters", class: "btn btn-link", onclick: resetFilters },
    "Clear filters");
  for (const [el, key] of [[status, "status"], [priority, "priority"], [tagFilter, "tag"], [sortBy, "sort_by"]]) {
    el.addEventListener("change", () => { state[key] = el.value; state.offset = 0; changed(); });
  }
  overdue.addEventListener("change", () => { state.overdue = overdue.checked; state.offset = 0; changed(); });

  // on a phone the filters other than search fold away behind this button (CSS shows it there)
  const moreFilters = h("button", { type: "button", id: "toggle-filters", class: "btn filter-toggle",
    "aria-expanded": "false", "aria-controls": "task-filters",
    onclick: () => {
      const open = !filters.classList.contains("is-open");
      filters.classList.toggle("is-open", open);
      moreFilters.setAttribute("aria-expanded", String(open));
    } });
  const filters = h("form", { id: "task-filters", class: "filters", role: "search", "aria-label": "Filter tasks",
    onsubmit: (e) => e.preventDefault() },
  h("div", { class: "filter filter-search" }, h("label", { for: "task-search" }, "Search"),
    h("div", { class: "search-row" },
      h("div", { class: "search-box" }, icon("search", "icon search-icon"), search),
      moreFilters)),
  labelled("Status", status),
  labelled("Priority", priority),
  labelled("Tag", tagFilter),
  h("div", { class: "filter filter-sort" }, h("label", { for: "sort-by" }, "Sort by"),
    h("div", { class: "sort-pair" }, sortBy, sortOrder)),
  h("div", { class: "filter filter-check" }, overdue, h("label", { for: "filter-overdue" }, "Overdue only")),
  h("div", { class: "filter filter-clear" }, clearBtn));

  const view = h("section", { class: "view tasks-view", "aria-labelledby": "tasks-heading" },
    h("div", { class: "view-head" },
      h("h1", { id: "tasks-heading", tabindex: "-1" }, "Tasks"),
      h("div", { class: "view-actions" },
        h("button", { type: "button", id: "manage-tags", class: "btn", onclick: manageTags }, icon("tag"), "Tags"),
        h("button", { type: "button", id: "new-task", class: "btn btn-primary", onclick: () => edit(null) },
          icon("plus"), "New task"))),
    filters,
    h("div", { class: "list-region" }, loadError, list, empty),
    pager);
  clear(container);
  container.appendChild(view);
  syncControls();

  // ---- loading ----
  function query() {
    return { search: state.search, status: state.status, priority: state.priority, tags: state.tag,
      overdue: state.overdue ? "true" : undefined, sort_by: state.sort_by, order: state.order,
      limit: state.limit, offset: state.offset };
  }

  async function load() {
    const my = ++seq;
    list.setAttribute("aria-busy", "true");
    try {
      const { data, headers } = await api.requestWithHeaders("GET", "/api/tasks", undefined, query());
      if (my !== seq || destroyed) return;
      const rows = Array.isArray(data) ? data : [];
      const header = headers.get("X-Total-Count");
      const total = header !== null && header !== "" ? Number(header) : rows.length;
      if (!rows.length && total > 0 && state.offset > 0) {
        // the page emptied under us (deletions): show the last page there is
        state.offset = Math.max(0, Math.floor((total - 1) / state.limit) * state.limit);
        saveState(state);
        load();
        return;
      }
      loadError.hidden = true;
      render(rows, total);
    } catch (err) {
      if (my !== seq || destroyed) return;
      clear(loadError);
      loadError.append(h("p", {}, `Could not load tasks. ${err.message}`),
        h("button", { type: "button", id: "task-retry", class: "btn", onclick: () => load() }, "Try again"));
      loadError.hidden = false;
    } finally {
      if (my === seq && !destroyed) list.removeAttribute("aria-busy");
    }
  }
  const refetchSoon = debounce(() => { if (!destroyed) load(); }, 150);

  async function loadTags() {
    try {
      const data = await api.request("GET", "/api/tags");
      if (destroyed) return;
      tags = Array.isArray(data) ? data : [];
      const keep = state.tag;
      clear(tagFilter);
      tagFilter.append(h("option", { value: "" }, "Any tag"),
        ...tags.map((t) => h("option", { value: String(t.id) }, t.name)));
      if (keep && !tags.some((t) => String(t.id) === keep)) {
        state.tag = "";
        changed();
      } else {
        tagFilter.value = keep;
      }
    } catch (err) {
      if (!destroyed) toast(`Could not load tags. ${err.message}`, "error");
    }
  }

  function changed() {
    saveState(state);
    syncControls();
    load();
  }

  function syncControls() {
    if (search.value.trim() !== state.search) search.value = state.search;
    status.value = state.status;
    priority.value = state.priority;
    tagFilter.value = state.tag;
    overdue.checked = state.overdue;
    sortBy.value = state.sort_by;
    pageSize.value = String(state.limit);
    clear(sortOrder);
    const asc = state.order === "asc";
    sortOrder.append(icon(asc ? "up" : "down"), asc ? "Asc" : "Desc");
    sortOrder.setAttribute("aria-label", asc ? "Sort order: ascending (switch to descending)"
      : "Sort order: descending (switch to ascending)");
    sortOrder.dataset.order = state.order;
    clearBtn.hidden = !filtersActive(state);
    const n = [state.status !== "all", state.priority, state.tag, state.overdue].filter(Boolean).length;
    moreFilters.textContent = n ? `Filters (${n})` : "Filters";
  }

  function resetFilters() {
    Object.assign(state, { search: "", status: "all", priority: "", tag: "", overdue: false, offset: 0 });
    changed();
    search.focus();
  }

  function goPage(dir) {
    state.offset = Math.max(0, state.offset + dir * state.limit);
    changed();
  }

  // ---- rendering ----
  function render(rows, total, { force = false } = {}) {
    // a refetch that finds what is shown (an event for our own change) leaves the DOM alone
    const key = `${total}:${JSON.stringify(rows)}`;
    if (!force && key === lastKey) return;
    lastKey = key;
    lastRows = rows;
    const focus = rememberFocus();
    clear(list);
    const now = Date.now();
    for (const task of rows) list.appendChild(row(task, now));
    renderEmpty(total);
    const from = rows.length ? state.offset + 1 : 0;
    const to = state.offset + rows.length;
    pageInfo.textContent = total ? `${from}–${to} of ${total}` : "";
    pager.hidden = total === 0;
    prev.disabled = state.offset <= 0;
    next.disabled = to >= total;
    list.dataset.total = String(total);
    restoreFocus(focus);
  }

  function renderEmpty(total) {
    clear(empty);
    empty.hidden = total !== 0;
    if (total !== 0) return;
    if (filtersActive(state)) {
      empty.append(h("p", { class: "empty-title" }, "No tasks match these filters."),
        h("button", { type: "button", id: "empty-clear-filters", class: "btn", onclick: resetFilters }, "Clear filters"));
    } else {
      empty.append(h("p", { class: "empty-title" }, "No tasks yet."),
        h("p", { class: "muted" }, "Add your first task and it will show up here."),
        h("button", { type: "button", id: "empty-new-task", class: "btn btn-primary", onclick: () => edit(null) },
          icon("plus"), "New task"));
    }
  }

  function row(task, now) {
    const late = isOverdue(task, now);
    const id = String(task.id);
    const check = h("input", { type: "checkbox", id: `task-check-${id}`, class: "task-check",
      "data-test": "task-toggle", checked: task.completed, "aria-label": `Completed: ${task.title}` });
    check.addEventListener("change", () => toggle(task, check));
    const meta = h("div", { class: "task-meta" },
      h("span", { class: `chip prio prio-${task.priority}`, "data-test": "task-priority", "data-priority": task.priority },
        PRIORITY_LABEL[task.priority] || task.priority),
      task.due_date ? h("span", { class: "meta-item task-due", "data-test": "task-due", title: relativeTime(task.due_date) },
        icon("calendar"), `Due ${formatDateTime(task.due_date)}`) : null,
      late ? h("span", { class: "chip chip-overdue", "data-test": "task-overdue" }, "Overdue") : null,
      recurrenceText(task) ? h("span", { class: "meta-item", "data-test": "task-recurrence" }, icon("repeat"),
        recurrenceText(task)) : null,
      task.reminder_at ? h("span", { class: "meta-item", "data-test": "task-reminder" }, icon("bell"),
        task.reminder_sent ? "Reminder sent" : `Reminder ${formatDateTime(task.reminder_at)}`) : null,
      (task.tags || []).map((t) => tagChip(t)));
    return h("li", {
      class: `task-row${task.completed ? " is-completed" : ""}${late ? " is-overdue" : ""} prio-edge-${task.priority}`,
      "data-test": "task-row", "data-task-id": id, "data-completed": String(Boolean(task.completed)),
      "data-overdue": String(late),
    },
    h("div", { class: "task-check-wrap" }, check),
    h("div", { class: "task-main" },
      h("span", { class: "task-title", "data-test": "task-title" }, task.title),
      task.description ? h("p", { class: "task-desc", "data-test": "task-description" }, task.description) : null,
      meta),
    h("div", { class: "task-actions" },
      h("button", { type: "button", class: "icon-btn", "data-test": "task-edit", "aria-label": `Edit “${task.title}”`,
        title: "Edit", onclick: () => edit(task) }, icon("edit")),
      h("button", { type: "button", class: "icon-btn icon-btn-danger", "data-test": "task-delete",
        "aria-label": `Delete “${task.title}”`, title: "Delete", onclick: () => remove(task) }, icon("trash"))));
  }

  // A re-render must not throw keyboard focus away: note which row's control had it.
  function rememberFocus() {
    const el = document.activeElement;
    if (!el || !list.contains(el)) return null;
    const r = el.closest("[data-task-id]");
    return r ? { id: r.dataset.taskId, test: el.dataset.test, index: [...list.children].indexOf(r) } : null;
  }

  function restoreFocus(f) {
    if (!f) return;
    const sel = `[data-test="${f.test}"]`;
    let target = list.querySelector(`[data-task-id="${CSS.escape(f.id)}"] ${sel}`);
    if (!target && list.children.length) {
      const r = list.children[Math.min(f.index, list.children.length - 1)];
      target = r.querySelector(sel);
    }
    (target || view.querySelector("#tasks-heading")).focus();
  }

  // ---- actions ----
  async function toggle(task, check) {
    if (pending.has(task.id)) {
      check.checked = !check.checked;
      return;
    }
    const completed = check.checked;
    pending.add(task.id);
    check.setAttribute("aria-busy", "true");
    check.closest(".task-row")?.classList.toggle("is-completed", completed);
    try {
      const res = await api.request("PATCH", `/api/tasks/${task.id}/complete`, { completed });
      if (res && res.next_task) {
        const due = res.next_task.due_date;
        toast(due ? `Completed “${task.title}”. The next one is due ${formatDateTime(due)}.`
          : `Completed “${task.title}”. The next one was created.`, "success");
      }
    } catch (err) {
      if (!destroyed) {
        check.checked = !completed;
        check.closest(".task-row")?.classList.toggle("is-completed", !completed);
      }
      toast(err.message, "error");
    } finally {
      pending.delete(task.id);
      check.removeAttribute("aria-busy");
      if (!destroyed) refetchSoon();
    }
  }

  async function remove(task) {
    const ok = await confirmDialog({ title: "Delete this task?",
      message: `“${task.title}” will be deleted. This cannot be undone.`, confirmLabel: "Delete task", danger: true });
    if (!ok || destroyed) return;
    try {
      await api.request("DELETE", `/api/tasks/${task.id}`);
      toast(`Deleted “${task.title}”.`, "success");
    } catch (err) {
      toast(err.status === 404 ? "That task was already deleted." : err.message, "error");
    }
    if (!destroyed) load();
  }

  function edit(task) {
    openTaskDialog(ctx, { task, tags, onSaved: (saved, created) => {
      toast(created ? `Created “${saved.title}”.` : `Saved “${saved.title}”.`, "success");
      if (!destroyed) load();
    } });
  }

  function manageTags() {
    openTagManager(ctx, { onChange: () => { if (!destroyed) { loadTags(); refetchSoon(); } } });
  }

  // ---- live ----
  for (const type of LIVE_TYPES) unsubs.push(live.on(type, refetchSoon));
  unsubs.push(live.onResync(() => { if (!destroyed) { loadTags(); refetchSoon(); } }));
  // overdue marks move with the clock: re-render each minute without a request
  const tick = setInterval(() => { if (lastRows.length && !document.querySelector("dialog[open]")) {
    render(lastRows, Number(list.dataset.total || 0), { force: true });
  } }, 60000);

  loadTags();
  load();

  return {
    unmount() {
      destroyed = true;
      refetchSoon.cancel();
      onSearch.cancel();
      clearInterval(tick);
      for (const off of unsubs) off();
      clear(container);
    },
  };
}

// ---- the create / edit dialog -------------------------------------------------------------------

// Opens the task form: task null creates one. onSaved(task, created) after the API accepted it.
export function openTaskDialog(ctx, { task = null, tags = [], onSaved } = {}) {
  const creating = !task;
  const t = task || {};
  const rule = t.is_recurring && t.recurrence_rule ? t.recurrence_rule : "";
  const title = h("input", { id: "task-title", name: "title", type: "text", required: true, maxlength: 255,
    value: t.title || "", autocomplete: "off" });
  const description = h("textarea", { id: "task-description", name: "description", rows: 3, maxlength: 10000 });
  description.value = t.description || "";
  const priority = select("task-priority", "priority",
    [["low", "Low"], ["medium", "Medium"], ["high", "High"], ["urgent", "Urgent"]], t.priority || "medium");
  const due = h("input", { id: "task-due", name: "due_date", type: "datetime-local", value: toLocalInput(t.due_date) });
  const reminder = h("input", { id: "task-reminder", name: "reminder_at", type: "datetime-local",
    value: toLocalInput(t.reminder_at) });
  const recurrence = select("task-recurrence", "recurrence_rule", [["", "Does not repeat"], ["daily", "Daily"],
    ["weekly", "Weekly"], ["monthly", "Monthly"], ["custom", "Every N days"]], rule);
  const interval = h("input", { id: "task-interval", name: "recurrence_interval", type: "number", min: 1, max: 36500,
    step: 1, inputmode: "numeric", value: t.recurrence_interval || 1 });
  const intervalField = field("Repeat every (days)", interval, { className: "field-interval" });
  const syncInterval = () => { intervalField.hidden = recurrence.value !== "custom"; };
  recurrence.addEventListener("change", syncInterval);
  syncInterval();

  const chosen = new Set((t.tags || []).map((x) => x.id));
  const tagBoxes = tags.map((tag) => {
    const box = h("input", { type: "checkbox", id: `task-tag-${tag.id}`, name: "tag_ids", value: String(tag.id),
      "data-test": "task-tag-option", checked: chosen.has(tag.id) });
    return h("div", { class: "tag-option" }, box, h("label", { for: box.id }, tagChip(tag)));
  });
  const tagSet = h("fieldset", { class: "field tag-field", id: "task-tags" },
    h("legend", {}, "Tags"),
    tagBoxes.length ? h("div", { class: "tag-options" }, tagBoxes)
      : h("p", { class: "muted" }, "No tags yet. Create them with the Tags button."),
    h("p", { class: "field-error", "data-error-for": "tag_ids", "data-test": "field-error", hidden: true }));

  const formError = h("p", { id: "task-form-error", class: "form-error", role: "alert", "data-test": "form-error",
    hidden: true });
  const save = h("button", { type: "submit", id: "task-save", class: "btn btn-primary" },
    creating ? "Create task" : "Save changes");
  const cancel = h("button", { type: "button", id: "task-cancel", class: "btn", onclick: () => dlg.close("cancel") },
    "Cancel");

  const form = h("form", { id: "task-form", class: "dialog-body form-grid", novalidate: true, onsubmit: submit },
    formError,
    field("Title", title, { className: "span-2" }),
    field("Description", description, { className: "span-2" }),
    field("Priority", priority),
    field("Due date", due),
    field("Repeat", recurrence),
    intervalField,
    field("Reminder", reminder, { hint: "When to remind you", className: "span-2 field-reminder" }),
    h("div", { class: "span-2" }, tagSet),
    h("div", { class: "dialog-actions span-2" }, cancel, save));

  const dlg = openDialog({ id: "task-dialog", title: creating ? "New task" : "Edit task", body: form,
    className: "dialog-wide" });
  title.focus();

  async function submit(e) {
    e.preventDefault();
    clearFormErrors(form, formError);
    const problems = [];
    if (!title.value.trim()) problems.push({ field: "title", message: "Enter a title." });
    if (due.value && !fromLocalInput(due.value)) problems.push({ field: "due_date", message: "Enter a valid date and time." });
    if (reminder.value && !fromLocalInput(reminder.value)) {
      problems.push({ field: "reminder_at", message: "Enter a valid date and time." });
    }
    const n = Number(interval.value);
    if (recurrence.value === "custom" && !(Number.isInteger(n) && n >= 1 && n <= 36500)) {
      problems.push({ field: "recurrence_interval", message: "Enter a whole number of days from 1 to 36500." });
    }
    if (problems.length) {
      showFormErrors(form, { message: "Please fix the highlighted fields.", fields: problems }, formError);
      return;
    }
    const body = {
      title: title.value.trim(),
      description: description.value.trim() || null,
      priority: priority.value,
      due_date: fromLocalInput(due.value),
      reminder_at: fromLocalInput(reminder.value),
      is_recurring: recurrence.value !== "",
      recurrence_rule: recurrence.value || null,
      recurrence_interval: recurrence.value === "custom" ? n : null,
      tag_ids: [...form.querySelectorAll('input[name="tag_ids"]:checked')].map((b) => Number(b.value)),
    };
    if (creating) for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
    save.disabled = true;
    save.setAttribute("aria-busy", "true");
    try {
      const saved = creating ? await ctx.api.request("POST", "/api/tasks", body)
        : await ctx.api.request("PUT", `/api/tasks/${task.id}`, body);
      dlg.close("saved");
      if (onSaved) onSaved(saved, creating);
    } catch (err) {
      if (!dlg.open) return;
      showFormErrors(form, err, formError);
    } finally {
      save.disabled = false;
      save.removeAttribute("aria-busy");
    }
  }
  return dlg;
}
