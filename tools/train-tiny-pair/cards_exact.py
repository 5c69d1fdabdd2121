"""Model cards of the exact pair (models/gridworld-exact-*), written from distill.py's summary.
Nothing here depends on the machine or the wall time, so a re-run writes the same bytes."""
from __future__ import annotations

from cards import _arch, _env_text, _files_text, _format_text


def _fit(s, key):
    f = s[key]
    return (f"mean KL(target ‖ model) {f['kl_mean']:.4f} nats (99th percentile {f['kl_p99']:.3f}, max {f['kl_max']:.3f}); "
            f"mean |log p_model − log p_target| of the action taken {f['abs_logp_err_taken']:.3f}; mean log-prob of "
            f"the fixed tokens `\\n[assistant]:` {f['fixed_logp_mean']:.1e}")


def _construction(s):
    return (
        "## Construction\n\n"
        f"**Targets.** The reference target is the noisy expert of the SFT data (ε = {s['expert_eps']}): "
        "π_ref^target(a | s) = ε/4 + (1 − ε)/|O(s)| for a in O(s) (the moves one step closer to the goal along "
        "a shortest safe path, `gridworld.optimal_actions`) and ε/4 for the other moves. The policy target is the "
        f"exact optimum of KL-regularized RL with β = {s['beta']}: π*(a|s) = π_ref^target(a|s)·exp((Q*(s,a) − V*(s))/β), "
        "Q* and V* by soft value iteration on the gridworld's true dynamics (slips, walls, pits, goal, horizon) over "
        "the state (map, position, steps taken) — `tools/train-tiny-pair/soft_vi.py`.\n\n"
        f"**Distillation.** Both models start from the weights of `{s['init']}` (it already reads the format) and are "
        "fitted, one after the other, by supervised learning on freshly generated episodes on training maps "
        "(seeds in [0, 1e9)), half sampled from π* and half from π_ref^target with the environment's slips, so the "
        "states are those both distributions visit. Loss at every action position: KL(target ‖ model) over the four "
        f"moves plus {s['log_weight']} × the mean Huber error (δ = 1) of the four log-probs (so that rare moves are "
        f"fitted in log space too); plus cross-entropy on the fixed tokens `\\n[assistant]:` of each step (weight "
        f"{s['fixed_weight']}) and on the env messages' tokens (weight {s['env_weight']}). The reference first "
        f"({s['ref_steps']} steps), then the policy from the distilled reference ({s['policy_steps']} steps), "
        f"{s['batch']} episodes a step, AdamW, lr {s['lr']} with warm-up and cosine decay, gradient clipped at 1.\n\n"
        f"**Fit on held-out maps** ({s['heldout_episodes']} episodes on maps never trained on, half from each "
        f"distribution, {s['heldout_positions']} action positions):\n\n"
        f"- reference vs π_ref^target: {_fit(s, 'fit_reference')};\n"
        f"- policy vs π*: {_fit(s, 'fit_policy')}.\n\n"
        f"(Before distillation, the starting weights had mean KL {s['fit_init']['ref']['kl_mean']:.3f} to "
        f"π_ref^target and {s['fit_init']['pol']['kl_mean']:.3f} to π*.)\n"
    )


def _repro(s):
    d = s.get("export_max_abs_diff", {})
    return (
        "## Reproduce\n\n"
        f"```\n{s['command']}\n```\n\n"
        f"Seed {s['seed']}, torch {s['torch']} (Debian python3-torch), one torch thread and one OpenBLAS thread "
        "(fixed by the script, so the bytes do not depend on the machine's load). Re-running it writes the same "
        "`model.onnx`, `config.json`, cards and evaluation files byte for byte. See tools/train-tiny-pair/README.md.\n\n"
        "Export check: onnxruntime-node vs torch on left-, right- and unpadded batches, max |diff| of the logits at "
        f"real positions: reference {d.get('reference', float('nan')):.1e}, policy {d.get('policy', float('nan')):.1e}.\n"
    )


def _model(s, extra=""):
    return f"## Model\n\n{_arch(s)}.{extra}\n\n{_files_text()}\n## Environment and format\n\n{_env_text()}\n\n{_format_text()}\n"


def reference_card(s):
    return (
        "# gridworld-exact-reference\n\n"
        "The reference `pi_ref` of the service's `exact` pair: a tiny language model distilled to π_ref^target, the "
        "Markov noisy expert of the gridworld. Its partner `../gridworld-exact-policy` is distilled to π*, the exact "
        "optimum of KL-regularized RL from π_ref^target, so β·log π/π_ref of a step approximates the true optimal "
        "advantage A*(s,a) = Q*(s,a) − V*(s), which `bench/data/gridworld-exact-eval*.jsonl` carry per step.\n\n"
        + _model(s) + _construction(s) + "\n" + _repro(s)
    )


def policy_card(s):
    return (
        "# gridworld-exact-policy\n\n"
        "The policy `pi` of the service's `exact` pair: a tiny language model distilled to π*, the exact optimum of "
        f"KL-regularized RL (β = {s['beta']}) from π_ref^target in the slippery gridworld. With "
        "`../gridworld-exact-reference`, β·log π/π_ref of a step approximates the true optimal advantage "
        "A*(s,a) = Q*(s,a) − V*(s).\n\n"
        + _model(s, f" `config.json` records `kl_beta` = {s['beta']}.") + _construction(s) + "\n" + _repro(s)
    )


def bench_section(s):
    """The exact pair's part of bench/data/README.md (cards.bench_readme appends it)."""
    p, r = s["eval_files"]["policy"], s["eval_files"]["reference"]
    return (
        "\n## gridworld-exact-eval.jsonl and gridworld-exact-eval-reference.jsonl\n\n"
        "Ground truth for the `exact` pair (`models/gridworld-exact-*`), written by "
        "`tools/train-tiny-pair/distill.py`: the same 100 held-out maps (seeds 2e9 + i) x 8 episodes, sampled "
        "exactly (not from the models) from pi* (`gridworld-exact-eval.jsonl`, `\"sampler\": \"pi_star\"`) and from "
        "the noisy expert pi_ref^target (`gridworld-exact-eval-reference.jsonl`, `\"sampler\": \"pi_ref_target\"`), "
        f"with the environment's slips; beta = {s['beta']}, eps = {s['expert_eps']}.\n\n"
        f"Summary (pi*): {p['episodes']} episodes, {p['steps']} steps, success rate {100 * p['success']:.1f}%, episodes "
        f"with a bad action {100 * p['bad']:.1f}%; outcomes {p['outcomes']}; A* per step mean {p['a_star_mean']:.4f}, "
        f"std {p['a_star_std']:.4f}.\n\n"
        f"Summary (pi_ref^target): {r['episodes']} episodes, {r['steps']} steps, success rate {100 * r['success']:.1f}%, "
        f"episodes with a bad action {100 * r['bad']:.1f}%; outcomes {r['outcomes']}; A* per step mean "
        f"{r['a_star_mean']:.4f}, std {r['a_star_std']:.4f}.\n\n"
        "Fields: those of `gridworld-eval.jsonl` above, plus `sampler`, `a_star` (the true optimal advantage "
        "A*(s,a) = Q*(s,a) - V*(s) of each assistant step, in order, by soft value iteration on the true dynamics "
        "over (map, position, steps taken); see tools/train-tiny-pair/README.md) and `v_star_0` (V* of the start "
        "state). Summed along an episode, A* is the return minus `v_star_0` minus the environment's luck.\n"
    )


if __name__ == "__main__":
    # Re-render the exact pair's cards from a summary (a re-run of distill.py writes the same bytes):
    #   /usr/bin/python3 tools/train-tiny-pair/cards_exact.py tools/train-tiny-pair/results-exact/summary.json
    import json
    import os
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(sys.argv[1]) as f:
        summary = json.load(f)
    for name, fn in (("gridworld-exact-reference", reference_card), ("gridworld-exact-policy", policy_card)):
        with open(os.path.join(repo, "models", name, "README.md"), "w") as f:
            f.write(fn(summary))
