/**
 * Floating-point initializer element types, read into float32 and written back in their own
 * type (float16 stays float16), for the weight merge. Little-endian, as ONNX stores them.
 */
export const FLOAT = 1;
export const FLOAT16 = 10;
export const DOUBLE = 11;
export const BFLOAT16 = 16;

/** Bytes per element of the mergeable types. */
export const FLOAT_TYPE_BYTES: Readonly<Record<number, number>> = { [FLOAT]: 4, [FLOAT16]: 2, [DOUBLE]: 8, [BFLOAT16]: 2 };

export const isFloatType = (dataType: number): boolean => FLOAT_TYPE_BYTES[dataType] !== undefined;

let halfTable: Float32Array | undefined;

/** All 65,536 float16 values as float32 (exact: every half is a float). */
function halves(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    table[h] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return (halfTable = table);
}

/** float32 bits → float16 bits, rounding to nearest even (as numpy's astype(float16)). */
export function floatBitsToHalf(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** The elements of `bytes` (element type `dataType`) as float32. */
export function toFloat32(bytes: Uint8Array, dataType: number): Float32Array {
  const n = bytes.byteLength / FLOAT_TYPE_BYTES[dataType];
  if (dataType === FLOAT) {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  if (dataType === DOUBLE) {
    const wide = new Float64Array(n);
    new Uint8Array(wide.buffer).set(bytes);
    return Float32Array.from(wide);
  }
  const u16 = new Uint16Array(n);
  new Uint8Array(u16.buffer).set(bytes);
  const out = new Float32Array(n);
  if (dataType === FLOAT16) {
    const table = halves();
    for (let i = 0; i < n; i++) out[i] = table[u16[i]];
  } else {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = u16[i] << 16;
  }
  return out;
}

/** `values` stored into `target` in element type `dataType` (float32 → narrower: round to nearest even). */
export function fromFloat32(values: Float32Array, dataType: number, target: Uint8Array): void {
  const n = values.length;
  if (target.byteLength !== n * FLOAT_TYPE_BYTES[dataType]) throw new Error('fromFloat32: size mismatch');
  if (dataType === FLOAT) {
    target.set(new Uint8Array(values.buffer, values.byteOffset, n * 4));
    return;
  }
  if (dataType === DOUBLE) {
    const wide = Float64Array.from(values);
    target.set(new Uint8Array(wide.buffer));
    return;
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  const u16 = new Uint16Array(n);
  if (dataType === FLOAT16) {
    for (let i = 0; i < n; i++) u16[i] = floatBitsToHalf(bits[i]);
  } else {
    for (let i = 0; i < n; i++) {
      const b = bits[i];
      // bfloat16: the top half, rounded to nearest even; NaN stays a (quiet) NaN.
      u16[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
  target.set(new Uint8Array(u16.buffer));
}
