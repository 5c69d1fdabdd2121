/**
 * Shards of an offline scoring run: `pa-server score --shard I/N` scores only the records whose
 * id hashes to shard I of N. The hash is the first 8 bytes of SHA-256 over the id's UTF-8 bytes,
 * read big-endian, modulo N, so the partition depends on nothing but the ids and N: the same on
 * every run, machine and Node version, and independent of the input's order or file layout. In
 * Python: `int.from_bytes(hashlib.sha256(id.encode()).digest()[:8], "big") % N`.
 */
import crypto from 'node:crypto';

export interface Shard {
  /** 0-based, below `count`. */
  index: number;
  count: number;
}

export class ShardSpecError extends Error {}

/** "I/N" with 0 ≤ I < N (a Kubernetes Indexed Job's JOB_COMPLETION_INDEX is such an I). */
export function parseShard(spec: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(spec);
  if (!m) throw new ShardSpecError(`--shard must be I/N, e.g. 0/4 (got ${JSON.stringify(spec)})`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!Number.isSafeInteger(count) || count < 1) throw new ShardSpecError(`--shard ${spec}: N must be at least 1`);
  if (!Number.isSafeInteger(index) || index >= count) throw new ShardSpecError(`--shard ${spec}: I must be in 0..${count - 1}`);
  return { index, count };
}

/** The shard (0..count-1) that `id` belongs to among `count`. */
export function shardOf(id: string, count: number): number {
  const digest = crypto.createHash('sha256').update(id, 'utf8').digest();
  return Number(digest.readBigUInt64BE(0) % BigInt(count));
}

export function inShard(id: string, shard: Shard): boolean {
  return shardOf(id, shard.count) === shard.index;
}

export const formatShard = (shard: Shard) => `${shard.index}/${shard.count}`;
