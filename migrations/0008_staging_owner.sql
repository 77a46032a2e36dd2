-- A batch import's staged payload belongs to its namespace and its task (SPEC §8): every read
-- names both, so a staging id seen in one namespace's task inputs reaches nothing elsewhere.
-- task_id is NULL only between staging and the creation of the task, which binds it (the
-- creating request, or the task itself when it first runs, whichever comes first).
CREATE TABLE batch_staging_owned (
  namespace_id TEXT NOT NULL,
  task_id TEXT,
  staging_id TEXT NOT NULL,
  chunk INTEGER NOT NULL,
  first_index INTEGER NOT NULL,
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (staging_id, chunk)
);

-- Rows staged before this migration get the owner of the first import that named them (a later
-- one naming the same staging id could only be a copy); rows no import names are dropped.
INSERT OR IGNORE INTO batch_staging_owned (namespace_id, task_id, staging_id, chunk, first_index, payload, created_ms)
SELECT r.namespace_id, r.task_id, s.staging_id, s.chunk, s.first_index, s.payload, s.created_ms
FROM batch_staging s
JOIN task_records r ON r.task_type = 'batch_import' AND json_extract(r.record, '$.inputs.staging_id') = s.staging_id
ORDER BY r.created_at, r.task_id;

DROP TABLE batch_staging;
ALTER TABLE batch_staging_owned RENAME TO batch_staging;

CREATE INDEX batch_staging_owner ON batch_staging (namespace_id, staging_id, task_id, first_index);
CREATE INDEX batch_staging_task ON batch_staging (task_id);
CREATE INDEX batch_staging_age ON batch_staging (created_ms);
