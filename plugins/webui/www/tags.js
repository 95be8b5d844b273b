// Tag management: a dialog opened from the tasks view to list, create, rename, recolour and delete
// tags. onChange() runs after every change, so the tasks view reloads its tags and rows.

import { h, clear, toast, openDialog, confirmDialog, field, showFormErrors, clearFormErrors, tagChip, icon } from "./ui.js";

const DEFAULT_COLOR = "#6366f1";

// A colour input wants lower-case "#rrggbb"; the API may hold either case.
function colorValue(c) {
  return /^#[0-9a-f]{6}$/i.test(c || "") ? c.toLowerCase() : DEFAULT_COLOR;
}

export function openTagManager(ctx, { onChange } = {}) {
  const { api } = ctx;
  let tags = [];
  let editing = null; // the id of the tag whose row is a form

  const name = h("input", { id: "tag-name", name: "name", type: "text", maxlength: 50, required: true,
    autocomplete: "off", placeholder: "e.g. Work" });
  const color = h("input", { id: "tag-color", name: "color", type: "color", value: DEFAULT_COLOR });
  const createError = h("p", { id: "tag-form-error", class: "form-error", role: "alert", "data-test": "form-error",
    hidden: true });
  const createBtn = h("button", { type: "submit", id: "tag-create", class: "btn btn-primary" }, icon("plus"), "Add tag");
  const createForm = h("form", { id: "tag-create-form", class: "tag-create", novalidate: true, onsubmit: create },
    createError,
    h("div", { class: "tag-create-row" },
      field("Name", name, { className: "tag-name-field" }),
      field("Colour", color, { className: "tag-color-field" }),
      h("div", { class: "tag-create-action" }, createBtn)));
  const list = h("ul", { id: "tag-list", class: "tag-list", "aria-label": "Your tags" });
  const empty = h("p", { id: "tag-empty", class: "muted", hidden: true }, "No tags yet. Add one above.");
  const done = h("button", { type: "button", id: "tags-done", class: "btn", onclick: () => dlg.close("done") }, "Done");

  const dlg = openDialog({ id: "tags-dialog", title: "Tags", className: "dialog-wide",
    body: h("div", { class: "dialog-body" }, createForm,
      h("h3", { class: "subhead" }, "Your tags"), list, empty,
      h("div", { class: "dialog-actions" }, done)) });
  name.focus();

  function changed() {
    if (onChange) onChange();
  }

  async function load() {
    try {
      const data = await api.request("GET", "/api/tags");
      tags = Array.isArray(data) ? data : [];
      render();
    } catch (err) {
      toast(`Could not load tags. ${err.message}`, "error");
    }
  }

  function render() {
    const had = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.closest("[data-tag-id]")?.dataset.tagId : null;
    clear(list);
    for (const tag of tags) list.appendChild(editing === tag.id ? editRow(tag) : viewRow(tag));
    empty.hidden = tags.length > 0;
    if (had) {
      const back = list.querySelector(`[data-tag-id="${CSS.escape(had)}"] [data-test="tag-edit"]`);
      (back || name).focus();
    }
  }

  function viewRow(tag) {
    return h("li", { class: "tag-row", "data-test": "tag-row", "data-tag-id": String(tag.id) },
      tagChip(tag),
      h("span", { class: "tag-color-code muted" }, colorValue(tag.color)),
      h("div", { class: "tag-row-actions" },
        h("button", { type: "button", class: "icon-btn", "data-test": "tag-edit", "aria-label": `Edit tag “${tag.name}”`,
          title: "Edit", onclick: () => { editing = tag.id; render(); list.querySelector("[data-test=tag-edit-name]")?.focus(); } },
        icon("edit")),
        h("button", { type: "button", class: "icon-btn icon-btn-danger", "data-test": "tag-delete",
          "aria-label": `Delete tag “${tag.name}”`, title: "Delete", onclick: () => remove(tag) }, icon("trash"))));
  }

  function editRow(tag) {
    const id = tag.id;
    const n = h("input", { id: `tag-edit-name-${id}`, name: "name", type: "text", maxlength: 50, required: true,
      value: tag.name, "data-test": "tag-edit-name", autocomplete: "off" });
    const c = h("input", { id: `tag-edit-color-${id}`, name: "color", type: "color", value: colorValue(tag.color),
      "data-test": "tag-edit-color" });
    const error = h("p", { class: "form-error", role: "alert", "data-test": "form-error", hidden: true });
    const stop = () => { editing = null; render(); list.querySelector(`[data-tag-id="${id}"] [data-test=tag-edit]`)?.focus(); };
    const form = h("form", { class: "tag-edit-form", "data-test": "tag-edit-form", novalidate: true,
      onkeydown: (e) => { if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); stop(); } },
      onsubmit: async (e) => {
        e.preventDefault();
        clearFormErrors(form, error);
        if (!n.value.trim()) {
          showFormErrors(form, { message: "Enter a name.", fields: [{ field: "name", message: "Enter a name." }] }, error);
          return;
        }
        try {
          await api.request("PUT", `/api/tags/${id}`, { name: n.value.trim(), color: c.value });
          editing = null;
          await load();
          list.querySelector(`[data-tag-id="${id}"] [data-test=tag-edit]`)?.focus();
          changed();
        } catch (err) {
          if (err.status === 400 && !err.fields.length) err.fields = [{ field: "name", message: err.message }];
          showFormErrors(form, err, error);
          if (err.status === 404) { editing = null; load(); changed(); }
        }
      } },
    error,
    h("div", { class: "tag-edit-fields" },
      field("Name", n, { className: "tag-name-field" }),
      field("Colour", c, { className: "tag-color-field" }),
      h("div", { class: "tag-edit-actions" },
        h("button", { type: "submit", class: "btn btn-primary", "data-test": "tag-save" }, "Save"),
        h("button", { type: "button", class: "btn", "data-test": "tag-cancel", onclick: stop }, "Cancel"))));
    return h("li", { class: "tag-row is-editing", "data-test": "tag-row", "data-tag-id": String(id) }, form);
  }

  async function create(e) {
    e.preventDefault();
    clearFormErrors(createForm, createError);
    if (!name.value.trim()) {
      showFormErrors(createForm, { message: "Enter a name.", fields: [{ field: "name", message: "Enter a name for the tag." }] },
        createError);
      return;
    }
    createBtn.disabled = true;
    try {
      const tag = await api.request("POST", "/api/tags", { name: name.value.trim(), color: color.value });
      name.value = "";
      color.value = DEFAULT_COLOR;
      toast(`Tag “${tag.name}” added.`, "success");
      await load();
      changed();
    } catch (err) {
      // 400 here is the duplicate name: say so next to the name
      if (err.status === 400 && !err.fields.length) err.fields = [{ field: "name", message: err.message }];
      showFormErrors(createForm, err, createError);
    } finally {
      createBtn.disabled = false;
      name.focus();
    }
  }

  async function remove(tag) {
    const ok = await confirmDialog({ title: "Delete this tag?",
      message: `“${tag.name}” will be removed from every task that has it. The tasks stay.`,
      confirmLabel: "Delete tag", danger: true });
    if (!ok) return;
    try {
      await api.request("DELETE", `/api/tags/${tag.id}`);
      toast(`Tag “${tag.name}” deleted.`, "success");
    } catch (err) {
      if (err.status !== 404) toast(err.message, "error");
    }
    await load();
    if (!list.contains(document.activeElement)) name.focus();
    changed();
  }

  load();
  return dlg;
}
