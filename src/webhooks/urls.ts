/**
 * SPEC §7 URL rules for webhook endpoints and processors: `https:` only, and never a host that
 * points back into a private network, however the address is spelled. The WHATWG URL parser
 * already turns decimal, octal, hex and short IPv4 forms (`2130706433`, `0177.0.0.1`,
 * `0x7f.1`, `127.1`) into dotted quads, percent-escapes and full-width letters into plain
 * names, and IPv6 literals into their compressed hex form (`[::ffff:127.0.0.1]` becomes
 * `[::ffff:7f00:1]`); this module judges the result, including IPv4 addresses embedded in IPv6.
 */
import { config } from "../config";

export type UrlVerdict = { ok: true; url: URL } | { ok: false; reason: string };

const PRIVATE = "must not point to a private, local or reserved address";

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
  const reason = refusedHost(url.hostname);
  return reason === null ? { ok: true, url } : { ok: false, reason };
}

/** Why a (parser-normalised) host is refused, or null when it may be called. */
export function refusedHost(hostname: string): string | null {
  const host = hostname.toLowerCase().replace(/\.+$/, "");
  if (host === "") return "has no host";
  if (host.startsWith("[")) {
    const groups = parseIPv6(host.slice(1, -1));
    if (!groups) return "has an invalid IPv6 address";
    return isPublicIPv6(groups) ? null : PRIVATE;
  }
  const v4 = parseIPv4(host);
  if (v4 !== null) return isPublicIPv4(v4) ? null : PRIVATE;
  return isLocalName(host) ? "must not point to a local host name" : null;
}

/** Names that only ever resolve inside a machine or a private network (SPEC §7). */
const LOCAL_NAMES = ["localhost", "localhost.localdomain"];
const LOCAL_SUFFIXES = ["localhost", "internal", "local", "home.arpa"];

function isLocalName(host: string): boolean {
  return LOCAL_NAMES.includes(host) || LOCAL_SUFFIXES.some((suffix) => host === suffix || host.endsWith(`.${suffix}`));
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
  ["192.0.2.0", 24], // documentation (TEST-NET-1)
  ["192.88.99.0", 24], // 6to4 relay anycast (deprecated)
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation (TEST-NET-2)
  ["203.0.113.0", 24], // documentation (TEST-NET-3)
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and the broadcast address
];

const BLOCKED_V4_RANGES = BLOCKED_V4.map(([network, bits]) => ({ base: parseIPv4(network) ?? 0, size: 2 ** (32 - bits) }));

export function isPublicIPv4(address: number): boolean {
  return !BLOCKED_V4_RANGES.some(({ base, size }) => address >= base && address < base + size);
}

/** Eight 16-bit groups, or null when `text` is not an IPv6 address. */
export function parseIPv6(text: string): number[] | null {
  let body = text.toLowerCase();
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

type Groups = readonly number[];

/** Whether the first `bits` bits of `g` equal those of `prefix` (eight groups each). */
function inPrefix(g: Groups, prefix: Groups, bits: number): boolean {
  for (let i = 0; i * 16 < bits; i++) {
    const take = Math.min(16, bits - i * 16);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if (((g[i] ?? 0) & mask) !== ((prefix[i] ?? 0) & mask)) return false;
  }
  return true;
}

const word = (g: Groups, i: number): number => g[i] ?? 0;
/** The 32 bits made of groups i and i + 1. */
const pair = (g: Groups, i: number): number => word(g, i) * 65536 + word(g, i + 1);

interface EmbeddingRule {
  prefix: Groups;
  bits: number;
  /** The IPv4 addresses the IPv6 address stands for; every one must be public. */
  embedded: (g: Groups) => number[];
}

const v6 = (text: string): Groups => parseIPv6(text) ?? [];

/**
 * IPv6 forms that carry an IPv4 address, judged by that address (SPEC §7). A local-use NAT64
 * prefix may be any length from /48 to /96 inside 64:ff9b:1::/48, and RFC 6052 puts the IPv4
 * address in a different place for each; as the operator's choice is unknown, every reading
 * must be public.
 */
const EMBEDDINGS: readonly EmbeddingRule[] = [
  { prefix: v6("::ffff:0:0"), bits: 96, embedded: (g) => [pair(g, 6)] }, // IPv4-mapped
  { prefix: v6("::ffff:0:0:0"), bits: 96, embedded: (g) => [pair(g, 6)] }, // IPv4-translated (RFC 2765)
  { prefix: v6("::"), bits: 96, embedded: (g) => [pair(g, 6)] }, // IPv4-compatible; also :: and ::1
  { prefix: v6("64:ff9b::"), bits: 96, embedded: (g) => [pair(g, 6)] }, // NAT64, well-known prefix
  {
    prefix: v6("64:ff9b:1::"),
    bits: 48, // NAT64, local-use prefix (RFC 8215); bits 64–71 are RFC 6052's reserved octet
    embedded: (g) => [
      word(g, 3) * 65536 + (word(g, 4) & 0xff) * 256 + (word(g, 5) >> 8), // /48
      (word(g, 3) & 0xff) * 16777216 + (word(g, 4) & 0xff) * 65536 + word(g, 5), // /56
      (word(g, 4) & 0xff) * 16777216 + word(g, 5) * 256 + (word(g, 6) >> 8), // /64
      pair(g, 6), // /96
    ],
  },
  { prefix: v6("2002::"), bits: 16, embedded: (g) => [pair(g, 1)] }, // 6to4: bits 16–47
  { prefix: v6("2001::"), bits: 32, embedded: (g) => [0xffffffff - pair(g, 6)] }, // Teredo: the client, inverted
];

const GLOBAL_UNICAST = v6("2000::");

/** Inside global unicast (2000::/3), the blocks that are not the public Internet. */
const BLOCKED_V6: readonly [Groups, number][] = [
  [v6("2001::"), 23], // IETF protocol assignments (benchmarking, ORCHID, ...); Teredo is judged above
  [v6("2001:db8::"), 32], // documentation
  [v6("3fff::"), 20], // documentation (RFC 9637)
];

/**
 * Public means: an embedded IPv4 address that is public, or an address in global unicast
 * (2000::/3) outside its special blocks. Everything else (loopback, unspecified, discard
 * 100::/64, unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast
 * ff00::/8 and every unassigned block) is refused.
 */
export function isPublicIPv6(g: Groups): boolean {
  const embedding = EMBEDDINGS.find((rule) => inPrefix(g, rule.prefix, rule.bits));
  if (embedding) return embedding.embedded(g).every(isPublicIPv4);
  if (!inPrefix(g, GLOBAL_UNICAST, 3)) return false;
  return !BLOCKED_V6.some(([prefix, bits]) => inPrefix(g, prefix, bits));
}

/** Whether this deployment lifts the URL rules (local development only). */
export const allowPrivateUrls = (env: Env): boolean => config(env).allowPrivateUrls;
