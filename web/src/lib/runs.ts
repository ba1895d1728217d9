// Facts about runs that several pages share.

import type { RunListItem, RunStatus } from "../api/types";

export const inFlight = (status: RunStatus): boolean =>
  status === "queued" || status === "running";

function newestFirst(a: RunListItem, b: RunListItem): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.run_id < b.run_id ? 1 : a.run_id > b.run_id ? -1 : 0;
}

/**
 * The rows on screen updated with a fresh first page: fresh rows win, rows beyond the
 * fresh page stay, and the order is the API's (newest first, then id).
 */
export function mergeRuns(shown: RunListItem[], fresh: RunListItem[]): RunListItem[] {
  const byId = new Map<string, RunListItem>();
  for (const run of shown) byId.set(run.run_id, run);
  for (const run of fresh) byId.set(run.run_id, run);
  return [...byId.values()].sort(newestFirst);
}
