// Status and decision shown as words (colour only supports them).

import type { DecisionLabel, RunStatus, StepStatus } from "../api/types";
import { decisionText } from "../lib/format";

export function StatusBadge({ status }: { status: RunStatus | StepStatus }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

export function DecisionBadge({ decision }: { decision: DecisionLabel | null }) {
  if (!decision) return <span className="muted">—</span>;
  return <span className={`badge decision-${decision}`}>{decisionText(decision)}</span>;
}
