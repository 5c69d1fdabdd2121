/// <reference lib="dom" />
/**
 * The trajectory viewer page: reads a trajectory (pasted, uploaded or a bundled example), asks
 * the service for per-step advantages (POST /v1/trajectories/score with baselines and tokens)
 * and for the attributed step (POST /v1/attribute), and draws step cards, the chart and the
 * token heat view. Every failure is written into the page (role="alert") with its error code.
 */
import {
  ApiError,
  attribute,
  fetchAsset,
  listScorers,
  scoreTrajectory,
  setApiKey,
  type AttributeResult,
  type AttributionMethod,
  type BaselineKind,
  type StepResult,
  type TrajectoryFormat,
  type TrajectoryInput,
  type TrajectoryResult,
} from './api.js';
import { drawChart } from './chart.js';
import { digitsToResolve, directionWord, divergingColor, formatNumber, halfRangeOf, rgbToCss } from './scale.js';
import { renderTokens } from './tokens.js';

interface ExampleEntry {
  id: string;
  title: string;
  format: TrajectoryFormat;
  file: string;
  note?: string;
  /** The scorer to pick when the example is loaded (when the server has it). */
  model?: string;
}

const BASELINE_LABELS: Record<BaselineKind, string> = {
  mean_logprob: 'mean token log-prob',
  neg_entropy: 'negative entropy',
  self_certainty: 'Self-Certainty',
  deepconf: 'DeepConf confidence',
};
const METHOD_LABELS: Record<AttributionMethod, string> = {
  min_cumulative: 'lowest running sum',
  sharpest_drop: 'lowest step',
  sharpest_abs_drop: 'largest fall between steps',
};
const FORMATS: readonly TrajectoryFormat[] = ['messages', 'who_and_when', 'tau_bench'];
/** Step text longer than this is folded behind a <details> toggle. */
const PREVIEW_CHARS = 240;

function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page lacks #${id}`);
  return node as T;
}

const ui = {
  exampleSelect: byId<HTMLSelectElement>('example-select'),
  exampleNote: byId<HTMLParagraphElement>('example-note'),
  formatSelect: byId<HTMLSelectElement>('format-select'),
  modelSelect: byId<HTMLSelectElement>('model-select'),
  modelNote: byId<HTMLParagraphElement>('model-note'),
  methodSelect: byId<HTMLSelectElement>('method-select'),
  longContextSelect: byId<HTMLSelectElement>('long-context-select'),
  apiKeyInput: byId<HTMLInputElement>('api-key-input'),
  recordLabel: byId<HTMLLabelElement>('record-label'),
  recordSelect: byId<HTMLSelectElement>('record-select'),
  input: byId<HTMLTextAreaElement>('trajectory-input'),
  fileInput: byId<HTMLInputElement>('file-input'),
  scoreButton: byId<HTMLButtonElement>('score-button'),
  status: byId<HTMLParagraphElement>('status'),
  error: byId<HTMLDivElement>('error'),
  results: byId<HTMLElement>('results'),
  summary: byId<HTMLDivElement>('summary'),
  baselineSwitch: byId<HTMLInputElement>('baseline-switch'),
  baselineSelect: byId<HTMLSelectElement>('baseline-select'),
  chart: byId<HTMLDivElement>('chart'),
  chartCaption: byId<HTMLElement>('chart-caption'),
  steps: byId<HTMLOListElement>('steps'),
  tokenView: byId<HTMLElement>('token-view'),
  tokenHeading: byId<HTMLHeadingElement>('token-heading'),
  tokenStrip: byId<HTMLDivElement>('token-strip'),
  tokenDetail: byId<HTMLParagraphElement>('token-detail'),
  tokenClose: byId<HTMLButtonElement>('token-close'),
};

const state: {
  examples: ExampleEntry[];
  input?: TrajectoryInput;
  model?: string;
  score?: TrajectoryResult;
  attribution?: AttributeResult;
  /** Aborts the run in flight when a newer one starts, so an old answer never overwrites a new one. */
  inFlight?: AbortController;
  tokenStep?: number;
} = { examples: [] };

// ---------------------------------------------------------------- messages to the user

function showError(err: unknown): void {
  const text = err instanceof ApiError ? err.describe() : `unexpected_error: ${(err as Error)?.message ?? String(err)}`;
  ui.error.replaceChildren();
  const heading = document.createElement('strong');
  heading.textContent = 'Error: ';
  const code = document.createElement('code');
  code.className = 'error-code';
  code.textContent = err instanceof ApiError ? err.code : 'unexpected_error';
  const message = document.createElement('span');
  message.className = 'error-message';
  message.textContent = err instanceof ApiError ? ` — ${err.message}${err.status > 0 ? ` (HTTP ${err.status})` : ''}` : ` — ${text}`;
  ui.error.append(heading, code, message);
  ui.error.hidden = false;
  ui.status.textContent = '';
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.replaceChildren();
}

// ---------------------------------------------------------------- input

/**
 * The records in the text box: one JSON record; a JSON list of records (a τ-bench file holds
 * twenty); or JSON Lines (bench/data/*.jsonl). A list of messages is one record, not many.
 */
function parseRecords(text: string): unknown[] {
  if (text.trim() === '') throw new ApiError(0, 'empty_input', 'paste a trajectory, upload a file or pick an example first');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const lines = text.split('\n').filter((line) => line.trim() !== '');
    if (lines.length > 1) {
      try {
        return lines.map((line) => JSON.parse(line));
      } catch {
        // Not JSON Lines either: report the error of the whole text, the likelier intent.
      }
    }
    throw new ApiError(0, 'invalid_json', `the trajectory is not valid JSON (${(err as Error).message})`);
  }
  const isMessage = (m: unknown) => typeof m === 'object' && m !== null && typeof (m as { role?: unknown }).role === 'string';
  if (Array.isArray(parsed) && parsed.length > 0 && !parsed.every(isMessage)) return parsed;
  return [parsed];
}

function recordTitle(record: any, i: number): string {
  const name = record?.id ?? (record?.task_id !== undefined ? `task ${record.task_id}` : undefined) ?? record?.question_ID;
  const outcome =
    typeof record?.success === 'boolean' ? (record.success ? 'succeeded' : 'failed') : typeof record?.reward === 'number' ? `reward ${record.reward}` : undefined;
  return [`${i + 1}`, name, outcome].filter((part) => part !== undefined).join(' · ');
}

/** The format a record looks like, from the fields each data set's records carry. */
function guessFormat(record: any): TrajectoryFormat | undefined {
  if (Array.isArray(record) || Array.isArray(record?.messages)) return 'messages';
  if (Array.isArray(record?.history)) return 'who_and_when';
  if (Array.isArray(record?.traj)) return 'tau_bench';
  return undefined;
}

/** Offers a record picker when the text holds several records; hides it otherwise. */
function refreshRecords(): void {
  let records: unknown[] = [];
  try {
    records = parseRecords(ui.input.value);
  } catch {
    records = [];
  }
  if (records.length <= 1) {
    ui.recordLabel.hidden = true;
    ui.recordSelect.replaceChildren();
    return;
  }
  const keep = Number(ui.recordSelect.value);
  ui.recordSelect.replaceChildren(
    ...records.map((record, i) => {
      const option = document.createElement('option');
      option.value = String(i);
      option.textContent = recordTitle(record, i);
      return option;
    }),
  );
  if (Number.isInteger(keep) && keep < records.length) ui.recordSelect.value = String(keep);
  ui.recordLabel.hidden = false;
}

/** The request for the record shown (the picked one when the text holds several). */
function readInput(text: string, format: TrajectoryFormat): TrajectoryInput {
  const records = parseRecords(text);
  const picked = records.length > 1 ? Number(ui.recordSelect.value || 0) : 0;
  return { format, data: records[Math.min(Math.max(0, picked), records.length - 1)] };
}

async function loadExample(id: string): Promise<void> {
  const entry = state.examples.find((e) => e.id === id);
  if (!entry) {
    ui.exampleNote.textContent = '';
    return;
  }
  clearError();
  try {
    const data = await fetchAsset<unknown>(`examples/${entry.file}`);
    ui.input.value = JSON.stringify(data, null, 2);
    ui.formatSelect.value = entry.format;
    if (entry.model && [...ui.modelSelect.options].some((o) => o.value === entry.model)) ui.modelSelect.value = entry.model;
    refreshRecords();
    ui.exampleNote.textContent = entry.note ?? '';
    ui.status.textContent = `Loaded example “${entry.title}”. Press “Score trajectory”.`;
  } catch (err) {
    showError(err);
  }
}

async function loadFile(file: File): Promise<void> {
  clearError();
  try {
    ui.input.value = await file.text();
    ui.recordSelect.value = '';
    refreshRecords();
    try {
      const guessed = guessFormat(parseRecords(ui.input.value)[0]);
      if (guessed) ui.formatSelect.value = guessed;
    } catch {
      // Unparseable text is reported when the user presses Score, with its reason.
    }
    ui.exampleSelect.value = '';
    ui.exampleNote.textContent = '';
    const many = ui.recordLabel.hidden ? '' : ` It holds ${ui.recordSelect.options.length} records: pick one.`;
    ui.status.textContent = `Loaded ${file.name} (${file.size} bytes).${many} Check the format, then press “Score trajectory”.`;
  } catch (err) {
    showError(new ApiError(0, 'unreadable_file', `could not read ${file.name}: ${(err as Error).message}`));
  }
}

// ---------------------------------------------------------------- runs

async function run(): Promise<void> {
  clearError();
  let input: TrajectoryInput;
  try {
    input = { ...readInput(ui.input.value, ui.formatSelect.value as TrajectoryFormat), long_context: ui.longContextSelect.value as 'window' | 'truncate' };
  } catch (err) {
    showError(err);
    return;
  }
  state.inFlight?.abort();
  const controller = new AbortController();
  state.inFlight = controller;
  const model = ui.modelSelect.value || undefined;
  const method = ui.methodSelect.value as AttributionMethod;
  ui.status.textContent = 'Scoring…';
  ui.scoreButton.disabled = true;
  ui.results.setAttribute('aria-busy', 'true');
  try {
    const [score, attribution] = await Promise.all([
      scoreTrajectory(input, model, controller.signal),
      attribute(input, model, method, controller.signal),
    ]);
    if (controller.signal.aborted) return;
    Object.assign(state, { input, model, score, attribution, tokenStep: undefined });
    ui.tokenView.hidden = true;
    render();
    ui.results.hidden = false;
    ui.status.textContent = `Scored ${score.steps.length} steps with scorer “${score.model}”. ${attributedText(attribution)}`;
  } catch (err) {
    if ((err as Error).name === 'AbortError') return;
    showError(err);
  } finally {
    if (state.inFlight === controller) {
      state.inFlight = undefined;
      ui.scoreButton.disabled = false;
      ui.results.removeAttribute('aria-busy');
    }
  }
}

/** A new method only needs a new attribution, not a new forward pass over the tokens' scores. */
async function reattribute(): Promise<void> {
  if (!state.input || !state.score) return;
  clearError();
  const method = ui.methodSelect.value as AttributionMethod;
  try {
    state.attribution = await attribute(state.input, state.model, method);
    render();
    ui.status.textContent = `By ${METHOD_LABELS[method]}: ${attributedText(state.attribution)}`;
  } catch (err) {
    showError(err);
  }
}

// ---------------------------------------------------------------- drawing

interface Metric {
  label: string;
  valueOf: (step: StepResult) => number;
  midpoint: number;
  cumulative: boolean;
  digits: number;
}

function currentMetric(score: TrajectoryResult): Metric {
  if (!ui.baselineSwitch.checked) {
    return { label: 'advantage', valueOf: (s) => s.advantage ?? Number.NaN, midpoint: 0, cumulative: true, digits: 4 };
  }
  const kind = ui.baselineSelect.value as BaselineKind;
  const valueOf = (s: StepResult) => s.baselines?.[kind] ?? Number.NaN;
  const scored = score.steps.map(valueOf).filter(Number.isFinite);
  const mean = scored.length > 0 ? scored.reduce((a, b) => a + b, 0) / scored.length : 0;
  return { label: BASELINE_LABELS[kind], valueOf, midpoint: mean, cumulative: false, digits: digitsToResolve(scored) };
}

function attributedText(attribution: AttributeResult): string {
  return attribution.step === null ? 'No step attributed: no step was scored.' : `Attributed step: message ${attribution.step} (${attribution.agent}).`;
}

function stepAgent(step: StepResult): string {
  return step.name ?? step.role ?? 'unknown';
}

function stepText(step: StepResult): string {
  return (step.tokens ?? []).map((t) => t.text).join('').replace(/^\s+/, '');
}

/**
 * For OpenAI-messages input the page holds the messages itself (the service keeps their
 * indices), so it can show what followed each step before the next one, e.g. the
 * environment's answer to a gridworld move. Other formats are converted by the service, so
 * their non-step messages are not shown.
 */
function followingContext(input: TrajectoryInput | undefined, steps: StepResult[], position: number): string | null {
  if (!input || input.format !== 'messages') return null;
  const data = input.data as any;
  const messages: unknown = Array.isArray(data) ? data : data?.messages;
  if (!Array.isArray(messages)) return null;
  const end = position + 1 < steps.length ? steps[position + 1].index : messages.length;
  const lines: string[] = [];
  for (let i = steps[position].index + 1; i < end; i++) {
    const m = messages[i];
    if (typeof m !== 'object' || m === null) continue;
    const content = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '');
    lines.push(`[${m.name ?? m.role}]: ${content.length > 200 ? `${content.slice(0, 200)}…` : content}`);
  }
  return lines.length > 0 ? lines.join('\n') : null;
}

/**
 * The true optimal advantage A*(s,a) of each step, by message index, when the record carries it
 * (`a_star`: one number per assistant message, in order, as bench/data/gridworld-exact-eval.jsonl
 * has it). Empty for any other record, or when the list does not match the assistant messages.
 */
function trueAdvantages(input: TrajectoryInput | undefined): Map<number, number> {
  const out = new Map<number, number>();
  const data = input?.format === 'messages' ? (input.data as any) : undefined;
  const aStar: unknown = data?.a_star;
  const messages: unknown = data?.messages;
  if (!Array.isArray(aStar) || !Array.isArray(messages)) return out;
  const assistant = messages.flatMap((m: any, i: number) => (m?.role === 'assistant' ? [i] : []));
  if (assistant.length !== aStar.length || !aStar.every((x) => typeof x === 'number' && Number.isFinite(x))) return out;
  assistant.forEach((index, k) => out.set(index, aStar[k] as number));
  return out;
}

function badge(text: string, className: string): HTMLSpanElement {
  const span = document.createElement('span');
  span.className = `badge ${className}`;
  span.textContent = text;
  return span;
}

function renderSummary(score: TrajectoryResult, attribution: AttributeResult): void {
  const parts: HTMLElement[] = [];
  const blamed = document.createElement('p');
  blamed.className = 'attribution';
  blamed.id = 'attribution-summary';
  const strong = document.createElement('strong');
  strong.textContent = attribution.step === null ? 'No step attributed: no step was scored' : `Attributed step: message ${attribution.step}, agent ${attribution.agent}`;
  blamed.append(strong, document.createTextNode(` — method ${attribution.method} (${METHOD_LABELS[attribution.method]}).`));
  blamed.dataset.step = String(attribution.step);
  blamed.dataset.agent = String(attribution.agent);
  parts.push(blamed);

  const facts = document.createElement('p');
  const a = score.aggregates;
  facts.textContent =
    `Scorer ${score.model}, β = ${score.beta}. ${score.steps.length} steps, ${score.num_tokens} tokens` +
    (score.truncated_tokens > 0 ? ` (${score.truncated_tokens} context tokens dropped from the left)` : '') +
    `. Advantage: sum ${formatNumber(a.sum)}, mean ${formatNumber(a.mean)}, min ${formatNumber(a.min)}, bottom 10% ${formatNumber(a.bottom10)}.`;
  parts.push(facts);

  // Text the tokenizer could not represent was scored as its unknown-word token: say so, loudly.
  for (const warning of score.warnings ?? []) {
    const p = document.createElement('p');
    p.className = 'warning';
    p.dataset.unknownTokens = String(score.usage?.unknown_tokens ?? '');
    p.textContent = `Warning: ${warning}`;
    parts.push(p);
  }

  const truth = trueAdvantages(state.input);
  if (truth.size > 0) {
    const exact = document.createElement('p');
    exact.className = 'true-advantage-summary';
    const sum = [...truth.values()].reduce((x, y) => x + y, 0);
    exact.textContent =
      `The record carries the true optimal advantage A* of each step (soft value iteration on the environment): sum ${formatNumber(sum)}. ` +
      'Each card shows it beside the served advantage.';
    parts.push(exact);
  }

  const labels = score.labels;
  if (labels && (labels.success !== undefined || labels.mistake_step !== undefined || labels.mistake_agent !== undefined)) {
    const given = document.createElement('p');
    given.className = 'labels';
    const bits: string[] = [];
    if (labels.success !== undefined) bits.push(labels.success ? 'the run succeeded' : 'the run failed');
    if (labels.mistake_step !== undefined) bits.push(labels.mistake_step === null ? 'no mistake step labelled' : `labelled mistake at message ${labels.mistake_step}`);
    if (labels.mistake_agent) bits.push(`by ${labels.mistake_agent}`);
    given.textContent = `From the data set: ${bits.join(', ')}.`;
    parts.push(given);
  }
  ui.summary.replaceChildren(...parts);
}

function renderCards(score: TrajectoryResult, attribution: AttributeResult, metric: Metric): void {
  const values = score.steps.map(metric.valueOf);
  const halfRange = halfRangeOf(values, metric.midpoint);
  const truth = trueAdvantages(state.input);
  const cards = score.steps.map((step, position) => {
    const value = values[position];
    const li = document.createElement('li');
    li.className = 'step-card';
    li.dataset.index = String(step.index);
    li.dataset.position = String(position);
    li.dataset.value = String(value);
    li.style.setProperty('--step-color', rgbToCss(divergingColor(value, metric.midpoint, halfRange)));
    const headingId = `step-heading-${position}`;
    li.setAttribute('aria-labelledby', headingId);

    const head = document.createElement('div');
    head.className = 'step-head';
    const title = document.createElement('h3');
    title.id = headingId;
    title.className = 'step-title';
    title.textContent = `Message ${step.index} · ${stepAgent(step)}`;
    head.append(title);
    if (step.name && step.role) head.append(badge(step.role, 'role'));
    if (attribution.step !== null && step.index === attribution.step) {
      li.classList.add('attributed');
      li.setAttribute('aria-current', 'step');
      head.append(badge(`attributed: ${attribution.agent}, ${attribution.method}`, 'attributed-badge'));
    }
    if (score.labels?.mistake_step === step.index) head.append(badge('labelled mistake', 'label-badge'));
    if (step.advantage === null) head.append(badge(step.truncated ? 'truncated: not scored' : 'not scored', 'truncated-badge'));
    if (step.partial) head.append(badge('partial: its last tokens scored', 'context-badge'));
    else if (step.context_truncated && step.advantage !== null) head.append(badge(`context cut: saw ≥ ${step.min_context} tokens`, 'context-badge'));
    li.append(head);

    const numbers = document.createElement('p');
    numbers.className = 'step-numbers';
    const valueText = document.createElement('span');
    valueText.className = 'step-value';
    if (Number.isFinite(value)) {
      const arrow = value < metric.midpoint ? '▼' : value > metric.midpoint ? '▲' : '●';
      valueText.textContent = `${arrow} ${metric.label} ${formatNumber(value, metric.digits)}`;
      valueText.setAttribute('aria-label', `${metric.label} ${formatNumber(value, metric.digits)}, ${directionWord(value, metric.midpoint)} ${metric.midpoint === 0 ? 'zero' : 'the trajectory mean'}`);
    } else {
      li.classList.add('not-scored');
      valueText.textContent = `${metric.label}: not scored`;
    }
    numbers.append(valueText);
    if (metric.cumulative) numbers.append(document.createTextNode(` · running sum ${step.cumulative === null ? 'not scored' : formatNumber(step.cumulative)}`));
    const aStar = truth.get(step.index);
    if (aStar !== undefined) {
      const exact = document.createElement('span');
      exact.className = 'step-true-advantage';
      exact.dataset.value = String(aStar);
      exact.textContent = ` · true A* ${formatNumber(aStar, metric.digits)}`;
      numbers.append(exact);
    }
    numbers.append(document.createTextNode(` · ${step.num_tokens} tokens`));
    li.append(numbers);

    const text = stepText(step);
    if (text.length > 0) {
      if (text.length <= PREVIEW_CHARS) {
        const pre = document.createElement('pre');
        pre.className = 'step-text';
        pre.textContent = text;
        li.append(pre);
      } else {
        const details = document.createElement('details');
        const summary = document.createElement('summary');
        summary.textContent = `${text.slice(0, PREVIEW_CHARS).replace(/\s+/g, ' ')}… (show all ${text.length} characters)`;
        const pre = document.createElement('pre');
        pre.className = 'step-text';
        pre.textContent = text;
        details.append(summary, pre);
        li.append(details);
      }
    }

    const after = followingContext(state.input, score.steps, position);
    if (after !== null) {
      const context = document.createElement('p');
      context.className = 'step-context';
      context.textContent = `Then: ${after}`;
      li.append(context);
    }

    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'tokens-button';
    button.textContent = 'Token heat view';
    button.setAttribute('aria-controls', 'token-view');
    button.setAttribute('aria-label', `Token heat view of message ${step.index} (${stepAgent(step)})`);
    button.disabled = (step.tokens ?? []).length === 0;
    button.addEventListener('click', () => openTokenView(position));
    li.append(button);
    return li;
  });
  ui.steps.replaceChildren(...cards);
}

function renderChart(score: TrajectoryResult, attribution: AttributeResult, metric: Metric): void {
  const values = score.steps.map(metric.valueOf);
  drawChart(ui.chart, {
    stepLabels: score.steps.map((s) => String(s.index)),
    primary: { label: metric.label, values },
    cumulative: metric.cumulative ? { label: 'running sum', values: score.steps.map((s) => s.cumulative ?? Number.NaN) } : undefined,
    highlight: attribution.position ?? undefined,
    highlightLabel: `attributed to ${attribution.agent} by ${attribution.method}`,
    midpoint: metric.midpoint,
    digits: metric.digits,
  });
  ui.chartCaption.textContent = metric.cumulative
    ? 'Solid line and dots: advantage per step. Dashed line: running sum. Shaded band: the attributed step.'
    : `Solid line and dots: ${metric.label} per step (higher: more confident; dots orange below the trajectory mean, purple above). Shaded band: the step attributed by the advantage.`;
}

function render(): void {
  const { score, attribution } = state;
  if (!score || !attribution) return;
  const metric = currentMetric(score);
  ui.baselineSelect.disabled = !ui.baselineSwitch.checked;
  renderSummary(score, attribution);
  renderChart(score, attribution, metric);
  renderCards(score, attribution, metric);
}

function openTokenView(position: number): void {
  const step = state.score?.steps[position];
  if (!step) return;
  state.tokenStep = position;
  ui.tokenHeading.textContent = `Tokens of message ${step.index} (${stepAgent(step)}), advantage ${formatNumber(step.advantage)}`;
  ui.tokenView.dataset.position = String(position);
  ui.tokenView.dataset.index = String(step.index);
  renderTokens(ui.tokenStrip, ui.tokenDetail, step);
  ui.tokenView.hidden = false;
  ui.tokenView.focus();
}

function closeTokenView(): void {
  const position = state.tokenStep;
  ui.tokenView.hidden = true;
  state.tokenStep = undefined;
  const button = position === undefined ? null : ui.steps.querySelector<HTMLButtonElement>(`li[data-position="${position}"] .tokens-button`);
  button?.focus();
}

// ---------------------------------------------------------------- start

async function loadScorers(): Promise<void> {
  try {
    const { data } = await listScorers();
    ui.modelSelect.replaceChildren(
      ...data.map((s) => {
        const option = document.createElement('option');
        option.value = s.id;
        option.textContent = `${s.id} (β ${s.beta}, ${s.max_length} positions, vocabulary ${s.vocab_size})`;
        return option;
      }),
    );
    ui.modelNote.textContent =
      data.length > 1 ? 'Pick a scorer whose tokenizer covers your text: the default gridworld pair only knows its own words.' : '';
  } catch (err) {
    showError(err);
  }
}

async function loadExamples(): Promise<void> {
  try {
    state.examples = await fetchAsset<ExampleEntry[]>('examples/index.json');
    for (const e of state.examples) {
      if (!FORMATS.includes(e.format)) continue;
      const option = document.createElement('option');
      option.value = e.id;
      option.textContent = e.title;
      ui.exampleSelect.append(option);
    }
  } catch (err) {
    showError(err);
  }
}

function start(): void {
  ui.exampleSelect.addEventListener('change', () => void loadExample(ui.exampleSelect.value));
  ui.fileInput.addEventListener('change', () => {
    const file = ui.fileInput.files?.[0];
    if (file) void loadFile(file);
  });
  ui.scoreButton.addEventListener('click', () => void run());
  let parseTimer: number | undefined;
  ui.input.addEventListener('input', () => {
    window.clearTimeout(parseTimer);
    parseTimer = window.setTimeout(refreshRecords, 300);
  });
  ui.input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) void run();
  });
  ui.methodSelect.addEventListener('change', () => void reattribute());
  ui.apiKeyInput.addEventListener('change', () => {
    setApiKey(ui.apiKeyInput.value);
    clearError();
    void loadScorers();
  });
  ui.baselineSwitch.addEventListener('change', render);
  ui.baselineSelect.addEventListener('change', render);
  ui.tokenClose.addEventListener('click', closeTokenView);
  let resizeTimer: number | undefined;
  window.addEventListener('resize', () => {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => {
      if (state.score && state.attribution) renderChart(state.score, state.attribution, currentMetric(state.score));
    }, 100);
  });
  ui.tokenView.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') closeTokenView();
  });
  void loadScorers();
  void loadExamples();
}

start();
