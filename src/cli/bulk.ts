import type { Task } from "../client/types";
import { stringFlag } from "./args";
import { type Ctx, csvFlag, ids } from "./context";
import { ICONS, safeJson } from "./render";

/** `cancel <id>...`, or with filters (`--status`, `--type`, `--key`, `--parent`, `--before`) a bulk cancel. */
export async function cancel(ctx: Ctx): Promise<number> {
  const bulk = ["status", "type", "key", "parent", "before"].filter((name) => stringFlag(ctx.args, name) !== undefined);
  if (bulk.length > 0) {
    ids(ctx, 0, 0);
    const { cancelled } = await ctx.client.bulkCancel(
      {
        status: csvFlag(ctx, "status") as Task["status"][] | undefined,
        task_type: csvFlag(ctx, "type"),
        concurrency_key: stringFlag(ctx.args, "key"),
        parent_task_id: stringFlag(ctx.args, "parent"),
        created_before: stringFlag(ctx.args, "before"),
      },
      { signal: ctx.io.signal },
    );
    ctx.out(ctx.json ? safeJson({ cancelled }, 2) : `${ICONS.cancelled} ${cancelled} task${cancelled === 1 ? "" : "s"} cancelled`);
    return 0;
  }
  const results: Task[] = [];
  for (const id of ids(ctx, 1)) {
    const before = await ctx.client.getTask(id, { signal: ctx.io.signal });
    const task = await ctx.client.cancelTask(id, { signal: ctx.io.signal });
    results.push(task);
    if (!ctx.json) {
      ctx.out(
        before.status === task.status && task.status !== "cancelled"
          ? `${ICONS[task.status]} ${id} had already ended (${task.status}); left as it is`
          : before.status === "cancelled"
            ? `${ICONS.cancelled} ${id} was already cancelled`
            : `${ICONS.cancelled} ${id} cancelled (was ${before.status})`,
      );
    }
  }
  if (ctx.json) ctx.out(safeJson(results.length === 1 ? results[0] : results, 2));
  return 0;
}

/** `replay <id>...`, or with `--status` a bulk replay of failed or cancelled tasks. */
export async function replay(ctx: Ctx): Promise<number> {
  const status = csvFlag(ctx, "status");
  if (status !== undefined) {
    ids(ctx, 0, 0);
    const result = await ctx.client.bulkReplay(
      {
        status: status as ("completed" | "failed" | "cancelled")[],
        task_type: csvFlag(ctx, "type"),
        error_code: stringFlag(ctx.args, "error"),
        created_after: stringFlag(ctx.args, "after"),
        created_before: stringFlag(ctx.args, "before"),
      },
      { signal: ctx.io.signal },
    );
    if (ctx.json) ctx.out(safeJson(result, 2));
    else {
      ctx.out(`${ICONS.created} ${result.replayed} task${result.replayed === 1 ? "" : "s"} replayed`);
      for (const id of result.task_ids) ctx.out(id);
      if (result.next) ctx.err(`more match: run again with --after ${result.next.created_after ?? ""} --before ${result.next.created_before ?? ""}`);
    }
    return 0;
  }
  const results: Task[] = [];
  for (const id of ids(ctx, 1)) {
    const task = await ctx.client.replay(id, { signal: ctx.io.signal });
    results.push(task);
    if (!ctx.json) ctx.out(`${ICONS[task.status]} ${task.task_id} replays ${id} (${task.status})`);
  }
  if (ctx.json) ctx.out(safeJson(results.length === 1 ? results[0] : results, 2));
  return 0;
}
