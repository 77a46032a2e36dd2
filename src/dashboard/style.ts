/** The dashboard's stylesheet, served as its own file (no inline style under the CSP). */
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
body { margin: 0; color: var(--fg); background: var(--bg); }
header { position: sticky; top: 0; z-index: 2; display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; padding: .6rem 1rem; background: var(--panel); border-bottom: 1px solid var(--line); }
h1 { font-size: 1.1rem; margin: 0; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
h3 { font-size: .9rem; margin: 1rem 0 .3rem; }
main { padding: 1rem; }
button { font: inherit; padding: .25rem .7rem; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--accent); }
button:disabled { opacity: .6; cursor: default; }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
#forget { margin-left: auto; }
#connection::before { content: "●"; margin-right: .35rem; color: var(--muted); }
#connection[data-state="live"]::before { color: var(--ok); }
#connection[data-state="connecting"]::before, #connection[data-state="reconnecting"]::before { color: var(--warn); }
#connection[data-state="error"]::before { color: var(--bad); }
#counts { color: var(--muted); font-variant-numeric: tabular-nums; }
#counts b { color: var(--fg); }
#key-form { max-width: 28rem; margin: 3rem auto; display: grid; gap: .5rem; }
#board { overflow-x: auto; }
#filters { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; margin-bottom: .8rem; }
#filters label { display: grid; gap: .2rem; color: var(--muted); font-size: .85rem; }
.hint { color: var(--muted); }
.error { color: var(--bad); white-space: pre-wrap; }
.error:empty { display: none; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: .85rem; border-bottom: 1px solid var(--line); padding: .3rem .5rem; }
td { border-bottom: 1px solid var(--line); padding: .4rem .5rem; vertical-align: top; }
tbody tr { cursor: pointer; }
tbody tr:hover, tbody tr[aria-selected="true"] { background: var(--panel); }
.status { white-space: nowrap; }
.status .icon { margin-right: .3rem; }
.task-type { font-weight: 600; }
.task-id, code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
.task-id { color: var(--muted); }
progress { width: 10rem; vertical-align: middle; accent-color: var(--accent); }
tr[data-status="failed"] progress { accent-color: var(--bad); }
tr[data-status="completed"] progress { accent-color: var(--ok); }
.percent { margin-left: .4rem; font-variant-numeric: tabular-nums; }
.message { color: var(--muted); font-size: .85rem; max-width: 22rem; overflow-wrap: anywhere; }
.task-error { color: var(--bad); font-size: .85rem; overflow-wrap: anywhere; }
.inputs code { display: block; max-width: 18rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
time { white-space: nowrap; color: var(--muted); }
main:has(> #detail:not([hidden])) { display: grid; grid-template-columns: minmax(0, 1fr) minmax(18rem, 30rem); gap: 1rem; align-items: start; }
@media (max-width: 60rem) { main:has(> #detail:not([hidden])) { grid-template-columns: minmax(0, 1fr); } }
#detail { position: sticky; top: 3.6rem; max-height: calc(100vh - 4.6rem); overflow: auto; padding: 1rem; background: var(--bg); border: 1px solid var(--line); border-radius: 8px; }
#detail-close { float: right; }
#detail pre { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--panel); padding: .6rem; border-radius: 6px; max-height: 40vh; overflow: auto; }
#logs { padding-left: 0; list-style: none; margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
#logs li { padding: .15rem 0; border-bottom: 1px dashed var(--line); overflow-wrap: anywhere; white-space: pre-wrap; }
#logs .level { display: inline-block; min-width: 3.2rem; font-weight: 600; }
#logs .level-warn { color: var(--warn); }
#logs .level-error { color: var(--bad); }
`;
