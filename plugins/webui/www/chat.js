// Placeholder until the assistant view lands: the contract's mount() with a heading.
export function mount(container, ctx) {
  const { h, clear } = ctx.ui;
  clear(container);
  container.appendChild(h("section", { class: "view" }, h("h1", {}, "Assistant")));
  return { unmount() { clear(container); } };
}
