import { describe, expect, it } from "vitest";
import { toggledChoice } from "./choices";

const all = [{ id: "architect" }, { id: "critic" }, { id: "optimist" }];

describe("toggledChoice", () => {
  it("keeps the set's order whatever the order of the clicks", () => {
    expect(toggledChoice(all, ["optimist"], "architect", true)).toEqual(["architect", "optimist"]);
  });

  it("removes what is turned off, and ignores ids outside the set", () => {
    expect(toggledChoice(all, ["architect", "critic"], "architect", false)).toEqual(["critic"]);
    expect(toggledChoice(all, ["critic", "ghost"], "critic", true)).toEqual(["critic"]);
  });
});
