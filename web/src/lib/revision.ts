// The revise form: sections as editable text, and the request body built from what
// actually changed.

import type { ExpandedProposal, Priority, RevisionBody, SectionName } from "../api/types";
import { charCount } from "./counter";
import { SECTIONS } from "./sections";

export type SectionTexts = Record<SectionName, string>;

/** List sections are edited one item per line. */
export function sectionTexts(proposal: ExpandedProposal): SectionTexts {
  const texts = {} as SectionTexts;
  for (const section of SECTIONS) {
    const value = proposal[section.name];
    texts[section.name] = Array.isArray(value) ? value.join("\n") : value;
  }
  return texts;
}

function asList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.replace(/^\s*[-*•]\s+/, "").trim())
    .filter(Boolean);
}

/** The sections whose text differs from the original, in the API's shape. */
export function editedSections(
  original: ExpandedProposal,
  texts: SectionTexts,
): Partial<Record<SectionName, string | string[]>> {
  const edits: Partial<Record<SectionName, string | string[]>> = {};
  for (const section of SECTIONS) {
    const before = original[section.name];
    const text = texts[section.name];
    if (section.list) {
      const items = asList(text);
      const old = before as string[];
      if (items.length !== old.length || items.some((item, i) => item !== old[i]?.trim()))
        edits[section.name] = items;
    } else if (text.trim() !== (before as string).trim()) {
      edits[section.name] = text.trim();
    }
  }
  return edits;
}

export interface RevisionForm {
  texts: SectionTexts;
  notes: string;
  rerun: string[];
  priority: Priority | "";
}

export function revisionBody(original: ExpandedProposal, form: RevisionForm): RevisionBody {
  const body: RevisionBody = {};
  const edits = editedSections(original, form.texts);
  if (Object.keys(edits).length) body.edited_proposal = edits;
  if (form.notes.trim()) body.edit_notes = form.notes.trim();
  if (form.rerun.length) body.rerun_personas = form.rerun;
  if (form.priority) body.priority = form.priority;
  return body;
}

/** Characters the server counts for edited_proposal (its JSON text). */
export function editSize(body: RevisionBody): number {
  return body.edited_proposal ? charCount(JSON.stringify(body.edited_proposal)) : 0;
}

/** Why the revision cannot be sent; empty when it can. */
export function revisionProblems(
  body: RevisionBody,
  limits: { edited_proposal: number; edit_notes: number },
): string[] {
  const problems: string[] = [];
  if (!body.edited_proposal && !body.edit_notes && !body.rerun_personas?.length)
    problems.push("Change a section, write edit notes, or choose personas to re-run.");
  const required = body.edited_proposal
    ? SECTIONS.filter((s) => !s.list && body.edited_proposal?.[s.name] === "")
    : [];
  for (const section of required) problems.push(`${section.title} cannot be empty.`);
  const size = editSize(body);
  if (size > limits.edited_proposal)
    problems.push(
      `The edited sections are ${size - limits.edited_proposal} characters over the ${limits.edited_proposal} limit.`,
    );
  if (body.edit_notes && charCount(body.edit_notes) > limits.edit_notes)
    problems.push(`The edit notes are over the ${limits.edit_notes} character limit.`);
  return problems;
}
