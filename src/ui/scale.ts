/// <reference lib="dom" />
/**
 * Number formatting and the diverging colour scale shared by the step cards, the chart and the
 * token view. Pure functions (no DOM access), so the colours a value gets are the same wherever
 * it is drawn.
 *
 * The palette follows ColorBrewer PuOr (orange = below the midpoint, purple = above), which stays
 * distinguishable under the common colour-vision deficiencies. The end colours are light enough
 * (the purple one lightened a little) that dark text on them keeps a contrast ratio of at least
 * 7:1 (test/ui/scale.test.ts), and the value is always printed as text beside the colour, so
 * colour is never the only cue.
 */

export interface Rgb {
  r: number;
  g: number;
  b: number;
}

const NEUTRAL: Rgb = { r: 0xf7, g: 0xf7, b: 0xf7 };
const LOW: Rgb = { r: 0xf1, g: 0xa3, b: 0x40 };
const HIGH: Rgb = { r: 0xa6, g: 0x9d, b: 0xcc };
/** Stronger shades of the same hues, for lines and edges drawn on a white background. */
export const LOW_STRONG = '#b35806';
export const HIGH_STRONG = '#542788';

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return { r: Math.round(a.r + (b.r - a.r) * t), g: Math.round(a.g + (b.g - a.g) * t), b: Math.round(a.b + (b.b - a.b) * t) };
}

export function rgbToCss({ r, g, b }: Rgb): string {
  return `rgb(${r}, ${g}, ${b})`;
}

/**
 * The colour of `value` on a scale centred at `midpoint` whose ends are ±`halfRange` away.
 * Values beyond the ends are clamped; a zero range (all values equal) maps everything to the
 * neutral colour.
 */
export function divergingColor(value: number, midpoint: number, halfRange: number): Rgb {
  if (!Number.isFinite(value) || !(halfRange > 0)) return NEUTRAL;
  const t = Math.max(-1, Math.min(1, (value - midpoint) / halfRange));
  return t < 0 ? mix(NEUTRAL, LOW, -t) : mix(NEUTRAL, HIGH, t);
}

/** Half-range for a set of values around a midpoint: the largest distance from it. */
export function halfRangeOf(values: readonly number[], midpoint: number): number {
  let widest = 0;
  for (const v of values) if (Number.isFinite(v)) widest = Math.max(widest, Math.abs(v - midpoint));
  return widest;
}

/**
 * A signed number with `digits` significant digits (4 by default: β can be 0.05, so advantages
 * are often small). Uses a true minus sign.
 */
export function formatNumber(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  const text = magnitude >= 10 ** digits ? magnitude.toFixed(0) : magnitude < 1e-4 ? magnitude.toExponential(digits - 1) : Number(magnitude.toPrecision(digits)).toString();
  return value > 0 ? `+${text}` : `−${text}`;
}

/**
 * Significant digits that tell the given values apart: confidence baselines of one trajectory
 * can agree in their first four digits, and printing them all alike would hide the differences.
 */
export function digitsToResolve(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite);
  if (finite.length < 2) return 4;
  const spread = Math.max(...finite) - Math.min(...finite);
  const largest = Math.max(...finite.map(Math.abs));
  if (!(spread > 0) || !(largest > 0)) return 4;
  return Math.max(4, Math.min(10, Math.ceil(Math.log10(largest / spread)) + 3));
}

/** "higher", "lower" or "equal" relative to the midpoint, for screen readers and the legend. */
export function directionWord(value: number, midpoint: number): string {
  if (!Number.isFinite(value) || value === midpoint) return 'neutral';
  return value > midpoint ? 'above' : 'below';
}
