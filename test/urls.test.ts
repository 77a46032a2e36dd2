import { describe, expect, it } from "vitest";
import { checkOutboundUrl } from "../src/webhooks/urls";

const HOSTILE = [
  "http://example.com/hook", // not https
  "https://localhost/hook",
  "https://LOCALHOST./hook",
  "https://api.localhost/hook",
  "https://127.0.0.1/hook",
  "https://127.1/hook", // short form
  "https://2130706433/hook", // decimal
  "https://0x7f000001/hook", // hex
  "https://0177.0.0.1/hook", // octal
  "https://0x7f.0.0.1/hook",
  "https://10.0.0.5/hook",
  "https://172.16.3.4/hook",
  "https://172.31.255.255/hook",
  "https://192.168.1.1/hook",
  "https://169.254.169.254/latest/meta-data", // cloud metadata
  "https://100.64.0.1/hook", // CGNAT
  "https://0.0.0.0/hook",
  "https://224.0.0.1/hook", // multicast
  "https://255.255.255.255/hook",
  "https://[::1]/hook",
  "https://[::]/hook",
  "https://[::ffff:127.0.0.1]/hook", // IPv4-mapped
  "https://[::ffff:7f00:1]/hook",
  "https://[::ffff:10.1.2.3]/hook",
  "https://[::127.0.0.1]/hook", // IPv4-compatible
  "https://[64:ff9b::192.168.0.1]/hook", // NAT64 of a private address
  "https://[fc00::1]/hook", // unique-local
  "https://[fd12:3456::1]/hook",
  "https://[fe80::1]/hook", // link-local
  "https://[ff02::1]/hook", // multicast
  "https://user:pass@example.com/hook", // credentials
  "ftp://example.com/",
  "javascript:alert(1)",
  "not a url",
];

const ACCEPTED = [
  "https://example.com/hook",
  "https://hooks.example.com:8443/a/b?c=d",
  "https://8.8.8.8/hook",
  "https://172.32.0.1/hook", // just outside 172.16/12
  "https://100.128.0.1/hook", // just outside 100.64/10
  "https://[2606:4700:4700::1111]/hook",
  "https://[::ffff:8.8.8.8]/hook",
  "https://localhost.example.com/hook",
];

describe("outbound URL rules", () => {
  it.each(HOSTILE)("refuses %s", (url) => {
    expect(checkOutboundUrl(url, false).ok).toBe(false);
  });

  it.each(ACCEPTED)("accepts %s", (url) => {
    expect(checkOutboundUrl(url, false).ok).toBe(true);
  });

  it("lets ALLOW_PRIVATE_URLS lift the rules for http and private hosts, but never for other schemes", () => {
    expect(checkOutboundUrl("http://127.0.0.1:8788/run", true).ok).toBe(true);
    expect(checkOutboundUrl("https://localhost/run", true).ok).toBe(true);
    expect(checkOutboundUrl("ftp://127.0.0.1/", true).ok).toBe(false);
  });
});
