/**
 * Fuzz of the protocol routes (/get_reward, /v1/weave/score, /v1/completions) through
 * app.inject() on the embedded gridworld pair, 150 bodies each: nearly-right bodies (the
 * protocol's own fields, gridworld words, ids around the vocabulary edge, Weave envelopes with
 * odd targets and messages) and anything JSON can hold. Every answer must be below 500, never a
 * hang, a 4xx with an error.code, or a 200 with no number missing (a NaN serializes as null).
 * FUZZ_SEED=<n> replays a run.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';

const RUNS = 150;
const HANG_MS = 15_000;
const WORDS = ['up', 'down', 'left', 'right', 'at', '0', '4', ',', '#', 'P', 'G', '[user]:', '[assistant]:', '\n', 'pit', '<bos>', '[', '{', '"'];

const anything = fc.jsonValue({ maxDepth: 3 });
const text = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.constantFrom(...WORDS), { maxLength: 20 }).map((w) => w.join(' ')) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\u0000', '[]', '[{"type":"text"}]', '[{"type":"tool_call","name":"f","arguments":[1]}]', '[{"type":"x"}]') },
);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: anything });
const ids = fc.array(fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 0, max: 47 }) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 60 }) }), { maxLength: 40 });

const reward = fc.oneof(
  fc.tuple(fc.array(fc.tuple(text, fc.array(fc.constantFrom(...WORDS), { minLength: 1, maxLength: 8 }).map((w) => ` ${w.join(' ')}`)), { minLength: 1, maxLength: 6 }), fc.boolean()).map(([pairs, prefix]) => ({
    query: pairs.map(([p, r]) => (prefix ? p + r : r)),
    prompts: pairs.map(([p]) => p),
    labels: pairs.map(() => null),
  })),
  fc.record({ query: maybe(fc.array(text, { maxLength: 4 })), prompts: maybe(fc.array(text, { maxLength: 4 })), labels: anything }, { requiredKeys: [] }),
);
const rewardUrl = fc.oneof({ weight: 3, arbitrary: fc.constant('/get_reward') }, { weight: 1, arbitrary: fc
  .record({ token_aggregate: fc.constantFrom('sum', 'mean', 'min', 'max', 'last', 'median'), beta: fc.constantFrom('0.05', '1', '0', '1e9', 'x', '.5'), model: fc.constantFrom('default', 'nope') }, { requiredKeys: [] })
  .map((q) => `/get_reward${Object.keys(q).length ? '?' : ''}${new URLSearchParams(q as Record<string, string>).toString()}`) });

const weaveMessage = fc.record({ role: maybe(fc.constantFrom('user', 'assistant', 'system', 'tool', '')), content: fc.oneof(text, fc.constant(null), anything), finish_reason: fc.string({ maxLength: 5 }) }, { requiredKeys: [] });
const weaveMessages = fc.record(
  { system_instructions: maybe(fc.array(fc.oneof(text, anything), { maxLength: 2 })), input: maybe(fc.array(weaveMessage, { maxLength: 3 })), output: maybe(fc.array(weaveMessage, { maxLength: 3 })) },
  { requiredKeys: [] },
);
const call = fc.record({ inputs: maybe(fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(text, anything), { maxKeys: 3 })), output: fc.oneof(text, anything) }, { requiredKeys: [] });
const scorer = fc.record({ name: fc.string({ maxLength: 5 }), config: maybe(fc.record({ scale: fc.oneof(fc.double({ noNaN: true }), fc.constant(1)), model: fc.constantFrom('default', 'nope'), token_aggregate: fc.constantFrom('sum', 'mean', 'x'), beta: fc.double({ noNaN: true }) }, { requiredKeys: [] })) }, { requiredKeys: [] });
const weave = fc.oneof(
  fc.record({ schema_version: fc.constant(1), original_call: maybe(call), scorer }, { requiredKeys: ['schema_version'] }),
  fc.record(
    {
      schema_version: fc.oneof(fc.constant(2), fc.integer({ min: -1, max: 4 })),
      scoring_target: maybe(
        fc.record({ type: maybe(fc.constantFrom('call', 'agent_turn', 'dataset_row')), schema_version: maybe(fc.integer({ min: 0, max: 3 })), payload: maybe(fc.oneof(call, fc.record({ messages: maybe(weaveMessages) }))) }, { requiredKeys: [] }),
      ),
      scorer,
      extra_field: anything,
    },
    { requiredKeys: ['schema_version'] },
  ),
);

const completions = fc.record(
  {
    model: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('default:policy', 'default:reference') }, { weight: 1, arbitrary: fc.constantFrom('default', 'nope:policy', ':policy') }),
    prompt: fc.oneof(text, ids, fc.array(text, { maxLength: 3 }), fc.array(ids, { maxLength: 3 }), anything),
    echo: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.boolean() }),
    max_tokens: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -1, max: 3 }) }),
    logprobs: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: -1, max: 50 }), fc.constant(null)),
    return_tokens_as_token_ids: fc.boolean(),
    temperature: fc.double({ noNaN: true }),
  },
  { requiredKeys: ['model', 'prompt', 'echo', 'max_tokens'] },
);

/** Why an answer is unacceptable, or null. */
function verdict(status: number, raw: string): string | null {
  if (status >= 500) return `status ${status}: ${raw.slice(0, 300)}`;
  let body: any;
  try {
    body = JSON.parse(raw);
  } catch {
    return `status ${status} with a non-JSON body: ${raw.slice(0, 200)}`;
  }
  if (status >= 400) return typeof body?.error?.code === 'string' && body.error.code.length > 0 ? null : `status ${status} without error.code`;
  if (status !== 200) return `unexpected status ${status}`;
  if (body.rewards && body.rewards.some((r: unknown) => typeof r !== 'number')) return `a reward is not a number: ${raw.slice(0, 300)}`;
  if (body.result && body.result.some((r: any) => r.value === null || (typeof r.value === 'number' && !(r.value >= 0 && r.value <= 1)))) return `a Weave value is missing or outside [0, 1]: ${raw.slice(0, 300)}`;
  if (body.choices && body.choices.some((c: any) => c.logprobs.token_logprobs.slice(1).some((x: unknown) => typeof x !== 'number'))) return `a token log-prob is missing: ${raw.slice(0, 300)}`;
  return null;
}

describe('fuzzed bodies against the protocol routes', () => {
  let served: DefaultPairApp;
  beforeAll(async () => {
    served = await defaultPairApp({ max_items: 16 });
  });
  afterAll(async () => served?.close());

  async function answer(url: string, payload: string) {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms`)), HANG_MS)));
    try {
      const res = await Promise.race([served.app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } }), hang]);
      return { status: res.statusCode, raw: res.body };
    } finally {
      clearTimeout(timer);
    }
  }

  const cases: [string, fc.Arbitrary<[string, object]>][] = [
    ['/get_reward', fc.tuple(rewardUrl, reward)],
    ['/v1/weave/score', weave.map((b) => ['/v1/weave/score', b] as [string, object])],
    ['/v1/completions', completions.map((b) => ['/v1/completions', b] as [string, object])],
  ];
  for (const [name, arb] of cases) {
    it(`${name}: ${RUNS} bodies, never a 5xx, never a hang, always an error.code on 4xx`, async () => {
      const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
      let scored = 0;
      await fc.assert(
        fc.asyncProperty(arb, async ([url, body]) => {
          const { status, raw } = await answer(url, JSON.stringify(body));
          const problem = verdict(status, raw);
          if (problem) throw new Error(problem);
          if (status === 200) scored++;
        }),
        { numRuns: RUNS, ...(seed !== undefined ? { seed } : {}) },
      );
      // The bodies get past validation into compile, the engine and the shaping, not only to 4xx.
      expect(scored).toBeGreaterThan(RUNS / 20);
    }, 300_000);
  }

  it('the server is healthy afterwards', async () => {
    expect((await served.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
  });
});
