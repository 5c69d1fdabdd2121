"""Batched episode sampling with the environment in the loop, on a KV cache.

Every alive episode is one row. At each step a row is fed the tokens it has not fed yet (the
prompt, or the previous action + the env message) followed by the "\\n[assistant]:" prefix;
rows are left-padded to the same chunk length so the last position of every row is the
position that predicts the action token. Pad slots stay in the cache, masked out forever. The
action token is sampled from the model's full distribution (temperature `temperature`); a token
that is not an action word ends the episode as a failure ("invalid action").
"""
from __future__ import annotations

import random

import torch

import gridworld as G
import tokenizer as T

ASSISTANT_PREFIX = T.encode("\n[assistant]: ")


def env_tokens(obs: str) -> list:
    return T.encode(f"\n[env]: {obs}")


@torch.no_grad()
def sample_episodes(model, maps, env_seeds, gen: torch.Generator, temperature: float = 1.0, ref=None):
    """Runs one episode per (map, env seed). Returns a list of dicts with the Episode, its token
    ids (BOS first, as the service renders it), the positions of its action tokens and, per action,
    the sampling model's log-prob of the sampled token (`lp`, untempered). With `ref`, the
    reference runs alongside on its own cache and each action also gets `lp_ref` and the exact
    KL(model || ref) of the two next-token distributions (`kl`)."""
    model.eval()
    if ref is not None:
        ref.eval()
    past_ref = None
    lps = [[] for _ in maps]
    lps_ref = [[] for _ in maps]
    kls = [[] for _ in maps]
    eps = [G.Episode(m, random.Random(s)) for m, s in zip(maps, env_seeds)]
    ids = [[T.BOS] + T.encode(G.render_plain(e.messages)[0]) for e in eps]
    pending = [list(x) + ASSISTANT_PREFIX for x in ids]  # tokens not yet fed to the model
    for k in range(len(ids)):
        ids[k] = ids[k] + ASSISTANT_PREFIX
    action_pos = [[] for _ in eps]
    alive = list(range(len(eps)))
    past = None
    key_valid = None  # bool [B_alive, T]
    lengths = torch.zeros(len(eps), dtype=torch.long)  # real tokens fed so far, per episode
    while alive:
        B = len(alive)
        L = max(len(pending[i]) for i in alive)
        chunk = torch.full((B, L), T.PAD, dtype=torch.long)
        valid = torch.zeros((B, L), dtype=torch.bool)
        pos = torch.zeros((B, L), dtype=torch.long)
        for r, i in enumerate(alive):
            n = len(pending[i])
            chunk[r, L - n:] = torch.tensor(pending[i])
            valid[r, L - n:] = True
            pos[r, L - n:] = torch.arange(int(lengths[i]), int(lengths[i]) + n)
        Tpast = 0 if key_valid is None else key_valid.shape[1]
        all_valid = valid if key_valid is None else torch.cat([key_valid, valid], dim=1)  # [B, Tpast+L]
        j = torch.arange(Tpast + L)
        q = Tpast + torch.arange(L)
        causal = j.unsqueeze(0) <= q.unsqueeze(1)  # [L, Tpast+L]
        mask = (causal.unsqueeze(0) & all_valid.unsqueeze(1)).unsqueeze(1)  # [B, 1, L, Tpast+L]
        logits, past = model.core(chunk, pos, mask, past)
        last = logits[:, -1, :].float()
        probs = torch.softmax(last / temperature, dim=-1)
        tok = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        logp = torch.log_softmax(last, dim=-1)
        lp_tok = logp.gather(1, tok.unsqueeze(1)).squeeze(1)
        if ref is not None:
            logits_ref, past_ref = ref.core(chunk, pos, mask, past_ref)
            logq = torch.log_softmax(logits_ref[:, -1, :].float(), dim=-1)
            lq_tok = logq.gather(1, tok.unsqueeze(1)).squeeze(1)
            kl = (logp.exp() * (logp - logq)).sum(-1)
        key_valid = all_valid
        still = []
        for r, i in enumerate(alive):
            lengths[i] += len(pending[i])
            t = int(tok[r])
            action_pos[i].append(len(ids[i]))
            lps[i].append(float(lp_tok[r]))
            if ref is not None:
                lps_ref[i].append(float(lq_tok[r]))
                kls[i].append(float(kl[r]))
            ids[i].append(t)
            word = T.ID_TO_TOKEN[t]
            obs = eps[i].step(word)
            if eps[i].done:
                ids[i].extend(env_tokens(obs))
                pending[i] = []
            else:
                et = env_tokens(obs)
                ids[i].extend(et + ASSISTANT_PREFIX)
                pending[i] = [t] + et + ASSISTANT_PREFIX
                still.append(r)
        if not still:
            break
        sel = torch.tensor(still)
        past = [(k.index_select(0, sel), v.index_select(0, sel)) for k, v in past]
        if ref is not None:
            past_ref = [(k.index_select(0, sel), v.index_select(0, sel)) for k, v in past_ref]
        key_valid = key_valid.index_select(0, sel)
        alive = [alive[r] for r in still]
    out = []
    for i, e in enumerate(eps):
        d = {"episode": e, "ids": ids[i], "action_pos": action_pos[i], "lp": lps[i]}
        if ref is not None:
            d["lp_ref"], d["kl"] = lps_ref[i], kls[i]
        out.append(d)
    return out
