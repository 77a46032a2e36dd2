import { fail, ok, type Result } from "../errors";
import { hasBuiltinHandler } from "../tasks/builtin-types";
import { type JsonValue, type Progress, retryDelayMs, type Settings, type TaskError } from "../tasks/model";
import { iso } from "../time";
import { BUILTIN_LEASE_SECONDS, type ClaimResult, type Report, type ReportAck, type ReportReceipt } from "./contract";
import type { TaskMessage } from "./messages";
import { attemptOfToken, type FoundAttempt, type KnownTask, sha256, TokenHashes } from "./attempt-rows";
import { gatherFor } from "./gather";
import { type GatheredMark, GatheredWrites, type OpenedAttempt, writeOpened } from "./gathered-writes";
import type { ProcessorStore } from "./processors";
import type { Sql } from "./sql";
import type { TaskStore } from "./store";
import { EMPTY_PROGRESS, type TaskRow, type TimerRow } from "./task-row";

/** What attempts need of their namespace: its storage, settings, processors and admission. */
export interface AttemptsHost {
  readonly sql: Sql;
  readonly store: TaskStore;
  readonly settings: Settings;
  readonly processors: ProcessorStore;
  admit(now: number): void;
}

export { sha256 } from "./attempt-rows";

/**
 * One attempt's life: its claim, the reports it makes under its token (heartbeat, progress,
 * logs, checkpoints, the outcome), its retry or failure, its lease and timeout, and the end of
 * the task it runs. Synchronous over the SQL helper: the caller runs each method in a
 * transaction and arms the alarm after, and a unit test runs it over any SQLite.
 */
export class Attempts {
  private readonly sql: Sql;
  private readonly store: TaskStore;
  /** The hashes of the tokens claims mint, kept for their reports. */
  readonly tokenHashes = new TokenHashes();
  /** While a batch of claims or reports runs (gathering): what its items left to its end. */
  private gathered: GatheredWrites | null = null;

  constructor(private readonly host: AttemptsHost) {
    this.sql = host.sql;
    this.store = host.store;
  }

  /** Read at each use: the settings change when the namespace is configured. */
  private get settings(): Settings {
    return this.host.settings;
  }

  private processorRow(taskType: string) {
    return this.host.processors.processorRow(taskType);
  }

  private admit(now: number): void {
    this.host.admit(now);
  }

  /**
   * Claims a queued task for the attempt a queue message carries, under `token`. Only the first
   * delivery of that attempt's message wins; every other delivery is told why not and changes nothing.
   */
  claim(message: Pick<TaskMessage, "task_id" | "attempt" | "slice">, token: string, now: number, pulled = false, known?: KnownTask): ClaimResult {
    const row = known?.row ?? this.store.get(message.task_id);
    if (!row) return { claimed: false, reason: "unknown task" };
    if (message.slice !== undefined) return this.claimContinuation(row, message.attempt, message.slice, token, now);
    if (row.status !== "queued" || row.attempt !== message.attempt) {
      return { claimed: false, reason: `task is ${row.status} at attempt ${row.attempt}` };
    }
    const processor = this.processorRow(row.task_type);
    // A lease that raced a switch to push mode: the task keeps its send timer and goes to the queue.
    if (pulled && processor?.mode !== "pull") return { claimed: false, reason: "not a pulled task" };
    if (known?.sendTimer !== false) {
      if (this.gathered) this.gathered.unsent.push(row.task_id);
      else this.store.clearTimer(row.task_id, "send");
    }
    // A message sent before its type became pulled: the task waits for a worker's lease.
    if (!pulled && processor?.mode === "pull") return { claimed: false, reason: "pulled by workers" };
    if (!processor && !hasBuiltinHandler(row.task_type)) {
      const error: TaskError = { code: "no_handler", message: `no handler or processor for "${row.task_type}"`, retryable: false };
      this.finish(row, "failed", { error: JSON.stringify(error) }, now, error.message);
      return { claimed: false, reason: error.message };
    }
    const leaseSeconds = processor?.lease_seconds ?? BUILTIN_LEASE_SECONDS;
    const leaseExpiresAt = now + leaseSeconds * 1000;
    const timeoutAt = now + this.settings.processing_timeout_seconds * 1000;
    const opened: OpenedAttempt = { taskId: row.task_id, attempt: row.attempt, tokenHash: this.tokenHashes.ofMinted(token), leaseSeconds, startedAt: now, leaseExpiresAt, timeoutAt };
    const next = this.store.transition(
      row,
      "processing",
      { started_at: row.started_at ?? now, attempt_started_at: now, timeout_at: timeoutAt, lease_expires_at: leaseExpiresAt },
      now,
      `attempt ${row.attempt} of ${row.max_attempts}${processor?.mode === "pull" ? " leased by a pull worker" : processor ? ` dispatched to ${processor.url}` : ""}`,
    );
    // Last: a claim that throws before here has gathered nothing.
    if (this.gathered) this.gathered.opened.push(opened);
    else writeOpened(this.sql, [opened]);
    return {
      claimed: true,
      task: this.store.toTask(next),
      token,
      lease_expires_at: iso(leaseExpiresAt) ?? "",
      timeout_at: iso(timeoutAt) ?? "",
      processor: processor ? { url: processor.url, secret: processor.secret } : null,
      origin: row.origin,
      // A new attempt resumes from the last checkpoint: work done before a crash is not redone.
      checkpoint: readCheckpoint(row)?.state ?? null,
    };
  }

  /**
   * Runs `fn`, a batch of claims or reports in one step (AttemptBatches), with writes its items
   * would each make gathered and made together at its end (GatheredWrites). An item whose
   * savepoint rolls back takes back what it gathered (gatheredMark, forgetSince).
   */
  gathering<T>(fn: () => T): T {
    if (this.gathered) return fn();
    return gatherFor(new GatheredWrites(), (g) => (this.gathered = g), fn, (g) => g.write(this.sql));
  }

  /** How much the running batch has gathered so far: an item's mark for forgetSince. */
  gatheredMark(): GatheredMark {
    return this.gathered?.mark() ?? { opened: 0, ended: 0, unsent: 0 };
  }

  /** Takes back what was gathered after `mark`: its item's savepoint rolled back. */
  forgetSince(mark: GatheredMark): void {
    this.gathered?.forgetSince(mark);
  }

  /**
   * Claims the next slice of a checkpointed attempt. The attempt, its lease and its timeout
   * carry over; the token is new, so the slice that yielded can report nothing more.
   */
  private claimContinuation(row: TaskRow, attempt: number, slice: number, token: string, now: number): ClaimResult {
    if (this.expireIfDue(row, now)) return { claimed: false, reason: `attempt ${attempt} ran out of time before slice ${slice}` };
    if (row.status !== "processing" || row.attempt !== attempt || row.continuation !== slice) {
      return { claimed: false, reason: `no continuation ${slice} of attempt ${attempt} waits (task is ${row.status})` };
    }
    const lease = this.sql.one<{ lease_seconds: number }>("SELECT lease_seconds FROM attempts WHERE task_id = ? AND attempt = ?", row.task_id, attempt);
    const leaseSeconds = lease?.lease_seconds ?? BUILTIN_LEASE_SECONDS;
    this.sql.run("UPDATE attempts SET token_hash = ? WHERE task_id = ? AND attempt = ?", this.tokenHashes.ofMinted(token), row.task_id, attempt);
    this.sql.run("UPDATE tasks SET continuation = 0 WHERE task_id = ?", row.task_id);
    this.store.clearTimer(row.task_id, "send");
    const renewed = this.store.renewLease(row, now + leaseSeconds * 1000);
    return {
      claimed: true,
      task: this.store.toTask(renewed),
      token,
      lease_expires_at: iso(renewed.lease_expires_at) ?? "",
      timeout_at: iso(renewed.timeout_at) ?? "",
      processor: null,
      origin: row.origin,
      checkpoint: readCheckpoint(row)?.state ?? null,
    };
  }

  /**
   * Applies a report of one attempt, authenticated by that attempt's token. An unknown token
   * is `unauthorized`; the token of an attempt that has ended is a `conflict` that changes nothing.
   */
  report(taskId: string, tokenHash: string, report: Report, now: number, found?: FoundAttempt): Result<ReportAck> {
    const applied = this.applyFenced(taskId, tokenHash, report, now, found);
    return applied.ok ? ok({ ...receiptOf(applied.value), task: this.store.toTask(applied.value) }) : applied;
  }

  /** `report` without the task's view: for a consumer, which reads only how each report went. */
  reportReceipt(taskId: string, tokenHash: string, report: Report, now: number, found?: FoundAttempt): Result<ReportReceipt> {
    const applied = this.applyFenced(taskId, tokenHash, report, now, found);
    return applied.ok ? ok(receiptOf(applied.value)) : applied;
  }

  /** The work of `report`: the task as the report left it. */
  private applyFenced(taskId: string, tokenHash: string, report: Report, now: number, found?: FoundAttempt): Result<TaskRow> {
    const attempt = found === undefined ? attemptOfToken(this.sql, tokenHash) : found.attempt;
    if (!attempt || attempt.task_id !== taskId) return fail("unauthorized", "invalid callback token");
    const row = found?.row === undefined ? this.store.get(taskId) : found.row;
    if (!row) {
      const status = attempt.final_status ?? "ended";
      return fail("conflict", `attempt ${attempt.attempt} has ended; the task is ${status}`, { status });
    }
    const current = row.attempt === attempt.attempt ? (this.expireIfDue(row, now) ?? row) : row;
    if (current.status !== "processing" || current.attempt !== attempt.attempt) {
      return fail("conflict", `attempt ${attempt.attempt} has ended; the task is ${current.status}`, {
        status: current.status,
        attempt: current.attempt,
      });
    }
    return ok(this.applyReport(current, attempt.lease_seconds, report, now));
  }

  /**
   * Whether `token` is the callback token of an attempt of `taskId`, ended or not: the Worker
   * asks before it reads a callback's body. `report` decides what the token may still do.
   */
  isCallbackToken(taskId: string, token: string): boolean {
    return this.sql.one<{ task_id: string }>("SELECT task_id FROM attempts WHERE token_hash = ?", sha256(token))?.task_id === taskId;
  }

  private applyReport(row: TaskRow, leaseSeconds: number, report: Report, now: number): TaskRow {
    switch (report.kind) {
      case "heartbeat":
        return this.renewLease(row, leaseSeconds, now);
      case "progress": {
        const progress: Progress = { ...(JSON.parse(row.progress) as Progress) };
        for (const key of ["percent", "message", "processed", "total"] as const) {
          const value = report.progress[key];
          if (value !== undefined) Object.assign(progress, { [key]: value });
        }
        const renewed = this.renewLease(row, leaseSeconds, now);
        const next = this.store.touch(renewed, { progress: JSON.stringify(progress) }, now);
        this.store.progressed(next, now);
        return next;
      }
      case "logs": {
        const logged = this.store.log(row, report.lines.map((l) => ({ level: l.level ?? "info", message: l.message })), now);
        return this.renewLease(logged, leaseSeconds, now);
      }
      case "complete": {
        const lines = report.lines ?? [];
        // finish's transition stores the new line count with the completion.
        const logged = this.store.logBefore(row, lines.map((l) => ({ level: l.level ?? "info", message: l.message })), now);
        return this.finish(logged, "completed", { outputs: JSON.stringify(report.outputs), error: null }, now);
      }
      case "fail":
        return this.failAttempt(row, { ...report.error, retryable: report.retryable }, now);
      case "checkpoint": {
        const slice = (readCheckpoint(row)?.slice ?? 0) + 1;
        const checkpoint = JSON.stringify({ slice, state: report.state } satisfies SavedCheckpoint);
        this.sql.run("UPDATE tasks SET checkpoint = ?, continuation = ? WHERE task_id = ?", checkpoint, slice, row.task_id);
        this.store.setTimer(row.task_id, "send", now);
        return this.renewLease({ ...row, checkpoint, continuation: slice }, leaseSeconds, now);
      }
    }
  }

  private renewLease(row: TaskRow, leaseSeconds: number, now: number): TaskRow {
    return this.store.renewLease(row, now + leaseSeconds * 1000);
  }

  /** Ends the current attempt: retried while it may be, else the task fails. */
  failAttempt(row: TaskRow, error: TaskError, now: number): TaskRow {
    const errorJson = JSON.stringify(error);
    if (error.retryable && row.attempt < row.max_attempts) {
      const delay = retryDelayMs(row.attempt);
      this.store.clearTaskTimers(row.task_id);
      const next = this.store.transition(
        row,
        "queued",
        // The next attempt starts from nothing (SPEC §5): this attempt's progress is not its own.
        { attempt: row.attempt + 1, error: errorJson, progress: JSON.stringify(EMPTY_PROGRESS), timeout_at: null, lease_expires_at: null, attempt_started_at: null },
        now,
        `attempt ${row.attempt} failed (${error.code}: ${error.message}); attempt ${row.attempt + 1} in ${(delay / 1000).toFixed(1)} s`,
      );
      this.store.setTimer(row.task_id, "send", now + delay);
      if (row.continuation !== 0) this.sql.run("UPDATE tasks SET continuation = 0 WHERE task_id = ?", row.task_id);
      return { ...next, continuation: 0 };
    }
    return this.finish(row, "failed", { error: errorJson }, now, `${error.code}: ${error.message}`);
  }

  /** A terminal transition: clears the task's timers and gives its slot to the backlog. */
  finish(row: TaskRow, to: "completed" | "failed" | "cancelled", patch: Partial<TaskRow>, now: number, note?: string): TaskRow {
    // Completed means 100 %, whatever the handler last reported; the rest of progress stays (SPEC §5).
    const progress = to === "completed" ? JSON.stringify({ ...(JSON.parse(row.progress) as Progress), percent: 100 }) : row.progress;
    const next = this.store.transition(
      row,
      to,
      { ...patch, progress, completed_at: now, timeout_at: null, lease_expires_at: null },
      now,
      note,
    );
    if (this.gathered) this.gathered.ended.push(row.task_id);
    else this.store.clearTaskTimers(row.task_id);
    this.admit(now);
    return next;
  }

  /** The dead-letter queue gave up on this attempt's message: the task can never be claimed. */
  deadLetter(message: Pick<TaskMessage, "task_id" | "attempt">, now: number): void {
    const row = this.store.get(message.task_id);
    if (!row || row.status !== "queued" || row.attempt !== message.attempt) return;
    const error: TaskError = { code: "dispatch_failed", message: "the queue gave up delivering this task", retryable: false };
    this.finish(row, "failed", { error: JSON.stringify(error) }, now, error.message);
  }

  /** A lease or processing-timeout timer came due. */
  expire(timer: TimerRow, now: number): void {
    this.store.clearTimer(timer.task_id, timer.kind);
    const row = this.store.get(timer.task_id);
    if (row) this.expireIfDue(row, now);
  }

  /**
   * Ends a processing attempt whose timeout or lease has passed, as its timer would. Reports
   * and claims call it too: an attempt past its time has ended even if the alarm is late.
   * Returns the task after the change, or null when nothing had expired.
   */
  expireIfDue(row: TaskRow, now: number): TaskRow | null {
    if (row.status !== "processing") return null;
    if (row.timeout_at !== null && row.timeout_at <= now) {
      const seconds = this.settings.processing_timeout_seconds;
      const error: TaskError = { code: "timeout", message: `processing took longer than ${seconds} s`, retryable: false };
      return this.finish(row, "failed", { error: JSON.stringify(error) }, now, error.message);
    }
    if (row.lease_expires_at !== null && row.lease_expires_at <= now) {
      return this.failAttempt(row, { code: "lease_expired", message: `attempt ${row.attempt} stopped renewing its lease`, retryable: true }, now);
    }
    return null;
  }
}

interface SavedCheckpoint {
  slice: number;
  state: JsonValue;
}

/** How a report left its task, as its answer says it. */
const receiptOf = (next: TaskRow): ReportReceipt => ({
  status: next.status,
  lease_expires_at: next.status === "processing" ? iso(next.lease_expires_at) : null,
});

const readCheckpoint = (row: TaskRow): SavedCheckpoint | null =>
  row.checkpoint === null ? null : (JSON.parse(row.checkpoint) as SavedCheckpoint);
