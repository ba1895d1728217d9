import { describe, expect, it } from "vitest";
import { NO_FILTERS, datesReversed, filtersFromSearch, filtersToApiQuery, filtersToSearch } from "./filters";

describe("run filters", () => {
  it("sends nothing when no filter is set", () => {
    expect(filtersToApiQuery(NO_FILTERS)).toBe("");
    expect(filtersToSearch(NO_FILTERS)).toBe("");
  });

  it("maps every filter to the API's names, days as whole UTC days", () => {
    const query = filtersToApiQuery(
      {
        status: "completed",
        decision: "approve",
        runType: "revision",
        createdAfter: "2026-12-01",
        createdBefore: "2026-12-07",
        q: "  dark mode ",
      },
      { limit: 30, cursor: "abc=" },
    );
    const params = new URLSearchParams(query.slice(1));
    expect(Object.fromEntries(params)).toEqual({
      status: "completed",
      decision: "approve",
      run_type: "revision",
      created_after: "2026-12-01T00:00:00Z",
      created_before: "2026-12-07T23:59:59.999Z",
      q: "dark mode",
      limit: "30",
      cursor: "abc=",
    });
  });

  it("round-trips through the page URL and drops bad values", () => {
    const filters = { ...NO_FILTERS, status: "running" as const, q: "a&b", createdAfter: "2026-01-02" };
    expect(filtersFromSearch(filtersToSearch(filters))).toEqual(filters);
    expect(filtersFromSearch("?status=bogus&decision=approve&created_after=tomorrow")).toEqual({
      ...NO_FILTERS,
      decision: "approve",
    });
  });

  it("notices dates in the wrong order", () => {
    expect(datesReversed({ ...NO_FILTERS, createdAfter: "2026-02-01", createdBefore: "2026-01-01" })).toBe(true);
    expect(datesReversed({ ...NO_FILTERS, createdAfter: "2026-01-01", createdBefore: "2026-01-01" })).toBe(false);
  });
});
