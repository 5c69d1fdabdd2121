/**
 * A `pa-server score` output with each step's served advantage replaced by the record's true A*
 * (`a_star`, as bench/data/gridworld-exact-eval*.jsonl carry it), so that `pa-server eval` reports
 * what an exact optimal advantage would do at the three jobs, with the same code and intervals:
 *
 *   npx tsx tools/true-a-star-scores.ts --records bench/data/gridworld-exact-eval.jsonl \
 *     --scores exact-scores.jsonl --output exact-true-scores.jsonl
 *   npx pa-server eval --scores exact-true-scores.jsonl --task bon
 *
 * Aggregates and cumulative sums are recomputed with the service's own functions; baselines are
 * dropped (they are the policy's confidence, not A*).
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { allStepAggregates, cumulativeSums } from '../src/scoring/steps.js';

const { values } = parseArgs({ options: { records: { type: 'string' }, scores: { type: 'string' }, output: { type: 'string' } } });
if (!values.records || !values.scores || !values.output) {
  process.stderr.write('usage: tsx tools/true-a-star-scores.ts --records EVAL.jsonl --scores SCORES.jsonl --output OUT.jsonl\n');
  process.exit(1);
}
const readLines = (file: string): any[] => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const byId = new Map(readLines(values.records).map((r) => [r.id, r]));
const out: string[] = [];
for (const line of readLines(values.scores)) {
  const record = byId.get(line.id);
  if (!record || !Array.isArray(record.a_star)) throw new Error(`${values.scores}: ${line.id} has no record with a_star in ${values.records}`);
  if (line.error || line.steps.length !== record.a_star.length) throw new Error(`${line.id}: ${line.steps?.length} scored steps, ${record.a_star.length} A* values`);
  const aStar: number[] = record.a_star;
  const cumulative = cumulativeSums(aStar);
  const steps = line.steps.map((s: any, k: number) => {
    const { baselines: _drop, ...rest } = s;
    return { ...rest, advantage: aStar[k], log_ratio: aStar[k] / line.beta, cumulative: cumulative[k] };
  });
  const { baselines: _dropped, ...kept } = line;
  out.push(JSON.stringify({ ...kept, steps, aggregates: allStepAggregates(aStar) }));
}
fs.writeFileSync(values.output, `${out.join('\n')}\n`);
process.stderr.write(`wrote ${out.length} trajectories to ${values.output}\n`);
