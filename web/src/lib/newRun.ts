// The new-run form's checks and request body; pure so they are unit-tested.

import type { Options, Priority, SubmitRunBody } from "../api/types";
import { counterState } from "./counter";

export interface NewRunForm {
  idea: string;
  context: string;
  personas: string[];
  priority: Priority;
  expandModel: string;
  reviewModel: string;
}

export function initialForm(options: Options): NewRunForm {
  return {
    idea: "",
    context: "",
    personas: options.personas.map((p) => p.id),
    priority: options.priorities.includes("normal") ? "normal" : (options.priorities[0] ?? "normal"),
    expandModel: options.models.expand,
    reviewModel: options.models.review,
  };
}

/** Why the form cannot be sent yet; empty when it can. */
export function formProblems(form: NewRunForm, options: Options): string[] {
  const problems: string[] = [];
  if (!form.idea.trim()) problems.push("Write the idea first.");
  const idea = counterState(form.idea, options.limits.idea);
  if (idea.over) problems.push(`The idea is ${idea.text}.`);
  const context = counterState(form.context, options.limits.extra_context);
  if (context.over) problems.push(`The context is ${context.text}.`);
  if (options.personas.length > 0 && form.personas.length === 0)
    problems.push("Choose at least one persona.");
  return problems;
}

/** The request: defaults (every persona, the default models) are left to the server. */
export function submitBody(form: NewRunForm, options: Options): SubmitRunBody {
  const body: SubmitRunBody = { idea: form.idea.trim(), priority: form.priority };
  if (form.context.trim()) body.extra_context = form.context.trim();
  const all = options.personas.map((p) => p.id);
  const chosen = all.filter((id) => form.personas.includes(id));
  if (chosen.length !== all.length) body.personas = chosen;
  if (form.expandModel && form.expandModel !== options.models.expand)
    body.expand_model = form.expandModel;
  if (form.reviewModel && form.reviewModel !== options.models.review)
    body.review_model = form.reviewModel;
  return body;
}

/** The model choices: the allowed list, with the default first in case it is missing. */
export function modelChoices(allowed: string[], fallback: string): string[] {
  return allowed.includes(fallback) || !fallback ? allowed : [fallback, ...allowed];
}
