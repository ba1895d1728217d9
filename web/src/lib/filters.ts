// The runs list's filters: kept in the page's URL and sent to GET /v1/runs.

import {
  DECISIONS,
  RUN_STATUSES,
  RUN_TYPES,
  type DecisionLabel,
  type RunStatus,
  type RunType,
} from "../api/types";

export interface RunFilters {
  status: RunStatus | "";
  decision: DecisionLabel | "";
  runType: RunType | "";
  /** "YYYY-MM-DD" from a date input, or "". */
  createdAfter: string;
  createdBefore: string;
  q: string;
}

export const NO_FILTERS: RunFilters = {
  status: "",
  decision: "",
  runType: "",
  createdAfter: "",
  createdBefore: "",
  q: "",
};

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function oneOf<T extends string>(value: string | null, allowed: readonly T[]): T | "" {
  return value !== null && (allowed as readonly string[]).includes(value) ? (value as T) : "";
}

function date(value: string | null): string {
  return value !== null && DATE.test(value) ? value : "";
}

/** Filters from the page's own query string; unknown or malformed values are dropped. */
export function filtersFromSearch(search: string): RunFilters {
  const params = new URLSearchParams(search);
  return {
    status: oneOf(params.get("status"), RUN_STATUSES),
    decision: oneOf(params.get("decision"), DECISIONS),
    runType: oneOf(params.get("run_type"), RUN_TYPES),
    createdAfter: date(params.get("created_after")),
    createdBefore: date(params.get("created_before")),
    q: params.get("q") ?? "",
  };
}

/** The page's query string for these filters ("" when none is set). */
export function filtersToSearch(filters: RunFilters): string {
  const params = new URLSearchParams();
  if (filters.status) params.set("status", filters.status);
  if (filters.decision) params.set("decision", filters.decision);
  if (filters.runType) params.set("run_type", filters.runType);
  if (filters.createdAfter) params.set("created_after", filters.createdAfter);
  if (filters.createdBefore) params.set("created_before", filters.createdBefore);
  if (filters.q.trim()) params.set("q", filters.q.trim());
  const text = params.toString();
  return text ? `?${text}` : "";
}

/**
 * The API's query string. Days are whole UTC days and both ends are inclusive, so
 * "created before 2026-12-07" still lists runs made during the 7th.
 */
export function filtersToApiQuery(
  filters: RunFilters,
  page: { limit?: number; cursor?: string | null } = {},
): string {
  const params = new URLSearchParams();
  if (filters.status) params.set("status", filters.status);
  if (filters.decision) params.set("decision", filters.decision);
  if (filters.runType) params.set("run_type", filters.runType);
  if (filters.createdAfter) params.set("created_after", `${filters.createdAfter}T00:00:00Z`);
  if (filters.createdBefore) params.set("created_before", `${filters.createdBefore}T23:59:59.999Z`);
  if (filters.q.trim()) params.set("q", filters.q.trim());
  if (page.limit !== undefined) params.set("limit", String(page.limit));
  if (page.cursor) params.set("cursor", page.cursor);
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Whether the after/before dates are in the wrong order (the API would list nothing). */
export function datesReversed(filters: RunFilters): boolean {
  return Boolean(
    filters.createdAfter && filters.createdBefore && filters.createdAfter > filters.createdBefore,
  );
}
