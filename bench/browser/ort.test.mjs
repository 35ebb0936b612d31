// node --test: the exported ONNX (bench/onnx-export.py) run by the pinned onnxruntime-web (its
// Node build, wasm EP) gives torch's output on the export's reference input, and takes other
// batch sizes (the batch axis is dynamic). Skipped when the export has not been made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'target', 'browser-bench');
const model = join(dir, 'unet-mnist.onnx');
const reference = join(dir, 'unet-mnist.reference.json');
const skip = !(existsSync(model) && existsSync(reference)) && 'run bench/onnx-export.py first';

test('the exported U-Net in onnxruntime-web matches torch and takes any batch', { skip }, async () => {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(readFileSync(model));
  const ref = JSON.parse(readFileSync(reference, 'utf8'));
  const [b] = ref.shape;
  const { out } = await session.run({
    sample: new ort.Tensor('float32', Float32Array.from(ref.sample), ref.shape),
    timestep: new ort.Tensor('float32', Float32Array.from(ref.timestep), [b]),
  });
  assert.deepEqual(out.dims, ref.shape);
  let worst = 0;
  for (let i = 0; i < ref.out.length; i++) worst = Math.max(worst, Math.abs(out.data[i] - ref.out[i]));
  assert.ok(worst < 1e-4, `max |ORT - torch| = ${worst}`);
  const n = 3;
  const r = await session.run({
    sample: new ort.Tensor('float32', new Float32Array(n * 784).fill(0.1), [n, 1, 28, 28]),
    timestep: new ort.Tensor('float32', new Float32Array(n).fill(500), [n]),
  });
  assert.deepEqual(r.out.dims, [n, 1, 28, 28]);
});
