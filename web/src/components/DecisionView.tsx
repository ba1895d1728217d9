import type { Decision, Usage } from "../api/types";
import { decisionText, formatCost, formatScore, formatTokens } from "../lib/format";
import { ScoreChart } from "./ScoreChart";

export function DecisionView({ decision, names }: { decision: Decision; names: Record<string, string> }) {
  const b = decision.score_breakdown;
  return (
    <div className="decision">
      <p className={`verdict decision-${decision.decision}`}>
        <span className="verdict-word">{decisionText(decision.decision)}</span>
        <span>
          overall score <strong>{formatScore(decision.overall_weighted_confidence)}</strong>
          {decision.score_decision !== decision.decision &&
            ` (the score alone gives ${decisionText(decision.score_decision)})`}
        </span>
      </p>
      <p className="prose">{decision.rationale}</p>
      <div className="chart-wrap" tabIndex={0} role="group" aria-label="Score chart, scrolls sideways on narrow screens">
        <ScoreChart decision={decision} names={names} />
      </div>
      <details>
        <summary>Scores as a table</summary>
        <table>
          <caption className="visually-hidden">Each persona's score, weight and contribution</caption>
          <thead>
            <tr>
              <th scope="col">Persona</th>
              <th scope="col" className="num">Score</th>
              <th scope="col" className="num">Weight</th>
              <th scope="col" className="num">Contribution</th>
            </tr>
          </thead>
          <tbody>
            {Object.keys(b.individual_scores).map((id) => (
              <tr key={id}>
                <th scope="row">{names[id] ?? id}</th>
                <td className="num">{formatScore(b.individual_scores[id])}</td>
                <td className="num">{formatScore(b.weights[id])}</td>
                <td className="num">
                  {formatScore((b.weighted_contributions[id] ?? 0) / (b.weight_total || 1))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <p className="muted small">{b.formula}</p>
      </details>
      <h3>Rules that applied</h3>
      <ul>
        {decision.rules_applied.map((rule, index) => (
          <li key={index}>{rule}</li>
        ))}
      </ul>
      {decision.missing_personas.length > 0 && (
        <p className="note">
          No review from: {decision.missing_personas.map((id) => names[id] ?? id).join(", ")}.
        </p>
      )}
      <h3>Minority reports</h3>
      {decision.minority_reports.length === 0 ? (
        <p className="muted">Every persona agrees with this decision.</p>
      ) : (
        <ul className="minority">
          {decision.minority_reports.map((report) => (
            <li key={report.persona_id}>
              <strong>{report.persona_name}</strong> would {report.position} (score{" "}
              {formatScore(report.confidence_score)}). {report.blocking_summary}{" "}
              <em>Mitigation:</em> {report.mitigation_recommendation}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function UsageView({ usage }: { usage: Usage }) {
  return (
    <>
      <dl className="facts">
        <div>
          <dt>Tokens</dt>
          <dd>
            {formatTokens(usage.total_tokens)} ({formatTokens(usage.input_tokens)} in,{" "}
            {formatTokens(usage.output_tokens)} out)
          </dd>
        </div>
        <div>
          <dt>Estimated cost</dt>
          <dd>{formatCost(usage.cost_usd)}</dd>
        </div>
        <div>
          <dt>LLM calls</dt>
          <dd>{usage.llm_calls}</dd>
        </div>
      </dl>
      {usage.by_step.length > 0 && (
        <details>
          <summary>By step</summary>
          <table>
            <thead>
              <tr>
                <th scope="col">Step</th>
                <th scope="col" className="num">Calls</th>
                <th scope="col" className="num">Tokens in</th>
                <th scope="col" className="num">Tokens out</th>
                <th scope="col" className="num">Cost</th>
              </tr>
            </thead>
            <tbody>
              {usage.by_step.map((step) => (
                <tr key={step.step}>
                  <th scope="row">{step.step}</th>
                  <td className="num">{step.llm_calls}</td>
                  <td className="num">{formatTokens(step.input_tokens)}</td>
                  <td className="num">{formatTokens(step.output_tokens)}</td>
                  <td className="num">{formatCost(step.cost_usd)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </>
  );
}
