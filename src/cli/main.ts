import { createClient } from "../client/client";
import { ApiError, EdgeTasksError, NetworkError, TaskCancelledError, TaskFailedError, TaskTimeoutError } from "../client/errors";
import type { Task } from "../client/types";
import { numberFlag, parseArgs, stringFlag, UsageError } from "./args";
import { ProgressBoard } from "./board";
import { describe, ICONS, plain, safeJson, table, terminalSafe, waitingText } from "./render";
import { cancel, replay } from "./bulk";
import { type CliIO, type Ctx, ids } from "./context";

export type { CliIO } from "./context";


export const DEFAULT_URL = "http://127.0.0.1:8787";
export const VERSION = "0.1.0";

const USAGE = `edge-tasks: follow and manage the tasks of an edge-tasks namespace

usage: edge-tasks <command> [options]

commands:
  list                 tasks, newest first
      --status <s,...>   created, queued, processing, completed, failed, cancelled
      --type <t,...>     task types
      --parent <id>      children of a task
      --limit <n>        tasks a page (1-100, default 20)
      --cursor <c>       start at this page
      --all              every page, not just the first
  get <id>             one task
      --wait <s>         long-poll: answer when it changes (0-60 s)
  watch <id...>        a live progress bar per task until each ends;
                       exit code 0 if all completed, 1 if any failed or was cancelled
      --timeout <s>      stop waiting after this long (the tasks keep running)
  logs <id>            a task's log lines, oldest first
      -f, --follow       keep printing new lines until the task ends
  cancel <id...>       cancel tasks (a finished task is left as it is)
  cancel --status <s,...> --type <t,...> --key <k> --parent <id> --before <time>
                       bulk cancel: every unfinished task matching (at least one filter)
  replay <id...>       a new task for each finished one, same type and inputs
  replay --status <failed,cancelled> --type <t,...> --error <code> --after <time> --before <time>
                       bulk replay of the finished tasks matching (up to 10 000 a call)
  stats                unfinished tasks against the concurrency limit

options:
  --json               machine-readable output (watch and logs --follow: one JSON object a line)
  --url <url>          the service (default: $EDGE_TASKS_URL, else ${DEFAULT_URL})
  --api-key <key>      an sk_ key (default: $EDGE_TASKS_API_KEY)
  -h, --help           this text
  --version            the version

exit codes: 0 success, 1 a task failed or an API error, 2 a usage or configuration error, 130 interrupted
`;

const COMMON = { booleans: ["json", "help"], values: ["url", "api-key"] } as const;
const COMMANDS: Record<string, { booleans: readonly string[]; values: readonly string[]; aliases?: Record<string, string> }> = {
  list: { booleans: [...COMMON.booleans, "all"], values: [...COMMON.values, "status", "type", "parent", "limit", "cursor"] },
  get: { booleans: [...COMMON.booleans], values: [...COMMON.values, "wait"] },
  watch: { booleans: [...COMMON.booleans], values: [...COMMON.values, "timeout"] },
  logs: { booleans: [...COMMON.booleans, "follow"], values: [...COMMON.values], aliases: { f: "follow" } },
  cancel: { booleans: [...COMMON.booleans], values: [...COMMON.values, "status", "type", "key", "parent", "before"] },
  replay: { booleans: [...COMMON.booleans], values: [...COMMON.values, "status", "type", "error", "after", "before"] },
  stats: { booleans: [...COMMON.booleans], values: [...COMMON.values] },
};


/**
 * Runs the CLI with `argv` (without `node` and the script) and returns the exit code. All
 * input and output goes through `io`, so it runs the same in a test as in a terminal.
 */
export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  // The last line of defence: whatever a path forgot, nothing the terminal would act on leaves.
  const out = (text: string) => void io.stdout.write(`${terminalSafe(text)}\n`);
  const err = (text: string) => void io.stderr.write(`${terminalSafe(text)}\n`);
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    (command === undefined ? err : out)(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === "--version") {
    out(VERSION);
    return 0;
  }
  const spec = COMMANDS[command];
  if (!spec) {
    err(`edge-tasks: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  try {
    const args = parseArgs(rest, { ...spec, aliases: { h: "help", ...spec.aliases } });
    if (args.flags.has("help")) {
      out(USAGE);
      return 0;
    }
    const baseUrl = stringFlag(args, "url") ?? io.env.EDGE_TASKS_URL ?? DEFAULT_URL;
    const apiKey = stringFlag(args, "api-key") ?? io.env.EDGE_TASKS_API_KEY;
    if (!apiKey) throw new UsageError("EDGE_TASKS_API_KEY is not set: export an API key (sk_...) of your namespace, or pass --api-key");
    try {
      new URL(baseUrl);
    } catch {
      throw new UsageError(`EDGE_TASKS_URL is not a URL: ${baseUrl}`);
    }
    const client = createClient({ baseUrl, apiKey, fetch: io.fetch });
    const ctx: Ctx = { client, args, json: args.flags.has("json"), io, out, err };
    switch (command) {
      case "list":
        return await list(ctx);
      case "get":
        return await get(ctx);
      case "watch":
        return await watch(ctx);
      case "logs":
        return await logs(ctx);
      case "cancel":
        return await cancel(ctx);
      case "replay":
        return await replay(ctx);
      default:
        return await stats(ctx);
    }
  } catch (error) {
    return report(error, io, err);
  }
}

function report(error: unknown, io: CliIO, err: (text: string) => void): number {
  if (io.signal?.aborted) return 130;
  if (error instanceof UsageError) {
    err(`edge-tasks: ${error.message}\nrun "edge-tasks --help" for usage`);
    return 2;
  }
  if (error instanceof ApiError) {
    const details = error.details === undefined ? "" : `\n  details: ${plain(safeJson(error.details))}`;
    const hint = error.status === 401 ? "\n  (check EDGE_TASKS_API_KEY)" : "";
    err(`edge-tasks: ${plain(error.type)} (HTTP ${error.status}): ${plain(error.message)}${details}${hint}`);
    return 1;
  }
  if (error instanceof NetworkError) {
    err(`edge-tasks: cannot reach the service: ${plain(error.message)}\n  (check EDGE_TASKS_URL)`);
    return 1;
  }
  err(`edge-tasks: ${plain(error instanceof Error ? error.message : String(error))}`);
  return 1;
}


async function list(ctx: Ctx): Promise<number> {
  ids(ctx, 0, 0);
  const all = ctx.args.flags.has("all");
  const filters = {
    status: stringFlag(ctx.args, "status"),
    task_type: stringFlag(ctx.args, "type"),
    parent_task_id: stringFlag(ctx.args, "parent"),
    limit: numberFlag(ctx.args, "limit", 1, 100),
    cursor: stringFlag(ctx.args, "cursor"),
  };
  const tasks: Task[] = [];
  let next: string | null = null;
  for await (const page of ctx.client.listTasks(filters, { signal: ctx.io.signal })) {
    tasks.push(...page.results);
    next = page.pagination.next_cursor;
    if (!all) break;
  }
  if (ctx.json) {
    ctx.out(safeJson(tasks, 2));
  } else if (tasks.length === 0) {
    ctx.err("no tasks");
  } else {
    const rows = tasks.map((t) => [
      `${ICONS[t.status]} ${t.status}`,
      t.task_id,
      t.task_type,
      t.status === "completed" ? "100%" : t.waiting ? waitingText(t) : t.progress.percent === null ? "" : `${Math.floor(t.progress.percent)}%`,
      t.created_at,
    ]);
    ctx.out(table(["STATUS", "TASK", "TYPE", "PROGRESS", "CREATED"], rows));
  }
  if (!all && next) ctx.err(`more: edge-tasks list --cursor ${next}${filters.limit ? ` --limit ${filters.limit}` : ""}`);
  return 0;
}

async function get(ctx: Ctx): Promise<number> {
  const [id = ""] = ids(ctx, 1, 1);
  const task = await ctx.client.getTask(id, { wait: numberFlag(ctx.args, "wait", 0, 60), signal: ctx.io.signal });
  ctx.out(ctx.json ? safeJson(task, 2) : describe(task));
  return 0;
}

async function watch(ctx: Ctx): Promise<number> {
  const taskIds = [...new Set(ids(ctx, 1))];
  const timeoutSeconds = numberFlag(ctx.args, "timeout", 0.001, 7 * 24 * 3600);
  const board = ctx.json ? null : new ProgressBoard(ctx.io.stdout);
  const show = (task: Task) => (board ? board.update(task) : ctx.out(safeJson(task)));
  for (const id of taskIds) board?.add(id);
  const problems: string[] = [];
  await Promise.all(
    taskIds.map(async (id) => {
      try {
        show(await ctx.client.waitForTask(id, { timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000, signal: ctx.io.signal, onProgress: show }));
      } catch (error) {
        if (error instanceof TaskFailedError || error instanceof TaskCancelledError) {
          show(error.task);
          problems.push(error.message);
        } else if (error instanceof TaskTimeoutError) {
          if (error.task) show(error.task);
          board?.note(id, `still ${error.task?.status ?? "unknown"} after ${timeoutSeconds} s (left running)`);
          problems.push(error.message);
        } else if (ctx.io.signal?.aborted) {
          // Ctrl-C: stop quietly.
        } else if (error instanceof EdgeTasksError) {
          board?.note(id, error.message);
          problems.push(`${id}: ${error.message}`);
        } else {
          throw error;
        }
      }
    }),
  );
  if (ctx.io.signal?.aborted) return 130;
  for (const problem of problems) ctx.err(plain(problem));
  return problems.length === 0 ? 0 : 1;
}

async function logs(ctx: Ctx): Promise<number> {
  const [id = ""] = ids(ctx, 1, 1);
  const follow = ctx.args.flags.has("follow");
  for await (const line of ctx.client.logLines(id, { follow, signal: ctx.io.signal })) {
    ctx.out(ctx.json ? safeJson(line) : plain(`${line.timestamp} ${line.level.padEnd(5)} [${line.attempt}] ${line.message}`));
  }
  return 0;
}

async function stats(ctx: Ctx): Promise<number> {
  ids(ctx, 0, 0);
  const s = await ctx.client.stats({ signal: ctx.io.signal });
  ctx.out(
    ctx.json
      ? safeJson(s, 2)
      : `${ICONS.created} created ${s.created}   ${ICONS.queued} queued ${s.queued}   ${ICONS.processing} processing ${s.processing}   ` +
          `active ${s.queued + s.processing}/${s.max_concurrent_tasks}   timeout ${s.processing_timeout_seconds} s`,
  );
  return 0;
}
