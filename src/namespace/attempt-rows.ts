import { createHash } from "node:crypto";
import type { Sql } from "./sql";
import type { TaskRow } from "./task-row";

/** An attempt as its callback token finds it. */
export interface AttemptOfToken extends Record<string, SqlStorageValue> {
  task_id: string;
  attempt: number;
  lease_seconds: number;
  final_status: string | null;
}

/**
 * What a caller read for Attempts.report in the same synchronous step, before anything changed
 * them: the token's attempt, and its task's row (left out to have `report` read it).
 */
export interface FoundAttempt {
  attempt: AttemptOfToken | null;
  row?: TaskRow | null;
}

/**
 * A task a caller has just read in the same synchronous step (a lease's candidates): Attempts.claim
 * takes it instead of reading it again, and skips removing a send timer it knows is not there.
 */
export interface KnownTask {
  row: TaskRow;
  sendTimer: boolean;
}

/** The attempt a callback token's hash belongs to, ended or not; null for an unknown token. */
export function attemptOfToken(sql: Sql, tokenHash: string): AttemptOfToken | null {
  return sql.one<AttemptOfToken>("SELECT task_id, attempt, lease_seconds, final_status FROM attempts WHERE token_hash = ?", tokenHash);
}

/**
 * attemptOfToken with its task's row (null once the task has left) for many token hashes, in
 * two reads (the attempts, then their tasks: a join's rows would each be copied apart): by
 * hash, for those that belong to an attempt.
 */
export function attemptsWithTasks(sql: Sql, tokenHashes: string[]): Map<string, { attempt: AttemptOfToken; row: TaskRow | null }> {
  const attempts = sql.all<AttemptOfToken & { token_hash: string }>(
    "SELECT token_hash, task_id, attempt, lease_seconds, final_status FROM attempts WHERE token_hash IN (SELECT value FROM json_each(?))",
    JSON.stringify(tokenHashes),
  );
  const rows = attempts.length === 0 ? new Map<string, TaskRow>() : tasksById(sql, attempts.map((a) => a.task_id));
  const byHash = new Map<string, { attempt: AttemptOfToken; row: TaskRow | null }>();
  for (const a of attempts) {
    byHash.set(a.token_hash, {
      attempt: { task_id: a.task_id, attempt: a.attempt, lease_seconds: a.lease_seconds, final_status: a.final_status },
      row: rows.get(a.task_id) ?? null,
    });
  }
  return byHash;
}

/** The rows of the tasks of `taskIds` that are live here, by id, in one read. */
export function tasksById(sql: Sql, taskIds: string[]): Map<string, TaskRow> {
  const rows = sql.all<TaskRow>("SELECT * FROM tasks WHERE task_id IN (SELECT value FROM json_each(?))", JSON.stringify(taskIds));
  return new Map(rows.map((row) => [row.task_id, row]));
}

/** Tokens remembered at most: each is dropped when its report comes, all of them past this. */
const REMEMBERED_TOKENS = 4096;

/**
 * The SHA-256 of callback tokens, fencing's key (attempts.token_hash). A token minted here comes
 * back in a report moments later (the consumer's claim-ahead, a pull worker's lease), so its
 * hash, computed at the claim, is kept for that report rather than computed again: a hash a
 * claim and a report, some 1 % of the object's thread in the ingest. A token not remembered
 * (an object restarted, a second report of an attempt) is hashed again, to the same value.
 */
export class TokenHashes {
  private readonly minted = new Map<string, string>();

  constructor(private readonly hash: (token: string) => string = sha256) {}

  /** The hash of a token just minted, remembered for its report. */
  ofMinted(token: string): string {
    const hash = this.hash(token);
    if (this.minted.size >= REMEMBERED_TOKENS) this.minted.clear();
    this.minted.set(token, hash);
    return hash;
  }

  /** The hash of a token a report carries. */
  of(token: string): string {
    const hash = this.minted.get(token);
    if (hash === undefined) return this.hash(token);
    this.minted.delete(token);
    return hash;
  }
}

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");
