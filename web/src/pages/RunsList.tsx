import { useEffect, useRef, useState, type ChangeEvent } from "react";
import { api } from "../api/endpoints";
import { DECISIONS, RUN_STATUSES, RUN_TYPES, type RunListItem } from "../api/types";
import { useApp } from "../app/context";
import { DecisionBadge, StatusBadge } from "../components/Badges";
import { ErrorNote } from "../components/Feedback";
import {
  datesReversed,
  filtersFromSearch,
  filtersToApiQuery,
  filtersToSearch,
  type RunFilters,
} from "../lib/filters";
import { decisionText, formatAge, formatScore, runName } from "../lib/format";
import { inFlight, mergeRuns } from "../lib/runs";
import { Link, navigate } from "../router/history";
import { paths } from "../router/routes";

const PAGE = 30;
const POLL_MS = 4000;
const SEARCH_DELAY_MS = 300;

type Load = { state: "loading" } | { state: "ready" } | { state: "error"; error: unknown };

export function RunsList({ search }: { search: string }) {
  const { client, announce } = useApp();
  const filters = filtersFromSearch(search);
  const query = filtersToApiQuery(filters);
  const [runs, setRuns] = useState<RunListItem[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [more, setMore] = useState<Load>({ state: "ready" });
  const [text, setText] = useState(filters.q);
  const [now, setNow] = useState(Date.now());
  const [attempt, setAttempt] = useState(0);

  // First page whenever the filters change.
  useEffect(() => {
    const controller = new AbortController();
    setLoad({ state: "loading" });
    api.listRuns(client, filtersToApiQuery(filtersFromSearch(search), { limit: PAGE }), controller.signal).then(
      (page) => {
        setRuns(page.runs);
        setCursor(page.next_cursor);
        setLoad({ state: "ready" });
        setNow(Date.now());
        announce(`${page.runs.length}${page.next_cursor ? " or more" : ""} runs listed`);
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setLoad({ state: "error", error });
      },
    );
    return () => controller.abort();
  }, [client, search, announce, attempt]);

  // While a run is queued or running, refresh the rows on screen every few seconds.
  const anyLive = runs.some((run) => inFlight(run.status));
  const runsRef = useRef(runs);
  runsRef.current = runs;
  useEffect(() => {
    if (!anyLive) return;
    const controller = new AbortController();
    const timer = window.setInterval(() => {
      const limit = Math.min(100, Math.max(PAGE, runsRef.current.length));
      api.listRuns(client, filtersToApiQuery(filtersFromSearch(search), { limit }), controller.signal).then(
        (page) => {
          setRuns((shown) => mergeRuns(shown, page.runs));
          setNow(Date.now());
        },
        () => undefined, // a missed refresh is retried on the next tick
      );
    }, POLL_MS);
    return () => {
      controller.abort();
      window.clearInterval(timer);
    };
  }, [anyLive, client, search]);

  // Ages move on even when nothing else changes.
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 30_000);
    return () => window.clearInterval(timer);
  }, []);

  // Typing in the search box updates the URL (and so the list) after a short pause.
  useEffect(() => {
    if (text.trim() === filters.q.trim()) return;
    const timer = window.setTimeout(() => apply({ ...filters, q: text }), SEARCH_DELAY_MS);
    return () => window.clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [text]);

  function apply(next: RunFilters) {
    navigate(paths.runs(filtersToSearch(next)), { replace: true });
  }

  function onSelect(field: "status" | "decision" | "runType" | "createdAfter" | "createdBefore") {
    return (event: ChangeEvent<HTMLSelectElement | HTMLInputElement>) =>
      apply({ ...filters, [field]: event.target.value });
  }

  async function loadMore() {
    if (!cursor) return;
    setMore({ state: "loading" });
    try {
      const page = await api.listRuns(client, filtersToApiQuery(filters, { limit: PAGE, cursor }));
      setRuns((shown) => mergeRuns(shown, page.runs));
      setCursor(page.next_cursor);
      setMore({ state: "ready" });
      announce(`${page.runs.length} more runs loaded`);
    } catch (error) {
      setMore({ state: "error", error });
    }
  }

  const filtered = query !== "";
  return (
    <>
      <div className="page-title">
        <h1 tabIndex={-1}>Runs</h1>
        <Link to={paths.newRun()} className="button">
          Submit an idea
        </Link>
      </div>

      <form className="filters" role="search" aria-label="Filter runs" onSubmit={(e) => e.preventDefault()}>
        <div className="field field-wide">
          <label htmlFor="runs-q">Search</label>
          <input
            id="runs-q"
            type="search"
            value={text}
            placeholder="Words in the idea or proposal"
            onChange={(event) => setText(event.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="runs-status">Status</label>
          <select id="runs-status" value={filters.status} onChange={onSelect("status")}>
            <option value="">Any</option>
            {RUN_STATUSES.map((status) => (
              <option key={status} value={status}>
                {status}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="runs-decision">Decision</label>
          <select id="runs-decision" value={filters.decision} onChange={onSelect("decision")}>
            <option value="">Any</option>
            {DECISIONS.map((decision) => (
              <option key={decision} value={decision}>
                {decisionText(decision)}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="runs-type">Run type</label>
          <select id="runs-type" value={filters.runType} onChange={onSelect("runType")}>
            <option value="">Any</option>
            {RUN_TYPES.map((type) => (
              <option key={type} value={type}>
                {type}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="runs-after">Created after</label>
          <input
            id="runs-after"
            type="date"
            value={filters.createdAfter}
            onChange={onSelect("createdAfter")}
            aria-describedby="runs-dates-hint"
          />
        </div>
        <div className="field">
          <label htmlFor="runs-before">Created before</label>
          <input
            id="runs-before"
            type="date"
            value={filters.createdBefore}
            onChange={onSelect("createdBefore")}
            aria-describedby="runs-dates-hint"
          />
        </div>
        <p id="runs-dates-hint" className="hint field-wide">
          Dates are whole days in UTC, both included.
        </p>
        {filtered && (
          <button
            type="button"
            className="button-secondary"
            onClick={() => {
              setText("");
              navigate(paths.runs(), { replace: true });
            }}
          >
            Clear filters
          </button>
        )}
      </form>

      {datesReversed(filters) && (
        <p className="note" role="status">
          “Created after” is later than “Created before”, so no run can match.
        </p>
      )}

      {load.state === "error" ? (
        <ErrorNote error={load.error} onRetry={() => setAttempt((n) => n + 1)} />
      ) : load.state === "loading" && runs.length === 0 ? (
        <p role="status" className="muted">
          Loading runs…
        </p>
      ) : runs.length === 0 ? (
        <p className="empty">
          {filtered ? "No run matches these filters." : "No runs yet. "}
          {!filtered && <Link to={paths.newRun()}>Submit your first idea</Link>}
        </p>
      ) : (
        <div className="table-wrap">
          <table className="runs-table" aria-busy={load.state === "loading"}>
            <caption className="visually-hidden">Runs, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Status</th>
                <th scope="col">Decision</th>
                <th scope="col" className="num">
                  Score
                </th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={run.run_id}>
                  <td>
                    <Link to={paths.run(run.run_id)}>{runName(run)}</Link>
                    {run.run_type === "revision" && <span className="tag">revision</span>}
                  </td>
                  <td>
                    <StatusBadge status={run.status} />
                  </td>
                  <td>
                    <DecisionBadge decision={run.decision} />
                  </td>
                  <td className="num">{formatScore(run.overall_score)}</td>
                  <td>
                    <time dateTime={run.created_at} title={run.created_at}>
                      {formatAge(run.created_at, now)}
                    </time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {more.state === "error" && <ErrorNote error={more.error} />}
      {cursor && load.state === "ready" && (
        <p>
          <button
            type="button"
            className="button-secondary"
            onClick={loadMore}
            disabled={more.state === "loading"}
          >
            Load more
          </button>
        </p>
      )}
    </>
  );
}
