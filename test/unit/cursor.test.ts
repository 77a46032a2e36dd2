import { describe, expect, it } from "vitest";
import { byIsoTime, byMillis, bySeq, decodeCursor, encodeCursor } from "../../src/cursor";
import { afterClause, keysetQueries, newestFirst, orderClause, toPage } from "../../src/db/keyset";
import { ApiError } from "../../src/errors";
import { base64url } from "../../src/ids";

const tasks = byIsoTime("tasks:created_desc");
const encode = (value: unknown) => base64url(new TextEncoder().encode(JSON.stringify(value)));

/** The error a decode throws, or undefined when it throws none. */
function decodeError(kind: Parameters<typeof decodeCursor>[0], raw: string): ApiError | undefined {
  try {
    decodeCursor(kind, raw);
    return undefined;
  } catch (err) {
    return err as ApiError;
  }
}

describe("the cursor codec", () => {
  it("round-trips a position of its own list, and reads no cursor as the first page", () => {
    const position: [string, string] = ["2026-11-29T12:00:00.000Z", "tsk_abc"];
    const cursor = encodeCursor(tasks, position);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(tasks, cursor)).toEqual(position);
    expect(decodeCursor(byMillis("logs"), encodeCursor(byMillis("logs"), [1_700_000_000_000, "log_1"]))).toEqual([1_700_000_000_000, "log_1"]);
    expect(decodeCursor(tasks, undefined)).toBeUndefined();
    expect(decodeCursor(tasks, "")).toBeUndefined();
  });

  it("refuses with 422 a cursor of another list, a forged or malformed one, and a wrong position", () => {
    const other = encodeCursor(byIsoTime("tasks:updated_desc"), ["2026-11-29T12:00:00.000Z", "tsk_abc"]);
    const bad = [
      other,
      "not base64!",
      encode("just a string"),
      encode({ l: "tasks:created_desc" }),
      encode({ l: "tasks:created_desc", p: ["2026", "tsk_1"], extra: 1 }),
      encode({ l: "tasks:created_desc", p: [12, "tsk_1"] }),
      encode({ l: "tasks:created_desc", p: ["2026", ""] }),
      encode({ l: "tasks:created_desc", p: ["2026", "x".repeat(300)] }),
      base64url(new Uint8Array([0xff, 0xfe, 0x7b])),
    ];
    for (const raw of bad) {
      const error = decodeError(tasks, raw);
      expect(error, raw).toBeInstanceOf(ApiError);
      expect(error?.status, raw).toBe(422);
      expect(error?.details, raw).toEqual({ field: "cursor" });
    }
    expect(decodeError(bySeq("events"), encode({ l: "events", p: [-1] }))?.status).toBe(422);
  });
});

describe("the keyset clause builder", () => {
  it("reads the rows strictly after a position: a row comparison, or a plain one for one column", () => {
    expect(afterClause(["created_at", "task_id"], "desc", ["t", "id"])).toEqual({ sql: "(created_at, task_id) < (?, ?)", params: ["t", "id"] });
    expect(afterClause(["seq"], "asc", [4])).toEqual({ sql: "seq > ?", params: [4] });
    expect(() => afterClause(["a", "b"], "asc", [1])).toThrow();
    expect(orderClause(["created_at", "task_id"], "desc")).toBe("created_at DESC, task_id DESC");
  });

  it("builds a page query of limit + 1 rows under the filter, and a count under the same filter alone", () => {
    const list = newestFirst<{ t: string; id: string }, [string, string]>({ select: "*", from: "tasks" }, { namespace_id: "ns_1", status: "queued" }, ["created_at", "task_id"], (r) => [r.t, r.id]);
    const first = keysetQueries(list, { limit: 2, includeTotal: true });
    expect(first.page).toEqual({ sql: "SELECT * FROM tasks WHERE namespace_id = ? AND status = ? ORDER BY created_at DESC, task_id DESC LIMIT ?", params: ["ns_1", "queued", 3] });
    expect(first.count).toEqual({ sql: "SELECT COUNT(*) AS n FROM tasks WHERE namespace_id = ? AND status = ?", params: ["ns_1", "queued"] });
    const next = keysetQueries(list, { limit: 2, after: ["t9", "tsk_9"], includeTotal: false });
    expect(next.page.sql).toContain("WHERE namespace_id = ? AND status = ? AND (created_at, task_id) < (?, ?) ORDER BY");
    expect(next.page.params).toEqual(["ns_1", "queued", "t9", "tsk_9", 3]);
    expect(next.count).toEqual(first.count);
  });

  it("cuts the extra row off a page and starts the next after the page's last row", () => {
    const rows = [{ id: "a" }, { id: "b" }, { id: "c" }];
    const position = (r: { id: string }): [string] => [r.id];
    expect(toPage(rows, 2, position)).toEqual({ results: [{ id: "a" }, { id: "b" }], next: ["b"] });
    expect(toPage(rows, 3, position)).toEqual({ results: rows, next: null });
    expect(toPage([], 3, position)).toEqual({ results: [], next: null });
  });
});
