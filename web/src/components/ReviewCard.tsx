import type { ReactNode } from "react";
import type { Review } from "../api/types";
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
        {review.model}
        {review.temperature !== null ? ` at temperature ${review.temperature}` : ""} · prompts{" "}
        {review.prompt_set_version}
      </p>
    </article>
  );
}
