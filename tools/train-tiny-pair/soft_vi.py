"""The exact KL-regularized optimum of the slippery gridworld, by soft value iteration.

Reference target (the noisy expert of the SFT data, `gridworld.noisy_expert_action`, eps = 0.3):
    pi_ref(a | s) = eps/4 + (1 - eps)/|O(s)|   for a in O(s) = gridworld.optimal_actions(map, pos)
                  = eps/4                      otherwise
It depends on the position only, not on the steps taken.

State s = (map, position, steps taken t), t = 0 .. MAX_STEPS-1 before an action. The true dynamics
of gridworld.py: the intended move with probability 1 - SLIP, each perpendicular move with SLIP/2;
a wall or the border leaves the agent in place; a pit ends the episode with reward 0, the goal with
reward 1; after the MAX_STEPS-th action the episode ends with reward 0 (out of steps). Terminal
values are 0. With beta the pair's KL coefficient:
    Q*(s, a) = E[r + V*(s')]              (s' = (next position, t + 1); V* = 0 when terminal)
    V*(s)    = beta * log sum_a pi_ref(a|s) * exp(Q*(s, a) / beta)
    pi*(a|s) = pi_ref(a|s) * exp((Q*(s, a) - V*(s)) / beta)
    A*(s, a) = Q*(s, a) - V*(s) = beta * log pi*(a|s) / pi_ref(a|s)
The horizon is finite, so one backward sweep over t = MAX_STEPS-1 .. 0 is exact (no iteration to a
fixed point is needed). Everything is float64.
"""
from __future__ import annotations

import math

import gridworld as G

EPS = 0.3
BETA = 0.05


def reference_probs(m: G.GridMap, pos, eps: float = EPS) -> list:
    """pi_ref^target(. | pos) over gridworld.ACTIONS."""
    opt = G.optimal_actions(m, pos)
    return [eps / 4 + ((1 - eps) / len(opt) if a in opt else 0.0) for a in G.ACTIONS]


def outcomes(m: G.GridMap, pos, action: str) -> list:
    """(probability, next position, reward, terminal) of each move the action can turn into."""
    moves = [(action, 1 - G.SLIP)] + [(p, G.SLIP / 2) for p in G.PERPENDICULAR[action]]
    out = []
    for move, p in moves:
        dr, dc = G.DELTAS[move]
        nr, nc = pos[0] + dr, pos[1] + dc
        cell = m.cell(nr, nc)
        if cell == G.WALL:
            out.append((p, pos, 0.0, False))
        elif cell == G.PIT:
            out.append((p, (nr, nc), 0.0, True))
        elif cell == G.GOAL:
            out.append((p, (nr, nc), 1.0, True))
        else:
            out.append((p, (nr, nc), 0.0, False))
    return out


def _logsumexp(xs):
    mx = max(xs)
    return mx + math.log(sum(math.exp(x - mx) for x in xs))


class Solution:
    """Q*, V*, pi*, A* of one map for every floor position and every t in 0 .. MAX_STEPS-1."""

    def __init__(self, m: G.GridMap, beta: float = BETA, eps: float = EPS):
        self.m, self.beta, self.eps = m, beta, eps
        floor = [(r, c) for r in range(G.SIZE) for c in range(G.SIZE) if m.cells[r][c] == G.FLOOR]
        self.ref = {p: reference_probs(m, p, eps) for p in floor}
        self.Q, self.V = {}, {}
        V_next = {p: 0.0 for p in floor}  # V*(., MAX_STEPS) = 0: the episode is over
        for t in range(G.MAX_STEPS - 1, -1, -1):
            V_t = {}
            for p in floor:
                q = []
                for a in G.ACTIONS:
                    v = 0.0
                    for prob, nxt, rew, term in outcomes(m, p, a):
                        v += prob * (rew + (0.0 if term or t + 1 >= G.MAX_STEPS else V_next[nxt]))
                    q.append(v)
                lse = _logsumexp([math.log(pr) + qa / beta for pr, qa in zip(self.ref[p], q)])
                self.Q[(p, t)] = q
                V_t[p] = beta * lse
                self.V[(p, t)] = V_t[p]
            V_next = V_t

    def advantage(self, pos, t) -> list:
        v = self.V[(pos, t)]
        return [q - v for q in self.Q[(pos, t)]]

    def policy_probs(self, pos, t) -> list:
        """pi*(. | pos, t) over gridworld.ACTIONS (sums to 1 up to rounding)."""
        return [pr * math.exp(a / self.beta) for pr, a in zip(self.ref[pos], self.advantage(pos, t))]

    def reference(self, pos) -> list:
        return self.ref[pos]


def sample_action(probs, rng) -> str:
    u = rng.random()
    acc = 0.0
    for a, p in zip(G.ACTIONS, probs):
        acc += p
        if u < acc:
            return a
    return G.ACTIONS[-1]
