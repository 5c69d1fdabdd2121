"""A WordLevel tokenizer over the gridworld's small vocabulary, written as a Hugging Face
tokenizer.json, with a pure-Python encoder that does exactly what the tokenizers library does
with that file (checked in Node by test/text/gridworld-tokenizer.test.ts).

Pre-tokenization: one `Split` pre-tokenizer with the regex PATTERN, behavior "Removed" and
invert true, i.e. the pieces are the regex matches, in order, and everything between them
(spaces) is dropped. No normalizer, no post-processor (the service prepends BOS itself).
A piece outside the vocabulary becomes <unk>. Every piece is a whole word, a single digit run
or a single symbol, so encoding a message on its own gives the same ids as encoding it inside a
longer text (design.md section 2 encodes each message separately).
"""
from __future__ import annotations

import json
import re

PATTERN = r"\n|[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]"
_RE = re.compile(PATTERN)

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
PAD, UNK, BOS, EOS = 0, 1, 2, 3

WORDS = [
    "\n", "[", "]", ":", ",", ".", "#",
    # roles of the plain renderer
    "user", "assistant", "env", "tool", "system",
    # actions
    "up", "down", "left", "right",
    # digits
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    # map symbols
    "S", "G", "P",
    # words of the user and env messages
    "map", "goal",
    "at", "hit", "a", "wall", "fell", "into", "pit", "reached", "out", "of", "steps",
    "invalid", "action",
]

VOCAB = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
ID_TO_TOKEN = {i: t for t, i in VOCAB.items()}
VOCAB_SIZE = len(VOCAB)
ACTION_IDS = {a: VOCAB[a] for a in ("up", "down", "left", "right")}


def pre_tokenize(text: str) -> list:
    return _RE.findall(text)


_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIALS) + ")")


def encode(text: str) -> list:
    """Special tokens written literally in the text are matched first (as the library does with
    its added tokens); the rest is pre-tokenized and looked up."""
    ids = []
    for k, part in enumerate(_SPECIAL_RE.split(text)):
        if k % 2 == 1:
            ids.append(VOCAB[part])
        else:
            ids.extend(VOCAB.get(p, UNK) for p in pre_tokenize(part))
    return ids


def encode_messages(messages) -> list:
    """BOS + each plain-rendered message encoded on its own, concatenated (design.md section 2)."""
    from gridworld import render_plain

    ids = [BOS]
    for seg in render_plain(messages):
        ids.extend(encode(seg))
    return ids


def decode(ids) -> list:
    return [ID_TO_TOKEN.get(int(i), "<unk>") for i in ids]


def tokenizer_json() -> dict:
    added = [
        {"id": VOCAB[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for t in SPECIALS
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": PATTERN},
            "behavior": "Removed",
            "invert": True,
        },
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": VOCAB, "unk_token": "<unk>"},
    }


def tokenizer_config(max_len: int) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": False,
    }


def special_tokens_map() -> dict:
    return {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}


def write_files(outdir, max_len: int) -> None:
    import os

    with open(os.path.join(outdir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(max_len), f, indent=2)
        f.write("\n")
    with open(os.path.join(outdir, "special_tokens_map.json"), "w") as f:
        json.dump(special_tokens_map(), f, indent=2)
        f.write("\n")
