import type { EngineBatch, HeadOutputs } from './batch.js';
import type { KvPlan } from './kv-plan.js';
import type { SessionInfo } from './session.js';

/**
 * `batch` is always the whole rows (no past). With `kv`, the worker runs `kv.batch` over the
 * cached blocks the plan names, or `batch` when one of them is missing (a fresh worker after a
 * restart, a block whose batch failed), and then keeps the plan's new blocks.
 */
export type WorkerRequest =
  | { type: 'run'; id: number; batch: EngineBatch; stats: boolean; kv?: KvPlan }
  | { type: 'clear-cache' }
  | { type: 'exit' }
  | { type: 'crash'; message: string };

export type WorkerResponse =
  | { type: 'ready'; info: SessionInfo }
  | { type: 'fatal'; message: string }
  | { type: 'result'; id: number; outputs: HeadOutputs; recomputed: boolean; cacheBytes: number }
  | { type: 'error'; id: number; message: string };
