import { fail, type Result } from "../errors";
import { hasBuiltinHandler } from "../tasks/builtin-types";
import { attemptsWithTasks, type FoundAttempt, type KnownTask, tasksById, type TokenHashes } from "./attempt-rows";
import type { Attempts } from "./attempts";
import { type ClaimAhead, type ClaimManyItem, type ClaimedAttempt, type ClaimResult, MAX_CLAIM_AHEAD, type Report, type ReportAck, type ReportManyItem, type ReportsAndClaims } from "./contract";
import type { HeldSend, NamespaceCore } from "./core";
import type { TaskMessage } from "./messages";
import { NamespacePart } from "./part";
import type { Sql } from "./sql";
import type { TaskRow } from "./task-row";

/**
 * Many attempts' claims or reports in one call (issue 11: the batched queue consumer, and pull
 * workers' `POST /v1/callbacks` through PullMode). Each item is worked exactly as its single
 * call would be, in its own transaction, in the order given: one refused or failing item
 * changes nothing for the others. The alarm is armed once, after the lot.
 */
export class AttemptBatches extends NamespacePart {
  constructor(
    core: NamespaceCore,
    private readonly attempts: Attempts,
  ) {
    super(core);
  }

  /**
   * Claims the attempts many queue messages carry, each as `claim` would, under its own new
   * token. An item whose claim threw is answered `{claimed: false, retry: true}`: its message
   * should be delivered again. The tasks are read in one statement, before any claim: a claim
   * changes only its own task (and admits created ones, which no message names), so the row
   * read is current for the first message of each task; a later one of the same task reads it again.
   */
  claimMany(messages: Pick<TaskMessage, "task_id" | "attempt" | "slice">[]): Promise<ClaimManyItem[]> {
    return this.step(() => {
      const rows = tasksById(this.sql, messages.map((message) => message.task_id));
      const seen = new Set<string>();
      const items = messages.map((message): ClaimItem => {
        const row = seen.has(message.task_id) ? undefined : rows.get(message.task_id);
        seen.add(message.task_id);
        return { message, known: row ? { row, sendTimer: true } : undefined };
      });
      return this.claimEach(items, this.clock.now()).map((claim): ClaimManyItem => claim ?? { claimed: false, reason: "the claim failed", retry: true });
    });
  }

  /**
   * The one claim loop of a step (claimMany, the claim-ahead, PullMode's leases): each item
   * claimed as `Attempts.claim` would, under its own new token, in its own savepoint. A claim
   * that throws is answered null (logged) and keeps nothing, not even the attempt it gathered;
   * the attempts opened are written together at the end (Attempts.gathering). `pulled`: the
   * items are leased by pull workers. Call it inside a step (a transaction and a bulk step).
   */
  claimEach(items: ClaimItem[], now: number, pulled = false): (ClaimResult | null)[] {
    return this.attempts.gathering(() =>
      items.map(({ message, known }) => {
        try {
          const token = this.core.callbackTokens.mint(message.task_id);
          return this.inSavepoint(() => this.attempts.claim(message, token, now, pulled, known));
        } catch (err) {
          console.error(`claim of ${message.task_id} failed`, err);
          return null;
        }
      }),
    );
  }

  /**
   * One item of a batch in its own savepoint (and the store's bulk item): when it throws, what
   * it gathered for the batch's end (Attempts.gathering, FairQueue.releasingMany) is taken
   * back with it, and the error goes on to the caller.
   */
  private inSavepoint<T>(work: () => T): T {
    const gathered = this.attempts.gatheredMark();
    const released = this.store.fair.releasedMark();
    try {
      return this.store.bulkItem(() => this.ctx.storage.transactionSync(work));
    } catch (err) {
      this.attempts.forgetSince(gathered);
      this.store.fair.forgetReleasesSince(released);
      throw err;
    }
  }

  /** Applies many attempts' reports, each as `report` would, fenced by its own token. */
  reportMany(items: ReportManyItem[]): Promise<Result<ReportAck>[]> {
    return this.applyReports(reportItems(this.sql, this.attempts.tokenHashes, items));
  }

  /**
   * reportMany, then a claim-ahead: the caller (a consumer invocation that has just finished a
   * batch of built-in tasks) also takes up to `ahead.max` tasks of `ahead.task_types` that are
   * admitted and not yet sent to the queue, each claimed exactly as a queue message's claim
   * would be, under its own new token and lease. The slots the reports freed are thus worked
   * at once, without a send, a queue hop and a claim call. A task claimed here never gets its
   * message (its send timer goes with the claim); one whose message is already out is refused
   * when that message comes, like any duplicate. Tasks left unclaimed keep their send timers,
   * so the alarm sends them as before. The tasks of those types that the reports' freed slots
   * admit get no send timer unless the claim-ahead leaves them (NamespaceCore.holdingSends):
   * most are claimed in the same step, and a timer set and cleared at once costs two statements.
   */
  reportAndClaim(items: ReportManyItem[], ahead: ClaimAhead): Promise<ReportsAndClaims> {
    return this.step(() => {
      const types = this.aheadTypes(ahead);
      return this.core.holdingSends(new Set(types), this.clock.now(), (held) => {
        const results = this.applyEach(reportItems(this.sql, this.attempts.tokenHashes, items), (item, now) => this.attempts.reportReceipt(item.task_id, item.tokenHash, item.report, now, item.found));
        return { results, claims: this.claimAhead(types, ahead.max, held) };
      });
    });
  }

  /** The types a claim-ahead may take: built-in ones without a processor. */
  private aheadTypes(ahead: ClaimAhead): string[] {
    return ahead.task_types.filter((type) => hasBuiltinHandler(type) && !this.core.processors.processorRow(type));
  }

  /**
   * The claim-ahead of `reportAndClaim`: queued tasks of the given built-in types whose send is
   * due now (admitted, or a retry whose delay is over), oldest send first, then those this step
   * admitted with their sends held (`held`, in the order admitted). Types with a processor are
   * left to the queue (they are dispatched, not run here); so are continuations.
   */
  private claimAhead(types: string[], asked: number, held: readonly HeldSend[]): ClaimedAttempt[] {
    const max = Math.max(0, Math.min(Math.floor(asked), MAX_CLAIM_AHEAD));
    if (types.length === 0 || max === 0) return [];
    const now = this.clock.now();
    // The tasks' rows come with them: each claim takes its row from here, not from a read of its own.
    const due = this.sql.all<TaskRow>(
      `SELECT t.* FROM timers tm JOIN tasks t ON t.task_id = tm.task_id
        WHERE tm.kind = 'send' AND tm.due_at <= ? AND t.status = 'queued' AND t.task_type IN (SELECT value FROM json_each(?))
        ORDER BY tm.due_at LIMIT ?`,
      now, JSON.stringify(types), max,
    );
    const items: ClaimItem[] = due.map((row) => ({ message: { task_id: row.task_id, attempt: row.attempt }, known: { row, sendTimer: true } }));
    // A held task (NamespaceCore.holdingSends) has no send timer to remove, and its row is the one
    // its admission wrote in this step. Read before any claim: a claim that rolls back forgets the step's rows.
    for (const { task_id: taskId, attempt } of held.slice(0, max - items.length)) {
      const row = this.store.stepRow(taskId) ?? this.store.get(taskId);
      items.push({ message: { task_id: taskId, attempt }, known: row ? { row, sendTimer: false } : undefined });
    }
    // One that is left or whose claim failed keeps its send timer (a held one's is set at the step's end): the queue gets it.
    return this.claimEach(items, now).flatMap((claim) => (claim?.claimed ? [claim] : []));
  }

  /**
   * The one implementation of a batch of reports (reportMany, PullMode.reportBatch): each
   * fenced by its token's hash and applied in its own transaction. A report that threw is
   * answered `internal_error` (retryable) and changed nothing.
   */
  applyReports(items: ReportItem[]): Promise<Result<ReportAck>[]> {
    return this.step(() => this.applyEach(items, (item, now) => this.attempts.report(item.task_id, item.tokenHash, item.report, now, item.found)));
  }

  /**
   * Runs `fn` as one bulk step of the task store (TaskStore.bulk: the items' events, log lines
   * and record snapshots written in a few statements at its end), then arms the alarm once for
   * whatever the step set, its outbox flush included. The step is one transaction, each item's
   * own a savepoint in it: if the step's end cannot write the rows its items deferred, their
   * changes go too, and no transition is kept without its event and snapshot.
   */
  private async step<T>(fn: () => T): Promise<T> {
    try {
      return this.ctx.storage.transactionSync(() => this.store.bulk(fn));
    } finally {
      await this.armAlarm();
    }
  }

  /**
   * Each report in its own transaction, applied by `apply` (Attempts.report, or its receipt);
   * the slots they free are filled once, after the lot.
   */
  private applyEach<A>(items: ReportItem[], apply: (item: ReportItem, now: number) => Result<A>): Result<A>[] {
    // The slots given back are written before the admission that fills them, the timers of the tasks that ended before that.
    return this.core.withAdmissionAfter(
      () =>
        this.store.fair.releasingMany(() =>
          this.attempts.gathering(() => {
            const results: Result<A>[] = [];
            for (const item of items) {
              const now = this.clock.now();
              try {
                results.push(this.inSavepoint(() => apply(item, now)));
              } catch (err) {
                console.error(`report of ${item.task_id} failed`, err);
                results.push(fail("internal_error", "the report could not be applied", { retryable: true }));
              }
            }
            return results;
          }),
        ),
      () => this.clock.now(),
    );
  }
}

/** One claim of claimEach: the attempt a message carries, and the task's row when the caller has just read it. */
export interface ClaimItem {
  message: Pick<TaskMessage, "task_id" | "attempt" | "slice">;
  known?: KnownTask;
}

/**
 * One report of a batch, fenced by its token's hash. `found` is what the caller read for it in
 * the same synchronous step (PullMode.reportBatch), so it is not read again.
 */
interface ReportItem {
  task_id: string;
  tokenHash: string;
  report: Report;
  found?: FoundAttempt;
}

/**
 * A batch's reports as applyReports takes them: each fenced by its token's hash, with its
 * attempt (null for an unknown token) and its task read for all of them in one statement. Call
 * it in the synchronous step that applies them: a report changes only its own task, so the row
 * read is current for the first report of each task; a later one of the same task reads it again.
 */
export function fenceReports(
  sql: Sql,
  tokenHashes: TokenHashes,
  reports: { token: string; report: Report }[],
): { tokenHash: string; report: Report; found: FoundAttempt }[] {
  const hashes = reports.map(({ token }) => tokenHashes.of(token));
  const byHash = attemptsWithTasks(sql, hashes);
  const seen = new Set<string>();
  return reports.map(({ report }, index) => {
    const tokenHash = hashes[index] ?? "";
    const found = byHash.get(tokenHash);
    if (!found) return { tokenHash, report, found: { attempt: null } };
    const first = !seen.has(found.attempt.task_id);
    seen.add(found.attempt.task_id);
    return { tokenHash, report, found: first ? found : { attempt: found.attempt } };
  });
}

/** A consumer's reports as applyReports takes them (fenceReports), each with the task it names. */
const reportItems = (sql: Sql, tokenHashes: TokenHashes, items: ReportManyItem[]): ReportItem[] =>
  fenceReports(sql, tokenHashes, items).map((fenced, index) => ({ ...fenced, task_id: items[index]?.task_id ?? "" }));
