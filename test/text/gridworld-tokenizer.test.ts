/**
 * The embedded default pair's tokenizer (models/gridworld-*) must give in @huggingface/tokenizers
 * exactly the ids the trainer's pure-Python tokenizer gave (tools/train-tiny-pair/tokenizer.py),
 * or the service would score tokens the models never saw. The fixture's ids were written by the
 * trainer; nothing here comes from the Node side.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@huggingface/tokenizers';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const POLICY = path.join(ROOT, 'models', 'gridworld-policy');
const REFERENCE = path.join(ROOT, 'models', 'gridworld-reference');

interface Fixture {
  tokenizer: string;
  cases: { text: string; ids: number[] }[];
  messages: { messages: { role: string; content: string }[]; ids_with_bos: number[] };
}

const readJson = (file: string): any => JSON.parse(fs.readFileSync(file, 'utf8'));
const fixture: Fixture = readJson(path.join(ROOT, 'tools', 'train-tiny-pair', 'tokenizer-fixture.json'));

function load(dir: string): { tok: Tokenizer; config: any } {
  const config = readJson(path.join(dir, 'tokenizer_config.json'));
  return { tok: new Tokenizer(readJson(path.join(dir, 'tokenizer.json')), config), config };
}

const encode = (tok: Tokenizer, text: string): number[] => tok.encode(text, { add_special_tokens: false }).ids;

describe('gridworld tokenizer (models/gridworld-policy, models/gridworld-reference)', () => {
  const { tok, config } = load(POLICY);

  it('policy and reference ship the same tokenizer', () => {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      expect(fs.readFileSync(path.join(REFERENCE, f), 'utf8')).toBe(fs.readFileSync(path.join(POLICY, f), 'utf8'));
    }
  });

  it('gives the ids the trainer wrote for every fixture string', () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(5);
    for (const c of fixture.cases) {
      expect(encode(tok, c.text), JSON.stringify(c.text)).toEqual(c.ids);
    }
  });

  it('maps no fixture token of the format to <unk> except the deliberately unknown words', () => {
    const unk = tok.token_to_id('<unk>');
    expect(unk).toBeTypeOf('number');
    for (const c of fixture.cases.slice(0, 6)) expect(encode(tok, c.text)).not.toContain(unk);
  });

  it('defines BOS/EOS/PAD and the config agrees with config.json', () => {
    const bos = tok.token_to_id(config.bos_token);
    const model = readJson(path.join(POLICY, 'config.json'));
    expect(bos).toBe(model.bos_token_id);
    expect(tok.token_to_id(config.eos_token)).toBe(model.eos_token_id);
    expect(tok.token_to_id(config.pad_token)).toBe(model.pad_token_id);
    expect(config.model_max_length).toBe(model.max_position_embeddings);
    // every id the tokenizer can produce is inside the model's vocabulary
    const vocab = readJson(path.join(POLICY, 'tokenizer.json')).model.vocab as Record<string, number>;
    expect(Math.max(...Object.values(vocab)) + 1).toBe(model.vocab_size);
  });

  it('encodes a message alone exactly as inside a longer text (design.md §2 encodes messages separately)', () => {
    const step = '\n[assistant]: up';
    const alone = encode(tok, step);
    expect(alone.map((id) => tok.id_to_token(id))).toEqual(['\n', '[', 'assistant', ']', ':', 'up']);
    const full = fixture.cases.find((c) => c.text.length > 300)!.text;
    const whole = encode(tok, full);
    // Split the full episode into its plain-rendered messages and encode each on its own.
    const pieces = full.split(/(?=\n\[(?:assistant|env|user)\]: )/);
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.flatMap((p) => encode(tok, p))).toEqual(whole);
  });

  it('plain-renders the fixture episode to the trainer ids (BOS + each message encoded separately)', () => {
    const { messages, ids_with_bos } = fixture.messages;
    const ids = [tok.token_to_id(config.bos_token)!];
    messages.forEach((m, i) => ids.push(...encode(tok, `${i > 0 ? '\n' : ''}[${m.role}]: ${m.content}`)));
    expect(ids).toEqual(ids_with_bos);
  });
});
