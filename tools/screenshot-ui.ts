/**
 * Regenerates docs/viewer.png, the README's picture of the trajectory viewer:
 *
 *     npx tsx tools/screenshot-ui.ts [--out docs/viewer.png] [--chromium /usr/bin/chromium]
 *
 * Starts the service in-process on loopback with the embedded default pair, opens /ui in
 * headless Chromium (Debian `chromium`, driven by playwright-core), scores a failed gridworld
 * episode from the bundled examples, opens the token view of the attributed step and writes a
 * full-page screenshot. Deterministic input; the numbers are the models' own.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { buildApp } from '../src/app.js';
import { defaultConfig, PACKAGE_ROOT, validateConfig } from '../src/config.js';
import { Metrics } from '../src/metrics.js';
import { ScorerPool } from '../src/pool.js';

const EXAMPLE = 'gridworld-map002-ep7';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: path.join(PACKAGE_ROOT, 'docs', 'viewer.png') },
      chromium: { type: 'string', default: '/usr/bin/chromium' },
    },
  });
  const out = path.resolve(values.out!);
  if (!fs.existsSync(values.chromium!)) {
    throw new Error(`${values.chromium} not found: install Debian's chromium (apt-get install -y chromium) or pass --chromium <path>`);
  }
  const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent' });
  const pool = new ScorerPool(config);
  const app = buildApp(config, pool, { metrics: new Metrics({ defaultMetrics: false }) });
  const browser = await chromium.launch({ executablePath: values.chromium, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
  try {
    await pool.load();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 }, deviceScaleFactor: 1 });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${base}/ui`);
    await page.locator(`#example-select option[value="${EXAMPLE}"]`).waitFor({ state: 'attached' });
    await page.locator('#model-select option[value="default"]').waitFor({ state: 'attached' });
    await page.selectOption('#example-select', EXAMPLE);
    await page.waitForFunction(() => (document.getElementById('trajectory-input') as HTMLTextAreaElement).value.length > 0);
    await page.click('#score-button');
    await page.locator('.step-card.attributed').waitFor();
    const error = await page.locator('#error').textContent();
    if (await page.locator('#error').isVisible()) throw new Error(`the page shows an error: ${error}`);
    await page.locator('.step-card.attributed .tokens-button').click();
    await page.locator('#token-view').waitFor({ state: 'visible' });
    await page.keyboard.press('Tab');
    await page.keyboard.press('ArrowRight');
    if (pageErrors.length > 0) throw new Error(`script errors in the page: ${pageErrors.join('; ')}`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    console.log(`wrote ${path.relative(process.cwd(), out)} (${fs.statSync(out).size} bytes)`);
  } finally {
    await browser.close();
    await app.close();
    await pool.close();
  }
}

main().catch((err) => {
  console.error(`screenshot-ui: ${(err as Error).message}`);
  process.exit(1);
});
