// A run's details kept current: the event stream while it is in flight (reconnecting
// with backoff if it drops), the details fetched again after changes and at the end.

import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "../api/endpoints";
import { ApiError } from "../api/errors";
import type { RunDetail, RunStatus, StepEvent } from "../api/types";
import { stepLabel, decisionText } from "../lib/format";
import { inFlight } from "../lib/runs";
import { followStream } from "../sse/follow";
import { overlaySteps, readRunEvent } from "../sse/runEvents";
import { useApp } from "./context";

const REFRESH_DELAY_MS = 700;

export type Connection = "idle" | "connecting" | "live" | "reconnecting";

export interface LiveRun {
  run: RunDetail | null;
  error: unknown;
  connection: Connection;
  refresh: () => Promise<RunDetail | null>;
}

export function useLiveRun(id: string): LiveRun {
  const { client, announce } = useApp();
  const [run, setRun] = useState<RunDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [connection, setConnection] = useState<Connection>("idle");
  const [live, setLive] = useState<{ steps: Map<string, StepEvent>; status: RunStatus | null }>(
    () => ({ steps: new Map(), status: null }),
  );
  const namesRef = useRef<Record<string, string>>({});
  const refreshTimer = useRef<number | undefined>(undefined);

  const refresh = useCallback(async (): Promise<RunDetail | null> => {
    try {
      const detail = await api.getRun(client, id);
      namesRef.current = Object.fromEntries(detail.personas.map((p) => [p.id, p.name]));
      setRun(detail);
      // The details are at least as new as what the stream said before this answer.
      setLive({ steps: new Map(), status: null });
      setError(null);
      return detail;
    } catch (caught) {
      setError(caught);
      return null;
    }
  }, [client, id]);

  useEffect(() => {
    void refresh();
    return () => window.clearTimeout(refreshTimer.current);
  }, [refresh]);

  const following = run !== null && inFlight(run.status);

  useEffect(() => {
    if (!following) return;
    const controller = new AbortController();
    const later = () => {
      window.clearTimeout(refreshTimer.current);
      refreshTimer.current = window.setTimeout(() => void refresh(), REFRESH_DELAY_MS);
    };
    setConnection("connecting");
    void followStream({
      signal: controller.signal,
      open: (signal) => api.events(client, id, signal),
      onOpen: () => setConnection("live"),
      onEvent: (raw) => {
        const event = readRunEvent(raw);
        if (!event) return;
        if (event.type === "snapshot") {
          setLive({
            steps: new Map(event.data.steps.map((s) => [s.step_name, s])),
            status: event.data.status,
          });
          return;
        }
        if (event.type === "step") {
          const step = event.data;
          setLive((current) => ({
            ...current,
            steps: new Map(current.steps).set(step.step_name, step),
          }));
          announce(`${stepLabel(step.step_name, namesRef.current)}: ${step.status}`);
          later();
          return;
        }
        setLive((current) => ({ ...current, status: event.data.status }));
        if (event.type === "end") {
          window.clearTimeout(refreshTimer.current);
          const decision = event.data.decision ? `: ${decisionText(event.data.decision)}` : "";
          announce(`Run ${event.data.status}${decision}`);
          void refresh();
        } else {
          announce(`Run ${event.data.status}`);
          later();
        }
      },
      shouldReconnect: async (problem) => {
        if (problem instanceof ApiError && problem.status === 401) return false;
        if (problem instanceof ApiError && problem.status === 404) return false;
        setConnection("reconnecting");
        const latest = await refresh();
        return latest !== null && inFlight(latest.status);
      },
    }).finally(() => {
      if (!controller.signal.aborted) setConnection("idle");
    });
    return () => {
      controller.abort();
      setConnection("idle");
    };
  }, [following, client, id, refresh, announce]);

  const shown =
    run === null
      ? null
      : {
          ...run,
          status: live.status ?? run.status,
          steps: overlaySteps(run.steps, live.steps),
        };
  return { run: shown, error, connection, refresh };
}
