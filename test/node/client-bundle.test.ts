import { build } from "esbuild";
import { describe, expect, it } from "vitest";

describe("the client bundle (edge-tasks/client)", () => {
  it("holds the client's own code and imports nothing at run time but standardwebhooks", async () => {
    // Built as `npm run build` builds it; the metafile names every module that went in.
    const result = await build({
      entryPoints: ["src/client/index.ts"],
      bundle: true,
      format: "esm",
      platform: "neutral",
      packages: "external",
      write: false,
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.length).toBeGreaterThan(3);
    // Types come from the API's zod schemas, but only as types: no schema module is bundled.
    expect(inputs.filter((i) => !i.startsWith("src/client/"))).toEqual([]);
    const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
    expect([...new Set(imports)]).toEqual(["standardwebhooks"]);
  });
});
