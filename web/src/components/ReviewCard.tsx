import type { ReactNode } from "react";
import type { Review } from "../api/types";
import { modelLine, scoreMove } from "../lib/council";
import { formatScore } from "../lib/format";
import { Link } from "../router/history";
import { paths } from "../router/routes";

function Items({ title, items }: { title: string; items: ReactNode[] }) {
  if (items.length === 0) return null;
  return (
    <>
      <h4>{title}</h4>
      <ul>
        {items.map((item, index) => (
          <li key={index}>{item}</li>
        ))}
      </ul>
    </>
  );
}

export function ReviewCard({ review }: { review: Review }) {
  return (
    <article className="card review" aria-labelledby={`review-${review.persona_id}`}>
      <header className="review-head">
        <h3 id={`review-${review.persona_id}`}>{review.persona_name}</h3>
        <span className="score">
          Score <strong>{formatScore(review.confidence_score)}</strong>
          <span className="muted"> · weight {review.weight.toFixed(2)}</span>
        </span>
      </header>
      <p className="review-model">{modelLine(review)}</p>
      <ScoreMoveLine review={review} />
      {review.reused && (
        <p className="tag-line">
          Reused from{" "}
          {review.source_run_id ? (
            <Link to={paths.run(review.source_run_id)}>an earlier run</Link>
          ) : (
            "an earlier run"
          )}
        </p>
      )}
      <p className="prose">{review.summary}</p>
      <Items title="Strengths" items={review.strengths} />
      <Items
        title="Concerns"
        items={review.concerns.map((concern) => (
          <>
            {concern.is_blocking && <strong className="flag">Blocking: </strong>}
            {concern.text}
          </>
        ))}
      />
      <Items
        title="Blocking issues"
        items={review.blocking_issues.map((issue) => (
          <>
            {issue.security_critical && <strong className="flag">Security-critical: </strong>}
            {issue.text}
          </>
        ))}
      />
      <Items title="Recommendations" items={review.recommendations} />
      <Items title="Dependency risks" items={review.dependency_risks} />
      <p>
        <strong>Estimated effort:</strong> {review.estimated_effort}
      </p>
      <p className="muted small">
        {review.temperature !== null ? `Temperature ${review.temperature} · ` : ""}prompts{" "}
        {review.prompt_set_version}
      </p>
    </article>
  );
}

/** With a debate round: the first-round score, the final one, and the direction in words. */
function ScoreMoveLine({ review }: { review: Review }) {
  const move = scoreMove(review);
  const first = review.first_round_review;
  if (!move || !first) return null;
  return (
    <>
      <p className="score-move">
        First round {move.text} <strong className={`move-${move.direction}`}>({move.change})</strong>
      </p>
      <details>
        <summary>First-round review</summary>
        <p className="prose">{first.summary}</p>
      </details>
    </>
  );
}
