import type { Task, TaskStatus } from "../client/types";

/** The product's status icons (issue 6, the dashboard uses the same). */
export const ICONS: Record<TaskStatus, string> = {
  created: "🟢",
  queued: "⏱️",
  processing: "⚙️",
  completed: "✅",
  failed: "❌",
  cancelled: "🚫",
};

/** A fixed-width bar; an unknown percentage (null) draws an empty bar. */
export function bar(percent: number | null, width = 24): string {
  const p = percent === null ? 0 : Math.max(0, Math.min(100, percent));
  const filled = Math.round((p / 100) * width);
  return `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
}

/** The percentage a bar shows: a finished task is full, an unknown one shows dashes. */
export function shownPercent(task: Task): number | null {
  if (task.status === "completed") return 100;
  return task.progress.percent;
}

const pct = (percent: number | null): string => (percent === null ? " --%" : `${Math.floor(percent).toString().padStart(3)}%`);

/**
 * Characters a terminal acts on rather than shows: C1 controls (U+009B alone starts an escape
 * sequence), DEL, and the bidirectional overrides and isolates that make a line read other than
 * it is ("Trojan Source"), with the line and paragraph separators.
 */
const UNSAFE_IN_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
/** The same, less tab and line feed. */
const UNSAFE_IN_TEXT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
/** What JSON.stringify leaves unescaped of the above. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/**
 * Text a server or processor wrote, made safe to print in one line: control characters (escape
 * sequences that could move the cursor, retitle the window or write the clipboard; line breaks
 * that would break a redrawn board; bidi overrides) are shown as "�".
 */
export const plain = (text: string): string => text.replace(UNSAFE_IN_LINE, "\ufffd");

/** Like `plain`, but keeps line breaks and tabs: for whole messages the CLI writes. */
export const terminalSafe = (text: string): string => text.replace(UNSAFE_IN_TEXT, "\ufffd");

/**
 * JSON for a terminal: the same value, with every character a terminal would act on written as
 * a \u escape (JSON.stringify escapes C0 controls itself but leaves C1, DEL and bidi as they are).
 */
export const safeJson = (value: unknown, indent?: number): string =>
  (JSON.stringify(value, null, indent) ?? "null").replace(UNSAFE_IN_JSON, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);

const REASONS: Record<NonNullable<Task["waiting"]>["reason"], string> = {
  concurrency_limit: "for a slot",
  concurrency_key: "for its key's slot",
  scheduled: "until its run_at",
  rate_limited: "rate limited",
};

/** Why a created task waits, in words: "waits for a slot, #3, starts in ~40 s". */
export function waitingText(task: Task): string {
  const w = task.waiting;
  if (!w) return "";
  const eta = w.eta_seconds === null ? "" : `, starts in ~${w.eta_seconds} s`;
  return plain(`waits ${REASONS[w.reason] ?? w.reason}, #${w.position}${eta}`);
}

/** What a task is doing in words: its error, why it waits, its progress message, or its counts. */
export function detail(task: Task): string {
  if (task.error) return plain(`${task.error.code}: ${task.error.message}`);
  if (task.waiting) return waitingText(task);
  const counts = task.progress.processed !== null ? `${task.progress.processed}${task.progress.total !== null ? `/${task.progress.total}` : ""}` : "";
  return plain([counts, task.progress.message ?? ""].filter((s) => s !== "").join(" "));
}

/** One line of a progress board. */
export function progressLine(task: Task, width = 24): string {
  const percent = shownPercent(task);
  return plain(`${ICONS[task.status]} ${bar(percent, width)} ${pct(percent)} ${task.status.padEnd(10)} ${task.task_id} ${task.task_type} ${detail(task)}`).trimEnd();
}

/** Terminal columns a string takes, near enough: emoji count two, combining marks none. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp === 0xfe0f || (cp >= 0x300 && cp < 0x370) || cp === 0x200d) continue;
    width += cp >= 0x1f000 || (cp >= 0x2600 && cp < 0x27c0) || (cp >= 0x2300 && cp < 0x2400) ? 2 : 1;
  }
  return width;
}

/** Cuts a line to `columns` so that a redraw never wraps. */
export function fit(line: string, columns: number): string {
  if (displayWidth(line) <= columns) return line;
  let out = "";
  for (const ch of line) {
    if (displayWidth(out + ch) > columns - 1) break;
    out += ch;
  }
  return `${out}…`;
}

/** A human summary of one task, a field a line. */
export function describe(task: Task): string {
  const rows: [string, string][] = [
    ["task", `${task.task_id}  ${ICONS[task.status]} ${task.status}`],
    ["type", task.task_type],
    ["progress", `${bar(shownPercent(task))} ${pct(shownPercent(task)).trim()}${detail(task) ? `  ${detail(task)}` : ""}`],
    ["attempt", `${task.attempt}/${task.max_attempts}`],
    ["priority", String(task.priority)],
  ];
  if (task.parent_task_id) rows.push(["parent", task.parent_task_id]);
  if (task.concurrency_key) rows.push(["key", task.concurrency_key]);
  if (task.replay_of_task_id) rows.push(["replay_of", task.replay_of_task_id]);
  if (task.run_at) rows.push(["run_at", task.run_at]);
  if (task.queue_position !== null) rows.push(["queue_position", String(task.queue_position)]);
  if (task.waiting) rows.push(["waiting", waitingText(task)]);
  for (const field of ["created_at", "queued_at", "started_at", "completed_at", "timeout_at", "expires_at"] as const) {
    const value = task[field];
    if (value) rows.push([field, value]);
  }
  if (task.error) rows.push(["error", `${task.error.code}: ${task.error.message}${task.error.retryable ? " (retryable)" : ""}`]);
  if (Object.keys(task.inputs).length > 0) rows.push(["inputs", safeJson(task.inputs)]);
  if (task.outputs) rows.push(["outputs", safeJson(task.outputs)]);
  // Every value came from the service: one line each, nothing the terminal would act on.
  return rows.map(([k, v]) => `${k.padEnd(15)}${plain(v)}`).join("\n");
}

/** Rows as aligned columns. */
export function table(header: string[], cells: string[][]): string {
  const rows = cells.map((row) => row.map(plain));
  const widths = header.map((h, i) => Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ""))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - displayWidth(c)))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
