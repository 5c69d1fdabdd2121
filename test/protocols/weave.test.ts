/**
 * POST /v1/weave/score against the W&B Weave remote-scorer contract (wandb/weave
 * examples/remote_scorer/README.md), with the two sample bodies Weave publishes
 * (../shared/real/protocols/weave-remote-scorer) and a V2 ("call", 1) body built from the V1 one.
 *
 * The contract checker below is written from the README: HTTP 200, a JSON object whose
 * schema_version equals the request's, and a `result` that is one score object, a list of them,
 * or {scores: [...]}; a score's value is a tag string of at most 36 characters or a number in
 * [0, 1], its reason an optional string, its confidence an optional number in [0, 1]; the
 * response body at most 1 MiB. The numbers are checked against /v1/trajectories/score on the
 * same messages, and the rating against σ(A / scale) computed here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { createLogger } from '../../src/cli.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { REAL } from '../text/real-files.js';

const SAMPLES = path.join(REAL, 'protocols', 'weave-remote-scorer');
const V1_FILE = path.join(SAMPLES, 'sample_request.json');
const AGENT_FILE = path.join(SAMPLES, 'sample_request_v2_agent_turn.json');
const HAVE = fs.existsSync(V1_FILE) && fs.existsSync(AGENT_FILE);
const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
if (!HAVE && !IN_CI) console.warn(`test/protocols/weave.test.ts: skipped, ${SAMPLES} is missing (the Weave sample bodies of ../shared/real). Under CI=true it fails instead.`);

const MiB = 1024 * 1024;

/** The README's response contract; returns the problems found (none: it conforms). */
function contractProblems(status: number, raw: string, requestVersion: number): string[] {
  const problems: string[] = [];
  if (status !== 200) return [`status ${status}`];
  if (Buffer.byteLength(raw) > MiB) problems.push('response body over 1 MiB');
  const body = JSON.parse(raw);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['not a JSON object'];
  if (!Number.isInteger(body.schema_version) || body.schema_version !== requestVersion) problems.push(`schema_version ${body.schema_version} ≠ ${requestVersion}`);
  if (!('result' in body)) return [...problems, 'no result'];
  const r = body.result;
  const scores = Array.isArray(r) ? r : r && typeof r === 'object' && Array.isArray(r.scores) ? r.scores : [r];
  if (scores.length === 0) problems.push('no score objects');
  for (const s of scores) {
    if (!s || typeof s !== 'object') {
      problems.push('a score is not an object');
      continue;
    }
    const v = s.value;
    const okValue = (typeof v === 'string' && v.length <= 36) || (typeof v === 'number' && v >= 0 && v <= 1);
    if (!okValue) problems.push(`value ${JSON.stringify(v)} is neither a tag ≤ 36 characters nor a rating in [0, 1]`);
    if (s.reason !== undefined && typeof s.reason !== 'string') problems.push('reason is not a string');
    if (s.confidence !== undefined && !(typeof s.confidence === 'number' && s.confidence >= 0 && s.confidence <= 1)) problems.push('confidence outside [0, 1]');
  }
  return problems;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

describe.skipIf(!HAVE && !IN_CI)('POST /v1/weave/score', () => {
  let served: DefaultPairApp;
  let v1: any;
  let agent: any;
  beforeAll(async () => {
    if (!HAVE) throw new Error(`CI=true but ${SAMPLES} is missing: the Weave sample bodies must be in ../shared/real`);
    v1 = JSON.parse(fs.readFileSync(V1_FILE, 'utf8'));
    agent = JSON.parse(fs.readFileSync(AGENT_FILE, 'utf8'));
    // Prefix cache off: the oracle calls repeat the same tokens, and 1e-9 agreement needs the same full forward pass.
    served = await defaultPairApp({ prefix_cache_mb: 0 });
  });
  afterAll(async () => served?.close());

  const send = async (payload: unknown, headers: Record<string, string> = {}) => {
    const res = await served.app.inject({ method: 'POST', url: '/v1/weave/score', payload: JSON.stringify(payload), headers: { 'content-type': 'application/json', ...headers } });
    return { status: res.statusCode, raw: res.body, body: res.json() };
  };
  const trajectory = async (messages: unknown[]) => {
    const res = await served.app.inject({ method: 'POST', url: '/v1/trajectories/score', payload: { messages } as object });
    expect(res.statusCode).toBe(200);
    return res.json();
  };
  const WEAVE_HEADERS = { 'idempotency-key': 'test-key', 'x-correlation-id': 'test-correlation', 'x-weave-schema-version': '1' };

  it('the V1 sample body (a traced call) answers 200 in the contract\'s shape, its rating σ(A) of the call\'s output', async () => {
    const res = await send(v1, WEAVE_HEADERS);
    expect(contractProblems(res.status, res.raw, 1)).toEqual([]);
    const [rating, tag] = res.body.result;
    // The call as messages: its one input, then its output (two fields, so their JSON).
    const oracle = await trajectory([
      { role: 'user', content: v1.original_call.inputs.message },
      { role: 'assistant', content: JSON.stringify(v1.original_call.output) },
    ]);
    const A = oracle.steps[0].advantage;
    expect(rating.value).toBeCloseTo(sigmoid(A), 9);
    expect(['advancing', 'neutral', 'regressing']).toContain(tag.value);
    expect(tag.value).toBe(sigmoid(A) >= 0.6 ? 'advancing' : sigmoid(A) <= 0.4 ? 'regressing' : 'neutral');
    expect(rating.reason).toContain(A.toPrecision(6));
    expect(rating.reason).toContain(oracle.steps[0].log_ratio.toPrecision(6));
  });

  it('a V2 ("call", 1) body built from the V1 one scores the same payload the same way, answering schema_version 2', async () => {
    const { original_call, ...rest } = v1;
    const v2 = { ...rest, schema_version: 2, scoring_target: { type: 'call', schema_version: 1, payload: original_call } };
    const [a, b] = [await send(v1), await send(v2, { ...WEAVE_HEADERS, 'x-weave-schema-version': '2' })];
    expect(contractProblems(b.status, b.raw, 2)).toEqual([]);
    expect(b.body.result).toEqual(a.body.result);
  });

  it('the V2 agent-turn sample answers 200; its output turn is the scored step after the system instructions and input', async () => {
    const res = await send(agent, { ...WEAVE_HEADERS, 'x-weave-schema-version': '2' });
    expect(contractProblems(res.status, res.raw, 2)).toEqual([]);
    const m = agent.scoring_target.payload.messages;
    const oracle = await trajectory([
      { role: 'system', content: m.system_instructions[0] },
      { role: 'user', content: m.input[0].content },
      { role: 'assistant', content: m.output[0].content },
    ]);
    expect(oracle.steps).toHaveLength(1);
    expect(res.body.result[0].value).toBeCloseTo(sigmoid(oracle.steps[0].advantage), 9);
  });

  it('a content that is a JSON-encoded array of parts is decoded (text parts, tool calls)', async () => {
    const body = structuredClone(agent);
    const m = body.scoring_target.payload.messages;
    m.output = [
      { role: 'assistant', content: JSON.stringify([{ type: 'text', content: 'Let me look.' }, { type: 'tool_call', id: 'c1', name: 'lookup', arguments: { q: 'reset' } }]), finish_reason: 'tool_call' },
    ];
    const res = await send(body);
    expect(contractProblems(res.status, res.raw, 2)).toEqual([]);
    const oracle = await trajectory([
      { role: 'system', content: m.system_instructions[0] },
      { role: 'user', content: m.input[0].content },
      { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: { q: 'reset' } } }] },
    ]);
    expect(res.body.result[0].value).toBeCloseTo(sigmoid(oracle.steps[0].advantage), 9);
  });

  it('scorer.config.scale sets the logistic\'s scale; other config keys are ignored', async () => {
    const wide = structuredClone(agent);
    wide.scorer.config = { ...wide.scorer.config, scale: 4 };
    const [one, four] = [await send(agent), await send(wide)];
    const A = Math.log(one.body.result[0].value / (1 - one.body.result[0].value));
    expect(four.body.result[0].value).toBeCloseTo(sigmoid(A / 4), 9);
    const bad = structuredClone(agent);
    bad.scorer.config = { scale: -1 };
    expect((await send(bad)).body.error.code).toBe('invalid_scorer_config');
  });

  it('an unknown target is a 400 unsupported_scoring_target_type; an unknown schema_version a 400', async () => {
    for (const [type, version] of [['dataset_row', 1], ['call', 2], ['agent_turn', 3]] as const) {
      const body = { ...agent, scoring_target: { ...agent.scoring_target, type, schema_version: version } };
      const res = await send(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('unsupported_scoring_target_type');
    }
    const res = await send({ ...v1, schema_version: 3 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('unsupported_schema_version');
  });

  it('a body over 1 MiB is a 413, even though the service\'s own limit is larger', async () => {
    expect(served.app.initialConfig.bodyLimit).toBeGreaterThan(MiB);
    const big = { ...v1, padding: 'x'.repeat(MiB) };
    const res = await send(big);
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('body_too_large');
  });

  it('logs the Idempotency-Key and X-Correlation-ID of each request', async () => {
    const chunks: string[] = [];
    const logger = createLogger('info', { write: (chunk: string) => void chunks.push(chunk) });
    const config = validateConfig({ ...defaultConfig(), threads: 1, prefix_cache_mb: 0, scorers: defaultConfig().scorers });
    const logged = buildApp(config, served.pool, { metrics: new Metrics({ defaultMetrics: false }), logger });
    try {
      const res = await logged.inject({ method: 'POST', url: '/v1/weave/score', payload: JSON.stringify(v1), headers: { 'content-type': 'application/json', ...WEAVE_HEADERS } });
      expect(res.statusCode).toBe(200);
      const lines = chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const line = lines.find((l) => l.msg === 'weave remote scorer request');
      expect(line).toMatchObject({ idempotency_key: 'test-key', correlation_id: 'test-correlation', weave_schema_version: '1' });
    } finally {
      await logged.close();
    }
  });

  it('with an API key configured, a request without it is a 401 and one with it a 200', async () => {
    const keyed = await defaultPairApp({ api_key: 'weave-secret', prefix_cache_mb: 0 });
    try {
      const inject = (headers: Record<string, string>) =>
        keyed.app.inject({ method: 'POST', url: '/v1/weave/score', payload: JSON.stringify(v1), headers: { 'content-type': 'application/json', ...headers } });
      const missing = await inject({});
      expect(missing.statusCode).toBe(401);
      expect(missing.json().error.code).toBe('unauthorized');
      expect((await inject({ authorization: 'Bearer wrong' })).statusCode).toBe(401);
      const ok = await inject({ authorization: 'Bearer weave-secret' });
      expect(contractProblems(ok.statusCode, ok.body, 1)).toEqual([]);
    } finally {
      await keyed.close();
    }
  });
});
