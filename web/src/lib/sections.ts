// The proposal's sections in order, with the titles people read.

import type { SectionName } from "../api/types";

export interface SectionInfo {
  name: SectionName;
  title: string;
  list: boolean;
}

export const SECTIONS: readonly SectionInfo[] = [
  { name: "title", title: "Title", list: false },
  { name: "summary", title: "Summary", list: false },
  { name: "problem_statement", title: "Problem statement", list: false },
  { name: "proposed_solution", title: "Proposed solution", list: false },
  { name: "assumptions", title: "Assumptions", list: true },
  { name: "scope_non_goals", title: "Scope and non-goals", list: true },
];

export function sectionTitle(name: string): string {
  return SECTIONS.find((s) => s.name === name)?.title ?? name;
}
