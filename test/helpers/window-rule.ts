/**
 * The window rule of issue 13, written from its text by search and independent of
 * src/pipeline/windows.ts: token t of a sequence whose first p tokens (the BOS) lead every window of
 * L tokens is scored in the window starting at p + w·⌈L/2⌉, the first that holds t and gives it
 * ⌊L/2⌋ preceding tokens, or all of them.
 */
export function windowStart(t: number, L: number, p: number): number {
  for (let a = p; a <= t; a += Math.ceil(L / 2)) {
    if (t >= a + L - p) continue;
    const seen = p + (t - a);
    if (seen >= Math.floor(L / 2) || seen === t) return a;
  }
  throw new Error(`no window for token ${t}`);
}
