/**
 * Input adapters on the real data sets in ../shared/real/data. Every expectation is read from
 * the raw records here (counts of history entries, assistant messages, step_labels keys,
 * ProcessBench labels), not from the adapter's output.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/errors.js';
import { adaptTrajectory, readTrajectoryFile, TRAJECTORY_FORMATS, TrajectoryFileError } from '../../src/text/adapters.js';
import { isStep, DEFAULT_ACTION_ROLES } from '../../src/text/messages.js';
import { describeIf, needShared } from '../helpers/shared.js';
import { DATA, readJson } from './real-files.js';

const WHO_AND_WHEN = path.join(DATA, 'who-and-when');
const TAU = path.join(DATA, 'tau-bench', 'gpt-4o-airline.trial0.tasks0-19.json');
const APB = path.join(DATA, 'agentprocessbench', 'hotpotqa.first50.jsonl');
const PROCESSBENCH = path.join(DATA, 'processbench', 'gsm8k.json');
const HAVE_SHARED = needShared(import.meta.url, [WHO_AND_WHEN, TAU, APB, PROCESSBENCH]);
const GRIDWORLD = path.join(__dirname, '..', '..', 'bench', 'data', 'gridworld-eval.jsonl');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapters-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function stepCount(t: { messages: any[]; action_roles?: string[] }): number {
  return t.messages.filter((m) => isStep(m, t.action_roles ?? DEFAULT_ACTION_ROLES)).length;
}

function errorOf(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    return err as ServiceError;
  }
  throw new Error('expected a ServiceError');
}

describeIf(HAVE_SHARED)('who_and_when', () => {
  const all = readTrajectoryFile(WHO_AND_WHEN, 'who_and_when');
  const raw = (id: string) => readJson(path.join(WHO_AND_WHEN, `${id}.json`));

  it('reads all 50 cases of the directory, one per file, in natural order', () => {
    expect(all).toHaveLength(50);
    const generated = all.filter((t) => t.id.startsWith('Algorithm-Generated/'));
    expect(generated).toHaveLength(35);
    expect(generated.map((t) => t.id)).toEqual(Array.from({ length: 35 }, (_, i) => `Algorithm-Generated/${i + 1}`));
    expect(all.slice(35).map((t) => t.id)).toEqual([1, 4, 5, 6, 7, 12, 16, 17, 18, 21, 22, 24, 25, 26, 29].map((n) => `Hand-Crafted/${n}`));
  });

  it('the history is the conversation as it is: every entry in order, with its own role and name', () => {
    for (const { id, trajectory: t } of all) {
      const r = raw(id);
      expect(t.messages).toHaveLength(r.history.length);
      r.history.forEach((h: any, i: number) => {
        expect(t.messages[i].content).toBe(h.content);
        expect(t.messages[i].role).toBe(h.role);
        expect(t.messages[i].name).toBe(h.name);
      });
    }
  });

  it('the steps are every entry with content, but a Hand-Crafted log\'s opening human question', () => {
    for (const { id, trajectory: t } of all) {
      const r = raw(id);
      const expected = r.history.map((_: any, i: number) => i).filter((i: number) => r.history[i].content !== '' && !(i === 0 && r.history[i].role === 'human'));
      expect(t.steps).toEqual(expected);
      expect(t.action_roles).toBeUndefined();
    }
    // Algorithm-Generated: every entry has content here, so every entry is a step.
    expect(all[0].trajectory.steps).toHaveLength(raw('Algorithm-Generated/1').history.length);
    expect(raw('Hand-Crafted/1').history[0].role).toBe('human');
    expect(all.find((x) => x.id === 'Hand-Crafted/1')!.trajectory.steps![0]).toBe(1);
  });

  it('mistake_step indexes the history; the agent there (name, else role) is mistake_agent where the data agree', () => {
    const disagree: string[] = [];
    for (const { id, trajectory: t } of all) {
      const r = raw(id);
      const i = Number(r.mistake_step);
      const step = t.labels.mistake_step!;
      expect(step).toBe(i);
      expect(t.labels.mistake_agent).toBe(r.mistake_agent);
      expect(t.labels.success).toBe(false);
      expect(t.steps).toContain(step);
      // Magentic-One roles carry Orchestrator's sub-role: "Orchestrator (thought)" is Orchestrator.
      const agent = (t.messages[step].name ?? t.messages[step].role).replace(/ \(.*\)$/, '');
      if (agent !== r.mistake_agent) disagree.push(id);
    }
    // Three upstream cases name an agent other than the one speaking at mistake_step (checked
    // by reading the raw files: AG 14 → Computer_terminal, AG 15 → Verification_Expert, HC 22 → WebSurfer).
    expect(disagree).toEqual(['Algorithm-Generated/14', 'Algorithm-Generated/15', 'Hand-Crafted/22']);
  });

  it('Hand-Crafted entries keep their Magentic-One roles and have no name', () => {
    const t = all.find((x) => x.id === 'Hand-Crafted/16')!.trajectory;
    const r = raw('Hand-Crafted/16');
    expect(t.messages[0]).toEqual({ role: 'human', content: r.history[0].content });
    const k = r.history.findIndex((h: any) => h.role === 'Orchestrator (thought)');
    expect(t.messages[k]).toEqual({ role: 'Orchestrator (thought)', content: r.history[k].content });
    expect(all.find((x) => x.id === 'Hand-Crafted/16')!.group).toBe(r.question_ID);
  });

  it('a case marked correct is a success', () => {
    const r = { ...raw('Algorithm-Generated/1'), is_correct: true };
    expect(adaptTrajectory('who_and_when', r).labels.success).toBe(true);
  });

  it('refuses records that do not fit, naming the field', () => {
    const r = raw('Algorithm-Generated/1');
    let e = errorOf(() => adaptTrajectory('who_and_when', { ...r, history: undefined }));
    expect([e.status, e.code]).toEqual([422, 'invalid_trajectory_data']);
    expect(e.message).toMatch(/history/);
    e = errorOf(() => adaptTrajectory('who_and_when', { ...r, mistake_step: String(r.history.length) }));
    expect(e.code).toBe('invalid_trajectory_data');
    expect(e.message).toMatch(/mistake_step/);
    e = errorOf(() => adaptTrajectory('who_and_when', { ...r, mistake_step: 'two' }));
    expect(e.message).toMatch(/mistake_step/);
    e = errorOf(() => adaptTrajectory('who_and_when', { ...r, history: [{ role: 'user', name: 'X', content: 3 }] }));
    expect(e.message).toMatch(/history\[0\]\.content/);
    e = errorOf(() => adaptTrajectory('who_and_when', 'not a record'));
    expect([e.status, e.code]).toEqual([422, 'invalid_trajectory_data']);
  });
});

describeIf(HAVE_SHARED)('tau_bench', () => {
  const rows = readJson(TAU);
  const all = readTrajectoryFile(TAU, 'tau_bench');

  it('20 trajectories; messages are traj unchanged; every assistant message is a step', () => {
    expect(all).toHaveLength(20);
    all.forEach(({ id, group, trajectory: t }, i) => {
      const r = rows[i];
      expect(id).toBe(`task-${r.task_id}-trial-${r.trial}`);
      expect(group).toBe(String(r.task_id));
      expect(t.messages).toEqual(r.traj);
      expect(stepCount(t)).toBe(r.traj.filter((m: any) => m.role === 'assistant').length);
      expect(t.labels).toEqual({ success: r.reward === 1 });
    });
    // Tool calls are steps: task 0 has 8 assistant turns that only call tools.
    const calls = all[0].trajectory.messages.filter((m) => m.role === 'assistant' && m.tool_calls?.length);
    expect(calls).toHaveLength(8);
    expect(all.filter((t) => t.trajectory.labels.success).map((t) => t.group)).toEqual(['6', '11', '12', '18']);
  });

  it('refuses a record without traj, or with a bad message or reward', () => {
    let e = errorOf(() => adaptTrajectory('tau_bench', { task_id: 1, reward: 1 }));
    expect([e.status, e.code]).toEqual([422, 'invalid_trajectory_data']);
    expect(e.message).toMatch(/traj/);
    e = errorOf(() => adaptTrajectory('tau_bench', { traj: [{ content: 'no role' }], reward: 0 }));
    expect(e.message).toMatch(/role/);
    e = errorOf(() => adaptTrajectory('tau_bench', { traj: rows[0].traj, reward: 'high' }));
    expect(e.message).toMatch(/reward/);
  });
});

describeIf(HAVE_SHARED)('agentprocessbench', () => {
  const rows = fs
    .readFileSync(APB, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
  const all = readTrajectoryFile(APB, 'agentprocessbench');

  it('50 rows; the labelled assistant messages are the steps; first -1 is the mistake; final_label is success', () => {
    expect(all).toHaveLength(50);
    all.forEach(({ id, group, trajectory: t }, i) => {
      const r = rows[i];
      expect(id).toBe(`${r.data_source}:${r.total_index}`);
      expect(group).toBe(`${r.data_source}:${r.query_index}`);
      expect(t.messages).toEqual(r.messages);
      expect(t.tools).toEqual(r.tools);
      const labelled = Object.keys(r.step_labels).map(Number);
      expect(stepCount(t)).toBe(labelled.length);
      const bad = labelled.filter((k) => r.step_labels[k] === -1);
      expect(t.labels.mistake_step).toBe(bad.length ? Math.min(...bad) : null);
      expect(t.labels.success).toBe(r.final_label === 1);
    });
    const failed = all.filter((t) => t.trajectory.labels.success === false);
    expect(failed).toHaveLength(14);
    // Every failed row labels a bad step; two successful rows recovered from one.
    expect(failed.every((t) => typeof t.trajectory.labels.mistake_step === 'number')).toBe(true);
    expect(all.filter((t) => t.trajectory.labels.success && t.trajectory.labels.mistake_step !== null)).toHaveLength(2);
  });

  it('refuses labels on a message that is not an assistant step, or out of range', () => {
    const r = rows[0];
    let e = errorOf(() => adaptTrajectory('agentprocessbench', { ...r, step_labels: { '3': -1 } }));
    expect(e.code).toBe('invalid_trajectory_data');
    expect(e.message).toMatch(/messages\[3\]/);
    e = errorOf(() => adaptTrajectory('agentprocessbench', { ...r, step_labels: { '99': 1 } }));
    expect(e.message).toMatch(/99/);
    e = errorOf(() => adaptTrajectory('agentprocessbench', { ...r, step_labels: { '2': 5 } }));
    expect(e.message).toMatch(/1, 0 or -1/);
    e = errorOf(() => adaptTrajectory('agentprocessbench', { ...r, messages: undefined }));
    expect(e.message).toMatch(/messages/);
  });
});

describeIf(HAVE_SHARED)('processbench', () => {
  const rows = readJson(PROCESSBENCH);
  const all = readTrajectoryFile(PROCESSBENCH, 'processbench');

  it('400 rows: the problem as a user message, one assistant message per step, label → message index', () => {
    expect(all).toHaveLength(400);
    all.forEach(({ id, trajectory: t }, i) => {
      const r = rows[i];
      expect(id).toBe(r.id);
      expect(t.messages).toHaveLength(r.steps.length + 1);
      expect(t.messages[0]).toEqual({ role: 'user', content: r.problem });
      expect(stepCount(t)).toBe(r.steps.length);
      expect(t.labels.success).toBe(r.label === -1);
      if (r.label === -1) expect(t.labels.mistake_step).toBeNull();
      else expect(t.messages[t.labels.mistake_step!].content).toBe(r.steps[r.label]);
    });
    expect(all.filter((t) => t.trajectory.labels.success)).toHaveLength(rows.filter((r: any) => r.label === -1).length);
  });

  it('refuses a label outside the steps and a row without steps', () => {
    const r = rows[0];
    let e = errorOf(() => adaptTrajectory('processbench', { ...r, label: r.steps.length }));
    expect(e.message).toMatch(/label/);
    e = errorOf(() => adaptTrajectory('processbench', { ...r, steps: [] }));
    expect(e.message).toMatch(/steps/);
    e = errorOf(() => adaptTrajectory('processbench', { ...r, problem: undefined }));
    expect(e.message).toMatch(/problem/);
  });
});

describe('messages', () => {
  it('the gridworld evaluation file: id, task_id as the group, success, first_bad_message as mistake_step', () => {
    const lines = fs.readFileSync(GRIDWORLD, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const all = readTrajectoryFile(GRIDWORLD, 'messages');
    expect(all).toHaveLength(lines.length);
    all.forEach(({ id, group, trajectory: t }, i) => {
      expect(id).toBe(lines[i].id);
      expect(group).toBe(lines[i].task_id);
      expect(t.messages).toEqual(lines[i].messages);
      expect(t.labels.success).toBe(lines[i].success);
      expect(t.labels.mistake_step).toBe(lines[i].first_bad_message);
      expect(stepCount(t)).toBe(lines[i].n_actions);
    });
  });

  it('a bare message list, {messages} with labels, and action_roles', () => {
    const messages = [
      { role: 'user', content: 'q' },
      { role: 'assistant', name: 'Coder', content: 'a' },
    ];
    expect(adaptTrajectory('messages', messages)).toEqual({ messages, labels: {} });
    const t = adaptTrajectory('messages', { id: 7, messages, labels: { success: false, mistake_step: 1, mistake_agent: 'Coder' }, action_roles: ['Coder'] });
    expect(t).toEqual({ id: '7', messages, action_roles: ['Coder'], labels: { success: false, mistake_step: 1, mistake_agent: 'Coder' } });
    // A .json file holding one bare message list is one trajectory, not a list of records.
    const file = path.join(tmp, 'one.json');
    fs.writeFileSync(file, JSON.stringify(messages));
    expect(readTrajectoryFile(file, 'messages')).toEqual([{ id: 'one', trajectory: { messages, labels: {} } }]);
  });

  it('refuses bad labels and messages', () => {
    const messages = [{ role: 'user', content: 'q' }];
    expect(errorOf(() => adaptTrajectory('messages', { messages, success: 'yes' })).message).toMatch(/success/);
    expect(errorOf(() => adaptTrajectory('messages', { messages, mistake_step: 4 })).message).toMatch(/mistake_step/);
    expect(errorOf(() => adaptTrajectory('messages', { messages: 'hi' })).code).toBe('invalid_trajectory_data');
    expect(errorOf(() => adaptTrajectory('messages', { messages, action_roles: 'assistant' })).message).toMatch(/action_roles/);
  });
});

describe('formats and files', () => {
  it('an unknown format is a 400 invalid_format', () => {
    const e = errorOf(() => adaptTrajectory('sharegpt', {}));
    expect([e.status, e.code]).toEqual([400, 'invalid_format']);
    expect(TRAJECTORY_FORMATS).toEqual(['messages', 'who_and_when', 'tau_bench', 'agentprocessbench', 'processbench']);
  });

  it('names the file and line of a bad record; refuses repeated ids, empty folders and missing paths', () => {
    const bad = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(bad, '{"messages": [{"role": "user", "content": "q"}]}\n\n{"messages": [\n');
    expect(() => readTrajectoryFile(bad, 'messages')).toThrow(/bad\.jsonl:3: not valid JSON/);
    fs.writeFileSync(bad, '{"messages": [{"role": "user", "content": "q"}]}\n{"messages": [{"content": "q"}]}\n');
    expect(() => readTrajectoryFile(bad, 'messages')).toThrow(/bad\.jsonl:2: messages data: messages: .*role/);
    fs.writeFileSync(bad, '{"id": "a", "messages": []}\n{"id": "a", "messages": []}\n');
    expect(() => readTrajectoryFile(bad, 'messages')).toThrow(/id "a" repeats bad\.jsonl:1/);
    // Records without an id are named by their line.
    fs.writeFileSync(bad, '{"messages": []}\n\n{"messages": []}\n');
    expect(readTrajectoryFile(bad, 'messages').map((t) => t.id)).toEqual(['bad.jsonl:1', 'bad.jsonl:3']);
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    expect(() => readTrajectoryFile(empty, 'messages')).toThrow(TrajectoryFileError);
    expect(() => readTrajectoryFile(path.join(tmp, 'nope.jsonl'), 'messages')).toThrow(/no such file/);
    expect(() => readTrajectoryFile(bad, 'csv')).toThrow(/unknown format/);
  });
});
