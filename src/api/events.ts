import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ApiError, unwrap } from "../errors";
import { namespaceOf } from "./auth";
import type { AppEnv } from "./env";
import { apiKeyApp } from "./gate";
import { errorResponses, TaskIdParam } from "./schemas";
import { csv, parseStatuses, parseTaskTypes } from "./task-list";

const security = [{ apiKey: [] }];
const app = apiKeyApp();

const LastEventIdQuery = z.object({
  last_event_id: z
    .string()
    .max(20)
    .optional()
    .openapi({ description: "Resume after this sequence number, for clients that cannot send the Last-Event-ID header" }),
});

const NamespaceEventsQuery = LastEventIdQuery.extend({
  task_type: z.string().max(1400).optional().openapi({ description: "Comma-separated task types" }),
  status: z.string().max(200).optional().openapi({ description: "Comma-separated statuses: events whose task has one of them" }),
});

const streamResponses = {
  200: {
    description:
      "Server-Sent Events: `id:` the per-namespace sequence number, `event:` the event type, `data:` the webhook body. " +
      "With `Upgrade: websocket`, the same events as JSON frames `{id, event, data}` (101).",
    content: { "text/event-stream": { schema: z.string() } },
  },
  ...errorResponses,
};

/** The sequence number to resume after: the Last-Event-ID header, else the query parameter. */
function resumeAfter(c: Context<AppEnv>, query: string | undefined): number | null {
  const raw = c.req.header("Last-Event-ID") ?? query;
  if (raw === undefined || raw.trim() === "") return null;
  if (!/^\d{1,15}$/.test(raw.trim())) throw new ApiError("validation_error", "Last-Event-ID must be an event's sequence number", { field: "last_event_id" });
  return Number(raw.trim());
}

/** Hands the stream to the namespace's Durable Object, which holds it open (or accepts the socket). */
function openStream(c: Context<AppEnv>, filter: Record<string, string | undefined>, after: number | null): Promise<Response> {
  const url = new URL("https://namespace/streams");
  for (const [name, value] of Object.entries(filter)) if (value) url.searchParams.set(name, value);
  if (after !== null) url.searchParams.set("after", String(after));
  // The object remembers the key each stream was opened with, to end its streams on revocation.
  url.searchParams.set("key_id", c.get("principal").key_id);
  const headers = new Headers();
  const upgrade = c.req.header("Upgrade");
  if (upgrade?.toLowerCase() === "websocket") {
    headers.set("Upgrade", "websocket");
    const protocols = c.req.header("Sec-WebSocket-Protocol");
    if (protocols) headers.set("Sec-WebSocket-Protocol", protocols);
  } else if (upgrade !== undefined) {
    throw new ApiError("validation_error", "only Upgrade: websocket is supported", { field: "Upgrade" });
  }
  return c.env.NAMESPACE.getByName(c.get("principal").namespace_id).fetch(new Request(url, { headers }));
}

app.openapi(
  createRoute({
    method: "get",
    path: "/events",
    tags: ["Events"],
    summary: "Follow the namespace's task events (Server-Sent Events or WebSocket)",
    description: "Starts live, or after Last-Event-ID. Keep-alive comments every 15 s; the stream does not end by itself.",
    security,
    request: { query: NamespaceEventsQuery },
    responses: streamResponses,
  }),
  async (c) => {
    const query = c.req.valid("query");
    const taskTypes = csv(query.task_type);
    const statuses = csv(query.status);
    const filter = {
      task_types: taskTypes?.length ? parseTaskTypes(taskTypes).join(",") : undefined,
      statuses: statuses?.length ? [...new Set(parseStatuses(statuses))].join(",") : undefined,
    };
    return (await openStream(c, filter, resumeAfter(c, query.last_event_id))) as never;
  },
);

app.openapi(
  createRoute({
    method: "get",
    path: "/tasks/{task_id}/events",
    tags: ["Events"],
    summary: "Follow one task's events (Server-Sent Events or WebSocket)",
    description: "Replays the task's retained events (or those after Last-Event-ID), then goes live; ends after the terminal event.",
    security,
    request: { params: TaskIdParam, query: LastEventIdQuery },
    responses: streamResponses,
  }),
  async (c) => {
    const taskId = c.req.valid("param").task_id;
    const after = resumeAfter(c, c.req.valid("query").last_event_id);
    unwrap(await namespaceOf(c).findTask(taskId));
    return (await openStream(c, { task_id: taskId }, after)) as never;
  },
);

export default app;
