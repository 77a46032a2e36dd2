import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { byIsoTime, bySeq, type CursorKind } from "../cursor";
import { mapPage, type Position } from "../db/keyset";
import { listRecords, type RecordQuery, type SortField } from "../db/records";
import { ApiError } from "../errors";
import { isTerminal, TASK_STATUSES, TASK_TYPE_PATTERN, type Task, type TaskStatus } from "../tasks/model";
import { namespaceOf } from "./auth";
import type { AppEnv } from "./env";
import { listBody, PageQuery, type PageQueryInput, pageRequest } from "./list";

/** Status names a filter accepts, ours and Mixpeek's, matched case-insensitively. */
const STATUS_NAMES: Record<string, TaskStatus> = {
  ...Object.fromEntries(TASK_STATUSES.map((s) => [s, s])),
  draft: "created",
  pending: "queued",
  in_progress: "processing",
  canceled: "cancelled",
};

/** The statuses a filter names, each once: `cancelled,CANCELED` is one status, not two. */
export function parseStatuses(values: string[]): TaskStatus[] {
  const statuses = values.map((raw) => {
    const status = STATUS_NAMES[raw.trim().toLowerCase()];
    if (!status) throw new ApiError("validation_error", `unknown status "${raw}"`, { field: "status" });
    return status;
  });
  return [...new Set(statuses)];
}

export function parseTaskTypes(values: string[]): string[] {
  if (values.length > 20) throw new ApiError("validation_error", "at most 20 task types", { field: "task_type" });
  for (const t of values) {
    if (!TASK_TYPE_PATTERN.test(t)) throw new ApiError("validation_error", `invalid task_type "${t}"`, { field: "task_type" });
  }
  return [...new Set(values)];
}

export const csv = (value: string | undefined): string[] | undefined =>
  value === undefined ? undefined : value.split(",").map((v) => v.trim()).filter((v) => v !== "");

const Timestamp = z.iso.datetime({ offset: true }).transform((s) => new Date(s).toISOString());

/** GET /v1/tasks's filters, next to the page query every list takes. */
export const TaskFilters = {
  status: z.string().max(200).optional().openapi({ description: "Comma-separated; Mixpeek's names too (PENDING, IN_PROGRESS, …)" }),
  task_type: z.string().max(1400).optional().openapi({ description: "Comma-separated" }),
  parent_task_id: z.string().max(128).optional(),
  created_after: Timestamp.optional(),
  created_before: Timestamp.optional(),
};
export const ListQuery = PageQuery.extend(TaskFilters);

const StringOrList = z.union([z.string().max(200), z.array(z.string().max(64)).max(20)]);

export const ListBody = z
  .object({
    status: StringOrList.optional(),
    task_type: StringOrList.optional(),
    parent_task_id: z.string().max(128).optional(),
    created_after: Timestamp.optional(),
    created_before: Timestamp.optional(),
    sort: z
      .object({ field: z.enum(["created_at", "updated_at"]), direction: z.enum(["asc", "desc"]).default("desc") })
      .strict()
      .optional(),
  })
  .strict()
  .openapi("ListTasks");

/**
 * A task cursor names its sort, so a cursor of one order is refused by another: by creation a
 * position is the namespace's sequence number, by update time (updated_at, task_id).
 */
function taskCursor(sort: RecordQuery["sort"]): CursorKind<Position> {
  const list = `tasks:${sort.field}:${sort.direction}`;
  return sort.field === "created_at" ? bySeq(list) : byIsoTime(list);
}

export interface ListRequest {
  statuses?: string[];
  taskTypes?: string[];
  parentTaskId?: string;
  createdAfter?: string;
  createdBefore?: string;
  sort?: { field: SortField; direction: "asc" | "desc" };
  limit: number;
  cursor?: string;
  includeTotal: boolean;
}

/**
 * One page of the namespace's tasks from their D1 records, newest first unless sorted
 * otherwise. A walk's first page flushes the namespace's outbox, so every task created before
 * the walk is in it; live tasks on a page show their current state from the Durable Object.
 */
export async function listTasks(c: Context<AppEnv>, req: ListRequest) {
  const sort = req.sort ?? { field: "created_at" as const, direction: "desc" as const };
  const cursor = taskCursor(sort);
  const page = pageRequest({ limit: req.limit, cursor: req.cursor, include_total: req.includeTotal ? "true" : "false" }, cursor);
  const query: RecordQuery = {
    statuses: req.statuses ? parseStatuses(req.statuses) : undefined,
    taskTypes: req.taskTypes ? parseTaskTypes(req.taskTypes) : undefined,
    parentTaskId: req.parentTaskId,
    createdAfter: req.createdAfter,
    createdBefore: req.createdBefore,
    sort,
    ...page,
  };
  const stub = namespaceOf(c);
  // A walk's first page, and every count, sees each task created before it: the outbox is flushed.
  if (!query.after || req.includeTotal) await stub.flushNow();
  const records = await listRecords(c.env.DB, c.get("principal").namespace_id, query);
  const liveIds = records.results.filter((t) => !isTerminal(t.status)).map((t) => t.task_id);
  const live = new Map((liveIds.length > 0 ? await stub.liveTasks(liveIds) : []).map((t): [string, Task] => [t.task_id, t]));
  return listBody(req.limit, cursor, mapPage(records, (t) => live.get(t.task_id) ?? t));
}

export const listFromQuery = (q: z.infer<typeof ListQuery>): ListRequest => ({
  statuses: csv(q.status),
  taskTypes: csv(q.task_type),
  parentTaskId: q.parent_task_id,
  createdAfter: q.created_after,
  createdBefore: q.created_before,
  limit: q.limit,
  cursor: q.cursor,
  includeTotal: q.include_total === "true",
});

const listOf = (v: string | string[] | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v : csv(v));

export const listFromBody = (b: z.infer<typeof ListBody>, q: PageQueryInput): ListRequest => ({
  statuses: listOf(b.status),
  taskTypes: listOf(b.task_type),
  parentTaskId: b.parent_task_id,
  createdAfter: b.created_after,
  createdBefore: b.created_before,
  sort: b.sort,
  limit: q.limit,
  cursor: q.cursor,
  includeTotal: q.include_total === "true",
});
