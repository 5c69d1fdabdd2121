/// <reference lib="dom" />
/**
 * Token heat view of one step: each token is a span coloured by its log-ratio
 * log π(y_k) − log π_ref(y_k) on the diverging scale (centred at 0, ends at the step's largest
 * |log-ratio|). Hovering or focusing a token shows its numbers in the detail line.
 *
 * Keyboard: the token strip is one tab stop (roving tabindex); ←/→ move between tokens,
 * Home/End jump to the ends. A step can have thousands of tokens, and one tab stop per token
 * would make the rest of the page unreachable by keyboard.
 */
import type { StepResult, TokenScore } from './api.js';
import { divergingColor, formatNumber, halfRangeOf, rgbToCss } from './scale.js';

/** Makes whitespace and control characters visible inside a token without changing its width much. */
export function visibleTokenText(text: string): string {
  if (text.length === 0) return '∅';
  return text.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '·');
}

function describeToken(token: TokenScore, k: number, total: number): string {
  return (
    `token ${k + 1} of ${total}: ${JSON.stringify(token.text)} (id ${token.id}), ` +
    `log-ratio ${formatNumber(token.log_ratio)}, policy log-prob ${formatNumber(token.policy_logprob)}, reference log-prob ${formatNumber(token.reference_logprob)}`
  );
}

export function renderTokens(strip: HTMLElement, detail: HTMLElement, step: StepResult): void {
  const tokens = step.tokens ?? [];
  if (tokens.length === 0) {
    strip.replaceChildren(document.createTextNode(step.truncated ? 'This step fell off the left edge of the context: it has no scored tokens.' : 'This step has no tokens.'));
    strip.removeAttribute('tabindex');
    detail.textContent = '';
    return;
  }
  const halfRange = halfRangeOf(tokens.map((t) => t.log_ratio), 0);
  const spans = tokens.map((token, k) => {
    const span = document.createElement('span');
    span.className = 'token';
    span.textContent = visibleTokenText(token.text);
    span.style.backgroundColor = rgbToCss(divergingColor(token.log_ratio, 0, halfRange));
    span.tabIndex = k === 0 ? 0 : -1;
    span.dataset.position = String(k);
    span.dataset.logRatio = String(token.log_ratio);
    span.setAttribute('role', 'listitem');
    span.setAttribute('aria-label', describeToken(token, k, tokens.length));
    return span;
  });
  // A token holding a newline ends its line, as it would in the text; the break is layout only.
  const children = spans.flatMap((span, k) => {
    if (!tokens[k].text.includes('\n')) return [span];
    const lineBreak = document.createElement('span');
    lineBreak.className = 'token-break';
    lineBreak.setAttribute('aria-hidden', 'true');
    return [span, lineBreak];
  });
  const show = (k: number) => {
    const t = tokens[k];
    detail.textContent =
      `Token ${k + 1}/${tokens.length} ${JSON.stringify(t.text)} (id ${t.id}): log-ratio ${formatNumber(t.log_ratio)} ` +
      `= policy ${formatNumber(t.policy_logprob)} − reference ${formatNumber(t.reference_logprob)}`;
    detail.dataset.position = String(k);
    detail.dataset.logRatio = String(t.log_ratio);
  };
  const focusToken = (k: number) => {
    for (const s of spans) s.tabIndex = -1;
    spans[k].tabIndex = 0;
    spans[k].focus();
  };
  spans.forEach((span, k) => {
    span.addEventListener('focus', () => show(k));
    span.addEventListener('keydown', (event) => {
      const target = { ArrowRight: k + 1, ArrowDown: k + 1, ArrowLeft: k - 1, ArrowUp: k - 1, Home: 0, End: tokens.length - 1 }[event.key];
      if (target === undefined) return;
      event.preventDefault();
      focusToken(Math.max(0, Math.min(tokens.length - 1, target)));
    });
  });
  // Hover by pointer movement only: when keyboard navigation scrolls the strip, the browser
  // reports the token that slid under a resting pointer as hovered; that must not override the
  // token the keyboard chose. A move with unchanged coordinates is such a scroll-made event.
  let lastPointer = '';
  strip.onpointermove = (event) => {
    const where = `${event.clientX},${event.clientY}`;
    if (where === lastPointer) return;
    lastPointer = where;
    const k = Number((event.target as HTMLElement).dataset?.position);
    if (Number.isInteger(k) && k >= 0 && k < tokens.length) show(k);
  };
  strip.replaceChildren(...children);
  detail.textContent = `${tokens.length} tokens; hover or focus a token (←/→ move) to read its log-ratio.`;
  delete detail.dataset.position;
}
