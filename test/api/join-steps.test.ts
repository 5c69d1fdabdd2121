/**
 * ProcessBench `join_steps` (issue 16), on a bigram fixture pair whose tokenizer carries a
 * Llama-2-style chat template (roles must alternate user/assistant):
 *  - without it, render chat_template refuses the record's consecutive assistant messages with
 *    422 chat_template_error, and the message says why and names join_steps;
 *  - with it, the steps are one assistant message with one span per step, step k at index k + 1
 *    (mistake_step counts that way), and every number equals a hand-built `segments` request
 *    that writes the same template text piece by piece.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { BOS_ID, fixtureVocabulary, randomTable, writeBigramModel } from '../helpers/onnx-fixtures.js';

const V = 24;
const LLAMA2_TEMPLATE =
  "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-join-'));
let service: DefaultPairApp;
const words = fixtureVocabulary(V).slice(4); // the non-special words
const w = (...k: number[]) => k.map((i) => words[i % words.length]).join(' ');
const RECORD = { id: 'pb-1', problem: w(0, 1, 2), steps: [w(3, 4), w(5, 6, 7), w(8)], label: 1 };

beforeAll(async () => {
  const policy = path.join(tmp, 'policy');
  const reference = path.join(tmp, 'reference');
  writeBigramModel(policy, { table: randomTable(V, 31) });
  writeBigramModel(reference, { table: randomTable(V, 32) });
  const configFile = path.join(policy, 'tokenizer_config.json');
  fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), chat_template: LLAMA2_TEMPLATE }));
  service = await defaultPairApp({}, { policy, reference, max_length: 256 });
});
afterAll(async () => {
  await service?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const post = async (payload: unknown) => {
  const res = await service.app.inject({ method: 'POST', url: '/v1/trajectories/score', payload: payload as object });
  return { status: res.statusCode, body: res.json() };
};

describe('ProcessBench join_steps', () => {
  it('a template that needs alternating roles refuses the record; the error says why and names join_steps', async () => {
    const r = await post({ format: 'processbench', data: RECORD, render: 'chat_template' });
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('chat_template_error');
    expect(r.body.error.message).toContain('Conversation roles must alternate');
    expect(r.body.error.message).toContain('join_steps: true');
  });

  it('join_steps: one assistant message, a span per step, the numbers of the same text built by hand', async () => {
    const joined = await post({ format: 'processbench', data: RECORD, render: 'chat_template', join_steps: true, return_tokens: true });
    expect(joined.status).toBe(200);
    expect(joined.body.steps.map((s: any) => s.index)).toEqual([1, 2, 3]);
    expect(joined.body.labels).toEqual({ success: false, mistake_step: 2 });
    // The template's text, written out: <bos>[INST] problem [/INST] step1\n\nstep2\n\nstep3 <eos>.
    const segments = [
      { ids: [BOS_ID] },
      { text: `[INST] ${RECORD.problem} [/INST] ` },
      { text: RECORD.steps[0], score: true },
      { text: '\n\n' },
      { text: RECORD.steps[1], score: true },
      { text: '\n\n' },
      { text: RECORD.steps[2], score: true },
      { text: ' <eos>' },
    ];
    const byHand = await post({ segments, return_tokens: true });
    expect(byHand.status).toBe(200);
    expect(joined.body.num_tokens).toBe(byHand.body.num_tokens);
    joined.body.steps.forEach((s: any, k: number) => {
      expect(s.num_tokens).toBe(RECORD.steps[k].split(' ').length);
      expect(s.tokens.map((t: any) => t.id)).toEqual(byHand.body.steps[k].tokens.map((t: any) => t.id));
      expect(Math.abs(s.advantage - byHand.body.steps[k].advantage)).toBeLessThan(1e-9);
      expect(s.advantage).not.toBe(0); // two different random tables: a real log-ratio
    });
  });

  it('the default is unchanged (one message per step), and join_steps belongs to processbench only', async () => {
    const plain = await post({ format: 'processbench', data: RECORD });
    expect(plain.body.steps.map((s: any) => s.index)).toEqual([1, 2, 3]);
    const joinedPlain = await post({ format: 'processbench', data: RECORD, join_steps: true });
    expect(joinedPlain.status).toBe(200);
    expect(joinedPlain.body.steps.map((s: any) => s.index)).toEqual([1, 2, 3]);
    const other = await post({ format: 'messages', data: { messages: [{ role: 'user', content: w(1) }, { role: 'assistant', content: w(2) }] }, join_steps: true });
    expect(other.status).toBe(400);
    expect(other.body.error.message).toContain('join_steps applies to format "processbench"');
  });
});
