// The council on the run page: which model wrote a review, how a score moved in the debate
// round, and where the chair's synthesis stands; pure, so they are unit-tested.

import type { ChairOut, Review, RunDetail, RunModels, Step, StepStatus } from "../api/types";
import { formatScore } from "./format";

export const CHAIR_STEP = "chair";

/** "gpt-4.1-mini · default": the model that wrote a review and the provider that served it. */
export function modelLine(review: Pick<Review, "model" | "provider">): string {
  return review.provider ? `${review.model} · ${review.provider}` : review.model;
}

export type MoveDirection = "up" | "down" | "unchanged";

export interface ScoreMove {
  direction: MoveDirection;
  /** "0.62 → 0.71 after reading the panel" */
  text: string;
  /** "up 0.09", "down 0.05" or "unchanged": the direction in words, never by colour alone. */
  change: string;
}

/**
 * How the persona's score moved between its first review and its final one, or null for a
 * review written in one round. The change is that of the two scores as shown (two decimals),
 * so the words always agree with the numbers beside them.
 */
export function scoreMove(
  review: Pick<Review, "confidence_score" | "first_round_review">,
): ScoreMove | null {
  const first = review.first_round_review;
  if (!first) return null;
  const from = Math.round(first.confidence_score * 100);
  const to = Math.round(review.confidence_score * 100);
  const delta = to - from;
  const direction: MoveDirection = delta > 0 ? "up" : delta < 0 ? "down" : "unchanged";
  const change = delta === 0 ? "unchanged" : `${direction} ${(Math.abs(delta) / 100).toFixed(2)}`;
  const text = `${formatScore(first.confidence_score)} → ${formatScore(review.confidence_score)} after reading the panel`;
  return { direction, text, change };
}

/**
 * The chair's status as the progress list shows it: the live step when the stream has
 * reported one (the details catch up a moment later), else the details' own.
 */
export function chairStatus(chair: Pick<ChairOut, "status">, steps: Step[]): StepStatus {
  return steps.find((step) => step.step_name === CHAIR_STEP)?.status ?? chair.status;
}

/** Who wrote the synthesis, said plainly: a model's text, not the source of the decision. */
export function chairAuthorship(chair: Pick<ChairOut, "model" | "provider">): string {
  const by = chair.provider ? `${chair.model} (${chair.provider})` : chair.model;
  return `Written by ${by}; the decision above comes from the formula, not from this text.`;
}

/** Why another model than the run's chair model wrote it, when the fallback did. */
export function fallbackNote(
  chair: Pick<ChairOut, "fallback">,
  chairModel: string | null,
): string | null {
  if (!chair.fallback) return null;
  const own = chairModel ? ` (${chairModel})` : "";
  return `The chair's own model${own} failed, so the fallback model wrote this synthesis.`;
}

/**
 * A finished run whose chair failed can be retried: the retry runs the chair alone, the
 * reviews and the decision are kept. A failed run has its own retry already.
 */
export function canRetryChair(run: Pick<RunDetail, "status" | "chair" | "steps">): boolean {
  return run.status === "completed" && run.chair !== null && chairStatus(run.chair, run.steps) === "failed";
}

/** "gpt-4.1-mini (expand), gpt-4.1-mini (review), o3 (chair, fallback gpt-4.1-mini)". */
export function modelsSummary(models: RunModels): string {
  const parts = [`${models.expand_model} (expand)`, `${models.review_model} (review)`];
  if (models.chair_model) {
    const fallback = models.chair_fallback_model ? `, fallback ${models.chair_fallback_model}` : "";
    parts.push(`${models.chair_model} (chair${fallback})`);
  }
  const rounds = models.review_rounds === 2 ? "; two review rounds" : "";
  return parts.join(", ") + rounds;
}
