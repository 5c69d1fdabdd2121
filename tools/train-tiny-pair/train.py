#!/usr/bin/python3
"""Trains the embedded default pair: a tiny reference (SFT on a noisy expert) and a policy
(KL-regularized RL from it with the slippery gridworld in the loop), evaluates both on held-out
maps, exports both to ONNX with optimum's input/output names, and writes the evaluation file.

    /usr/bin/python3 tools/train-tiny-pair/train.py --seed 0

See README.md beside this file.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.dirname(os.path.dirname(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gridworld as G  # noqa: E402
import tokenizer as T  # noqa: E402
from model import Config, TinyLM, positions_from_mask  # noqa: E402
from sampling import sample_episodes  # noqa: E402

TRAIN_MAP_RANGE = 10**9  # training maps: seeds in [0, 1e9)
HELDOUT_BASE = 10**9  # held-out success evaluation: seeds 1e9 + i
EVALFILE_BASE = 2 * 10**9  # held-out maps of bench/data/gridworld-eval.jsonl: seeds 2e9 + i


def blas_in_use() -> str:
    """Which BLAS library torch loaded (Debian's torch uses the libblas.so.3 alternative: the
    reference netlib BLAS is about 10x slower than OpenBLAS here)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and ".so" in line}
        return ", ".join(sorted(os.path.basename(x) for x in libs)) or "unknown"
    except OSError:
        return "unknown"


def log(fh, msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if fh:
        fh.write(line + "\n")
        fh.flush()


# ----------------------------------------------------------------------------- data

def expert_episode(map_seed: int, env_seed: int, eps: float, rng: random.Random):
    m = G.make_map(map_seed)
    e = G.Episode(m, random.Random(env_seed))
    while not e.done:
        e.step(G.noisy_expert_action(m, e.pos, rng, eps))
    return e


def pad_batch(seqs):
    """Right-padded input ids, attention mask and position ids."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), T.PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    return ids, mask, positions_from_mask(mask)


# ----------------------------------------------------------------------------- SFT

def sft(model, args, fh):
    """Next-token loss on everything after the user message (actions and env observations; the
    observations teach the model to read the map, which the actions need)."""
    rng = random.Random(args.seed * 1000 + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.sft_lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, args.sft_steps // 20)
    t0 = time.time()
    queue = []
    for step in range(1, args.sft_steps + 1):
        lr = args.sft_lr * min(1.0, step / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.sft_steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        if not queue:
            # length bucketing: generate 8 batches of episodes, sort by length, shuffle the batches
            pool = []
            for _ in range(8 * args.sft_batch):
                e = expert_episode(rng.randrange(TRAIN_MAP_RANGE), rng.randrange(2**31), args.expert_eps, rng)
                ids = T.encode_messages(e.messages)
                pool.append((ids, 1 + len(T.encode(G.render_plain(e.messages)[0]))))
            pool.sort(key=lambda x: len(x[0]))
            queue = [pool[k : k + args.sft_batch] for k in range(0, len(pool), args.sft_batch)]
            rng.shuffle(queue)
        batch = queue.pop()
        seqs = [b[0] for b in batch]
        starts = [b[1] for b in batch]
        ids, mask, pos = pad_batch(seqs)
        model.train()
        logits = model(ids, mask, pos)
        lw = torch.zeros_like(ids, dtype=torch.float32)
        for r, (s, st) in enumerate(zip(seqs, starts)):
            lw[r, st : len(s)] = 1.0
            for t in range(st, len(s)):
                if s[t - 1] == T.VOCAB[":"] and s[t - 2] == T.VOCAB["]"] and s[t - 3] == T.VOCAB["assistant"]:
                    lw[r, t] = args.action_weight
        lp = F.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        loss = -(lp * lw[:, 1:]).sum() / lw[:, 1:].sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == 1:
            acc = action_agreement(model, args, n=64, seed=step)
            log(fh, f"sft step {step}/{args.sft_steps} loss {loss.item():.4f} lr {lr:.2e} "
                    f"p(optimal action) {acc:.3f} ({time.time() - t0:.0f}s)")


@torch.no_grad()
def action_agreement(model, args, n=64, seed=0):
    """Mean probability the model puts on the expert's optimal actions, on noisy-expert
    trajectories over held-out maps (a noisy expert puts (1-eps) + eps*k/4 there)."""
    rng = random.Random(12345 + seed)
    seqs, where = [], []
    for i in range(n):
        e = expert_episode(HELDOUT_BASE + 500_000 + rng.randrange(100_000), rng.randrange(2**31), args.expert_eps, rng)
        ids = T.encode_messages(e.messages)
        # positions of the action tokens: the token after each "\n[assistant]:" prefix
        pos_list = []
        k = 0
        for t in range(1, len(ids)):
            if ids[t - 1] == T.VOCAB[":"] and ids[t - 2] == T.VOCAB["]"] and ids[t - 3] == T.VOCAB["assistant"]:
                pos_list.append((t, e.actions[k][0]))
                k += 1
        seqs.append(ids)
        where.append((e.m, pos_list))
    ids, mask, pos = pad_batch(seqs)
    model.eval()
    probs = torch.softmax(model(ids, mask, pos).float(), dim=-1)
    tot, cnt = 0.0, 0
    for r, (m, pl) in enumerate(where):
        for t, p in pl:
            opt = G.optimal_actions(m, p)
            tot += sum(float(probs[r, t - 1, T.ACTION_IDS[a]]) for a in opt)
            cnt += 1
    return tot / max(cnt, 1)


# ----------------------------------------------------------------------------- evaluation

def evaluate(model, map_base, n_maps, eps_per_map, seed, temperature=1.0, chunk=256):
    """Success rate over n_maps held-out maps x eps_per_map episodes, sampled at `temperature`
    with the environment's own randomness (slips), exactly as in training."""
    gen = torch.Generator().manual_seed(seed)
    jobs = [(map_base + i, (seed * 1_000_003 + i * 97 + k) % 2**31) for i in range(n_maps) for k in range(eps_per_map)]
    maps = {}
    results = []
    for s in range(0, len(jobs), chunk):
        part = jobs[s : s + chunk]
        ms = [maps.setdefault(ms_, G.make_map(ms_)) for ms_, _ in part]
        results.extend(sample_episodes(model, ms, [es for _, es in part], gen, temperature))
    succ = sum(r["episode"].success for r in results) / len(results)
    return succ, results


# ----------------------------------------------------------------------------- RL

def action_logprobs(model, samples, with_grad):
    """log-probs of each episode's action tokens, and the full next-token distributions there."""
    ids, mask, pos = pad_batch([s["ids"] for s in samples])
    ctx = torch.enable_grad() if with_grad else torch.no_grad()
    with ctx:
        model.train(with_grad)
        logits = model(ids, mask, pos)
        rows = torch.tensor([r for r, s in enumerate(samples) for _ in s["action_pos"]])
        cols = torch.tensor([p - 1 for s in samples for p in s["action_pos"]])
        toks = torch.tensor([s["ids"][p] for s in samples for p in s["action_pos"]])
        logp_all = F.log_softmax(logits[rows, cols].float(), dim=-1)
        return logp_all.gather(-1, toks.unsqueeze(-1)).squeeze(-1), logp_all


def rl(policy, ref, args, fh, history, heldout_gap):
    """KL-regularized policy gradient (REINFORCE with a leave-one-out group baseline).

    Objective: E[R] - beta * KL(pi || pi_ref) over the action tokens. Each episode's action
    tokens get the advantage  A_t = R - mean_{other episodes of the same map} R
                                    - beta * sum_{t' >= t} [log pi(a_t') - log pi_ref(a_t')]
    (the KL as a per-token penalty reward, summed to go), whose expected gradient is the
    gradient of the objective; its optimum is pi* proportional to pi_ref * exp(Q*/beta).
    """
    opt = torch.optim.AdamW(policy.parameters(), lr=args.rl_lr, weight_decay=0.0, betas=(0.9, 0.99))
    rng = random.Random(args.seed * 1000 + 2)
    gen = torch.Generator().manual_seed(args.seed * 1000 + 3)
    t0 = time.time()
    G_ = args.group
    for it in range(1, args.rl_iters_max + 1):
        map_seeds = [rng.randrange(TRAIN_MAP_RANGE) for _ in range(args.maps_per_iter)]
        maps = [G.make_map(s) for s in map_seeds for _ in range(G_)]
        env_seeds = [rng.randrange(2**31) for _ in maps]
        samples = sample_episodes(policy, maps, env_seeds, gen, 1.0, ref=ref)
        R = torch.tensor([float(s["episode"].success) for s in samples])
        n_act = [len(s["action_pos"]) for s in samples]
        Rg = R.view(args.maps_per_iter, G_)
        base = (Rg.sum(1, keepdim=True) - Rg) / (G_ - 1)
        adv_R = (Rg - base).view(-1)
        advs, kl_k1_ep, kl_ex_ep = [], [], []
        for e, s in enumerate(samples):
            seg = torch.tensor(s["lp"]) - torch.tensor(s["lp_ref"])  # sampled log-ratio per action (k1)
            to_go = torch.flip(torch.cumsum(torch.flip(seg, [0]), 0), [0])
            advs.append(adv_R[e] - args.beta * to_go)
            kl_k1_ep.append(float(seg.sum()))
            kl_ex_ep.append(sum(s["kl"]))
        # gradient: micro-batches of similar length, accumulated
        opt.zero_grad(set_to_none=True)
        order = sorted(range(len(samples)), key=lambda k: len(samples[k]["ids"]))
        lp_gap = 0.0
        for c in range(0, len(order), args.micro_batch):
            idx = order[c : c + args.micro_batch]
            lp, _ = action_logprobs(policy, [samples[k] for k in idx], with_grad=True)
            adv = torch.cat([advs[k] for k in idx])
            lp_gap = max(lp_gap, float((lp.detach() - torch.tensor([x for k in idx for x in samples[k]["lp"]])).abs().max()))
            (-(adv * lp).sum() / len(samples)).backward()
        gn = torch.nn.utils.clip_grad_norm_(policy.parameters(), args.clip)
        opt.step()
        rec = {
            "iter": it,
            "success": float(R.mean()),
            "kl_k1": sum(kl_k1_ep) / len(samples),
            "kl": sum(kl_ex_ep) / len(samples),
            "actions": sum(n_act) / len(samples),
            "invalid": sum(s["episode"].messages[-1]["content"] == "invalid action" for s in samples) / len(samples),
            "grad_norm": float(gn),
            "lp_check": lp_gap,
            "t": round(time.time() - t0, 1),
        }
        history.append(rec)
        if it % args.log_every_rl == 0 or it == 1:
            w = history[-args.log_every_rl:]
            log(fh, f"rl iter {it} success {rec['success']:.3f} (avg {sum(h['success'] for h in w)/len(w):.3f}) "
                    f"KL {rec['kl']:.3f} (avg {sum(h['kl'] for h in w)/len(w):.3f}, k1 {rec['kl_k1']:.3f}) "
                    f"actions {rec['actions']:.2f} invalid {rec['invalid']:.3f} |g| {rec['grad_norm']:.2f} lp-check {lp_gap:.1e} ({rec['t']:.0f}s)")
        if it >= args.rl_iters_min and it % args.plateau_window == 0 and plateaued(history, args):
            gap = heldout_gap()
            log(fh, f"rl: success and KL plateaued at iter {it}; held-out gap {100 * gap:.1f} points")
            if gap >= args.min_gap:
                return it, "plateau"
    log(fh, f"rl: reached --rl-iters-max {args.rl_iters_max}")
    return args.rl_iters_max, "max_iters"


def plateaued(history, args):
    """The last window vs the one before: success within --plateau-success points and KL within
    --plateau-kl (relative)."""
    w = args.plateau_window
    if len(history) < 2 * w:
        return False
    a, b = history[-2 * w : -w], history[-w:]
    ms = lambda h, k: sum(x[k] for x in h) / len(h)  # noqa: E731
    ds = abs(ms(b, "success") - ms(a, "success"))
    kb, ka = ms(b, "kl"), ms(a, "kl")
    dk = abs(kb - ka) / max(kb, 1e-3)
    return ds <= args.plateau_success and dk <= args.plateau_kl


# ----------------------------------------------------------------------------- export

def export_onnx(model, path):
    model.eval()
    ids = torch.tensor([[T.BOS] + T.encode("[user]: map :") + [T.PAD] * 3])
    mask = torch.ones_like(ids)
    torch.onnx.export(
        model, (ids, mask, positions_from_mask(mask)), path,
        input_names=["input_ids", "attention_mask", "position_ids"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"},
        },
        opset_version=14,
        do_constant_folding=True,
    )
    import onnx

    m = onnx.load(path)
    onnx.checker.check_model(m)
    last = m.graph.node[-1]
    assert last.op_type == "MatMul" and last.output[0] == "logits", f"last node is {last.op_type}"
    return last.op_type


def verify_export(model, path, fh):
    """Runs the ONNX file with onnxruntime-node (tools/train-tiny-pair/run_onnx.mjs) on
    left-padded, right-padded and unpadded batches of different lengths and compares with torch."""
    rng = random.Random(7)
    seqs = []
    for k in range(3):
        e = expert_episode(HELDOUT_BASE + 900_000 + k, k, 0.3, rng)
        seqs.append(T.encode_messages(e.messages)[: 40 + 37 * k])
    L = max(len(s) for s in seqs)
    cases = []
    for side in ("right", "left"):
        ids = torch.full((len(seqs), L), T.PAD, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            sl = slice(0, len(s)) if side == "right" else slice(L - len(s), L)
            ids[r, sl] = torch.tensor(s)
            mask[r, sl] = 1
        cases.append((ids, mask, positions_from_mask(mask)))
    one = torch.tensor([seqs[0]])
    cases.append((one, torch.ones_like(one), positions_from_mask(torch.ones_like(one))))
    req = os.path.join(os.path.dirname(path), ".verify-request.json")
    with open(req, "w") as f:
        json.dump([{"input_ids": c[0].tolist(), "attention_mask": c[1].tolist(), "position_ids": c[2].tolist()} for c in cases], f)
    try:
        out = subprocess.run(["node", os.path.join(HERE, "run_onnx.mjs"), path, req], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.remove(req)
    got = json.loads(out)
    model.eval()
    worst = 0.0
    with torch.no_grad():
        for (ids, mask, pos), g in zip(cases, got):
            want = model(ids, mask, pos)
            g = torch.tensor(g["logits"], dtype=torch.float32).view(g["dims"])
            assert list(g.shape) == list(want.shape)
            real = mask.bool()
            worst = max(worst, float((g - want).abs()[real].max()))
    log(fh, f"export {os.path.relpath(path, REPO)}: onnxruntime-node vs torch max |diff| at real positions {worst:.2e}")
    assert worst < 1e-4, worst
    return worst


# ----------------------------------------------------------------------------- writing

def write_model_dir(model, outdir, cfg: Config, extra_config: dict, fh):
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "model.onnx")
    export_onnx(model, path)
    diff = verify_export(model, path, fh)
    T.write_files(outdir, cfg.max_positions)
    conf = {
        "model_type": "gridworld-tiny-lm",
        "architectures": ["TinyLM"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "intermediate_size": cfg.d_ff,
        "max_position_embeddings": cfg.max_positions,
        "hidden_act": "gelu",
        "tie_word_embeddings": False,
        "bos_token_id": T.BOS,
        "eos_token_id": T.EOS,
        "pad_token_id": T.PAD,
        "torch_dtype": "float32",
    }
    conf.update(extra_config)
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    return diff


def episode_record(r, idx_map, k, map_seed, env_seed):
    e = r["episode"]
    fb, fm = e.first_bad()
    return {
        "id": f"map{idx_map:03d}-ep{k}",
        "task_id": f"map{idx_map:03d}",
        "messages": e.messages,
        "success": bool(e.success),
        "first_bad_action": fb,
        "first_bad_message": fm,
        "n_actions": len(e.actions),
        "outcome": outcome(e),
        "map_seed": map_seed,
        "seed": env_seed,
    }


def outcome(e):
    last = e.messages[-1]["content"]
    if e.success:
        return "goal"
    if last == "fell into a pit":
        return "pit"
    if last == "invalid action":
        return "invalid"
    return "out_of_steps"


def write_eval_file(model, path, seed, n_maps, eps_per_map):
    gen = torch.Generator().manual_seed(seed)
    maps, envs, keys = [], [], []
    for i in range(n_maps):
        m = G.make_map(EVALFILE_BASE + i)
        for k in range(eps_per_map):
            maps.append(m)
            envs.append((seed * 7_000_003 + i * 131 + k) % 2**31)
            keys.append((i, k))
    res = []
    for s in range(0, len(maps), 200):
        res.extend(sample_episodes(model, maps[s : s + 200], envs[s : s + 200], gen, 1.0))
    recs = [episode_record(r, i, k, EVALFILE_BASE + i, es) for r, (i, k), es in zip(res, keys, envs)]
    with open(path, "w") as f:
        for rec in recs:
            f.write(json.dumps(rec) + "\n")
    n = len(recs)
    return {
        "episodes": n,
        "success": sum(r["success"] for r in recs) / n,
        "bad": sum(r["first_bad_action"] is not None for r in recs) / n,
        "bad_success": sum(r["first_bad_action"] is not None for r in recs if r["success"]) / max(1, sum(r["success"] for r in recs)),
        "bad_failure": sum(r["first_bad_action"] is not None for r in recs if not r["success"]) / max(1, sum(not r["success"] for r in recs)),
        "outcomes": {o: sum(r["outcome"] == o for r in recs) for o in ("goal", "pit", "out_of_steps", "invalid")},
    }


def write_fixture(path):
    rng = random.Random(3)
    e = expert_episode(HELDOUT_BASE + 777, 5, 0.3, rng)
    e2 = G.Episode(G.make_map(HELDOUT_BASE + 778), random.Random(1))
    for a in ("left", "jump", "up"):
        if not e2.done:
            e2.step(a)
    full = "".join(G.render_plain(e.messages))
    strings = [
        "\n[assistant]: up",
        "\n[assistant]: right",
        "[user]: " + e.messages[0]["content"],
        "\n[env]: hit a wall , at 2 0",
        "\n[env]: at 3 4 , out of steps",
        full,
        "".join(G.render_plain(e2.messages)),
        "an unknown word , 12 and  tabs\there\n\n<bos>up<eos> <pad>",
    ]
    fx = {
        "note": "ids written by tools/train-tiny-pair/tokenizer.py (the trainer's pure-Python tokenizer); "
                "test/text/gridworld-tokenizer.test.ts checks @huggingface/tokenizers gives the same ids",
        "tokenizer": "models/gridworld-policy/tokenizer.json",
        "cases": [{"text": s, "ids": T.encode(s)} for s in strings],
        "messages": {"messages": e.messages, "ids_with_bos": T.encode_messages(e.messages)},
    }
    with open(path, "w") as f:
        json.dump(fx, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--d-model", type=int, default=96)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--max-positions", type=int, default=384)
    ap.add_argument("--expert-eps", type=float, default=0.3, help="fraction of random moves of the noisy expert")
    ap.add_argument("--sft-steps", type=int, default=1400)
    ap.add_argument("--sft-batch", type=int, default=48)
    ap.add_argument("--action-weight", type=float, default=5.0, help="SFT loss weight of action tokens (others 1)")
    ap.add_argument("--sft-lr", type=float, default=3e-3)
    ap.add_argument("--beta", type=float, default=0.05, help="KL coefficient of the RL objective")
    ap.add_argument("--rl-lr", type=float, default=5e-4)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--maps-per-iter", type=int, default=24)
    ap.add_argument("--group", type=int, default=8, help="episodes per map (the group of the baseline)")
    ap.add_argument("--micro-batch", type=int, default=48)
    ap.add_argument("--rl-iters-min", type=int, default=180)
    ap.add_argument("--rl-iters-max", type=int, default=600)
    ap.add_argument("--plateau-window", type=int, default=30)
    ap.add_argument("--plateau-success", type=float, default=0.02)
    ap.add_argument("--plateau-kl", type=float, default=0.10)
    ap.add_argument("--min-gap", type=float, default=0.15, help="keep training past a plateau until the held-out gap is this large")
    ap.add_argument("--heldout-maps", type=int, default=500)
    ap.add_argument("--heldout-episodes", type=int, default=4)
    ap.add_argument("--evalfile-maps", type=int, default=100)
    ap.add_argument("--evalfile-episodes", type=int, default=8)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--log-every-rl", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(REPO, "models"), help="writes gridworld-policy/ and gridworld-reference/ here")
    ap.add_argument("--bench-dir", default=os.path.join(REPO, "bench", "data"))
    ap.add_argument("--run-dir", default=os.path.join(HERE, "runs", "latest"))
    ap.add_argument("--stop-after-sft", action="store_true")
    ap.add_argument("--reference-checkpoint", default=None, help="development: load the reference instead of training it")
    args = ap.parse_args()
    for k in ("out", "bench_dir", "run_dir"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    os.makedirs(args.run_dir, exist_ok=True)
    fh = open(os.path.join(args.run_dir, "train.log"), "w")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    cmd = "/usr/bin/python3 tools/train-tiny-pair/train.py " + " ".join(sys.argv[1:])
    log(fh, f"command: {cmd}")
    torch.zeros(2, 2) @ torch.zeros(2, 2)
    blas = blas_in_use()
    log(fh, f"torch {torch.__version__}, python {platform.python_version()}, threads {args.threads}, BLAS {blas}")
    if "openblas" not in blas:
        log(fh, "warning: not running on OpenBLAS; expect this to be several times slower (see README.md)")
    t_start = time.time()

    cfg = Config(vocab_size=T.VOCAB_SIZE, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                 d_ff=4 * args.d_model, max_positions=args.max_positions)
    ref = TinyLM(cfg)
    n_params = ref.n_params()
    log(fh, f"model: {cfg.to_dict()} -> {n_params} parameters")

    # 1. reference: SFT on the noisy expert
    if args.reference_checkpoint:  # development only: skip SFT
        ref.load_state_dict(torch.load(args.reference_checkpoint))
    else:
        sft(ref, args, fh)
    t_sft = time.time() - t_start
    ref_succ, _ = evaluate(ref, HELDOUT_BASE, args.heldout_maps, args.heldout_episodes, seed=args.seed * 10 + 1)
    log(fh, f"reference success on {args.heldout_maps}x{args.heldout_episodes} held-out episodes: {ref_succ:.3f} (SFT {t_sft:.0f}s)")
    torch.save(ref.state_dict(), os.path.join(args.run_dir, "reference.pt"))
    if args.stop_after_sft:
        return

    # 2. policy: KL-regularized RL from the reference
    policy = TinyLM(cfg)
    policy.load_state_dict(ref.state_dict())
    for p in ref.parameters():
        p.requires_grad_(False)
    history = []
    t_rl0 = time.time()
    heldout = lambda: evaluate(policy, HELDOUT_BASE, args.heldout_maps, args.heldout_episodes, seed=args.seed * 10 + 1)[0]  # noqa: E731
    iters, rl_stop = rl(policy, ref, args, fh, history, lambda: heldout() - ref_succ)
    t_rl = time.time() - t_rl0
    torch.save(policy.state_dict(), os.path.join(args.run_dir, "policy.pt"))
    pol_succ = heldout()
    w = history[-args.plateau_window:]
    kl_end = sum(h["kl"] for h in w) / len(w)
    kl_k1_end = sum(h["kl_k1"] for h in w) / len(w)
    train_succ_end = sum(h["success"] for h in w) / len(w)
    log(fh, f"policy success on held-out: {pol_succ:.3f}; reference {ref_succ:.3f}; gap {100 * (pol_succ - ref_succ):.1f} points; "
            f"KL(pi||pi_ref) per episode (last {len(w)} iters) {kl_end:.3f} nats")
    with open(os.path.join(args.run_dir, "rl_history.jsonl"), "w") as f:
        for h in history:
            f.write(json.dumps(h) + "\n")

    # 3. evaluation files (held-out maps, disjoint from training and from the success evaluation)
    os.makedirs(args.bench_dir, exist_ok=True)
    ev_pol = write_eval_file(policy, os.path.join(args.bench_dir, "gridworld-eval.jsonl"), args.seed * 10 + 2,
                             args.evalfile_maps, args.evalfile_episodes)
    ev_ref = write_eval_file(ref, os.path.join(args.bench_dir, "gridworld-eval-reference.jsonl"), args.seed * 10 + 2,
                             args.evalfile_maps, args.evalfile_episodes)
    log(fh, f"eval file (policy): {ev_pol}")
    log(fh, f"eval file (reference): {ev_ref}")
    t_total_before_export = time.time() - t_start

    summary = {
        "command": cmd,
        "seed": args.seed,
        "threads": args.threads,
        "parameters": n_params,
        "config": cfg.to_dict(),
        "expert_eps": args.expert_eps,
        "beta": args.beta,
        "sft_steps": args.sft_steps,
        "sft_batch": args.sft_batch,
        "rl_iters": iters,
        "rl_stop": rl_stop,
        "episodes_per_iter": args.maps_per_iter * args.group,
        "reference_success": ref_succ,
        "policy_success": pol_succ,
        "gap_points": 100 * (pol_succ - ref_succ),
        "heldout": f"{args.heldout_maps} maps x {args.heldout_episodes} episodes",
        "kl_end": kl_end,
        "kl_k1_end": kl_k1_end,
        "train_success_end": train_succ_end,
        "eval_file_policy": ev_pol,
        "eval_file_reference": ev_ref,
        "wall_sft_s": round(t_sft),
        "wall_rl_s": round(t_rl),
        "wall_total_s": round(t_total_before_export),
        "torch": torch.__version__,
        "blas": blas,
    }

    # 4. export
    ref_dir = os.path.join(args.out, "gridworld-reference")
    pol_dir = os.path.join(args.out, "gridworld-policy")
    import cards

    diffs = {}
    diffs["reference"] = write_model_dir(ref, ref_dir, cfg, {"role": "reference", "training": "sft"}, fh)
    diffs["policy"] = write_model_dir(policy, pol_dir, cfg, {
        "role": "policy", "training": "kl_regularized_rl", "kl_beta": args.beta,
        "reference_model": "gridworld-reference"}, fh)
    summary["export_max_abs_diff"] = diffs
    # the with-past variants (what the service runs, for its prefix cache), from the files just written
    import export_past

    for d in (ref_dir, pol_dir):
        log(fh, f"export {os.path.relpath(export_past.export_dir(d), REPO)} (with past)")
    summary["wall_total_with_export_s"] = round(time.time() - t_start)
    with open(os.path.join(ref_dir, "README.md"), "w") as f:
        f.write(cards.reference_card(summary))
    with open(os.path.join(pol_dir, "README.md"), "w") as f:
        f.write(cards.policy_card(summary))
    with open(os.path.join(args.run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    # the committed record of the run: summary, per-iteration RL log, full training log
    res_dir = os.path.join(HERE, "results")
    os.makedirs(res_dir, exist_ok=True)
    with open(os.path.join(res_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    with open(os.path.join(res_dir, "rl_history.jsonl"), "w") as f:
        for h in history:
            f.write(json.dumps(h) + "\n")
    write_fixture(os.path.join(HERE, "tokenizer-fixture.json"))
    with open(os.path.join(args.bench_dir, "README.md"), "w") as f:
        f.write(cards.bench_readme(summary))
    log(fh, f"done in {time.time() - t_start:.0f}s: {json.dumps(summary)}")
    fh.close()
    with open(os.path.join(args.run_dir, "train.log")) as src, open(os.path.join(res_dir, "train.log"), "w") as dst:
        dst.write(src.read())


if __name__ == "__main__":
    main()
