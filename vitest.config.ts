import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Test files that each run in a project of their own, with the bindings they need. */
const CHECKPOINT_TESTS = ["test/checkpoints.test.ts", "test/import-resume.test.ts"];
const SCALE_TESTS = ["test/dataplane-scale.test.ts", "test/webhooks-scale.test.ts"];
/**
 * The SIGKILL test must create its 200 tasks within the consumer's real-time dispatch timeout
 * (15 s): under four wrangler dev and Chromium starts at once it misses that. It starts last,
 * when what still runs is the import and a few short files.
 */
const LAST_TESTS = ["test/node/crash.test.ts"];

/**
 * Built-in handlers normally run 10 s before they should yield (src/consumer/builtin.ts). Tests
 * of yielding and resuming want many slices quickly, so their projects bind a shorter one; every
 * other test runs with the real one. The checkpoint tests bind 1 ms: a handler yields at its
 * first chance, whatever the machine's speed (a 300 ms slice let a fast machine import 1 500
 * objects without a checkpoint). The import at scale keeps 300 ms, so its object_create batches
 * still claim ahead within their slice.
 */
const SHORT_SLICE = { HANDLER_SLICE_MS: "300" };
const YIELD_AT_ONCE = { HANDLER_SLICE_MS: "1" };

/** The Worker's dependencies as the code imports them (src/, test/). */
const PREBUNDLED = ["hono", "hono/body-limit", "hono/etag", "hono/http-exception", "hono/utils/http-status", "@hono/zod-openapi", "zod", "standardwebhooks"];

/**
 * Test files at once. Most of a file's time is waiting (on workerd, wrangler dev, Chromium,
 * polling), so more files than this machine's two cores keep both busy; Vitest's default (cores
 * minus one) ran every file one after another.
 */
const PARALLEL_FILES = 4;

/**
 * The order in which projects' files start: the slowest first (the 10 000-object import, then
 * the wrangler dev and Chromium files), so that they overlap the many short files instead of
 * running after them; the SIGKILL test last (LAST_TESTS). Within a project Vitest's own order
 * stays (the last run's durations, else larger files first).
 */
const START_ORDER = ["scale", "node", "checkpoints", "workers", "unit", "node-last"];

class StartOrder extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => START_ORDER.indexOf(file.project.name);
    const sorted = (await super.sort(files)).map((file, index) => ({ file, index }));
    sorted.sort((a, b) => rank(a.file) - rank(b.file) || a.index - b.index);
    return sorted.map(({ file }) => file);
  }
}

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));

  /** A project in the Workers runtime: HTTP in, the Durable Object, Queue and D1 behind it. */
  const workersProject = (name: string, include: string[], exclude: string[], extraBindings: Record<string, string> = {}) => ({
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        // The production Worker with test seams on its Durable Object (test/worker.ts).
        main: "./test/worker.ts",
        miniflare: {
          bindings: { TEST_MIGRATIONS: migrations, ADMIN_TOKEN: "test-admin-token", ALLOW_PRIVATE_URLS: "true", STREAM_KEEPALIVE_MS: "200", ...extraBindings },
          // A deterministic stand-in for Workers AI (test/fake-ai.mjs), bound as AI.
          serviceBindings: { AI: { name: "fake-ai", entrypoint: "FakeAi" } },
          workers: [{ name: "fake-ai", modules: true, scriptPath: "./test/fake-ai.mjs", compatibilityDate: "2026-11-01" }],
        },
      }),
    ],
    test: {
      name,
      include,
      exclude,
      setupFiles: ["./test/setup.ts"],
      // Each test file loads the Worker in a fresh isolate, module by module: the dependencies
      // pre-bundled into a few files make that load cheaper. Every entry the code imports is
      // listed, so that they share one copy of hono (its HTTPException is checked by identity).
      deps: { optimizer: { ssr: { enabled: true, include: PREBUNDLED } } },
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  });

  return {
    test: {
      maxWorkers: PARALLEL_FILES,
      sequence: { sequencer: StartOrder },
      projects: [
        {
          // Pure logic in plain Node: no Worker, no bindings; seconds for the whole tier.
          test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node" },
        },
        workersProject("workers", ["test/*.test.ts"], [...CHECKPOINT_TESTS, ...SCALE_TESTS]),
        workersProject("checkpoints", CHECKPOINT_TESTS, [], YIELD_AT_ONCE),
        // The slow tests (10 000-object import), apart so the run shows what they cost.
        workersProject("scale", SCALE_TESTS, [], SHORT_SLICE),
        {
          // Checks with Node-only tools (the OpenAPI validator compiles schemas at run time).
          // wrangler dev, npm start and Chromium take longer than Vitest's 5 s default to start
          // when other files keep the cores busy.
          test: { name: "node", include: ["test/node/*.test.ts"], exclude: LAST_TESTS, environment: "node", testTimeout: 60_000 },
        },
        {
          // Started after every other file (see START_ORDER).
          test: { name: "node-last", include: LAST_TESTS, environment: "node", testTimeout: 60_000 },
        },
      ],
    },
  };
});
