// The API's JSON shapes (consensus_engine/api/schemas.py and domain/schemas.py).

export type RunStatus = "queued" | "running" | "completed" | "failed" | "cancelled";
export type RunType = "initial" | "revision";
export type Priority = "normal" | "high";
export type StepStatus = "pending" | "running" | "completed" | "failed" | "skipped";
export type DecisionLabel = "approve" | "revise" | "reject";

export const RUN_STATUSES: readonly RunStatus[] = [
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
];
export const RUN_TYPES: readonly RunType[] = ["initial", "revision"];
export const DECISIONS: readonly DecisionLabel[] = ["approve", "revise", "reject"];

export interface Me {
  tenant: string;
}

export interface PersonaOption {
  id: string;
  name: string;
  focus: string;
  weight: number;
  /** The model that writes its reviews; null: the run's review model. */
  model: string | null;
}

export interface Limits {
  idea: number;
  extra_context: number;
  edited_proposal: number;
  edit_notes: number;
}

export interface Options {
  personas: PersonaOption[];
  models: { allowed: string[]; expand: string; review: string };
  limits: Limits;
  priorities: Priority[];
}

/** What a run's list item and its details both say about it (the server lists them once). */
interface RunIdentity {
  run_id: string;
  status: RunStatus;
  run_type: RunType;
  priority: Priority;
  parent_run_id: string | null;
  created_at: string;
  queued_at: string | null;
  started_at: string | null;
  completed_at: string | null;
}

export interface RunListItem extends RunIdentity {
  decision: DecisionLabel | null;
  overall_score: number | null;
  proposal_title: string | null;
  proposal_summary: string | null;
  /** The idea's first 120 characters: the row's name while the run has no title. */
  idea_preview: string;
}

export interface RunList {
  runs: RunListItem[];
  limit: number;
  next_cursor: string | null;
}

export interface RunLinks {
  self: string;
  events: string;
}

export interface RunAccepted {
  run_id: string;
  status: RunStatus;
  run_type: RunType;
  priority: Priority;
  created_at: string;
  enqueued: boolean;
  message: string;
  links: RunLinks;
}

export interface RevisionPlan {
  exact: boolean;
  basis: "rerun_personas" | "direct_edits" | "direct_edits_then_notes";
  rerun: string[];
  reused: string[];
  reasons: Record<string, string[]>;
  note: string;
}

export interface RevisionAccepted extends RunAccepted {
  parent_run_id: string;
  plan: RevisionPlan;
}

export interface RunStatusResponse {
  run_id: string;
  status: RunStatus;
  completed_at: string | null;
  error_code: string | null;
}

export interface ExpandedProposal {
  title: string;
  summary: string;
  problem_statement: string;
  proposed_solution: string;
  assumptions: string[];
  scope_non_goals: string[];
}

export type SectionName = keyof ExpandedProposal;

export interface Concern {
  text: string;
  is_blocking: boolean;
}

export interface BlockingIssue {
  text: string;
  security_critical: boolean;
}

/** A review as the persona wrote it (domain/schemas.py PersonaReview). */
export interface PersonaReview {
  persona_id: string;
  persona_name: string;
  confidence_score: number;
  summary: string;
  strengths: string[];
  concerns: Concern[];
  recommendations: string[];
  blocking_issues: BlockingIssue[];
  estimated_effort: string;
  dependency_risks: string[];
}

/** A stored review (api/schemas.py ReviewOut). */
export interface Review extends PersonaReview {
  weight: number;
  blocking_issues_present: boolean;
  security_concerns_present: boolean;
  reused: boolean;
  source_run_id: string | null;
  model: string;
  /** The LLM provider that served the model, e.g. "default" or "local". */
  provider: string;
  temperature: number | null;
  prompt_set_version: string;
  /** With two rounds: the review before the persona read the others'; this one replaced it. */
  first_round_review: PersonaReview | null;
  created_at: string;
}

export interface ScoreBreakdown {
  weights: Record<string, number>;
  individual_scores: Record<string, number>;
  weighted_contributions: Record<string, number>;
  weight_total: number;
  formula: string;
}

export interface MinorityReport {
  persona_id: string;
  persona_name: string;
  confidence_score: number;
  position: string;
  blocking_summary: string;
  mitigation_recommendation: string;
}

export interface Decision {
  schema_version: string;
  decision: DecisionLabel;
  overall_weighted_confidence: number;
  score_decision: DecisionLabel;
  rules_applied: string[];
  score_breakdown: ScoreBreakdown;
  minority_reports: MinorityReport[];
  reviewed_personas: string[];
  missing_personas: string[];
  approve_threshold: number;
  revise_threshold: number;
  rationale: string;
}

export interface Step {
  step_name: string;
  step_order: number;
  persona_id: string | null;
  status: StepStatus;
  attempts: number;
  reused: boolean;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
  error: string | null;
  metadata: Record<string, unknown>;
}

export interface StepUsage {
  step: string;
  llm_calls: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
  llm_calls: number;
  by_step: StepUsage[];
}

export interface RunModels {
  expand_model: string;
  expand_temperature: number | null;
  /** The model of every persona that names none. */
  review_model: string;
  review_temperature: number | null;
  /** 2: the personas read each other's first reviews once and wrote final ones. */
  review_rounds: number;
  /** The chair's model; null: the run has no chair. */
  chair_model: string | null;
  chair_fallback_model: string | null;
}

export interface SplitPoint {
  topic: string;
  /** Who held what, by persona name, and why. */
  positions: string;
}

export interface ChairReport {
  summary: string;
  agreed: string[];
  split: SplitPoint[];
  would_change_outcome: string[];
}

/** The chair's synthesis: written by a model, shown apart, never the decision. */
export interface ChairOut {
  status: StepStatus;
  /** The model that wrote it (or is asked to). */
  model: string;
  provider: string | null;
  /** The fallback model wrote it because the chair's own failed. */
  fallback: boolean;
  model_written: true;
  report: ChairReport | null;
  error: string | null;
}

export interface RunDetail extends RunIdentity {
  updated_at: string;
  deadline_at: string | null;
  idea: string;
  extra_context: string | Record<string, unknown> | null;
  models: RunModels;
  personas: PersonaOption[];
  schema_version: string;
  prompt_set_version: string;
  proposal: {
    source: string;
    proposal: ExpandedProposal;
    diff: Record<string, unknown> | null;
    edit_notes: string | null;
    created_at: string;
  } | null;
  reviews: Review[];
  decision: Decision | null;
  steps: Step[];
  usage: Usage;
  error: { code: string | null; message: string | null } | null;
  revision: {
    parent_run_id: string | null;
    edited_proposal: unknown;
    edit_notes: string | null;
    rerun_personas: string[] | null;
    plan: Partial<RevisionPlan> | null;
  } | null;
  /** Null for a run without a chair. */
  chair: ChairOut | null;
  links: RunLinks;
}

export type SectionStatus =
  | "unchanged"
  | "added"
  | "removed"
  | "modified"
  | "both_missing"
  | "run1_missing"
  | "run2_missing";

export interface SectionChange {
  status: SectionStatus;
  diff: string;
  diff_truncated: boolean;
  old_length: number | null;
  new_length: number | null;
}

export interface PersonaDelta {
  persona_id: string;
  status: "present_in_both" | "added_in_run2" | "removed_in_run2";
  old_confidence: number | null;
  new_confidence: number | null;
  confidence_delta: number | null;
  old_blocking: boolean | null;
  new_blocking: boolean | null;
  blocking_changed: boolean;
  old_security_critical: boolean | null;
  new_security_critical: boolean | null;
  security_changed: boolean;
  concerns_added: string[];
  concerns_removed: string[];
  recommendations_added: string[];
  recommendations_removed: string[];
}

export interface RunDiff {
  metadata: {
    run1_id: string;
    run2_id: string;
    run1_created_at: string | null;
    run2_created_at: string | null;
    run1_parent_run_id: string | null;
    run2_parent_run_id: string | null;
    is_parent_child: boolean;
    relationship: "run1_is_parent_of_run2" | "run2_is_parent_of_run1" | "unrelated";
  };
  proposal_changes: Record<string, SectionChange>;
  persona_deltas: PersonaDelta[];
  decision_delta: {
    old_confidence: number | null;
    new_confidence: number | null;
    confidence_delta: number | null;
    old_decision: DecisionLabel | null;
    new_decision: DecisionLabel | null;
    decision_changed: boolean;
  };
}

export interface SubmitRunBody {
  idea: string;
  extra_context?: string;
  priority?: Priority;
  personas?: string[];
  expand_model?: string;
  review_model?: string;
  /** Persona id → the model that writes its review (one of the allowed models). */
  persona_models?: Record<string, string>;
  /** 2: a debate round; left out: the deployment's REVIEW_ROUNDS. */
  review_rounds?: 1 | 2;
  /** Left out: on when the deployment sets CHAIR_MODEL. */
  chair?: boolean;
  /** The chair's model (turns the chair on). */
  chair_model?: string;
}

export interface RevisionBody {
  edited_proposal?: Partial<Record<SectionName, string | string[]>>;
  edit_notes?: string;
  rerun_personas?: string[];
  priority?: Priority;
}

/** The events of GET /v1/runs/{id}/events (api/routes/events.py). */
export interface StepEvent {
  step_name: string;
  persona_id: string | null;
  status: StepStatus;
  attempts: number;
  error: string | null;
}

export interface StatusEvent {
  run_id: string;
  status: RunStatus;
  error_code: string | null;
  decision: DecisionLabel | null;
  overall_score: number | null;
}

export interface SnapshotEvent extends StatusEvent {
  steps: StepEvent[];
}

export interface RetryAccepted extends RunAccepted {
  steps: string[];
}
