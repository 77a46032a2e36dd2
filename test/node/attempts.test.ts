import { beforeEach, describe, expect, it } from "vitest";
import { Attempts, sha256 } from "../../src/namespace/attempts";
import { ProcessorStore } from "../../src/namespace/processors";
import { migrate } from "../../src/namespace/schema";
import { Sql } from "../../src/namespace/sql";
import { TaskStore } from "../../src/namespace/store";
import { EMPTY_PROGRESS, type TaskRow } from "../../src/namespace/task-row";
import { DEFAULT_SETTINGS, type Settings } from "../../src/tasks/model";
import { nodeStorage } from "./sqlite-storage";

/**
 * The attempt life cycle (claim, reports under a token, fencing of ended attempts, retries,
 * leases and timeouts) run synchronously over Node's SQLite: no Workers runtime involved.
 */
const T0 = 1_700_000_000_000;
const LEASE_S = 30;

let sql: Sql;
let store: TaskStore;
let attempts: Attempts;
let admitted: number[];
let settings: Settings;
let tx: <T>(fn: () => T) => T;

beforeEach(() => {
  const storage = nodeStorage();
  tx = (fn) => storage.transactionSync(fn);
  sql = new Sql(storage.sql);
  migrate(sql, storage as unknown as DurableObjectStorage);
  store = new TaskStore(sql, () => "ns_test", 86_400_000);
  settings = { ...DEFAULT_SETTINGS, processing_timeout_seconds: 600 };
  admitted = [];
  const processors = new ProcessorStore(sql);
  processors.put("transcode", "https://processor.example/run", LEASE_S, "push", 10, T0);
  attempts = new Attempts({ sql, store, settings, processors, admit: (now) => admitted.push(now) });
});

/** A task of the processor's type, queued at attempt 1 with `maxAttempts`. */
function queuedTask(maxAttempts = 3, taskType = "transcode"): TaskRow {
  const row = store.insert({
    task_id: `tsk_${Math.random().toString(36).slice(2)}`, task_type: taskType, status: "created", inputs: "{}", outputs: null,
    progress: JSON.stringify(EMPTY_PROGRESS), error: null, attempt: 1, max_attempts: maxAttempts, priority: 5, parent_task_id: null,
    origin: "https://api.example", created_at: T0, queued_at: null, started_at: null, attempt_started_at: null, completed_at: null,
    updated_at: T0, timeout_at: null, lease_expires_at: null,
  });
  return store.transition(row, "queued", { queued_at: T0 }, T0);
}

const claim = (row: TaskRow, token: string, now: number, attempt = row.attempt) => tx(() => attempts.claim({ task_id: row.task_id, attempt }, token, now));
const report = (row: TaskRow, token: string, now: number, r: Parameters<Attempts["report"]>[2]) => tx(() => attempts.report(row.task_id, sha256(token), r, now));
const timers = (taskId: string) => sql.all<{ kind: string; due_at: number }>("SELECT kind, due_at FROM timers WHERE task_id = ? ORDER BY kind", taskId);

describe("Attempts (synchronous over SQLite)", () => {
  it("claims a queued attempt once, with a lease and a timeout; a second delivery changes nothing", () => {
    const row = queuedTask();
    const first = claim(row, "tok-1", T0 + 1000);
    expect(first).toMatchObject({ claimed: true, token: "tok-1", processor: { url: "https://processor.example/run" }, checkpoint: null });
    expect(store.get(row.task_id)).toMatchObject({ status: "processing", lease_expires_at: T0 + 1000 + LEASE_S * 1000, timeout_at: T0 + 1000 + 600_000 });
    expect(timers(row.task_id)).toEqual([
      { kind: "lease", due_at: T0 + 1000 + LEASE_S * 1000 },
      { kind: "timeout", due_at: T0 + 1000 + 600_000 },
    ]);
    const version = store.get(row.task_id)?.version;
    expect(claim(row, "tok-2", T0 + 2000)).toEqual({ claimed: false, reason: "task is processing at attempt 1" });
    expect(store.get(row.task_id)?.version).toBe(version);
  });

  it("refuses a report under an unknown token or another task's token", () => {
    const a = queuedTask();
    const b = queuedTask();
    claim(a, "tok-a", T0);
    claim(b, "tok-b", T0);
    expect(report(a, "nope", T0 + 10, { kind: "heartbeat" })).toMatchObject({ ok: false, error: { type: "unauthorized" } });
    expect(report(a, "tok-b", T0 + 10, { kind: "heartbeat" })).toMatchObject({ ok: false, error: { type: "unauthorized" } });
    expect(attempts.isCallbackToken(a.task_id, "tok-a")).toBe(true);
    expect(attempts.isCallbackToken(a.task_id, "tok-b")).toBe(false);
  });

  it("renews the lease on a heartbeat and on progress, which merges into the last progress", () => {
    const row = queuedTask();
    claim(row, "tok", T0);
    const ack = report(row, "tok", T0 + 20_000, { kind: "heartbeat" });
    expect(ack).toMatchObject({ ok: true, value: { status: "processing", lease_expires_at: new Date(T0 + 20_000 + LEASE_S * 1000).toISOString() } });
    report(row, "tok", T0 + 21_000, { kind: "progress", progress: { percent: 40, message: "halfway-ish" } });
    report(row, "tok", T0 + 22_000, { kind: "progress", progress: { processed: 4 } });
    expect(JSON.parse(store.get(row.task_id)?.progress ?? "{}")).toEqual({ percent: 40, message: "halfway-ish", processed: 4, total: null });
    expect(timers(row.task_id).find((t) => t.kind === "lease")?.due_at).toBe(T0 + 22_000 + LEASE_S * 1000);
  });

  it("fences an attempt whose lease ran out: it is retried, and its token can only get 409", () => {
    const row = queuedTask(3);
    claim(row, "old", T0);
    // A report that arrives after the lease is past: the attempt ends before the report is weighed.
    const late = report(row, "old", T0 + LEASE_S * 1000 + 1, { kind: "complete", outputs: { done: true } });
    expect(late).toMatchObject({ ok: false, error: { type: "conflict", details: { status: "queued", attempt: 2 } } });
    const retried = store.get(row.task_id);
    expect(retried).toMatchObject({ status: "queued", attempt: 2, lease_expires_at: null, timeout_at: null });
    expect(JSON.parse(retried?.error ?? "{}")).toMatchObject({ code: "lease_expired", retryable: true });
    expect(timers(row.task_id).map((t) => t.kind)).toEqual(["send"]);
    // The old message's redelivery cannot claim the new attempt; the new message can.
    expect(claim(row, "old-again", T0 + 60_000, 1)).toMatchObject({ claimed: false });
    expect(claim(row, "new", T0 + 60_000, 2)).toMatchObject({ claimed: true });
    expect(report(row, "old", T0 + 60_001, { kind: "heartbeat" })).toMatchObject({ ok: false, error: { type: "conflict" } });
    expect(report(row, "new", T0 + 60_001, { kind: "complete", outputs: { n: 1 } })).toMatchObject({ ok: true, value: { status: "completed" } });
  });

  it("completes at 100 %, clears the task's timers and gives the slot back; later reports conflict", () => {
    const row = queuedTask();
    claim(row, "tok", T0);
    report(row, "tok", T0 + 5, { kind: "progress", progress: { percent: 10, total: 9 } });
    const done = report(row, "tok", T0 + 10, { kind: "complete", outputs: { url: "s3://out" } });
    expect(done).toMatchObject({ ok: true, value: { status: "completed", lease_expires_at: null, task: { outputs: { url: "s3://out" } } } });
    expect(JSON.parse(store.get(row.task_id)?.progress ?? "{}")).toMatchObject({ percent: 100, total: 9 });
    expect(timers(row.task_id)).toEqual([]);
    expect(admitted).toEqual([T0 + 10]);
    expect(report(row, "tok", T0 + 11, { kind: "heartbeat" })).toMatchObject({ ok: false, error: { type: "conflict", details: { status: "completed" } } });
  });

  it("fails for good on a non-retryable error, and on a retryable one at the last attempt", () => {
    const once = queuedTask(1);
    claim(once, "a", T0);
    expect(report(once, "a", T0 + 1, { kind: "fail", error: { code: "boom", message: "no" }, retryable: true })).toMatchObject({ ok: true, value: { status: "failed" } });
    const fatal = queuedTask(3);
    claim(fatal, "b", T0);
    expect(report(fatal, "b", T0 + 1, { kind: "fail", error: { code: "bad_input", message: "no" }, retryable: false })).toMatchObject({ ok: true, value: { status: "failed" } });
    const retry = queuedTask(3);
    claim(retry, "c", T0);
    expect(report(retry, "c", T0 + 1, { kind: "fail", error: { code: "flaky", message: "again" }, retryable: true })).toMatchObject({ ok: true, value: { status: "queued", task: { attempt: 2 } } });
  });

  it("ends an attempt past its processing timeout as failed, whatever its lease says", () => {
    const row = queuedTask();
    claim(row, "tok", T0);
    tx(() => sql.run("UPDATE tasks SET lease_expires_at = ? WHERE task_id = ?", T0 + 10_000_000, row.task_id));
    const late = report(row, "tok", T0 + 600_000, { kind: "heartbeat" });
    expect(late).toMatchObject({ ok: false, error: { type: "conflict", details: { status: "failed" } } });
    expect(JSON.parse(store.get(row.task_id)?.error ?? "{}")).toMatchObject({ code: "timeout", retryable: false });
  });

  it("keeps a checkpoint for the next slice, which claims it under a new token and fences the old one", () => {
    const row = queuedTask();
    claim(row, "slice-0", T0);
    report(row, "slice-0", T0 + 100, { kind: "checkpoint", state: { next: 7 } });
    expect(store.get(row.task_id)).toMatchObject({ status: "processing", continuation: 1 });
    const next = tx(() => attempts.claim({ task_id: row.task_id, attempt: 1, slice: 1 }, "slice-1", T0 + 200));
    expect(next).toMatchObject({ claimed: true, checkpoint: { next: 7 } });
    expect(tx(() => attempts.claim({ task_id: row.task_id, attempt: 1, slice: 1 }, "dup", T0 + 300))).toMatchObject({ claimed: false });
    expect(report(row, "slice-0", T0 + 400, { kind: "heartbeat" })).toMatchObject({ ok: false, error: { type: "unauthorized" } });
    expect(report(row, "slice-1", T0 + 400, { kind: "heartbeat" })).toMatchObject({ ok: true });
  });

  it("fails a task the dead-letter queue gave up on, but only at that attempt while it is queued", () => {
    const row = queuedTask();
    tx(() => attempts.deadLetter({ task_id: row.task_id, attempt: 2 }, T0));
    expect(store.get(row.task_id)?.status).toBe("queued");
    tx(() => attempts.deadLetter({ task_id: row.task_id, attempt: 1 }, T0));
    expect(store.get(row.task_id)).toMatchObject({ status: "failed" });
    expect(JSON.parse(store.get(row.task_id)?.error ?? "{}")).toMatchObject({ code: "dispatch_failed" });
  });

  it("fails a claimed task whose type has neither a processor nor a handler", () => {
    const row = queuedTask(3, "nobody_runs_this");
    expect(claim(row, "tok", T0)).toEqual({ claimed: false, reason: 'no handler or processor for "nobody_runs_this"' });
    expect(store.get(row.task_id)?.status).toBe("failed");
  });
});
