import { useEffect, useState } from "react";
import { api } from "../api/endpoints";
import { ApiError } from "../api/errors";
import type { RunDetail } from "../api/types";
import { useApp } from "../app/context";
import { useLiveRun, type Connection } from "../app/useLiveRun";
import { StatusBadge } from "../components/Badges";
import { ChairView } from "../components/ChairView";
import { DecisionView, UsageView } from "../components/DecisionView";
import { ErrorNote, Loading } from "../components/Feedback";
import { ProposalView } from "../components/ProposalView";
import { ReviewCard } from "../components/ReviewCard";
import { StepList } from "../components/StepList";
import { canRetryChair, chairStatus, modelsSummary } from "../lib/council";
import { asSentence, formatAge } from "../lib/format";
import { inFlight } from "../lib/runs";
import { Link } from "../router/history";
import { paths } from "../router/routes";

export function runHeading(run: Pick<RunDetail, "run_id" | "proposal">): string {
  return run.proposal?.proposal.title?.trim() || `Run ${run.run_id.slice(0, 8)}`;
}

const CONNECTION_TEXT: Record<Connection, string> = {
  idle: "",
  connecting: "Connecting to live progress…",
  live: "Live: updates appear as they happen.",
  reconnecting: "Connection lost; reconnecting…",
};

export function RunPage({ id }: { id: string }) {
  const { run, error, connection, refresh } = useLiveRun(id);
  if (!run) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 422)) {
      return (
        <>
          <h1 tabIndex={-1}>Run not found</h1>
          <p>
            There is no run {id} for this account. <Link to="/">Back to the runs list</Link>
          </p>
        </>
      );
    }
    return (
      <>
        <h1 tabIndex={-1}>Run {id.slice(0, 8)}</h1>
        {error ? <ErrorNote error={error} onRetry={() => void refresh()} /> : <Loading what="the run" />}
      </>
    );
  }
  return <RunView run={run} connection={connection} refresh={refresh} error={error} />;
}

function RunView({
  run,
  connection,
  refresh,
  error,
}: {
  run: RunDetail;
  connection: Connection;
  refresh: () => Promise<unknown>;
  error: unknown;
}) {
  const { client, announce } = useApp();
  const [acting, setActing] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const [now, setNow] = useState(Date.now());
  const live = inFlight(run.status);
  const names = Object.fromEntries(run.personas.map((p) => [p.id, p.name]));

  // Running steps show their time so far.
  useEffect(() => {
    if (!live) return;
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [live]);

  const chairRetry = canRetryChair(run);

  async function act(action: "cancel" | "retry") {
    setActing(true);
    setActionError(null);
    try {
      if (action === "cancel") await api.cancelRun(client, run.run_id);
      else await api.retryRun(client, run.run_id);
      announce(action === "cancel" ? "Run cancelled" : chairRetry ? "Chair retried" : "Run retried");
      await refresh();
    } catch (caught) {
      setActionError(caught);
      await refresh();
    } finally {
      setActing(false);
    }
  }

  const parent = run.parent_run_id ?? run.revision?.parent_run_id ?? null;
  return (
    <>
      <h1 tabIndex={-1}>{runHeading(run)}</h1>
      <p className="run-meta">
        <StatusBadge status={run.status} />
        <span>{run.run_type === "revision" ? "Revision" : "Initial run"}</span>
        <span>{run.priority} priority</span>
        <span>
          created{" "}
          <time dateTime={run.created_at} title={run.created_at}>
            {formatAge(run.created_at, now)}
          </time>
        </span>
        <span className="muted">
          <code>{run.run_id}</code>
        </span>
      </p>

      {parent && (
        <p className="links">
          <Link to={paths.run(parent)}>Parent run</Link>
          <Link to={paths.compare(parent, run.run_id)}>Compare with parent</Link>
        </p>
      )}

      <div className="actions">
        {live && (
          <button type="button" className="button-danger" disabled={acting} onClick={() => void act("cancel")}>
            Cancel run
          </button>
        )}
        {run.status === "failed" && (
          <button type="button" disabled={acting} onClick={() => void act("retry")}>
            Retry run
          </button>
        )}
        {run.status === "completed" && (
          <Link to={paths.revise(run.run_id)} className="button">
            Revise
          </Link>
        )}
      </div>
      {actionError !== null && <ErrorNote error={actionError} />}
      {error !== null && <ErrorNote error={error} onRetry={() => void refresh()} />}

      {(run.status === "failed" || run.status === "cancelled") && <Outcome run={run} />}

      <section aria-label="Progress" className="progress">
        <h2>Progress</h2>
        {CONNECTION_TEXT[connection] && <p className="muted small">{CONNECTION_TEXT[connection]}</p>}
        <StepList steps={run.steps} names={names} now={now} />
      </section>

      <section aria-labelledby="h-decision">
        <h2 id="h-decision">Decision</h2>
        {run.decision ? (
          <DecisionView decision={run.decision} names={names} />
        ) : (
          <p className="muted">{live ? "The decision comes once the reviews are in." : "No decision."}</p>
        )}
      </section>

      {run.chair && (
        <section aria-labelledby="h-chair">
          <h2 id="h-chair">Chair&apos;s synthesis</h2>
          <ChairView
            chair={run.chair}
            status={chairStatus(run.chair, run.steps)}
            chairModel={run.models.chair_model}
            retry={chairRetry ? { onRetry: () => void act("retry"), busy: acting } : null}
          />
        </section>
      )}

      <section aria-labelledby="h-idea">
        <h2 id="h-idea">Idea</h2>
        <p className="prose">{run.idea}</p>
        {run.extra_context !== null && (
          <details>
            <summary>Context</summary>
            <p className="prose">
              {typeof run.extra_context === "string"
                ? run.extra_context
                : JSON.stringify(run.extra_context, null, 2)}
            </p>
          </details>
        )}
        {run.revision?.edit_notes && (
          <p>
            <strong>Edit notes:</strong> {run.revision.edit_notes}
          </p>
        )}
      </section>

      <section aria-labelledby="h-proposal">
        <h2 id="h-proposal">Proposal</h2>
        {run.proposal ? (
          <ProposalView proposal={run.proposal.proposal} />
        ) : (
          <p className="muted">{live ? "The proposal is being written…" : "No proposal."}</p>
        )}
      </section>

      <section aria-labelledby="h-reviews">
        <h2 id="h-reviews">Reviews</h2>
        {run.reviews.length ? (
          <div className="reviews">
            {run.reviews.map((review) => (
              <ReviewCard key={review.persona_id} review={review} />
            ))}
          </div>
        ) : (
          <p className="muted">{live ? "Reviews appear as each persona finishes." : "No reviews."}</p>
        )}
      </section>

      <section aria-labelledby="h-usage">
        <h2 id="h-usage">Usage</h2>
        <UsageView usage={run.usage} />
        <p className="muted small">Models: {modelsSummary(run.models)}</p>
      </section>
    </>
  );
}

function Outcome({ run }: { run: RunDetail }) {
  const failed = run.status === "failed";
  const reason = run.error?.message?.trim();
  return (
    <div className="note note-error">
      <p>
        <strong>{failed ? "This run failed." : "This run was cancelled."}</strong>{" "}
        {reason
          ? asSentence(reason)
          : failed
            ? "A step could not complete."
            : "It was stopped before it finished."}
        {run.error?.code && <span className="muted"> (code {run.error.code})</span>}
      </p>
      {failed && (
        <p>Retry runs again only the steps that did not complete; the finished ones are kept.</p>
      )}
    </div>
  );
}
