import { createServer, type Server } from "node:http";
import { freePort } from "./dev-server";

/** Where a dispatched attempt reports: SPEC §6's callback. */
export interface Callback {
  url: string;
  token: string;
}

/**
 * A processor on loopback that accepts each dispatch (202) and reports only when the test says
 * so, through the callback it keeps; `refuse(inputs)` makes it answer 503 instead, which keeps
 * that task retrying.
 */
export async function startHoldingProcessor(options: { refuse?: (inputs: Record<string, unknown>) => boolean } = {}) {
  const callbacks = new Map<string, Callback>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const dispatch = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { task?: { task_id?: unknown; inputs?: unknown }; callback?: { url?: unknown; token?: unknown } };
      const inputs = (typeof dispatch.task?.inputs === "object" && dispatch.task.inputs !== null ? dispatch.task.inputs : {}) as Record<string, unknown>;
      if (options.refuse?.(inputs)) return res.writeHead(503).end("busy");
      const taskId = dispatch.task?.task_id;
      const { url, token } = dispatch.callback ?? {};
      if (typeof taskId === "string" && typeof url === "string" && typeof token === "string") callbacks.set(taskId, { url, token });
      res.writeHead(202).end("accepted");
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}/run`,
    /** The callback of a task once it has been dispatched here; polls (also usable in beforeAll). */
    async dispatched(taskId: string, timeoutMs = 30_000): Promise<Callback> {
      const deadline = Date.now() + timeoutMs;
      while (!callbacks.has(taskId)) {
        if (Date.now() > deadline) throw new Error(`task ${taskId} was never dispatched`);
        await new Promise((r) => setTimeout(r, 100));
      }
      return callbacks.get(taskId)!;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

export type HoldingProcessor = Awaited<ReturnType<typeof startHoldingProcessor>>;
