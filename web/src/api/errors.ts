// The API's error envelope turned into an error with a message people can act on.

import { asSentence } from "../lib/format";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
    readonly requestId: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The fetch itself failed: offline, server down, or blocked. */
export class NetworkError extends Error {
  constructor() {
    super("Could not reach the server. Check your connection and try again.");
    this.name = "NetworkError";
  }
}

type Envelope = { code?: unknown; message?: unknown; details?: unknown; request_id?: unknown };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const FALLBACK: Record<number, string> = {
  401: "That API key was not accepted.",
  403: "This API key may not do that.",
  404: "Not found.",
  409: "The run is not in a state that allows this.",
  413: "The request is too large.",
  429: "Too many requests right now; wait a moment and try again.",
  503: "The service is unavailable right now; try again shortly.",
};

/**
 * An ApiError from a failed response's status and parsed body. The server sends
 * `{code, message, details, request_id}`; a body nested under `error` is read too.
 */
export function errorFromBody(status: number, body: unknown): ApiError {
  const envelope: Envelope | null = isObject(body)
    ? isObject(body.error)
      ? (body.error as Envelope)
      : (body as Envelope)
    : null;
  const code =
    envelope && typeof envelope.code === "string" ? envelope.code : `HTTP_${status}`;
  const message =
    envelope && typeof envelope.message === "string" && envelope.message
      ? envelope.message
      : (FALLBACK[status] ?? `The server answered ${status}.`);
  const requestId =
    envelope && typeof envelope.request_id === "string" ? envelope.request_id : null;
  return new ApiError(status, code, message, envelope?.details ?? null, requestId);
}

/** Validation details (`[{loc, msg}]`) as "field: problem" lines. */
export function validationProblems(details: unknown): string[] {
  if (!Array.isArray(details)) return [];
  return details.flatMap((item) => {
    if (!isObject(item) || typeof item.msg !== "string") return [];
    const loc = Array.isArray(item.loc)
      ? item.loc.filter((part) => part !== "body" && part !== "query").join(".")
      : "";
    return [loc ? `${loc}: ${item.msg}` : item.msg];
  });
}

/** What to tell the user about any error thrown by an API call. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    const problems = validationProblems(error.details);
    const first = asSentence(error.message);
    return problems.length ? `${first} ${problems.join("; ")}` : first;
  }
  if (error instanceof NetworkError) return error.message;
  if (error instanceof Error && error.message) return error.message;
  return "Something went wrong.";
}
