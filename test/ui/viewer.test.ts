/**
 * End-to-end: the trajectory viewer in real Chromium (Debian `chromium`, driven by
 * playwright-core) against a server listening on loopback, with two scorers: the embedded
 * gridworld pair (`default`) and, for the English Who&When example, the real tiny Llama export
 * as reference with a perturbed copy of it as policy (`tiny-llama`, its own 32k tokenizer).
 * The gridworld tokenizer's 48 words would turn that text into <unk> and its 384 positions
 * would truncate most of it.
 *
 * What the page shows is compared with the API's own answers fetched here independently:
 * the highlighted step with /v1/attribute (and with the argmin the test computes from
 * /v1/trajectories/score), the card values with the step advantages and baselines, the token
 * view's numbers with the returned per-token log-ratios, the error text with the API's error.
 *
 * Without /usr/bin/chromium the file is skipped with a message, except under CI=true, where it
 * must run (.ci/run installs chromium).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, PACKAGE_ROOT, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { perturbModel } from '../helpers/onnx-fixtures.js';
import { needShared, sharedPath } from '../helpers/shared.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
const LLAMA = sharedPath('models', 'tiny-random-LlamaForCausalLM-fp16');
const TAU_BENCH_FILE = sharedPath('data', 'tau-bench', 'gpt-4o-airline.trial0.tasks0-19.json');
const HAVE_SHARED = needShared(import.meta.url, [LLAMA, TAU_BENCH_FILE]);
const RUN = (HAVE_CHROMIUM || IN_CI) && HAVE_SHARED;
if (!RUN && HAVE_SHARED) {
  console.warn(`test/ui/viewer.test.ts: skipped, ${CHROMIUM} is missing (apt-get install -y chromium). Under CI=true this file runs and fails instead.`);
}

const EXAMPLES = path.join(PACKAGE_ROOT, 'src', 'ui', 'examples');
const OUTPUT = path.join(PACKAGE_ROOT, 'test-output');
const WHO_AND_WHEN = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'who-and-when-algorithm-generated-34.json'), 'utf8'));
const GRIDWORLD_FAILED = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'gridworld-map002-ep7.json'), 'utf8'));
const EXACT_INDEX = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'index.json'), 'utf8')).find((e: any) => e.model === 'exact');

let app: App;
let pool: ScorerPool;
let browser: Browser;
let base: string;
let tmp: string;

async function api(route: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const argmin = (values: number[]) => values.reduce((best, v, i) => (v < values[best] ? i : best), 0);

/** A page with uncaught script errors collected; the test fails if any occur. */
async function openViewer(viewport = { width: 1280, height: 900 }): Promise<{ page: Page; pageErrors: string[] }> {
  const page = await browser.newPage({ viewport });
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${base}/ui`);
  // The scorer list and the examples arrive from the service after the page loads.
  await page.locator('#model-select option[value="tiny-llama"]').waitFor({ state: 'attached' });
  await page.locator('#example-select option[value="who-and-when-ag-34"]').waitFor({ state: 'attached' });
  return { page, pageErrors };
}

async function pickExampleAndScore(page: Page, example: string, model: string): Promise<void> {
  await page.selectOption('#example-select', example);
  await expect.poll(() => page.locator('#status').textContent()).toContain('Loaded example');
  await page.selectOption('#model-select', model);
  await page.click('#score-button');
  await page.locator('#results').waitFor({ state: 'visible' });
  await page.locator('.step-card.attributed').waitFor();
}

const cardValues = (page: Page) => page.locator('.step-card').evaluateAll((cards) => cards.map((c) => Number((c as HTMLElement).dataset.value)));

describe.skipIf(!RUN)('trajectory viewer in Chromium', () => {
  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true but ${CHROMIUM} is missing: .ci/run must install chromium (apt-get install -y chromium)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-viewer-'));
    const policy = path.join(tmp, 'tiny-llama-policy');
    perturbModel(LLAMA, policy, { scale: 0.3, seed: 23 });
    const config = validateConfig({
      ...defaultConfig(),
      threads: 1,
      log_level: 'silent',
      // The page's values are compared bit for bit with a second API call of the same body. With
      // the prefix cache that call reads the first one's blocks, and the fp16 Llama's rounding then
      // moves a value by ~1e-4 (README, prefix KV cache); this test is about the page, not the cache.
      prefix_cache_mb: 0,
      scorers: [
        ...defaultConfig().scorers,
        { name: 'tiny-llama', policy, reference: LLAMA, tokenizer: LLAMA },
      ],
    });
    const metrics = new Metrics({ defaultMetrics: false });
    pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
    app = buildApp(config, pool, { metrics });
    await pool.load();
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
    fs.mkdirSync(OUTPUT, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await pool?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('Who&When: highlights /v1/attribute’s step, switches to a baseline, opens the token view', { timeout: 180_000 }, async () => {
    const { page, pageErrors } = await openViewer();
    await pickExampleAndScore(page, 'who-and-when-ag-34', 'tiny-llama');

    const request = { format: 'who_and_when', data: WHO_AND_WHEN, model: 'tiny-llama' };
    const attribution = await api('/v1/attribute', request);
    const scored = await api('/v1/trajectories/score', { ...request, baselines: true, return_tokens: true });
    expect(attribution.status).toBe(200);
    expect(scored.status).toBe(200);
    const steps = scored.body.steps as any[];
    // Not a degenerate case: the perturbed policy gives every scored step a non-zero advantage.
    expect(steps.length).toBeGreaterThan(3);
    expect(steps.every((s) => s.truncated || s.advantage !== 0)).toBe(true);

    // The highlighted step is /v1/attribute's answer, which is the argmin of the running sum.
    const highlighted = page.locator('.step-card.attributed');
    await expect.poll(() => highlighted.count()).toBe(1);
    expect(Number(await highlighted.getAttribute('data-index'))).toBe(attribution.body.step);
    expect(Number(await highlighted.getAttribute('data-position'))).toBe(attribution.body.position);
    expect(attribution.body.step).toBe(steps[argmin(steps.map((s) => s.cumulative))].index);
    expect(await highlighted.textContent()).toContain(attribution.body.agent);
    expect(await page.locator('#attribution-summary').getAttribute('data-agent')).toBe(attribution.body.agent);
    // Each card shows its step's advantage, in order, and the chart has one point per step.
    expect(await cardValues(page)).toEqual(steps.map((s) => s.advantage));
    expect(await page.locator('#steps .step-card').evaluateAll((cards) => cards.map((c) => Number((c as HTMLElement).dataset.index)))).toEqual(steps.map((s) => s.index));
    expect(await page.locator('.chart-point').count()).toBe(steps.length);
    // The data set's own label is shown beside it.
    expect(await page.locator('#summary').textContent()).toContain(`labelled mistake at message ${scored.body.labels.mistake_step}`);

    // Another method: the page asks again and moves the highlight to the lowest single step.
    await page.selectOption('#method-select', 'sharpest_drop');
    const bySharpestDrop = await api('/v1/attribute', { ...request, method: 'sharpest_drop' });
    expect(bySharpestDrop.body.step).toBe(steps[argmin(steps.map((s) => s.advantage))].index);
    await expect.poll(() => page.locator('.step-card.attributed').getAttribute('data-index')).toBe(String(bySharpestDrop.body.step));
    expect(await page.locator('.step-card.attributed .attributed-badge').textContent()).toContain('sharpest_drop');

    // The baseline switch: the cards now carry the policy's DeepConf confidence per step.
    await page.check('#baseline-switch');
    await page.selectOption('#baseline-select', 'deepconf');
    await expect.poll(() => cardValues(page)).toEqual(steps.map((s) => s.baselines.deepconf));
    expect(await page.locator('#chart-caption').textContent()).toContain('DeepConf');
    expect(await page.locator('.chart-cumulative').count()).toBe(0);
    await page.selectOption('#baseline-select', 'self_certainty');
    await expect.poll(() => cardValues(page)).toEqual(steps.map((s) => s.baselines.self_certainty));

    // Token view of the highlighted step, driven by the keyboard.
    const position = Number(await page.locator('.step-card.attributed').getAttribute('data-position'));
    const step = steps[position];
    await page.locator('.step-card.attributed .tokens-button').click();
    await page.locator('#token-view').waitFor({ state: 'visible' });
    expect(await page.locator('#token-view').getAttribute('data-index')).toBe(String(step.index));
    expect(await page.locator('#token-strip .token').count()).toBe(step.num_tokens);
    expect(step.tokens.length).toBe(step.num_tokens);
    await page.keyboard.press('Tab'); // the strip is one tab stop: its first token
    await expect.poll(() => page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.position)).toBe('0');
    expect(Number(await page.locator('#token-detail').getAttribute('data-log-ratio'))).toBe(step.tokens[0].log_ratio);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    expect(await page.locator('#token-detail').getAttribute('data-position')).toBe('2');
    expect(Number(await page.locator('#token-detail').getAttribute('data-log-ratio'))).toBe(step.tokens[2].log_ratio);
    await page.keyboard.press('End');
    expect(Number(await page.locator('#token-detail').getAttribute('data-position'))).toBe(step.num_tokens - 1);
    // Hover works as well as focus.
    await page.locator('#token-strip .token').nth(1).hover();
    expect(Number(await page.locator('#token-detail').getAttribute('data-log-ratio'))).toBe(step.tokens[1].log_ratio);
    expect(await page.locator('#token-detail').textContent()).toContain('log-ratio');

    await page.screenshot({ path: path.join(OUTPUT, 'viewer-who-and-when.png'), fullPage: true });
    // Escape closes the view and gives focus back to the button that opened it.
    await page.locator('#token-strip .token').nth(1).focus();
    await page.keyboard.press('Escape');
    await page.locator('#token-view').waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => document.activeElement?.classList.contains('tokens-button'))).toBe(true);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('shows API errors in words, with the error code the API answers', { timeout: 120_000 }, async () => {
    const { page, pageErrors } = await openViewer();
    const broken = { history: 'not a list', question: 'q' };
    await page.selectOption('#format-select', 'who_and_when');
    await page.fill('#trajectory-input', JSON.stringify(broken));
    await page.click('#score-button');
    await page.locator('#error').waitFor({ state: 'visible' });
    const direct = await api('/v1/trajectories/score', { format: 'who_and_when', data: broken });
    expect(direct.status).toBeGreaterThanOrEqual(400);
    expect(direct.status).toBeLessThan(500);
    const shown = await page.locator('#error').textContent();
    expect(await page.locator('#error .error-code').textContent()).toBe(direct.body.error.code);
    expect(shown).toContain(direct.body.error.message);
    expect(shown).toContain(`HTTP ${direct.status}`);
    expect(await page.locator('#error').getAttribute('role')).toBe('alert');

    // Text that is not JSON never reaches the API; the page says why.
    await page.fill('#trajectory-input', '{"messages": [');
    await page.click('#score-button');
    await expect.poll(() => page.locator('#error .error-code').textContent()).toBe('invalid_json');
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('τ-bench: an uploaded file of twenty runs offers a record picker; the picked run is scored in windows, then cut from the left', { timeout: 400_000 }, async () => {
    const { page, pageErrors } = await openViewer();
    const runs = JSON.parse(fs.readFileSync(TAU_BENCH_FILE, 'utf8')) as any[];
    await page.setInputFiles('#file-input', TAU_BENCH_FILE);
    await page.locator('#record-label').waitFor({ state: 'visible' });
    expect(await page.locator('#record-select option').count()).toBe(runs.length);
    expect(await page.inputValue('#format-select')).toBe('tau_bench');
    await page.selectOption('#record-select', '3');
    await page.selectOption('#model-select', 'tiny-llama');
    await page.click('#score-button');
    // Run 3 is scored in several windows, twice (scores and attribution): allow a busy machine time.
    await page.locator('.step-card.attributed').waitFor({ timeout: 120_000 });
    const scored = await api('/v1/trajectories/score', { format: 'tau_bench', data: runs[3], model: 'tiny-llama' });
    const attribution = await api('/v1/attribute', { format: 'tau_bench', data: runs[3], model: 'tiny-llama' });
    expect(scored.status).toBe(200);
    expect(await cardValues(page)).toEqual(scored.body.steps.map((s: any) => s.advantage));
    expect(await page.locator('.step-card.attributed').getAttribute('data-index')).toBe(String(attribution.body.step));
    // Run 3 (62 messages) is longer than the tiny Llama's 2048 positions. In windows (the default)
    // every step is scored; those whose tokens saw less than all before them say so.
    expect(scored.body.windows).toBeGreaterThan(1);
    const cut = scored.body.steps.filter((s: any) => s.context_truncated).length;
    expect(cut).toBeGreaterThan(0);
    expect(await page.locator('.step-card .truncated-badge').count()).toBe(0);
    expect(await page.locator('.step-card .context-badge').count()).toBe(cut);

    // Cut from the left instead: early steps fall off, are shown "not scored" and draw no number.
    await page.selectOption('#long-context-select', 'truncate');
    await page.click('#score-button');
    await page.locator('.step-card .truncated-badge').first().waitFor({ timeout: 120_000 });
    const truncatedScore = await api('/v1/trajectories/score', { format: 'tau_bench', data: runs[3], model: 'tiny-llama', long_context: 'truncate' });
    const unscored = truncatedScore.body.steps.filter((s: any) => s.advantage === null).length;
    expect(unscored).toBeGreaterThan(0);
    expect(unscored).toBeLessThan(truncatedScore.body.steps.length);
    expect(await page.locator('.step-card .truncated-badge').count()).toBe(unscored);
    expect(await page.locator('.step-card.not-scored').count()).toBe(unscored);
    const shown = await cardValues(page);
    truncatedScore.body.steps.forEach((s: any, i: number) => (s.advantage === null ? expect(shown[i]).toBeNaN() : expect(shown[i]).toBe(s.advantage)));
    expect(await page.locator('.step-card.not-scored .step-value').first().textContent()).toBe('advantage: not scored');
    // The chart draws a point for each scored step only.
    expect(await page.locator('.chart-point').count()).toBe(truncatedScore.body.steps.length - unscored);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('gridworld on a phone-sized screen: no sideways scrolling, every control named, the failed episode attributed', { timeout: 120_000 }, async () => {
    const { page, pageErrors } = await openViewer({ width: 390, height: 844 });
    await pickExampleAndScore(page, 'gridworld-map002-ep7', 'default');
    const attribution = await api('/v1/attribute', { format: 'messages', data: GRIDWORLD_FAILED });
    expect(await page.locator('.step-card.attributed').getAttribute('data-index')).toBe(String(attribution.body.step));
    expect(await page.locator('.step-card').count()).toBe(GRIDWORLD_FAILED.n_actions);
    expect(await page.locator('#summary').textContent()).toContain('the run failed');

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    // Every form control has an accessible name (a <label>, aria-label or its own text).
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLElement>('button, select, input, textarea')]
        .filter((el) => {
          const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
          return !labelled && !(el.textContent ?? '').trim();
        })
        .map((el) => el.outerHTML.slice(0, 80)),
    );
    expect(unnamed).toEqual([]);
    // Tab order reaches the score button from the text box, and Enter on it scores.
    await page.focus('#trajectory-input');
    await page.keyboard.press('Tab'); // the file input
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('score-button');
    await page.screenshot({ path: path.join(OUTPUT, 'viewer-phone-gridworld.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('exact pair: its example picks the `exact` scorer and each card shows the record’s true A* beside the served advantage', { timeout: 120_000 }, async () => {
    expect(EXACT_INDEX, 'src/ui/examples/index.json lists an example for the exact pair').toBeDefined();
    const record = JSON.parse(fs.readFileSync(path.join(EXAMPLES, EXACT_INDEX.file), 'utf8'));
    const { page, pageErrors } = await openViewer();
    await page.selectOption('#example-select', EXACT_INDEX.id);
    await expect.poll(() => page.locator('#status').textContent()).toContain('Loaded example');
    expect(await page.locator('#model-select').inputValue()).toBe('exact');
    await page.click('#score-button');
    await page.locator('#results').waitFor({ state: 'visible' });
    await page.locator('.step-card.attributed').waitFor();
    const scored = await api('/v1/trajectories/score', { format: 'messages', data: record, model: 'exact' });
    expect(scored.status).toBe(200);
    expect(await cardValues(page)).toEqual(scored.body.steps.map((s: any) => s.advantage));
    const shown = await page.locator('.step-card .step-true-advantage').evaluateAll((spans) => spans.map((s) => Number((s as HTMLElement).dataset.value)));
    expect(shown).toEqual(record.a_star);
    expect(await page.locator('.step-card').first().textContent()).toContain('true A*');
    expect(await page.locator('#summary').textContent()).toContain('true optimal advantage A*');
    // A record without a_star (the default pair's episodes) shows none.
    await pickExampleAndScore(page, 'gridworld-map002-ep7', 'default');
    await expect.poll(() => page.locator('.step-true-advantage').count()).toBe(0);
    expect(await page.locator('.step-card').count()).toBe(GRIDWORLD_FAILED.n_actions);
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
