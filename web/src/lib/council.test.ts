import { describe, expect, it } from "vitest";
import type { ChairOut, PersonaReview, RunModels, Step, StepStatus } from "../api/types";
import {
  canRetryChair,
  chairAuthorship,
  chairStatus,
  fallbackNote,
  modelLine,
  modelsSummary,
  scoreMove,
} from "./council";

const firstRound = (score: number): PersonaReview => ({
  persona_id: "a",
  persona_name: "Architect",
  confidence_score: score,
  summary: "first",
  strengths: [],
  concerns: [],
  recommendations: [],
  blocking_issues: [],
  estimated_effort: "weeks",
  dependency_risks: [],
});

const step = (name: string, status: StepStatus): Step => ({
  step_name: name,
  step_order: 0,
  persona_id: null,
  status,
  attempts: 1,
  reused: false,
  started_at: null,
  completed_at: null,
  updated_at: "",
  error: null,
  metadata: {},
});

const chair = (status: StepStatus, extra: Partial<ChairOut> = {}): ChairOut => ({
  status,
  model: "m1",
  provider: "default",
  fallback: false,
  model_written: true,
  report: null,
  error: null,
  ...extra,
});

describe("a review's model", () => {
  it("reads model · provider", () => {
    expect(modelLine({ model: "gpt-4.1-mini", provider: "default" })).toBe("gpt-4.1-mini · default");
    expect(modelLine({ model: "llama3", provider: "" })).toBe("llama3");
  });
});

describe("score move", () => {
  it("is null for a review written in one round", () => {
    expect(scoreMove({ confidence_score: 0.7, first_round_review: null })).toBeNull();
  });

  it("says the direction in words", () => {
    const up = scoreMove({ confidence_score: 0.71, first_round_review: firstRound(0.62) });
    expect(up).toEqual({
      direction: "up",
      text: "0.62 → 0.71 after reading the panel",
      change: "up 0.09",
    });
    const down = scoreMove({ confidence_score: 0.4, first_round_review: firstRound(0.45) });
    expect(down?.direction).toBe("down");
    expect(down?.change).toBe("down 0.05");
    expect(down?.text).toBe("0.45 → 0.40 after reading the panel");
  });

  it("agrees with the numbers as shown, two decimals", () => {
    // 0.701 and 0.704 both read 0.70: no move, whatever the third decimal says.
    const same = scoreMove({ confidence_score: 0.704, first_round_review: firstRound(0.701) });
    expect(same).toMatchObject({ direction: "unchanged", change: "unchanged" });
    expect(same?.text).toBe("0.70 → 0.70 after reading the panel");
  });
});

describe("the chair", () => {
  it("takes the live step's status over the details'", () => {
    expect(chairStatus(chair("pending"), [step("aggregate", "completed"), step("chair", "running")])).toBe(
      "running",
    );
    expect(chairStatus(chair("completed"), [step("aggregate", "completed")])).toBe("completed");
  });

  it("says who wrote it and that the formula made the decision", () => {
    expect(chairAuthorship(chair("completed"))).toBe(
      "Written by m1 (default); the decision above comes from the formula, not from this text.",
    );
    expect(chairAuthorship(chair("completed", { provider: null }))).toMatch(/^Written by m1;/);
  });

  it("says when the fallback model wrote it", () => {
    expect(fallbackNote(chair("completed"), "big")).toBeNull();
    expect(fallbackNote(chair("completed", { fallback: true }), "big")).toBe(
      "The chair's own model (big) failed, so the fallback model wrote this synthesis.",
    );
  });

  it("can be retried only on a finished run whose chair failed", () => {
    const failed = chair("failed", { error: "timeout" });
    expect(canRetryChair({ status: "completed", chair: failed, steps: [] })).toBe(true);
    expect(canRetryChair({ status: "completed", chair: chair("completed"), steps: [] })).toBe(false);
    expect(canRetryChair({ status: "completed", chair: null, steps: [] })).toBe(false);
    // A failed run already has its own retry.
    expect(canRetryChair({ status: "failed", chair: failed, steps: [] })).toBe(false);
    // Retried: the stream says the chair runs again before the details catch up.
    expect(canRetryChair({ status: "completed", chair: failed, steps: [step("chair", "running")] })).toBe(
      false,
    );
  });
});

describe("models summary", () => {
  const models: RunModels = {
    expand_model: "e",
    expand_temperature: null,
    review_model: "r",
    review_temperature: null,
    review_rounds: 1,
    chair_model: null,
    chair_fallback_model: null,
  };

  it("names the chair and the rounds only when the run has them", () => {
    expect(modelsSummary(models)).toBe("e (expand), r (review)");
    expect(
      modelsSummary({ ...models, review_rounds: 2, chair_model: "c", chair_fallback_model: "f" }),
    ).toBe("e (expand), r (review), c (chair, fallback f); two review rounds");
  });
});
