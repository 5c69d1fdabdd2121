/**
 * Frees a large ArrayBuffer now instead of at V8's next collection. An engine thread allocates
 * few JS objects, so collections are rare, and a dead buffer of KV tensors (megabytes each)
 * stayed resident until V8's external-memory heuristic fired: tens of MiB per worker under load
 * (bench/RESULTS.md, memory). onnxruntime-node 1.30 copies every fetched output into a new
 * buffer, even an output written in place into a buffer we passed, so each run that returns
 * presents makes one such buffer.
 *
 * `ArrayBuffer.prototype.transfer(0)` detaches the buffer and releases its memory at once. It is
 * standard from Node 21 (V8 11.8); Node 20 has it behind a V8 flag, which only reaches isolates
 * and contexts created after it is set: `allowBufferRelease()` runs before the engine workers
 * start, and a thread that started earlier gets it from a new context.
 *
 * Only a buffer nothing else reads may be released: every view of it reads as empty afterwards.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Transfer = (this: ArrayBuffer, length?: number) => ArrayBuffer;

let transfer: Transfer | null | undefined;

function nativeTransfer(): Transfer | undefined {
  return (ArrayBuffer.prototype as { transfer?: Transfer }).transfer;
}

/** Makes `transfer` available to threads and contexts created from now on (Node 20). */
export function allowBufferRelease(): void {
  if (typeof nativeTransfer() !== 'function') v8.setFlagsFromString('--harmony-rab-gsab-transfer');
}

function resolveTransfer(): Transfer | null {
  allowBufferRelease();
  const own = nativeTransfer();
  if (typeof own === 'function') return own;
  const fromContext = vm.runInNewContext('ArrayBuffer.prototype.transfer') as Transfer | undefined;
  return typeof fromContext === 'function' ? fromContext : null;
}

/** Releases the buffer's memory now where the runtime allows (else it waits for a collection, as before). */
export function releaseBuffer(buffer: ArrayBufferLike): void {
  if (transfer === undefined) transfer = resolveTransfer();
  if (!transfer || buffer.byteLength === 0) return;
  try {
    transfer.call(buffer as ArrayBuffer, 0);
  } catch {
    // a SharedArrayBuffer, or one that cannot be detached: left to the collector
  }
}
