import { describe, expect, it } from "vitest";
import { SseParser } from "./parser";

function all(chunks: string[]) {
  const parser = new SseParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

describe("SseParser", () => {
  it("reads named events with JSON data and ids", () => {
    const events = all(['id: 1\nevent: snapshot\ndata: {"a":1}\n\n']);
    expect(events).toEqual([{ event: "snapshot", data: '{"a":1}', id: "1", retry: null }]);
  });

  it("joins multi-line data with newlines", () => {
    const [event] = all(["data: first\ndata: second\ndata:third\n\n"]);
    expect(event?.data).toBe("first\nsecond\nthird");
    expect(event?.event).toBe("message");
  });

  it("skips comments such as heartbeats", () => {
    expect(all([": heartbeat\n\n"])).toEqual([]);
    const events = all([": hi\nevent: step\n: mid\ndata: x\n\n"]);
    expect(events.map((e) => [e.event, e.data])).toEqual([["step", "x"]]);
  });

  it("accepts CRLF and lone CR line endings", () => {
    expect(all(["event: a\r\ndata: 1\r\n\r\n"]).map((e) => e.data)).toEqual(["1"]);
    expect(all(["event: b\rdata: 2\r\r"]).map((e) => [e.event, e.data])).toEqual([["b", "2"]]);
  });

  it("handles events split anywhere across chunks, CRLF included", () => {
    const text = 'event: step\r\ndata: {"step_name":"expand"}\r\n\r\nevent: end\r\ndata: {}\r\n\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const events = all([text.slice(0, cut), text.slice(cut)]);
      expect(events.map((e) => e.event)).toEqual(["step", "end"]);
      expect(events[0]?.data).toBe('{"step_name":"expand"}');
    }
    const oneByOne = all(Array.from(text));
    expect(oneByOne.map((e) => e.event)).toEqual(["step", "end"]);
  });

  it("does not count a CR at a chunk end twice when the LF follows", () => {
    const events = all(["data: a\r", "\n", "\r", "\ndata: b\n\n"]);
    expect(events.map((e) => e.data)).toEqual(["a", "b"]);
  });

  it("strips one leading space only, and a leading BOM", () => {
    const [event] = all(["\uFEFFdata:  two spaces\n\n"]);
    expect(event?.data).toBe(" two spaces");
  });

  it("ignores a blank line with no data, and resets the event type after dispatch", () => {
    const events = all(["event: lonely\n\ndata: plain\n\n"]);
    expect(events).toHaveLength(1);
    expect(events[0]?.event).toBe("message");
  });

  it("keeps the last id and reads retry", () => {
    const events = all(["id: 7\nretry: 3000\ndata: a\n\ndata: b\n\n"]);
    expect(events.map((e) => [e.id, e.retry])).toEqual([
      ["7", 3000],
      ["7", 3000],
    ]);
  });

  it("drops an unfinished event when the stream ends", () => {
    const parser = new SseParser();
    expect(parser.push("data: half")).toEqual([]);
    parser.end();
    expect(parser.push("\n\n")).toEqual([]);
  });
});
