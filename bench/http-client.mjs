// The benches' JSON client over keep-alive HTTP/1.1 (node:http, not fetch: its pool is sized
// and reused as the load needs).
import { Agent, request } from "node:http";

/**
 * A client of `base`: `http(method, url, { token, body, uncounted })` resolves to
 * `{ status, json, text }` (json null when the answer is not JSON). `uncounted` marks a bench's
 * own polling, which the counting build leaves out of its counts; `uncountedAll` marks every
 * request so.
 */
export function jsonClient(base, { maxSockets = Infinity, uncountedAll = false } = {}) {
  const agent = new Agent({ keepAlive: true, maxSockets });
  const http = (method, url, { token, body, uncounted = uncountedAll } = {}) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        `${base}${url}`,
        {
          method,
          agent,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(uncounted ? { "x-bench-uncounted": "1" } : {}),
            ...(payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json = null;
            try {
              json = JSON.parse(text);
            } catch {}
            resolve({ status: res.statusCode, json, text });
          });
        },
      );
      req.on("error", reject);
      if (payload) req.write(payload);
      req.end();
    });
  return { http, agent, close: () => agent.destroy() };
}
