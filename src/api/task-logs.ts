import type { Context } from "hono";
import { bySeq } from "../cursor";
import { type Page, type PageRequest, toPage } from "../db/keyset";
import { countLogs, readLogs } from "../db/logs";
import { unwrap } from "../errors";
import type { LogLine } from "../tasks/model";
import { namespaceOf } from "./auth";
import type { AppEnv } from "./env";
import { config } from "../config";

/** A log page starts after a line's seq; lines are oldest first. */
export const LOG_CURSOR = bySeq("task_logs");

/**
 * One page of a task's log: the lines D1 has, merged with those still in the namespace's
 * outbox. The outbox is read before D1: a flush in between then shows a line twice (merged away
 * by seq) rather than not at all, since the outbox flushes in order.
 */
export async function taskLogPage(c: Context<AppEnv>, taskId: string, req: PageRequest<[number]>): Promise<Page<LogLine, [number]>> {
  const after = req.after?.[0] ?? 0;
  const stub = namespaceOf(c);
  unwrap(await stub.findTask(taskId));
  const namespaceId = c.get("principal").namespace_id;
  const cutoff = Date.now() - config(c.env).logRetentionMs;
  const pending = await stub.pendingLogs(taskId, req.includeTotal ? 0 : after);
  const flushed = await readLogs(c.env.DB, namespaceId, taskId, after, req.limit + 1, cutoff);
  const bySeqNo = new Map([...flushed, ...pending.filter((line) => line.seq > after)].map((line) => [line.seq, line]));
  const lines = [...bySeqNo.values()].sort((a, b) => a.seq - b.seq);
  const page = toPage(lines, req.limit, (line): [number] => [line.seq]);
  const results = page.results.map(({ timestamp, level, message, attempt }) => ({ timestamp, level, message, attempt }));
  if (!req.includeTotal) return { results, next: page.next };
  // Lines still pending are those past the last one D1 has (the outbox flushes in order).
  const kept = await countLogs(c.env.DB, namespaceId, taskId, cutoff);
  return { results, next: page.next, total: kept.count + pending.filter((line) => line.seq > kept.lastSeq).length };
}
