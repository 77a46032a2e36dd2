import { getDeliveryRecord } from "../db/deliveries";
import type { Delivery } from "../db/types";
import { fail, ok, type Result } from "../errors";
import { attemptDelivery } from "../webhooks/deliver";
import { allowPrivateUrls } from "../webhooks/urls";
import { NamespacePart } from "./part";
import { yieldTurn } from "./turn";
import { type DeliveryRow, toDelivery } from "./webhooks";

/** Delivery attempts one alarm starts at most; the rest start in the next, at once. */
const DELIVERY_BATCH = 100;
/** Delivery attempts started between two turns of the event loop. */
export const DELIVERY_CHUNK = 25;

/**
 * Webhook deliveries on their way out: starts the due ones (each attempt persisted before it
 * goes, run without the alarm waiting on it), records their outcome, and makes the deliveries
 * a client asks for (a test event, a redelivery).
 */
export class Deliveries extends NamespacePart {
  /** Deliveries whose attempt is out right now, so that no alarm starts a second one. */
  private readonly inFlight = new Set<string>();

  /** Sends a `webhook.test` event to this endpoint alone, through the usual delivery path. */
  async testWebhook(webhookId: string): Promise<Result<Delivery>> {
    const now = this.clock.now();
    const result = this.ctx.storage.transactionSync((): Result<Delivery> => {
      const hook = this.webhooks.get(webhookId);
      if (!hook) return fail("not_found", `webhook ${webhookId} not found`);
      if (hook.is_active === 0) return fail("conflict", "the webhook is disabled; activate it first", { is_active: false });
      const eventId = this.store.storeEventOnly("webhook.test", null, { webhook: { webhook_id: hook.webhook_id, url: hook.url } }, now);
      return ok(toDelivery(this.webhooks.enqueue(webhookId, eventId, "webhook.test", now)));
    });
    await this.armAlarm();
    return result;
  }

  /** Delivers an event again to the endpoint, as a new delivery with the same webhook-id. */
  async redeliver(webhookId: string, deliveryId: string): Promise<Result<Delivery>> {
    const now = this.clock.now();
    const original = this.webhooks.getDelivery(deliveryId) ?? (await getDeliveryRecord(this.env.DB, this.namespaceId, deliveryId));
    const result = this.ctx.storage.transactionSync((): Result<Delivery> => {
      const hook = this.webhooks.get(webhookId);
      if (!hook || !original || original.webhook_id !== webhookId) return fail("not_found", `delivery ${deliveryId} not found`);
      if (hook.is_active === 0) return fail("conflict", "the webhook is disabled; activate it first", { is_active: false });
      if (this.eventBody(original.event_id) === null) {
        return fail("conflict", "the event is no longer kept (events can be redelivered for 72 hours)", { event_id: original.event_id });
      }
      return ok(toDelivery(this.webhooks.enqueue(webhookId, original.event_id, original.event_type, now)));
    });
    await this.armAlarm();
    return result;
  }

  /** How many delivery attempts are out right now (for tests and the benchmark to wait on). */
  deliveriesInFlight(): number {
    return this.inFlight.size;
  }

  /**
   * Starts the due webhook deliveries, DELIVERY_BATCH at most (the alarm comes again for the
   * rest). Each attempt is counted and persisted before it goes out, then runs on its own: the
   * alarm does not wait for it, so a slow or dead endpoint delays neither the other deliveries
   * nor the queue sends and flushes of later alarms. They start DELIVERY_CHUNK a turn of the
   * event loop; after a turn each is read again, as its endpoint may have been disabled.
   * Returns how many were listed.
   */
  async startDeliveries(now: number): Promise<number> {
    const due = this.webhooks.due(now, DELIVERY_BATCH).filter((d) => !this.inFlight.has(d.delivery_id));
    for (let i = 0; i < due.length; i += DELIVERY_CHUNK) {
      if (i > 0) await yieldTurn();
      for (const listed of due.slice(i, i + DELIVERY_CHUNK)) this.start(listed, now);
    }
    return due.length;
  }

  private start(listed: DeliveryRow, now: number): void {
    try {
      const start = this.ctx.storage.transactionSync(() => {
        const delivery = this.webhooks.getDelivery(listed.delivery_id);
        if (!delivery || delivery.status !== "pending" || delivery.attempts !== listed.attempts || this.inFlight.has(delivery.delivery_id)) return null;
        const hook = this.webhooks.get(delivery.webhook_id);
        const body = this.eventBody(delivery.event_id);
        if (!hook || hook.is_active === 0 || body === null) {
          this.webhooks.abandon(delivery, !hook || hook.is_active === 0 ? "endpoint disabled or deleted" : "event expired", now);
          return null;
        }
        return { row: this.webhooks.begin(delivery, now), url: hook.url, secrets: this.webhooks.secrets(hook, now), body };
      });
      if (!start) return;
      this.inFlight.add(listed.delivery_id);
      this.ctx.waitUntil(this.deliver(start.row, start.url, start.secrets, start.body));
    } catch (err) {
      console.error(`delivery ${listed.delivery_id} could not start`, err);
    }
  }

  private async deliver(row: DeliveryRow, url: string, secrets: string[], body: string): Promise<void> {
    try {
      const outcome = await attemptDelivery(url, secrets, row.event_id, body, allowPrivateUrls(this.env), this.clock.now());
      this.ctx.storage.transactionSync(() => {
        // The delivery may have been settled meanwhile (its endpoint disabled or deleted).
        const current = this.webhooks.getDelivery(row.delivery_id);
        if (current && current.status === "pending" && current.attempts === row.attempts) {
          this.webhooks.settle(current, outcome, this.clock.now());
        }
      });
    } catch (err) {
      console.error(`delivery ${row.delivery_id} outcome could not be recorded; it is retried after its timeout`, err);
    } finally {
      this.inFlight.delete(row.delivery_id);
      await this.armAlarm();
    }
  }

  /** The body of a stored event, or null once it has been pruned. */
  private eventBody(eventId: string): string | null {
    return this.sql.one<{ data: string }>("SELECT data FROM events WHERE event_id = ?", eventId)?.data ?? null;
  }
}
