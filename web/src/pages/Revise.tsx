import { useMemo, useState, type FormEvent } from "react";
import { api } from "../api/endpoints";
import type { ExpandedProposal, Options, RevisionPlan, RunDetail } from "../api/types";
import { useApp } from "../app/context";
import { useAsync } from "../app/useAsync";
import { ErrorNote, Loading } from "../components/Feedback";
import { TextField } from "../components/TextField";
import {
  revisionBody,
  revisionProblems,
  sectionTexts,
  type RevisionForm,
} from "../lib/revision";
import { toggledChoice } from "../lib/choices";
import { SECTIONS } from "../lib/sections";
import { Link, navigate } from "../router/history";
import { paths } from "../router/routes";
import { runHeading } from "./RunPage";

export function Revise({ id }: { id: string }) {
  const { client, loadOptions } = useApp();
  const [state, retry] = useAsync(
    async (signal) => {
      const [run, options] = await Promise.all([api.getRun(client, id, signal), loadOptions()]);
      return { run, options };
    },
    [client, id, loadOptions],
  );
  return (
    <>
      <h1 tabIndex={-1}>Revise run</h1>
      {state.status === "loading" && <Loading what="the run" />}
      {state.status === "error" && <ErrorNote error={state.error} onRetry={retry} />}
      {state.status === "ready" && <ReviseView run={state.value.run} options={state.value.options} />}
    </>
  );
}

function ReviseView({ run, options }: { run: RunDetail; options: Options }) {
  const proposal = run.proposal?.proposal;
  if (run.status !== "completed" || !proposal) {
    return (
      <p className="note">
        Only a completed run with a proposal can be revised; this one is {run.status}.{" "}
        <Link to={paths.run(run.run_id)}>Back to the run</Link>
      </p>
    );
  }
  return <ReviseForm run={run} proposal={proposal} options={options} />;
}

function ReviseForm({
  run,
  proposal,
  options,
}: {
  run: RunDetail;
  proposal: ExpandedProposal;
  options: Options;
}) {
  const { client, announce } = useApp();
  const [form, setForm] = useState<RevisionForm>(() => ({
    texts: sectionTexts(proposal),
    notes: "",
    rerun: [],
    priority: "",
  }));
  const [plan, setPlan] = useState<{ plan: RevisionPlan; forBody: string } | null>(null);
  const [busy, setBusy] = useState<"plan" | "submit" | null>(null);
  const [error, setError] = useState<unknown>(null);

  const body = useMemo(() => revisionBody(proposal, form), [proposal, form]);
  const bodyKey = JSON.stringify(body);
  const problems = revisionProblems(body, options.limits);
  const names = Object.fromEntries(run.personas.map((p) => [p.id, p.name]));
  const canSend = problems.length === 0 && busy === null;

  function toggle(id: string, on: boolean) {
    setForm((current) => ({
      ...current,
      rerun: toggledChoice(run.personas, current.rerun, id, on),
    }));
  }

  async function preview() {
    setBusy("plan");
    setError(null);
    try {
      const answer = await api.planRevision(client, run.run_id, body);
      setPlan({ plan: answer, forBody: bodyKey });
      announce(`Plan: ${answer.rerun.length} re-run, ${answer.reused.length} reused`);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(null);
    }
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!canSend) return;
    setBusy("submit");
    setError(null);
    try {
      const accepted = await api.revise(client, run.run_id, body);
      announce("Revision submitted");
      navigate(paths.run(accepted.run_id));
    } catch (caught) {
      setError(caught);
      setBusy(null);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="stack">
      <p>
        Revising <Link to={paths.run(run.run_id)}>{runHeading(run)}</Link>. Edit sections directly,
        describe changes in edit notes, or both. Personas whose concerns are untouched keep their
        reviews.
      </p>

      <TextField
        label="Edit notes"
        value={form.notes}
        onChange={(notes) => setForm((f) => ({ ...f, notes }))}
        limit={options.limits.edit_notes}
        rows={3}
        hint="Instructions the model applies to the proposal, e.g. “Add a phased rollout”."
      />

      <fieldset>
        <legend>Proposal sections</legend>
        {SECTIONS.map((section) => (
          <TextField
            key={section.name}
            label={section.title}
            value={form.texts[section.name]}
            onChange={(text) =>
              setForm((f) => ({ ...f, texts: { ...f.texts, [section.name]: text } }))
            }
            limit={null}
            rows={section.name === "title" ? 1 : section.list ? 4 : 5}
            hint={section.list ? "One item per line." : undefined}
          />
        ))}
      </fieldset>

      <fieldset>
        <legend>Personas to re-run</legend>
        <p className="hint">
          Leave all unchecked to let the engine choose from what changed. Checked personas review
          again; the others reuse their reviews.
        </p>
        <ul className="choices">
          {run.personas.map((persona) => (
            <li key={persona.id}>
              <input
                type="checkbox"
                id={`rerun-${persona.id}`}
                checked={form.rerun.includes(persona.id)}
                onChange={(event) => toggle(persona.id, event.target.checked)}
              />
              <label htmlFor={`rerun-${persona.id}`}>Re-run {persona.name}</label>
            </li>
          ))}
        </ul>
      </fieldset>

      <div className="field">
        <label htmlFor="revise-priority">Priority</label>
        <select
          id="revise-priority"
          value={form.priority}
          onChange={(event) =>
            setForm((f) => ({ ...f, priority: event.target.value as RevisionForm["priority"] }))
          }
        >
          <option value="">Same as the parent ({run.priority})</option>
          {options.priorities.map((priority) => (
            <option key={priority} value={priority}>
              {priority}
            </option>
          ))}
        </select>
      </div>

      {problems.length > 0 && (
        <ul className="note" id="revise-problems">
          {problems.map((problem) => (
            <li key={problem}>{problem}</li>
          ))}
        </ul>
      )}
      {error !== null && <ErrorNote error={error} />}

      <div className="actions">
        <button
          type="button"
          className="button-secondary"
          disabled={!canSend}
          aria-describedby={problems.length ? "revise-problems" : undefined}
          onClick={() => void preview()}
        >
          {busy === "plan" ? "Planning…" : "Preview plan"}
        </button>
        <button
          type="submit"
          disabled={!canSend}
          aria-describedby={problems.length ? "revise-problems" : undefined}
        >
          {busy === "submit" ? "Submitting…" : "Submit revision"}
        </button>
      </div>

      {plan && <PlanView plan={plan.plan} names={names} stale={plan.forBody !== bodyKey} />}
    </form>
  );
}

function PlanView({
  plan,
  names,
  stale,
}: {
  plan: RevisionPlan;
  names: Record<string, string>;
  stale: boolean;
}) {
  const item = (id: string) => (
    <li key={id}>
      <strong>{names[id] ?? id}</strong>
      {plan.reasons[id]?.length ? `: ${plan.reasons[id].join("; ")}` : ""}
    </li>
  );
  return (
    <section aria-label="Plan" className="card plan">
      <h2>Plan</h2>
      {stale && (
        <p className="note" role="status">
          The form changed since this plan; preview again to update it.
        </p>
      )}
      <p>{plan.exact ? "Exact plan." : "Lower bound: the edit notes may re-run more personas."}</p>
      <h3>Re-run</h3>
      {plan.rerun.length ? <ul>{plan.rerun.map(item)}</ul> : <p className="muted">None.</p>}
      <h3>Reused</h3>
      {plan.reused.length ? <ul>{plan.reused.map(item)}</ul> : <p className="muted">None.</p>}
      <p className="muted small">{plan.note}</p>
    </section>
  );
}
