// Runs an ONNX causal LM with onnxruntime-node on the batches in a JSON file and prints the
// logits as JSON. Used by train.py to check the export against torch.
//   node tools/train-tiny-pair/run_onnx.mjs model.onnx request.json
import fs from 'node:fs';
import ort from 'onnxruntime-node';

const [modelPath, requestPath] = process.argv.slice(2);
const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
const cases = JSON.parse(fs.readFileSync(requestPath, 'utf8'));
const out = [];
for (const c of cases) {
  const B = c.input_ids.length;
  const S = c.input_ids[0].length;
  const t = (rows) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [B, S]);
  const res = await session.run({
    input_ids: t(c.input_ids),
    attention_mask: t(c.attention_mask),
    position_ids: t(c.position_ids),
  });
  out.push({ dims: res.logits.dims, type: res.logits.type, logits: Array.from(res.logits.data) });
}
process.stdout.write(JSON.stringify(out));
