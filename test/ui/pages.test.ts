/**
 * The service's own pages in real Chromium (Debian `chromium`, driven by playwright-core) on the
 * embedded default pair, no ../shared needed:
 *  - /docs and /ui raise no Content-Security-Policy violation (each page's own policy) and
 *    request nothing that answers 4xx/5xx (the favicon included);
 *  - English text on the gridworld pair: the viewer shows the API's unknown-word warning, with
 *    the count /v1/trajectories/score reports in usage.unknown_tokens.
 * Without /usr/bin/chromium the file is skipped with a message, except under CI=true.
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { inCi } from '../helpers/shared.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
const RUN = HAVE_CHROMIUM || inCi();
if (!RUN) console.warn(`test/ui/pages.test.ts: skipped, ${CHROMIUM} is missing (apt-get install -y chromium). Under CI=true it fails instead.`);

let service: DefaultPairApp;
let browser: Browser;
let base: string;

/** Opens `url`, collecting CSP violations, failed requests and page errors until the network is idle. */
async function visit(url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`);
  });
  await page.addInitScript(() =>
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`)),
  );
  await page.goto(base + url, { waitUntil: 'networkidle' });
  return { page, problems };
}

describe.skipIf(!RUN)('the service pages in Chromium', () => {
  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true but ${CHROMIUM} is missing: .ci/run must install chromium`);
    service = await defaultPairApp();
    await service.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(service.app.server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
  });
  afterAll(async () => {
    await browser?.close();
    await service?.close();
  });

  it('/docs renders the contract with no CSP violation and no failed request', { timeout: 120_000 }, async () => {
    const { page, problems } = await visit('/docs');
    await page.locator('.swagger-ui .opblock').first().waitFor();
    expect(problems).toEqual([]);
    await page.close();
  });

  it('/ui loads with no CSP violation and no failed request; its icon is served', { timeout: 120_000 }, async () => {
    const { page, problems } = await visit('/ui/');
    expect(problems).toEqual([]);
    const icon = await page.locator('link[rel="icon"]').getAttribute('href');
    const res = await fetch(new URL(icon!, `${base}/ui/`));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/svg+xml');
    await page.close();
  });

  it('English text on the gridworld pair: the viewer shows the unknown-word warning with the API count', { timeout: 120_000 }, async () => {
    const trajectory = {
      messages: [
        { role: 'user', content: 'Please book a flight to Paris for tomorrow morning' },
        { role: 'assistant', content: 'Sure, I booked it' },
      ],
    };
    const direct = await fetch(`${base}/v1/trajectories/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(trajectory) });
    const body = await direct.json();
    expect(direct.status).toBe(200);
    expect(body.usage.unknown_tokens).toBeGreaterThan(0);
    expect(body.warnings).toHaveLength(1);

    const { page, problems } = await visit('/ui/');
    await page.selectOption('#format-select', 'messages');
    await page.fill('#trajectory-input', JSON.stringify(trajectory));
    await page.click('#score-button');
    await page.locator('#results').waitFor({ state: 'visible' });
    const warning = page.locator('#summary .warning');
    await warning.waitFor();
    expect(await warning.textContent()).toBe(`Warning: ${body.warnings[0]}`);
    expect(await warning.getAttribute('data-unknown-tokens')).toBe(String(body.usage.unknown_tokens));
    expect(problems).toEqual([]);
    await page.close();
  });
});
