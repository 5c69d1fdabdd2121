/**
 * loadTokenizer on real tokenizers. Expected ids are published, independently known values
 * (GPT-2 "Hello world" = [15496, 995], Llama "Hello world" = [15043, 3186], Qwen2.5 "Hello" =
 * 9707), not outputs of this code.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTextTokenizer, loadTokenizer } from '../../src/text/tokenizer.js';
import { describeIf, needShared } from '../helpers/shared.js';
import { DIRS, readJson } from './real-files.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokenizer-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const HAVE_SHARED = needShared(import.meta.url, [DIRS.gpt2, DIRS.tinyGpt2, DIRS.llama, DIRS.qwen25, DIRS.qwen3]);

describeIf(HAVE_SHARED)('loadTokenizer on real tokenizers', async () => {
  const gpt2 = await loadTokenizer(DIRS.gpt2);
  const tinyGpt2 = await loadTokenizer(DIRS.tinyGpt2);
  const llama = await loadTokenizer(DIRS.llama);
  const qwen25 = await loadTokenizer(DIRS.qwen25);
  const qwen3 = await loadTokenizer(DIRS.qwen3);
  const gridworld = await loadTokenizer(DIRS.gridworld);

  it('encodes to the published ids, never adding special tokens', () => {
    expect(gpt2.encode('Hello world')).toEqual([15496, 995]);
    expect(gpt2.encode(' world')).toEqual([995]);
    expect(tinyGpt2.encode('Hello world')).toEqual([15496, 995]);
    expect(llama.encode('Hello world')).toEqual([15043, 3186]); // no <s> (1) in front
    expect(qwen25.encode('Hello')).toEqual([9707]);
    expect(qwen3.encode('Hello')).toEqual([9707]);
    expect(gpt2.encode('')).toEqual([]);
  });

  it('still recognizes special-token text inside the input', () => {
    expect(qwen25.encode('<|im_start|>')).toEqual([151644]);
    expect(gpt2.encode('<|endoftext|>')).toEqual([50256]);
  });

  it('finds BOS where the tokenizer defines one, and none for Qwen', () => {
    expect(llama.bosId).toBe(1);
    expect(gpt2.bosId).toBe(50256);
    expect(qwen25.bosId).toBeNull();
    expect(qwen3.bosId).toBeNull();
    expect(gridworld.bosId).toBe(2);
  });

  it('finds EOS', () => {
    expect(llama.eosId).toBe(2);
    expect(gpt2.eosId).toBe(50256);
    expect(qwen25.eosId).toBe(151645);
    expect(gridworld.eosId).toBe(3);
  });

  it('counts added tokens in the vocabulary size', () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect(llama.vocabSize).toBe(32000);
    expect(gridworld.vocabSize).toBe(48);
    // 151643 BPE tokens + 22 added (<|endoftext|> .. <|file_sep|>)
    expect(qwen25.vocabSize).toBe(151665);
    // the tiny GPT-2's tokenizer adds 38 whitespace tokens after <|endoftext|>
    expect(tinyGpt2.vocabSize).toBe(50257 + 38);
  });

  it('reads chat templates, max length and special tokens', () => {
    expect(llama.chatTemplate).toContain('[INST]');
    expect(qwen25.chatTemplate).toContain('<|im_start|>');
    expect(gpt2.chatTemplate).toBeNull();
    expect(llama.modelMaxLength).toBe(2048);
    expect(gpt2.modelMaxLength).toBe(1024);
    expect(llama.specialTokens).toMatchObject({ bos_token: '<s>', eos_token: '</s>' });
    expect(qwen25.specialTokens.bos_token).toBeUndefined();
    expect(qwen25.specialTokens.eos_token).toBe('<|im_end|>');
  });

  it('decodes exactly and gives each token its own text with its leading space', () => {
    expect(gpt2.decode([15496, 995])).toBe('Hello world');
    expect(gpt2.tokenText(995)).toBe(' world');
    // Llama's decoder strips the first token's leading space; a token's own text keeps it.
    expect(llama.tokenText(3186)).toBe(' world');
    expect(llama.tokenText(13)).toBe('\n');
    expect(qwen25.tokenText(151644)).toBe('<|im_start|>');
    expect(qwen25.decode(qwen25.encode('a <|im_end|>\n b'))).toBe('a <|im_end|>\n b');
  });
});

describeIf(HAVE_SHARED)('tokenizer files', () => {
  const llamaFiles = () => ({
    tokenizerJson: readJson(path.join(DIRS.llama, 'tokenizer.json')),
    tokenizerConfig: readJson(path.join(DIRS.llama, 'tokenizer_config.json')),
  });

  it('names BOS whatever add_bos_token says (the paper prepends it), and keeps add_bos_token for joint', () => {
    const files = llamaFiles();
    files.tokenizerConfig.add_bos_token = false;
    const tok = createTextTokenizer(files, 'test');
    expect(tok.bosId).toBe(1); // <s> in the Llama vocabulary
    expect(tok.addBosToken).toBe(false);
    delete files.tokenizerConfig.add_bos_token;
    expect(createTextTokenizer(files, 'test').addBosToken).toBeNull();
  });

  it('takes bos_token as an AddedToken object from special_tokens_map.json when the config lacks it', () => {
    const files = llamaFiles();
    delete files.tokenizerConfig.bos_token;
    const map = readJson(path.join(DIRS.llama, 'special_tokens_map.json'));
    expect(map.bos_token).toMatchObject({ content: '<s>' });
    expect(createTextTokenizer({ ...files, specialTokensMap: map }, 'test').bosId).toBe(1);
    expect(createTextTokenizer(files, 'test').bosId).toBeNull();
  });

  it('takes the default of a list of chat templates, and ignores a limitless model_max_length', () => {
    const files = llamaFiles();
    files.tokenizerConfig.chat_template = [
      { name: 'tool_use', template: 'T' },
      { name: 'default', template: 'D' },
    ];
    files.tokenizerConfig.model_max_length = 1e30;
    const tok = createTextTokenizer(files, 'test');
    expect(tok.chatTemplate).toBe('D');
    expect(tok.modelMaxLength).toBeNull();
  });

  it('falls back to config.json eos_token_id', () => {
    const files = llamaFiles();
    delete files.tokenizerConfig.eos_token;
    expect(createTextTokenizer({ ...files, modelConfig: { eos_token_id: [2, 7] } }, 'test').eosId).toBe(2);
  });

  it('loads tokenizer.json.gz (the Qwen directories hold only the .gz)', async () => {
    expect(fs.existsSync(path.join(DIRS.qwen25, 'tokenizer.json'))).toBe(false);
    expect((await loadTokenizer(DIRS.qwen25)).encode('Hello')).toEqual([9707]);
  });

  it('names the path when a file is missing or corrupt', async () => {
    const missing = path.join(tmp, 'nothing-here');
    await expect(loadTokenizer(missing)).rejects.toThrow(path.join(missing, 'tokenizer.json'));

    const noConfig = path.join(tmp, 'no-config');
    fs.mkdirSync(noConfig);
    fs.copyFileSync(path.join(DIRS.gpt2, 'tokenizer.json'), path.join(noConfig, 'tokenizer.json'));
    await expect(loadTokenizer(noConfig)).rejects.toThrow(path.join(noConfig, 'tokenizer_config.json'));

    const corrupt = path.join(tmp, 'corrupt');
    fs.mkdirSync(corrupt);
    fs.writeFileSync(path.join(corrupt, 'tokenizer.json'), '{"model": ');
    fs.copyFileSync(path.join(DIRS.gpt2, 'tokenizer_config.json'), path.join(corrupt, 'tokenizer_config.json'));
    await expect(loadTokenizer(corrupt)).rejects.toThrow(path.join(corrupt, 'tokenizer.json'));

    const badGz = path.join(tmp, 'bad-gz');
    fs.mkdirSync(badGz);
    fs.writeFileSync(path.join(badGz, 'tokenizer.json.gz'), 'not gzip');
    fs.copyFileSync(path.join(DIRS.gpt2, 'tokenizer_config.json'), path.join(badGz, 'tokenizer_config.json'));
    await expect(loadTokenizer(badGz)).rejects.toThrow(path.join(badGz, 'tokenizer.json.gz'));
  });

  it('refuses a bos_token that is not in the vocabulary', () => {
    const files = llamaFiles();
    files.tokenizerConfig.bos_token = '<no-such-token>';
    expect(() => createTextTokenizer(files, '/some/dir/tokenizer.json')).toThrow(/\/some\/dir\/tokenizer.json.*no-such-token/);
  });
});
