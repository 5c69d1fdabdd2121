#!/usr/bin/env python3
"""What the paper's released code does, in PyTorch on the same weights as the ONNX exports:
one sequence per forward pass, `logits.float()`, a full-vocabulary log_softmax at every
position, `gather` of the next token, for the policy and then the reference.

Prints one JSON line: scored step tokens per second, all tokens per second, peak RSS.
Run it as bench/run.ts does: OMP_WAIT_POLICY=PASSIVE, 2 threads (Debian's torch otherwise makes
its OpenMP and OpenBLAS pools fight over the cores, which would flatter the service).

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/paper_pattern.py --pair bench/models/llama-v32000-h128 --items bench/out/items.json
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "bench-models"))
from make_pair import LlamaLike  # noqa: E402


def load(pair_dir: str, role: str, arch: dict) -> LlamaLike:
    model = LlamaLike(arch["vocab"], arch["hidden"], arch["layers"], arch["heads"], arch["kv_heads"]).eval()
    model.load_state_dict(torch.load(os.path.join(pair_dir, role, "weights.pt")))
    return model


def step_logprob(model: LlamaLike, ids: list, step_start: int) -> float:
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    pos = torch.arange(len(ids))[None]
    logits = model(x, mask, pos)[0].float()
    logp = torch.log_softmax(logits, dim=-1)  # full vocabulary at every position
    token_lp = logp[0, :-1].gather(-1, x[0, 1:, None])[:, 0]
    return float(token_lp[step_start - 1:].sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", required=True)
    ap.add_argument("--items", required=True, help="JSON list of {ids, step_start}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.pair, "arch.json")) as f:
        arch = json.load(f)
    with open(args.items) as f:
        items = json.load(f)
    if args.limit:
        items = items[: args.limit]
    policy, reference = load(args.pair, "policy", arch), load(args.pair, "reference", arch)
    with torch.no_grad():
        step_logprob(policy, items[0]["ids"], items[0]["step_start"])  # warm-up
        t0 = time.perf_counter()
        scored = total = 0
        advantages = []
        for it in items:
            a = step_logprob(policy, it["ids"], it["step_start"]) - step_logprob(reference, it["ids"], it["step_start"])
            advantages.append(a)
            scored += len(it["ids"]) - it["step_start"]
            total += len(it["ids"])
        seconds = time.perf_counter() - t0
    print(json.dumps({
        "items": len(items),
        "seconds": seconds,
        "scored_tokens_per_s": scored / seconds,
        "tokens_per_s": total / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "advantages": advantages,
    }))


if __name__ == "__main__":
    main()
