// Character counters against the server's limits.

/** Characters as the server counts them (Python's len: code points, not UTF-16 units). */
export function charCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

export interface CounterState {
  count: number;
  limit: number;
  over: boolean;
  /** What the counter says, e.g. "120 / 10,000" or "12 over the 10,000 limit". */
  text: string;
}

export function counterState(text: string, limit: number): CounterState {
  const count = charCount(text);
  const over = count > limit;
  const fmt = (n: number) => n.toLocaleString("en-US");
  return {
    count,
    limit,
    over,
    text: over
      ? `${fmt(count - limit)} characters over the ${fmt(limit)} limit`
      : `${fmt(count)} / ${fmt(limit)}`,
  };
}
