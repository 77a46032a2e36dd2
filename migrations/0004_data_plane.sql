-- The data plane (SPEC §8): every row belongs to one namespace.
CREATE TABLE buckets (
  bucket_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  bucket_name TEXT NOT NULL,
  description TEXT,
  created_at TEXT NOT NULL,
  UNIQUE (namespace_id, bucket_name)
);
CREATE INDEX buckets_namespace ON buckets (namespace_id, created_at, bucket_id);

-- An object is 'pending' until the tasks it causes exist, and only 'ready' objects are visible:
-- no one ever sees an object without its tasks. A pending object whose request died is swept.
CREATE TABLE objects (
  object_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  bucket_id TEXT NOT NULL,
  object_key TEXT,
  content TEXT NOT NULL,
  metadata TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'ready')),
  task_ids TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX objects_bucket ON objects (namespace_id, bucket_id, created_ms, object_id);
CREATE INDEX objects_pending ON objects (created_ms) WHERE state = 'pending';

CREATE TABLE collections (
  collection_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  collection_name TEXT NOT NULL,
  feature_extractor TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (namespace_id, collection_name)
);
CREATE INDEX collections_namespace ON collections (namespace_id, created_at, collection_id);

CREATE TABLE collection_sources (
  collection_id TEXT NOT NULL,
  bucket_id TEXT NOT NULL,
  namespace_id TEXT NOT NULL,
  PRIMARY KEY (collection_id, bucket_id)
);
CREATE INDEX collection_sources_bucket ON collection_sources (namespace_id, bucket_id);

CREATE TABLE documents (
  document_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  collection_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  metadata TEXT NOT NULL,
  vector BLOB NOT NULL,
  cluster_id INTEGER,
  taxonomy TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (collection_id, object_id)
);
CREATE INDEX documents_collection ON documents (collection_id, created_at, document_id);

CREATE TABLE taxonomies (
  taxonomy_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  taxonomy_name TEXT NOT NULL,
  nodes TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (namespace_id, taxonomy_name)
);

CREATE TABLE models (
  model_id TEXT PRIMARY KEY,
  namespace_id TEXT NOT NULL,
  model_name TEXT NOT NULL,
  collection_id TEXT NOT NULL,
  label_field TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 0,
  weights TEXT,
  metrics TEXT,
  trained_at TEXT,
  created_at TEXT NOT NULL,
  UNIQUE (namespace_id, model_name)
);

-- A batch import's payload, staged in chunks (it can exceed a queue message and a DO row).
CREATE TABLE batch_staging (
  staging_id TEXT NOT NULL,
  chunk INTEGER NOT NULL,
  first_index INTEGER NOT NULL,
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (staging_id, chunk)
);
