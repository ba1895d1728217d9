import { describe, expect, it } from "vitest";
import type { Step, StepEvent } from "../api/types";
import { overlaySteps, readRunEvent } from "./runEvents";

const sse = (event: string, data: string) => ({ event, data, id: null, retry: null });

function step(name: string, status: Step["status"]): Step {
  return {
    step_name: name,
    step_order: 0,
    persona_id: null,
    status,
    attempts: 0,
    reused: false,
    started_at: null,
    completed_at: null,
    updated_at: "2026-01-01T00:00:00Z",
    error: null,
    metadata: {},
  };
}

describe("readRunEvent", () => {
  it("types the four events and refuses the rest", () => {
    expect(readRunEvent(sse("snapshot", '{"status":"running","steps":[]}'))?.type).toBe("snapshot");
    expect(readRunEvent(sse("step", '{"step_name":"expand","status":"running"}'))?.type).toBe("step");
    expect(readRunEvent(sse("status", '{"status":"running"}'))?.type).toBe("status");
    expect(readRunEvent(sse("end", '{"status":"completed"}'))?.type).toBe("end");
    expect(readRunEvent(sse("other", "{}"))).toBeNull();
    expect(readRunEvent(sse("step", "not json"))).toBeNull();
    expect(readRunEvent(sse("snapshot", '{"status":"queued"}'))).toBeNull();
  });
});

describe("overlaySteps", () => {
  it("lays newer states over the stored steps and adds unknown ones", () => {
    const live = new Map<string, StepEvent>([
      ["expand", { step_name: "expand", persona_id: null, status: "completed", attempts: 2, error: null }],
      ["review_x", { step_name: "review_x", persona_id: "x", status: "running", attempts: 1, error: null }],
    ]);
    const merged = overlaySteps([step("expand", "running"), step("aggregate", "pending")], live);
    expect(merged.map((s) => [s.step_name, s.status, s.attempts])).toEqual([
      ["expand", "completed", 2],
      ["aggregate", "pending", 0],
      ["review_x", "running", 1],
    ]);
  });
});
