// GET /docs: the API reference, drawn from /openapi.json by Scalar's browser bundle. The bundle
// is a Workers static asset copied from the pinned npm package (scripts/docs-assets.mjs), so the
// page loads nothing from a third party, and its CSP says so.
import { Hono } from "hono";

/** Where the Scalar bundle is served from (dist-assets/docs/api-reference.js). */
export const SCALAR_ASSET = "/docs/api-reference.js";

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Scalar's Vue components set style attributes and inject style elements.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  // The reference fetches /openapi.json and sends "try it" requests to this origin only.
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-tasks API</title>
</head>
<body>
<div id="app"></div>
<script src="${SCALAR_ASSET}"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// No CDN fonts, no telemetry, none of Scalar's hosted tools (its AI agent, developer tools):
// the page talks to this origin only.
const INIT = `Scalar.createApiReference("#app", {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  showDeveloperTools: "never",
  agent: { disabled: true },
});
`;

const docs = new Hono();

docs.get("/docs", (c) => {
  c.header("Content-Security-Policy", CSP);
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
  return c.html(PAGE);
});

docs.get("/docs/init.js", (c) => {
  c.header("Content-Type", "text/javascript; charset=utf-8");
  c.header("X-Content-Type-Options", "nosniff");
  return c.body(INIT);
});

export default docs;
