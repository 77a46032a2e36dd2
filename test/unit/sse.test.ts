import { describe, expect, it } from "vitest";
import { SseParser } from "../../src/client/sse";

// The first test moved from test/client.test.ts.

describe("SseParser", () => {
  it("handles CRLF split across chunks, multi-line data, comments, retry and ids carried over", () => {
    const parser = new SseParser();
    const out = [
      ...parser.push(": connected\r"),
      ...parser.push("\n\r\nid: 7\r"),
      ...parser.push("\nevent: task.queued\ndata: {\"a\":\ndata: 1}\n\n: keep-alive\n\nretry: 1500\nevent: task.progress\ndata: x"),
      ...parser.push("\n\nid: bad\0id\ndata: y\n\n"),
    ];
    expect(out).toEqual([
      { id: "7", event: "task.queued", data: '{"a":\n1}', retry: undefined },
      { id: "7", event: "task.progress", data: "x", retry: 1500 },
      { id: "7", event: "message", data: "y", retry: 1500 },
    ]);
    expect(parser.lastEventId).toBe("7");
    // A message is dispatched only at its blank line.
    expect(parser.push("id: 9\ndata: z\n")).toEqual([]);
    expect(parser.push("\n")).toEqual([{ id: "9", event: "message", data: "z", retry: 1500 }]);
  });
});

describe("SseParser, edge cases", () => {
  it("takes CR, LF and CRLF line ends alike, a field without a colon, and one space after the colon only", () => {
    const parser = new SseParser();
    expect(parser.push("data:  two spaces\rdata\r\ndata:x\n\n")).toEqual([{ id: undefined, event: "message", data: " two spaces\n\nx", retry: undefined }]);
  });

  it("dispatches no message without data, yet a block with only an id moves the resume point", () => {
    const parser = new SseParser("3");
    expect(parser.lastEventId).toBe("3");
    expect(parser.push("event: task.queued\n\n")).toEqual([]);
    expect(parser.push("id: 5\n\n")).toEqual([]);
    expect(parser.lastEventId).toBe("5");
    expect(parser.push("data: a\n\n")).toEqual([{ id: "5", event: "message", data: "a", retry: undefined }]);
  });

  it("resumes only from completed blocks, and ignores a retry that is not a number", () => {
    const parser = new SseParser();
    expect(parser.push("id: 8\ndata: half")).toEqual([]);
    expect(parser.lastEventId).toBeUndefined();
    expect(parser.push("\nretry: soon\n\n")).toEqual([{ id: "8", event: "message", data: "half", retry: undefined }]);
    expect(parser.lastEventId).toBe("8");
  });
});
