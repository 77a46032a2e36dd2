import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "./chromium";
import { startDevServer, type DevServer } from "./dev-server";
import { type Callback, type HoldingProcessor, startHoldingProcessor } from "./holding-processor";
import { checkLayout } from "./dashboard-layout";

const ADMIN = "dashboard-test-admin";
/** Where the layout checks leave their screenshots, for a person to look at. */
const SCREENSHOTS = process.env.DASHBOARD_SCREENSHOTS ?? "/tmp";
// Generous: under the full suite the two cores are shared with the Workers project.
const WAIT = { timeout: 20_000 };
const HOSTILE = `<img src=x onerror="window.__pwned=1">`;

describe("the dashboard, in Chromium against wrangler dev", { timeout: 90_000 }, () => {
  let dev: DevServer;
  let processor: HoldingProcessor;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let apiKey = "";
  const pageErrors: string[] = [];
  const policyViolations: string[] = [];
  let pagesLoaded = 0;

  async function call(method: string, path: string, token: string, body?: unknown) {
    const res = await fetch(`${dev.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {}, text };
  }

  async function createTask(taskType: string, inputs: Record<string, unknown>): Promise<string> {
    const res = await call("POST", "/v1/tasks", apiKey, { task_type: taskType, inputs });
    expect(res.status, res.text).toBe(201);
    return res.json.task_id as string;
  }

  async function report(cb: Callback, kind: "progress" | "logs" | "complete" | "fail", body: unknown) {
    const res = await fetch(`${cb.url}/${kind}`, {
      method: "POST",
      headers: { authorization: `Bearer ${cb.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.text()).toBe(200);
  }

  const row = (taskId: string) => page.locator(`tr[data-task-id="${taskId}"]`);
  const bar = (taskId: string) => row(taskId).locator("progress");
  const connection = () => page.locator("#connection").getAttribute("data-state");
  const icon = (taskId: string) => row(taskId).locator(".icon").getAttribute("data-status");

  beforeAll(async () => {
    [dev, processor, browser] = await Promise.all([
      startDevServer({ adminToken: ADMIN }),
      startHoldingProcessor(),
      launchChromium(),
    ]);
    const ns = await call("POST", "/v1/namespaces", ADMIN, { namespace_name: "dashboard", settings: { max_concurrent_tasks: 7, requests_per_second: 10_000 } });
    expect(ns.status, ns.text).toBe(201);
    const key = await call("POST", "/v1/namespaces/dashboard/api-keys", ADMIN, { name: "dashboard test" });
    expect(key.status, key.text).toBe(201);
    apiKey = key.json.api_key as string;
    const put = await call("PUT", "/v1/processors/dash_work", apiKey, { url: processor.url, lease_seconds: 3600 });
    expect(put.status, put.text).toBe(201);

    context = await browser.newContext();
    page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    page.on("load", () => pagesLoaded++);
    page.on("console", (msg) => {
      if (/Content Security Policy|Trusted Type/i.test(msg.text())) policyViolations.push(msg.text());
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await processor?.close();
    await dev?.dispose();
  }, 60_000);

  it("serves the page, its script and style with a strict CSP and no inline script", async () => {
    const res = await fetch(`${dev.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("require-trusted-types-for 'script'");
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    for (const asset of ["/dashboard/app.js", "/dashboard/style.css"]) {
      const r = await fetch(`${dev.url}${asset}`);
      expect(r.status, asset).toBe(200);
      const etag = r.headers.get("etag");
      expect(etag).toBeTruthy();
      expect((await fetch(`${dev.url}${asset}`, { headers: { "if-none-match": etag! } })).status).toBe(304);
    }
  });

  it("asks for an API key, refuses a wrong one and keeps the right one in session storage only", async () => {
    await page.goto(dev.url);
    await page.locator("#key").fill("sk_not_a_real_key");
    await page.locator("#key-form button[type=submit]").click();
    await expect.poll(() => page.locator("#key-error").textContent()).toContain("refused");
    expect(await page.locator("#key-form").isVisible()).toBe(true);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);

    await page.locator("#key").fill(apiKey);
    await page.locator("#key-form button[type=submit]").click();
    await expect.poll(connection, WAIT).toBe("live");
    expect(await page.locator("#key-form").isVisible()).toBe(false);
    expect(await page.locator("#board").isVisible()).toBe(true);
    expect(await page.evaluate("Object.values(sessionStorage)")).toEqual([apiKey]);
    expect(await page.evaluate("localStorage.length")).toBe(0);
    expect(await context.cookies()).toEqual([]);
    await expect.poll(() => page.locator('#counts [data-count="limit"]').textContent()).toBe("7");
  });

  let taskId = "";
  let callback: Callback;

  it("shows a task created through the API, and its progress bar follows the processor's reports", async () => {
    taskId = await createTask("dash_work", { source: "s3://corpus/part-1" });
    await expect.poll(() => row(taskId).count(), WAIT).toBe(1);
    expect(await row(taskId).locator(".inputs").textContent()).toContain("s3://corpus/part-1");
    callback = await processor.dispatched(taskId);
    await expect.poll(() => row(taskId).getAttribute("data-status"), WAIT).toBe("processing");
    expect(await icon(taskId)).toBe("processing");
    await expect.poll(() => page.locator('#counts [data-count="processing"]').textContent(), WAIT).toBe("1");

    await report(callback, "progress", { percent: 20, message: "a fifth done" });
    await expect.poll(() => bar(taskId).getAttribute("value"), WAIT).toBe("20");
    expect(await row(taskId).locator(".message").textContent()).toBe("a fifth done");

    await report(callback, "progress", { percent: 60, message: "<b>most</b> of it", processed: 6, total: 10 });
    await expect.poll(() => bar(taskId).getAttribute("value"), WAIT).toBe("60");
    expect(await row(taskId).locator(".percent").textContent()).toBe("60%");
    expect(await row(taskId).locator(".message").textContent()).toBe("<b>most</b> of it · 6/10");
    expect(await row(taskId).locator(".message b").count()).toBe(0);
  });

  it("shows a task's logs on selecting it", async () => {
    await report(callback, "logs", { lines: [{ level: "warn", message: "skipped <script>alert(1)</script> row 7" }] });
    await row(taskId).click();
    await expect.poll(() => page.locator("#detail").isVisible()).toBe(true);
    const line = page.locator("#logs li", { hasText: "row 7" });
    await expect.poll(() => line.count(), WAIT).toBe(1);
    expect(await line.locator(".log-message").textContent()).toBe("skipped <script>alert(1)</script> row 7");
    expect(await line.locator(".level").textContent()).toBe("warn");
    expect(await page.locator("#logs script").count()).toBe(0);
    expect(await page.locator("#detail-task").textContent()).toContain(taskId);
    await page.locator("#detail-close").click();
    expect(await page.locator("#detail").isVisible()).toBe(false);
  });

  it("reconnects after the service restarts and replays, by Last-Event-ID, what happened while it was away", async () => {
    await context.setOffline(true);
    await dev.restart();
    await report(callback, "progress", { percent: 90, message: "almost" });
    // Offline the page cannot have seen the report: only a resumed stream can bring it.
    expect(await connection()).not.toBe("live");
    expect(await bar(taskId).getAttribute("value")).toBe("60");
    await context.setOffline(false);
    await expect.poll(connection, { timeout: 20_000 }).toBe("live");
    await expect.poll(() => bar(taskId).getAttribute("value"), WAIT).toBe("90");
    expect(await page.locator("#notice").textContent()).toBe("");
    expect(await row(taskId).locator(".message").textContent()).toBe("almost · 6/10");
  }, 120_000);

  it("cancels a task from the page", async () => {
    await row(taskId).locator("button.cancel").click();
    await expect.poll(async () => (await call("GET", `/v1/tasks/${taskId}`, apiKey)).json.status, WAIT).toBe("cancelled");
    await expect.poll(() => icon(taskId), WAIT).toBe("cancelled");
    expect(await row(taskId).locator(".status-name").textContent()).toBe("cancelled");
    expect(await row(taskId).locator("button.cancel").isVisible()).toBe(false);
    await expect.poll(() => page.locator('#counts [data-count="processing"]').textContent(), WAIT).toBe("0");
  });

  it("renders hostile task input as text", async () => {
    const hostileId = await createTask("dash_work", { title: HOSTILE });
    await expect.poll(() => row(hostileId).count(), WAIT).toBe(1);
    expect(await row(hostileId).locator(".inputs").textContent()).toContain(`<img src=x onerror=\\"window.__pwned=1\\">`);
    await row(hostileId).click();
    await expect.poll(() => page.locator("#detail-task").textContent()).toContain("<img src=x onerror=");
    expect(await page.locator("img").count()).toBe(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    await page.locator("#detail-close").click();
  });

  it("filters by task type and status", async () => {
    const shown = async () => {
      // Rows are counted once the filtered first page is in, not in the moment after the reset.
      await expect.poll(() => page.locator("#board").getAttribute("aria-busy"), WAIT).toBe("false");
      return page.locator("#rows tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-task-id")));
    };
    await page.locator("#type-filter").fill("dash_other");
    await page.locator("#filters button[type=submit]").click();
    expect(await shown()).toEqual([]);
    expect(await page.locator("#empty").isVisible()).toBe(true);
    await page.locator("#type-filter").fill("dash_other, dash_work");
    await page.locator("#filters button[type=submit]").click();
    expect(await shown()).toHaveLength(2);
    await page.locator("#type-filter").fill("");
    await page.locator("#status-filter").selectOption("cancelled");
    expect(await shown()).toEqual([taskId]);
    await page.locator("#status-filter").selectOption("");
    expect(await shown()).toHaveLength(2);
  });

  it("keeps the key for the tab's session, and forgets it on request", async () => {
    await page.reload();
    await expect.poll(connection, WAIT).toBe("live");
    expect(await page.locator("#key-form").isVisible()).toBe(false);
    await expect.poll(() => page.locator("#rows tr").count()).toBe(2);

    await page.locator("#forget").click();
    expect(await page.locator("#key-form").isVisible()).toBe(true);
    expect(await page.locator("#board").isVisible()).toBe(false);
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    expect(await connection()).toBe("idle");
    await page.reload();
    expect(await page.locator("#key-form").isVisible()).toBe(true);
  });

  let waitingIds: string[] = [];
  let completedId = "";
  let failedId = "";

  it("shows a waiting task's place in the queue, a completed task's bar whole, and draws the charts from live events", async () => {
    await page.locator("#key").fill(apiKey);
    await page.locator("#key-form button[type=submit]").click();
    await expect.poll(connection, WAIT).toBe("live");
    // One task is processing (the hostile one): 8 more fill the other 6 slots, and 2 wait.
    const ids: string[] = [];
    for (let part = 0; part < 8; part++) ids.push(await createTask("dash_work", { part }));
    waitingIds = ids.slice(6);
    for (const [index, id] of waitingIds.entries()) {
      await expect.poll(() => row(id).locator(".queue-position").textContent(), WAIT).toBe(`#${index + 1} in queue`);
      expect(await icon(id)).toBe("created");
    }
    await page.screenshot({ path: `${SCREENSHOTS}/dashboard-queue.png`, fullPage: true, animations: "disabled" });

    // A clustering run's last report was 7 %: completed still means a whole bar.
    completedId = ids[0]!;
    const done = await processor.dispatched(completedId);
    await report(done, "progress", { percent: 7, message: "writing cluster ids", processed: 7, total: 50 });
    await expect.poll(() => bar(completedId).getAttribute("value"), WAIT).toBe("7");
    await report(done, "complete", { outputs: { clusters: 5 } });
    await expect.poll(() => icon(completedId), WAIT).toBe("completed");
    // The freed slot went to the first in line; the second moves up without an event of its own.
    await expect.poll(() => icon(waitingIds[0]!), WAIT).toMatch(/^(queued|processing)$/);
    await expect.poll(() => row(waitingIds[1]!).locator(".queue-position").textContent(), WAIT).toBe("#1 in queue");
    expect(await bar(completedId).getAttribute("value")).toBe("100");
    expect(await row(completedId).locator(".percent").textContent()).toBe("100%");
    expect(await row(completedId).locator(".message").textContent()).toBe("writing cluster ids · 7/50");

    failedId = ids[1]!;
    const failing = await processor.dispatched(failedId);
    await report(failing, "fail", { error: { code: "bad_input", message: "row 3 is not JSON" }, retryable: false });
    await expect.poll(() => icon(failedId), WAIT).toBe("failed");

    // The charts, from the events since the page opened.
    const ys = async (selector: string) => {
      const d = (await page.locator(selector).getAttribute("d")) ?? "";
      return [...d.matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((m) => Number(m[1]));
    };
    await expect.poll(async () => new Set(await ys("#chart-throughput path.series-created")).size, WAIT).toBeGreaterThan(1);
    await expect.poll(async () => new Set(await ys("#chart-throughput path.series-completed")).size, WAIT).toBeGreaterThan(1);
    await expect.poll(async () => new Set(await ys("#chart-throughput path.series-failed")).size, WAIT).toBeGreaterThan(1);
    await expect.poll(() => page.locator("#chart-failures rect.bar-failed").count(), WAIT).toBe(1);
    expect(await page.locator("#chart-failures .bar-label").textContent()).toBe("bad_input");
    expect(await page.locator("#chart-failures .bar-count").textContent()).toBe("1");
    await expect.poll(() => page.locator("#chart-depth path.series-limit").getAttribute("d"), WAIT).toMatch(/^M[\d.]+ [\d.]+H/);
    expect(await page.locator("#chart-depth path.series-active").getAttribute("d")).toMatch(/V/);
    await expect.poll(() => page.locator("#chart-depth .legend").textContent(), WAIT).toContain("of 7 slots in use");
    expect(await page.locator("#chart-types .bar-label").allTextContents()).toEqual(["dash_work"]);
    expect(await page.locator("#chart-types rect.bar").count()).toBeGreaterThanOrEqual(3);
  });

  it("fits a 390 px phone and a 1400 px screen with the detail panel open, Cancel always on screen", async () => {
    const phone = await checkLayout(page, 390, 844, `${SCREENSHOTS}/dashboard-390.png`);
    expect(phone.scrollWidth).toBeLessThanOrEqual(phone.innerWidth);
    expect(phone.cancels.length).toBeGreaterThanOrEqual(5);
    for (const box of phone.cancels) expect(box).toMatchObject({ hit: true });
    for (const box of phone.cancels) expect(box.right).toBeLessThanOrEqual(phone.innerWidth);

    await row(waitingIds[0]!).click();
    await expect.poll(() => page.locator("#detail").isVisible()).toBe(true);
    const phonePanel = await checkLayout(page, 390, 844, `${SCREENSHOTS}/dashboard-390-panel.png`);
    expect(phonePanel.scrollWidth).toBeLessThanOrEqual(phonePanel.innerWidth);

    const wide = await checkLayout(page, 1400, 900, `${SCREENSHOTS}/dashboard-1400-panel.png`);
    expect(await page.locator("#detail").isVisible()).toBe(true);
    expect(wide.scrollWidth).toBeLessThanOrEqual(wide.innerWidth);
    expect(wide.cancels.length).toBeGreaterThanOrEqual(5);
    for (const box of wide.cancels) expect(box).toMatchObject({ hit: true });
    for (const box of wide.cancels) expect(box.right).toBeLessThanOrEqual(wide.innerWidth);
    await page.locator("#detail-close").click();
    const wideClosed = await checkLayout(page, 1400, 900, `${SCREENSHOTS}/dashboard-1400.png`);
    expect(wideClosed.scrollWidth).toBeLessThanOrEqual(wideClosed.innerWidth);
  });

  it("ran without a script error or a policy violation", async () => {
    // Only worth anything if the page was there: loaded, and its script ran to the end.
    expect(pagesLoaded).toBeGreaterThan(0);
    expect(await page.evaluate("document.documentElement.dataset.dashboard")).toBe("ready");
    expect(pageErrors).toEqual([]);
    expect(policyViolations).toEqual([]);
    // And the policy is there to be violated: markup through innerHTML is refused.
    expect(await page.evaluate(`(() => { try { document.body.innerHTML = "<b>x</b>"; return "assigned"; } catch (err) { return err.name; } })()`)).toBe("TypeError");
  });
});
