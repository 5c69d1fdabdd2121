import type { EngineBatch, HeadOutputs } from './batch.js';
import type { SessionInfo } from './session.js';

export type WorkerRequest = { type: 'run'; id: number; batch: EngineBatch } | { type: 'exit' } | { type: 'crash'; message: string };

export type WorkerResponse =
  | { type: 'ready'; info: SessionInfo }
  | { type: 'fatal'; message: string }
  | { type: 'result'; id: number; outputs: HeadOutputs }
  | { type: 'error'; id: number; message: string };
