// The run stream's events (api/routes/events.py) read from parsed SSE, and applied to the
// steps on screen.

import type { SnapshotEvent, StatusEvent, Step, StepEvent } from "../api/types";
import type { SseEvent } from "./parser";

export type RunEvent =
  | { type: "snapshot"; data: SnapshotEvent }
  | { type: "step"; data: StepEvent }
  | { type: "status"; data: StatusEvent }
  | { type: "end"; data: StatusEvent };

/** A typed event, or null for unknown names and data that is not a JSON object. */
export function readRunEvent(event: SseEvent): RunEvent | null {
  let data: unknown;
  try {
    data = JSON.parse(event.data);
  } catch {
    return null;
  }
  if (typeof data !== "object" || data === null) return null;
  switch (event.event) {
    case "snapshot":
      return Array.isArray((data as SnapshotEvent).steps)
        ? { type: "snapshot", data: data as SnapshotEvent }
        : null;
    case "step":
      return typeof (data as StepEvent).step_name === "string"
        ? { type: "step", data: data as StepEvent }
        : null;
    case "status":
    case "end":
      return typeof (data as StatusEvent).status === "string"
        ? { type: event.event, data: data as StatusEvent }
        : null;
    default:
      return null;
  }
}

/**
 * The stored steps with the newer states the stream reported laid over them; a step the
 * details do not have yet is added in stream order.
 */
export function overlaySteps(steps: Step[], live: Map<string, StepEvent>): Step[] {
  const known = new Set(steps.map((s) => s.step_name));
  const merged = steps.map((step) => {
    const event = live.get(step.step_name);
    if (!event) return step;
    return { ...step, status: event.status, attempts: event.attempts, error: event.error };
  });
  let order = steps.length;
  for (const event of live.values()) {
    if (known.has(event.step_name)) continue;
    merged.push({
      step_name: event.step_name,
      step_order: order++,
      persona_id: event.persona_id,
      status: event.status,
      attempts: event.attempts,
      reused: false,
      started_at: null,
      completed_at: null,
      updated_at: "",
      error: event.error,
      metadata: {},
    });
  }
  return merged;
}
