import { describe, expect, it, vi } from "vitest";
import { createClient } from "./client";
import { ApiError, NetworkError, errorFromBody, errorMessage, validationProblems } from "./errors";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

function setup(response: Response | Error, key: string | null = "k-123") {
  const fetchImpl = vi.fn(async () => {
    if (response instanceof Error) throw response;
    return response;
  });
  const onUnauthorized = vi.fn();
  const client = createClient({ getKey: () => key, onUnauthorized, fetchImpl });
  return { client, fetchImpl, onUnauthorized };
}

describe("createClient", () => {
  it("sends the bearer key and JSON body, and parses the answer", async () => {
    const { client, fetchImpl } = setup(json(202, { run_id: "r1" }));
    const answer = await client.request<{ run_id: string }>("POST", "/v1/runs", { body: { idea: "x" } });
    expect(answer.run_id).toBe("r1");
    const [url, init] = fetchImpl.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/v1/runs");
    expect(init.method).toBe("POST");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer k-123");
    expect(init.body).toBe('{"idea":"x"}');
  });

  it("reports a 401 on a signed-in call so the app returns to sign-in", async () => {
    const { client, onUnauthorized } = setup(
      json(401, { code: "UNAUTHORIZED", message: "invalid API key", details: null, request_id: "q1" }),
    );
    const error = await client.request("GET", "/v1/runs").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as ApiError).requestId).toBe("q1");
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it("does not sign out when a candidate key is being tried", async () => {
    const { client, fetchImpl, onUnauthorized } = setup(json(401, { code: "UNAUTHORIZED", message: "no" }), null);
    await expect(client.request("GET", "/v1/me", { key: "candidate" })).rejects.toBeInstanceOf(ApiError);
    const init = (fetchImpl.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer candidate");
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("turns other errors into ApiError without signing out", async () => {
    const { client, onUnauthorized } = setup(
      json(409, { code: "CONFLICT", message: "the run is completed; only queued or running runs can be cancelled" }),
    );
    const error = (await client.request("POST", "/v1/runs/x/cancel").catch((e: unknown) => e)) as ApiError;
    expect(error.code).toBe("CONFLICT");
    expect(errorMessage(error)).toBe(
      "The run is completed; only queued or running runs can be cancelled.",
    );
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("says the server could not be reached when fetch fails", async () => {
    const { client } = setup(new TypeError("Failed to fetch"));
    await expect(client.request("GET", "/v1/runs")).rejects.toBeInstanceOf(NetworkError);
  });

  it("copes with an error body that is not JSON", async () => {
    const { client } = setup(new Response("<html>bad gateway</html>", { status: 502 }));
    const error = (await client.request("GET", "/v1/runs").catch((e: unknown) => e)) as ApiError;
    expect(error.code).toBe("HTTP_502");
    expect(error.message).toBe("The server answered 502.");
  });
});

describe("error envelope", () => {
  it("reads the flat envelope and the one nested under error", () => {
    const flat = errorFromBody(404, { code: "NOT_FOUND", message: "run not found", details: null });
    const nested = errorFromBody(404, { error: { code: "NOT_FOUND", message: "run not found" } });
    for (const error of [flat, nested]) {
      expect(error.code).toBe("NOT_FOUND");
      expect(error.message).toBe("run not found");
    }
  });

  it("falls back to a message by status", () => {
    expect(errorFromBody(401, null).message).toMatch(/not accepted/);
    expect(errorFromBody(429, {}).code).toBe("HTTP_429");
  });

  it("lists validation problems by field", () => {
    const details = [
      { loc: ["body", "idea"], msg: "idea is 10001 characters long; the limit is 10000", type: "value_error" },
      { loc: ["query", "limit"], msg: "too big", type: "x" },
      "junk",
    ];
    expect(validationProblems(details)).toEqual([
      "idea: idea is 10001 characters long; the limit is 10000",
      "limit: too big",
    ]);
    const error = errorFromBody(422, { code: "VALIDATION_ERROR", message: "the request is not valid", details });
    expect(errorMessage(error)).toBe(
      "The request is not valid. idea: idea is 10001 characters long; the limit is 10000; limit: too big",
    );
  });
});
