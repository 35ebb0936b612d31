// The page of one row of the browser side-by-side (bench.mjs drives it through window.bench).
// ?row=ort-wasm-1 | ort-wasm-n | ort-webgpu: onnxruntime-web on this page's main thread with the
// exported U-Net (target/browser-bench/unet-mnist.onnx, bench/onnx-export.py);
// ?row=ours-flex-1 | ours-flex-n | ours-webgpu | ours-flex-1-alt (?pkg=/dir/: another build of
// the wasm, 1 worker): our wasm in `workers` module workers
// (worker.mjs), each with its own instance and weights, evaluating its slice of the batch.
// ?card=/models/NAME/ (ours only): the model directory to load instead of /www/models/mnist/
// (model-step.mjs serves one there).
// Timed: one evaluation (ORT: session.run with the output on the CPU; ours: the round in which
// every worker evaluates its slice and reads the output back), in ms from performance.now().
import { splitBatch } from './stats.mjs';

const ORT = '/bench/browser/node_modules/onnxruntime-web/dist/';
const MODEL = '/target/browser-bench/unet-mnist.onnx';

const q = new URLSearchParams(location.search);
const row = q.get('row');
const workers = Number(q.get('workers') || 1);
const t = Number(q.get('t') || 0.5);
const pkg = q.get('pkg') || '/www/pkg/';
const CARD = q.get('card') || '/www/models/mnist/';
if (!/^\/[\w\-/.]+\/$/.test(CARD) || CARD.includes('..')) throw new Error(`card: expected a served directory like /models/NAME/, found ${CARD}`);

function standardNormal(n, seed) {
  // Box-Muller on a small LCG: inputs for ORT only (ours draws its own in the core).
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const a = 2 * Math.PI * u();
    out[i] = r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

async function ortRow() {
  const gpu = row === 'ort-webgpu';
  const ort = await import(ORT + (gpu ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs'));
  ort.env.wasm.wasmPaths = ORT;
  ort.env.wasm.numThreads = row === 'ort-wasm-n' ? workers : 1;
  ort.env.wasm.proxy = false;
  const session = await ort.InferenceSession.create(MODEL, { executionProviders: [gpu ? 'webgpu' : 'wasm'], graphOptimizationLevel: 'all' });
  const pixels = standardNormal(64 * 784, 1);
  let k = 0;
  return {
    info: { ort: ort.env.versions, threads: ort.env.wasm.numThreads, crossOriginIsolated: self.crossOriginIsolated, ep: gpu ? 'webgpu' : 'wasm' },
    async evaluate(batch) {
      k = (k + 1) % 8;
      const x = new ort.Tensor('float32', pixels.subarray(0, batch * 784).map((v) => v + k * 1e-3), [batch, 1, 28, 28]);
      const ts = new ort.Tensor('float32', new Float32Array(batch).fill(1000 * t), [batch]);
      const start = performance.now();
      const { out } = await session.run({ sample: x, timestep: ts });
      const data = out.data; // on the CPU (the default output location, for webgpu too)
      const ms = performance.now() - start;
      if (data.length !== batch * 784 || !Number.isFinite(data[0])) throw new Error(`ORT gave ${data.length} values, first ${data[0]}`);
      out.dispose?.();
      return ms;
    },
  };
}

function call(w, message, transfer, timeoutMs = 600000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker: no answer to ${message.type} in ${timeoutMs / 1000} s`)), timeoutMs);
    w.onmessage = ({ data }) => (clearTimeout(timer), data.ok ? resolve(data) : reject(new Error(data.error)));
    w.onerror = (e) => reject(new Error(e.message || 'worker error'));
    w.postMessage(message, transfer || []);
  });
}

async function oursRow() {
  const device = row === 'ours-webgpu' ? 'webgpu' : 'flex';
  const n = row === 'ours-flex-n' ? workers : 1;
  const card = await (await fetch(CARD + 'model.json')).text();
  const { weights: named, shape } = JSON.parse(card);
  const weightsFile = named || 'weights.bpk';
  const weights = await (await fetch(CARD + weightsFile)).arrayBuffer();
  const pixels = shape.reduce((a, b) => a * b, 1);
  const pool = [];
  let loaded = null;
  for (let i = 0; i < n; i++) {
    const w = new Worker(`/bench/browser/worker.mjs?pkg=${encodeURIComponent(pkg)}`, { type: 'module' });
    const copy = weights.slice(0);
    loaded = await call(w, { type: 'load', device, card, weights: copy }, [copy], 180000);
    pool.push(w);
  }
  return {
    info: { pkg, card: CARD, shape, backend: loaded.backend, parameters: loaded.parameters, workers: n, crossOriginIsolated: self.crossOriginIsolated },
    async evaluate(batch) {
      const slices = splitBatch(batch, n);
      const start = performance.now();
      const replies = await Promise.all(slices.map((b, i) => call(pool[i], { type: 'eval', batch: b, t })));
      const ms = performance.now() - start;
      const values = replies.reduce((s, r) => s + r.values, 0);
      if (values !== batch * pixels || !replies.every((r) => r.finite)) throw new Error(`ours gave ${values} values (finite: ${replies.map((r) => r.finite)})`);
      return ms;
    },
  };
}

window.bench = {
  ready: (async () => {
    const impl = row.startsWith('ort-') ? await ortRow() : await oursRow();
    window.bench.impl = impl;
    return { row, ...impl.info, hardwareConcurrency: navigator.hardwareConcurrency, visibility: document.visibilityState, userAgent: navigator.userAgent };
  })(),
  async run(batch, reps) {
    const times = [];
    for (let i = 0; i < reps; i++) times.push(await window.bench.impl.evaluate(batch));
    return times;
  },
};
