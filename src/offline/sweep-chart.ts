/**
 * The α sweep's chart: a self-contained SVG (no scripts, fonts or links) of each progress-
 * advantage method's metric against α, with its bootstrap interval as a band, and the α-free
 * references (random pick, oracle) as dashed lines.
 */
export interface ChartSeries {
  name: string;
  points: { alpha: number; estimate: number; low: number; high: number }[];
}

export interface ChartInput {
  title: string;
  subtitle: string;
  yLabel: string;
  series: ChartSeries[];
  /** Horizontal reference lines that do not depend on α. */
  constants: { name: string; value: number }[];
  /** Level of the bootstrap intervals (0.95). */
  level: number;
}

const COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#999933'];

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (x: number) => (Math.round(x * 100) / 100).toString();

/** Tick step of about `count` ticks over [lo, hi]: 1, 2 or 5 × a power of ten. */
function tickStep(lo: number, hi: number, count: number): number {
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
}

export function sweepChart(input: ChartInput): string {
  const W = 760;
  const H = 440;
  const m = { left: 64, right: 190, top: 58, bottom: 52 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const finite = (x: number) => Number.isFinite(x);
  const values = [
    ...input.series.flatMap((s) => s.points.flatMap((p) => [p.estimate, p.low, p.high])),
    ...input.constants.map((c) => c.value),
  ].filter(finite);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi - lo < 1e-9) {
    lo -= 0.05;
    hi += 0.05;
  }
  const step = tickStep(lo, hi, 6);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const x = (alpha: number) => m.left + alpha * pw;
  const y = (v: number) => m.top + ((hi - v) / (hi - lo)) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="${escape(input.title)}">`);
  out.push(`<title>${escape(input.title)}</title>`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${m.left}" y="22" font-size="15" font-weight="bold" fill="#222">${escape(input.title)}</text>`);
  out.push(`<text x="${m.left}" y="40" fill="#555">${escape(input.subtitle)}</text>`);
  // Grid and axes.
  for (let v = lo, i = 0; v <= hi + step / 2 && i < 100; v += step, i++) {
    const yy = num(y(v));
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#333">${(Math.round(v / step) * step).toFixed(step < 0.01 ? 3 : 2)}</text>`);
  }
  for (let i = 0; i <= 10; i++) {
    const xx = num(x(i / 10));
    out.push(`<line x1="${xx}" x2="${xx}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#333"/>`);
    out.push(`<text x="${xx}" y="${m.top + ph + 18}" text-anchor="middle" fill="#333">${(i / 10).toFixed(1)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle" fill="#222">α (0 = the reference, 1 = the policy's weights for linear)</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${escape(input.yLabel)}</text>`);
  // α-free references.
  for (const c of input.constants) {
    if (!finite(c.value)) continue;
    const yy = num(y(c.value));
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${yy}" y2="${yy}" stroke="#777" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${m.left + pw - 4}" y="${num(y(c.value) - 5)}" text-anchor="end" fill="#555">${escape(c.name)} ${c.value.toFixed(3)}</text>`);
  }
  // Bands, then lines and points on top.
  input.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => finite(p.low) && finite(p.high));
    if (pts.length > 1) {
      const upper = pts.map((p) => `${num(x(p.alpha))},${num(y(p.high))}`);
      const lower = pts.map((p) => `${num(x(p.alpha))},${num(y(p.low))}`).reverse();
      out.push(`<polygon points="${[...upper, ...lower].join(' ')}" fill="${color}" fill-opacity="0.10" stroke="none"/>`);
    }
  });
  input.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => finite(p.estimate));
    out.push(`<polyline points="${pts.map((p) => `${num(x(p.alpha))},${num(y(p.estimate))}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) {
      out.push(`<circle cx="${num(x(p.alpha))}" cy="${num(y(p.estimate))}" r="3.5" fill="${p.alpha === 0 ? '#ffffff' : color}" stroke="${color}" stroke-width="1.5"><title>${escape(s.name)} α=${p.alpha}: ${p.estimate.toFixed(3)} [${p.low.toFixed(3)}, ${p.high.toFixed(3)}]</title></circle>`);
    }
    const ly = m.top + 8 + i * 20;
    out.push(`<line x1="${m.left + pw + 16}" x2="${m.left + pw + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${m.left + pw + 46}" y="${ly}" dominant-baseline="middle" fill="#222">${escape(s.name)}</text>`);
  });
  const noteY = m.top + 8 + input.series.length * 20 + 10;
  out.push(`<text x="${m.left + pw + 16}" y="${noteY}" fill="#555" font-size="11">bands: ${Math.round(input.level * 100)}% bootstrap CI</text>`);
  out.push(`<text x="${m.left + pw + 16}" y="${noteY + 15}" fill="#555" font-size="11">hollow point: α = 0 (plain reference)</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
