import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import dashboard from "../../src/dashboard";
import { launchChromium } from "./chromium";
import { freePort } from "./dev-server";

const KEY = "sk_scripted_key";
const WAIT = { timeout: 20_000 };

const task = (id: string, status: string, percent: number | null, updatedAt: string) => ({
  task_id: id, namespace_id: "ns_scripted", task_type: "scripted", status, inputs: {}, outputs: null,
  progress: { percent, message: null, processed: null, total: null }, error: null, attempt: 1, max_attempts: 3,
  priority: 5, parent_task_id: null, queue_position: null, created_at: `2026-11-29T12:00:00.00${id.at(-1)}Z`,
  queued_at: null, started_at: null, completed_at: null, updated_at: updatedAt, timeout_at: null, expires_at: null,
});

const sse = (seq: number, type: string, t: ReturnType<typeof task>, eol = "\n") =>
  [`id: ${seq}`, `event: ${type}`, `data: ${JSON.stringify({ id: `evt_${seq}`, type, created_at: t.updated_at, namespace_id: "ns_scripted", data: { task: t } })}`, "", ""].join(eol);

/**
 * The page's side of the stream protocol, against a server that scripts it byte by byte: the
 * real page and script, a canned list and stats, and an event stream the test writes itself.
 */
describe("the dashboard's stream handling, against a scripted server", { timeout: 60_000 }, () => {
  let server: Server;
  let base = "";
  let browser: Browser;
  let page: Page;
  const streams: { lastEventId: string | undefined; res: ServerResponse }[] = [];
  let refuseStreams = false;
  const pageErrors: string[] = [];

  async function serve(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", base);
    if (!url.pathname.startsWith("/v1/")) {
      const answer = await dashboard.request(url.pathname);
      res.writeHead(answer.status, Object.fromEntries(answer.headers));
      res.end(Buffer.from(await answer.arrayBuffer()));
      return;
    }
    const json = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.headers.authorization !== `Bearer ${KEY}` || (url.pathname === "/v1/events" && refuseStreams)) {
      json(401, { success: false, status: 401, error: { type: "unauthorized", message: "invalid or revoked API key" } });
      return;
    }
    if (url.pathname === "/v1/tasks" && url.searchParams.get("cursor") === "page-2") {
      json(200, { results: [task("tsk_c0", "failed", 40, "2026-11-29T12:00:01.000Z")], pagination: { limit: 50, next_cursor: null } });
    } else if (url.pathname === "/v1/tasks") {
      json(200, { results: [task("tsk_a1", "processing", 50, "2026-11-29T12:00:05.000Z")], pagination: { limit: 50, next_cursor: "page-2" } });
    } else if (url.pathname === "/v1/tasks/stats") {
      json(200, { created: 0, queued: 0, processing: 1, max_concurrent_tasks: 3, processing_timeout_seconds: 1800 });
    } else if (url.pathname === "/v1/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      res.write(": connected\n\n");
      const lastEventId = req.headers["last-event-id"];
      streams.push({ lastEventId: typeof lastEventId === "string" ? lastEventId : undefined, res });
    } else {
      json(404, { success: false, status: 404, error: { type: "not_found", message: "no route" } });
    }
  }

  const stream = () => streams.at(-1)!.res;
  const bar = (taskId: string) => page.locator(`tr[data-task-id="${taskId}"] progress`);
  const row = (taskId: string) => page.locator(`tr[data-task-id="${taskId}"]`);

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = createServer((req, res) => {
      serve(req, res).catch((err: unknown) => res.writeHead(500).end(String(err)));
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    browser = await launchChromium();
    page = await browser.newPage();
    page.on("pageerror", (err) => pageErrors.push(String(err)));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const s of streams) s.res.destroy();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("opens the stream live, without Last-Event-ID, then shows the list", async () => {
    await page.goto(base);
    await page.locator("#key").fill(KEY);
    await page.locator("#key-form button[type=submit]").click();
    await expect.poll(() => page.locator("#connection").getAttribute("data-state"), WAIT).toBe("live");
    await expect.poll(() => bar("tsk_a1").getAttribute("value"), WAIT).toBe("50");
    expect(await page.locator('#counts [data-count="limit"]').textContent()).toBe("3");
    expect(streams).toHaveLength(1);
    expect(streams[0]!.lastEventId).toBeUndefined();
  });

  it("ignores an event older than the listed snapshot, and one older by sequence than the last applied", async () => {
    stream().write(sse(5, "task.progress", task("tsk_a1", "processing", 30, "2026-11-29T12:00:04.000Z")));
    stream().write(sse(6, "task.created", task("tsk_b2", "created", null, "2026-11-29T12:00:06.000Z")));
    await expect.poll(() => row("tsk_b2").count(), WAIT).toBe(1);
    expect(await bar("tsk_a1").getAttribute("value")).toBe("50");

    stream().write(sse(8, "task.progress", task("tsk_a1", "processing", 80, "2026-11-29T12:00:08.000Z")));
    await expect.poll(() => bar("tsk_a1").getAttribute("value"), WAIT).toBe("80");
    stream().write(sse(7, "task.progress", task("tsk_a1", "processing", 70, "2026-11-29T12:00:09.000Z")));
    stream().write(sse(9, "task.queued", task("tsk_b2", "queued", null, "2026-11-29T12:00:09.500Z")));
    await expect.poll(() => row("tsk_b2").getAttribute("data-status"), WAIT).toBe("queued");
    expect(await bar("tsk_a1").getAttribute("value")).toBe("80");
  });

  it("parses events split anywhere across chunks, with CRLF line ends, and skips malformed ones", async () => {
    const text = sse(10, "task.progress", task("tsk_a1", "processing", 90, "2026-11-29T12:00:10.000Z"), "\r\n");
    for (const cut of [3, 17, 18, 40, text.length - 3, text.length - 1]) {
      stream().write(text.slice(0, cut));
      stream().write(text.slice(cut));
    }
    await expect.poll(() => bar("tsk_a1").getAttribute("value"), WAIT).toBe("90");
    stream().write("id: 11\nevent: task.progress\ndata: {not json\n\n");
    stream().write(": keep-alive\n\nevent: something.else\ndata: {}\n\n");
    stream().write(sse(12, "task.completed", task("tsk_a1", "completed", null, "2026-11-29T12:00:12.000Z")));
    await expect.poll(() => row("tsk_a1").getAttribute("data-status"), WAIT).toBe("completed");
    expect(await bar("tsk_a1").getAttribute("value")).toBe("100");
    expect(await row("tsk_a1").locator("button.cancel").isVisible()).toBe(false);
  });

  it("reconnects after the stream ends, resuming with the last sequence number it saw", async () => {
    stream().end();
    await expect.poll(() => streams.length, WAIT).toBe(2);
    expect(streams[1]!.lastEventId).toBe("12");
    await expect.poll(() => page.locator("#connection").getAttribute("data-state"), WAIT).toBe("live");
    stream().write(sse(13, "task.processing", task("tsk_b2", "processing", 10, "2026-11-29T12:00:13.000Z")));
    await expect.poll(() => bar("tsk_b2").getAttribute("value"), WAIT).toBe("10");
  });

  it("loads older tasks on request, below the newer ones", async () => {
    expect(await page.locator("#more").isVisible()).toBe(true);
    await page.locator("#more").click();
    await expect.poll(() => row("tsk_c0").count(), WAIT).toBe(1);
    expect(await page.locator("#rows tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-task-id")))).toEqual(["tsk_b2", "tsk_a1", "tsk_c0"]);
    expect(await page.locator("#more").isVisible()).toBe(false);
  });

  it("asks for a key again when the stream refuses it", async () => {
    refuseStreams = true;
    stream().end();
    await expect.poll(() => page.locator("#key-form").isVisible(), WAIT).toBe(true);
    expect(await page.locator("#key-error").textContent()).toContain("refused");
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    expect(pageErrors).toEqual([]);
  });
});
