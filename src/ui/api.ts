/// <reference lib="dom" />
/**
 * The viewer's calls to the service, and the shapes it reads back (docs: openapi.yaml,
 * POST /v1/trajectories/score and POST /v1/attribute). Every failure becomes an ApiError
 * carrying the service's `error.code` and message, so the page can say in words what went wrong.
 */

export type TrajectoryFormat = 'messages' | 'who_and_when' | 'tau_bench';
export type AttributionMethod = 'min_cumulative' | 'sharpest_drop' | 'sharpest_abs_drop';
export const BASELINE_KINDS = ['mean_logprob', 'neg_entropy', 'self_certainty', 'deepconf'] as const;
export type BaselineKind = (typeof BASELINE_KINDS)[number];

// The response shapes are the server's own (type-only imports: nothing of them reaches the browser).
export type { StepResult } from '../pipeline/trajectory.js';
import type { TrajectoryResult as ServerTrajectoryResult } from '../pipeline/trajectory.js';
export type TokenScore = NonNullable<import('../pipeline/trajectory.js').StepResult['tokens']>[number];

export interface TrajectoryResult extends ServerTrajectoryResult {
  model: string;
  usage?: { prompt_tokens: number; scored_tokens: number; unknown_tokens?: number };
  /** e.g. unknown-word tokens: text the scorer's tokenizer could not represent. */
  warnings?: string[];
}

/** step, position and agent are null when no step of the trajectory was scored. */
export interface AttributeResult {
  model: string;
  step: number | null;
  position: number | null;
  agent: string | null;
  method: AttributionMethod;
  steps: Array<{ index: number; role?: string; name?: string; advantage: number | null; cumulative: number | null; truncated: boolean }>;
}

export interface ScorerInfo {
  id: string;
  beta: number;
  max_length: number;
  vocab_size: number;
  device: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** What the page prints: status, code and the service's own words. */
  describe(): string {
    return this.status > 0 ? `${this.code} (HTTP ${this.status}): ${this.message}` : `${this.code}: ${this.message}`;
  }
}

/** The service root, relative to the page (served at <root>/ui/), so a path prefix in front of the service still works. */
const serviceUrl = (path: string): string => new URL(`../${path}`, document.baseURI).toString();

/** The bearer key for servers started with an API key; held in memory only, never stored. */
let apiKey = '';
export function setApiKey(key: string): void {
  apiKey = key.trim();
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (apiKey !== '') headers.authorization = `Bearer ${apiKey}`;
    response = await fetch(serviceUrl(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', `the service could not be reached (${(err as Error).message})`);
  }
  const text = await response.text();
  let parsed: any;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const error = parsed?.error;
    if (error && typeof error.code === 'string') throw new ApiError(response.status, error.code, String(error.message ?? ''));
    throw new ApiError(response.status, 'http_error', `${method} ${path} answered ${response.status} ${response.statusText} without an error body`);
  }
  if (parsed === undefined) throw new ApiError(response.status, 'invalid_response', `${method} ${path} answered with a body that is not JSON`);
  return parsed as T;
}

export interface TrajectoryInput {
  format: TrajectoryFormat;
  data: unknown;
  /** How a trajectory longer than the model is scored (README: Long trajectories). */
  long_context?: 'window' | 'truncate';
}

export function listScorers(signal?: AbortSignal): Promise<{ data: ScorerInfo[] }> {
  return call('GET', 'v1/models', undefined, signal);
}

export function scoreTrajectory(input: TrajectoryInput, model: string | undefined, signal?: AbortSignal): Promise<TrajectoryResult> {
  return call('POST', 'v1/trajectories/score', { ...input, model, baselines: true, return_tokens: true }, signal);
}

export function attribute(input: TrajectoryInput, model: string | undefined, method: AttributionMethod, signal?: AbortSignal): Promise<AttributeResult> {
  return call('POST', 'v1/attribute', { ...input, model, method }, signal);
}

/** A file the viewer serves itself (the bundled examples), relative to the page. */
export async function fetchAsset<T>(path: string): Promise<T> {
  const response = await fetch(new URL(path, document.baseURI));
  if (!response.ok) throw new ApiError(response.status, 'asset_unavailable', `could not load ${path} (HTTP ${response.status})`);
  return (await response.json()) as T;
}
