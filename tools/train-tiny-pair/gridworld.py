"""A small slippery gridworld with walls, pits and a goal, and its text form.

Map: SIZE x SIZE cells; a cell is floor '.', wall '#', pit 'P' or the goal 'G' (the start cell
is drawn as 'S'; it is floor). Leaving the grid counts as hitting a wall.

Dynamics: the agent picks up/down/left/right. With probability SLIP the move goes to one of
the two perpendicular directions instead (each with SLIP/2). Moving into a wall or off the
grid leaves the agent where it was. Entering a pit ends the episode with reward 0 (it is
irreversible); entering the goal ends it with reward 1. At most MAX_STEPS actions; running
out of steps gives reward 0. An output that is not one of the four action words ends the
episode with reward 0.

Text (the plain renderer of design.md section 2: message i is "[role]: content", for i > 0
prefixed with "\n"): a `user` message with the map, the goal and the start position; then
alternating `assistant` messages (one action word) and `env` messages with the observation:
  "at R C , VIEW"                the agent moved (or slipped) to row R, column C
  "hit a wall , at R C , VIEW"   the move was blocked; the agent stayed at R C
  "fell into a pit"              terminal, failure
  "reached goal"                 terminal, success
  "at R C , out of steps"        terminal after the last allowed action, failure
  "invalid action"               terminal, the assistant message was not an action word
VIEW is what the four neighbouring cells hold: "up X down X left X right X" with X one of
. # P G (outside the grid reads as a wall). The user message ends with the same
"at R C , VIEW" line for the start.
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

SIZE = 5
MAX_STEPS = 12
SLIP = 0.1
ACTIONS = ("up", "down", "left", "right")
DELTAS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
PERPENDICULAR = {"up": ("left", "right"), "down": ("left", "right"), "left": ("up", "down"), "right": ("up", "down")}
FLOOR, WALL, PIT, GOAL = ".", "#", "P", "G"
INF = 10**9


@dataclass
class GridMap:
    seed: int
    cells: list  # list of rows, each a list of '.', '#', 'P', 'G'
    start: tuple
    goal: tuple
    dist: list = field(default_factory=list)  # shortest safe-path distance to the goal (INF for walls/pits)

    def cell(self, r: int, c: int) -> str:
        if 0 <= r < SIZE and 0 <= c < SIZE:
            return self.cells[r][c]
        return WALL


def safe_distances(cells, goal):
    """BFS distance to the goal over floor cells (walls and pits are not traversable)."""
    dist = [[INF] * SIZE for _ in range(SIZE)]
    dist[goal[0]][goal[1]] = 0
    q = deque([goal])
    while q:
        r, c = q.popleft()
        for dr, dc in DELTAS.values():
            nr, nc = r + dr, c + dc
            if 0 <= nr < SIZE and 0 <= nc < SIZE and cells[nr][nc] == FLOOR and dist[nr][nc] == INF:
                dist[nr][nc] = dist[r][c] + 1
                q.append((nr, nc))
    return dist


def make_map(seed: int) -> GridMap:
    """A random map from a seed: 2-4 interior walls, 2-4 pits, a goal, and a start at safe
    distance >= 4 from it; every floor cell can reach the goal without crossing a pit."""
    rng = random.Random(seed * 7919 + 17)
    while True:
        cells = [[FLOOR] * SIZE for _ in range(SIZE)]
        coords = [(r, c) for r in range(SIZE) for c in range(SIZE)]
        rng.shuffle(coords)
        goal = coords.pop()
        cells[goal[0]][goal[1]] = GOAL
        for _ in range(rng.randint(2, 4)):
            r, c = coords.pop()
            cells[r][c] = WALL
        for _ in range(rng.randint(2, 4)):
            r, c = coords.pop()
            cells[r][c] = PIT
        dist = safe_distances(cells, goal)
        floor = [(r, c) for r in range(SIZE) for c in range(SIZE) if cells[r][c] == FLOOR]
        if any(dist[r][c] == INF for r, c in floor):
            continue
        far = [p for p in floor if dist[p[0]][p[1]] >= 4]
        if not far:
            continue
        start = rng.choice(far)
        return GridMap(seed=seed, cells=cells, start=start, goal=goal, dist=dist)


def optimal_actions(m: GridMap, pos) -> list:
    """Actions whose intended target is one step closer to the goal along a shortest safe path."""
    d = m.dist[pos[0]][pos[1]]
    out = []
    for a in ACTIONS:
        dr, dc = DELTAS[a]
        nr, nc = pos[0] + dr, pos[1] + dc
        if m.cell(nr, nc) in (FLOOR, GOAL) and m.dist[nr][nc] == d - 1:
            out.append(a)
    return out


def is_bad_action(m: GridMap, pos, action: str) -> bool:
    """The issue's definition: an action that moves away from the goal along the shortest safe
    path, hits a wall, or enters a pit (judged on the intended move, before any slip). On a grid
    a move between floor cells changes the safe distance by exactly +-1, so this is exactly
    "not one of optimal_actions". A non-action output is bad too."""
    if action not in ACTIONS:
        return True
    return action not in optimal_actions(m, pos)


def view(m: GridMap, pos) -> str:
    out = []
    for a in ACTIONS:
        dr, dc = DELTAS[a]
        out.append(f"{a} {m.cell(pos[0] + dr, pos[1] + dc)}")
    return " ".join(out)


def where(m: GridMap, pos) -> str:
    return f"at {pos[0]} {pos[1]} , {view(m, pos)}"


def render_user(m: GridMap) -> str:
    rows = []
    for r in range(SIZE):
        row = []
        for c in range(SIZE):
            ch = m.cells[r][c]
            if (r, c) == m.start:
                ch = "S"
            row.append(ch)
        rows.append(" ".join(row))
    return "map :\n" + "\n".join(rows) + f"\ngoal {m.goal[0]} {m.goal[1]}\n" + where(m, m.start)


class Episode:
    """One episode's state. `step(action_word)` returns the env message; `rng` is the
    environment's own randomness (slips)."""

    def __init__(self, m: GridMap, rng: random.Random):
        self.m = m
        self.rng = rng
        self.pos = m.start
        self.steps = 0
        self.done = False
        self.success = False
        self.messages = [{"role": "user", "content": render_user(m)}]
        self.actions = []  # (position before, action word)

    def step(self, action: str) -> str:
        assert not self.done
        self.messages.append({"role": "assistant", "content": action})
        self.actions.append((self.pos, action))
        self.steps += 1
        if action not in ACTIONS:
            self.done = True
            obs = "invalid action"
        else:
            move = action
            u = self.rng.random()
            if u < SLIP:
                move = PERPENDICULAR[action][0] if u < SLIP / 2 else PERPENDICULAR[action][1]
            dr, dc = DELTAS[move]
            nr, nc = self.pos[0] + dr, self.pos[1] + dc
            target = self.m.cell(nr, nc)
            if target == WALL:
                obs = "hit a wall , " + where(self.m, self.pos)
            elif target == PIT:
                self.pos = (nr, nc)
                self.done = True
                obs = "fell into a pit"
            elif target == GOAL:
                self.pos = (nr, nc)
                self.done = True
                self.success = True
                obs = "reached goal"
            else:
                self.pos = (nr, nc)
                obs = where(self.m, self.pos)
            if not self.done and self.steps >= MAX_STEPS:
                self.done = True
                obs = f"at {self.pos[0]} {self.pos[1]} , out of steps"
        self.messages.append({"role": "env", "content": obs})
        return obs

    def first_bad(self):
        """(ordinal among assistant messages, index into messages) of the first bad action, or (None, None)."""
        for k, (pos, a) in enumerate(self.actions):
            if is_bad_action(self.m, pos, a):
                return k, 1 + 2 * k
        return None, None


def noisy_expert_action(m: GridMap, pos, rng: random.Random, eps: float) -> str:
    """With probability eps a uniformly random action, else a uniformly random optimal one."""
    if rng.random() < eps:
        return rng.choice(ACTIONS)
    return rng.choice(optimal_actions(m, pos))


def render_plain(messages) -> list:
    """The plain renderer's segments: message i is "[role]: content", prefixed with "\\n" for i > 0."""
    return [("\n" if i > 0 else "") + f"[{msg['role']}]: {msg['content']}" for i, msg in enumerate(messages)]
