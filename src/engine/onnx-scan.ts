/**
 * Reads an ONNX file's initializers and nodes without loading its weights: the protobuf is
 * walked with positioned reads, and each inline tensor's `raw_data` is recorded as a byte range
 * of the file to read later, one tensor at a time. The merge (merge.ts) uses it for the policy,
 * so building a merged reference never holds the policy's weights whole.
 *
 * Field numbers from onnx.proto3: ModelProto.graph = 7; GraphProto.node = 1, initializer = 5,
 * sparse_initializer = 15; NodeProto.input = 1, name = 3, op_type = 4, domain = 7;
 * TensorProto.dims = 1, data_type = 2, name = 8, raw_data = 9, external_data = 13,
 * data_location = 14 (the typed value fields are decoded whole, they only hold small tensors).
 */
import fs from 'node:fs';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type TensorProto = InstanceType<typeof onnx.TensorProto>;

export interface ScannedTensor {
  name: string;
  dataType: number;
  dims: number[];
  /** Inline `raw_data` as [offset, length] in the file, when the tensor has it. */
  raw?: { offset: number; length: number };
  /** External data: location (relative to the model file), offset and length (length may be absent). */
  external?: { location: string; offset: number; length?: number };
  /** The whole TensorProto, decoded, when its values are in the typed fields (float_data, ...). */
  decoded?: TensorProto;
}

export interface ScannedNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
}

export interface ScannedModel {
  initializers: ScannedTensor[];
  nodes: ScannedNode[];
  sparseInitializers: number;
}

export class OnnxScanError extends Error {}

/** Positioned reads through a small window, so walking the structure costs few syscalls. */
class FileCursor {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  private byteAt(pos: number): number {
    if (pos < this.windowStart || pos >= this.windowStart + this.window.length) {
      if (pos >= this.size) throw new OnnxScanError(`truncated protobuf at byte ${pos}`);
      const length = Math.min(65536, this.size - pos);
      this.window = Buffer.alloc(length);
      fs.readSync(this.fd, this.window, 0, length, pos);
      this.windowStart = pos;
    }
    return this.window[pos - this.windowStart];
  }

  /** A varint at `pos` as a JS number (exact below 2^53); returns [value, next position]. */
  varint(pos: number): [number, number] {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byteAt(pos++);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return [value, pos];
      scale *= 128;
    }
    throw new OnnxScanError(`bad varint before byte ${pos}`);
  }

  bytes(pos: number, length: number): Buffer {
    if (pos + length > this.size) throw new OnnxScanError(`a field runs past the end of the file (byte ${pos + length} of ${this.size})`);
    const out = Buffer.alloc(length);
    fs.readSync(this.fd, out, 0, length, pos);
    return out;
  }
}

interface Field {
  number: number;
  wire: number;
  /** Varint value (wire 0) or payload length (wire 2). */
  value: number;
  /** Start of the payload (wire 2) or of the next field. */
  start: number;
  end: number;
}

/** The fields of the message in [start, end). */
function* fields(c: FileCursor, start: number, end: number): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const [key, afterKey] = c.varint(pos);
    const number = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      const [value, next] = c.varint(afterKey);
      yield { number, wire, value, start: next, end: next };
      pos = next;
    } else if (wire === 2) {
      const [length, payload] = c.varint(afterKey);
      yield { number, wire, value: length, start: payload, end: payload + length };
      pos = payload + length;
    } else if (wire === 1) {
      pos = afterKey + 8;
    } else if (wire === 5) {
      pos = afterKey + 4;
    } else {
      throw new OnnxScanError(`unsupported protobuf wire type ${wire} at byte ${pos}`);
    }
  }
  if (pos !== end) throw new OnnxScanError(`a message overruns its length (byte ${pos}, expected ${end})`);
}

const text = (c: FileCursor, f: Field) => c.bytes(f.start, f.value).toString('utf8');

function scanTensor(c: FileCursor, start: number, end: number): ScannedTensor {
  const t: ScannedTensor = { name: '', dataType: 0, dims: [] };
  const external: Record<string, string> = {};
  let location = 0;
  let typedValues = false;
  for (const f of fields(c, start, end)) {
    if (f.number === 1 && f.wire === 0) t.dims.push(f.value);
    else if (f.number === 1 && f.wire === 2) {
      for (let p = f.start; p < f.end; ) {
        const [d, next] = c.varint(p);
        t.dims.push(d);
        p = next;
      }
    } else if (f.number === 2 && f.wire === 0) t.dataType = f.value;
    else if (f.number === 8 && f.wire === 2) t.name = text(c, f);
    else if (f.number === 9 && f.wire === 2) t.raw = { offset: f.start, length: f.value };
    else if (f.number === 13 && f.wire === 2) {
      let key = '';
      let value = '';
      for (const e of fields(c, f.start, f.end)) {
        if (e.number === 1 && e.wire === 2) key = text(c, e);
        else if (e.number === 2 && e.wire === 2) value = text(c, e);
      }
      external[key] = value;
    } else if (f.number === 14 && f.wire === 0) location = f.value;
    else if ([4, 5, 6, 7, 10, 11].includes(f.number)) typedValues = true;
  }
  if (location === onnx.TensorProto.DataLocation.EXTERNAL) {
    if (!external.location) throw new OnnxScanError(`initializer ${t.name}: external data without a location`);
    t.external = {
      location: external.location,
      offset: Number(external.offset ?? 0),
      ...(external.length !== undefined ? { length: Number(external.length) } : {}),
    };
    delete t.raw;
  } else if (typedValues) {
    t.decoded = onnx.TensorProto.decode(c.bytes(start, end - start));
  }
  return t;
}

function scanNode(c: FileCursor, start: number, end: number): ScannedNode {
  const n: ScannedNode = { name: '', opType: '', domain: '', inputs: [] };
  for (const f of fields(c, start, end)) {
    if (f.wire !== 2) continue;
    if (f.number === 1) n.inputs.push(text(c, f));
    else if (f.number === 3) n.name = text(c, f);
    else if (f.number === 4) n.opType = text(c, f);
    else if (f.number === 7) n.domain = text(c, f);
  }
  return n;
}

/** The main graph's initializers and nodes of the ONNX file at `file`, weights left on disk. */
export function scanOnnxFile(file: string): ScannedModel {
  const fd = fs.openSync(file, 'r');
  try {
    const c = new FileCursor(fd, fs.fstatSync(fd).size);
    const out: ScannedModel = { initializers: [], nodes: [], sparseInitializers: 0 };
    let graphs = 0;
    for (const f of fields(c, 0, c.size)) {
      if (f.number !== 7 || f.wire !== 2) continue;
      graphs++;
      for (const g of fields(c, f.start, f.end)) {
        if (g.wire !== 2) continue;
        if (g.number === 5) out.initializers.push(scanTensor(c, g.start, g.end));
        else if (g.number === 1) out.nodes.push(scanNode(c, g.start, g.end));
        else if (g.number === 15) out.sparseInitializers++;
      }
    }
    if (graphs !== 1) throw new OnnxScanError(graphs === 0 ? 'no graph' : 'more than one graph field');
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
