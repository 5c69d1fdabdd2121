/**
 * An independent soft value iteration for the slippery gridworld, written from the documented
 * rules (tools/train-tiny-pair/README.md, "Environment" and "The exact pair") and nothing of the
 * Python code: the map is read back from an episode's own user message.
 *
 *   π_ref(a|s) = ε/4 + (1 − ε)/|O(s)| for a in O(s), ε/4 otherwise; O(s): the moves to a neighbour
 *               one step closer to the goal along a shortest safe path (BFS over floor cells)
 *   dynamics:   the intended move with 1 − SLIP, each perpendicular one with SLIP/2; a wall or the
 *               border leaves the agent in place; a pit ends with reward 0, the goal with 1; after
 *               MAX_STEPS actions the episode ends with 0
 *   Q(s,a) = E[r + V(s')], V(s) = β log Σ_a π_ref(a|s) exp(Q(s,a)/β), terminal V = 0, A = Q − V
 */
export const SIZE = 5;
export const SLIP = 0.1;
export const MAX_STEPS = 12;
export const ACTIONS = ['up', 'down', 'left', 'right'] as const;
export type Action = (typeof ACTIONS)[number];
const DELTA: Record<Action, [number, number]> = { up: [-1, 0], down: [1, 0], left: [0, -1], right: [0, 1] };
const PERPENDICULAR: Record<Action, [Action, Action]> = { up: ['left', 'right'], down: ['left', 'right'], left: ['up', 'down'], right: ['up', 'down'] };

export interface GridMap {
  cells: string[][]; // '.', '#', 'P', 'G' (the start 'S' is floor)
  start: [number, number];
  goal: [number, number];
}

/** The map of a user message "map :\n<5 rows>\ngoal R C\nat R C , ...". */
export function parseMap(user: string): GridMap {
  const lines = user.split('\n');
  if (lines[0] !== 'map :') throw new Error(`not a gridworld user message: ${lines[0]}`);
  let start: [number, number] | undefined;
  const cells = lines.slice(1, 1 + SIZE).map((row, r) =>
    row.split(' ').map((ch, c) => {
      if (ch === 'S') {
        start = [r, c];
        return '.';
      }
      return ch;
    }),
  );
  const goal = lines[1 + SIZE].split(' ').slice(1).map(Number) as [number, number];
  if (!start || cells.some((row) => row.length !== SIZE) || cells[goal[0]][goal[1]] !== 'G') throw new Error('malformed map');
  return { cells, start, goal };
}

const cell = (m: GridMap, r: number, c: number): string => (r >= 0 && r < SIZE && c >= 0 && c < SIZE ? m.cells[r][c] : '#');

function safeDistances(m: GridMap): number[][] {
  const dist = m.cells.map((row) => row.map(() => Infinity));
  dist[m.goal[0]][m.goal[1]] = 0;
  const queue: [number, number][] = [m.goal];
  while (queue.length > 0) {
    const [r, c] = queue.shift()!;
    for (const [dr, dc] of Object.values(DELTA)) {
      const nr = r + dr;
      const nc = c + dc;
      if (cell(m, nr, nc) === '.' && dist[nr][nc] === Infinity) {
        dist[nr][nc] = dist[r][c] + 1;
        queue.push([nr, nc]);
      }
    }
  }
  return dist;
}

export function referenceProbs(m: GridMap, dist: number[][], pos: [number, number], eps: number): number[] {
  const d = dist[pos[0]][pos[1]];
  const optimal = ACTIONS.filter((a) => {
    const [nr, nc] = [pos[0] + DELTA[a][0], pos[1] + DELTA[a][1]];
    const ch = cell(m, nr, nc);
    return (ch === '.' || ch === 'G') && dist[nr][nc] === d - 1;
  });
  return ACTIONS.map((a) => eps / 4 + (optimal.includes(a) ? (1 - eps) / optimal.length : 0));
}

export interface SoftSolution {
  /** A*(s,a) for s = (pos, t), over ACTIONS. */
  advantage(pos: [number, number], t: number): number[];
  /** V*(s); 0 at t = MAX_STEPS (the episode is over). */
  value(pos: [number, number], t: number): number;
}

export function solve(m: GridMap, beta: number, eps: number): SoftSolution {
  const dist = safeDistances(m);
  const key = (p: [number, number]) => p[0] * SIZE + p[1];
  const floor: [number, number][] = [];
  for (let r = 0; r < SIZE; r++) for (let c = 0; c < SIZE; c++) if (m.cells[r][c] === '.') floor.push([r, c]);
  const A = new Map<string, number[]>();
  const V = new Map<string, number>();
  let vNext = new Map<number, number>(floor.map((p) => [key(p), 0]));
  for (let t = MAX_STEPS - 1; t >= 0; t--) {
    const vHere = new Map<number, number>();
    for (const p of floor) {
      const q = ACTIONS.map((a) => {
        const moves: [Action, number][] = [[a, 1 - SLIP], [PERPENDICULAR[a][0], SLIP / 2], [PERPENDICULAR[a][1], SLIP / 2]];
        let value = 0;
        for (const [move, prob] of moves) {
          const [nr, nc] = [p[0] + DELTA[move][0], p[1] + DELTA[move][1]];
          const ch = cell(m, nr, nc);
          if (ch === 'G') value += prob * 1;
          else if (ch === 'P') value += 0;
          else {
            const next: [number, number] = ch === '#' ? p : [nr, nc];
            value += prob * (t + 1 >= MAX_STEPS ? 0 : vNext.get(key(next))!);
          }
        }
        return value;
      });
      const ref = referenceProbs(m, dist, p, eps);
      const z = q.map((qa, i) => Math.log(ref[i]) + qa / beta);
      const mx = Math.max(...z);
      const v = beta * (mx + Math.log(z.reduce((s, x) => s + Math.exp(x - mx), 0)));
      vHere.set(key(p), v);
      V.set(`${key(p)}:${t}`, v);
      A.set(`${key(p)}:${t}`, q.map((qa) => qa - v));
    }
    vNext = vHere;
  }
  return {
    advantage(pos, t) {
      const a = A.get(`${key(pos)}:${t}`);
      if (!a) throw new Error(`no state at ${pos} t=${t}`);
      return a;
    },
    value(pos, t) {
      if (t >= MAX_STEPS) return 0;
      const v = V.get(`${key(pos)}:${t}`);
      if (v === undefined) throw new Error(`no state at ${pos} t=${t}`);
      return v;
    },
  };
}

/** The (position, steps taken, action) of each assistant message of an episode, replayed from its env messages. */
export function replay(messages: { role: string; content: string }[]): { pos: [number, number]; t: number; action: Action }[] {
  const at = (text: string): [number, number] => {
    const match = /at (\d) (\d) ,/.exec(text);
    if (!match) throw new Error(`no position in "${text}"`);
    return [Number(match[1]), Number(match[2])];
  };
  let pos = at(messages[0].content.split('\n').at(-1)!);
  const out: { pos: [number, number]; t: number; action: Action }[] = [];
  for (let i = 1; i < messages.length; i += 2) {
    const action = messages[i].content as Action;
    if (!ACTIONS.includes(action)) throw new Error(`not an action: ${action}`);
    out.push({ pos, t: out.length, action });
    const obs = messages[i + 1]?.content ?? '';
    if (/^(at|hit a wall)/.test(obs)) pos = at(obs);
  }
  return out;
}
