import { createRoute, z } from "@hono/zod-openapi";
import { type CursorKind, decodeCursor, encodeCursor } from "../cursor";
import type { Page, PageRequest, Position } from "../db/keyset";
import { head, type RouteHead } from "./routes";
import { errorResponses, json, paginated } from "./schemas";

/** SPEC §3's list parameters, the same on every list. */
export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(512).optional(),
  include_total: z.enum(["true", "false"]).optional().openapi({ description: "Add pagination.total: the rows under the same filter" }),
});
export type PageQueryInput = z.infer<typeof PageQuery>;

const NoParams = z.object({});

/**
 * The route of a list: `GET path` with the page query (and the list's own filters), answering
 * `{results, pagination}` of `item`.
 */
export function listRoute<
  Item extends z.ZodType,
  Params extends z.ZodObject = typeof NoParams,
  Filters extends z.ZodRawShape = Record<never, never>,
>(o: RouteHead & { item: Item; name: string; params?: Params; filters?: Filters }) {
  return createRoute({
    method: "get",
    ...head(o),
    // The default keeps the type parameter honest: without params the list takes none.
    request: { params: o.params ?? (NoParams as z.ZodObject as Params), query: PageQuery.extend(o.filters ?? ({} as Filters)) },
    responses: { 200: json(paginated(o.item, o.name), o.summary), ...errorResponses },
  });
}

/** The page a list request asks for; a cursor of another list, or not made here, gets 422. */
export function pageRequest<P extends Position>(query: PageQueryInput, kind: CursorKind<P>): PageRequest<P> {
  return { limit: query.limit, after: decodeCursor(kind, query.cursor), includeTotal: query.include_total === "true" };
}

/** SPEC §3's list body: `total` only when it was asked for. */
export function listBody<T, P extends Position>(limit: number, kind: CursorKind<P>, page: Page<T, P>) {
  return {
    results: page.results,
    pagination: {
      limit,
      next_cursor: page.next ? encodeCursor(kind, page.next) : null,
      ...(page.total === undefined ? {} : { total: page.total }),
    },
  };
}

/** Reads one page of a list for a request and shapes the answer. */
export async function servePage<T, P extends Position>(query: PageQueryInput, kind: CursorKind<P>, read: (req: PageRequest<P>) => Promise<Page<T, P>>) {
  const req = pageRequest(query, kind);
  return listBody(req.limit, kind, await read(req));
}
