import { createRoute, z } from "@hono/zod-openapi";
import { idempotent } from "./idempotency";
import { errorResponses, IdempotencyHeader, json, jsonBody } from "./schemas";

type Security = Record<string, string[]>[];

/** What every route of the document states about itself. */
export interface RouteHead {
  path: string;
  tag: string;
  summary: string;
  security: Security;
}

/** The fields of a createRoute config that every route shares. */
export const head = (o: RouteHead) => ({ path: o.path, tags: [o.tag], summary: o.summary, security: o.security });

/** The body of every delete: SPEC §3's success with a message. */
export const DeletedSchema = z.object({ success: z.literal(true), message: z.string() });

/** `GET <path>` of one resource named by its path parameters. */
export function getRoute<P extends z.ZodObject, R extends z.ZodType>(o: RouteHead & { params: P; response: R; description: string }) {
  return createRoute({
    method: "get",
    ...head(o),
    request: { params: o.params },
    responses: { 200: json(o.response, o.description), ...errorResponses },
  });
}

/** `DELETE <path>` of one resource named by its path parameters. */
export function deleteRoute<P extends z.ZodObject>(o: RouteHead & { params: P }) {
  return createRoute({
    method: "delete",
    ...head(o),
    request: { params: o.params },
    responses: { 200: json(DeletedSchema, "Deleted"), ...errorResponses },
  });
}

/**
 * `POST <path>` that creates something: the body, the Idempotency-Key header and its replay
 * (SPEC §3), and the created resource as 201.
 */
export function createResourceRoute<B extends z.ZodType, R extends z.ZodType>(o: RouteHead & {
  body: B;
  response: R;
  description: string;
}) {
  return createRoute({
    method: "post",
    ...head(o),
    middleware: idempotent,
    request: { headers: IdempotencyHeader, body: jsonBody(o.body) },
    responses: { 201: json(o.response, o.description), ...errorResponses },
  });
}

/**
 * `POST <path>` that acts on one resource named by its path parameters and takes no body
 * (cancel, replay, rotate, test). `idempotent` adds the Idempotency-Key header and its replay,
 * for actions that create something.
 */
export function actionRoute<P extends z.ZodObject, R extends z.ZodType, S extends 200 | 201 | 202>(o: RouteHead & {
  params: P;
  status: S;
  response: R;
  description: string;
  idempotent?: boolean;
}) {
  return createRoute({
    method: "post",
    ...head(o),
    ...(o.idempotent ? { middleware: idempotent } : {}),
    request: o.idempotent ? { params: o.params, headers: IdempotencyHeader } : { params: o.params },
    responses: { [o.status]: json(o.response, o.description), ...errorResponses } as { [K in S]: ReturnType<typeof json<R>> } & typeof errorResponses,
  });
}
