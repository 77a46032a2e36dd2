-- The retained record of every task, mirrored from each NamespaceDO's outbox. A write carries
-- the task's version, and an upsert never replaces a higher version with a lower one.
CREATE TABLE task_records (
  task_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  seq INTEGER NOT NULL,                -- per-namespace creation order: the stable list order
  task_type TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('created', 'queued', 'processing', 'completed', 'failed', 'cancelled')),
  parent_task_id TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  expires_at INTEGER,                  -- ms; set once terminal, NULL while the task is live
  version INTEGER NOT NULL,
  record TEXT NOT NULL                 -- the task object as JSON
);
-- One index per list access path, each ending in the keyset of its sort order, so that a page
-- costs the same however many records a namespace has.
CREATE INDEX task_records_seq ON task_records (namespace_id, seq);
CREATE INDEX task_records_status_seq ON task_records (namespace_id, status, seq);
CREATE INDEX task_records_type_seq ON task_records (namespace_id, task_type, seq);
CREATE INDEX task_records_parent_seq ON task_records (namespace_id, parent_task_id, seq) WHERE parent_task_id IS NOT NULL;
CREATE INDEX task_records_updated ON task_records (namespace_id, updated_at, task_id);
CREATE INDEX task_records_status_updated ON task_records (namespace_id, status, updated_at, task_id);
CREATE INDEX task_records_expires ON task_records (expires_at) WHERE expires_at IS NOT NULL;

-- Idempotency-Key records (SPEC §3), one mechanism for every creating POST.
CREATE TABLE idempotency_keys (
  namespace_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
  locked_until INTEGER NOT NULL,       -- ms; a pending key whose holder died is taken over after this
  response_status INTEGER,
  response_body TEXT,
  expires_at INTEGER NOT NULL,         -- ms
  PRIMARY KEY (namespace_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
