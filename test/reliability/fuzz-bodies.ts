/**
 * fast-check arbitraries of request bodies for every POST route, shared by the CI fuzz test
 * (test/reliability/fuzz.test.ts) and the long run (bench/fuzz-long.ts).
 *
 * Bodies are mostly "nearly right": the route's own field names with values that are sometimes
 * well-formed (gridworld words, ids around the vocabulary edge, real message shapes) and
 * sometimes anything JSON can hold — so most runs get past the schema into compile, the engine
 * and the scoring math, where a 5xx would hide. A share of bodies is raw text (broken JSON,
 * NaN literals, lone brackets) and a share has unknown fields.
 */
import fc from 'fast-check';

export const ROUTES = ['/v1/score', '/v1/trajectories/score', '/v1/rank', '/v1/attribute'] as const;
export type Route = (typeof ROUTES)[number];

const WORDS = ['up', 'down', 'left', 'right', 'at', '0', '1', '4', '9', ',', '.', '#', 'P', 'G', 'S', 'wall', 'goal', '[user]:', '[assistant]:', '\n', 'user', 'assistant', ':'];

const anything = fc.jsonValue({ maxDepth: 3 });

/**
 * Bodies for one route family. `chaos`: any field may hold any JSON value (mostly schema
 * rejections); without it every field keeps its declared type and only the content is random,
 * so the bodies reach compile, the engine and the scoring math.
 */
function families(chaos: boolean) {
const loose = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | fc.JsonValue> => (chaos ? fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: anything }) : arb);

const text = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.constantFrom(...WORDS), { maxLength: 30 }).map((w) => w.join(' ')) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\n', '\u0000', '\ud800', '[', '{}', '<bos>', '<pad>') },
);
const id = chaos
  ? fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 47 }) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: 60 }) }, { weight: 1, arbitrary: fc.constantFrom(2147483647, -2147483648, 1e15) })
  : fc.oneof({ weight: 30, arbitrary: fc.integer({ min: 0, max: 47 }) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: 60 }) });
const ids = fc.array(id, { maxLength: 60 });
const number = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: 0.001, max: 10, noNaN: true }) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 1, 0.05, 1e-300, 1e308, -0) },
);
const aggregate = chaos
  ? fc.constantFrom('sum', 'mean', 'min', 'max', 'last', 'bottom10', 'median', '')
  : fc.constantFrom('sum', 'mean', 'min', 'max', 'last');
const role = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('user', 'assistant', 'system', 'tool', 'env') }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) });
const toolCall = fc.record(
  { id: fc.string({ maxLength: 6 }), type: fc.constant('function'), function: fc.record({ name: fc.string({ maxLength: 8 }), arguments: fc.oneof(fc.string({ maxLength: 30 }), fc.dictionary(fc.string({ maxLength: 5 }), anything, { maxKeys: 3 })) }) },
  { requiredKeys: ['function'] },
);
const message = fc.record(
  {
    role: loose(role),
    content: fc.oneof(text, fc.constant(null), fc.array(fc.record({ type: fc.constantFrom('text', 'image_url'), text: text }, { requiredKeys: ['type'] }), { maxLength: 3 })),
    name: fc.string({ maxLength: 8 }),
    tool_calls: fc.array(toolCall, { maxLength: 2 }),
    tool_call_id: fc.string({ maxLength: 5 }),
  },
  { requiredKeys: ['role'] },
);
const messages = fc.array(loose(message), { maxLength: 8 });
const segment = fc.record({ text, ids, role, name: fc.string({ maxLength: 6 }), score: fc.boolean() }, { requiredKeys: [] });
const datasetRecord = fc.oneof(
  anything,
  fc.record({ history: fc.array(fc.record({ role, content: text, name: fc.string({ maxLength: 6 }) }, { requiredKeys: [] }), { maxLength: 5 }), question: text, mistake_step: fc.oneof(fc.integer({ min: -2, max: 8 }), fc.string({ maxLength: 3 }), fc.constant(null)), mistake_agent: fc.oneof(fc.string({ maxLength: 6 }), fc.constant(null)), is_correct: fc.oneof(fc.boolean(), fc.constant('True')) }, { requiredKeys: [] }),
  fc.record({ traj: messages, messages, reward: fc.oneof(number, fc.string({ maxLength: 4 })), task_id: fc.string({ maxLength: 4 }) }, { requiredKeys: [] }),
  fc.record({ messages, step_labels: fc.dictionary(fc.string({ maxLength: 3 }), fc.constantFrom(1, 0, -1, 2)), final_label: fc.constantFrom(1, -1, 0, '1', 5) }, { requiredKeys: [] }),
  fc.record({ problem: text, steps: fc.array(text, { maxLength: 5 }), label: fc.integer({ min: -2, max: 6 }) }, { requiredKeys: [] }),
);

const options = {
  model: fc.oneof({ weight: 6, arbitrary: fc.constant('default') }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }) }),
  beta: loose(number),
  token_aggregate: loose(aggregate),
  token_aggregate_mode: loose(chaos ? fc.constantFrom('ratio', 'separate', 'x') : fc.constantFrom('ratio', 'separate')),
  truncate: loose(fc.boolean()),
  timeout_ms: loose(fc.integer({ min: chaos ? 0 : 1, max: 100_000 })),
};

const scoreItem = fc.record({ prompt: loose(text), prompt_ids: loose(ids), step: loose(text), step_ids: loose(ids), return_tokens: fc.boolean(), beta: options.beta, token_aggregate: options.token_aggregate, truncate: options.truncate }, { requiredKeys: [] });

const trajectoryFields = {
  messages: loose(messages),
  segments: loose(fc.array(segment, { maxLength: 6 })),
  format: loose(fc.constantFrom('messages', 'who_and_when', 'tau_bench', 'agentprocessbench', 'processbench', 'processbench', 'csv')),
  data: datasetRecord,
  render: loose(fc.constantFrom('plain', 'plain', 'plain', 'chat_template', 'html')),
  action_roles: loose(fc.array(role, { maxLength: 3 })),
  tools: loose(fc.array(anything, { maxLength: 2 })),
  baselines: loose(fc.boolean()),
  return_tokens: loose(fc.boolean()),
};

const withUnknownField = <T extends object>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 19, arbitrary: arb }, { weight: 1, arbitrary: fc.tuple(arb, fc.string({ minLength: 1, maxLength: 8 }), anything).map(([b, k, v]) => ({ ...b, [k]: v })) });

// Without chaos, one input shape per body (the conflicting combinations are chaos's job).
const opts = fc.record(options, { requiredKeys: [] });
const merge = (shape: fc.Arbitrary<object>, extra: fc.Arbitrary<object> = opts) => fc.tuple(shape, extra).map(([a, b]) => ({ ...b, ...a }));
const trajectoryShape = fc.oneof(
  fc.record({ messages }),
  fc.record({ segments: fc.array(segment, { maxLength: 6 }) }),
  fc.record({ format: trajectoryFields.format, data: datasetRecord }),
);
const trajectoryOptions = fc.record({ ...options, render: trajectoryFields.render, action_roles: trajectoryFields.action_roles, baselines: fc.boolean(), return_tokens: fc.boolean() }, { requiredKeys: [] });
if (!chaos) {
  return {
    '/v1/score': withUnknownField(
      fc.oneof(
        merge(fc.record({ prompt: text, step: text, return_tokens: fc.boolean() }, { requiredKeys: ['step'] })),
        merge(fc.record({ prompt_ids: ids, step_ids: ids, return_tokens: fc.boolean() }, { requiredKeys: ['step_ids'] })),
        merge(fc.record({ items: fc.array(fc.oneof(fc.record({ prompt: text, step: text }), fc.record({ prompt_ids: ids, step_ids: ids })), { minLength: 1, maxLength: 6 }) })),
      ),
    ),
    '/v1/trajectories/score': withUnknownField(
      fc.oneof(merge(trajectoryShape, trajectoryOptions), merge(fc.record({ items: fc.array(trajectoryShape, { minLength: 1, maxLength: 4 }) }), trajectoryOptions)),
    ),
    '/v1/rank': withUnknownField(
      merge(
        fc.record({ prompt: text, candidates: fc.oneof(fc.array(text, { minLength: 1, maxLength: 6 }), fc.array(fc.array(text, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 4 })), step_aggregate: fc.constantFrom('mean', 'sum', 'min', 'max', 'last', 'bottom10') }, { requiredKeys: ['prompt', 'candidates'] }),
      ),
    ),
    '/v1/attribute': withUnknownField(merge(trajectoryShape, fc.record({ ...options, method: fc.constantFrom('min_cumulative', 'sharpest_drop', 'sharpest_abs_drop') }, { requiredKeys: [] }))),
  };
}
const bodies: Record<Route, fc.Arbitrary<object>> = {
  '/v1/score': withUnknownField(
    fc.oneof(
      fc.record({ ...options, prompt: loose(text), prompt_ids: loose(ids), step: loose(text), step_ids: loose(ids), return_tokens: loose(fc.boolean()) }, { requiredKeys: [] }),
      fc.record({ ...options, items: loose(fc.array(scoreItem, { minLength: chaos ? 0 : 1, maxLength: 6 })) }, { requiredKeys: ['items'] }),
    ),
  ),
  '/v1/trajectories/score': withUnknownField(
    fc.oneof(
      fc.record({ ...options, ...trajectoryFields }, { requiredKeys: [] }),
      fc.record({ ...options, items: loose(fc.array(fc.record(trajectoryFields, { requiredKeys: [] }), { minLength: chaos ? 0 : 1, maxLength: 4 })) }, { requiredKeys: ['items'] }),
    ),
  ),
  '/v1/rank': withUnknownField(
    fc.record(
      {
        ...options,
        prompt: loose(text),
        messages: loose(messages),
        candidates: loose(fc.array(fc.oneof(text, fc.array(text, { maxLength: 4 }), messages), { maxLength: 6 })),
        render: trajectoryFields.render,
        step_aggregate: loose(aggregate),
      },
      { requiredKeys: [] },
    ),
  ),
  '/v1/attribute': withUnknownField(
    fc.record({ ...options, ...trajectoryFields, method: loose(fc.constantFrom('min_cumulative', 'sharpest_drop', 'sharpest_abs_drop', 'argmax')) }, { requiredKeys: [] }),
  ),
};

return bodies;
}

const STRICT = families(false);
const CHAOS = families(true);
export const BODIES: Record<Route, fc.Arbitrary<object>> = Object.fromEntries(
  ROUTES.map((route) => [route, fc.oneof({ weight: 3, arbitrary: STRICT[route] }, { weight: 1, arbitrary: CHAOS[route] })]),
) as Record<Route, fc.Arbitrary<object>>;

/** Raw payload text: the JSON of a body, broken JSON, or JSON.parse-only oddities (NaN, 1e999). */
export function payloadOf(route: Route): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 12, arbitrary: BODIES[route].map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
    { weight: 1, arbitrary: BODIES[route].chain((b) => fc.nat().map((cut) => JSON.stringify(b).slice(0, cut % (JSON.stringify(b).length + 1)))) },
    { weight: 1, arbitrary: fc.constantFrom('NaN', '{"beta":NaN}', '{"beta":1e999,"prompt":"up","step":"up"}', '[]', 'null', '{}', '{"items":[]}', '[[[[[[[[', '"\\ud800"') },
  );
}

/** Why an answer is unacceptable, or null. Shared by test/reliability/fuzz.test.ts and bench/fuzz-long.ts. */
export function verdict(status: number, raw: string): string | null {
  // A 504 deadline_exceeded is the client's own timeout_ms (fuzzed down to 1 ms) answered, not a fault.
  if (status === 504 && /"code":"deadline_exceeded"/.test(raw)) return null;
  if (status >= 500) return `status ${status}: ${raw.slice(0, 300)}`;
  let body: any;
  try {
    body = JSON.parse(raw);
  } catch {
    return `status ${status} with a non-JSON body: ${raw.slice(0, 200)}`;
  }
  if (status >= 400) return typeof body?.error?.code === 'string' && body.error.code.length > 0 ? null : `status ${status} without error.code: ${raw.slice(0, 200)}`;
  if (status !== 200) return `unexpected status ${status}`;
  // null is how an unscored step is reported (num_tokens 0: cut away in truncate mode); a null
  // next to scored tokens is a non-finite number that JSON turned into null.
  const bad = nullScoreWithTokens(body);
  if (bad) return `a non-finite score serialized as null: ${JSON.stringify(bad).slice(0, 300)}`;
  return null;
}

function nullScoreWithTokens(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (const v of value) {
      const bad = nullScoreWithTokens(v);
      if (bad) return bad;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const o = value as Record<string, unknown>;
  if ((o.advantage === null || o.log_ratio === null) && o.num_tokens !== 0) return o;
  for (const v of Object.values(o)) {
    const bad = nullScoreWithTokens(v);
    if (bad) return bad;
  }
  return undefined;
}
