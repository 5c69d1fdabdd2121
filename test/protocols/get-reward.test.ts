/**
 * POST /get_reward (OpenRLHF's remote reward model) on the embedded default pair. The oracle is
 * POST /v1/score: for 10 queries built from the evaluation episodes (the plain rendering up to an
 * assistant message is the prompt, that message's piece "\n[assistant]: up" the response),
 * rewards[i] must equal /v1/score's advantage for the same prompt and step (1e-9), and
 * extra_logs its policy and reference log-probs. The body is OpenRLHF's: {query, prompts, labels}.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPairApp, gridworldEpisodes, type DefaultPairApp } from '../helpers/default-pair-app.js';

let served: DefaultPairApp;
beforeAll(async () => {
  // Prefix cache off: both routes then run the same full forward pass, so equal means equal to
  // 1e-9. With it on, the second of two calls reads the first's cached KV and differs from a full
  // pass by float32 rounding (~1e-7 a log-prob), which test/engine/prefix-cache.test.ts bounds.
  served = await defaultPairApp({ prefix_cache_mb: 0 });
});
afterAll(async () => served?.close());

async function post(url: string, payload: unknown) {
  const res = await served.app.inject({ method: 'POST', url, payload: payload as object });
  return { status: res.statusCode, body: res.json() };
}

/** The paper's plain format written out here: "[role]: content", "\n" before all but the first. */
const plain = (m: { role: string; content: string }, i: number) => `${i > 0 ? '\n' : ''}[${m.role}]: ${m.content}`;

/** Episode e's k-th assistant message (k = e mod its action count): prompt = what precedes it, response = its piece. */
function pairs(count: number): { prompt: string; response: string }[] {
  return gridworldEpisodes(count).map((episode, e) => {
    const assistant = episode.messages.map((m: any, i: number) => (m.role === 'assistant' ? i : -1)).filter((i: number) => i >= 0);
    const at = assistant[e % assistant.length];
    return {
      prompt: episode.messages.slice(0, at).map(plain).join(''),
      response: plain(episode.messages[at], at),
    };
  });
}

describe('POST /get_reward', () => {
  const PAIRS = pairs(10);
  const body = { query: PAIRS.map((p) => p.prompt + p.response), prompts: PAIRS.map((p) => p.prompt), labels: PAIRS.map(() => null) };

  it('rewards equal /v1/score advantages of the same prompt and response (1e-9), with log-probs in extra_logs', async () => {
    const reward = await post('/get_reward', body);
    expect(reward.status).toBe(200);
    const score = await post('/v1/score', { items: PAIRS.map((p) => ({ prompt: p.prompt, step: p.response })) });
    expect(score.status).toBe(200);
    expect(reward.body.rewards).toHaveLength(10);
    reward.body.rewards.forEach((r: number, i: number) => {
      expect(Math.abs(r - score.body.results[i].advantage)).toBeLessThanOrEqual(1e-9);
      expect(reward.body.scores[i]).toBe(r);
      expect(Math.abs(reward.body.extra_logs.policy_logprob[i] - score.body.results[i].policy_logprob)).toBeLessThanOrEqual(1e-9);
      expect(Math.abs(reward.body.extra_logs.reference_logprob[i] - score.body.results[i].reference_logprob)).toBeLessThanOrEqual(1e-9);
      expect(reward.body.extra_logs.num_tokens[i]).toBe(score.body.results[i].num_tokens);
    });
    // Not all equal: the queries differ, and so do their rewards.
    expect(new Set(reward.body.rewards).size).toBeGreaterThan(1);
  });

  it('takes the token aggregate, β and scorer from the query string, as OpenRLHF\'s remote_rm_url can carry them', async () => {
    const reward = await post('/get_reward?token_aggregate=mean&beta=0.5&model=default', body);
    expect(reward.status).toBe(200);
    const score = await post('/v1/score', { items: PAIRS.map((p) => ({ prompt: p.prompt, step: p.response })), token_aggregate: 'mean', beta: 0.5 });
    reward.body.rewards.forEach((r: number, i: number) => expect(Math.abs(r - score.body.results[i].advantage)).toBeLessThanOrEqual(1e-9));
    expect((await post('/get_reward?token_aggregate=median', body)).body.error.code).toBe('invalid_request');
    expect((await post('/get_reward?model=nope', body)).status).toBe(404);
  });

  it('a prompt that is not a prefix of its query is a 422 naming its index', async () => {
    const prompts = [...body.prompts];
    prompts[3] = 'something else';
    const res = await post('/get_reward', { ...body, prompts });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('prompt_not_prefix');
    expect(res.body.error.message).toContain('prompts[3]');
    expect(res.body.error.message).toContain('query[3]');
    expect(res.body.error.item).toBe(3);
  });

  it('an unscorable response names its query; missing or unpaired prompts are 400s', async () => {
    const query = [...body.query];
    query[6] = body.prompts[6]; // empty response
    const empty = await post('/get_reward', { ...body, query });
    expect(empty.status).toBe(422);
    expect(empty.body.error.code).toBe('empty_step');
    expect(empty.body.error.message).toMatch(/^query\[6\]: /);
    expect(empty.body.error.item).toBe(6);
    const beta = await post('/get_reward?beta=0', body);
    expect(beta.body.error.code).toBe('invalid_beta');
    expect(beta.body.error.item).toBeUndefined();
    expect((await post('/get_reward', { query: body.query })).body.error.code).toBe('missing_prompts');
    expect((await post('/get_reward', { query: body.query, prompts: body.prompts.slice(1) })).body.error.code).toBe('length_mismatch');
    expect((await post('/get_reward', { ...body, stray: 1 })).body.error.code).toBe('unknown_field');
  });
});
