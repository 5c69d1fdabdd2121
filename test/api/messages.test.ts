/**
 * Error and warning texts a newcomer reads (issue 16), on the embedded default pair:
 *  - a role typo ("assitant"): 422 no_steps naming the roles seen and the action roles looked for;
 *  - malformed_json: the position (with line and column) where the body broke, computed here from
 *    the body independently, and never the body itself;
 *  - English text on the gridworld pair: usage.unknown_tokens is the count of words outside the
 *    tokenizer's vocabulary (counted here from tokenizer.json and its split pattern), with a
 *    `warnings` entry; none when every word is known.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPairApp, GRIDWORLD_POLICY, type DefaultPairApp } from '../helpers/default-pair-app.js';

let service: DefaultPairApp;
beforeAll(async () => {
  service = await defaultPairApp();
});
afterAll(async () => service?.close());

const post = async (url: string, payload: unknown, headers: Record<string, string> = {}) => {
  const res = await service.app.inject({ method: 'POST', url, payload: payload as string, headers });
  return { status: res.statusCode, body: res.json() };
};

describe('no_steps names what it saw', () => {
  it('a role typo lists the roles seen and the action roles looked for', async () => {
    const r = await post('/v1/trajectories/score', {
      messages: [
        { role: 'user', content: 'map :' },
        { role: 'assitant', content: 'up' },
      ],
    });
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('no_steps');
    expect(r.body.error.message).toContain('"user", "assitant"');
    expect(r.body.error.message).toContain('action roles looked for are "assistant"');
    const custom = await post('/v1/trajectories/score', { messages: [{ role: 'user', content: 'map', name: 'Planner' }], action_roles: ['Coder'] });
    expect(custom.body.error.message).toMatch(/roles seen are "user" and the names "Planner", but the action roles looked for are "Coder"/);
  });
});

describe('malformed_json says where', () => {
  const SECRET = 'zebrasecretmarker';
  it.each([
    [`{"prompt":"${SECRET}", bad}`, `{"prompt":"${SECRET}", `.length],
    [`{"prompt": "${SECRET}",\n "step": "up"\n "x": 1}`, `{"prompt": "${SECRET}",\n "step": "up"\n `.length],
    [`{"prompt":"${SECRET}"}}`, `{"prompt":"${SECRET}"}`.length],
  ])('%j', async (body, position) => {
    const r = await post('/v1/score', body, { 'content-type': 'application/json' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('malformed_json');
    const before = body.slice(0, position);
    const line = before.split('\n').length;
    const column = position - before.lastIndexOf('\n');
    expect(r.body.error.message).toContain(`at position ${position} (line ${line}, column ${column})`);
    expect(r.body.error.message).not.toContain(SECRET);
  });

  it('a body cut short, and a NaN literal, say so', async () => {
    const cut = await post('/v1/score', '{"prompt":"map", "step": "u', { 'content-type': 'application/json' });
    expect(cut.body.error.code).toBe('malformed_json');
    expect(cut.body.error.message).toMatch(/position 27|ends at position 27/);
    const nan = await post('/v1/score', '{"prompt":"map","step":"up","beta":NaN}', { 'content-type': 'application/json' });
    expect(nan.body.error.code).toBe('malformed_json');
    expect(nan.body.error.message).toContain('NaN');
  });
});

describe('usage.unknown_tokens and warnings', () => {
  const tokenizer = JSON.parse(fs.readFileSync(path.join(GRIDWORLD_POLICY, 'tokenizer.json'), 'utf8'));
  const vocab = new Set(Object.keys(tokenizer.model.vocab));
  const split = new RegExp(tokenizer.pre_tokenizer.pattern.Regex, 'g');
  const unknownWords = (text: string) => (text.match(split) ?? []).filter((w) => !vocab.has(w)).length;

  it('English on the gridworld pair: the count of out-of-vocabulary words, and a warning', async () => {
    const prompt = '[user]: Please book a flight to Paris';
    const step = '\n[assistant]: Sure, booked';
    const r = await post('/v1/score', { prompt, step });
    expect(r.status).toBe(200);
    const expected = unknownWords(prompt) + unknownWords(step);
    expect(expected).toBe(7); // Please book flight to Paris Sure booked ("a" is a gridworld word)
    expect(r.body.usage.unknown_tokens).toBe(expected);
    expect(r.body.warnings).toHaveLength(1);
    expect(r.body.warnings[0]).toContain(`${expected} of ${r.body.usage.prompt_tokens + r.body.usage.scored_tokens} tokens`);

    const traj = await post('/v1/trajectories/score', { messages: [{ role: 'user', content: 'Please go' }, { role: 'assistant', content: 'up' }] });
    expect(traj.body.usage.unknown_tokens).toBe(unknownWords('Please go'));
    expect(traj.body.warnings).toHaveLength(1);
    const rank = await post('/v1/rank', { prompt: '[user]: hello', candidates: ['\n[assistant]: up', '\n[assistant]: left'] });
    // usage sums over the sequences that went through the models: one per candidate, each with the prompt.
    expect(rank.body.usage.unknown_tokens).toBe(2 * unknownWords('hello'));
    expect(rank.body.warnings).toHaveLength(1);
  });

  it('text the tokenizer covers: 0 and no warnings', async () => {
    const r = await post('/v1/score', { prompt: '[user]: map :\nP . . . G', step: '\n[assistant]: right' });
    expect(r.body.usage.unknown_tokens).toBe(0);
    expect(r.body.warnings).toBeUndefined();
  });
});
