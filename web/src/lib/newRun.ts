// The new-run form's checks and request body; pure so they are unit-tested.

import type { Options, Priority, SubmitRunBody } from "../api/types";
import { counterState } from "./counter";

/** Whether a chair writes a synthesis: the deployment's default (CHAIR_MODEL), or asked. */
export type ChairChoice = "default" | "on" | "off";

export interface NewRunForm {
  idea: string;
  context: string;
  personas: string[];
  priority: Priority;
  expandModel: string;
  reviewModel: string;
  /** Persona id → a model for its review; a persona left out keeps its own / the review model. */
  personaModels: Record<string, string>;
  /** A second round: each persona reads the others' first reviews and writes a final one. */
  debate: boolean;
  chair: ChairChoice;
  /** Empty: the deployment's chair model. */
  chairModel: string;
}

export function initialForm(options: Options): NewRunForm {
  return {
    idea: "",
    context: "",
    personas: options.personas.map((p) => p.id),
    priority: options.priorities.includes("normal") ? "normal" : (options.priorities[0] ?? "normal"),
    expandModel: options.models.expand,
    reviewModel: options.models.review,
    personaModels: {},
    debate: false,
    chair: "default",
    chairModel: "",
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
  return { ...body, ...councilFields(form, chosen) };
}

type CouncilFields = Pick<SubmitRunBody, "persona_models" | "review_rounds" | "chair" | "chair_model">;

/**
 * The council's part of the request: only what the person chose, so the deployment's
 * defaults (REVIEW_ROUNDS, CHAIR_MODEL) hold for the rest. Models for personas not chosen
 * are dropped; a chair model is dropped when the chair is turned off.
 */
export function councilFields(
  form: Pick<NewRunForm, "personaModels" | "debate" | "chair" | "chairModel">,
  chosen: readonly string[],
): CouncilFields {
  const fields: CouncilFields = {};
  const personaModels: Record<string, string> = {};
  for (const id of chosen) {
    const model = form.personaModels[id];
    if (model) personaModels[id] = model;
  }
  if (Object.keys(personaModels).length > 0) fields.persona_models = personaModels;
  if (form.debate) fields.review_rounds = 2;
  if (form.chair !== "default") fields.chair = form.chair === "on";
  if (form.chairModel && form.chair !== "off") fields.chair_model = form.chairModel;
  return fields;
}

/**
 * The words for a persona's default model choice: what writes its review when no model is
 * chosen for it. A review model the run names wins over the persona's own (as the server
 * applies them), so the persona's own shows only while the review model is the default.
 */
export function personaModelDefault(
  persona: { model: string | null },
  reviewModel: string,
  defaultReviewModel: string,
): string {
  if (persona.model && reviewModel === defaultReviewModel) return `Persona's own (${persona.model})`;
  return reviewModel ? `Review model (${reviewModel})` : "Review model";
}

/** The model choices: the allowed list, with the default first in case it is missing. */
export function modelChoices(allowed: string[], fallback: string): string[] {
  return allowed.includes(fallback) || !fallback ? allowed : [fallback, ...allowed];
}
