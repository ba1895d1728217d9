// Every API call goes through here: it adds the key, reads the error envelope, and
// reports a refused key once so the app can go back to sign-in.

import { ApiError, NetworkError, errorFromBody } from "./errors";

export interface ClientOptions {
  getKey: () => string | null;
  /** A signed-in call got 401: the key was revoked or is wrong. */
  onUnauthorized: (error: ApiError) => void;
  fetchImpl?: typeof fetch;
  baseUrl?: string;
}

export interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  /** Use this key instead of the stored one (signing in); a 401 then only throws. */
  key?: string;
  accept?: string;
}

export interface ApiClient {
  request<T>(method: string, path: string, options?: RequestOptions): Promise<T>;
  /** The open response body of a streaming GET (Server-Sent Events). */
  stream(path: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

export function createClient(options: ClientOptions): ApiClient {
  const baseUrl = options.baseUrl ?? "";
  const doFetch: typeof fetch = (input, init) => (options.fetchImpl ?? fetch)(input, init);

  async function send(method: string, path: string, request: RequestOptions): Promise<Response> {
    const key = request.key ?? options.getKey();
    const headers: Record<string, string> = { Accept: request.accept ?? "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (request.body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await doFetch(baseUrl + path, {
        method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        signal: request.signal,
        cache: "no-store",
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new NetworkError();
    }
    if (!response.ok) {
      const error = errorFromBody(response.status, await readJson(response));
      if (response.status === 401 && request.key === undefined) options.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  return {
    async request<T>(method: string, path: string, request: RequestOptions = {}): Promise<T> {
      const response = await send(method, path, request);
      return (await readJson(response)) as T;
    },
    async stream(path: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
      const response = await send("GET", path, { signal, accept: "text/event-stream" });
      if (!response.body) throw new ApiError(response.status, "NO_BODY", "The stream is empty.");
      return response.body;
    },
  };
}
