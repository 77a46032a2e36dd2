import { z } from "@hono/zod-openapi";
import { ApiError } from "./errors";
import { base64url } from "./ids";

/** One value of a keyset position. */
export type KeysetValue = string | number;
/** Where a page starts: the sort-column values of the last row of the page before. */
export type Position = readonly KeysetValue[];

/**
 * The one cursor format of every list: base64url JSON of `{l, p}`, the list it belongs to and
 * the keyset position its next page starts after. It carries no namespace: every query filters
 * by the caller's namespace, so a cursor taken elsewhere can only move a boundary, never widen
 * what is read.
 */
export interface CursorKind<P extends Position> {
  /** Names the list (and its order): a cursor of another list is refused. */
  list: string;
  position: z.ZodType<P>;
}

const Envelope = z.object({ l: z.string().max(64), p: z.array(z.union([z.string().max(256), z.number()])).min(1).max(4) }).strict();

export function encodeCursor<P extends Position>(kind: CursorKind<P>, position: P): string {
  return base64url(new TextEncoder().encode(JSON.stringify({ l: kind.list, p: position })));
}

/** The position a cursor names; undefined for no cursor; 422 for anything not made by encodeCursor for this list. */
export function decodeCursor<P extends Position>(kind: CursorKind<P>, raw: string | undefined): P | undefined {
  if (raw === undefined || raw === "") return undefined;
  const position = parseCursor(raw, kind);
  if (position === undefined) throw new ApiError("validation_error", "invalid cursor", { field: "cursor" });
  return position;
}

function parseCursor<P extends Position>(raw: string, kind: CursorKind<P>): P | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(raw)) return undefined;
  try {
    const base64 = raw.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)), (ch) => ch.charCodeAt(0));
    const envelope = Envelope.safeParse(JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes)));
    if (!envelope.success || envelope.data.l !== kind.list) return undefined;
    const position = kind.position.safeParse(envelope.data.p);
    return position.success ? position.data : undefined;
  } catch {
    return undefined;
  }
}

const Id = z.string().min(1).max(128);
/** Positions of lists ordered by an ISO timestamp and an id. */
export const byIsoTime = (list: string): CursorKind<[string, string]> => ({ list, position: z.tuple([z.string().max(64), Id]) });
/** Positions of lists ordered by epoch milliseconds and an id. */
export const byMillis = (list: string): CursorKind<[number, string]> => ({ list, position: z.tuple([z.number().int().min(0), Id]) });
/** Positions of lists ordered by a sequence number alone. */
export const bySeq = (list: string): CursorKind<[number]> => ({ list, position: z.tuple([z.number().int().min(0)]) });
