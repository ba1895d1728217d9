import { describe, expect, it } from "vitest";
import type { ExpandedProposal } from "../api/types";
import { editSize, editedSections, revisionBody, revisionProblems, sectionTexts } from "./revision";

const proposal: ExpandedProposal = {
  title: "Dark mode",
  summary: "Add a dark theme.",
  problem_statement: "Eyes hurt.",
  proposed_solution: "Use CSS variables.",
  assumptions: ["Users want it", "Cheap"],
  scope_non_goals: [],
};
const limits = { edited_proposal: 100, edit_notes: 10 };

describe("revision form", () => {
  it("sends nothing for untouched sections", () => {
    expect(editedSections(proposal, sectionTexts(proposal))).toEqual({});
  });

  it("sends changed text sections and list sections as lists", () => {
    const texts = {
      ...sectionTexts(proposal),
      summary: "Add a dark theme, toggleable.  ",
      assumptions: "Users want it\n- Cheap to build\n\n",
    };
    expect(editedSections(proposal, texts)).toEqual({
      summary: "Add a dark theme, toggleable.",
      assumptions: ["Users want it", "Cheap to build"],
    });
  });

  it("builds the body and requires some change", () => {
    const unchanged = { texts: sectionTexts(proposal), notes: " ", rerun: [], priority: "" as const };
    const empty = revisionBody(proposal, unchanged);
    expect(empty).toEqual({});
    expect(revisionProblems(empty, limits)).toHaveLength(1);
    const rerunOnly = revisionBody(proposal, { ...unchanged, rerun: ["a"], priority: "high" });
    expect(rerunOnly).toEqual({ rerun_personas: ["a"], priority: "high" });
    expect(revisionProblems(rerunOnly, limits)).toEqual([]);
  });

  it("checks the limits the server applies", () => {
    const form = {
      texts: { ...sectionTexts(proposal), proposed_solution: "x".repeat(200) },
      notes: "too many notes",
      rerun: [],
      priority: "" as const,
    };
    const body = revisionBody(proposal, form);
    expect(editSize(body)).toBe(JSON.stringify(body.edited_proposal).length);
    expect(revisionProblems(body, limits)).toHaveLength(2);
    const blank = revisionBody(proposal, { ...form, notes: "", texts: { ...form.texts, proposed_solution: " " } });
    expect(revisionProblems(blank, limits)).toEqual(["Proposed solution cannot be empty."]);
  });
});
