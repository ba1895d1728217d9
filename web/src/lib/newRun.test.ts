import { describe, expect, it } from "vitest";
import type { Options } from "../api/types";
import { formProblems, initialForm, modelChoices, submitBody } from "./newRun";

const options: Options = {
  personas: [
    { id: "a", name: "Architect", focus: "design", weight: 0.5 },
    { id: "s", name: "Security", focus: "threats", weight: 0.5 },
  ],
  models: { allowed: ["m1", "m2"], expand: "m1", review: "m2" },
  limits: { idea: 20, extra_context: 5, edited_proposal: 100, edit_notes: 10 },
  priorities: ["normal", "high"],
};

describe("new run form", () => {
  it("starts with every persona and the default models", () => {
    expect(initialForm(options)).toEqual({
      idea: "",
      context: "",
      personas: ["a", "s"],
      priority: "normal",
      expandModel: "m1",
      reviewModel: "m2",
    });
  });

  it("leaves defaults to the server", () => {
    const form = { ...initialForm(options), idea: " An idea " };
    expect(submitBody(form, options)).toEqual({ idea: "An idea", priority: "normal" });
  });

  it("sends choices that differ from the defaults", () => {
    const form = { ...initialForm(options), idea: "x", context: "ctx", personas: ["s"], expandModel: "m2", priority: "high" as const };
    expect(submitBody(form, options)).toEqual({
      idea: "x",
      extra_context: "ctx",
      priority: "high",
      personas: ["s"],
      expand_model: "m2",
    });
  });

  it("blocks an empty idea, text over the limits and no personas", () => {
    const base = initialForm(options);
    expect(formProblems(base, options)).toEqual(["Write the idea first."]);
    expect(formProblems({ ...base, idea: "ok" }, options)).toEqual([]);
    const problems = formProblems({ ...base, idea: "x".repeat(21), context: "123456", personas: [] }, options);
    expect(problems).toHaveLength(3);
  });

  it("keeps the default model choosable", () => {
    expect(modelChoices(["m2"], "m1")).toEqual(["m1", "m2"]);
    expect(modelChoices(["m1", "m2"], "m1")).toEqual(["m1", "m2"]);
  });
});
