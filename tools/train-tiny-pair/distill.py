#!/usr/bin/python3
"""Builds the exact pair: a reference distilled to pi_ref^target (the noisy expert, eps = 0.3) and
a policy distilled to pi*, the exact KL-regularized optimum computed by soft value iteration
(soft_vi.py) on the gridworld's true dynamics, with beta = 0.05. Writes
models/gridworld-exact-reference/, models/gridworld-exact-policy/ (ONNX, tokenizer, config, card),
bench/data/gridworld-exact-eval.jsonl (+ -reference.jsonl) with the true A* of every step, and
tools/train-tiny-pair/results-exact/.

    nice -n 10 /usr/bin/python3 tools/train-tiny-pair/distill.py --seed 0

See README.md beside this file.
"""
from __future__ import annotations

import os

# One BLAS thread and one torch thread, fixed before torch loads: the bytes must not depend on the
# machine's load or core count.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.dirname(os.path.dirname(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gridworld as G  # noqa: E402
import soft_vi as S  # noqa: E402
import tokenizer as T  # noqa: E402
from model import Config, TinyLM  # noqa: E402
from train import (  # noqa: E402
    TRAIN_MAP_RANGE, blas_in_use, log, outcome, pad_batch, write_model_dir,
)

HELDOUT_FIT_BASE = 10**9 + 3_000_000  # held-out maps of the fit report (never training maps)
EVALFILE_BASE = 2 * 10**9  # the same held-out maps as bench/data/gridworld-eval.jsonl
ACTION_IDS = [T.ACTION_IDS[a] for a in G.ACTIONS]
FIXED = T.encode("\n[assistant]: ")  # the fixed tokens of a step, before its action word
ENV_START = T.encode("\n[env]: ")


# ----------------------------------------------------------------------------- data

class Maps:
    """Maps and their soft-VI solutions, cached by seed."""

    def __init__(self, beta, eps):
        self.beta, self.eps, self.cache = beta, eps, {}

    def get(self, seed):
        if seed not in self.cache:
            if len(self.cache) > 20000:
                self.cache.clear()
            self.cache[seed] = S.Solution(G.make_map(seed), self.beta, self.eps)
        return self.cache[seed]


def play(sol: S.Solution, sampler: str, env_seed: int, rng: random.Random):
    """One episode with the environment's slips, actions drawn from pi* ('policy') or pi_ref^target
    ('reference'). Returns the Episode and, per action, (t, pos, pi_ref^target row, pi* row, A* row)."""
    e = G.Episode(sol.m, random.Random(env_seed))
    steps = []
    while not e.done:
        t, pos = e.steps, e.pos
        ref, pol = sol.reference(pos), sol.policy_probs(pos, t)
        steps.append((t, pos, ref, pol, sol.advantage(pos, t)))
        e.step(S.sample_action(pol if sampler == "policy" else ref, rng))
    return e, steps


def example(sol, sampler, env_seed, rng):
    """Token ids of an episode, with its loss positions: the action positions (soft targets of both
    models), the fixed tokens of each step and the env messages' tokens (hard targets)."""
    e, steps = play(sol, sampler, env_seed, rng)
    ids = T.encode_messages(e.messages)
    act = [t for t in range(1, len(ids)) if ids[t - 1] == T.VOCAB[":"] and ids[t - 2] == T.VOCAB["]"]
           and ids[t - 3] == T.VOCAB["assistant"]]
    assert len(act) == len(steps)
    fixed = [p for a in act for p in range(a - len(FIXED), a)]
    env = []
    for k, a in enumerate(act):
        end = act[k + 1] - len(FIXED) if k + 1 < len(act) else len(ids)
        env.extend(range(a + 1, end))
    return {"episode": e, "ids": ids, "act": act, "fixed": fixed, "env": env,
            "ref": [s[2] for s in steps], "pol": [s[3] for s in steps], "steps": steps}


def make_examples(maps, seeds, rng, n):
    out = []
    for k in range(n):
        sol = maps.get(seeds(rng))
        out.append(example(sol, "policy" if k % 2 == 0 else "reference", rng.randrange(2**31), rng))
    return out


# ----------------------------------------------------------------------------- loss

def batch_tensors(exs, role):
    ids, mask, pos = pad_batch([x["ids"] for x in exs])
    a_rows = torch.tensor([r for r, x in enumerate(exs) for _ in x["act"]])
    a_cols = torch.tensor([p - 1 for x in exs for p in x["act"]])
    target = torch.tensor([row for x in exs for row in x[role]], dtype=torch.float64).float()
    h_rows = torch.tensor([r for r, x in enumerate(exs) for _ in x["fixed"]])
    h_cols = torch.tensor([p - 1 for x in exs for p in x["fixed"]])
    h_tok = torch.tensor([x["ids"][p] for x in exs for p in x["fixed"]])
    e_rows = torch.tensor([r for r, x in enumerate(exs) for _ in x["env"]])
    e_cols = torch.tensor([p - 1 for x in exs for p in x["env"]])
    e_tok = torch.tensor([x["ids"][p] for x in exs for p in x["env"]])
    return ids, mask, pos, (a_rows, a_cols, target), (h_rows, h_cols, h_tok), (e_rows, e_cols, e_tok)


def losses(model, bt, args):
    ids, mask, pos, (ar, ac, target), (hr, hc, ht), (er, ec, et) = bt
    logits = model(ids, mask, pos).float()
    lp_act = F.log_softmax(logits[ar, ac], dim=-1)[:, ACTION_IDS]  # [N, 4] over the full vocabulary
    log_t = target.log()
    kl = (target * (log_t - lp_act)).sum(-1)  # KL(target || model): the non-action mass adds 0 here
    # log-space error (Huber, delta 1), so rare moves are fitted too: the advantage is linear in it
    mse = F.smooth_l1_loss(lp_act, log_t, reduction="none", beta=1.0).mean(-1)
    ce_fixed = F.cross_entropy(logits[hr, hc], ht)
    ce_env = F.cross_entropy(logits[er, ec], et)
    loss = kl.mean() + args.log_weight * mse.mean() + args.fixed_weight * ce_fixed + args.env_weight * ce_env
    return loss, {"kl": float(kl.mean()), "mse": float(mse.mean()), "fixed": float(ce_fixed), "env": float(ce_env)}


@torch.no_grad()
def fit_report(model, exs, role, chunk=32):
    """On held-out maps: mean KL(target || model) at the action positions, mean |log p - log target|
    of the action taken, and the mean log-prob of the fixed tokens `\\n[assistant]:`."""
    model.eval()
    kls, errs, fixed = [], [], []
    for s in range(0, len(exs), chunk):
        part = exs[s: s + chunk]
        ids, mask, pos, (ar, ac, target), (hr, hc, ht), _ = batch_tensors(part, role)
        logits = model(ids, mask, pos).float()
        lp_act = F.log_softmax(logits[ar, ac], dim=-1)[:, ACTION_IDS].double()
        t64 = torch.tensor([row for x in part for row in x[role]], dtype=torch.float64)
        kls.extend((t64 * (t64.log() - lp_act)).sum(-1).tolist())
        taken = torch.tensor([ACTION_IDS.index(x["ids"][p]) for x in part for p in x["act"]])
        errs.extend((lp_act.gather(1, taken.unsqueeze(1)).squeeze(1) - t64.log().gather(1, taken.unsqueeze(1)).squeeze(1)).abs().tolist())
        fixed.extend(F.log_softmax(logits[hr, hc], dim=-1).gather(1, ht.unsqueeze(1)).squeeze(1).tolist())
    n = len(kls)
    return {"positions": n, "kl_mean": sum(kls) / n, "kl_max": max(kls),
            "kl_p99": sorted(kls)[int(0.99 * (n - 1))],
            "abs_logp_err_taken": sum(errs) / n, "fixed_logp_mean": sum(fixed) / len(fixed)}


def train(model, role, args, maps, fh, heldout, steps, lr, seed):
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    t0 = time.time()
    for step in range(1, steps + 1):
        cur = lr * min(1.0, step / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = cur
        exs = make_examples(maps, lambda r: r.randrange(TRAIN_MAP_RANGE), rng, args.batch)
        model.train()
        loss, parts = losses(model, batch_tensors(exs, role), args)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == 1:
            log(fh, f"{role} step {step}/{steps} loss {float(loss):.4f} KL {parts['kl']:.4f} log-huber {parts['mse']:.4f} "
                    f"fixed {parts['fixed']:.4f} env {parts['env']:.4f} lr {cur:.2e} ({time.time() - t0:.0f}s)")
        if args.eval_every and step % args.eval_every == 0 and step < steps:
            log(fh, f"{role} step {step} held-out fit {json.dumps(fit_report(model, heldout, role))}")
    return round(time.time() - t0)


# ----------------------------------------------------------------------------- warm start

def load_onnx_weights(model: TinyLM, path: str):
    """Loads the weights of one of this trainer's own ONNX exports (train.py's default pair) into a
    TinyLM of the same config: named initializers as they are, the MatMul weights (exported
    transposed, in module order: per block qkv, proj, fc1, fc2, then lm_head) by order."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    state = model.state_dict()
    named = {k: v for k, v in inits.items() if not k.startswith("onnx::")}
    mats = sorted((k for k in inits if k.startswith("onnx::MatMul_")), key=lambda k: int(k.split("_")[-1]))
    linear = [f"blocks.{b}.{n}.weight" for b in range(model.cfg.n_layers) for n in ("qkv", "proj", "fc1", "fc2")] + ["lm_head.weight"]
    assert len(mats) == len(linear), (len(mats), len(linear))
    new = {}
    for k, v in named.items():
        assert state[k].shape == tuple(v.shape), k
        new[k] = torch.from_numpy(np.array(v))
    for k, m in zip(linear, mats):
        w = torch.from_numpy(np.array(inits[m])).t().contiguous()
        assert state[k].shape == w.shape, (k, m)
        new[k] = w
    assert set(new) == set(state), set(state) ^ set(new)
    model.load_state_dict(new)


# ----------------------------------------------------------------------------- evaluation file

def eval_records(maps, sampler, n_maps, eps_per_map, seed):
    rng = random.Random(seed)
    recs = []
    for i in range(n_maps):
        sol = maps.get(EVALFILE_BASE + i)
        for k in range(eps_per_map):
            env_seed = (seed * 7_000_003 + i * 131 + k) % 2**31
            e, steps = play(sol, sampler, env_seed, rng)
            fb, fm = e.first_bad()
            recs.append({
                "id": f"map{i:03d}-ep{k}",
                "task_id": f"map{i:03d}",
                "messages": e.messages,
                "success": bool(e.success),
                "first_bad_action": fb,
                "first_bad_message": fm,
                "n_actions": len(e.actions),
                "outcome": outcome(e),
                "map_seed": EVALFILE_BASE + i,
                "seed": env_seed,
                "sampler": "pi_star" if sampler == "policy" else "pi_ref_target",
                "a_star": [st[4][G.ACTIONS.index(a)] for st, (_, a) in zip(steps, e.actions)],
                "v_star_0": sol.V[(sol.m.start, 0)],
            })
    return recs


def summarize(recs):
    n = len(recs)
    a = [x for r in recs for x in r["a_star"]]
    mean = sum(a) / len(a)
    return {
        "episodes": n,
        "steps": len(a),
        "success": sum(r["success"] for r in recs) / n,
        "bad": sum(r["first_bad_action"] is not None for r in recs) / n,
        "outcomes": {o: sum(r["outcome"] == o for r in recs) for o in ("goal", "pit", "out_of_steps", "invalid")},
        "a_star_mean": mean,
        "a_star_std": math.sqrt(sum((x - mean) ** 2 for x in a) / len(a)),
    }


@torch.no_grad()
def served_preview(policy, ref, recs, beta):
    """beta * (log pi - log pi_ref) summed over each step's tokens `\\n[assistant]: ACTION`, from
    torch, as the service computes it; compared with the file's A* (the service itself is checked
    by test/models/exact-pair.test.ts)."""
    policy.eval()
    ref.eval()
    xs, ys, fixed = [], [], []
    for s in range(0, len(recs), 32):
        part = recs[s: s + 32]
        seqs = [T.encode_messages(r["messages"]) for r in part]
        ids, mask, pos = pad_batch(seqs)
        lp = F.log_softmax(policy(ids, mask, pos).float(), -1).double()
        lq = F.log_softmax(ref(ids, mask, pos).float(), -1).double()
        for b, (r, sq) in enumerate(zip(part, seqs)):
            act = [t for t in range(1, len(sq)) if sq[t - 1] == T.VOCAB[":"] and sq[t - 2] == T.VOCAB["]"] and sq[t - 3] == T.VOCAB["assistant"]]
            for a, astar in zip(act, r["a_star"]):
                toks = range(a - len(FIXED), a + 1)
                lr_ = [float(lp[b, t - 1, sq[t]] - lq[b, t - 1, sq[t]]) for t in toks]
                xs.append(beta * sum(lr_))
                ys.append(astar)
                fixed.append(abs(sum(lr_[:-1])))
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return {"steps": n, "pearson": cov / (sx * sy), "mae": sum(abs(x - y) for x, y in zip(xs, ys)) / n,
            "a_star_std": sy / math.sqrt(n), "fixed_abs_log_ratio_mean": sum(fixed) / n}


# ----------------------------------------------------------------------------- main

PATH_FLAGS = ("out", "bench_dir", "results_dir", "run_dir")


def canonical_flags(ap, args):
    """--seed and every flag that differs from its default, except the output paths."""
    out = [f"--seed {args.seed}"]
    for a in ap._actions:
        if a.dest in ("help", "seed") + PATH_FLAGS or a.default is None:
            continue
        v = getattr(args, a.dest)
        if v != a.default:
            out.append(a.option_strings[0] if v is True else f"{a.option_strings[0]} {v}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--beta", type=float, default=S.BETA)
    ap.add_argument("--expert-eps", type=float, default=S.EPS)
    ap.add_argument("--init", default=os.path.join(REPO, "models", "gridworld-reference", "model.onnx"),
                    help="ONNX export of train.py whose weights start both models ('none': random init)")
    ap.add_argument("--ref-steps", type=int, default=150)
    ap.add_argument("--policy-steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--log-weight", type=float, default=1.0, help="weight of the log-space Huber error over the 4 actions")
    ap.add_argument("--fixed-weight", type=float, default=1.0)
    ap.add_argument("--env-weight", type=float, default=0.2)
    ap.add_argument("--heldout-episodes", type=int, default=200)
    ap.add_argument("--evalfile-maps", type=int, default=100)
    ap.add_argument("--evalfile-episodes", type=int, default=8)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(REPO, "models"))
    ap.add_argument("--bench-dir", default=os.path.join(REPO, "bench", "data"))
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results-exact"))
    ap.add_argument("--run-dir", default=os.path.join(HERE, "runs", "exact"))
    ap.add_argument("--fit-only", action="store_true", help="development: report the fit of --init and stop")
    args = ap.parse_args()
    for k in ("out", "bench_dir", "results_dir", "run_dir"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    os.makedirs(args.run_dir, exist_ok=True)
    fh = open(os.path.join(args.run_dir, "distill.log"), "w")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # The command as the cards record it: the flags that change the result (not where files go).
    cmd = " ".join(["nice -n 10 /usr/bin/python3 tools/train-tiny-pair/distill.py"] + canonical_flags(ap, args))
    log(fh, f"command: {cmd}")
    torch.zeros(2, 2) @ torch.zeros(2, 2)
    blas = blas_in_use()
    log(fh, f"torch {torch.__version__}, python {platform.python_version()}, threads {torch.get_num_threads()}, "
            f"OPENBLAS_NUM_THREADS {os.environ.get('OPENBLAS_NUM_THREADS')}, BLAS {blas}")
    if "openblas" not in blas:
        log(fh, "warning: not running on OpenBLAS; expect this to be several times slower (see README.md)")
    t_start = time.time()
    maps = Maps(args.beta, args.expert_eps)
    cfg = Config(vocab_size=T.VOCAB_SIZE, d_model=96, n_layers=3, n_heads=2, d_ff=384, max_positions=384)
    ref = TinyLM(cfg)
    if args.init != "none":
        load_onnx_weights(ref, args.init)
        log(fh, f"init: weights of {os.path.relpath(args.init, REPO)}")
    hrng = random.Random(args.seed * 1000 + 99)
    heldout = make_examples(maps, lambda r: HELDOUT_FIT_BASE + r.randrange(100_000), hrng, args.heldout_episodes)
    log(fh, f"held-out fit set: {args.heldout_episodes} episodes (half pi*, half pi_ref^target) on maps 1e9+3e6+i, "
            f"{sum(len(x['act']) for x in heldout)} action positions")
    init_fit = {r: fit_report(ref, heldout, r) for r in ("ref", "pol")}
    log(fh, f"init fit: {json.dumps(init_fit)}")
    if args.fit_only:
        return

    wall = {}
    wall["reference"] = train(ref, "ref", args, maps, fh, heldout, args.ref_steps, args.lr, args.seed * 1000 + 1)
    fit_ref = fit_report(ref, heldout, "ref")
    log(fh, f"reference fit on held-out maps: {json.dumps(fit_ref)}")
    policy = TinyLM(cfg)
    policy.load_state_dict(ref.state_dict())
    wall["policy"] = train(policy, "pol", args, maps, fh, heldout, args.policy_steps, args.lr, args.seed * 1000 + 2)
    fit_pol = fit_report(policy, heldout, "pol")
    log(fh, f"policy fit on held-out maps: {json.dumps(fit_pol)}")
    torch.save(ref.state_dict(), os.path.join(args.run_dir, "reference.pt"))
    torch.save(policy.state_dict(), os.path.join(args.run_dir, "policy.pt"))

    # evaluation files: exact samples, with slips, on the held-out maps of gridworld-eval.jsonl
    os.makedirs(args.bench_dir, exist_ok=True)
    files = {}
    for sampler, name in (("policy", "gridworld-exact-eval.jsonl"), ("reference", "gridworld-exact-eval-reference.jsonl")):
        recs = eval_records(maps, sampler, args.evalfile_maps, args.evalfile_episodes, args.seed * 10 + (3 if sampler == "policy" else 4))
        with open(os.path.join(args.bench_dir, name), "w") as f:
            for r in recs:
                f.write(json.dumps(r) + "\n")
        files[sampler] = {"file": name, **summarize(recs), "torch_preview": served_preview(policy, ref, recs, args.beta)}
        log(fh, f"eval file {name}: {json.dumps(files[sampler])}")

    summary = {
        "command": cmd, "seed": args.seed, "threads": args.threads, "beta": args.beta, "expert_eps": args.expert_eps,
        "init": os.path.relpath(args.init, REPO) if args.init != "none" else "none",
        "config": cfg.to_dict(), "parameters": ref.n_params(),
        "ref_steps": args.ref_steps, "policy_steps": args.policy_steps, "batch": args.batch, "lr": args.lr,
        "log_weight": args.log_weight, "fixed_weight": args.fixed_weight, "env_weight": args.env_weight,
        "heldout_episodes": args.heldout_episodes, "heldout_positions": fit_ref["positions"],
        "fit_init": init_fit, "fit_reference": fit_ref, "fit_policy": fit_pol,
        "eval_files": files, "wall_s": wall, "torch": torch.__version__, "blas": blas,
    }
    ref_dir = os.path.join(args.out, "gridworld-exact-reference")
    pol_dir = os.path.join(args.out, "gridworld-exact-policy")
    diffs = {
        "reference": write_model_dir(ref, ref_dir, cfg, {"role": "reference", "training": "distilled_pi_ref_target",
                                                           "expert_eps": args.expert_eps}, fh),
        "policy": write_model_dir(policy, pol_dir, cfg, {"role": "policy", "training": "distilled_exact_optimum",
                                                          "kl_beta": args.beta, "expert_eps": args.expert_eps,
                                                          "reference_model": "gridworld-exact-reference"}, fh),
    }
    summary["export_max_abs_diff"] = diffs
    import cards_exact

    with open(os.path.join(ref_dir, "README.md"), "w") as f:
        f.write(cards_exact.reference_card(summary))
    with open(os.path.join(pol_dir, "README.md"), "w") as f:
        f.write(cards_exact.policy_card(summary))
    os.makedirs(args.results_dir, exist_ok=True)
    with open(os.path.join(args.results_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    log(fh, f"done in {time.time() - t_start:.0f}s")
    fh.close()
    with open(os.path.join(args.run_dir, "distill.log")) as src, open(os.path.join(args.results_dir, "distill.log"), "w") as dst:
        dst.write(src.read())


if __name__ == "__main__":
    main()
