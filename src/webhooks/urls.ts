/**
 * SPEC §7 URL rules for webhook endpoints and processors: `https:` only, and never a host that
 * points back into a private network, however the address is spelled. The WHATWG URL parser
 * already turns decimal, octal and hex IPv4 forms into dotted quads; this module judges the
 * result, including IPv4 addresses embedded in IPv6.
 */
export type UrlVerdict = { ok: true; url: URL } | { ok: false; reason: string };

export function checkOutboundUrl(raw: string, allowPrivate: boolean): UrlVerdict {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: "is not a valid URL" };
  }
  if (url.protocol !== "https:" && !(allowPrivate && url.protocol === "http:")) {
    return { ok: false, reason: "must use https" };
  }
  if (url.username || url.password) return { ok: false, reason: "must not carry credentials" };
  if (allowPrivate) return { ok: true, url };
  const host = url.hostname.toLowerCase().replace(/\.+$/, "");
  if (host === "") return { ok: false, reason: "has no host" };
  if (host === "localhost" || host.endsWith(".localhost")) return { ok: false, reason: "must not point to localhost" };
  if (host.startsWith("[")) {
    const groups = parseIPv6(host.slice(1, -1));
    if (!groups) return { ok: false, reason: "has an invalid IPv6 address" };
    return isPublicIPv6(groups) ? { ok: true, url } : { ok: false, reason: "must not point to a private address" };
  }
  const v4 = parseIPv4(host);
  if (v4 !== null && !isPublicIPv4(v4)) return { ok: false, reason: "must not point to a private address" };
  return { ok: true, url };
}

/** A dotted-quad IPv4 address as a 32-bit number, or null when `host` is not one. */
export function parseIPv4(host: string): number | null {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** [network, prefix length] pairs no outbound call may reach. */
const BLOCKED_V4: readonly [string, number][] = [
  ["0.0.0.0", 8], // "this" network
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // CGNAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata lives here)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved and broadcast
];

export function isPublicIPv4(address: number): boolean {
  return !BLOCKED_V4.some(([network, bits]) => {
    const base = parseIPv4(network) ?? 0;
    const size = 2 ** (32 - bits);
    return address >= base && address < base + size;
  });
}

/** Eight 16-bit groups, or null when `text` is not an IPv6 address. */
export function parseIPv6(text: string): number[] | null {
  let body = text.toLowerCase().split("%")[0] ?? "";
  let v4Groups: number[] = [];
  const lastColon = body.lastIndexOf(":");
  if (lastColon < 0) return null;
  const last = body.slice(lastColon + 1);
  if (last.includes(".")) {
    const v4 = parseIPv4(last);
    if (v4 === null) return null;
    v4Groups = [Math.floor(v4 / 65536), v4 % 65536];
    body = body.slice(0, lastColon + 1);
    if (!body.endsWith("::")) body = body.slice(0, -1);
  }
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const halves = body.split("::");
  if (halves.length > 2) return null;
  const head = groups(halves[0] ?? "");
  const rest = halves.length === 2 ? groups(halves[1] ?? "") : [];
  if (!head || !rest) return null;
  rest.push(...v4Groups);
  if (halves.length === 1) return head.length + rest.length === 8 ? [...head, ...rest] : null;
  const missing = 8 - head.length - rest.length;
  return missing >= 1 ? [...head, ...new Array<number>(missing).fill(0), ...rest] : null;
}

export function isPublicIPv6(g: number[]): boolean {
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, h = 0, i = 0] = g;
  const embedded = h * 65536 + i;
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0) {
    // ::, ::1, IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) addresses
    if (f === 0xffff || f === 0) return f === 0 && h === 0 ? false : isPublicIPv4(embedded);
    return false;
  }
  if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0) return isPublicIPv4(embedded); // NAT64
  if ((a & 0xfe00) === 0xfc00) return false; // unique-local fc00::/7
  if ((a & 0xffc0) === 0xfe80) return false; // link-local fe80::/10
  if ((a & 0xffc0) === 0xfec0) return false; // site-local (deprecated) fec0::/10
  if ((a & 0xff00) === 0xff00) return false; // multicast
  if (a === 0x2001 && b === 0x0db8) return false; // documentation
  return true;
}

/** Whether this deployment lifts the URL rules (local development only). */
export const allowPrivateUrls = (env: Env): boolean => String(env.ALLOW_PRIVATE_URLS) === "true";
