-- Tenants and their API keys. Keys are stored only as SHA-256 hashes.
CREATE TABLE namespaces (
  namespace_id TEXT PRIMARY KEY,
  namespace_name TEXT NOT NULL UNIQUE,
  settings TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX namespaces_created ON namespaces (created_at DESC, namespace_id DESC);

CREATE TABLE api_keys (
  key_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL REFERENCES namespaces (namespace_id),
  name TEXT,
  key_hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE INDEX api_keys_namespace ON api_keys (namespace_id, created_at DESC, key_id DESC);

-- Task log lines, flushed from each NamespaceDO's outbox; (task_id, seq) makes a replay harmless.
CREATE TABLE task_logs (
  task_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  namespace_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  level TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
  message TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  written_at INTEGER NOT NULL,
  PRIMARY KEY (task_id, seq)
);
CREATE INDEX task_logs_written ON task_logs (written_at);
