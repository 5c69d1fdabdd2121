/// <reference lib="dom" />
/**
 * A hand-drawn SVG line chart: one series of per-step values (points joined by a line) and,
 * optionally, their running sum (dashed), against the step position on x. The attributed step
 * is marked with a vertical band. The SVG scales with its container (viewBox), and carries a
 * text description for screen readers; each point has a <title> for hover.
 */
import { HIGH_STRONG, LOW_STRONG, formatNumber } from './scale.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

export interface ChartSeries {
  label: string;
  /** NaN where a step was not scored: no point there, and the line breaks. */
  values: number[];
}

export interface ChartSpec {
  /** x labels: the step's message index, shown under each point. */
  stepLabels: string[];
  primary: ChartSeries;
  cumulative?: ChartSeries;
  /** Position (index into the series) of the highlighted step, if any. */
  highlight?: number;
  highlightLabel?: string;
  /** Points below it are drawn orange, above it purple (0 for advantages, the mean for baselines). */
  midpoint?: number;
  /** Significant digits of the printed numbers (see digitsToResolve). */
  digits?: number;
}

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** About five round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

export function drawChart(container: HTMLElement, spec: ChartSpec): void {
  // Drawn at the container's own width (one SVG unit = one CSS pixel), so labels keep their
  // size on a phone instead of shrinking with a fixed viewBox; the page redraws on resize.
  const width = Math.max(300, Math.round(container.clientWidth || 720));
  const height = width < 560 ? 220 : 260;
  const digits = spec.digits ?? 4;
  const fmt = (v: number) => formatNumber(v, digits);
  const margin = { top: 16, right: 16, bottom: 40, left: 14 + 7.5 * (digits + 3) };
  const n = spec.primary.values.length;
  // Advantages are read against zero, so zero is always in view; baselines are not.
  const zero = (spec.midpoint ?? 0) === 0 ? [0] : [];
  const all = [...spec.primary.values, ...(spec.cumulative?.values ?? []), ...zero].filter(Number.isFinite);
  let lo = all.length ? Math.min(...all) : -1;
  let hi = all.length ? Math.max(...all) : 1;
  if (hi === lo) {
    const spread = Math.abs(hi) > 0 ? Math.abs(hi) * 0.1 : 1;
    lo -= spread;
    hi += spread;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const x = (i: number) => margin.left + (n <= 1 ? plotW / 2 : (i / (n - 1)) * plotW);
  const y = (v: number) => margin.top + ((hi - v) / (hi - lo)) * plotH;

  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': 'chart-title chart-desc', class: 'chart-svg' });
  svg.append(el('title', { id: 'chart-title' }, `${spec.primary.label} per step${spec.cumulative ? ` and ${spec.cumulative.label}` : ''}`));
  const scored = spec.primary.values.map((v, i) => ({ v, i })).filter(({ v }) => Number.isFinite(v));
  const unscored = n - scored.length;
  const lowest = scored.reduce((best, p) => (p.v < best.v ? p : best), scored[0] ?? { v: NaN, i: -1 }).i;
  const finiteValues = scored.map((p) => p.v);
  const description =
    `${n} steps` +
    (unscored ? `, ${unscored} not scored` : '') +
    '. ' +
    (scored.length
      ? `${spec.primary.label} ranges from ${fmt(Math.min(...finiteValues))} to ${fmt(Math.max(...finiteValues))}; the lowest is at step ${spec.stepLabels[lowest] ?? lowest}.`
      : 'No step was scored.') +
    (spec.cumulative && scored.length ? ` ${spec.cumulative.label} ends at ${fmt(spec.cumulative.values[n - 1])}.` : '') +
    (spec.highlight !== undefined ? ` Highlighted: step ${spec.stepLabels[spec.highlight]} (${spec.highlightLabel ?? ''}).` : '');
  svg.append(el('desc', { id: 'chart-desc' }, description));

  if (spec.highlight !== undefined && spec.highlight >= 0 && spec.highlight < n) {
    const bandW = n <= 1 ? plotW : Math.max(8, plotW / (n - 1) / 2);
    svg.append(el('rect', { class: 'chart-highlight', x: x(spec.highlight) - bandW / 2, y: margin.top, width: bandW, height: plotH }));
  }

  const axes = el('g', { class: 'chart-axes', 'aria-hidden': 'true' });
  for (const t of niceTicks(lo, hi)) {
    axes.append(el('line', { class: t === 0 ? 'chart-zero' : 'chart-grid', x1: margin.left, x2: width - margin.right, y1: y(t), y2: y(t) }));
    axes.append(el('text', { class: 'chart-tick', x: margin.left - 6, y: y(t) + 4, 'text-anchor': 'end' }, fmt(t)));
  }
  const labelEvery = Math.max(1, Math.ceil(n / Math.max(4, Math.floor(plotW / 36))));
  spec.stepLabels.forEach((label, i) => {
    if (i % labelEvery === 0 || i === n - 1) axes.append(el('text', { class: 'chart-tick', x: x(i), y: height - margin.bottom + 16, 'text-anchor': 'middle' }, label));
  });
  axes.append(el('text', { class: 'chart-axis-label', x: margin.left + plotW / 2, y: height - 6, 'text-anchor': 'middle' }, 'step (message index)'));
  svg.append(axes);

  // An unscored step breaks the line: the next scored one starts a new segment.
  const path = (values: number[]) =>
    values
      .map((v, i) => (Number.isFinite(v) ? `${i === 0 || !Number.isFinite(values[i - 1]) ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}` : ''))
      .filter(Boolean)
      .join(' ');
  if (spec.cumulative) {
    svg.append(el('path', { class: 'chart-line chart-cumulative', d: path(spec.cumulative.values), stroke: HIGH_STRONG }));
  }
  svg.append(el('path', { class: 'chart-line chart-primary', d: path(spec.primary.values), stroke: '#333' }));
  const points = el('g', { class: 'chart-points' });
  spec.primary.values.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    const dot = el('circle', { cx: x(i), cy: y(v), r: 4.5, fill: v < (spec.midpoint ?? 0) ? LOW_STRONG : HIGH_STRONG, class: 'chart-point', 'data-position': i });
    dot.append(el('title', {}, `step ${spec.stepLabels[i]}: ${spec.primary.label} ${fmt(v)}${spec.cumulative ? `, ${spec.cumulative.label} ${fmt(spec.cumulative.values[i])}` : ''}`));
    points.append(dot);
  });
  svg.append(points);
  container.replaceChildren(svg);
}
