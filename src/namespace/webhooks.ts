import { newId, newSigningSecret } from "../ids";
import { iso } from "../time";
import type { AttemptOutcome } from "../webhooks/deliver";
import { DELIVERY_TIMEOUT_MS, DISABLE_AFTER_MS, MAX_DELIVERY_ATTEMPTS, nextDelayMs } from "../webhooks/schedule";
import { mapPage, newestFirst, type Page, type PageRequest } from "../db/keyset";
import type { Delivery, MirroredDelivery } from "../db/types";
import type { Webhook, WebhookPosition } from "./contract";
import { type Sql, sqlPage } from "./sql";

/** During a rotation the old secret keeps signing, beside the new one, for this long. */
export const ROTATION_OVERLAP_MS = 24 * 3600_000;
/** Settled deliveries stay here as long as their events, so they can be redelivered. */
const SETTLED_RETENTION_MS = 72 * 3600_000;

export type WebhookRow = {
  webhook_id: string;
  url: string;
  event_types: string;
  description: string | null;
  is_active: number;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: number | null;
  failing_since: number | null;
  disabled_reason: string | null;
  created_at: number;
  updated_at: number;
};

export type DeliveryRow = {
  delivery_id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  status: Delivery["status"];
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: number | null;
  created_at: number;
  updated_at: number;
  version: number;
};

export const toWebhook = (row: WebhookRow): Webhook => ({
  webhook_id: row.webhook_id,
  url: row.url,
  event_types: JSON.parse(row.event_types) as string[],
  description: row.description,
  is_active: row.is_active === 1,
  disabled_reason: row.disabled_reason,
  created_at: iso(row.created_at) ?? "",
  updated_at: iso(row.updated_at) ?? "",
});

export const toDelivery = (row: DeliveryRow): Delivery => ({
  delivery_id: row.delivery_id,
  webhook_id: row.webhook_id,
  event_id: row.event_id,
  event_type: row.event_type,
  status: row.status,
  attempts: row.attempts,
  last_status_code: row.last_status_code,
  last_error: row.last_error,
  next_attempt_at: row.status === "pending" ? iso(row.next_attempt_at) : null,
  created_at: iso(row.created_at) ?? "",
  updated_at: iso(row.updated_at) ?? "",
});

/**
 * Synchronous webhook state over the Durable Object's SQLite: endpoints, the deliveries of each
 * event, and the delivery schedule. A delivery is written before its first attempt and every
 * change to it is mirrored to D1 through the outbox.
 */
export class WebhookStore {
  /**
   * The active endpoints as fanOut needs them, read at the first event after a write to
   * `webhooks` (each event used to read them). A write drops it now and again after its step,
   * so a list read inside a transaction that then rolled back is never kept.
   */
  private subscribers: { webhookId: string; all: boolean; types: Set<string> }[] | null = null;

  constructor(
    private readonly sql: Sql,
    /** Asks for an outbox flush: every delivery change is mirrored to D1. */
    private readonly scheduleFlush: (at: number) => void,
    private readonly random: () => number = Math.random,
  ) {}

  get(webhookId: string): WebhookRow | null {
    return this.sql.one<WebhookRow>("SELECT * FROM webhooks WHERE webhook_id = ?", webhookId);
  }

  /** A page of endpoints, newest first. */
  list(req: PageRequest<WebhookPosition>): Page<Webhook, WebhookPosition> {
    const position = (row: WebhookRow): WebhookPosition => [row.created_at, row.webhook_id];
    return mapPage(sqlPage(this.sql, newestFirst({ select: "*", from: "webhooks" }, {}, ["created_at", "webhook_id"], position), req), toWebhook);
  }

  create(input: { url: string; event_types: string[]; description: string | null }, now: number): { webhook: Webhook; secret: string } {
    const secret = newSigningSecret();
    const webhookId = newId("wh");
    this.sql.run(
      `INSERT INTO webhooks (webhook_id, url, event_types, description, is_active, secret, created_at, updated_at)
       VALUES (?, ?, ?, ?, 1, ?, ?, ?)`,
      webhookId, input.url, JSON.stringify(input.event_types), input.description, secret, now, now,
    );
    this.endpointsChanged();
    const row = this.get(webhookId);
    if (!row) throw new Error("webhook vanished after insert");
    return { webhook: toWebhook(row), secret };
  }

  update(webhookId: string, patch: { url?: string; event_types?: string[]; description?: string | null; is_active?: boolean }, now: number): Webhook | null {
    const row = this.get(webhookId);
    if (!row) return null;
    const reactivated = patch.is_active === true && row.is_active === 0;
    const next: WebhookRow = {
      ...row,
      url: patch.url ?? row.url,
      event_types: patch.event_types ? JSON.stringify(patch.event_types) : row.event_types,
      description: patch.description !== undefined ? patch.description : row.description,
      is_active: patch.is_active === undefined ? row.is_active : patch.is_active ? 1 : 0,
      failing_since: reactivated ? null : row.failing_since,
      disabled_reason: reactivated ? null : patch.is_active === false ? "disabled by the client" : row.disabled_reason,
      updated_at: now,
    };
    this.sql.run(
      `UPDATE webhooks SET url = ?, event_types = ?, description = ?, is_active = ?, failing_since = ?, disabled_reason = ?, updated_at = ?
       WHERE webhook_id = ?`,
      next.url, next.event_types, next.description, next.is_active, next.failing_since, next.disabled_reason, now, webhookId,
    );
    this.endpointsChanged();
    if (next.is_active === 0 && row.is_active === 1) this.failPending(webhookId, "endpoint disabled", now);
    return toWebhook(next);
  }

  remove(webhookId: string, now: number): boolean {
    if (!this.get(webhookId)) return false;
    this.failPending(webhookId, "endpoint deleted", now);
    this.sql.run("DELETE FROM webhooks WHERE webhook_id = ?", webhookId);
    this.endpointsChanged();
    return true;
  }

  /** A new secret; the old one keeps signing beside it for ROTATION_OVERLAP_MS. */
  rotate(webhookId: string, now: number): { webhook: Webhook; secret: string } | null {
    const row = this.get(webhookId);
    if (!row) return null;
    const secret = newSigningSecret();
    this.sql.run(
      `UPDATE webhooks SET secret = ?, previous_secret = ?, previous_secret_expires_at = ?, updated_at = ? WHERE webhook_id = ?`,
      secret, row.secret, now + ROTATION_OVERLAP_MS, now, webhookId,
    );
    return { webhook: toWebhook({ ...row, updated_at: now }), secret };
  }

  /** The secrets a delivery is signed with now: the current one, and the previous during a rotation. */
  secrets(row: WebhookRow, now: number): string[] {
    const previous = row.previous_secret && (row.previous_secret_expires_at ?? 0) > now ? [row.previous_secret] : [];
    return [row.secret, ...previous];
  }

  /** One pending delivery per active endpoint that subscribes to the event's type. */
  fanOut(eventId: string, eventType: string, now: number): void {
    this.subscribers ??= this.sql.all<WebhookRow>("SELECT * FROM webhooks WHERE is_active = 1").map((hook) => {
      const types = new Set(JSON.parse(hook.event_types) as string[]);
      return { webhookId: hook.webhook_id, all: types.has("*"), types };
    });
    for (const hook of this.subscribers) if (hook.all || hook.types.has(eventType)) this.enqueue(hook.webhookId, eventId, eventType, now);
  }

  /** Every write to `webhooks` calls this: fanOut reads the endpoints again. */
  private endpointsChanged(): void {
    this.subscribers = null;
    queueMicrotask(() => {
      this.subscribers = null;
    });
  }

  enqueue(webhookId: string, eventId: string, eventType: string, now: number): DeliveryRow {
    const row: DeliveryRow = {
      delivery_id: newId("dlv"),
      webhook_id: webhookId,
      event_id: eventId,
      event_type: eventType,
      status: "pending",
      attempts: 0,
      last_status_code: null,
      last_error: null,
      next_attempt_at: now,
      created_at: now,
      updated_at: now,
      version: 1,
    };
    this.sql.run(
      `INSERT INTO deliveries (delivery_id, webhook_id, event_id, event_type, status, attempts, next_attempt_at, created_at, updated_at, version)
       VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, 1)`,
      row.delivery_id, webhookId, eventId, eventType, now, now, now,
    );
    this.mirror(row);
    return row;
  }

  getDelivery(deliveryId: string): DeliveryRow | null {
    return this.sql.one<DeliveryRow>("SELECT * FROM deliveries WHERE delivery_id = ?", deliveryId);
  }

  due(now: number, limit: number): DeliveryRow[] {
    return this.sql.all<DeliveryRow>(
      "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
      now, limit,
    );
  }

  nextDue(): number | null {
    const row = this.sql.one<{ due: number | null }>("SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE status = 'pending'");
    return row?.due ?? null;
  }

  /**
   * Counts an attempt before it goes out. Until its outcome is in, the delivery is due again
   * only after the attempt's timeout, so that a crash mid-attempt is retried and never doubled.
   */
  begin(row: DeliveryRow, now: number): DeliveryRow {
    const next = { ...row, attempts: row.attempts + 1, next_attempt_at: now + DELIVERY_TIMEOUT_MS + 5_000, updated_at: now, version: row.version + 1 };
    this.write(next);
    return next;
  }

  /** Records an attempt's outcome and schedules the next one, or settles the delivery. */
  settle(row: DeliveryRow, outcome: AttemptOutcome, now: number): DeliveryRow {
    const hook = this.get(row.webhook_id);
    const base = { ...row, last_status_code: outcome.status, last_error: outcome.error, updated_at: now, version: row.version + 1 };
    if (outcome.ok) {
      const next: DeliveryRow = { ...base, status: "succeeded", next_attempt_at: null };
      this.write(next);
      if (hook?.failing_since !== null) this.sql.run("UPDATE webhooks SET failing_since = NULL WHERE webhook_id = ?", row.webhook_id);
      return next;
    }
    const delay = outcome.refused || outcome.gone ? null : (outcome.retryAfterMs ?? nextDelayMs(row.attempts, this.random));
    const exhausted = delay === null || row.attempts >= MAX_DELIVERY_ATTEMPTS;
    const next: DeliveryRow = exhausted ? { ...base, status: "failed", next_attempt_at: null } : { ...base, next_attempt_at: now + (delay ?? 0) };
    this.write(next);
    if (hook) {
      if (outcome.gone) this.disable(hook.webhook_id, "the endpoint answered 410 Gone", now);
      else {
        const failingSince = hook.failing_since ?? now;
        if (hook.failing_since === null) this.sql.run("UPDATE webhooks SET failing_since = ? WHERE webhook_id = ?", now, hook.webhook_id);
        if (now - failingSince >= DISABLE_AFTER_MS) this.disable(hook.webhook_id, "every attempt failed for 5 days", now);
      }
    }
    return next;
  }

  /** Settles a pending delivery that can never be attempted (its endpoint or event is gone). */
  abandon(row: DeliveryRow, reason: string, now: number): void {
    this.write({ ...row, status: "failed", next_attempt_at: null, last_error: reason, updated_at: now, version: row.version + 1 });
  }

  disable(webhookId: string, reason: string, now: number): void {
    this.sql.run("UPDATE webhooks SET is_active = 0, disabled_reason = ?, updated_at = ? WHERE webhook_id = ?", reason, now, webhookId);
    this.endpointsChanged();
    this.failPending(webhookId, "endpoint disabled", now);
  }

  private failPending(webhookId: string, reason: string, now: number): void {
    for (const row of this.sql.all<DeliveryRow>("SELECT * FROM deliveries WHERE webhook_id = ? AND status = 'pending'", webhookId)) {
      this.abandon(row, reason, now);
    }
  }

  /** Settled deliveries leave once their events have (both are in D1 or expired by then). */
  prune(now: number, limit: number): number {
    return this.sql.run(
      `DELETE FROM deliveries WHERE delivery_id IN
         (SELECT delivery_id FROM deliveries WHERE status != 'pending' AND updated_at < ? LIMIT ?)`,
      now - SETTLED_RETENTION_MS, limit,
    );
  }

  private write(row: DeliveryRow): void {
    this.sql.run(
      `UPDATE deliveries SET status = ?, attempts = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?, updated_at = ?, version = ?
       WHERE delivery_id = ?`,
      row.status, row.attempts, row.last_status_code, row.last_error, row.next_attempt_at, row.updated_at, row.version, row.delivery_id,
    );
    this.mirror(row);
  }

  private mirror(row: DeliveryRow): void {
    const payload: MirroredDelivery = { delivery: toDelivery(row), created_ms: row.created_at };
    this.sql.run(
      `INSERT INTO delivery_outbox (delivery_id, version, payload) VALUES (?, ?, ?)
       ON CONFLICT (delivery_id) DO UPDATE SET version = excluded.version, payload = excluded.payload`,
      row.delivery_id, row.version, JSON.stringify(payload),
    );
    this.scheduleFlush(row.updated_at);
  }
}
