import type { EdgeTasksClient } from "../client/client";
import type { FetchLike } from "../client/http";
import { type Parsed, stringFlag, UsageError } from "./args";
import type { Output } from "./board";

/** Everything the CLI reads and writes, so that it runs the same in a test as in a terminal. */
export interface CliIO {
  env: Record<string, string | undefined>;
  stdout: Output;
  stderr: Output;
  /** The fetch the client uses; the global one by default. */
  fetch?: FetchLike;
  /** Aborted on Ctrl-C: `watch` and `logs --follow` stop and `main` returns 130. */
  signal?: AbortSignal;
}

/** What a command works with: the client, its arguments, and where to write. */
export interface Ctx {
  client: EdgeTasksClient;
  args: Parsed;
  json: boolean;
  io: CliIO;
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The task ids a command was given, between `min` and `max` of them. */
export function ids(ctx: Ctx, min: number, max = Number.POSITIVE_INFINITY): string[] {
  const found = ctx.args.positionals;
  if (found.length < min) throw new UsageError(min === 1 && max === 1 ? "give one task id" : "give at least one task id");
  if (found.length > max) throw new UsageError(`give at most ${max} task id${max === 1 ? "" : "s"}`);
  return found;
}

/** A comma-separated flag as a list, or undefined when it was not given. */
export const csvFlag = (ctx: Ctx, name: string): string[] | undefined => stringFlag(ctx.args, name)?.split(",").map((v) => v.trim()).filter(Boolean);
