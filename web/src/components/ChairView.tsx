// The chair's synthesis under the decision. It is a model's text, so it says so first and
// is framed apart from the decision, which the formula made.

import type { ChairOut, ChairReport, StepStatus } from "../api/types";
import { asSentence } from "../lib/format";
import { chairAuthorship, fallbackNote } from "../lib/council";

const WAITING: Partial<Record<StepStatus, string>> = {
  pending: "The chair writes its synthesis after the decision.",
  running: "The chair is writing its synthesis…",
  skipped: "The chair did not write a synthesis: the run ended before the chair's turn.",
};

export function ChairView({
  chair,
  status,
  chairModel,
  retry,
}: {
  chair: ChairOut;
  /** The chair step's status as the progress shows it (may be newer than `chair.status`). */
  status: StepStatus;
  /** The run's chair model, to name it when the fallback wrote the synthesis. */
  chairModel: string | null;
  /** Offered when the chair failed on a finished run: runs the chair again, alone. */
  retry: { onRetry: () => void; busy: boolean } | null;
}) {
  if (status === "failed") return <ChairFailed chair={chair} retry={retry} />;
  const waiting = WAITING[status];
  if (waiting) return <p className="muted">{waiting}</p>;
  if (!chair.report) return <p className="muted">Loading the synthesis…</p>;
  const fallback = fallbackNote(chair, chairModel);
  return (
    <div className="chair">
      <p className="model-written">
        <strong>Model-written.</strong> {chairAuthorship(chair)}
        {fallback && <> {fallback}</>}
      </p>
      <Report report={chair.report} />
    </div>
  );
}

function Report({ report }: { report: ChairReport }) {
  return (
    <>
      <p className="prose">{report.summary}</p>
      <h3>Agreed</h3>
      <List items={report.agreed} empty="The chair found no point the whole panel agreed on." />
      <h3>Split</h3>
      {report.split.length === 0 ? (
        <p className="muted">The chair found no point the panel split over.</p>
      ) : (
        <dl className="split">
          {report.split.map((point, index) => (
            <div key={index}>
              <dt>{point.topic}</dt>
              <dd>{point.positions}</dd>
            </div>
          ))}
        </dl>
      )}
      <h3>What would change the outcome</h3>
      <List items={report.would_change_outcome} empty="The chair named nothing." />
    </>
  );
}

function List({ items, empty }: { items: string[]; empty: string }) {
  if (items.length === 0) return <p className="muted">{empty}</p>;
  return (
    <ul>
      {items.map((item, index) => (
        <li key={index}>{item}</li>
      ))}
    </ul>
  );
}

function ChairFailed({
  chair,
  retry,
}: {
  chair: ChairOut;
  retry: { onRetry: () => void; busy: boolean } | null;
}) {
  const reason = chair.error?.trim();
  return (
    <div className="note note-error">
      <p>
        <strong>The chair could not write its synthesis.</strong>{" "}
        {reason ? asSentence(reason) : "Its model did not answer."} The decision above stands.
      </p>
      {retry && (
        <p>
          <button type="button" disabled={retry.busy} onClick={retry.onRetry}>
            Retry the chair
          </button>{" "}
          Runs the chair again; the reviews and the decision are kept.
        </p>
      )}
    </div>
  );
}
