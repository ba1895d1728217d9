import { describe, expect, it } from "vitest";
import type { Options } from "../api/types";
import {
  councilFields,
  formProblems,
  initialForm,
  modelChoices,
  personaModelDefault,
  submitBody,
} from "./newRun";

const options: Options = {
  personas: [
    { id: "a", name: "Architect", focus: "design", weight: 0.5, model: null },
    { id: "s", name: "Security", focus: "threats", weight: 0.5, model: "m1" },
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
      personaModels: {},
      debate: false,
      chair: "default",
      chairModel: "",
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

  it("sends the council's choices with the rest of the request", () => {
    const form = {
      ...initialForm(options),
      idea: "x",
      personaModels: { a: "m1" },
      debate: true,
      chair: "on" as const,
      chairModel: "m2",
    };
    expect(submitBody(form, options)).toEqual({
      idea: "x",
      priority: "normal",
      persona_models: { a: "m1" },
      review_rounds: 2,
      chair: true,
      chair_model: "m2",
    });
  });
});

describe("council fields", () => {
  const base = { personaModels: {}, debate: false, chair: "default" as const, chairModel: "" };

  it("sends nothing when nothing was chosen, so the deployment's defaults hold", () => {
    expect(councilFields(base, ["a", "s"])).toEqual({});
  });

  it("sends models only for chosen personas that have one", () => {
    const form = { ...base, personaModels: { a: "m2", s: "", gone: "m1" } };
    expect(councilFields(form, ["a", "s"])).toEqual({ persona_models: { a: "m2" } });
    expect(councilFields(form, ["s"])).toEqual({});
  });

  it("asks for two rounds only when the debate box is ticked", () => {
    expect(councilFields({ ...base, debate: true }, [])).toEqual({ review_rounds: 2 });
    expect(councilFields({ ...base, debate: false }, [])).not.toHaveProperty("review_rounds");
  });

  it("sends the chair only when changed, and its model unless the chair is off", () => {
    expect(councilFields({ ...base, chair: "on" }, [])).toEqual({ chair: true });
    expect(councilFields({ ...base, chair: "off" }, [])).toEqual({ chair: false });
    expect(councilFields({ ...base, chairModel: "m1" }, [])).toEqual({ chair_model: "m1" });
    expect(councilFields({ ...base, chair: "off", chairModel: "m1" }, [])).toEqual({ chair: false });
  });

  it("names what reviews for a persona when no model is chosen", () => {
    expect(personaModelDefault({ model: null }, "m2", "m2")).toBe("Review model (m2)");
    expect(personaModelDefault({ model: "m1" }, "m2", "m2")).toBe("Persona's own (m1)");
    // A review model the run names wins over the persona's own.
    expect(personaModelDefault({ model: "m1" }, "m3", "m2")).toBe("Review model (m3)");
  });
});
