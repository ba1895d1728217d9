import { describe, expect, it } from "vitest";
import type { RunListItem } from "../api/types";
import { inFlight, mergeRuns } from "./runs";

function run(id: string, created: string, status: RunListItem["status"] = "completed"): RunListItem {
  return {
    run_id: id,
    status,
    run_type: "initial",
    priority: "normal",
    parent_run_id: null,
    created_at: created,
    queued_at: null,
    started_at: null,
    completed_at: null,
    decision: null,
    overall_score: null,
    proposal_title: null,
    proposal_summary: null,
    idea_preview: "An idea",
  };
}

describe("runs", () => {
  it("knows which runs are in flight", () => {
    expect(inFlight("queued")).toBe(true);
    expect(inFlight("running")).toBe(true);
    expect(inFlight("failed")).toBe(false);
  });

  it("merges a fresh first page into the rows on screen, newest first", () => {
    const shown = [run("b", "2026-01-02T00:00:00Z", "running"), run("a", "2026-01-01T00:00:00Z")];
    const fresh = [run("c", "2026-01-03T00:00:00Z"), run("b", "2026-01-02T00:00:00Z", "completed")];
    const merged = mergeRuns(shown, fresh);
    expect(merged.map((r) => [r.run_id, r.status])).toEqual([
      ["c", "completed"],
      ["b", "completed"],
      ["a", "completed"],
    ]);
  });
});
