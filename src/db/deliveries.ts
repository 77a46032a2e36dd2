import { keysetPage, mapPage, newestFirst, type Page, type PageRequest } from "./keyset";
import type { Delivery, MirroredDelivery } from "./types";

/** D1 binds at most 100 parameters a statement; a delivery takes 14. */
const PER_STATEMENT = 7;

/** Version-guarded upserts of delivery records, several a statement. */
export function deliveryUpserts(db: D1Database, namespaceId: string, rows: { version: number; mirrored: MirroredDelivery }[]): D1PreparedStatement[] {
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < rows.length; i += PER_STATEMENT) {
    const chunk = rows.slice(i, i + PER_STATEMENT);
    statements.push(
      db
        .prepare(
          `INSERT INTO webhook_deliveries (delivery_id, namespace_id, webhook_id, event_id, event_type, status, attempts,
             last_status_code, last_error, next_attempt_at, created_at, created_ms, updated_at, version)
           VALUES ${chunk.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}
           ON CONFLICT (delivery_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
             last_status_code = excluded.last_status_code, last_error = excluded.last_error,
             next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at, version = excluded.version
           WHERE excluded.version > webhook_deliveries.version`,
        )
        .bind(
          ...chunk.flatMap(({ version, mirrored: { delivery: d, created_ms } }) => [
            d.delivery_id, namespaceId, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts,
            d.last_status_code, d.last_error, d.next_attempt_at, d.created_at, created_ms, d.updated_at, version,
          ]),
        ),
    );
  }
  return statements;
}

type DeliveryRecord = Delivery & { created_ms: number };

const DELIVERIES = {
  select: `delivery_id, webhook_id, event_id, event_type, status, attempts, last_status_code, last_error, next_attempt_at,
    created_at, created_ms, updated_at`,
  from: "webhook_deliveries",
};

/** A page of an endpoint's deliveries, newest first, by (created_ms, delivery_id). */
export async function listDeliveries(db: D1Database, namespaceId: string, webhookId: string, req: PageRequest<[number, string]>): Promise<Page<Delivery, [number, string]>> {
  const endpoint = { namespace_id: namespaceId, webhook_id: webhookId };
  const position = (d: DeliveryRecord): [number, string] => [d.created_ms, d.delivery_id];
  const page = await keysetPage(db, newestFirst(DELIVERIES, endpoint, ["created_ms", "delivery_id"], position), req);
  return mapPage(page, ({ created_ms: _, ...d }): Delivery => d);
}

export async function getDeliveryRecord(db: D1Database, namespaceId: string, deliveryId: string): Promise<Delivery | null> {
  const row = await db
    .prepare(
      `SELECT delivery_id, webhook_id, event_id, event_type, status, attempts, last_status_code, last_error, next_attempt_at,
         created_at, updated_at FROM webhook_deliveries WHERE namespace_id = ? AND delivery_id = ?`,
    )
    .bind(namespaceId, deliveryId)
    .first<Delivery>();
  return row ?? null;
}

/** Deletes up to `limit` delivery records created before `cutoffMs`; returns how many went. */
export async function purgeDeliveries(db: D1Database, cutoffMs: number, limit: number): Promise<number> {
  const result = await db
    .prepare("DELETE FROM webhook_deliveries WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries WHERE created_ms < ? LIMIT ?)")
    .bind(cutoffMs, limit)
    .run();
  return result.meta.changes ?? 0;
}
