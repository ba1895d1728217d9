import { useEffect, useState, type FormEvent } from "react";
import { api } from "../api/endpoints";
import type { RunDetail, RunDiff, SectionChange } from "../api/types";
import { useApp } from "../app/context";
import { useAsync } from "../app/useAsync";
import { DecisionBadge, StatusBadge } from "../components/Badges";
import { ErrorNote, Loading } from "../components/Feedback";
import { diffLines } from "../lib/diffLines";
import { formatAge, formatDelta, formatScore } from "../lib/format";
import { sectionTitle } from "../lib/sections";
import { Link, navigate } from "../router/history";
import { paths } from "../router/routes";
import { runHeading } from "./RunPage";

const SECTION_STATUS: Record<SectionChange["status"], string> = {
  unchanged: "unchanged",
  added: "added",
  removed: "removed",
  modified: "changed",
  both_missing: "in neither run",
  run1_missing: "only in the second run",
  run2_missing: "only in the first run",
};

export function Compare({ a, b }: { a: string; b: string }) {
  const [first, setFirst] = useState(a);
  const [second, setSecond] = useState(b);
  useEffect(() => {
    setFirst(a);
    setSecond(b);
  }, [a, b]);

  function submit(event: FormEvent) {
    event.preventDefault();
    navigate(paths.compare(first.trim(), second.trim()));
  }

  return (
    <>
      <h1 tabIndex={-1}>Compare runs</h1>
      <form className="row compare-form" onSubmit={submit}>
        <div className="field">
          <label htmlFor="compare-a">First run ID</label>
          <input
            id="compare-a"
            value={first}
            spellCheck={false}
            autoComplete="off"
            onChange={(event) => setFirst(event.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="compare-b">Second run ID</label>
          <input
            id="compare-b"
            value={second}
            spellCheck={false}
            autoComplete="off"
            onChange={(event) => setSecond(event.target.value)}
          />
        </div>
        <div className="field field-button">
          <button type="submit" disabled={!first.trim() || !second.trim()}>
            Compare
          </button>
        </div>
      </form>
      <p className="hint">The first run is the “before” side; a run's ID is shown on its page.</p>
      {a && b ? <Comparison key={`${a}/${b}`} a={a} b={b} /> : null}
    </>
  );
}

function Comparison({ a, b }: { a: string; b: string }) {
  const { client } = useApp();
  const [state, retry] = useAsync(
    async (signal) => {
      const [diff, first, second] = await Promise.all([
        api.diff(client, a, b),
        api.getRun(client, a, signal),
        api.getRun(client, b, signal),
      ]);
      return { diff, first, second };
    },
    [client, a, b],
  );
  if (state.status === "loading") return <Loading what="the comparison" />;
  if (state.status === "error") return <ErrorNote error={state.error} onRetry={retry} />;
  return <ComparisonView {...state.value} />;
}

function RunSummary({ run, side }: { run: RunDetail; side: string }) {
  return (
    <div className="card">
      <p className="muted small">{side}</p>
      <p>
        <Link to={paths.run(run.run_id)}>{runHeading(run)}</Link>
      </p>
      <p className="run-meta">
        <StatusBadge status={run.status} />
        <DecisionBadge decision={run.decision?.decision ?? null} />
        <span>score {formatScore(run.decision?.overall_weighted_confidence)}</span>
        <span>{formatAge(run.created_at)}</span>
      </p>
    </div>
  );
}

function ComparisonView({ diff, first, second }: { diff: RunDiff; first: RunDetail; second: RunDetail }) {
  const names: Record<string, string> = {};
  for (const p of [...first.personas, ...second.personas]) names[p.id] = p.name;
  const relation =
    diff.metadata.relationship === "run1_is_parent_of_run2"
      ? "The second run is a revision of the first."
      : diff.metadata.relationship === "run2_is_parent_of_run1"
        ? "The first run is a revision of the second."
        : "The runs are not directly related.";
  const d = diff.decision_delta;
  return (
    <>
      <div className="side-by-side">
        <RunSummary run={first} side="First run (before)" />
        <RunSummary run={second} side="Second run (after)" />
      </div>
      <p>{relation}</p>

      <section aria-labelledby="h-decision-change">
        <h2 id="h-decision-change">Decision change</h2>
        <p className="verdict-change">
          <DecisionBadge decision={d.old_decision} /> <span aria-hidden="true">→</span>
          <span className="visually-hidden">to</span> <DecisionBadge decision={d.new_decision} />{" "}
          {d.decision_changed ? "(changed)" : "(unchanged)"}
        </p>
        <p>
          Overall score {formatScore(d.old_confidence)} → {formatScore(d.new_confidence)} (
          {formatDelta(d.confidence_delta)})
        </p>
      </section>

      <section aria-labelledby="h-score-moves">
        <h2 id="h-score-moves">Score moves</h2>
        {diff.persona_deltas.length === 0 ? (
          <p className="muted">Neither run has reviews.</p>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Persona</th>
                  <th scope="col" className="num">Before</th>
                  <th scope="col" className="num">After</th>
                  <th scope="col" className="num">Change</th>
                  <th scope="col">Blocking</th>
                </tr>
              </thead>
              <tbody>
                {diff.persona_deltas.map((delta) => (
                  <tr key={delta.persona_id}>
                    <th scope="row">{names[delta.persona_id] ?? delta.persona_id}</th>
                    <td className="num">{formatScore(delta.old_confidence)}</td>
                    <td className="num">{formatScore(delta.new_confidence)}</td>
                    <td className="num">
                      {delta.status === "present_in_both"
                        ? formatDelta(delta.confidence_delta)
                        : delta.status === "added_in_run2"
                          ? "new"
                          : "dropped"}
                    </td>
                    <td>
                      {delta.blocking_changed
                        ? delta.new_blocking
                          ? "now blocking"
                          : "no longer blocking"
                        : delta.new_blocking
                          ? "blocking"
                          : "—"}
                      {delta.security_changed && " · security changed"}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {diff.persona_deltas
          .filter((x) => x.concerns_added.length + x.concerns_removed.length > 0)
          .map((delta) => (
            <details key={delta.persona_id}>
              <summary>Concern changes: {names[delta.persona_id] ?? delta.persona_id}</summary>
              {delta.concerns_added.length > 0 && (
                <>
                  <h3 className="small-heading">New concerns</h3>
                  <ul>
                    {delta.concerns_added.map((text, i) => (
                      <li key={i}>{text}</li>
                    ))}
                  </ul>
                </>
              )}
              {delta.concerns_removed.length > 0 && (
                <>
                  <h3 className="small-heading">Resolved concerns</h3>
                  <ul>
                    {delta.concerns_removed.map((text, i) => (
                      <li key={i}>{text}</li>
                    ))}
                  </ul>
                </>
              )}
            </details>
          ))}
      </section>

      <section aria-labelledby="h-proposal-changes">
        <h2 id="h-proposal-changes">Proposal changes</h2>
        {Object.entries(diff.proposal_changes).map(([section, change]) => (
          <div key={section} className="section-change">
            <h3>
              {sectionTitle(section)}: <span className={`change-${change.status}`}>{SECTION_STATUS[change.status]}</span>
            </h3>
            {change.diff && (
              <pre className="diff" aria-label={`Changes to ${sectionTitle(section)}`} tabIndex={0}>
                {diffLines(change.diff).map((line, i) => (
                  <span key={i} className={`diff-${line.kind}`}>
                    {line.text}
                  </span>
                ))}
              </pre>
            )}
            {change.diff_truncated && <p className="muted small">Diff cut to its first 50 lines.</p>}
          </div>
        ))}
      </section>
    </>
  );
}
