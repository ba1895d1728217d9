// The API's operations, typed.

import type { ApiClient } from "./client";
import type {
  Me,
  Options,
  RetryAccepted,
  RevisionAccepted,
  RevisionBody,
  RevisionPlan,
  RunAccepted,
  RunDetail,
  RunDiff,
  RunList,
  RunStatusResponse,
  SubmitRunBody,
} from "./types";

const run = (id: string) => `/v1/runs/${encodeURIComponent(id)}`;

export const api = {
  me: (client: ApiClient, key?: string) =>
    client.request<Me>("GET", "/v1/me", key === undefined ? {} : { key }),
  options: (client: ApiClient) => client.request<Options>("GET", "/v1/options"),
  listRuns: (client: ApiClient, query: string, signal?: AbortSignal) =>
    client.request<RunList>("GET", `/v1/runs${query}`, { signal }),
  submitRun: (client: ApiClient, body: SubmitRunBody) =>
    client.request<RunAccepted>("POST", "/v1/runs", { body }),
  getRun: (client: ApiClient, id: string, signal?: AbortSignal) =>
    client.request<RunDetail>("GET", run(id), { signal }),
  cancelRun: (client: ApiClient, id: string) =>
    client.request<RunStatusResponse>("POST", `${run(id)}/cancel`),
  retryRun: (client: ApiClient, id: string) =>
    client.request<RetryAccepted>("POST", `${run(id)}/retry`),
  revise: (client: ApiClient, id: string, body: RevisionBody) =>
    client.request<RevisionAccepted>("POST", `${run(id)}/revisions`, { body }),
  planRevision: (client: ApiClient, id: string, body: RevisionBody) =>
    client.request<RevisionPlan>("POST", `${run(id)}/revisions/plan`, { body }),
  diff: (client: ApiClient, a: string, b: string) =>
    client.request<RunDiff>("GET", `${run(a)}/diff/${encodeURIComponent(b)}`),
  events: (client: ApiClient, id: string, signal: AbortSignal) =>
    client.stream(`${run(id)}/events`, signal),
};
