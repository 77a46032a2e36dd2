import { errorBody, ok, type Result } from "../errors";
import { liveKeyIds } from "../db/keys";
import { isTerminal, type Task } from "../tasks/model";
import { taskEtag } from "../tasks/etag";
import { NamespacePart } from "./part";
import { DEFAULT_MAX_OPEN_STREAMS, KEY_CHECK_MS, STREAM_RETRY_AFTER_SECONDS, type StreamFilter } from "./streams";

/** Longer than any Worker caches a key (KEY_CACHE_TTL_MS), so a cached revoked key opens nothing. */
const REVOKED_KEY_MEMORY_MS = 60_000;

/**
 * Who may follow the namespace's tasks, and how many: opens event streams (SSE or WebSocket)
 * and long-polls under the `max_open_streams` quota, and ends the streams of revoked keys, at
 * once when told and by a periodic check against D1 otherwise.
 */
export class StreamGate extends NamespacePart {
  /** Keys revoked through this object lately, until when they are refused here. */
  private readonly revokedKeys = new Map<string, number>();

  private get keyCheckAt(): number | null {
    return this.core.keyCheckAt;
  }

  private set keyCheckAt(at: number | null) {
    this.core.keyCheckAt = at;
  }

  /**
   * Long-poll: the task once it changes (a new version here), at once when it is finished or
   * already differs from `etag`, else after `waitMs` as it stands.
   */
  async waitForTask(taskId: string, waitMs: number, etag: string | null): Promise<Result<Task>> {
    const row = this.store.get(taskId);
    if (!row) return this.findTask(taskId);
    const task = this.store.toTask(row);
    if (waitMs <= 0 || isTerminal(task.status) || (etag !== null && taskEtag(task) !== etag)) return ok(task);
    const refused = this.streamQuotaExceeded();
    if (refused) return { ok: false, error: refused };
    await this.waiters.wait(taskId, row.version, waitMs);
    return this.findTask(taskId);
  }

  /**
   * Opens an event stream, as Server-Sent Events or as a hibernatable WebSocket. The Worker has
   * authenticated the request and checked the task; the stream's filter comes in the query of
   * its internal request. This is the one HTTP entry of the object: a socket cannot pass RPC.
   */
  async open(request: Request): Promise<Response> {
    const params = new URL(request.url).searchParams;
    const list = (name: string): string[] | null => {
      const value = params.get(name);
      return value ? value.split(",") : null;
    };
    const filter: StreamFilter = { task_id: params.get("task_id"), task_types: list("task_types"), statuses: list("statuses") };
    const afterParam = params.get("after");
    const after = afterParam === null ? null : Number(afterParam);
    const keyId = params.get("key_id") ?? "";
    const now = this.clock.now();
    // Streams end within a minute of their key's revocation even when the revoking call never
    // reached this object: the alarm checks their keys against D1 while any is open.
    if (this.keyCheckAt === null) {
      // After an eviction the check's time is forgotten but its alarm may be pending: an alarm
      // that comes sooner runs the check (which is due when unknown); a later one is brought forward.
      const pending = await this.ctx.storage.getAlarm();
      if (pending === null || pending > this.clock.toWall(now + KEY_CHECK_MS)) {
        this.keyCheckAt = now + KEY_CHECK_MS;
        await this.armAlarm();
      }
    }
    // From here to the open, no await: the quota cannot be overrun by opens in between.
    if (this.revokedKeys.has(keyId)) {
      return Response.json(errorBody("unauthorized", "invalid or revoked API key"), { status: 401 });
    }
    if (after !== null && after > this.streams.lastIssued()) {
      // A cursor from another namespace, or from before a reset: resuming from it would skip silently.
      return Response.json(errorBody("validation_error", "Last-Event-ID is beyond the newest event", { field: "last_event_id" }), { status: 422 });
    }
    const refused = this.streamQuotaExceeded();
    if (refused) {
      return Response.json(errorBody(refused.type, refused.message, refused.details), {
        status: 429,
        headers: { "Retry-After": String(STREAM_RETRY_AFTER_SECONDS) },
      });
    }
    const row = filter.task_id === null ? null : this.store.get(filter.task_id);
    const live = filter.task_id === null || (row !== null && !isTerminal(row.status));
    const opening = { filter, after, live, keyId };
    if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") {
      const pair = new WebSocketPair();
      const [client, server] = [pair[0], pair[1]];
      this.streams.openSocket(server, opening);
      const protocols = request.headers.get("Sec-WebSocket-Protocol")?.split(",").map((p) => p.trim()) ?? [];
      const headers = protocols.includes("edge-tasks") ? { "Sec-WebSocket-Protocol": "edge-tasks" } : undefined;
      return new Response(null, { status: 101, webSocket: client, headers });
    }
    return new Response(this.streams.openSse(opening), {
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache, no-transform",
        "X-Accel-Buffering": "no",
      },
    });
  }

  /** How many streams are open (for the benchmark and tests). */
  streamCounts(): { sse: number; websocket: number; long_polls: number } {
    return { ...this.streams.counts(), long_polls: this.waiters.count() + this.core.leaseWaiters.size };
  }

  /**
   * The key was revoked (in D1, before this call): its streams end now, SSE and WebSocket,
   * hibernated sockets too, and for a minute no new stream opens with it, since other Workers
   * may still accept the key from their cache for that long. Returns how many streams ended.
   */
  endStreamsOf(keyId: string): number {
    const now = this.clock.now();
    for (const [key, until] of this.revokedKeys) if (until <= now) this.revokedKeys.delete(key);
    this.revokedKeys.set(keyId, now + REVOKED_KEY_MEMORY_MS);
    return this.streams.endKey(keyId);
  }

  /** The `max_open_streams` quota: SSE, WebSocket and long-polls together; an error once it is reached. */
  streamQuotaExceeded(): { type: "rate_limited"; message: string; details: { quota: string; limit: number }; retry_after_seconds: number } | null {
    const limit = this.settings.max_open_streams ?? DEFAULT_MAX_OPEN_STREAMS;
    const { sse, websocket, long_polls } = this.streamCounts();
    if (sse + websocket + long_polls < limit) return null;
    return {
      type: "rate_limited",
      message: `the namespace has ${limit} open streams and long-polls, its max_open_streams; retry when one has ended`,
      details: { quota: "max_open_streams", limit },
      retry_after_seconds: STREAM_RETRY_AFTER_SECONDS,
    };
  }

  /**
   * The fallback for a revocation whose call to this object failed: asks D1 once which of the
   * open streams' keys are still valid and ends the streams of the others. Due every
   * KEY_CHECK_MS while streams are open; after an eviction, at the first alarm.
   */
  async recheckStreamKeys(now: number): Promise<void> {
    if (this.keyCheckAt !== null && this.keyCheckAt > now) return;
    const keyIds = this.streams.keyIds();
    const { sse, websocket } = this.streams.counts();
    this.keyCheckAt = sse + websocket > 0 ? now + KEY_CHECK_MS : null;
    if (keyIds.length === 0) return;
    try {
      const live = await liveKeyIds(this.env.DB, this.namespaceId, keyIds);
      for (const keyId of keyIds) if (!live.has(keyId)) this.streams.endKey(keyId);
    } catch (err) {
      console.error("the keys of open streams could not be checked; next try in the next check", err);
    }
  }
}
