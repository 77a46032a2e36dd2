import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { logInserts, readLogs } from "../src/db/logs";
import { getRecord, recordUpserts } from "../src/db/records";
import { registerHandler } from "../src/handlers/registry";
import type { NamespaceDO } from "../src/namespace/do";
import type { Task } from "../src/tasks/model";
import { createTask, stub, tenant, waitForStatus } from "./helpers";
import { recordColumns } from "./record-columns";
import { allEvents } from "./inspect";

registerHandler({ type: "mirror_noop", run: async () => ({}) });

const HOUR = 3600_000;

/** A task as a record carries it, under its own id and with `patch`. */
const taskLike = (base: Task, n: number, patch: Partial<Task> = {}): Task => ({ ...base, task_id: `tsk_mirror${n}x${base.task_id.slice(4)}`, ...patch });

describe("the outbox's writes to D1", () => {
  it("mirrors many records in one statement, a very large one column by column, and never moves one back", async () => {
    const t = await tenant();
    const base = await createTask(t, { task_type: "mirror_noop", inputs: { quote: "\"it's\" \\ é ✓" } });
    const small = Array.from({ length: 60 }, (_, i) => taskLike(base, i, { status: "queued", parent_task_id: i % 2 === 0 ? null : base.task_id }));
    // Past the JSON statement's bound: its text goes in bound columns of its own statement.
    const large = taskLike(base, 99, { status: "completed", outputs: { text: "z\"".repeat(150_000) }, completed_at: base.created_at });
    const rows = [...small, large].map((task, i) => recordColumns(2, 1000 + i, i === 60 ? Date.now() + HOUR : null, task));
    const statements = recordUpserts(env.DB, t.namespaceId, rows);
    expect(statements.length).toBe(2);
    await env.DB.batch(statements);
    for (const task of [...small, large]) expect(await getRecord(env.DB, t.namespaceId, task.task_id)).toEqual(task);
    const stored = await env.DB.prepare("SELECT seq, status, parent_task_id, expires_at, version FROM task_records WHERE task_id = ?").bind(small[1]!.task_id).first();
    expect(stored).toEqual({ seq: 1001, status: "queued", parent_task_id: base.task_id, expires_at: null, version: 2 });

    // A replay of an older version changes nothing, in either form.
    const older = [small[0]!, large].map((task) => recordColumns(1, 1, null, { ...task, status: "created" }));
    await env.DB.batch(recordUpserts(env.DB, t.namespaceId, older));
    expect(await getRecord(env.DB, t.namespaceId, small[0]!.task_id)).toEqual(small[0]);
    expect(await getRecord(env.DB, t.namespaceId, large.task_id)).toEqual(large);
  });

  it("writes log lines many to a statement, and a replay adds none twice", async () => {
    const t = await tenant();
    const taskId = `tsk_mirrorlogs${Date.now().toString(36)}`;
    const at = Date.now();
    const lines = Array.from({ length: 130 }, (_, i) => ({
      task_id: taskId,
      line: { seq: i + 1, attempt: 1 + (i % 2), level: i % 3 === 0 ? ("warn" as const) : ("info" as const), message: `line ${i} "quoted" \\ é ✓\n`, at: at + i },
    }));
    const statements = logInserts(env.DB, t.namespaceId, lines);
    expect(statements.length).toBe(1);
    await env.DB.batch(statements);
    await env.DB.batch(logInserts(env.DB, t.namespaceId, lines.slice(0, 10)));
    const read = await readLogs(env.DB, t.namespaceId, taskId, 0, 1000, 0);
    expect(read).toEqual(lines.map(({ line }) => ({ seq: line.seq, timestamp: new Date(line.at).toISOString(), level: line.level, message: line.message, attempt: line.attempt })));
  });

  it("splits long lines over several statements, each within its bound, and loses none", async () => {
    const t = await tenant();
    const taskId = `tsk_mirrorlong${Date.now().toString(36)}`;
    const at = Date.now();
    // 40 lines of the largest size a line may have: about 320 KiB, past one statement's 256 KiB.
    const lines = Array.from({ length: 40 }, (_, i) => ({ task_id: taskId, line: { seq: i + 1, attempt: 1, level: "info" as const, message: `${i}`.padEnd(8 * 1024, "x"), at } }));
    const statements = logInserts(env.DB, t.namespaceId, lines);
    expect(statements.length).toBe(2);
    await env.DB.batch(statements);
    const read = await readLogs(env.DB, t.namespaceId, taskId, 0, 1000, 0);
    expect(read.map((l) => l.seq)).toEqual(lines.map(({ line }) => line.seq));
  });
});

describe("events kept in the object", () => {
  it("prunes events older than 72 h by their order, keeps newer ones and the numbering", async () => {
    const t = await tenant();
    const old = await createTask(t, { task_type: "mirror_noop" });
    await waitForStatus(t, old.task_id, "completed");
    await runInDurableObject(stub(t), (instance: NamespaceDO) => instance.clock.advance(71 * HOUR));
    const recent = await createTask(t, { task_type: "mirror_noop" });
    await waitForStatus(t, recent.task_id, "completed");
    const before = await allEvents(t);
    expect(before.some((e) => e.task_id === old.task_id) && before.some((e) => e.task_id === recent.task_id)).toBe(true);

    await runInDurableObject(stub(t), (instance: NamespaceDO) => instance.clock.advance(2 * HOUR));
    await runDurableObjectAlarm(stub(t));
    const after = await allEvents(t);
    expect(after.filter((e) => e.task_id === old.task_id)).toEqual([]);
    expect(after.map((e) => e.seq)).toEqual(before.filter((e) => e.task_id !== old.task_id).map((e) => e.seq));
  });
});
