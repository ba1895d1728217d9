// Every persona's score (bar length), weight (bar thickness) and contribution, with the
// overall score stacked from the contributions, against the revise and approve thresholds.

import type { Decision } from "../api/types";
import { chartGeometry, chartSummary, scoreX } from "../lib/chart";

const TICKS = [0, 0.25, 0.5, 0.75, 1];

export function ScoreChart({ decision, names }: { decision: Decision; names: Record<string, string> }) {
  const g = chartGeometry(decision, names);
  const rowMid = (y: number) => y + 17;
  return (
    <svg
      className="score-chart"
      role="img"
      aria-label={chartSummary(g, decision)}
      viewBox={`0 0 ${g.width} ${g.height}`}
      preserveAspectRatio="xMinYMin meet"
    >
      {TICKS.map((tick) => (
        <g key={tick}>
          <line
            className="chart-grid"
            x1={scoreX(tick)}
            x2={scoreX(tick)}
            y1={16}
            y2={g.height - 20}
          />
          <text className="chart-tick" x={scoreX(tick)} y={g.height - 6} textAnchor="middle">
            {tick.toFixed(2)}
          </text>
        </g>
      ))}
      {g.rows.map((row, index) => (
        <g key={row.id}>
          <text className="chart-label" x={g.left - 8} y={rowMid(row.y) + 4} textAnchor="end">
            {row.name}
          </text>
          <rect
            className={`chart-bar series-${index % 6}`}
            x={g.left}
            y={rowMid(row.y) - row.barHeight / 2}
            width={Math.max(1, row.barWidth)}
            height={row.barHeight}
            rx={2}
          />
          <text className="chart-value" x={g.left + g.span + 12} y={rowMid(row.y) + 4}>
            {row.score.toFixed(2)} · w {row.weight.toFixed(2)} · +{row.share.toFixed(2)}
          </text>
        </g>
      ))}
      <text className="chart-label chart-strong" x={g.left - 8} y={rowMid(g.overall.y) + 4} textAnchor="end">
        Overall
      </text>
      {g.overall.segments.map((segment, index) => (
        <rect
          key={segment.id}
          className={`chart-bar series-${index % 6}`}
          x={segment.x}
          y={rowMid(g.overall.y) - g.overall.barHeight / 2}
          width={segment.width}
          height={g.overall.barHeight}
        />
      ))}
      <text
        className="chart-value chart-strong"
        x={g.left + g.span + 12}
        y={rowMid(g.overall.y) + 4}
      >
        {g.overall.score.toFixed(2)}
      </text>
      <line className="chart-threshold revise" x1={g.reviseX} x2={g.reviseX} y1={4} y2={g.height - 20} />
      <text className="chart-threshold-label" x={g.reviseX} y={12} textAnchor="end">
        revise ≥ {decision.revise_threshold.toFixed(2)}
      </text>
      <line className="chart-threshold approve" x1={g.approveX} x2={g.approveX} y1={4} y2={g.height - 20} />
      <text className="chart-threshold-label" x={g.approveX + 4} y={12}>
        approve ≥ {decision.approve_threshold.toFixed(2)}
      </text>
    </svg>
  );
}
