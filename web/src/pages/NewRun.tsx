import { useEffect, useState, type FormEvent } from "react";
import { api } from "../api/endpoints";
import type { Options } from "../api/types";
import { useApp } from "../app/context";
import { useAsync } from "../app/useAsync";
import { ErrorNote, Loading } from "../components/Feedback";
import { TextField } from "../components/TextField";
import { toggledChoice } from "../lib/choices";
import {
  formProblems,
  initialForm,
  modelChoices,
  personaModelDefault,
  submitBody,
  type ChairChoice,
  type NewRunForm,
} from "../lib/newRun";
import { navigate } from "../router/history";
import { paths } from "../router/routes";

export function NewRun() {
  const { loadOptions } = useApp();
  const [options, retry] = useAsync(() => loadOptions(), [loadOptions]);
  return (
    <>
      <h1 tabIndex={-1}>New run</h1>
      <p className="lead">
        Describe a rough idea. It is expanded into a proposal, reviewed by each persona in
        parallel, and given a decision: approve, revise or reject. A debate round and a
        chair's synthesis are optional.
      </p>
      {options.status === "loading" && <Loading what="the options" />}
      {options.status === "error" && <ErrorNote error={options.error} onRetry={retry} />}
      {options.status === "ready" && <NewRunFormView options={options.value} />}
    </>
  );
}

function NewRunFormView({ options }: { options: Options }) {
  const { client, announce } = useApp();
  const [form, setForm] = useState<NewRunForm>(() => initialForm(options));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const problems = formProblems(form, options);
  const update = (patch: Partial<NewRunForm>) => setForm((current) => ({ ...current, ...patch }));

  useEffect(() => setForm(initialForm(options)), [options]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (problems.length || busy) return;
    setBusy(true);
    setError(null);
    try {
      const accepted = await api.submitRun(client, submitBody(form, options));
      announce("Run submitted");
      navigate(paths.run(accepted.run_id));
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  }

  function togglePersona(id: string, on: boolean) {
    update({ personas: toggledChoice(options.personas, form.personas, id, on) });
  }

  function setPersonaModel(id: string, model: string) {
    setForm((current) => ({ ...current, personaModels: { ...current.personaModels, [id]: model } }));
  }

  const expandModels = modelChoices(options.models.allowed, options.models.expand);
  const reviewModels = modelChoices(options.models.allowed, options.models.review);

  return (
    <form onSubmit={submit} noValidate className="stack">
      <TextField
        label="Idea"
        value={form.idea}
        onChange={(idea) => update({ idea })}
        limit={options.limits.idea}
        rows={6}
        hint="A sentence or a few paragraphs: what you want to build and why."
        required
      />
      <TextField
        label="Context (optional)"
        value={form.context}
        onChange={(context) => update({ context })}
        limit={options.limits.extra_context}
        rows={4}
        hint="Background the reviewers should know: constraints, audience, prior attempts."
      />

      {options.personas.length > 0 && (
        <fieldset>
          <legend>Personas</legend>
          <p className="hint">Each reviews the proposal; weights are rescaled over those chosen.</p>
          <ul className="choices">
            {options.personas.map((persona) => (
              <li key={persona.id}>
                <input
                  type="checkbox"
                  id={`persona-${persona.id}`}
                  checked={form.personas.includes(persona.id)}
                  onChange={(event) => togglePersona(persona.id, event.target.checked)}
                  aria-describedby={`persona-${persona.id}-about`}
                />
                <label htmlFor={`persona-${persona.id}`}>{persona.name}</label>
                <span id={`persona-${persona.id}-about`} className="hint">
                  {persona.focus} · weight {persona.weight.toFixed(2)}
                </span>
                <div className="persona-model">
                  <label htmlFor={`persona-${persona.id}-model`}>
                    Model<span className="visually-hidden"> for {persona.name}</span>
                  </label>
                  <select
                    id={`persona-${persona.id}-model`}
                    value={form.personaModels[persona.id] ?? ""}
                    disabled={!form.personas.includes(persona.id)}
                    onChange={(event) => setPersonaModel(persona.id, event.target.value)}
                  >
                    <option value="">
                      {personaModelDefault(persona, form.reviewModel, options.models.review)}
                    </option>
                    <ModelOptions models={options.models.allowed} />
                  </select>
                </div>
              </li>
            ))}
          </ul>
        </fieldset>
      )}

      <div className="row">
        <div className="field">
          <label htmlFor="new-priority">Priority</label>
          <select
            id="new-priority"
            value={form.priority}
            onChange={(event) => update({ priority: event.target.value as NewRunForm["priority"] })}
          >
            {options.priorities.map((priority) => (
              <option key={priority} value={priority}>
                {priority}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="new-expand">Expand model</label>
          <select
            id="new-expand"
            value={form.expandModel}
            onChange={(event) => update({ expandModel: event.target.value })}
          >
            <ModelOptions models={expandModels} marked={options.models.expand} />
          </select>
        </div>
        <div className="field">
          <label htmlFor="new-review">Review model</label>
          <select
            id="new-review"
            value={form.reviewModel}
            onChange={(event) => update({ reviewModel: event.target.value })}
          >
            <ModelOptions models={reviewModels} marked={options.models.review} />
          </select>
        </div>
      </div>

      <CouncilFields form={form} options={options} update={update} />

      {problems.length > 0 && form.idea !== "" && (
        <ul className="note" id="new-problems">
          {problems.map((problem) => (
            <li key={problem}>{problem}</li>
          ))}
        </ul>
      )}
      {error !== null && <ErrorNote error={error} />}
      <p>
        <button
          type="submit"
          disabled={problems.length > 0 || busy}
          aria-describedby={problems.length > 0 && form.idea !== "" ? "new-problems" : undefined}
        >
          {busy ? "Submitting…" : "Submit for review"}
        </button>
      </p>
    </form>
  );
}

const CHAIR_CHOICES: readonly { value: ChairChoice; label: string }[] = [
  { value: "default", label: "Deployment default" },
  { value: "on", label: "On" },
  { value: "off", label: "Off" },
];

/** The debate round and the chair: left alone, the deployment's defaults hold. */
function CouncilFields({
  form,
  options,
  update,
}: {
  form: NewRunForm;
  options: Options;
  update: (patch: Partial<NewRunForm>) => void;
}) {
  return (
    <fieldset className="council">
      <legend>Council</legend>
      <ul className="choices">
        <li>
          <input
            type="checkbox"
            id="new-debate"
            checked={form.debate}
            onChange={(event) => update({ debate: event.target.checked })}
            aria-describedby="new-debate-about"
          />
          <label htmlFor="new-debate">Debate round</label>
          <span id="new-debate-about" className="hint">
            Each persona reads the others&apos; first reviews (without their names) and writes a
            final one; the decision uses the final reviews. About twice the review cost.
          </span>
        </li>
      </ul>
      <fieldset className="inline-choices">
        <legend>Chair&apos;s synthesis</legend>
        <p id="new-chair-about" className="hint">
          A chair model sums up where the panel agreed and split. Its text is model-written and
          never changes the decision.
        </p>
        {CHAIR_CHOICES.map((choice) => (
          <span key={choice.value} className="inline-choice">
            <input
              type="radio"
              name="new-chair"
              id={`new-chair-${choice.value}`}
              value={choice.value}
              checked={form.chair === choice.value}
              onChange={() => update({ chair: choice.value })}
              aria-describedby="new-chair-about"
            />
            <label htmlFor={`new-chair-${choice.value}`}>{choice.label}</label>
          </span>
        ))}
      </fieldset>
      <div className="field">
        <label htmlFor="new-chair-model">Chair model</label>
        <select
          id="new-chair-model"
          value={form.chairModel}
          disabled={form.chair === "off"}
          onChange={(event) => update({ chairModel: event.target.value })}
          aria-describedby="new-chair-model-about"
        >
          <option value="">The deployment&apos;s chair model</option>
          <ModelOptions models={options.models.allowed} />
        </select>
        <p id="new-chair-model-about" className="hint">
          Choosing a model turns the chair on, unless it is set to off.
        </p>
      </div>
    </fieldset>
  );
}

/** One option per model; the ``marked`` one says it is the default. */
function ModelOptions({ models, marked }: { models: readonly string[]; marked?: string }) {
  return (
    <>
      {models.map((model) => (
        <option key={model} value={model}>
          {model}
          {model === marked ? " (default)" : ""}
        </option>
      ))}
    </>
  );
}
