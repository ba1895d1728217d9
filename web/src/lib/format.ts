// How numbers, moments and labels read on screen; pure, so they are unit-tested.

import type { DecisionLabel } from "../api/types";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "just now", "3 min ago", "5 h ago", "2 days ago", then the date itself. */
export function formatAge(iso: string, now: number = Date.now()): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const elapsed = Math.max(0, now - then);
  if (elapsed < MINUTE) return "just now";
  if (elapsed < HOUR) return `${Math.floor(elapsed / MINUTE)} min ago`;
  if (elapsed < DAY) return `${Math.floor(elapsed / HOUR)} h ago`;
  const days = Math.floor(elapsed / DAY);
  if (days < 30) return days === 1 ? "1 day ago" : `${days} days ago`;
  return new Date(then).toISOString().slice(0, 10);
}

/** Dollars with enough decimals that small LLM costs do not all read "$0.00". */
export function formatCost(usd: number): string {
  if (!Number.isFinite(usd) || usd === 0) return "$0.00";
  if (Math.abs(usd) >= 1) return `$${usd.toFixed(2)}`;
  if (Math.abs(usd) >= 0.01) return `$${usd.toFixed(3)}`;
  return `$${usd.toFixed(4)}`;
}

/** A 0–1 score with two decimals; a missing score is a dash. */
export function formatScore(score: number | null | undefined): string {
  if (score === null || score === undefined || !Number.isFinite(score)) return "—";
  return score.toFixed(2);
}

/** A signed score change, e.g. "+0.12", "−0.05", "±0.00". */
export function formatDelta(delta: number | null | undefined): string {
  if (delta === null || delta === undefined || !Number.isFinite(delta)) return "—";
  const rounded = Math.round(delta * 100) / 100;
  if (rounded === 0) return "±0.00";
  return rounded > 0 ? `+${rounded.toFixed(2)}` : `−${Math.abs(rounded).toFixed(2)}`;
}

export function formatTokens(count: number): string {
  return count.toLocaleString("en-US");
}

/** "850 ms", "12.3 s", "2 min 5 s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < MINUTE) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / MINUTE);
  const seconds = Math.round((ms % MINUTE) / 1000);
  return seconds ? `${minutes} min ${seconds} s` : `${minutes} min`;
}

/** The time between two moments, or since the start when the end has not come yet. */
export function durationBetween(
  start: string | null,
  end: string | null,
  now: number = Date.now(),
): number | null {
  if (!start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  if (Number.isNaN(from) || Number.isNaN(to)) return null;
  return Math.max(0, to - from);
}

export function decisionText(label: DecisionLabel): string {
  return label.charAt(0).toUpperCase() + label.slice(1);
}

const PERSONA_STEPS: readonly [prefix: string, label: string][] = [
  ["review_", "Review"],
  ["debate_", "Second round"],
];

/**
 * "review_architect" → "Review: Architect", "debate_architect" → "Second round: Architect"
 * (the persona's name when known), "chair" → "Chair's synthesis".
 */
export function stepLabel(stepName: string, personaNames: Record<string, string> = {}): string {
  if (stepName === "expand") return "Expand idea";
  if (stepName === "aggregate") return "Aggregate decision";
  if (stepName === "chair") return "Chair's synthesis";
  for (const [prefix, label] of PERSONA_STEPS) {
    if (!stepName.startsWith(prefix)) continue;
    const id = stepName.slice(prefix.length);
    return `${label}: ${personaNames[id] ?? id}`;
  }
  return stepName;
}

/** Cut text to at most `max` characters on a code-point boundary. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max).join("");
}

/** A run's name: its proposal title, else its idea cut to 80 characters, else its id. */
export function runName(run: {
  run_id: string;
  proposal_title?: string | null;
  idea?: string | null;
  idea_preview?: string | null;
}): string {
  const title = run.proposal_title?.trim();
  if (title) return title;
  const idea = (run.idea ?? run.idea_preview)?.trim();
  if (idea) return truncate(idea.replace(/\s+/g, " "), 80);
  return `Run ${run.run_id.slice(0, 8)}`;
}

/** Server text as a sentence: capital first letter, closing full stop. */
export function asSentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return "";
  const closed = /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
  return closed.charAt(0).toUpperCase() + closed.slice(1);
}
