import type { Stats, Task, TaskStatus } from "../../client/types.js";
import { el, svg, throttle, ui } from "./dom.js";
import { countEvent, type DepthSample, metrics, MINUTE_MS, niceMax, resetMetrics, sampleDepth, type Throughput, throughputSeries, WINDOW_MINUTES } from "./metrics.js";
import { state } from "./state.js";

/*
 * The charts, drawn as SVG with DOM calls (no library, nothing the CSP or Trusted Types would
 * refuse). Each has a fixed viewBox and scales to its box; colours come from the stylesheet.
 */

const W = 300;
const H = 132;
const LEFT = 32;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 18;
const PLOT_W = W - LEFT - RIGHT;
const PLOT_H = H - TOP - BOTTOM;
const BAR_ROW = 22;
const LABEL_W = 112;
const MAX_BARS = 8;

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const clock = (at: number) => new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/** The span the time charts show: from the page's start, at least 5 and at most 30 minutes. */
const spanMs = (now: number) => Math.min(WINDOW_MINUTES * MINUTE_MS, Math.max(5 * MINUTE_MS, now - metrics.since));

function frame(yMax: number, from: string, to: string, label: string): SVGSVGElement {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label });
  for (const fraction of [0, 0.5, 1]) {
    const y = TOP + PLOT_H * (1 - fraction);
    root.append(
      svg("line", { x1: LEFT, x2: W - RIGHT, y1: y, y2: y, class: "grid" }),
      svg("text", { x: LEFT - 4, y: y + 3.5, class: "tick", "text-anchor": "end" }, String(yMax * fraction)),
    );
  }
  root.append(
    svg("text", { x: LEFT, y: H - 4, class: "tick" }, from),
    svg("text", { x: W - RIGHT, y: H - 4, class: "tick", "text-anchor": "end" }, to),
  );
  return root;
}

function legend(items: [name: string, text: string][]): HTMLUListElement {
  const list = el("ul", "legend");
  for (const [name, text] of items) {
    const item = el("li");
    item.append(el("span", `swatch swatch-${name}`), text);
    list.append(item);
  }
  return list;
}

function drawThroughput(now: number): void {
  const minutes = Math.ceil(spanMs(now) / MINUTE_MS);
  const series = throughputSeries(now).slice(-minutes);
  const yMax = niceMax(Math.max(...series.flatMap((m) => [m.created, m.completed, m.failed])));
  const root = frame(yMax, `−${minutes} min`, "now", "Tasks created, completed and failed per minute");
  const x = (i: number) => LEFT + (PLOT_W * i) / Math.max(1, series.length - 1);
  const y = (v: number) => TOP + PLOT_H * (1 - v / yMax);
  const totals: Throughput = { created: 0, completed: 0, failed: 0 };
  for (const kind of ["created", "completed", "failed"] as const) {
    const d = series.map((m, i) => `${i ? "L" : "M"}${x(i).toFixed(1)} ${y(m[kind]).toFixed(1)}`).join("");
    root.append(svg("path", { d, class: `series series-${kind}` }));
    totals[kind] = series.reduce((sum, m) => sum + m[kind], 0);
  }
  ui.charts.throughput.replaceChildren(
    root,
    legend([["created", `${totals.created} created`], ["completed", `${totals.completed} completed`], ["failed", `${totals.failed} failed`]]),
  );
}

/** A step line through the samples, from the window's start (or the first sample) to now. */
function stepPath(samples: DepthSample[], value: (s: DepthSample) => number, x: (at: number) => number, y: (v: number) => number, now: number): string {
  const [first, ...rest] = samples;
  if (!first) return "";
  let d = `M${x(first.at).toFixed(1)} ${y(value(first)).toFixed(1)}`;
  for (const sample of rest) d += `H${x(sample.at).toFixed(1)}V${y(value(sample)).toFixed(1)}`;
  return `${d}H${x(now).toFixed(1)}`;
}

function drawDepth(now: number): void {
  const span = spanMs(now);
  const start = now - span;
  // The sample in force at the window's start begins the line there.
  const samples = metrics.depth.map((s) => (s.at < start ? { ...s, at: start } : s));
  const last = samples.at(-1);
  const yMax = niceMax(Math.max(0, ...samples.flatMap((s) => [s.active, s.waiting, s.limit])));
  const root = frame(yMax, clock(start), "now", "Slots in use and tasks waiting, against the namespace's limit");
  const x = (at: number) => LEFT + (PLOT_W * (at - start)) / span;
  const y = (v: number) => TOP + PLOT_H * (1 - v / yMax);
  // The limit is a setting, older than the page: its line spans the whole window.
  const first = samples[0];
  const limits = first ? [{ ...first, at: start }, ...samples.slice(1)] : [];
  for (const [name, value] of [["limit", (s: DepthSample) => s.limit], ["waiting", (s: DepthSample) => s.waiting], ["active", (s: DepthSample) => s.active]] as const) {
    const d = stepPath(name === "limit" ? limits : samples, value, x, y, now);
    if (d) root.append(svg("path", { d, class: `series series-${name}` }));
  }
  ui.charts.depth.replaceChildren(
    root,
    legend(
      last
        ? [["active", `${last.active} of ${last.limit} slots in use`], ["waiting", `${last.waiting} waiting`], ["limit", "limit"]]
        : [["active", "slots in use"], ["waiting", "waiting"], ["limit", "limit"]],
    ),
  );
}

type Segment = [name: string, value: number];

/** Horizontal bars, one row per label, each made of segments laid end to end. */
function bars(rows: { label: string; segments: Segment[] }[], label: string): SVGSVGElement {
  const total = (segments: Segment[]) => segments.reduce((sum, [, v]) => sum + v, 0);
  const max = Math.max(1, ...rows.map((r) => total(r.segments)));
  const height = rows.length * BAR_ROW + 4;
  const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, class: "chart bars", role: "img", "aria-label": label });
  const room = W - LABEL_W - 40;
  rows.forEach((row, i) => {
    const y = 2 + i * BAR_ROW;
    // The title shows the whole label (and the numbers) on hover, where the label is clipped.
    const detail = row.segments.filter(([, v]) => v > 0).map(([name, v]) => `${v} ${name}`).join(", ");
    const group = svg("g", { class: "bar-row" });
    group.append(svg("title", {}, `${row.label}: ${detail}`), svg("text", { x: LABEL_W - 6, y: y + 14, class: "bar-label", "text-anchor": "end" }, clip(row.label, 18)));
    let x = LABEL_W;
    for (const [name, value] of row.segments) {
      if (value <= 0) continue;
      const width = Math.max(2, (room * value) / max);
      group.append(svg("rect", { x: x.toFixed(1), y: y + 3, width: width.toFixed(1), height: BAR_ROW - 8, rx: 2, class: `bar bar-${name}` }));
      x += width;
    }
    group.append(svg("text", { x: x + 5, y: y + 14, class: "bar-count" }, String(total(row.segments))));
    root.append(group);
  });
  return root;
}

function drawFailures(): void {
  const rows = [...metrics.failures].sort((a, b) => b[1] - a[1]).slice(0, MAX_BARS);
  ui.charts.failures.replaceChildren(
    rows.length
      ? bars(rows.map(([code, count]) => ({ label: code, segments: [["failed", count]] })), "Failed tasks by error code")
      : el("p", "hint", `No failures since ${clock(metrics.since)}.`),
  );
}

const GROUPS: Record<TaskStatus, string> = { created: "waiting", queued: "active", processing: "active", completed: "completed", failed: "failed", cancelled: "cancelled" };
const GROUP_ORDER = ["active", "waiting", "completed", "failed", "cancelled"];

/** Per task type, the tasks the page holds (the list it loaded and every event since) by status. */
function drawTypes(): void {
  const byType = new Map<string, Map<string, number>>();
  for (const { task } of state.tasks.values()) countTask(byType, task);
  const rows = [...byType]
    .map(([type, groups]) => ({ label: type, segments: GROUP_ORDER.map((g): Segment => [g, groups.get(g) ?? 0]) }))
    .sort((a, b) => b.segments.reduce((s, [, v]) => s + v, 0) - a.segments.reduce((s, [, v]) => s + v, 0))
    .slice(0, MAX_BARS);
  ui.charts.types.replaceChildren(
    rows.length ? bars(rows, "Tasks shown, by task type and status") : el("p", "hint", "No tasks yet."),
    legend(GROUP_ORDER.map((g) => [g, g])),
  );
}

function countTask(byType: Map<string, Map<string, number>>, task: Task): void {
  const groups = byType.get(task.task_type) ?? new Map<string, number>();
  const group = GROUPS[task.status];
  groups.set(group, (groups.get(group) ?? 0) + 1);
  byType.set(task.task_type, groups);
}

function drawCharts(): void {
  if (ui.board.hidden) return;
  const now = Date.now();
  ui.since.dateTime = new Date(metrics.since).toISOString();
  ui.since.textContent = clock(metrics.since);
  drawThroughput(now);
  drawDepth(now);
  drawFailures();
  drawTypes();
}

export const chartsSoon = throttle(drawCharts, 500);

/** Counts a live event and redraws. */
export function recordEvent(type: string, task: Task, at: number): void {
  countEvent(type, task, Math.min(at, Date.now()));
  chartsSoon();
}

export function recordStats(stats: Stats): void {
  sampleDepth(stats);
  chartsSoon();
}

export function resetCharts(): void {
  resetMetrics();
  chartsSoon();
}

// The time axes move on even when nothing happens.
setInterval(chartsSoon, 15_000);
