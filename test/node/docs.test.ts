import { readFileSync } from "node:fs";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "./chromium";
import { startDevServer, type DevServer } from "./dev-server";

const root = path.resolve(import.meta.dirname, "../..");

describe("the API reference at /docs, in Chromium against wrangler dev", { timeout: 90_000 }, () => {
  let dev: DevServer;
  let browser: Browser;

  beforeAll(async () => {
    // The system Chromium when there is one, else the one @sparticuz/chromium ships (test/node/chromium.ts).
    [dev, browser] = await Promise.all([startDevServer({ adminToken: "docs-test-admin" }), launchChromium()]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await dev?.dispose();
  }, 60_000);

  it("serves the pinned Scalar bundle as a static asset", async () => {
    const res = await fetch(`${dev.url}/docs/api-reference.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/javascript/);
    const pinned = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { devDependencies: Record<string, string> }).devDependencies;
    expect(pinned["@scalar/api-reference"]).toMatch(/^\d+\.\d+\.\d+$/);
    const bundle = readFileSync(path.join(root, "node_modules/@scalar/api-reference/dist/browser/standalone.js"));
    expect(Buffer.from(await res.arrayBuffer()).equals(bundle)).toBe(true);
  });

  it("renders every tag of the document with nothing fetched from another origin and no CSP violation", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const elsewhere: string[] = [];
    const violations: string[] = [];
    const errors: string[] = [];
    // No network but this service: anything else is recorded and refused.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(dev.url) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
    page.on("console", (msg) => {
      if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
    });
    page.on("pageerror", (err) => errors.push(String(err)));
    const res = await page.goto(`${dev.url}/docs`);
    expect(res?.headers()["content-security-policy"]).toContain("script-src 'self'");
    // The reference is drawn from /openapi.json: its title, tags and the open group's operations appear.
    for (const text of ["edge-tasks", "Tasks", "Webhooks", "Processor callbacks", "Create a namespace"]) {
      await expect.poll(() => page.getByText(text, { exact: true }).count(), { timeout: 30_000 }).toBeGreaterThan(0);
    }
    expect(elsewhere).toEqual([]);
    expect(violations).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });
});
