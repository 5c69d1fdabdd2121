/**
 * The offline subcommands, `pa-server score` and `pa-server eval`, registered on the CLI program.
 * cli.ts passes in its serve flags and config resolution so the model flags mean the same thing
 * (and read the same PA_* environment variables) in every command.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Config } from '../config.js';
import { TRAJECTORY_FORMATS } from '../text/adapters.js';
import { EVAL_TASKS, runEvalCommand } from './eval.js';
import { runScoreCommand, type ScoreRequestOptions } from './score-file.js';
import { parseShard, type Shard } from './shard.js';
import { runSweepCommand } from './sweep.js';
import { MERGE_METHODS } from '../engine/merge-spec.js';

export interface OfflineCommandDeps {
  /** Adds the named serve flags (with their PA_* variables) to a command. */
  addServeFlags(cmd: Command, only: readonly string[]): void;
  /** The command's config from those flags; exits 1 with a line prefixed by `label` when invalid. */
  commandConfig(opts: Record<string, unknown>, cmd: Command, label: string): Config;
}

/** The serve flags that choose and run the models; the HTTP ones do not apply offline. */
const SCORER_FLAGS = [
  '--policy',
  '--reference',
  '--tokenizer',
  '--beta',
  '--name',
  '--tokenization',
  '--reference-merge',
  '--reference-merge-seed',
  '--device',
  '--threads',
  '--max-batch-tokens',
  '--max-batch-rows',
  '--max-batch-logits',
  '--max-wait-ms',
  '--config',
];

const number = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`not a number: ${v}`);
  return n;
};
const positiveInt = (v: string) => {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || n < 1) throw new InvalidArgumentError('Expected a positive integer.');
  return n;
};
const nonNegativeInt = (v: string) => {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v)) throw new InvalidArgumentError('Expected an integer ≥ 0.');
  return n;
};

const agentList = (v: string) => {
  const names = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new InvalidArgumentError('Expected comma-separated agent names.');
  return names;
};

const shardArg = (v: string): Shard => {
  try {
    return parseShard(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

export function addOfflineCommands(program: Command, deps: OfflineCommandDeps): void {
  const score = program
    .command('score')
    .description('score trajectories from a .json/.jsonl file or a directory offline, one JSON line each (resumable)')
    .requiredOption('--input <path>', 'a .json or .jsonl file, or a directory of them (Who&When ships one JSON per case)')
    .addOption(new Option('--format <format>', 'format of the records').choices([...TRAJECTORY_FORMATS]).makeOptionMandatory())
    .requiredOption('--output <file>', 'JSONL to append to; ids already scored there are skipped')
    .option('--model <name>', 'scorer to use when the config names several (default: "default", else the first)')
    .option('--baselines', 'also compute the confidence baselines (needed for their rows in eval)')
    .addOption(new Option('--render <mode>', 'message rendering').choices(['plain', 'chat_template']))
    .addOption(new Option('--label <label>', 'plain rendering\'s label: role (the paper) or name (the speaker\'s name)').choices(['role', 'name']))
    .addOption(new Option('--token-aggregate <how>', 'token aggregate of a step').choices(['sum', 'mean', 'min', 'max', 'last']))
    .option('--exclude-agents <names>', 'comma-separated speakers whose messages are observations, not steps (Who&When: usually Computer_terminal)', agentList)
    .option('--no-truncate', 'refuse (error line) a trajectory longer than the model instead of scoring it by --long-context')
    .addOption(
      new Option('--long-context <mode>', 'a trajectory longer than the model: window (default; overlapping windows, ~2× tokens) or truncate (left truncation)').choices([
        'window',
        'truncate',
      ]),
    )
    .option('--shard <I/N>', 'score only the records whose id hashes to shard I of N (0 ≤ I < N; stable across runs and machines)', shardArg)
    .option('--concurrency <n>', 'trajectories in flight at once; the batcher batches them (default 32)', positiveInt)
    .addOption(new Option('--progress <mode>', 'progress display (auto: a bar on a terminal, lines otherwise)').choices(['auto', 'bar', 'lines', 'none']).default('auto'));
  deps.addServeFlags(score, SCORER_FLAGS);
  score.action(async (opts: Record<string, unknown>, cmd: Command) => {
    const config = deps.commandConfig(opts, cmd, 'pa-server score');
    const request: ScoreRequestOptions = {
      ...(opts.baselines ? { baselines: true } : {}),
      ...(opts.render ? { render: opts.render as ScoreRequestOptions['render'] } : {}),
      ...(opts.label ? { label: opts.label as ScoreRequestOptions['label'] } : {}),
      ...(opts.tokenAggregate ? { token_aggregate: opts.tokenAggregate as ScoreRequestOptions['token_aggregate'] } : {}),
      ...(opts.truncate === false ? { truncate: false } : {}),
      ...(opts.excludeAgents ? { exclude_agents: opts.excludeAgents as string[] } : {}),
      ...(opts.longContext ? { long_context: opts.longContext as ScoreRequestOptions['long_context'] } : {}),
    };
    process.exitCode = await runScoreCommand(config, {
      input: opts.input as string,
      format: opts.format as string,
      output: opts.output as string,
      model: opts.model as string | undefined,
      request,
      concurrency: opts.concurrency as number | undefined,
      shard: opts.shard as Shard | undefined,
      progress: opts.progress as 'auto' | 'bar' | 'lines' | 'none',
    });
  });

  const sweep = program
    .command('sweep')
    .description('choose the reference: score once with the policy, then against merged references π_α over a grid of α, and evaluate each (resumable)')
    .requiredOption('--input <path>', 'a .json or .jsonl file, or a directory of them')
    .addOption(new Option('--format <format>', 'format of the records').choices([...TRAJECTORY_FORMATS]).makeOptionMandatory())
    .addOption(new Option('--task <task>', 'what to evaluate at each α (as eval --task)').choices([...EVAL_TASKS]).makeOptionMandatory())
    .addOption(new Option('--merge <method>', 'how π_α is built from policy and reference').choices([...MERGE_METHODS]).makeOptionMandatory())
    .requiredOption('--alpha <grid>', 'α values: START:STOP:STEP (inclusive) or a comma list, in [0, 1]; α = 0 (the plain reference) is always added', '0.1:0.9:0.1')
    .option('--density <d>', 'ties / dare_linear: fraction of each tensor\'s τ kept, in (0, 1]', number)
    .option('--merge-seed <n>', 'dare_linear: seed of the mask (default 0)', nonNegativeInt)
    .requiredOption('--output <dir>', 'directory for the score files, reports and chart; a rerun resumes from it')
    .option('--model <name>', 'scorer to use when the config names several (default: "default", else the first)')
    .addOption(new Option('--render <mode>', 'message rendering').choices(['plain', 'chat_template']))
    .addOption(new Option('--label <label>', 'plain rendering\'s label: role (the paper) or name (the speaker\'s name)').choices(['role', 'name']))
    .addOption(new Option('--token-aggregate <how>', 'token aggregate of a step').choices(['sum', 'mean', 'min', 'max', 'last']))
    .option('--no-truncate', 'refuse a trajectory longer than the model instead of left-truncating it')
    .option('--group-by <field>', 'as eval --group-by')
    .option('--resamples <n>', 'bootstrap resamples (default 1000)', positiveInt)
    .option('--seed <n>', 'bootstrap seed (default 0)', nonNegativeInt);
  deps.addServeFlags(sweep, SCORER_FLAGS.filter((f) => !f.startsWith('--reference-merge')));
  sweep.action(async (opts: Record<string, unknown>, cmd: Command) => {
    const config = deps.commandConfig(opts, cmd, 'pa-server sweep');
    process.exitCode = await runSweepCommand(config, {
      input: opts.input as string,
      format: opts.format as string,
      task: opts.task as string,
      method: opts.merge as string,
      alphas: opts.alpha as string,
      density: opts.density as number | undefined,
      mergeSeed: opts.mergeSeed as number | undefined,
      output: opts.output as string,
      model: opts.model as string | undefined,
      request: {
        ...(opts.render ? { render: opts.render as ScoreRequestOptions['render'] } : {}),
        ...(opts.label ? { label: opts.label as ScoreRequestOptions['label'] } : {}),
        ...(opts.tokenAggregate ? { token_aggregate: opts.tokenAggregate as ScoreRequestOptions['token_aggregate'] } : {}),
        ...(opts.truncate === false ? { truncate: false } : {}),
      },
      groupBy: opts.groupBy as string | undefined,
      resamples: opts.resamples as number | undefined,
      seed: opts.seed as number | undefined,
    });
  });

  program
    .command('eval')
    .description('best-of-N, success prediction or failure attribution from a `pa-server score` output, with bootstrap CIs')
    .requiredOption('--scores <paths...>', 'JSONL files written by pa-server score, or directories of them (e.g. one file per shard), read as one set')
    .addOption(new Option('--task <task>', 'bon: best-of-N; uq: AUROC/Spearman vs success; fa: failure attribution').choices([...EVAL_TASKS]).makeOptionMandatory())
    .option('--output <file>', 'write the report as JSON')
    .option('--group-by <field>', 'field naming the task of each trajectory (default "group": the task id the input adapter found)')
    .option('--resamples <n>', 'bootstrap resamples (default 1000)', positiveInt)
    .option('--seed <n>', 'bootstrap seed (default 0)', nonNegativeInt)
    .option('--exclude-agents <names>', 'fa: also report attribution with these speakers\' steps left out (comma-separated; Who&When: Computer_terminal)', agentList)
    .action((opts: Record<string, unknown>) => {
      process.exitCode = runEvalCommand({
        scores: opts.scores as string[],
        task: opts.task as string,
        output: opts.output as string | undefined,
        groupBy: opts.groupBy as string | undefined,
        resamples: opts.resamples as number | undefined,
        seed: opts.seed as number | undefined,
        excludeAgents: opts.excludeAgents as string[] | undefined,
      });
    });
}
