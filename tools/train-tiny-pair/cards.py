"""Model cards and bench/data/README.md, written from the run's summary."""
from __future__ import annotations

import gridworld as G


def _pct(x):
    return f"{100 * x:.1f}%"


def _arch(s):
    c = s["config"]
    return (f"decoder-only transformer, {c['n_layers']} layers, d_model {c['d_model']}, {c['n_heads']} heads, "
            f"MLP {c['d_ff']}, learned absolute positions ({c['max_positions']}), pre-LayerNorm, untied bias-free "
            f"LM head; vocabulary {c['vocab_size']} (WordLevel); {s['parameters']:,} parameters; float32")


def _results_table(s):
    return (
        "| model | success on held-out maps | \n"
        "| --- | --- |\n"
        f"| reference (SFT on the noisy expert) | {_pct(s['reference_success'])} |\n"
        f"| policy (KL-regularized RL, beta = {s['beta']}) | {_pct(s['policy_success'])} |\n"
        f"| gap | {s['gap_points']:+.1f} points |\n\n"
        f"Held-out maps: {s['heldout']} (map seeds 1e9 + i, never used in training), episodes "
        "sampled at temperature 1 with the environment's own randomness (slips), as in training.\n"
    )


def _env_text():
    return (
        f"A {G.SIZE}x{G.SIZE} slippery gridworld: 2-4 walls, 2-4 pits (entering one ends the episode with "
        f"reward 0), a goal (reward 1), random maps from a seed; actions up/down/left/right; with probability "
        f"{G.SLIP} a move goes to a random perpendicular direction; at most {G.MAX_STEPS} actions."
    )


EXAMPLE = (
    "[user]: map :\n. # . . G\n. . # . .\n. . . . P\nS . . # P\nP . . . .\ngoal 0 4\n"
    "at 3 0 , up . down P left # right .\n"
    "[assistant]: up\n[env]: at 2 0 , up . down . left # right .\n"
    "[assistant]: left\n[env]: hit a wall , at 2 0 , up . down . left # right .\n"
    "[assistant]: right\n[env]: at 2 1 , up . down . left . right .\n..."
)


def _format_text():
    return (
        "Text is the plain renderer of the service (design.md section 2): message i is `[role]: content`, "
        "for i > 0 prefixed with `\\n`, each message encoded on its own, BOS first. A `user` message holds "
        "the map (`.` floor, `#` wall, `P` pit, `G` goal, `S` start), the goal and the start position with "
        "what its four neighbours hold; then `assistant` messages (one action word) alternate with `env` "
        "messages: `at R C , up X down X left X right X` (the new position and its neighbours), "
        "`hit a wall , at R C , ...`, `fell into a pit`, `reached goal`, `at R C , out of steps`, "
        "`invalid action`. Example:\n\n```\n"
        + EXAMPLE
        + "\n```\n"
    )


def _files_text():
    return (
        "Files: `model.onnx` (inputs `input_ids`, `attention_mask`, `position_ids` int64 [batch, sequence]; "
        "output `logits` float32 [batch, sequence, vocab]; dynamic batch and sequence; position_ids = "
        "cumsum(attention_mask) - 1 clamped at 0; left and right padding give the same logits at real "
        "positions; the last node is `MatMul(final_hidden, W) -> logits`), `config.json`, `tokenizer.json`, "
        "`tokenizer_config.json`, `special_tokens_map.json`. `decoder_with_past_model.onnx` is the same "
        "weights with a KV cache (optimum's names: `past_key_values.{i}.key/value` [batch, 2, past, 48] in, "
        "`present.{i}.key/value` out; `attention_mask` spans past + new tokens), written by "
        "`tools/train-tiny-pair/export_past.py` from `model.onnx`; the service serves it (prefix cache).\n"
    )


def _export(s):
    d = s.get("export_max_abs_diff", {})
    return ("Export check: onnxruntime-node vs torch on left-, right- and unpadded batches, max |diff| of the "
            f"logits at real positions: reference {d.get('reference', float('nan')):.1e}, policy "
            f"{d.get('policy', float('nan')):.1e}.\n")


def _repro(s):
    return (
        "Reproduce (CPU, about the wall time below; same success rates within sampling noise):\n\n"
        f"```\n{s['command']}\n```\n\n"
        f"Seed {s['seed']}, torch {s['torch']} (Debian python3-torch), {s['threads']} thread(s). Wall time: "
        f"SFT {s['wall_sft_s']} s, RL {s['wall_rl_s']} s, total with evaluation {s['wall_total_s']} s. "
        "See tools/train-tiny-pair/README.md.\n"
    )


def reference_card(s):
    return (
        "# gridworld-reference\n\n"
        "The reference `pi_ref` of the service's embedded default pair: a tiny language model that plays a "
        "slippery gridworld, trained by supervised fine-tuning on demonstrations of a noisy expert. "
        "`../gridworld-policy` was obtained from it by KL-regularized RL.\n\n"
        f"## Model\n\n{_arch(s)}.\n\n{_files_text()}\n"
        f"## Environment and format\n\n{_env_text()}\n\n{_format_text()}\n"
        "## Training\n\n"
        f"Next-token loss on the assistant and env messages of {s['sft_steps']} x {s['sft_batch']} freshly "
        f"generated episodes (training maps: seeds in [0, 1e9)) of a noisy expert: with probability "
        f"{s['expert_eps']} a uniformly random action, otherwise a uniformly random move along a shortest "
        "safe path (BFS avoiding walls and pits). Its success rate is therefore clearly imperfect.\n\n"
        f"## Results\n\n{_results_table(s)}\n{_repro(s)}\n{_export(s)}"
    )


def _stop(s):
    if s.get("rl_stop", "plateau") == "plateau":
        return (f"Stopped after {s['rl_iters']} iterations ({s['rl_iters'] * s['episodes_per_iter']:,} episodes), "
                "when success and KL had plateaued (the mean over the last 30 iterations within 2 points of "
                "success and 10% of KL of the 30 before) and the held-out gap was at least 15 points.\n\n")
    return f"Stopped at the iteration limit, {s['rl_iters']} iterations.\n\n"


def policy_card(s):
    return (
        "# gridworld-policy\n\n"
        "The policy `pi` of the service's embedded default pair: `../gridworld-reference` after KL-regularized "
        "RL with the slippery gridworld in the loop. Their log-ratio, scaled by beta, is the progress "
        "advantage the service computes.\n\n"
        f"## Model\n\n{_arch(s)}. `config.json` records `kl_beta` = {s['beta']}.\n\n{_files_text()}\n"
        f"## Environment and format\n\n{_env_text()}\n\n{_format_text()}\n"
        "## Training\n\n"
        "Objective: E[success] - beta * KL(pi || pi_ref) over the sampled action tokens, "
        f"beta = {s['beta']}, pi_ref frozen. Per iteration {s['episodes_per_iter']} episodes on fresh training "
        "maps (groups of episodes per map), sampled at temperature 1 from the policy's full vocabulary (an "
        "output that is not an action word ends the episode as a failure). Policy gradient with a "
        "leave-one-out group baseline; each action token's advantage is the episode's reward minus the "
        "baseline minus beta times the sum of the remaining sampled log-ratios (the KL as a penalty reward). "
        + _stop(s) +
        f"KL(pi || pi_ref) per episode at the end (exact over the vocabulary at each action position, summed "
        f"over the episode, mean of the last iterations): {s['kl_end']:.3f} nats (sampled estimate "
        f"{s['kl_k1_end']:.3f}). Training success at the end: {_pct(s['train_success_end'])}. Per-iteration "
        "success and KL are in tools/train-tiny-pair/results/rl_history.jsonl, the whole log in "
        "tools/train-tiny-pair/results/train.log.\n\n"
        f"## Results\n\n{_results_table(s)}\n{_repro(s)}\n{_export(s)}"
    )


def bench_readme(s):
    p, r = s["eval_file_policy"], s["eval_file_reference"]
    return (
        "# bench/data\n\n"
        "## gridworld-eval.jsonl\n\n"
        f"{p['episodes']} episodes: 100 held-out maps (map seeds 2e9 + i, disjoint from the training maps and "
        "from the maps of the success evaluation) x 8 episodes sampled from `models/gridworld-policy` at "
        "temperature 1 with the environment's own randomness (slips), written by "
        "`tools/train-tiny-pair/train.py`.\n\n"
        f"Summary (policy): success rate {_pct(p['success'])}, episodes with a bad action {_pct(p['bad'])} "
        f"(of successes {_pct(p['bad_success'])}, of failures {_pct(p['bad_failure'])}); outcomes {p['outcomes']}.\n\n"
        "`gridworld-eval-reference.jsonl`: the same maps and environment seeds, sampled from "
        "`models/gridworld-reference`.\n\n"
        f"Summary (reference): success rate {_pct(r['success'])}, episodes with a bad action {_pct(r['bad'])} "
        f"(of successes {_pct(r['bad_success'])}, of failures {_pct(r['bad_failure'])}); outcomes {r['outcomes']}.\n\n"
        "One JSON object per line:\n\n"
        "- `id` (`map017-ep3`), `task_id` (`map017`): 8 episodes share a task (map).\n"
        "- `messages`: OpenAI-style messages, roles `user`, `assistant`, `env` (the environment's observation; "
        "render with the plain renderer as `[env]: ...`).\n"
        "- `success`: reached the goal.\n"
        "- `first_bad_action`: 0-based ordinal among the assistant messages of the first bad action, or null; "
        "`first_bad_message`: the index of that assistant message in `messages`, or null.\n"
        "- `n_actions`, `outcome` (`goal`, `pit`, `out_of_steps`, `invalid`), `map_seed` "
        "(`gridworld.make_map(map_seed)` rebuilds the map), `seed` (the environment's slip RNG seed).\n\n"
        "A bad action is an action that moves away from the goal along the shortest safe path (BFS over floor "
        "cells, avoiding walls and pits), hits a wall (or the border), or enters a pit, judged on the intended "
        "move before any slip; an output that is not an action word is bad as well. On a grid a move between "
        "floor cells changes the shortest-safe-path distance by exactly one, so a good action is exactly one "
        "that steps one cell closer to the goal along a shortest safe path. A slip can put the agent into a "
        "pit after a good action: such a failure has no bad action.\n"
    ) + _exact_section()


def _exact_section():
    """The exact pair's files (distill.py), from its committed summary when there is one."""
    import json
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results-exact", "summary.json")
    if not os.path.exists(path):
        return ""
    from cards_exact import bench_section

    with open(path) as f:
        return bench_section(json.load(f))


if __name__ == "__main__":
    # Re-render the cards and bench/data/README.md from a run's summary.json:
    #   /usr/bin/python3 tools/train-tiny-pair/cards.py tools/train-tiny-pair/results/summary.json
    import json
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    with open(sys.argv[1]) as f:
        summary = json.load(f)
    for name, fn in (("gridworld-reference", reference_card), ("gridworld-policy", policy_card)):
        with open(os.path.join(repo, "models", name, "README.md"), "w") as f:
            f.write(fn(summary))
    with open(os.path.join(repo, "bench", "data", "README.md"), "w") as f:
        f.write(bench_readme(summary))
