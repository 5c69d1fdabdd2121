#!/usr/bin/env python3
"""Generates Llama-style policy/reference pairs with random weights for the benchmarks (issue 5).

Both sides of every comparison run the same weights: each pair is written as ONNX exports with
optimum's names (with and without KV-cache inputs) and as torch state dicts.

    /usr/bin/python3 tools/bench-models/make_pair.py --out bench/models --vocab 32000 --hidden 128

Layout (git-ignored, regenerated on demand):
    OUT/llama-v{V}-h{H}/{policy,reference}/model.onnx       input_ids, attention_mask, position_ids → logits
    OUT/llama-v{V}-h{H}/{policy,reference}/kv/model.onnx    + past_key_values.{i}.key/value → logits, present.*
    OUT/llama-v{V}-h{H}/{policy,reference}/weights.pt       torch state dict (bench/paper_pattern.py)
    .../config.json, tokenizer.json, tokenizer_config.json  (a byte-level-free WordLevel tokenizer over the ids)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(x, positions, head_dim: int):
    # x [B, h, S, d]; positions [B, S]
    half = head_dim // 2
    inv = 1.0 / (10000 ** (torch.arange(0, half, dtype=torch.float32) / half))
    angles = positions.to(torch.float32)[:, None, :, None] * inv[None, None, None, :]
    cos, sin = torch.cos(angles), torch.sin(angles)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.norm1, self.norm2 = RMSNorm(hidden), RMSNorm(hidden)
        self.q = nn.Linear(hidden, heads * self.head_dim, bias=False)
        self.k = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(heads * self.head_dim, hidden, bias=False)
        self.gate = nn.Linear(hidden, 4 * hidden, bias=False)
        self.up = nn.Linear(hidden, 4 * hidden, bias=False)
        self.down = nn.Linear(4 * hidden, hidden, bias=False)

    def forward(self, x, positions, bias, past_k=None, past_v=None):
        B, S, _ = x.shape
        h = self.norm1(x)
        q = self.q(h).view(B, S, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(B, S, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(B, S, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotary(q, positions, self.head_dim), rotary(k, positions, self.head_dim)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        rep = self.heads // self.kv_heads
        # grouped-query attention without repeat_interleave (its export has static shapes)
        T = k.shape[2]
        kk = k[:, :, None].expand(B, self.kv_heads, rep, T, self.head_dim).reshape(B, self.heads, T, self.head_dim)
        vv = v[:, :, None].expand(B, self.kv_heads, rep, T, self.head_dim).reshape(B, self.heads, T, self.head_dim)
        att = (q @ kk.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
        x = x + self.o((att.softmax(-1) @ vv).transpose(1, 2).reshape(B, S, -1))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), present


class LlamaLike(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, kv_heads: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads, kv_heads) for _ in range(layers)])
        self.norm = RMSNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)  # untied: the export ends in MatMul → logits

    def forward(self, input_ids, attention_mask, position_ids, past=None):
        B, S = input_ids.shape
        total = attention_mask.shape[1]
        past_len = total - S
        # causal over the total length, plus key padding from the mask; large negative, not -inf
        q_pos = torch.arange(S)[:, None] + past_len
        k_pos = torch.arange(total)[None, :]
        causal = (k_pos <= q_pos).to(torch.float32)
        allowed = causal[None, None] * attention_mask[:, None, None, :].to(torch.float32)
        bias = (1.0 - allowed) * -1e9
        x = self.embed(input_ids)
        presents = []
        for i, block in enumerate(self.blocks):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past is not None else (None, None)
            x, present = block(x, position_ids, bias, pk, pv)
            presents.append(present)
        return self.lm_head(self.norm(x)), presents


class KvWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        logits, presents = self.model(input_ids, attention_mask, position_ids, list(past))
        return (logits, *[t for kv in presents for t in kv])


class PlainWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids):
        return self.model(input_ids, attention_mask, position_ids)[0]


def export(model: LlamaLike, out_dir: str, layers: int, kv_heads: int, head_dim: int, with_kv: bool):
    os.makedirs(out_dir, exist_ok=True)
    ids = torch.randint(0, 100, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.long)
    pos = torch.arange(5)[None].repeat(2, 1)
    names = ["input_ids", "attention_mask", "position_ids"]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    outputs = ["logits"]
    if with_kv:
        past = []
        for i in range(layers):
            for kind in ("key", "value"):
                names.append(f"past_key_values.{i}.{kind}")
                axes[names[-1]] = {0: "batch_size", 2: "past_sequence_length"}
                outputs.append(f"present.{i}.{kind}")
                axes[outputs[-1]] = {0: "batch_size", 2: "total_sequence_length"}
                past.append(torch.zeros(2, kv_heads, 0, head_dim))
        args = (ids, mask, pos, *past)
        wrapper = KvWrapper(model)
    else:
        args = (ids, mask, pos)
        wrapper = PlainWrapper(model)
    torch.onnx.export(wrapper, args, os.path.join(out_dir, "model.onnx"), input_names=names,
                      output_names=outputs, dynamic_axes=axes, opset_version=14, do_constant_folding=True)


def write_side_files(out_dir: str, vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, beta=None):
    config = {"model_type": "llama", "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads, "max_position_embeddings": 4096,
              "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False}
    if beta is not None:
        config["kl_beta"] = beta
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    # A WordLevel tokenizer whose tokens are "t{id}": the benchmarks send token ids, but every
    # model dir must be loadable as-is by the server.
    vocab_map = {f"t{i}": i for i in range(vocab)}
    vocab_map["<unk>"] = vocab_map.pop("t0")
    vocab_map["<s>"] = vocab_map.pop("t1")
    vocab_map["</s>"] = vocab_map.pop("t2")
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True} for i, c in [(0, "<unk>"), (1, "<s>"), (2, "</s>")]],
           "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None,
           "decoder": None, "model": {"type": "WordLevel", "vocab": vocab_map, "unk_token": "<unk>"}}
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 4096}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/models")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--noise", type=float, default=0.05, help="reference = policy + noise·std per tensor")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    name = f"llama-v{args.vocab}-h{args.hidden}"
    root = os.path.join(args.out, name)
    policy = LlamaLike(args.vocab, args.hidden, args.layers, args.heads, args.kv_heads).eval()
    with torch.no_grad():
        for p in policy.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02 if p.shape[0] != args.vocab else 0.05)
    reference = LlamaLike(args.vocab, args.hidden, args.layers, args.heads, args.kv_heads).eval()
    reference.load_state_dict(policy.state_dict())
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * args.noise * (p.std() if p.numel() > 1 else 1.0))
    head_dim = args.hidden // args.heads
    for role, model in (("policy", policy), ("reference", reference)):
        d = os.path.join(root, role)
        os.makedirs(d, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(d, "weights.pt"))
        with torch.no_grad():
            export(model, d, args.layers, args.kv_heads, head_dim, with_kv=False)
            export(model, os.path.join(d, "kv"), args.layers, args.kv_heads, head_dim, with_kv=True)
        beta = 1.0 if role == "policy" else None
        write_side_files(d, args.vocab, args.hidden, args.layers, args.heads, args.kv_heads, beta)
        write_side_files(os.path.join(d, "kv"), args.vocab, args.hidden, args.layers, args.heads, args.kv_heads, beta)
    with open(os.path.join(root, "arch.json"), "w") as f:
        json.dump(vars(args) | {"name": name}, f, indent=1)
    print(root)


if __name__ == "__main__":
    main()
