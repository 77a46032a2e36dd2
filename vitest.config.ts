import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    test: {
      projects: [
        {
          // Everything that needs the Workers runtime: HTTP in, Durable Object, Queue and D1 behind it.
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                // Handlers yield every 300 ms here, so that every test exercises checkpoints.
                bindings: { TEST_MIGRATIONS: migrations, ADMIN_TOKEN: "test-admin-token", ALLOW_PRIVATE_URLS: "true", HANDLER_SLICE_MS: "300", STREAM_KEEPALIVE_MS: "200" },
                // A deterministic stand-in for Workers AI (test/fake-ai.mjs), bound as AI.
                serviceBindings: { AI: { name: "fake-ai", entrypoint: "FakeAi" } },
                workers: [{ name: "fake-ai", modules: true, scriptPath: "./test/fake-ai.mjs", compatibilityDate: "2026-11-01" }],
              },
            }),
          ],
          test: {
            name: "workers",
            include: ["test/*.test.ts"],
            setupFiles: ["./test/setup.ts"],
            testTimeout: 30_000,
            hookTimeout: 30_000,
          },
        },
        {
          // Checks with Node-only tools (the OpenAPI validator compiles schemas at run time).
          test: { name: "node", include: ["test/node/*.test.ts"], environment: "node" },
        },
      ],
    },
  };
});
