// Following a run's event stream with fetch (EventSource cannot send Authorization),
// reconnecting with backoff while the run is still in flight.

import { SseParser, type SseEvent } from "./parser";

export interface FollowOptions {
  /** Opens the stream; resolves to its body, or rejects (an ApiError for 4xx/5xx). */
  open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>;
  onEvent: (event: SseEvent) => void;
  /** Called after the stream closed without `end` or failed; true to reconnect. */
  shouldReconnect: (error: unknown) => Promise<boolean> | boolean;
  /** Called when an attempt opened, e.g. to say "live" on screen. */
  onOpen?: () => void;
  signal: AbortSignal;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** 1 s, 2 s, 4 s … capped at 30 s; `attempt` counts failures in a row from 0. */
export function backoffDelay(attempt: number, base = 1000, cap = 30_000): number {
  return Math.min(cap, base * 2 ** Math.max(0, attempt));
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** Reads one connection to its end; true when the server sent `end`. */
async function readOnce(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: SseEvent) => void,
  onProgress: () => void,
): Promise<boolean> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let ended = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of parser.push(decoder.decode(value, { stream: true }))) {
        onProgress();
        onEvent(event);
        if (event.event === "end") ended = true;
      }
      if (ended) break;
    }
  } finally {
    parser.end();
    reader.releaseLock();
  }
  return ended;
}

/** Resolves when the run ended, reconnecting is declined, or the signal aborted. */
export async function followStream(options: FollowOptions): Promise<void> {
  const sleep = options.sleep ?? abortableSleep;
  let failures = 0;
  while (!options.signal.aborted) {
    let error: unknown = null;
    try {
      const body = await options.open(options.signal);
      options.onOpen?.();
      const ended = await readOnce(body, options.onEvent, () => {
        failures = 0;
      });
      if (ended) return;
    } catch (caught) {
      error = caught;
    }
    if (options.signal.aborted) return;
    if (!(await options.shouldReconnect(error))) return;
    await sleep(backoffDelay(failures), options.signal);
    failures++;
  }
}
