// Copies the API reference's browser bundle from the pinned @scalar/api-reference package into
// dist-assets/, the Workers static assets directory (wrangler.toml [assets]). Runs on `prepare`,
// so a clean clone has it after `npm ci`; /docs then loads nothing from a third party.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const pkgDir = path.join(root, "node_modules/@scalar/api-reference");
const expected = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).devDependencies["@scalar/api-reference"];
const installed = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
if (installed !== expected) {
  throw new Error(`@scalar/api-reference ${installed} is installed, package.json pins ${expected}: run npm ci`);
}
const target = path.join(root, "dist-assets/docs");
mkdirSync(target, { recursive: true });
copyFileSync(path.join(pkgDir, "dist/browser/standalone.js"), path.join(target, "api-reference.js"));
console.log(`dist-assets/docs/api-reference.js: @scalar/api-reference ${installed}`);
