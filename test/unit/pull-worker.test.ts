import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";

interface PullWorker {
  completed(): number;
  answers(): Record<string, number>;
  stop(): Promise<void>;
}
type Start = (options: Record<string, unknown>) => PullWorker;

/** The example is plain JavaScript: loaded by a path the type checker does not follow. */
const EXAMPLE = "../../examples/pull-worker.mjs";
const loadExample = async (): Promise<Start> => ((await import(EXAMPLE)) as { startPullWorker: Start }).startPullWorker;

const readBody = async (req: IncomingMessage): Promise<{ [key: string]: unknown }> => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as { [key: string]: unknown };
};

/** A stand-in for the service: `count` tasks to lease, and a record of every report call. */
function fakeService(count: number) {
  let next = 0;
  const calls: { type: string; token: string }[][] = [];
  const out = new Set<string>();
  const overlaps: string[] = [];
  let open = 0;
  let maxOpen = 0;
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    const answer = (value: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(value));
    if (req.url?.endsWith("/lease")) {
      const n = Math.min(Number(body.max_tasks), count - next);
      const leases = Array.from({ length: n }, () => {
        const id = `tsk_${next++}`;
        return { task: { task_id: id, task_type: "pw", inputs: {} }, callback: { token: `tok_${id}` } };
      });
      // Nothing left: a long-poll would wait; a short pause keeps the loop from spinning.
      if (n === 0) await new Promise((r) => setTimeout(r, 20));
      return answer({ leases });
    }
    const reports = body.reports as { type: string; token: string }[];
    calls.push(reports);
    open++;
    maxOpen = Math.max(maxOpen, open);
    const tokens = new Set(reports.map((r) => r.token));
    for (const token of tokens) if (out.has(token)) overlaps.push(token);
    for (const token of tokens) out.add(token);
    await new Promise((r) => setTimeout(r, 15));
    for (const token of tokens) out.delete(token);
    open--;
    answer({ results: reports.map((r) => ({ task_id: r.token.slice(4), status: 200 })) });
  });
  return { server, calls, overlaps, maxOpen: () => maxOpen };
}

let close: (() => void) | null = null;
afterEach(() => close?.());

describe("examples/pull-worker.mjs", () => {
  it("sends each attempt's reports in order, never one attempt in two report calls at once, at most `reportCalls` calls out", async () => {
    const service = fakeService(300);
    await new Promise<void>((r) => service.server.listen(0, "127.0.0.1", r));
    close = () => service.server.close();
    const { port } = service.server.address() as AddressInfo;
    const startPullWorker = await loadExample();
    const worker = startPullWorker({ baseUrl: `http://127.0.0.1:${port}`, apiKey: "sk_test", taskType: "pw", concurrency: 50, workMs: 5, waitSeconds: 0, reportCalls: 2, quiet: true });
    for (let i = 0; i < 500 && worker.completed() < 300; i++) await new Promise((r) => setTimeout(r, 20));
    await worker.stop();

    expect(worker.completed()).toBe(300);
    expect(service.overlaps).toEqual([]);
    expect(service.maxOpen()).toBeLessThanOrEqual(2);
    expect(service.calls.every((c) => c.length >= 1 && c.length <= 100)).toBe(true);
    const byToken = new Map<string, string[]>();
    for (const call of service.calls) for (const r of call) byToken.set(r.token, [...(byToken.get(r.token) ?? []), r.type]);
    expect(byToken.size).toBe(300);
    for (const [token, types] of byToken) expect(types, token).toEqual(["progress", "logs", "complete"]);
  });
});
