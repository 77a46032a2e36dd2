// SPEC §11: the task endpoints in Mixpeek's dialect, under /mixpeek. Requests and answers follow
// Mixpeek's published OpenAPI document (test/fixtures/mixpeek-tasks-openapi.json), so a client
// generated from it works against <base>/mixpeek.
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { listRecordsByOffset } from "../db/records-offset";
import { ApiError, errorBody, type ErrorBody, unwrap } from "../errors";
import { toMixpeekTask } from "../tasks/mixpeek";
import { MIXPEEK_MAX_PAGE, mixpeekCriteria, MixpeekListBody, MixpeekListQuery, offsetPagination, type MixpeekPagination } from "../tasks/mixpeek-list";
import { isTerminal, type Task } from "../tasks/model";
import { namespaceOf } from "./auth";
import type { AppEnv } from "./env";
import { listTasks } from "./task-list";

const mixpeek = new Hono<AppEnv>();

mixpeek.get("/v1/tasks/:task_id", async (c) => {
  const task = unwrap(await namespaceOf(c).findTask(c.req.param("task_id")));
  return c.json(toMixpeekTask(task), 200);
});

mixpeek.delete("/v1/tasks/:task_id", async (c) => {
  const taskId = c.req.param("task_id");
  const result = await namespaceOf(c).cancelTask(taskId);
  // Mixpeek's kill is idempotent: an unknown or finished task is not an error.
  const message = result.ok ? `task ${taskId} is ${result.value.status}` : `task ${taskId} not found; nothing to kill`;
  return c.json({ success: true, message }, 200);
});

mixpeek.post("/v1/tasks/list", async (c) => {
  const query = MixpeekListQuery.safeParse(c.req.query());
  if (!query.success) throw validationError(query.error.issues, "query");
  const body = MixpeekListBody.safeParse(await optionalJsonBody(c));
  if (!body.success) throw validationError(body.error.issues, "body");
  const criteria = mixpeekCriteria(body.data);
  const { offset, cursor, include_total: includeTotal = false } = query.data;
  const limit = Math.min(query.data.limit ?? 20, MIXPEEK_MAX_PAGE);
  if (offset !== undefined && cursor !== undefined) throw new ApiError("validation_error", "send offset or cursor, not both", { field: "offset" });
  const filters = {
    statuses: criteria.statuses,
    taskTypes: criteria.taskTypes,
    parentTaskId: criteria.parentTaskId,
    createdAfter: criteria.createdAfter,
    createdBefore: criteria.createdBefore,
    sort: criteria.sort,
  };

  if (criteria.none) {
    const pagination: MixpeekPagination = {
      total: includeTotal ? 0 : null, page: offset === undefined ? null : Math.floor(offset / limit) + 1, page_size: limit,
      total_pages: includeTotal ? 0 : null, next_page: null, previous_page: null, next_cursor: null,
    };
    return c.json({ results: [], pagination }, 200);
  }

  if (offset === undefined) {
    // Cursor pages: the native keyset list, its cursor included.
    const page = await listTasks(c, { ...filters, limit, cursor, includeTotal });
    const total = page.pagination.total;
    const pagination: MixpeekPagination = {
      total: total ?? null, page: null, page_size: limit, total_pages: total === undefined ? null : Math.ceil(total / limit),
      next_page: null, previous_page: null, next_cursor: page.pagination.next_cursor,
    };
    return c.json({ results: page.results.map(toMixpeekTask), pagination }, 200);
  }

  const stub = namespaceOf(c);
  // As on a keyset walk's first page: every task created before this request is in D1.
  await stub.flushNow();
  const page = await listRecordsByOffset(c.env.DB, c.get("principal").namespace_id, { ...filters, limit, offset, includeTotal });
  const liveIds = page.tasks.filter((t) => !isTerminal(t.status)).map((t) => t.task_id);
  const live = new Map((liveIds.length > 0 ? await stub.liveTasks(liveIds) : []).map((t): [string, Task] => [t.task_id, t]));
  const results = page.tasks.map((t) => toMixpeekTask(live.get(t.task_id) ?? t));
  const pagination = offsetPagination({ path: "/mixpeek/v1/tasks/list", limit, offset, more: page.more, total: page.total, includeTotal });
  return c.json({ results, pagination }, 200);
});

/** The request's JSON body; no body at all (whatever its Content-Type) is Mixpeek's absent, optional body. */
async function optionalJsonBody(c: Context<AppEnv>): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") return {};
  const type = c.req.header("Content-Type");
  if (!type || !/^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type)) {
    throw new ApiError("invalid_json", "the request body must be JSON, sent with Content-Type: application/json");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError("invalid_json", "the request body is not valid JSON");
  }
}

interface Issue {
  path: PropertyKey[];
  message: string;
}

function validationError(issues: readonly Issue[], location: "query" | "body"): ApiError {
  const details = issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  const first = details[0];
  return new ApiError("validation_error", first ? `${location} ${first.path || ""}: ${first.message}`.replace(/ :/, ":") : "invalid request", {
    location,
    issues: details,
  });
}

const QUERY_FIELDS = new Set(["limit", "offset", "cursor", "include_total"]);

/** FastAPI's `detail` list of a validation error: where each problem is (`["query", "limit"]`) and what it is. */
function fastApiDetail(message: string, details: unknown): { loc: string[]; msg: string; type: string }[] {
  const record = typeof details === "object" && details !== null ? (details as Record<string, unknown>) : {};
  if (Array.isArray(record.issues) && (record.location === "query" || record.location === "body")) {
    const location = record.location;
    return record.issues.map((issue: { path?: unknown; message?: unknown }) => ({
      loc: [location, ...String(issue.path ?? "").split(".").filter((p) => p !== "")],
      msg: String(issue.message ?? message),
      type: "value_error",
    }));
  }
  const field = typeof record.field === "string" ? record.field : "";
  const location = QUERY_FIELDS.has(field) ? "query" : "body";
  return [{ loc: [location, ...field.split(".").filter((p) => p !== "")], msg: message, type: "value_error" }];
}

/**
 * Errors in Mixpeek's ErrorResponse shape (ours, with `details` always an object or null); a
 * 422 also carries FastAPI's `detail` list, which Mixpeek's document gives that status.
 */
mixpeek.onError((err, c) => {
  let body: ErrorBody & { detail?: { loc: string[]; msg: string; type: string }[] };
  if (err instanceof ApiError) {
    for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
    const details = err.details;
    const objectDetails = details === undefined || (typeof details === "object" && details !== null && !Array.isArray(details)) ? details : { value: details };
    body = errorBody(err.type, err.message, objectDetails);
    if (err.type === "validation_error") body.detail = fastApiDetail(err.message, objectDetails);
    return c.json(body, err.status);
  }
  if (err instanceof HTTPException && err.status === 400) return c.json(errorBody("invalid_json", "the request body is not valid JSON"), 400);
  console.error(`unhandled error on ${c.req.method} ${c.req.path}`, err);
  return c.json(errorBody("internal_error", "internal error"), 500);
});

export default mixpeek;
