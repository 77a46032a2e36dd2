// Mixpeek's POST /v1/tasks/list request (ListTasksRequest and its query) translated into one
// edge-tasks list query. Pure: no I/O.
import { z } from "zod";
import { ApiError } from "../errors";
import { fromMixpeekStatus, fromMixpeekTaskType } from "./mixpeek";
import type { TaskStatus } from "./model";

/** The native list's largest page; a larger Mixpeek `limit` gets pages of this size (its pagination says so). */
export const MIXPEEK_MAX_PAGE = 100;
/** Mixpeek's document bounds `offset` to 0–10 000. */
export const MIXPEEK_MAX_OFFSET = 10_000;

// The spellings FastAPI (Mixpeek's server) accepts for a boolean query parameter.
const Bool = z
  .enum(["true", "false", "1", "0", "yes", "no", "on", "off"])
  .transform((v) => v === "true" || v === "1" || v === "yes" || v === "on");
const Nullish = <T extends z.ZodType>(schema: T) => schema.nullish();

export const MixpeekListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  offset: z.coerce.number().int().min(0).max(MIXPEEK_MAX_OFFSET).optional(),
  cursor: z.string().min(1).max(512).optional(),
  include_total: Bool.optional(),
});

const FilterValue = z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.union([z.string(), z.number()]))]);
const FilterCondition = z.object({ field: z.string(), operator: z.string().default("eq"), value: FilterValue }).strict();
const Filters = z
  .object({
    AND: Nullish(z.array(z.unknown()).max(50)),
    OR: Nullish(z.array(z.unknown())),
    NOT: Nullish(z.array(z.unknown())),
    case_sensitive: Nullish(z.boolean()),
  })
  .catchall(FilterValue);

export const MixpeekListBody = z
  .object({
    status: Nullish(z.string().max(64)),
    task_type: Nullish(z.string().max(64)),
    filters: Nullish(Filters),
    sort: Nullish(z.object({ field: z.string(), direction: z.enum(["asc", "desc"]).default("asc") }).strict()),
    search: Nullish(z.string()),
  })
  .strict();
export type MixpeekListBody = z.infer<typeof MixpeekListBody>;

/** What a Mixpeek list selects, as the native list's filters; `none` when no task can match. */
export interface MixpeekCriteria {
  statuses?: TaskStatus[];
  taskTypes?: string[];
  parentTaskId?: string;
  createdAfter?: string;
  createdBefore?: string;
  sort: { field: "created_at" | "updated_at"; direction: "asc" | "desc" };
  none: boolean;
}

const invalid = (message: string, field: string): ApiError => new ApiError("validation_error", message, { field });

const intersect = <T>(current: T[] | undefined, next: T[]): T[] => (current ? current.filter((v) => next.includes(v)) : next);

const asList = (value: z.infer<typeof FilterValue>, field: string): string[] => {
  const values = Array.isArray(value) ? value : [value];
  if (values.length === 0 || values.length > 20 || values.some((v) => typeof v !== "string")) {
    throw invalid(`filter on ${field} takes 1–20 strings`, `filters.${field}`);
  }
  return values as string[];
};

/** An ISO instant shifted by `ms`: timestamps have millisecond resolution, so `>= t` is `> t − 1 ms`. */
function instant(value: z.infer<typeof FilterValue>, shiftMs: number): string {
  const ms = typeof value === "string" ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw invalid("created_at filters take an ISO 8601 timestamp", "filters.created_at");
  return new Date(ms + shiftMs).toISOString();
}

/** Adds one condition (AND semantics) to the criteria. */
function applyCondition(criteria: MixpeekCriteria, field: string, operator: string, value: z.infer<typeof FilterValue>): void {
  const op = operator.toLowerCase();
  if ((field === "status" || field === "task_type") && (op === "eq" || op === "in")) {
    const values = asList(value, field);
    if (field === "status") criteria.statuses = intersect(criteria.statuses, values.flatMap(fromMixpeekStatus));
    else criteria.taskTypes = intersect(criteria.taskTypes, values.flatMap(fromMixpeekTaskType));
    return;
  }
  if (field === "parent_task_id" && op === "eq" && typeof value === "string") {
    if (criteria.parentTaskId !== undefined && criteria.parentTaskId !== value) criteria.none = true;
    criteria.parentTaskId = value;
    return;
  }
  if (field === "created_at" && ["gt", "gte", "lt", "lte"].includes(op)) {
    if (op === "gt" || op === "gte") {
      const after = instant(value, op === "gte" ? -1 : 0);
      if (criteria.createdAfter === undefined || after > criteria.createdAfter) criteria.createdAfter = after;
    } else {
      const before = instant(value, op === "lte" ? 1 : 0);
      if (criteria.createdBefore === undefined || before < criteria.createdBefore) criteria.createdBefore = before;
    }
    return;
  }
  throw invalid(
    `unsupported filter ${field} ${operator}: filters take status or task_type (eq, in), parent_task_id (eq), created_at (gt, gte, lt, lte)`,
    `filters.${field}`,
  );
}

/**
 * The criteria of a Mixpeek list body. Filters are the AND of their conditions and shorthand
 * `{field: value}` pairs; OR, NOT and `search` have no index behind them here and are refused
 * with 422 rather than answered wrongly.
 */
export function mixpeekCriteria(body: MixpeekListBody): MixpeekCriteria {
  const sortField = body.sort?.field ?? "created_at";
  if (sortField !== "created_at" && sortField !== "updated_at") throw invalid("sort.field must be created_at or updated_at", "sort.field");
  const criteria: MixpeekCriteria = {
    sort: { field: sortField, direction: body.sort ? body.sort.direction : "desc" },
    none: false,
  };
  if (body.search) throw invalid("search is not supported; filter by status, task_type, parent_task_id or created_at", "search");
  if (body.status) criteria.statuses = fromMixpeekStatus(body.status);
  if (body.task_type) criteria.taskTypes = fromMixpeekTaskType(body.task_type);
  const { AND, OR, NOT, case_sensitive: _caseSensitive, ...shorthand } = body.filters ?? {};
  if ((OR && OR.length > 0) || (NOT && NOT.length > 0)) throw invalid("filters.OR and filters.NOT are not supported", "filters");
  for (const raw of AND ?? []) {
    const parsed = FilterCondition.safeParse(raw);
    if (!parsed.success) throw invalid("each filters.AND item is a condition {field, operator, value}", "filters.AND");
    applyCondition(criteria, parsed.data.field, parsed.data.operator, parsed.data.value);
  }
  for (const [field, value] of Object.entries(shorthand)) applyCondition(criteria, field, "eq", value);
  if (criteria.statuses?.length === 0 || criteria.taskTypes?.length === 0) criteria.none = true;
  if (criteria.createdAfter !== undefined && criteria.createdBefore !== undefined && criteria.createdAfter >= criteria.createdBefore) {
    criteria.none = true;
  }
  return criteria;
}

/** Mixpeek's PaginationResponse. */
export interface MixpeekPagination {
  total: number | null;
  page: number | null;
  page_size: number;
  total_pages: number | null;
  next_page: string | null;
  previous_page: string | null;
  next_cursor: string | null;
}

/**
 * The pagination of an offset page. `next_page` and `previous_page` are the request paths
 * of the neighbouring pages (Mixpeek's document leaves their form open).
 */
export function offsetPagination(p: { path: string; limit: number; offset: number; more: boolean; total?: number; includeTotal: boolean }): MixpeekPagination {
  const link = (offset: number) => `${p.path}?limit=${p.limit}&offset=${offset}${p.includeTotal ? "&include_total=true" : ""}`;
  const nextOffset = p.offset + p.limit;
  return {
    total: p.total ?? null,
    page: Math.floor(p.offset / p.limit) + 1,
    page_size: p.limit,
    total_pages: p.total === undefined ? null : Math.ceil(p.total / p.limit),
    next_page: p.more && nextOffset <= MIXPEEK_MAX_OFFSET ? link(nextOffset) : null,
    previous_page: p.offset > 0 ? link(Math.max(0, p.offset - p.limit)) : null,
    next_cursor: null,
  };
}
