-- Webhook delivery records (SPEC §7), mirrored from each NamespaceDO and kept as long as task
-- logs. A write carries the delivery's version; an upsert never replaces a higher one.
CREATE TABLE webhook_deliveries (
  delivery_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  webhook_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts INTEGER NOT NULL,
  last_status_code INTEGER,
  last_error TEXT,
  next_attempt_at TEXT,
  created_at TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  version INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (namespace_id, webhook_id, created_ms, delivery_id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_ms);
