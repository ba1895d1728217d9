import { describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/errors";
import { backoffDelay, followStream } from "./follow";

function body(...chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

const noSleep = () => Promise.resolve();

describe("backoffDelay", () => {
  it("doubles from one second and stops at thirty", () => {
    expect([0, 1, 2, 3, 4, 5, 10].map((n) => backoffDelay(n))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000,
    ]);
  });
});

describe("followStream", () => {
  it("stops after the end event without asking to reconnect", async () => {
    const events: string[] = [];
    const shouldReconnect = vi.fn(() => true);
    await followStream({
      open: async () => body("event: snapshot\ndata: {}\n\n", "event: end\ndata: {}\n\n"),
      onEvent: (e) => events.push(e.event),
      shouldReconnect,
      signal: new AbortController().signal,
      sleep: noSleep,
    });
    expect(events).toEqual(["snapshot", "end"]);
    expect(shouldReconnect).not.toHaveBeenCalled();
  });

  it("reconnects with growing delays while the run is in flight", async () => {
    const delays: number[] = [];
    let opens = 0;
    const events: string[] = [];
    await followStream({
      open: async () => {
        opens++;
        if (opens === 1) throw new Error("network down");
        if (opens === 2) throw new Error("still down");
        if (opens === 3) return body("event: step\ndata: {}\n\n"); // dropped mid-run
        return body("event: end\ndata: {}\n\n");
      },
      onEvent: (e) => events.push(e.event),
      shouldReconnect: () => true,
      signal: new AbortController().signal,
      sleep: async (ms) => {
        delays.push(ms);
      },
    });
    expect(opens).toBe(4);
    // two failures in a row back off 1 s then 2 s; an event resets the count
    expect(delays).toEqual([1000, 2000, 1000]);
    expect(events).toEqual(["step", "end"]);
  });

  it("gives up when the run is over or the key was refused", async () => {
    const refused = new ApiError(401, "UNAUTHORIZED", "no");
    let opens = 0;
    await followStream({
      open: async () => {
        opens++;
        throw refused;
      },
      onEvent: () => undefined,
      shouldReconnect: (error) => !(error instanceof ApiError && error.status === 401),
      signal: new AbortController().signal,
      sleep: noSleep,
    });
    expect(opens).toBe(1);
  });

  it("stops when aborted", async () => {
    const controller = new AbortController();
    let opens = 0;
    await followStream({
      open: async () => {
        opens++;
        controller.abort();
        return body();
      },
      onEvent: () => undefined,
      shouldReconnect: () => true,
      signal: controller.signal,
      sleep: noSleep,
    });
    expect(opens).toBe(1);
  });
});
