import { describe, expect, it } from "vitest";
import { checkOutboundUrl } from "../src/webhooks/urls";

// Runs in the Workers runtime on purpose: the rules judge what workerd's URL parser makes of a
// host, so the table checks that parser's normalisation too.

/** Hosts in a blocked range, each refused as a private address (not merely as unparsable). */
const PRIVATE_ADDRESSES: [string, string][] = [
  ["https://127.0.0.1/hook", "loopback"],
  ["https://127.0.0.1./hook", "loopback, trailing dot"],
  ["https://127.1/hook", "short form"],
  ["https://2130706433/hook", "decimal"],
  ["https://0x7f000001/hook", "hex"],
  ["https://0X7F000001/hook", "hex, upper case"],
  ["https://017700000001/hook", "octal, whole"],
  ["https://0177.0.0.1/hook", "octal part"],
  ["https://127.000.000.001/hook", "zero-padded parts (octal)"],
  ["https://0x7f.0.0.1/hook", "hex part"],
  ["https://0x7f.1/hook", "hex and short"],
  ["https://0/hook", "0.0.0.0 as one number"],
  ["https://0.0.0.0/hook", "this network"],
  ["https://10.0.0.5/hook", "private 10/8"],
  ["https://172.16.3.4/hook", "private 172.16/12"],
  ["https://172.31.255.255/hook", "private 172.16/12, last"],
  ["https://192.168.1.1/hook", "private 192.168/16"],
  ["https://169.254.169.254/latest/meta-data", "link-local: cloud metadata"],
  ["https://100.64.0.1/hook", "CGNAT"],
  ["https://100.127.255.255/hook", "CGNAT, last"],
  ["https://192.0.0.8/hook", "IETF protocol assignments"],
  ["https://192.0.2.1/hook", "documentation TEST-NET-1"],
  ["https://198.51.100.7/hook", "documentation TEST-NET-2"],
  ["https://203.0.113.9/hook", "documentation TEST-NET-3"],
  ["https://192.88.99.1/hook", "6to4 relay anycast"],
  ["https://198.18.0.1/hook", "benchmarking"],
  ["https://198.19.255.255/hook", "benchmarking, last"],
  ["https://224.0.0.1/hook", "multicast"],
  ["https://239.255.255.250/hook", "multicast, SSDP"],
  ["https://240.0.0.1/hook", "reserved"],
  ["https://255.255.255.255/hook", "broadcast"],
  ["https://[::1]/hook", "IPv6 loopback"],
  ["https://[0:0:0:0:0:0:0:1]/hook", "IPv6 loopback, spelled out"],
  ["https://[::]/hook", "unspecified"],
  ["https://[::ffff:127.0.0.1]/hook", "IPv4-mapped loopback"],
  ["https://[::ffff:7f00:1]/hook", "IPv4-mapped loopback, hex"],
  ["https://[::ffff:10.1.2.3]/hook", "IPv4-mapped private"],
  ["https://[::ffff:169.254.169.254]/hook", "IPv4-mapped metadata"],
  ["https://[::ffff:0:127.0.0.1]/hook", "IPv4-translated loopback (::ffff:0:a.b.c.d)"],
  ["https://[::ffff:0:a00:1]/hook", "IPv4-translated private"],
  ["https://[::127.0.0.1]/hook", "IPv4-compatible loopback"],
  ["https://[::a9fe:a9fe]/hook", "IPv4-compatible metadata"],
  ["https://[2002:7f00:1::1]/hook", "6to4 of loopback"],
  ["https://[2002:a00:1::]/hook", "6to4 of 10.0.0.1"],
  ["https://[2002:c0a8:101:1::1]/hook", "6to4 of 192.168.1.1"],
  ["https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", "Teredo, client 127.0.0.1"],
  ["https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook", "Teredo, client 10.0.0.1"],
  ["https://[2001::1]/hook", "Teredo, client 255.255.255.254"],
  ["https://[64:ff9b::7f00:1]/hook", "NAT64 of loopback"],
  ["https://[64:ff9b::192.168.0.1]/hook", "NAT64 of a private address"],
  ["https://[64:ff9b::a9fe:a9fe]/hook", "NAT64 of metadata"],
  ["https://[64:ff9b:1::7f00:1]/hook", "local-use NAT64 of loopback (/96)"],
  ["https://[64:ff9b:1:7f00:0:100:808:808]/hook", "local-use NAT64: 127.0.0.1 under a /48 prefix, 8.8.8.8 under /96"],
  ["https://[64:ff9b:1:80a:8:808:808:808]/hook", "local-use NAT64: 10.8.8.8 under a /56 prefix, public under the others"],
  ["https://[100::1]/hook", "discard 100::/64"],
  ["https://[100::ffff:1:2:3]/hook", "discard 100::/64, last groups set"],
  ["https://[fc00::1]/hook", "unique-local"],
  ["https://[fd12:3456::1]/hook", "unique-local"],
  ["https://[fe80::1]/hook", "link-local"],
  ["https://[febf::1]/hook", "link-local, last"],
  ["https://[fec0::1]/hook", "site-local (deprecated)"],
  ["https://[ff02::1]/hook", "multicast"],
  ["https://[ff0e::1]/hook", "multicast, global scope"],
  ["https://[2001:db8::1]/hook", "documentation"],
  ["https://[3fff::1]/hook", "documentation (RFC 9637)"],
  ["https://[2001:2::1]/hook", "benchmarking"],
  ["https://[2001:20::1]/hook", "ORCHIDv2"],
  ["https://[4000::1]/hook", "reserved (outside 2000::/3)"],
  ["https://[1::1]/hook", "reserved (outside 2000::/3)"],
];

/** Host names that only resolve locally. */
const LOCAL_NAMES: [string, string][] = [
  ["https://localhost/hook", "localhost"],
  ["https://LOCALHOST./hook", "upper case, trailing dot"],
  ["https://%6c%6fcalhost/hook", "percent-escaped"],
  ["https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/hook", "full-width letters"],
  ["https://api.localhost/hook", "*.localhost"],
  ["https://localhost.localdomain/hook", "localhost.localdomain"],
  ["https://metadata.google.internal/hook", "*.internal"],
  ["https://internal/hook", "the internal name itself"],
  ["https://printer.local/hook", "*.local (mDNS)"],
  ["https://printer.local./hook", "*.local, trailing dot"],
  ["https://nas.home.arpa/hook", "*.home.arpa"],
  ["https://home.arpa/hook", "home.arpa itself"],
];

/** Refused before the host is looked at. */
const MALFORMED: [string, string][] = [
  ["http://example.com/hook", "not https"],
  ["https://user:pass@example.com/hook", "credentials"],
  ["https://user@example.com/hook", "a user name"],
  ["ftp://example.com/", "another scheme"],
  ["javascript:alert(1)", "another scheme"],
  ["not a url", "no URL at all"],
  ["https://[::1/hook", "unclosed IPv6 literal"],
  ["https://[fe80::1%25eth0]/hook", "zone id"],
  ["https://256.0.0.1/hook", "octet out of range"],
  ["https://0x100000000/hook", "number too large"],
];

const ACCEPTED: [string, string][] = [
  ["https://example.com/hook", "a public name"],
  ["https://hooks.example.com:8443/a/b?c=d", "port and query"],
  ["https://8.8.8.8/hook", "a public IPv4"],
  ["https://134744072/hook", "8.8.8.8 as one number"],
  ["https://172.32.0.1/hook", "just outside 172.16/12"],
  ["https://172.15.255.255/hook", "just below 172.16/12"],
  ["https://100.128.0.1/hook", "just outside 100.64/10"],
  ["https://100.63.255.255/hook", "just below 100.64/10"],
  ["https://198.20.0.1/hook", "just outside 198.18/15"],
  ["https://223.255.255.255/hook", "just below multicast"],
  ["https://1.1.1.1/hook", "a public IPv4"],
  ["https://[2606:4700:4700::1111]/hook", "a public IPv6"],
  ["https://[2a00:1450:4001:80b::200e]/hook", "a public IPv6"],
  ["https://[::ffff:8.8.8.8]/hook", "IPv4-mapped public"],
  ["https://[::ffff:0:8.8.8.8]/hook", "IPv4-translated public"],
  ["https://[::8.8.8.8]/hook", "IPv4-compatible public"],
  ["https://[2002:808:808::1]/hook", "6to4 of 8.8.8.8"],
  ["https://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/hook", "Teredo, client 8.8.8.8"],
  ["https://[64:ff9b::808:808]/hook", "NAT64 of 8.8.8.8"],
  ["https://[64:ff9b:1:808:8:808:808:808]/hook", "local-use NAT64: 8.8.8.8 under every prefix length"],
  ["https://localhost.example.com/hook", "localhost as a label, not the name"],
  ["https://internal.example.com/hook", "internal as a label"],
  ["https://example.local.com/hook", "local as a label"],
  ["https://home.arpa.example.com/hook", "home.arpa as labels"],
  ["https://mylocalhost/hook", "a name that merely contains localhost"],
];

describe("outbound URL rules", () => {
  it.each(PRIVATE_ADDRESSES)("refuses %s (%s) as a private address", (url) => {
    const verdict = checkOutboundUrl(url, false);
    expect(verdict).toEqual({ ok: false, reason: expect.stringContaining("private") });
  });

  it.each(LOCAL_NAMES)("refuses %s (%s) as a local name", (url) => {
    expect(checkOutboundUrl(url, false)).toEqual({ ok: false, reason: expect.stringContaining("local host name") });
  });

  it.each(MALFORMED)("refuses %s (%s)", (url) => {
    expect(checkOutboundUrl(url, false).ok).toBe(false);
  });

  it.each(ACCEPTED)("accepts %s (%s)", (url) => {
    expect(checkOutboundUrl(url, false).ok).toBe(true);
  });

  it("lets ALLOW_PRIVATE_URLS lift the rules for http and private hosts, but never for other schemes", () => {
    expect(checkOutboundUrl("http://127.0.0.1:8788/run", true).ok).toBe(true);
    expect(checkOutboundUrl("https://localhost/run", true).ok).toBe(true);
    expect(checkOutboundUrl("https://[2002:7f00:1::1]/run", true).ok).toBe(true);
    expect(checkOutboundUrl("ftp://127.0.0.1/", true).ok).toBe(false);
  });
});
