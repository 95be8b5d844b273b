// Analytics: GET /api/analytics/summary?days=N for 7, 30 or 90 days; the totals as cards and a
// chart of tasks created and completed per day, drawn here in SVG, with the same numbers as a
// table for those who cannot see the chart.
//
// The analytics plugin counts task events as it consumes them, a moment after the stream has
// pushed them to the page: a task event triggers a refetch after a short pause, and a second one
// a few seconds later, so the numbers catch up with the consumer.

import { h, toast, clear } from "./ui.js";
import { api, ApiError } from "./api.js";
import { live } from "./live.js";

const RANGES = [7, 30, 90];
const DEFAULT_DAYS = 30;
const STORE_KEY = "taskora.analytics.days";
const TASK_EVENTS = ["task.created", "task.completed", "task.deleted"];
const REFETCH_SOON_MS = 1000;
const REFETCH_LATER_MS = 5000;

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) {
    if (c == null || c === false) continue;
    el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

const numberFmt = new Intl.NumberFormat(undefined);
const percentFmt = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 });
// The API's dates are UTC days ("2026-02-04"): formatted in UTC so they do not shift a day.
const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const longDayFmt = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  month: "short",
  day: "numeric",
  year: "numeric",
  timeZone: "UTC",
});
const clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

function utcDate(s) {
  const [y, m, d] = String(s).split("-").map(Number);
  return new Date(Date.UTC(y, (m || 1) - 1, d || 1));
}
const shortDay = (s) => dayFmt.format(utcDate(s));
const longDay = (s) => longDayFmt.format(utcDate(s));

// Seconds as people say it: "45 s", "12 min", "3 h 20 min", "2 d 4 h". null -> "—".
export function humanDuration(seconds) {
  if (seconds == null || !Number.isFinite(Number(seconds))) return "—";
  let s = Math.max(0, Math.round(Number(seconds)));
  if (s < 60) return `${s} s`;
  let m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const d = Math.floor(m / 1440);
  m -= d * 1440;
  const hrs = Math.floor(m / 60);
  m -= hrs * 60;
  if (d > 0) return hrs ? `${d} d ${hrs} h` : `${d} d`;
  return m ? `${hrs} h ${m} min` : `${hrs} h`;
}

const plural = (n, one, many) => `${numberFmt.format(n)} ${n === 1 ? one : many}`;

// A round step for about `ticks` gridlines up to max (integers: counts).
function niceStep(max, ticks = 4) {
  if (max <= ticks) return 1;
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const f of [1, 2, 5, 10]) if (f * mag >= raw) return f * mag;
  return 10 * mag;
}

// ---- the chart ----------------------------------------------------------------------------

const PAD = { top: 12, right: 8, bottom: 30, left: 36 };

// The chart at the width it is shown (in CSS pixels, so its text keeps its size at any width).
function chart(days, rangeDays, width) {
  const W = Math.max(240, Math.round(width) || 640);
  const H = W < 480 ? 200 : 260;
  const n = days.length;
  const max = Math.max(0, ...days.map((d) => Math.max(d.created || 0, d.completed || 0)));
  const step = niceStep(max);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const slot = iw / Math.max(1, n);
  const y = (v) => PAD.top + ih - (v / top) * ih;

  const totalCreated = days.reduce((a, d) => a + (d.created || 0), 0);
  const totalCompleted = days.reduce((a, d) => a + (d.completed || 0), 0);
  let summary = `Tasks created and completed per day over the last ${rangeDays} days: ${plural(
    totalCreated,
    "task",
    "tasks",
  )} created, ${numberFmt.format(totalCompleted)} completed.`;
  if (max > 0) {
    const busiest = days.reduce((b, d) => ((d.created || 0) + (d.completed || 0) > (b.created || 0) + (b.completed || 0) ? d : b));
    summary += ` Busiest day ${longDay(busiest.date)}: ${busiest.created} created, ${busiest.completed} completed.`;
  }

  const root = svg("svg", {
    class: "an-chart-svg",
    viewBox: `0 0 ${W} ${H}`,
    width: W,
    height: H,
    role: "img",
    "aria-label": summary,
    "data-test": "an-chart-svg",
  });

  // y axis: gridlines and labels
  const grid = svg("g", { class: "an-grid" });
  for (let v = 0; v <= top; v += step) {
    const yy = y(v);
    grid.appendChild(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy, class: v === 0 ? "an-axis-line" : "an-grid-line" }));
    grid.appendChild(svg("text", { x: PAD.left - 6, y: yy + 4, class: "an-tick an-tick-y", "text-anchor": "end" }, numberFmt.format(v)));
  }
  root.appendChild(grid);

  // x axis labels: as many as fit (about one per 64 px), anchored on the last day (today)
  const fit = Math.max(2, Math.floor(iw / 64));
  const every = n <= fit ? 1 : Math.ceil(n / fit);
  const xlabels = svg("g", { class: "an-xlabels" });
  days.forEach((d, i) => {
    if ((n - 1 - i) % every !== 0) return;
    const cx = PAD.left + slot * (i + 0.5);
    xlabels.appendChild(svg("line", { x1: cx, x2: cx, y1: PAD.top + ih, y2: PAD.top + ih + 4, class: "an-axis-line" }));
    // a label at either end is aligned to stay inside the chart
    const anchor = cx > W - 28 ? "end" : cx < PAD.left + 20 ? "start" : "middle";
    const tx = anchor === "end" ? Math.min(W - 1, cx + 6) : anchor === "start" ? Math.max(1, cx - 6) : cx;
    xlabels.appendChild(svg("text", { x: tx, y: H - PAD.bottom + 20, class: "an-tick an-tick-x", "text-anchor": anchor }, shortDay(d.date)));
  });
  root.appendChild(xlabels);

  // bars: created and completed side by side in each day's slot
  const gap = Math.min(4, slot * 0.15);
  const bw = Math.min(28, Math.max(0.5, (slot - gap * 2) / 2));
  const bars = svg("g", { class: "an-bars" });
  days.forEach((d, i) => {
    const x0 = PAD.left + slot * (i + 0.5) - bw; // the pair centred in its slot
    const label = `${longDay(d.date)}: ${d.created} created, ${d.completed} completed`;
    const g = svg("g", { class: "an-day", "data-test": "an-day", "data-date": d.date });
    // the whole slot answers the pointer, so a day without bars has its tooltip too
    g.appendChild(svg("rect", { x: PAD.left + slot * i, y: PAD.top, width: slot, height: ih, class: "an-hit" }, svg("title", {}, label)));
    for (const [k, off] of [["created", 0], ["completed", bw]]) {
      const v = d[k] || 0;
      if (v <= 0) continue;
      g.appendChild(
        svg(
          "rect",
          { x: x0 + off, y: y(v), width: bw, height: Math.max(1, y(0) - y(v)), class: `an-bar an-bar-${k}` },
          svg("title", {}, `${longDay(d.date)}: ${v} ${k}`),
        ),
      );
    }
    bars.appendChild(g);
  });
  root.appendChild(bars);
  return { root, summary };
}

function dataTable(days) {
  const body = h("tbody");
  for (const d of days) {
    body.appendChild(
      h(
        "tr",
        {},
        h("th", { scope: "row" }, longDay(d.date)),
        h("td", {}, numberFmt.format(d.created || 0)),
        h("td", {}, numberFmt.format(d.completed || 0)),
        h("td", {}, numberFmt.format(d.reopened || 0)),
        h("td", {}, numberFmt.format(d.deleted || 0)),
        h("td", {}, numberFmt.format(d.chat_messages || 0)),
      ),
    );
  }
  return h(
    "details",
    { class: "an-table-details", id: "an-table-details" },
    h("summary", {}, "Show the numbers as a table"),
    h(
      "div",
      { class: "an-table-wrap" },
      h(
        "table",
        { class: "an-table", id: "an-table", "data-test": "an-table" },
        h("caption", {}, "Per day (UTC)"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Date"),
            h("th", { scope: "col" }, "Created"),
            h("th", { scope: "col" }, "Completed"),
            h("th", { scope: "col" }, "Reopened"),
            h("th", { scope: "col" }, "Deleted"),
            h("th", { scope: "col" }, "Chat messages"),
          ),
        ),
        body,
      ),
    ),
  );
}

function card(key, label, value, note) {
  return h(
    "li",
    { class: `an-card an-card-${key}`, "data-test": "an-card", "data-key": key },
    h("span", { class: "an-card-value", id: `an-total-${key}` }, value),
    h("span", { class: "an-card-label" }, label),
    note ? h("span", { class: "an-card-note" }, note) : null,
  );
}

// ---- the view -------------------------------------------------------------------------------

function storedDays() {
  try {
    const v = Number(localStorage.getItem(STORE_KEY));
    return RANGES.includes(v) ? v : DEFAULT_DAYS;
  } catch {
    return DEFAULT_DAYS;
  }
}

export function mount(container, ctx = {}) {
  const client = ctx.api || api;
  const events = ctx.live || live;
  let days = storedDays();
  let seq = 0;
  let alive = true;
  let data = null;
  const timers = new Set();

  const radios = RANGES.map((n) => {
    const input = h("input", {
      type: "radio",
      name: "an-days",
      id: `an-days-${n}`,
      value: String(n),
      class: "an-range-input",
      "data-test": "an-days",
    });
    input.checked = n === days;
    input.addEventListener("change", () => {
      if (!input.checked) return;
      days = n;
      try {
        localStorage.setItem(STORE_KEY, String(n));
      } catch {
        /* private mode: not remembered */
      }
      load();
    });
    return h("span", { class: "an-range-option" }, input, h("label", { for: `an-days-${n}`, class: "an-range-label" }, `${n} days`));
  });

  const status = h("p", { class: "an-status", id: "an-status", role: "status", "aria-live": "polite" });
  const retry = h("button", { type: "button", class: "an-retry", id: "an-retry" }, "Try again");
  retry.hidden = true;
  retry.addEventListener("click", () => load());
  const results = h("div", { class: "an-results", id: "an-results", "data-test": "an-results", "aria-busy": "true" });

  const view = h(
    "section",
    { class: "an-view", id: "analytics-view", "aria-labelledby": "an-title" },
    h(
      "div",
      { class: "an-head" },
      h("h1", { id: "an-title", class: "an-title" }, "Analytics"),
      h("fieldset", { class: "an-range", id: "an-range" }, h("legend", { class: "an-range-legend" }, "Period"), ...radios),
    ),
    h("div", { class: "an-status-row" }, status, retry),
    results,
  );
  container.appendChild(view);

  function render() {
    clear(results);
    if (!data) return;
    const t = data.totals || {};
    const rate = Number(data.completion_rate) || 0;
    const median = data.median_time_to_complete_s;
    results.appendChild(
      h(
        "ul",
        { class: "an-cards", id: "an-cards", "aria-label": `Totals, last ${days} days` },
        card("created", "Created", numberFmt.format(t.created || 0)),
        card("completed", "Completed", numberFmt.format(t.completed || 0)),
        card("reopened", "Reopened", numberFmt.format(t.reopened || 0)),
        card("deleted", "Deleted", numberFmt.format(t.deleted || 0)),
        card("chat_messages", "Chat messages", numberFmt.format(t.chat_messages || 0)),
        card("completion_rate", "Completion rate", percentFmt.format(rate), "completed ÷ created"),
        card("median", "Median time to complete", humanDuration(median), median == null ? "no completions" : null),
      ),
    );
    const list = Array.isArray(data.days) ? data.days : [];
    const box = h("div", { class: "an-chart-box", id: "an-chart-box" });
    const caption = h("figcaption", { class: "an-caption", id: "an-chart-summary" });
    results.appendChild(
      h(
        "figure",
        { class: "an-chart", id: "an-chart", "data-test": "an-chart" },
        h("h2", { class: "an-chart-title", id: "an-chart-title" }, "Created and completed per day"),
        h(
          "ul",
          { class: "an-legend", "aria-hidden": "true" },
          h("li", { class: "an-legend-item" }, h("span", { class: "an-swatch an-swatch-created" }), "Created"),
          h("li", { class: "an-legend-item" }, h("span", { class: "an-swatch an-swatch-completed" }), "Completed"),
        ),
        box,
        caption,
        dataTable(list),
      ),
    );
    chartState = { box, caption, list, range: days, width: 0 };
    drawChart();
  }

  // (Re)draws the chart when its box has a new width.
  let chartState = null;
  function drawChart() {
    if (!chartState) return;
    const width = Math.floor(chartState.box.clientWidth);
    if (width === chartState.width && chartState.box.firstChild) return;
    chartState.width = width;
    const { root, summary } = chart(chartState.list, chartState.range, width);
    clear(chartState.box);
    chartState.box.appendChild(root);
    chartState.caption.textContent = summary;
  }
  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(() => drawChart()) : null;
  if (resize) resize.observe(results);
  else window.addEventListener("resize", drawChart);

  async function load() {
    const mine = ++seq;
    const wanted = days;
    results.setAttribute("aria-busy", "true");
    status.classList.remove("an-status-error");
    status.textContent = data ? "Updating…" : "Loading…";
    retry.hidden = true;
    try {
      const r = await client.request("GET", "/api/analytics/summary", undefined, { days: String(wanted) });
      if (!alive || mine !== seq) return;
      data = r || {};
      render();
      status.textContent = `Last ${wanted} days (UTC), updated ${clockFmt.format(new Date())}`;
    } catch (err) {
      if (!alive || mine !== seq) return;
      const why = err instanceof ApiError || (err && err.message) ? err.message : "Something went wrong";
      status.textContent = `Could not load analytics: ${why}`;
      status.classList.add("an-status-error");
      retry.hidden = false;
      if (data) toast(`Analytics not updated: ${why}`, "error");
    } finally {
      if (alive && mine === seq) results.setAttribute("aria-busy", "false");
    }
  }

  // Coalesced refetches after task events: soon, then once more a little later.
  let soon = null;
  let later = null;
  function schedule() {
    if (!soon) {
      soon = setTimeout(() => {
        timers.delete(soon);
        soon = null;
        load();
      }, REFETCH_SOON_MS);
      timers.add(soon);
    }
    if (later) {
      clearTimeout(later);
      timers.delete(later);
    }
    later = setTimeout(() => {
      timers.delete(later);
      later = null;
      load();
    }, REFETCH_LATER_MS);
    timers.add(later);
  }

  const unsubs = TASK_EVENTS.map((t) => events.on(t, () => alive && schedule()));
  unsubs.push(events.onResync(() => alive && load()));

  load();

  return {
    unmount() {
      alive = false;
      for (const u of unsubs) if (typeof u === "function") u();
      for (const t of timers) clearTimeout(t);
      if (resize) resize.disconnect();
      else window.removeEventListener("resize", drawChart);
      timers.clear();
      view.remove();
    },
  };
}
