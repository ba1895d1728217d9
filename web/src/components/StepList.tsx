// The run's steps as they change: name, status word, attempts and duration.

import type { Step } from "../api/types";
import { durationBetween, formatDuration, stepLabel } from "../lib/format";
import { StatusBadge } from "./Badges";

export function StepList({
  steps,
  names,
  now,
}: {
  steps: Step[];
  names: Record<string, string>;
  now: number;
}) {
  if (steps.length === 0) return <p className="muted">No steps yet.</p>;
  return (
    <ol className="steps">
      {steps.map((step) => {
        const ms = durationBetween(step.started_at, step.completed_at, now);
        return (
          <li key={step.step_name} className={`step step-${step.status}`}>
            <span className="step-name">
              {stepLabel(step.step_name, names)} <code>{step.step_name}</code>
            </span>
            <StatusBadge status={step.status} />
            <span className="step-meta">
              {step.attempts === 1 ? "1 attempt" : `${step.attempts} attempts`}
              {ms !== null && step.status !== "pending" && ` · ${formatDuration(ms)}`}
              {step.reused && " · reused from parent"}
            </span>
            {step.error && <span className="step-error">{step.error}</span>}
          </li>
        );
      })}
    </ol>
  );
}
