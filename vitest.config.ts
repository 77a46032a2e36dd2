import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Test files that each run in a project of their own, with the bindings they need. */
const CHECKPOINT_TESTS = ["test/checkpoints.test.ts"];
const SCALE_TESTS = ["test/dataplane-scale.test.ts", "test/webhooks-scale.test.ts"];
/**
 * The SIGKILL test wants its tasks created within a few seconds of each other (the queue
 * watchdog and the consumer's dispatch timeout are real time): on a machine loaded by the other
 * files it misses that, so it runs after them, on its own.
 */
const ALONE_TESTS = ["test/node/crash.test.ts"];

/**
 * Built-in handlers normally run 10 s before they should yield (src/consumer/builtin.ts). Tests
 * of yielding and resuming want many slices quickly, so their projects bind a 300 ms slice;
 * every other test runs with the real one.
 */
const SHORT_SLICE = { HANDLER_SLICE_MS: "300" };

/**
 * Test files at once. Most of a file's time is waiting (on workerd, wrangler dev, Chromium,
 * polling), so more files than this machine's two cores keep both busy; Vitest's default (cores
 * minus one) ran every file one after another.
 */
const PARALLEL_FILES = 4;

/**
 * Projects whose files start first, longest first: the 10 000-object import and the wrangler dev
 * and Chromium files overlap the many short files instead of running after them. Within a
 * project Vitest's own order stays (last run's durations, else larger files first).
 */
const START_FIRST = ["scale", "node", "checkpoints", "workers", "unit"];

class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const group = (file: TestSpecification) => file.project.config.sequence.groupOrder;
    const rank = (file: TestSpecification) => START_FIRST.indexOf(file.project.name);
    const sorted = (await super.sort(files)).map((file, index) => ({ file, index }));
    sorted.sort((a, b) => group(a.file) - group(b.file) || rank(a.file) - rank(b.file) || a.index - b.index);
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
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  });

  return {
    test: {
      maxWorkers: PARALLEL_FILES,
      sequence: { sequencer: SlowestFirst },
      projects: [
        {
          // Pure logic in plain Node: no Worker, no bindings; seconds for the whole tier.
          test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node" },
        },
        workersProject("workers", ["test/*.test.ts"], [...CHECKPOINT_TESTS, ...SCALE_TESTS]),
        workersProject("checkpoints", CHECKPOINT_TESTS, [], SHORT_SLICE),
        // The slow tests (10 000-object import), apart so the run shows what they cost.
        workersProject("scale", SCALE_TESTS, [], SHORT_SLICE),
        {
          // Checks with Node-only tools (the OpenAPI validator compiles schemas at run time).
          // wrangler dev, npm start and Chromium take longer than Vitest's 5 s default to start
          // when other files keep the cores busy.
          test: { name: "node", include: ["test/node/*.test.ts"], exclude: ALONE_TESTS, environment: "node", testTimeout: 60_000 },
        },
        {
          // After every other file (a later group), one file at a time.
          test: { name: "alone", include: ALONE_TESTS, environment: "node", testTimeout: 60_000, maxWorkers: 1, sequence: { groupOrder: 1 } },
        },
      ],
    },
  };
});
