import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/**
 * The fairness benchmark runs inside the Workers runtime, like the tests: it seeds a namespace's
 * SQLite directly (a million waiting tasks take seconds that way, hours through the API).
 */
export default defineConfig(async () => {
  const root = path.join(import.meta.dirname, "../..");
  const migrations = await readD1Migrations(path.join(root, "migrations"));
  return {
    root,
    plugins: [
      cloudflareTest({
        wrangler: { configPath: path.join(root, "wrangler.toml") },
        main: path.join(root, "test/worker.ts"),
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            ADMIN_TOKEN: "test-admin-token",
            ALLOW_PRIVATE_URLS: "true",
            BENCH_FAIR_BIG: process.env.BENCH_FAIR_BIG ?? "1000000",
            BENCH_FAIR_CANCEL: process.env.BENCH_FAIR_CANCEL ?? "100000",
          },
          serviceBindings: { AI: { name: "fake-ai", entrypoint: "FakeAi" } },
          workers: [{ name: "fake-ai", modules: true, scriptPath: path.join(root, "test/fake-ai.mjs"), compatibilityDate: "2026-11-01" }],
        },
      }),
    ],
    test: {
      include: ["bench/fair/*.bench.ts"],
      setupFiles: [path.join(root, "test/setup.ts")],
      testTimeout: 900_000,
      hookTimeout: 120_000,
    },
  };
});
