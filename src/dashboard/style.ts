/**
 * The dashboard's stylesheet, served as its own file (no inline style under the CSP). The task
 * table is laid out by the width of its own box (a container query), so it fits whether the
 * detail panel takes part of the screen or not: all columns when wide, without Inputs (shown in
 * the panel) when medium, and one card per task on a phone.
 */
export const DASHBOARD_CSS = `:root {
  color-scheme: light dark;
  --fg: #1f2328; --muted: #656d76; --bg: #fff; --panel: #f6f8fa; --line: #d0d7de;
  --accent: #2563eb; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #8d96a0; --bg: #0d1117; --panel: #161b22; --line: #30363d; --accent: #4493f8; --ok: #3fb950; --bad: #f85149; --warn: #d29922; }
}
* { box-sizing: border-box; }
/* The script shows and hides parts with the hidden attribute: no display rule may override it. */
[hidden] { display: none !important; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
body { margin: 0; color: var(--fg); background: var(--bg); }
header { position: sticky; top: 0; z-index: 2; display: flex; gap: .3rem 1rem; align-items: center; flex-wrap: wrap; padding: .6rem 1rem; background: var(--panel); border-bottom: 1px solid var(--line); }
h1 { font-size: 1.1rem; margin: 0; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
h3 { font-size: .9rem; margin: 1rem 0 .3rem; }
main { padding: 1rem; }
button { font: inherit; padding: .25rem .7rem; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--accent); }
button:disabled { opacity: .6; cursor: default; }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); max-width: 100%; }
#forget { margin-left: auto; }
#connection::before { content: ""; display: inline-block; width: .6rem; height: .6rem; border-radius: 50%; margin-right: .35rem; background: var(--muted); }
#connection[data-state="live"]::before { background: var(--ok); }
#connection[data-state="connecting"]::before, #connection[data-state="reconnecting"]::before { background: var(--warn); }
#connection[data-state="error"]::before { background: var(--bad); }
#counts { color: var(--muted); font-variant-numeric: tabular-nums; }
#counts b { color: var(--fg); }
#key-form { max-width: 28rem; margin: 3rem auto; display: grid; gap: .5rem; }
.hint { color: var(--muted); font-weight: normal; }
.error { color: var(--bad); white-space: pre-wrap; }
.error:empty { display: none; }

/* Status icons (SVG): colour through currentColor; the mark inside a disc is the page's background. */
.icon { width: 1rem; height: 1rem; flex: none; vertical-align: -.18em; margin-right: .35rem; --icon-mark: var(--bg); }
.icon-created { color: var(--muted); }
.icon-queued { color: var(--warn); }
.icon-processing { color: var(--accent); animation: spin 1.2s linear infinite; }
.icon-completed { color: var(--ok); }
.icon-failed { color: var(--bad); }
.icon-cancelled { color: var(--muted); }
@keyframes spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .icon-processing { animation: none; } }

/* Charts */
#charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(17rem, 1fr)); gap: .8rem; }
#charts figure { margin: 0; padding: .5rem .7rem .6rem; border: 1px solid var(--line); border-radius: 8px; min-width: 0; }
#charts figcaption { font-weight: 600; font-size: .85rem; margin-bottom: .25rem; }
.charts-note { margin: .3rem 0 1rem; font-size: .8rem; }
.chart { display: block; width: 100%; height: auto; overflow: visible; }
.chart-box .hint { margin: .4rem 0; font-size: .85rem; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .tick { fill: var(--muted); font-size: 11px; }
.chart .series { fill: none; stroke-width: 2; stroke-linejoin: round; }
.series-created, .series-active { stroke: var(--accent); }
.series-completed { stroke: var(--ok); }
.series-failed { stroke: var(--bad); }
.series-waiting { stroke: var(--warn); }
.chart .series-limit { stroke: var(--muted); stroke-width: 1.5; stroke-dasharray: 5 3; }
.chart .bar-label, .chart .bar-count { fill: var(--fg); font-size: 12px; }
.bar-active { fill: var(--accent); }
.bar-waiting { fill: var(--warn); }
.bar-completed { fill: var(--ok); }
.bar-failed { fill: var(--bad); }
.bar-cancelled { fill: var(--muted); }
.legend { list-style: none; padding: 0; margin: .3rem 0 0; display: flex; flex-wrap: wrap; gap: .1rem .8rem; font-size: .8rem; color: var(--muted); }
.swatch { display: inline-block; width: .7rem; height: .7rem; border-radius: 2px; margin-right: .3rem; vertical-align: -.05em; }
.swatch-created, .swatch-active { background: var(--accent); }
.swatch-completed { background: var(--ok); }
.swatch-failed { background: var(--bad); }
.swatch-waiting { background: var(--warn); }
.swatch-cancelled { background: var(--muted); }
.swatch-limit { height: 0; border-top: 2px dashed var(--muted); border-radius: 0; vertical-align: .25em; }

/* The task table */
#board { container: board / inline-size; min-width: 0; }
#filters { display: flex; gap: .6rem 1rem; align-items: end; flex-wrap: wrap; margin-bottom: .8rem; }
#filters label { display: grid; gap: .2rem; color: var(--muted); font-size: .85rem; }
#tasks { width: 100%; border-collapse: collapse; table-layout: fixed; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: .85rem; border-bottom: 1px solid var(--line); padding: .3rem .5rem; }
td { border-bottom: 1px solid var(--line); padding: .4rem .5rem; vertical-align: top; overflow-wrap: anywhere; }
th.status { width: 8.5rem; }
th.task { width: 13rem; }
th.inputs { width: 22%; }
th.created { width: 7.5rem; }
th.actions { width: 6.5rem; }
tbody tr { cursor: pointer; }
tbody tr:hover, tbody tr[aria-selected="true"] { background: var(--panel); }
td.status { white-space: nowrap; }
.task-type { font-weight: 600; }
.task-id, code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
.task-id { color: var(--muted); }
.bar-line { display: flex; align-items: center; gap: .4rem; }
progress { flex: 1 1 auto; min-width: 3rem; max-width: 12rem; accent-color: var(--accent); }
tr[data-status="failed"] progress { accent-color: var(--bad); }
tr[data-status="completed"] progress { accent-color: var(--ok); }
.percent { flex: none; font-variant-numeric: tabular-nums; }
.queue-position { color: var(--warn); font-size: .85rem; }
.queue-position:empty, .message:empty, .task-error:empty { display: none; }
.message { color: var(--muted); font-size: .85rem; }
.task-error { color: var(--bad); font-size: .85rem; }
.inputs code { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
time { color: var(--muted); }
td.actions { text-align: right; }
@container board (max-width: 62rem) {
  /* The inputs are in the detail panel: the progress column needs the room more. */
  #tasks .inputs { display: none; }
}
@container board (max-width: 40rem) {
  /* One card per task: what it is and Cancel on top, its status and age, then its progress. */
  #tasks thead { display: none; }
  #tasks, #tasks tbody { display: block; }
  #tasks tr { display: grid; grid-template-columns: minmax(0, 1fr) auto; grid-template-areas: "task actions" "status created" "progress progress"; gap: .15rem .6rem; padding: .5rem .3rem; border-bottom: 1px solid var(--line); }
  #tasks td { display: block; border: 0; padding: 0; min-width: 0; }
  #tasks td.task { grid-area: task; }
  #tasks td.actions { grid-area: actions; }
  #tasks td.status { grid-area: status; }
  #tasks td.created { grid-area: created; text-align: right; font-size: .85rem; }
  #tasks td.progress { grid-area: progress; }
  progress { max-width: none; }
}

/* The detail panel: beside the table on a wide screen, over it on a narrow one. */
main:has(> #detail:not([hidden])) { display: grid; grid-template-columns: minmax(0, 1fr) minmax(18rem, 26rem); gap: 1rem; align-items: start; }
#detail { position: sticky; top: 3.6rem; max-height: calc(100vh - 4.6rem); overflow: auto; padding: 1rem; background: var(--bg); border: 1px solid var(--line); border-radius: 8px; min-width: 0; }
@media (max-width: 60rem) {
  main:has(> #detail:not([hidden])) { display: block; }
  #detail { position: fixed; z-index: 3; inset: auto .5rem .5rem; max-height: 70vh; box-shadow: 0 -4px 24px rgb(0 0 0 / .25); }
}
#detail-close { float: right; }
#detail h2 { display: flex; align-items: center; overflow-wrap: anywhere; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9rem; }
#detail pre { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--panel); padding: .6rem; border-radius: 6px; max-height: 40vh; overflow: auto; }
#logs { padding-left: 0; list-style: none; margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
#logs li { padding: .15rem 0; border-bottom: 1px dashed var(--line); overflow-wrap: anywhere; white-space: pre-wrap; }
#logs .level { display: inline-block; min-width: 3.2rem; font-weight: 600; }
#logs .level-warn { color: var(--warn); }
#logs .level-error { color: var(--bad); }
`;
