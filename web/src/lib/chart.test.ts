import { describe, expect, it } from "vitest";
import type { Decision } from "../api/types";
import { DEFAULT_LAYOUT, chartGeometry, chartSummary, scoreX } from "./chart";

const decision: Decision = {
  schema_version: "1.0.0",
  decision: "revise",
  overall_weighted_confidence: 0.62,
  score_decision: "revise",
  rules_applied: [],
  score_breakdown: {
    weights: { a: 0.5, b: 0.25 },
    individual_scores: { a: 0.8, b: 0.26 },
    weighted_contributions: { a: 0.4, b: 0.065 },
    weight_total: 0.75,
    formula: "sum(w*s)/sum(w)",
  },
  minority_reports: [],
  reviewed_personas: ["a", "b"],
  missing_personas: [],
  approve_threshold: 0.75,
  revise_threshold: 0.5,
  rationale: "",
};

describe("chart geometry", () => {
  const { left, span, rowHeight, top } = DEFAULT_LAYOUT;
  const g = chartGeometry(decision, { a: "Architect" });

  it("places the thresholds on the score axis", () => {
    expect(g.reviseX).toBe(left + 0.5 * span);
    expect(g.approveX).toBe(left + 0.75 * span);
    expect(scoreX(-1)).toBe(left);
    expect(scoreX(2)).toBe(left + span);
  });

  it("draws one row per persona: length by score, thickness by weight", () => {
    expect(g.rows.map((r) => [r.id, r.name, r.y])).toEqual([
      ["a", "Architect", top],
      ["b", "b", top + rowHeight],
    ]);
    expect(g.rows[0]?.barWidth).toBeCloseTo(0.8 * span);
    expect(g.rows[1]?.barWidth).toBeCloseTo(0.26 * span);
    expect(g.rows[0]?.barHeight).toBe(rowHeight - 10);
    expect(g.rows[1]?.barHeight).toBe((rowHeight - 10) / 2);
  });

  it("stacks the contributions into the overall score", () => {
    const [first, second] = g.overall.segments;
    expect(first?.x).toBe(left);
    expect(first?.width).toBeCloseTo((0.4 / 0.75) * span);
    expect(second?.x).toBeCloseTo(left + (0.4 / 0.75) * span);
    const end = (second?.x ?? 0) + (second?.width ?? 0);
    expect(end).toBeCloseTo(left + 0.62 * span, 0);
    expect(g.overall.y).toBe(top + 2 * rowHeight + 8);
  });

  it("describes itself in words", () => {
    const text = chartSummary(g, decision);
    expect(text.startsWith("Score chart: overall 0.62 against approve 0.75 and revise 0.50")).toBe(true);
    expect(text).toContain("Architect 0.80 (weight 0.50, contributes 0.53)");
  });
});
