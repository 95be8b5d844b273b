// Placeholder until the notifications bell lands: the contract's mountBell(), showing nothing.
export function mountBell(container, ctx) {
  ctx.ui.clear(container);
  return { unmount() { ctx.ui.clear(container); } };
}
