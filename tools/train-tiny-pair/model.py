"""A tiny decoder-only transformer (pre-LayerNorm, learned absolute positions read from
`position_ids`, GELU MLP, untied bias-free LM head) with an optional KV cache for sampling.

The attention mask is the causal mask (by index) AND the key-padding mask (attention_mask),
applied with `where(mask, scores, -1e9)` rather than -inf, so a fully masked row (a left pad)
stays finite. With position_ids = cumsum(attention_mask) - 1 (clamped at 0), left-padded and
unpadded inputs give the same logits at the real positions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e9


@dataclass
class Config:
    vocab_size: int
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 384
    max_positions: int = 512

    def to_dict(self):
        return asdict(self)


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_head = cfg.d_model // cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x, mask, past=None):
        # x [B, L, D]; mask bool [B, 1, L, T+L]; past (k, v) each [B, H, T, dh] or None
        B, L, D = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).split(D, dim=2)
        q = q.view(B, L, self.n_heads, self.d_head).transpose(1, 2)
        k = k.view(B, L, self.n_heads, self.d_head).transpose(1, 2)
        v = v.view(B, L, self.n_heads, self.d_head).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        att = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(self.d_head))
        att = torch.where(mask, att, torch.full_like(att, NEG))
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(B, L, D)
        x = x + self.proj(y)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return x, (k, v)


class TinyLM(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def core(self, input_ids, position_ids, mask, past=None):
        x = self.tok(input_ids) + self.pos(position_ids)
        new_past = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, mask, None if past is None else past[i])
            new_past.append(kv)
        return self.lm_head(self.ln_f(x)), new_past

    def forward(self, input_ids, attention_mask, position_ids):
        """The exported signature: logits [B, S, V] for a (possibly padded) batch."""
        S = input_ids.shape[1]
        idx = torch.arange(S, device=input_ids.device)
        causal = idx.unsqueeze(0) <= idx.unsqueeze(1)  # [S, S]: key j <= query i
        keys = attention_mask.unsqueeze(1).unsqueeze(2) > 0  # [B, 1, 1, S]
        mask = causal.unsqueeze(0).unsqueeze(0) & keys  # [B, 1, S, S]
        logits, _ = self.core(input_ids, position_ids, mask)
        return logits


def positions_from_mask(attention_mask):
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)
