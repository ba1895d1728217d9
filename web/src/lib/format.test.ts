import { describe, expect, it } from "vitest";
import {
  decisionText,
  durationBetween,
  formatAge,
  formatCost,
  formatDelta,
  formatDuration,
  formatScore,
  runName,
  stepLabel,
  truncate,
  asSentence,
} from "./format";

const NOW = Date.parse("2026-03-10T12:00:00Z");

describe("formatAge", () => {
  it("reads like a person would say it", () => {
    expect(formatAge("2026-03-10T11:59:30Z", NOW)).toBe("just now");
    expect(formatAge("2026-03-10T11:57:00Z", NOW)).toBe("3 min ago");
    expect(formatAge("2026-03-10T07:00:00Z", NOW)).toBe("5 h ago");
    expect(formatAge("2026-03-09T11:00:00Z", NOW)).toBe("1 day ago");
    expect(formatAge("2026-03-01T12:00:00Z", NOW)).toBe("9 days ago");
    expect(formatAge("2025-12-01T12:00:00Z", NOW)).toBe("2025-12-01");
  });

  it("treats clock skew as just now and bad input as empty", () => {
    expect(formatAge("2026-03-10T12:00:05Z", NOW)).toBe("just now");
    expect(formatAge("yesterday", NOW)).toBe("");
  });
});

describe("formatCost", () => {
  it("keeps small costs visible", () => {
    expect(formatCost(0)).toBe("$0.00");
    expect(formatCost(0.00042)).toBe("$0.0004");
    expect(formatCost(0.0345)).toBe("$0.035");
    expect(formatCost(2.5)).toBe("$2.50");
  });
});

describe("scores", () => {
  it("formats scores and deltas", () => {
    expect(formatScore(0.734)).toBe("0.73");
    expect(formatScore(0)).toBe("0.00");
    expect(formatScore(null)).toBe("—");
    expect(formatDelta(0.12)).toBe("+0.12");
    expect(formatDelta(-0.05)).toBe("−0.05");
    expect(formatDelta(0.001)).toBe("±0.00");
    expect(formatDelta(null)).toBe("—");
  });
});

describe("durations", () => {
  it("formats milliseconds to minutes", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(12_340)).toBe("12.3 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
    expect(formatDuration(120_000)).toBe("2 min");
  });

  it("measures to now while a step runs", () => {
    expect(durationBetween("2026-03-10T11:59:50Z", null, NOW)).toBe(10_000);
    expect(durationBetween("2026-03-10T11:00:00Z", "2026-03-10T11:00:02.5Z", NOW)).toBe(2500);
    expect(durationBetween(null, null, NOW)).toBeNull();
  });
});

describe("labels", () => {
  it("names steps and decisions", () => {
    expect(stepLabel("expand")).toBe("Expand idea");
    expect(stepLabel("review_architect", { architect: "Architect" })).toBe("Review: Architect");
    expect(stepLabel("review_sec")).toBe("Review: sec");
    expect(decisionText("revise")).toBe("Revise");
  });

  it("names the council's steps: second-round reviews and the chair", () => {
    const names = { architect: "Architect" };
    expect(stepLabel("debate_architect", names)).toBe("Second round: Architect");
    expect(stepLabel("debate_sec", names)).toBe("Second round: sec");
    expect(stepLabel("chair", names)).toBe("Chair's synthesis");
    expect(stepLabel("aggregate", names)).toBe("Aggregate decision");
    expect(stepLabel("something_new")).toBe("something_new");
  });

  it("names a run by title, else by its idea cut to 80 characters", () => {
    const id = "0123456789abcdef";
    expect(runName({ run_id: id, proposal_title: "  A title " })).toBe("A title");
    const idea = "word ".repeat(40);
    expect(runName({ run_id: id, proposal_title: null, idea })).toHaveLength(80);
    expect(runName({ run_id: id, proposal_title: null })).toBe("Run 01234567");
    expect(runName({ run_id: id, proposal_title: null, idea_preview: " Bikes  on\nrails " })).toBe(
      "Bikes on rails",
    );
    expect(truncate("😀😀😀", 2)).toBe("😀😀");
  });
});

describe("asSentence", () => {
  it("capitalises and closes server text", () => {
    expect(asSentence("cancelled by the user")).toBe("Cancelled by the user.");
    expect(asSentence("Done!")).toBe("Done!");
    expect(asSentence("  ")).toBe("");
  });
});
