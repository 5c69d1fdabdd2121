/**
 * The viewer's pure helpers (src/ui/scale.ts, niceTicks in src/ui/chart.ts), run in Node:
 * colours keep dark text readable (WCAG contrast computed here from the sRGB formula), the
 * scale is centred and clamped, numbers print with a true minus sign and enough digits to tell
 * a trajectory's values apart, and chart ticks are round and cover the range.
 */
import { describe, expect, it } from 'vitest';
import { niceTicks } from '../../src/ui/chart.js';
import { digitsToResolve, divergingColor, formatNumber, halfRangeOf, type Rgb } from '../../src/ui/scale.js';

function luminance({ r, g, b }: Rgb): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}
const contrast = (a: Rgb, b: Rgb) => {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
};
const TEXT: Rgb = { r: 0x11, g: 0x11, b: 0x11 };

describe('divergingColor', () => {
  it('keeps the page text (#111) at a contrast of at least 7:1 over the whole scale', () => {
    for (let t = -1; t <= 1; t += 0.05) expect(contrast(divergingColor(t, 0, 1), TEXT)).toBeGreaterThanOrEqual(7);
  });

  it('is neutral at the midpoint, symmetric in lightness, clamped beyond the ends', () => {
    expect(divergingColor(3, 3, 2)).toEqual(divergingColor(0, 0, 1));
    expect(divergingColor(10, 0, 1)).toEqual(divergingColor(1, 0, 1));
    expect(divergingColor(-10, 0, 1)).toEqual(divergingColor(-1, 0, 1));
    expect(divergingColor(-1, 0, 1)).not.toEqual(divergingColor(1, 0, 1));
    // Further from the midpoint is further from the neutral colour, on both sides.
    const neutral = luminance(divergingColor(0, 0, 1));
    expect(neutral - luminance(divergingColor(-0.5, 0, 1))).toBeLessThan(neutral - luminance(divergingColor(-1, 0, 1)));
    expect(neutral - luminance(divergingColor(0.5, 0, 1))).toBeLessThan(neutral - luminance(divergingColor(1, 0, 1)));
  });

  it('maps everything to neutral when all values are equal (zero range) or a value is not finite', () => {
    expect(divergingColor(5, 0, 0)).toEqual(divergingColor(0, 0, 1));
    expect(divergingColor(Number.NaN, 0, 1)).toEqual(divergingColor(0, 0, 1));
    expect(halfRangeOf([1, -3, 2, Number.NaN], 0)).toBe(3);
  });
});

describe('formatNumber', () => {
  it('signs, true minus, four significant digits by default', () => {
    expect(formatNumber(0.012345)).toBe('+0.01235');
    expect(formatNumber(-0.8044)).toBe('−0.8044');
    expect(formatNumber(-2.2594)).toBe('−2.259');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(-2.86e-6)).toBe('−2.860e-6');
    expect(formatNumber(Number.NaN)).toBe('—');
    expect(formatNumber(undefined)).toBe('—');
  });

  it('digitsToResolve prints values that agree in their first digits as different strings', () => {
    const values = [0.00329344, 0.00329312, 0.00329377, 0.00329301];
    expect(new Set(values.map((v) => formatNumber(v))).size).toBeLessThan(values.length);
    const digits = digitsToResolve(values);
    expect(new Set(values.map((v) => formatNumber(v, digits))).size).toBe(values.length);
    expect(digitsToResolve([1, 2])).toBe(4);
    expect(digitsToResolve([5])).toBe(4);
  });
});

describe('niceTicks', () => {
  it('round steps (1, 2 or 5 × 10^k) inside the range, covering most of it', () => {
    for (const [lo, hi] of [[-0.05, 0.06], [0.003276, 0.003294], [-12, 3], [0, 1]]) {
      const ticks = niceTicks(lo, hi);
      expect(ticks.length).toBeGreaterThanOrEqual(2);
      for (const t of ticks) {
        expect(t).toBeGreaterThanOrEqual(lo - 1e-12);
        expect(t).toBeLessThanOrEqual(hi + 1e-12);
      }
      const step = ticks[1] - ticks[0];
      const mantissa = step / 10 ** Math.floor(Math.log10(step));
      expect([1, 2, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-6)).toBe(true);
      expect(ticks[ticks.length - 1] - ticks[0]).toBeGreaterThanOrEqual((hi - lo) / 2);
    }
    expect(niceTicks(-0.05, 0.06)).toContain(0);
  });
});
