#!/usr/bin/env python3
"""Exports the with-past variant of the default pair from the committed no-past exports.

For each of models/gridworld-reference and models/gridworld-policy: rebuilds the TinyLM from the
weights in its model.onnx (no training, nothing random), and writes decoder_with_past_model.onnx
next to it, with optimum's names:

    inputs   input_ids, position_ids [B, S]; attention_mask [B, P + S];
             past_key_values.{i}.key / .value [B, heads, P, head]
    outputs  logits [B, S, V]; present.{i}.key / .value [B, heads, P + S, head]

Key j is visible to new token i when attention_mask[j] = 1 and j <= P + i, so a past whose rows
are right-aligned (masked zeros before them) and right-padded new tokens both work. train.py
calls this after its own export; it is byte-reproducible (run it twice and compare sha256).

    /usr/bin/python3 tools/train-tiny-pair/export_past.py [--models models]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from model import Config, TinyLM  # noqa: E402

WITH_PAST = "decoder_with_past_model.onnx"


def load_from_onnx(path: str) -> TinyLM:
    """TinyLM with the weights of a committed export (Linear weights are stored transposed as MatMul inputs)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    conf = json.load(open(os.path.join(os.path.dirname(path), "config.json")))
    cfg = Config(vocab_size=conf["vocab_size"], d_model=conf["hidden_size"], n_layers=conf["num_hidden_layers"],
                 n_heads=conf["num_attention_heads"], d_ff=conf["intermediate_size"],
                 max_positions=conf["max_position_embeddings"])
    lm = TinyLM(cfg)
    state = {}
    for n in m.graph.node:  # "/blocks.0/qkv/MatMul" → blocks.0.qkv.weight = W^T
        if n.op_type == "MatMul" and n.input[1] in inits:
            module = n.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            state[f"{module}.weight"] = inits[n.input[1]].t().contiguous()
    for name, t in inits.items():
        if not name.startswith("onnx::"):
            state[name] = t
    missing = set(lm.state_dict()) - set(state)
    assert not missing, f"{path}: weights not found for {sorted(missing)}"
    lm.load_state_dict(state)
    return lm.eval()


class WithPast(nn.Module):
    def __init__(self, lm: TinyLM):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask, position_ids, *past):
        S = input_ids.shape[1]
        T = attention_mask.shape[1]
        q = torch.arange(S) + (T - S)
        k = torch.arange(T)
        causal = k.unsqueeze(0) <= q.unsqueeze(1)  # [S, T]
        keys = attention_mask.unsqueeze(1).unsqueeze(2) > 0  # [B, 1, 1, T]
        mask = causal.unsqueeze(0).unsqueeze(0) & keys
        kv = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
        logits, presents = self.lm.core(input_ids, position_ids, mask, kv)
        return (logits, *[t for pair in presents for t in pair])


def export(lm: TinyLM, path: str) -> None:
    cfg = lm.cfg
    heads, head = cfg.n_heads, cfg.d_model // cfg.n_heads
    B, S, P = 2, 4, 3
    ids = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 10]])
    mask = torch.ones(B, P + S, dtype=torch.long)
    pos = torch.arange(P, P + S).unsqueeze(0).repeat(B, 1)
    names = ["input_ids", "attention_mask", "position_ids"]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    outputs = ["logits"]
    past = []
    for i in range(cfg.n_layers):
        for kind in ("key", "value"):
            names.append(f"past_key_values.{i}.{kind}")
            axes[names[-1]] = {0: "batch_size", 2: "past_sequence_length"}
            outputs.append(f"present.{i}.{kind}")
            axes[outputs[-1]] = {0: "batch_size", 2: "total_sequence_length"}
            past.append(torch.zeros(B, heads, P, head))
    with torch.no_grad():
        torch.onnx.export(WithPast(lm), (ids, mask, pos, *past), path, input_names=names, output_names=outputs,
                          dynamic_axes=axes, opset_version=14, do_constant_folding=True)
    import onnx

    m = onnx.load(path)
    onnx.checker.check_model(m)
    producer = next(n for n in m.graph.node if "logits" in n.output)
    assert producer.op_type == "MatMul", f"logits come from {producer.op_type}"


def check_past(lm: TinyLM) -> float:
    """Torch: the with-past wrapper over a split sequence equals the plain forward (max |diff| of logits)."""
    torch.manual_seed(0)
    ids = torch.randint(4, lm.cfg.vocab_size, (1, 40))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        full = lm(ids, mask, torch.arange(40).unsqueeze(0))
        w = WithPast(lm)
        empty = [torch.zeros(1, lm.cfg.n_heads, 0, lm.cfg.d_model // lm.cfg.n_heads) for _ in range(2 * lm.cfg.n_layers)]
        first = w(ids[:, :16], mask[:, :16], torch.arange(16).unsqueeze(0), *empty)
        second = w(ids[:, 16:], mask, torch.arange(16, 40).unsqueeze(0), *first[1:])
    split = torch.cat([first[0], second[0]], dim=1)
    return float((split - full).abs().max())


def export_dir(model_dir: str) -> str:
    lm = load_from_onnx(os.path.join(model_dir, "model.onnx"))
    diff = check_past(lm)
    assert diff < 1e-5, f"{model_dir}: with-past torch logits differ by {diff}"
    out = os.path.join(model_dir, WITH_PAST)
    export(lm, out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.join(HERE, "..", "..", "models"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    for role in ("gridworld-reference", "gridworld-policy"):
        print(export_dir(os.path.join(args.models, role)))


if __name__ == "__main__":
    main()
