import { describe, expect, it } from "vitest";
import { matchRoute, paths } from "./routes";

describe("routes", () => {
  it("matches every page", () => {
    expect(matchRoute("/")).toEqual({ name: "runs" });
    expect(matchRoute("/runs/new")).toEqual({ name: "new" });
    expect(matchRoute("/runs/abc")).toEqual({ name: "run", id: "abc" });
    expect(matchRoute("/runs/abc/")).toEqual({ name: "run", id: "abc" });
    expect(matchRoute("/runs/abc/revise")).toEqual({ name: "revise", id: "abc" });
    expect(matchRoute("/compare", "?a=1&b=2")).toEqual({ name: "compare", a: "1", b: "2" });
    expect(matchRoute("/nope/x")).toEqual({ name: "notFound" });
  });

  it("builds paths that match back", () => {
    expect(matchRoute(paths.run("r 1"))).toEqual({ name: "run", id: "r 1" });
    expect(paths.compare("a", "b")).toBe("/compare?a=a&b=b");
    expect(paths.compare()).toBe("/compare");
  });
});
