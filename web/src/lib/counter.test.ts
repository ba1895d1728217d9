import { describe, expect, it } from "vitest";
import { charCount, counterState } from "./counter";

describe("character counters", () => {
  it("counts code points as the server does", () => {
    expect(charCount("abc")).toBe(3);
    expect(charCount("😀")).toBe(1);
    expect("😀".length).toBe(2);
  });

  it("is fine at the limit and over one past it", () => {
    expect(counterState("a".repeat(10), 10)).toEqual({ count: 10, limit: 10, over: false, text: "10 / 10" });
    const over = counterState("a".repeat(10_012), 10_000);
    expect(over.over).toBe(true);
    expect(over.text).toBe("12 characters over the 10,000 limit");
  });
});
