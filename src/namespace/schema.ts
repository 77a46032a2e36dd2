import type { Sql } from "./sql";

/**
 * The NamespaceDO's SQLite schema as an append-only list: never edit an applied entry, add a
 * new one with the next id. Applied in the constructor under blockConcurrencyWhile.
 */
const MIGRATIONS: readonly { id: number; name: string; sql: string }[] = [
  {
    id: 1,
    name: "task engine",
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

      CREATE TABLE tasks (
        task_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        task_type TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('created','queued','processing','completed','failed','cancelled')),
        inputs TEXT NOT NULL,
        outputs TEXT,
        progress TEXT NOT NULL,
        error TEXT,
        attempt INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        parent_task_id TEXT,
        -- Origin of the API request that created the task: the base of processor callbacks
        -- when PUBLIC_URL is not set.
        origin TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        queued_at INTEGER,
        started_at INTEGER,
        attempt_started_at INTEGER,
        completed_at INTEGER,
        updated_at INTEGER NOT NULL,
        timeout_at INTEGER,
        lease_expires_at INTEGER,
        log_count INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX tasks_backlog ON tasks (status, priority DESC, seq);

      -- One row per processing attempt; the token hash fences reports from ended attempts.
      CREATE TABLE attempts (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        lease_seconds INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        PRIMARY KEY (task_id, attempt)
      );

      -- Every timer of the namespace; the alarm is always set to the earliest due_at.
      CREATE TABLE timers (
        task_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('send','lease','timeout','flush')),
        due_at INTEGER NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_id, kind)
      );
      CREATE INDEX timers_due ON timers (due_at);

      CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        task_id TEXT,
        created_at INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX events_created ON events (created_at);

      -- Writes bound for D1, flushed by the alarm with idempotent statements.
      CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('log')),
        task_id TEXT NOT NULL,
        payload TEXT NOT NULL
      );
      CREATE INDEX outbox_task ON outbox (task_id, id);

      CREATE TABLE processors (
        task_type TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        lease_seconds INTEGER NOT NULL,
        secret TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    id: 2,
    name: "task records mirrored to D1, idempotent creation",
    sql: `
      -- Bumped by every change a client can see; D1 keeps only the highest version it was sent.
      ALTER TABLE tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

      -- The latest unflushed snapshot of each changed task: a newer change replaces an older one.
      CREATE TABLE record_outbox (
        task_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        payload TEXT NOT NULL
      );

      -- Attempts outlive their task's stay here, so a late report still learns how it ended.
      ALTER TABLE attempts ADD COLUMN final_status TEXT;
      CREATE INDEX attempts_started ON attempts (started_at);

      CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        task_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX idempotency_created ON idempotency (created_at);

      CREATE INDEX tasks_terminal ON tasks (completed_at) WHERE completed_at IS NOT NULL;
    `,
  },
  {
    id: 3,
    name: "webhooks and their deliveries",
    sql: `
      -- SQLite cannot alter a CHECK: the timers table is rebuilt with the new 'progress' kind.
      CREATE TABLE timers_v3 (
        task_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('send','lease','timeout','flush','progress')),
        due_at INTEGER NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_id, kind)
      );
      INSERT INTO timers_v3 SELECT task_id, kind, due_at, tries FROM timers;
      DROP TABLE timers;
      ALTER TABLE timers_v3 RENAME TO timers;
      CREATE INDEX timers_due ON timers (due_at);

      -- When the last task.progress event of a task was emitted (at most one a second).
      ALTER TABLE tasks ADD COLUMN progress_event_at INTEGER;

      CREATE TABLE webhooks (
        webhook_id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        event_types TEXT NOT NULL,
        description TEXT,
        is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_secret_expires_at INTEGER,
        -- Since when every attempt to this endpoint has failed; NULL after any success.
        failing_since INTEGER,
        disabled_reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE deliveries (
        delivery_id TEXT PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending','succeeded','failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_status_code INTEGER,
        last_error TEXT,
        -- While an attempt is out, already counted and due again only after its timeout.
        next_attempt_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL DEFAULT 1
      );
      CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
      CREATE INDEX deliveries_webhook ON deliveries (webhook_id, status);
      CREATE INDEX deliveries_settled ON deliveries (updated_at) WHERE status != 'pending';
      CREATE INDEX events_task ON events (task_id, seq);

      -- Delivery records mirrored to D1, like task records.
      CREATE TABLE delivery_outbox (
        delivery_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        payload TEXT NOT NULL
      );
    `,
  },
  {
    id: 4,
    name: "handler checkpoints: an attempt continues in a new consumer invocation",
    sql: `
      ALTER TABLE tasks ADD COLUMN checkpoint TEXT;
      -- The slice of the attempt that may be claimed next; 0 while no continuation waits.
      ALTER TABLE tasks ADD COLUMN continuation INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    id: 5,
    name: "pull-mode processors: workers lease queued tasks of their type",
    sql: `
      -- A pull processor has no url (stored as ''): its tasks never go to the queue.
      ALTER TABLE processors ADD COLUMN mode TEXT NOT NULL DEFAULT 'push' CHECK (mode IN ('push', 'pull'));
      -- A lease takes the queued tasks of one type, highest priority then oldest first.
      CREATE INDEX tasks_by_type ON tasks (task_type, status, priority DESC, seq);
    `,
  },
  {
    id: 6,
    name: "fairness keys, scheduled starts, replays",
    sql: `
      -- '' is "no key": a real concurrency_key has at least one character.
      ALTER TABLE tasks ADD COLUMN concurrency_key TEXT NOT NULL DEFAULT '';
      ALTER TABLE tasks ADD COLUMN run_at INTEGER;
      -- 1 while a created task waits for its run_at; then the alarm releases it to the fair queue.
      ALTER TABLE tasks ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE tasks ADD COLUMN replay_of_task_id TEXT;
      -- The ready tasks of one (key, priority) group, oldest first: admission takes the head.
      CREATE INDEX tasks_fair ON tasks (concurrency_key, priority, seq) WHERE status = 'created' AND scheduled = 0;
      CREATE INDEX tasks_scheduled ON tasks (run_at, seq) WHERE status = 'created' AND scheduled = 1;

      -- Per key: its tasks holding a slot (queued or processing). Rows with 0 are removed.
      CREATE TABLE fair_keys (key TEXT PRIMARY KEY, active INTEGER NOT NULL);
      -- Per (key, priority) with ready tasks: how many wait, the round-robin turn (lower is
      -- served sooner), and whether the key is at max_concurrent_per_key.
      CREATE TABLE fair_queue (
        key TEXT NOT NULL,
        priority INTEGER NOT NULL,
        waiting INTEGER NOT NULL,
        turn INTEGER NOT NULL,
        blocked INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (key, priority)
      );
      CREATE INDEX fair_queue_next ON fair_queue (blocked, priority DESC, turn);

      INSERT INTO fair_keys (key, active)
        SELECT concurrency_key, COUNT(*) FROM tasks WHERE status IN ('queued', 'processing') GROUP BY concurrency_key;
      INSERT INTO fair_queue (key, priority, waiting, turn)
        SELECT concurrency_key, priority, COUNT(*), MIN(seq) FROM tasks WHERE status = 'created' GROUP BY concurrency_key, priority;
      INSERT OR REPLACE INTO meta (key, value) VALUES ('fair_turn', (SELECT COALESCE(MAX(seq), 0) FROM tasks));
    `,
  },
  {
    id: 7,
    name: "events pruned by seq: no created_at index written with every event",
    sql: `
      -- The prune takes the oldest events by seq (the primary key) instead.
      DROP INDEX IF EXISTS events_created;
    `,
  },
  {
    id: 8,
    name: "the by-type index holds queued tasks only",
    sql: `
      -- Every query by type asks for queued tasks (a lease, claim-ahead, a type turned push), and
      -- the queued are few (at most the concurrency limit): created and finished tasks no longer
      -- write an entry here.
      DROP INDEX IF EXISTS tasks_by_type;
      CREATE INDEX tasks_queued_by_type ON tasks (task_type, priority DESC, seq) WHERE status = 'queued';
    `,
  },
  {
    id: 9,
    name: "a task batch keeps its ids in its one idempotency row",
    sql: `
      -- A batch is atomic, so its marker row, holding its tasks' ids in order (a JSON array),
      -- answers a repeat: no row per task. Markers written before this have none (NULL) and
      -- keep their rows per task (batch-keys.ts reads both).
      ALTER TABLE idempotency ADD COLUMN task_ids TEXT;
    `,
  },
  {
    id: 10,
    name: "record outbox as the set of changed tasks, built from their rows at the flush",
    sql: `
      -- A task's row stays until its final record is in D1 (it is evicted only at the version a
      -- flush wrote), so the flush builds each record from the row: the outbox keeps which tasks
      -- changed, at which version, and the one thing of the record a row cannot give later, a
      -- created task's queue position at its change. No task JSON is written a change, and
      -- without a rowid the table is one B-tree.
      CREATE TABLE record_outbox_v10 (
        task_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        queue_position INTEGER
      ) WITHOUT ROWID;
      INSERT INTO record_outbox_v10 (task_id, version, queue_position)
        SELECT task_id, version, payload ->> '$.task.queue_position' FROM record_outbox;
      DROP TABLE record_outbox;
      ALTER TABLE record_outbox_v10 RENAME TO record_outbox;
    `,
  },
  {
    id: 11,
    name: "keyless tasks' slots are not counted",
    sql: `
      -- Keyless tasks never block, so FairQueue.slots no longer keeps their count: the row
      -- counted so far would only go stale.
      DELETE FROM fair_keys WHERE key = '';
    `,
  },
  {
    id: 12,
    name: "timers without a rowid",
    sql: `
      -- Keyed by (task_id, kind) in one B-tree instead of a table and its primary key's index:
      -- every timer written (a create's send, a claim's lease and timeout, a completion's
      -- clearing) touches one page fewer, which keeps a create's savepoint journal in memory
      -- (SQLite moves it to a temp file past 64 KiB, 16 pages).
      CREATE TABLE timers_v12 (
        task_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('send','lease','timeout','flush','progress')),
        due_at INTEGER NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_id, kind)
      ) WITHOUT ROWID;
      INSERT INTO timers_v12 SELECT task_id, kind, due_at, tries FROM timers;
      DROP TABLE timers;
      ALTER TABLE timers_v12 RENAME TO timers;
      CREATE INDEX timers_due ON timers (due_at);
    `,
  },
];

/** Applies every migration not yet applied, each in its own transaction. */
export function migrate(sql: Sql, storage: DurableObjectStorage): void {
  sql.run("CREATE TABLE IF NOT EXISTS _schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
  const applied = new Set(sql.all<{ id: number }>("SELECT id FROM _schema_migrations").map((r) => Number(r.id)));
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.id)) continue;
    storage.transactionSync(() => {
      sql.run(migration.sql);
      sql.run("INSERT INTO _schema_migrations (id, name, applied_at) VALUES (?, ?, ?)", migration.id, migration.name, Date.now());
    });
  }
}
