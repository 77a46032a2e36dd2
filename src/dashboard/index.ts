import { Hono } from "hono";
import { etag } from "hono/etag";
import type { AppEnv } from "../api/env";
import { DASHBOARD_HTML, FAVICON_SVG } from "./page";
import { DASHBOARD_JS } from "./app.generated";
import { DASHBOARD_CSS } from "./style";

/**
 * Scripts and styles only from this origin, requests only to this origin, no frames, no forms
 * posting elsewhere; Trusted Types with no policy turn any innerHTML-style sink into an error,
 * so hostile task data can never become markup even through a future slip in the script.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "Content-Security-Policy": DASHBOARD_CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  // Revalidated on every load (a 304 through the ETag), so a deploy shows at once.
  "Cache-Control": "no-cache",
};

const asset = (body: string, type: string) => () =>
  new Response(body, { headers: { ...SECURITY_HEADERS, "Content-Type": type } });

// Per route, not `use("*")`: mounted at "/", a wildcard would also wrap every API response.
const cached = etag();

/** The live dashboard at GET /: a static page, its script, style and icon; no auth, no data. */
const dashboard = new Hono<AppEnv>();
dashboard.get("/", cached, asset(DASHBOARD_HTML, "text/html; charset=utf-8"));
dashboard.get("/dashboard/app.js", cached, asset(DASHBOARD_JS, "text/javascript; charset=utf-8"));
dashboard.get("/dashboard/style.css", cached, asset(DASHBOARD_CSS, "text/css; charset=utf-8"));
dashboard.get("/dashboard/favicon.svg", cached, asset(FAVICON_SVG, "image/svg+xml"));

export default dashboard;
