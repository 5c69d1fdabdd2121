/**
 * Model faults (issue 7):
 *  - start-up with a missing directory, a corrupt ONNX file, a policy/reference vocabulary
 *    mismatch, bf16 I/O, or a directory without a tokenizer: the real CLI process exits 1 and
 *    stderr holds one `pa-server:` line naming the offending path;
 *  - NaN or −∞ in a forward output: the requests of that batch get 500 model_output_invalid and
 *    the server keeps serving (later requests are exact against the closed form).
 *
 * A tokenizer LARGER than the model is not a start-up fault: such pairs are served and requests
 * whose ids fall outside the model's vocabulary get 422 ids_out_of_vocabulary (src/pool.ts; tested
 * in test/api/score.test.ts on GPT-2 tiny). A tokenizer smaller than the model is normal (padded
 * embedding tables).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { poisonedLogprobs, writeBfloat16Model, writeCorruptModel, writePoisonedModel } from '../helpers/fault-models.js';
import { randomTable, writeBigramModel } from '../helpers/onnx-fixtures.js';
import { freePort, ROOT, startServer, type ServerProcess } from './server-process.js';

const GRIDWORLD_POLICY = path.join(ROOT, 'models/gridworld-policy');
const GRIDWORLD_REFERENCE = path.join(ROOT, 'models/gridworld-reference');

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-model-faults-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const started: ServerProcess[] = [];
afterEach(() => {
  for (const s of started.splice(0)) s.kill();
});

/** stderr lines that are the server's own (Node's deprecation/experimental warnings are not). */
function ownLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => !/^\(node:\d+\) /.test(l) && !/^\(Use `node --trace-/.test(l));
}

async function expectStartFailure(policy: string, reference: string, namedPath: string): Promise<string> {
  const server = startServer(['--policy', policy, '--reference', reference], await freePort());
  started.push(server);
  const { code, signal } = await server.exited;
  const lines = ownLines(server.stderr());
  expect({ code, signal, lines: lines.length }, server.stderr()).toEqual({ code: 1, signal: null, lines: 1 });
  expect(lines[0]).toMatch(/^pa-server: /);
  expect(lines[0]).toContain(namedPath);
  return lines[0];
}

describe('start-up faults: exit code 1 and one line naming the path', () => {
  it('missing model directory', async () => {
    const missing = path.join(tmpRoot, 'no-such-model');
    const line = await expectStartFailure(missing, GRIDWORLD_REFERENCE, missing);
    expect(line).toMatch(/not found/);
  });

  it('corrupt ONNX (random bytes in model.onnx)', async () => {
    const file = writeCorruptModel(path.join(tmpRoot, 'corrupt'));
    await expectStartFailure(path.dirname(file), path.join(tmpRoot, 'corrupt'), file);
  });

  it('policy and reference with different vocabularies (gridworld 48 vs a 40-token bigram)', async () => {
    const reference = writeBigramModel(path.join(tmpRoot, 'bigram-40'), { table: randomTable(40, 1) });
    const line = await expectStartFailure(GRIDWORLD_POLICY, reference, path.join(reference, 'model.onnx'));
    expect(line).toContain(path.join(GRIDWORLD_POLICY, 'decoder_with_past_model.onnx')); // the served with-past export
    expect(line).toMatch(/vocabulary 48.*40/);
  });

  it('bf16 logits output', async () => {
    const file = writeBfloat16Model(path.join(tmpRoot, 'bf16'));
    const line = await expectStartFailure(path.dirname(file), path.dirname(file), file);
    expect(line).toMatch(/bfloat16/);
  });

  it('a model directory without a tokenizer', async () => {
    const dir = writeBigramModel(path.join(tmpRoot, 'no-tokenizer'), { table: randomTable(48, 2), tokenizer: false });
    await expectStartFailure(dir, dir, path.join(dir, 'tokenizer.json'));
  });
});

describe('NaN / −∞ in a forward output', () => {
  const V = 16;
  const NAN_AFTER = 5; // every log-prob read after token 5 is NaN
  const ZERO: [number, number] = [6, 7]; // token 7 after token 6 has probability 0 → −∞
  let policyTable: number[][];
  let referenceTable: number[][];
  let app: App;
  let pool: ScorerPool;

  beforeAll(async () => {
    const policy = path.join(tmpRoot, 'poisoned-policy');
    const reference = path.join(tmpRoot, 'clean-reference');
    policyTable = writePoisonedModel(policy, { vocab: V, nanAfter: [NAN_AFTER], zeroProbability: [ZERO], seed: 3 });
    referenceTable = writePoisonedModel(reference, { vocab: V, seed: 4 });
    const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent', scorers: [{ name: 'default', policy, reference, beta: 1 }] });
    const metrics = new Metrics({ defaultMetrics: false });
    pool = new ScorerPool(config, (n) => metrics.engineObserver(n));
    app = buildApp(config, pool, { metrics });
    await pool.load();
  });
  afterAll(async () => {
    await app?.close();
    await pool?.close();
  });

  const post = async (payload: object) => {
    const res = await app.inject({ method: 'POST', url: '/v1/score', payload });
    return { status: res.statusCode, body: res.json() as any };
  };
  const expected = (promptIds: number[], stepIds: number[]) => {
    const ids = [...promptIds, ...stepIds];
    const p = poisonedLogprobs(policyTable, ids, promptIds.length);
    const q = poisonedLogprobs(referenceTable, ids, promptIds.length);
    return p.reduce((s, x, k) => s + x - q[k], 0);
  };
  const clean = { prompt_ids: [2, 4, 9], step_ids: [8, 10, 11] };

  it('a clean request is exact (closed form), and a poisoned token outside the scored positions is harmless', async () => {
    for (const body of [clean, { prompt_ids: [2, NAN_AFTER, 4], step_ids: [8, 9] }]) {
      const res = await post(body);
      expect(res.status).toBe(200);
      expect(Math.abs(res.body.log_ratio - expected(body.prompt_ids, body.step_ids))).toBeLessThan(1e-5);
    }
  });

  it('NaN and −∞ log-probs → 500 model_output_invalid; the server keeps serving', async () => {
    for (const body of [
      { prompt_ids: [2, NAN_AFTER], step_ids: [8] },
      { prompt_ids: [2, 4], step_ids: [NAN_AFTER, 8] },
      { prompt_ids: [2, ZERO[0]], step_ids: [ZERO[1]] },
      { items: [clean, { prompt_ids: [2, 4], step_ids: [NAN_AFTER, 9] }] },
    ]) {
      const res = await post(body);
      expect(res.status).toBe(500);
      expect(res.body.error.code).toBe('model_output_invalid');
      const after = await post(clean);
      expect(after.status).toBe(200);
      expect(Math.abs(after.body.log_ratio - expected(clean.prompt_ids, clean.step_ids))).toBeLessThan(1e-5);
    }
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
  });

  it('concurrent with clean requests: the poisoned one fails, every other answer is 200 exact or 500 model_output_invalid (it shared the batch)', async () => {
    const bodies = Array.from({ length: 40 }, (_, i) =>
      i === 20 ? { prompt_ids: [2, NAN_AFTER], step_ids: [8] } : { prompt_ids: [2, 4 + (i % 8) === NAN_AFTER ? 4 : 4 + (i % 8)], step_ids: [8, 9 + (i % 5)] },
    );
    const answers = await Promise.all(bodies.map(post));
    answers.forEach((res, i) => {
      if (i === 20) {
        expect(res.status).toBe(500);
        expect(res.body.error.code).toBe('model_output_invalid');
      } else if (res.status === 200) {
        expect(Math.abs(res.body.log_ratio - expected(bodies[i].prompt_ids, bodies[i].step_ids))).toBeLessThan(1e-5);
      } else {
        expect([res.status, res.body.error.code]).toEqual([500, 'model_output_invalid']);
      }
    });
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThan(0);
    expect((await post(clean)).status).toBe(200);
  });
});
