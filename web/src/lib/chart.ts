// Geometry of the decision's score chart: one row per persona (score bar, weight, and
// contribution), an overall row stacking the contributions, and the two thresholds.

import type { Decision } from "../api/types";

export interface ChartLayout {
  width: number;
  /** x where score 0 sits, and the pixels score 1 spans. */
  left: number;
  span: number;
  rowHeight: number;
  top: number;
}

export const DEFAULT_LAYOUT: ChartLayout = {
  width: 760,
  left: 150,
  span: 420,
  rowHeight: 34,
  top: 24,
};

export interface PersonaBar {
  id: string;
  name: string;
  score: number;
  weight: number;
  /** weight × score / total weight: this persona's share of the overall score. */
  share: number;
  y: number;
  barWidth: number;
  /** Bar height grows with the persona's relative weight (heaviest = full row). */
  barHeight: number;
}

export interface Segment {
  id: string;
  x: number;
  width: number;
}

export interface ChartGeometry {
  width: number;
  height: number;
  left: number;
  span: number;
  rows: PersonaBar[];
  overall: { score: number; y: number; barHeight: number; segments: Segment[] };
  approveX: number;
  reviseX: number;
}

const clamp01 = (value: number) => Math.min(1, Math.max(0, value));

export function scoreX(score: number, layout: ChartLayout = DEFAULT_LAYOUT): number {
  return layout.left + clamp01(score) * layout.span;
}

export function chartGeometry(
  decision: Decision,
  names: Record<string, string>,
  layout: ChartLayout = DEFAULT_LAYOUT,
): ChartGeometry {
  const breakdown = decision.score_breakdown;
  const ids = Object.keys(breakdown.individual_scores);
  const total = breakdown.weight_total > 0 ? breakdown.weight_total : 1;
  const heaviest = Math.max(0, ...ids.map((id) => breakdown.weights[id] ?? 0)) || 1;
  const inner = layout.rowHeight - 10;

  const rows: PersonaBar[] = ids.map((id, index) => {
    const score = clamp01(breakdown.individual_scores[id] ?? 0);
    const weight = breakdown.weights[id] ?? 0;
    const contribution = breakdown.weighted_contributions[id] ?? weight * score;
    return {
      id,
      name: names[id] ?? id,
      score,
      weight,
      share: contribution / total,
      y: layout.top + index * layout.rowHeight,
      barWidth: score * layout.span,
      barHeight: Math.max(4, (inner * weight) / heaviest),
    };
  });

  let x = layout.left;
  const segments = rows.map((row) => {
    const width = clamp01(row.share) * layout.span;
    const segment = { id: row.id, x, width };
    x += width;
    return segment;
  });

  const overallY = layout.top + rows.length * layout.rowHeight + 8;
  return {
    width: layout.width,
    height: overallY + layout.rowHeight + 24,
    left: layout.left,
    span: layout.span,
    rows,
    overall: {
      score: clamp01(decision.overall_weighted_confidence),
      y: overallY,
      barHeight: inner,
      segments,
    },
    approveX: scoreX(decision.approve_threshold, layout),
    reviseX: scoreX(decision.revise_threshold, layout),
  };
}

/** The chart in words, for its aria-label ("Score chart: …"). */
export function chartSummary(geometry: ChartGeometry, decision: Decision): string {
  const parts = geometry.rows.map(
    (row) =>
      `${row.name} ${row.score.toFixed(2)} (weight ${row.weight.toFixed(2)}, contributes ${row.share.toFixed(2)})`,
  );
  return (
    `Score chart: overall ${decision.overall_weighted_confidence.toFixed(2)} against approve ` +
    `${decision.approve_threshold.toFixed(2)} and revise ${decision.revise_threshold.toFixed(2)}` +
    (parts.length ? `; ${parts.join("; ")}` : "")
  );
}
