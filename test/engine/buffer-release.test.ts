/**
 * buffer-release.ts: a released buffer gives its memory back at once (it is detached), on
 * Node 20 (behind a V8 flag, reached from a new context) as on later Node versions.
 */
import { describe, expect, it } from 'vitest';
import { releaseBuffer } from '../../src/engine/buffer-release.js';
import { KvBufferPool } from '../../src/engine/kv-pool.js';

describe('releaseBuffer', () => {
  it('detaches the buffer: it and every view of it read as empty', () => {
    const data = new Float32Array(1 << 16).fill(1);
    const view = data.subarray(10, 20);
    releaseBuffer(data.buffer);
    expect(data.buffer.byteLength).toBe(0);
    expect(data.length).toBe(0);
    expect(view.length).toBe(0);
  });

  it('leaves a SharedArrayBuffer alone', () => {
    const shared = new Float32Array(new SharedArrayBuffer(64)).fill(2);
    releaseBuffer(shared.buffer);
    expect(shared[3]).toBe(2);
  });
});

describe('KvBufferPool', () => {
  it('reuses a set that fits, and releases one it replaces', () => {
    const pool = new KvBufferPool();
    const first = pool.take(['float32', 'float16'], [100, 100]);
    expect(first.views.map((v) => v.length)).toEqual([100, 100]);
    pool.give(first.buffers);
    const again = pool.take(['float32', 'float16'], [80, 90]);
    expect(again.buffers[0]).toBe(first.buffers[0]);
    expect(again.views.map((v) => v.length)).toEqual([80, 90]);
    pool.give(again.buffers);
    const larger = pool.take(['float32', 'float16'], [400, 10]);
    expect(larger.buffers[0] === first.buffers[0]).toBe(false);
    expect(larger.views.map((v) => v.length)).toEqual([400, 10]);
    expect(first.buffers[0].length).toBe(0); // released, not left for a collection
    expect(larger.views[1]).toBeInstanceOf(Uint16Array);
  });
});
