/**
 * Bad input (issue 7): one row per class, each asserting the status and the machine-readable
 * `error.code`, through app.inject() on the embedded default gridworld pair (vocabulary 48, max
 * length 384) with small limits (max_items 8, body limit 64 KiB) so the limit rows stay cheap.
 *
 * Decisions the rows pin down:
 *  - unknown fields are a 400 `unknown_field` on every route and inside items (closed schemas);
 *    chat messages are the one open object (OpenAI messages carry extra fields that chat
 *    templates may read), so an extra field there is accepted;
 *  - NaN / Infinity literals are malformed JSON; 1e999 parses to Infinity, which no number field
 *    accepts (ajv's number type is finite), so both are 400 — never a 422 or a 500;
 *  - a list over its maxItems is 413 `too_many_items`, like a body over the limit (413);
 *  - nesting deeper than 128 levels, invalid UTF-8 and over-limit bodies are refused on the raw
 *    bytes, before JSON.parse and before any tokenization (pa_tokenization_duration_seconds does
 *    not count them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';

const VOCAB = 48;
const MAX_LENGTH = 384;
const MAX_ITEMS = 8;
const BODY_LIMIT = 64 * 1024;
const BOS = 2;

let app: App;

let served: DefaultPairApp;

beforeAll(async () => {
  served = await defaultPairApp({ max_items: MAX_ITEMS, body_limit: BODY_LIMIT });
  ({ app } = served);
});
afterAll(async () => served?.close());

type Payload = string | Buffer | object;
interface Row {
  name: string;
  url?: string;
  payload: Payload;
  headers?: Record<string, string>;
  status: number;
  code: string;
}

async function send(url: string, payload: Payload, headers: Record<string, string> = {}) {
  const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
  const res = await app.inject({ method: 'POST', url, payload: body, headers: { 'content-type': 'application/json', ...headers } });
  let json: any;
  try {
    json = res.json();
  } catch {
    json = { raw: res.body };
  }
  return { status: res.statusCode, body: json, headers: res.headers };
}

const ok = { prompt_ids: [BOS, 10, 11], step_ids: [12, 13] };
const dialog = [
  { role: 'user', content: 'at 0 0 , up # down . left # right .' },
  { role: 'assistant', content: 'down' },
];
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const utf8Broken = Buffer.concat([Buffer.from('{"prompt":"up '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('","step":"up"}')]);

const ROWS: Row[] = [
  // malformed / wrong shape → 400
  { name: 'malformed JSON', payload: '{"prompt": "up", ', status: 400, code: 'malformed_json' },
  { name: 'empty body', payload: '', status: 400, code: 'malformed_json' },
  { name: 'a JSON array body', payload: '[1, 2]', status: 400, code: 'invalid_request' },
  { name: 'wrong type (prompt is a number)', payload: { prompt: 5, step: 'up' }, status: 400, code: 'invalid_request' },
  { name: 'wrong type (step_ids holds a string)', payload: { prompt_ids: [BOS], step_ids: ['12'] }, status: 400, code: 'invalid_request' },
  { name: 'wrong type (non-integer id)', payload: { prompt_ids: [BOS], step_ids: [12.5] }, status: 400, code: 'invalid_request' },
  { name: 'missing step', payload: { prompt: 'up' }, status: 400, code: 'missing_step' },
  { name: 'prompt and prompt_ids together', payload: { prompt: 'up', prompt_ids: [BOS], step: 'down' }, status: 400, code: 'conflicting_fields' },
  { name: 'text mixed with ids', payload: { prompt: 'up', step_ids: [12] }, status: 400, code: 'conflicting_fields' },
  { name: 'unknown field', payload: { ...ok, temperature: 0.7 }, status: 400, code: 'unknown_field' },
  { name: 'unknown field inside an item', payload: { items: [{ ...ok, extra: true }] }, status: 400, code: 'unknown_field' },
  { name: 'unknown aggregator', payload: { ...ok, token_aggregate: 'median' }, status: 400, code: 'invalid_request' },
  { name: 'unknown aggregate mode', payload: { ...ok, token_aggregate_mode: 'product' }, status: 400, code: 'invalid_request' },
  { name: 'NaN literal', payload: `{"prompt_ids":[${BOS}],"step_ids":[12],"beta":NaN}`, status: 400, code: 'malformed_json' },
  { name: 'Infinity literal', payload: `{"prompt_ids":[${BOS}],"step_ids":[12],"beta":Infinity}`, status: 400, code: 'malformed_json' },
  { name: 'huge number 1e999 as β', payload: `{"prompt_ids":[${BOS}],"step_ids":[12],"beta":1e999}`, status: 400, code: 'invalid_request' },
  { name: 'huge number -1e999 as β', payload: `{"prompt_ids":[${BOS}],"step_ids":[12],"beta":-1e999}`, status: 400, code: 'invalid_request' },
  { name: 'huge number 1e999 as an id', payload: `{"prompt_ids":[${BOS}],"step_ids":[1e999]}`, status: 400, code: 'invalid_request' },
  { name: 'huge id 1e300 (not an int32)', payload: `{"prompt_ids":[${BOS}],"step_ids":[1e300]}`, status: 400, code: 'invalid_request' },
  { name: 'invalid UTF-8 bytes', payload: utf8Broken, status: 400, code: 'invalid_utf8' },
  { name: '__proto__ key (prototype poisoning)', payload: `{"prompt_ids":[${BOS}],"step_ids":[12],"__proto__":{"x":1}}`, status: 400, code: 'malformed_json' },
  { name: 'timeout_ms 0', payload: { ...ok, timeout_ms: 0 }, status: 400, code: 'invalid_request' },
  { name: 'x-timeout-ms not a number', payload: ok, headers: { 'x-timeout-ms': 'soon' }, status: 400, code: 'invalid_timeout' },
  { name: 'deeply nested JSON (10,000 levels) in an unknown field', payload: `{"prompt":"up","step":"up","x":${nested(10_000)}}`, status: 400, code: 'too_deeply_nested' },
  { name: 'nesting just over the limit (129)', payload: `{"prompt":"up","step":"up","x":${nested(128)}}`, status: 400, code: 'too_deeply_nested' },
  { name: 'brackets inside strings do not count as nesting', payload: { prompt: 'up', step: 'up', junk: nested(500) }, status: 400, code: 'unknown_field' },
  { name: 'a media type other than JSON', payload: 'prompt=up', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported_media_type' },

  // valid JSON, unusable input → 422
  { name: 'empty step', payload: { prompt: 'up', step: '' }, status: 422, code: 'empty_step' },
  { name: 'a step of only whitespace (encodes to nothing)', payload: { prompt: 'up', step: '   ' }, status: 422, code: 'empty_step' },
  { name: 'empty step_ids', payload: { prompt_ids: [BOS], step_ids: [] }, status: 422, code: 'empty_step' },
  { name: 'id equal to the vocabulary size', payload: { prompt_ids: [BOS], step_ids: [VOCAB] }, status: 422, code: 'ids_out_of_vocabulary' },
  { name: 'negative id', payload: { prompt_ids: [BOS, -1], step_ids: [12] }, status: 422, code: 'ids_out_of_vocabulary' },
  { name: 'prompt over the max length with truncate: false', payload: { prompt_ids: Array(MAX_LENGTH).fill(10), step_ids: [12], truncate: false }, status: 422, code: 'input_too_long' },
  { name: 'prompt text over the max length with truncate: false', payload: { prompt: 'up '.repeat(MAX_LENGTH + 10), step: 'down', truncate: false }, status: 422, code: 'input_too_long' },
  { name: 'the step alone over the max length with truncate: false', payload: { prompt_ids: [BOS], step_ids: Array(MAX_LENGTH).fill(12), truncate: false }, status: 422, code: 'step_too_long' },
  { name: 'an unknown long_context mode', payload: { prompt: 'up', step: 'up', long_context: 'slide' }, status: 400, code: 'invalid_request' },
  { name: 'β = 0', payload: { ...ok, beta: 0 }, status: 422, code: 'invalid_beta' },
  { name: 'β < 0', payload: { ...ok, beta: -0.5 }, status: 422, code: 'invalid_beta' },
  { name: 'β underflowing to 0 (1e-400)', payload: `{"prompt_ids":[${BOS}],"step_ids":[12],"beta":1e-400}`, status: 422, code: 'invalid_beta' },
  { name: 'β so large that β·log-ratio overflows (1e308)', payload: `{"prompt":"up","step":"up","beta":1e308}`, status: 422, code: 'invalid_beta' },
  { name: 'β ≤ 0 in one item', payload: { items: [ok, { ...ok, beta: -1 }] }, status: 422, code: 'invalid_beta' },

  // sizes → 413, names → 404
  { name: 'too many items', payload: { items: Array(MAX_ITEMS + 1).fill(ok) }, status: 413, code: 'too_many_items' },
  { name: 'body over the limit', payload: { prompt: 'up '.repeat(BODY_LIMIT / 3 + 10), step: 'down' }, status: 413, code: 'body_too_large' },
  { name: 'a huge id array is over the body limit', payload: { prompt_ids: Array(BODY_LIMIT).fill(1), step_ids: [12] }, status: 413, code: 'body_too_large' },
  { name: 'unknown scorer', payload: { ...ok, model: 'no-such-scorer' }, status: 404, code: 'model_not_found' },

  // the trajectory routes
  { name: 'trajectories: unknown field', url: '/v1/trajectories/score', payload: { messages: dialog, colour: 'red' }, status: 400, code: 'unknown_field' },
  { name: 'trajectories: unknown field in a segment', url: '/v1/trajectories/score', payload: { segments: [{ text: 'up', score: true, weight: 2 }] }, status: 400, code: 'unknown_field' },
  { name: 'trajectories: messages and segments together', url: '/v1/trajectories/score', payload: { messages: dialog, segments: [{ text: 'up', score: true }] }, status: 400, code: 'conflicting_fields' },
  { name: 'trajectories: empty messages', url: '/v1/trajectories/score', payload: { messages: [] }, status: 422, code: 'empty_trajectory' },
  { name: 'trajectories: segment ids outside the vocabulary', url: '/v1/trajectories/score', payload: { segments: [{ ids: [BOS, 10] }, { ids: [VOCAB + 1], score: true }] }, status: 422, code: 'ids_out_of_vocabulary' },
  { name: 'trajectories: unknown aggregator', url: '/v1/trajectories/score', payload: { messages: dialog, token_aggregate: 'median' }, status: 400, code: 'invalid_request' },
  { name: 'trajectories: β ≤ 0', url: '/v1/trajectories/score', payload: { messages: dialog, beta: 0 }, status: 422, code: 'invalid_beta' },
  { name: 'trajectories: too many items', url: '/v1/trajectories/score', payload: { items: Array(MAX_ITEMS + 1).fill({ messages: dialog }) }, status: 413, code: 'too_many_items' },
  { name: 'trajectories: deeply nested tool-call arguments', url: '/v1/trajectories/score', payload: `{"messages":[{"role":"user","content":"up"},{"role":"assistant","content":"x","tool_calls":[{"function":{"name":"f","arguments":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}}]}]}`, status: 400, code: 'too_deeply_nested' },
  { name: 'trajectories: deeply nested dataset record', url: '/v1/trajectories/score', payload: `{"format":"who_and_when","data":${nested(5000)}}`, status: 400, code: 'too_deeply_nested' },
  { name: 'trajectories: malformed JSON', url: '/v1/trajectories/score', payload: '{"messages": [', status: 400, code: 'malformed_json' },
  { name: 'trajectories: unknown scorer', url: '/v1/trajectories/score', payload: { messages: dialog, model: 'nope' }, status: 404, code: 'model_not_found' },
  { name: 'attribute: unknown field', url: '/v1/attribute', payload: { messages: dialog, why: 1 }, status: 400, code: 'unknown_field' },
  { name: 'attribute: unknown method', url: '/v1/attribute', payload: { messages: dialog, method: 'vibes' }, status: 400, code: 'invalid_request' },
  { name: 'attribute: invalid UTF-8', url: '/v1/attribute', payload: Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')]), status: 400, code: 'invalid_utf8' },
  { name: 'rank: unknown field', url: '/v1/rank', payload: { prompt: 'up', candidates: ['down'], n: 2 }, status: 400, code: 'unknown_field' },
  { name: 'rank: missing candidates', url: '/v1/rank', payload: { prompt: 'up' }, status: 400, code: 'invalid_request' },
  { name: 'rank: too many candidates', url: '/v1/rank', payload: { prompt: 'up', candidates: Array(MAX_ITEMS + 1).fill('down') }, status: 413, code: 'too_many_items' },
  { name: 'rank: an empty candidate', url: '/v1/rank', payload: { prompt: 'up', candidates: ['down', ''] }, status: 422, code: 'empty_step' },
  { name: 'rank: β ≤ 0', url: '/v1/rank', payload: { prompt: 'up', candidates: ['down'], beta: -2 }, status: 422, code: 'invalid_beta' },
  { name: 'rank: NaN literal', url: '/v1/rank', payload: '{"prompt":"up","candidates":["down"],"beta":NaN}', status: 400, code: 'malformed_json' },
];

describe('bad input: status and error.code, one row per class', () => {
  for (const row of ROWS) {
    it(`${row.url ?? '/v1/score'} ${row.name} → ${row.status} ${row.code}`, async () => {
      const res = await send(row.url ?? '/v1/score', row.payload, row.headers);
      expect({ status: res.status, code: res.body?.error?.code }, JSON.stringify(res.body).slice(0, 300)).toEqual({ status: row.status, code: row.code });
      expect(typeof res.body.error.message).toBe('string');
      expect(res.body.error.message.length).toBeGreaterThan(0);
    });
  }

  it('the same request without the fault is a 200 (the rows fail for their fault, not for something else)', async () => {
    expect((await send('/v1/score', ok)).status).toBe(200);
    expect((await send('/v1/score', { items: Array(MAX_ITEMS).fill(ok) })).status).toBe(200);
    expect((await send('/v1/score', { prompt_ids: Array(MAX_LENGTH).fill(10), step_ids: [12] })).status).toBe(200); // truncate: true
    expect((await send('/v1/score', { prompt: 'up', step: 'up', x: undefined })).status).toBe(200);
    expect((await send('/v1/score', `{"prompt":"up","step":"up","beta":0.5}`)).status).toBe(200);
    expect((await send('/v1/trajectories/score', { messages: dialog })).status).toBe(200);
    // a chat message is the one open object: an extra field passes through to chat templates
    expect((await send('/v1/trajectories/score', { messages: [dialog[0], { ...dialog[1], reasoning: 'r' }] })).status).toBe(200);
    expect((await send('/v1/attribute', { messages: dialog })).status).toBe(200);
    expect((await send('/v1/rank', { prompt: 'up', candidates: Array(MAX_ITEMS).fill('down') })).status).toBe(200);
    const nestedOk = `{"format":"messages","data":{"messages":[{"role":"user","content":"up"},{"role":"assistant","content":"down","tool_calls":[{"function":{"name":"f","arguments":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}}]}]}}`;
    expect((await send('/v1/trajectories/score', nestedOk)).status).toBe(200);
  });

  it('long_context "truncate": a trajectory whose only step falls off is a 200 with the step null and truncated (it crashed the process: SIGFPE in onnxruntime on zero scored rows)', async () => {
    // The step is followed by a long non-step message, so the cut leaves nothing of it.
    const long = {
      messages: [dialog[0], { role: 'assistant', content: 'down' }, { role: 'user', content: 'up '.repeat(MAX_LENGTH + 20) }],
      long_context: 'truncate',
    };
    const res = await send('/v1/trajectories/score', long);
    expect(res.status).toBe(200);
    expect(res.body.steps).toHaveLength(1);
    expect(res.body.steps[0]).toMatchObject({ truncated: true, advantage: null, log_ratio: null, cumulative: null, min_context: null, num_tokens: 0 });
    // Nothing scored: no aggregate is a number.
    expect(Object.values(res.body.aggregates)).toEqual([null, null, null, null, null, null]);
    const both = await send('/v1/trajectories/score', { items: [long, { messages: dialog }] });
    expect(both.status).toBe(200);
    expect(both.body.results[0].steps[0].truncated).toBe(true);
    expect(both.body.results[1].steps[0].truncated).toBe(false);
    const blamed = await send('/v1/attribute', long);
    expect([blamed.status, blamed.body.step, blamed.body.agent]).toEqual([200, null, null]);
    expect((await send('/v1/score', ok)).status).toBe(200);
  });

  it('oversized, deeply nested and undecodable bodies are refused before tokenization', async () => {
    const tokenizations = async () => {
      const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      return Number(/^pa_tokenization_duration_seconds_count(?:\{\})? (\d+)$/m.exec(text)?.[1]);
    };
    const before = await tokenizations();
    for (const payload of [
      { prompt: 'up '.repeat(BODY_LIMIT / 3 + 10), step: 'down' },
      { items: Array(MAX_ITEMS + 1).fill({ prompt: 'up', step: 'down' }) },
      `{"prompt":"up","step":"up","x":${nested(100_000).slice(0, BODY_LIMIT - 100)}`,
      utf8Broken,
    ]) {
      expect((await send('/v1/score', payload)).status).toBeGreaterThanOrEqual(400);
    }
    expect(await tokenizations()).toBe(before);
    expect((await send('/v1/score', { prompt: 'up', step: 'down' })).status).toBe(200);
    expect(await tokenizations()).toBe(before + 1);
  });

  it('errors do not echo the request body back (a secret-looking prompt never appears in the answer)', async () => {
    const secret = 'sk-live-THIS-IS-A-SECRET-0123456789';
    for (const payload of [
      { prompt: secret, step: '' },
      { prompt: secret, prompt_ids: [BOS], step: 'up' },
      { prompt: secret, step: 'up', token_aggregate: 'median' },
      { prompt: 5, step: secret },
      `{"prompt":"${secret}", `,
    ]) {
      const res = await send('/v1/score', payload);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(JSON.stringify(res.body)).not.toContain(secret);
    }
  });
});
