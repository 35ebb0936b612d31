// The module worker that owns the WebAssembly (web/ crate, built into pkg/ by ./run.sh): the page
// never computes, so it never freezes. Messages in: {id, type, ...}; out: {id, type: 'progress' |
// 'result' | 'error', ...}. A long job yields to the event loop between steps, which is how a
// 'stop' message gets through.
import init, * as wasm from './pkg/scorediff_web.js';
import { modelFiles } from './files.js';

// Cards fresh from the network, weights cached by their SHA-256 (see files.js).
const files = modelFiles({ caches: self.caches || null, fetch: (...args) => fetch(...args), base: self.location.href,
  subtle: self.crypto && self.crypto.subtle });
let runtime = null;
const images = new Map(); // name -> ImageModel
const points = new Map(); // key -> PointModel
let lab = null;
let stopRequested = false;

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

// A wasm panic surfaces as a bare RuntimeError; the panic hook kept its message.
function describe(e) {
  let message = e && e.message ? e.message : String(e);
  if (e instanceof WebAssembly.RuntimeError) {
    const panic = wasm.lastPanic();
    message = `the WebAssembly module stopped (${message})${panic ? ': ' + panic : ''}. Reload the page.`;
  }
  return message;
}

// The card's JSON, or {} when it is not JSON (the core then reports the card's error).
function parseCard(text) {
  try { return JSON.parse(text) || {}; } catch (_) { return {}; }
}

async function loadModelFiles(name) {
  const base = `models/${name}/`;
  const card = await files.text(base + 'model.json');
  const { weights: weightsFile, weights_sha256: sha256 } = parseCard(card);
  const weights = await files.bytes(base + (weightsFile || 'weights.bpk'), sha256);
  return { card, weights };
}

// Steps a run to the end, posting its state every `every` steps (and at the end).
async function drive(id, run, every) {
  stopRequested = false;
  const started = performance.now();
  let steps = 0;
  let more = true;
  while (more) {
    more = run.step();
    steps += 1;
    const [k, n] = run.progress();
    const last = !more;
    if (last || steps % every === 0) {
      const data = await run.read(); // waits for the GPU: the timing below is real
      const ms = (performance.now() - started) / steps;
      self.postMessage({ id, type: 'progress', k, n, nfe: run.nfe, msPerStep: ms, backend: run.backend,
        shape: Array.from(run.shape()), data, final: last }, [data.buffer]);
    } else {
      await tick();
    }
    if (stopRequested && more) {
      const [k, n] = run.progress();
      return { stopped: true, k, n, nfe: run.nfe };
    }
  }
  const [k, n] = run.progress();
  return { stopped: false, k, n, nfe: run.nfe, ms: performance.now() - started, backend: run.backend };
}

async function pointModel(source) {
  // source: {kind: 'mixture', file} | {kind: 'pretrained', name} | {kind: 'live', ema}
  if (source.kind === 'live') {
    if (!lab) throw new Error('no live model yet: press Train first');
    return lab.snapshot(source.ema !== false);
  }
  const key = source.kind + ':' + (source.file || source.name);
  if (points.has(key)) return points.get(key);
  let model;
  if (source.kind === 'mixture') {
    model = wasm.PointModel.mixture(await files.text('models/' + source.file));
  } else {
    const { card, weights } = await loadModelFiles(source.name);
    model = wasm.PointModel.load(card, weights);
  }
  points.set(key, model);
  return model;
}

const handlers = {
  async init({ prefer }) {
    await init();
    runtime = await wasm.Runtime.create(prefer || 'auto');
    return { backend: runtime.backend, note: runtime.note, samplers: JSON.parse(wasm.samplers()),
      presets: JSON.parse(wasm.samplerPresets()) };
  },
  async 'load-image'({ name }) {
    if (!images.has(name)) {
      const { card, weights } = await loadModelFiles(name);
      images.set(name, wasm.ImageModel.load(runtime, card, weights));
    }
    return JSON.parse(images.get(name).info());
  },
  async sample({ id, name, request, every }) {
    const run = images.get(name).sample(JSON.stringify(request));
    return drive(id, run, every || 1);
  },
  async interpolate({ id, name, request, seedA, seedB, alphas, every }) {
    const run = images.get(name).interpolate(JSON.stringify(request), seedA, seedB, new Float64Array(alphas));
    return drive(id, run, every || 1);
  },
  async inpaint({ id, name, request, image, mask, every }) {
    const run = images.get(name).inpaint(JSON.stringify(request), new Float32Array(image), new Float32Array(mask));
    return drive(id, run, every || 1);
  },
  async toy({ toy, n, seed }) {
    return { points: wasm.toySamples(toy, n, seed) };
  },
  async field({ source, t, xy }) {
    const model = await pointModel(source);
    try {
      return { t, scores: await model.field(t, new Float32Array(xy)), tMax: model.tMax, tMin: model.tMin };
    } finally {
      if (source.kind === 'live') model.free(); // a snapshot: not cached
    }
  },
  async particles({ id, source, sampler, n, seed, every }) {
    const model = await pointModel(source);
    try {
      return await drive(id, model.sample(JSON.stringify(sampler), n, seed), every || 1);
    } finally {
      if (source.kind === 'live') model.free();
    }
  },
  // Class probabilities of images under a classifier directory (config + weights file names).
  async classify({ dir, config, weights, pixels }) {
    const key = 'classifier:' + dir;
    if (!points.has(key)) {
      const cfg = await files.text(`models/${dir}/${config}`);
      const w = await files.bytes(`models/${dir}/${weights}`, parseCard(cfg).weights_sha256);
      points.set(key, wasm.Classifier.load(cfg, w));
    }
    return { probabilities: await points.get(key).probabilities(new Float32Array(pixels)) };
  },
  // Which images fail the data set's failure rule: one 0/1 per image of shape [c, h, w].
  async failures({ dataset, pixels, shape }) {
    const [c, h, w] = shape;
    return { failed: Array.from(wasm.failedSamples(dataset, new Float32Array(pixels), c, h, w)) };
  },
  async 'lab-new'({ settings }) {
    if (lab) lab.free();
    lab = new wasm.Lab(JSON.stringify(settings));
    return { steps: 0 };
  },
  async 'lab-train'({ id, steps, chunk }) {
    if (!lab) throw new Error('no live model: choose a toy and press Train');
    stopRequested = false;
    const started = performance.now();
    let done = 0;
    while (done < steps && !stopRequested) {
      const k = Math.min(chunk || 25, steps - done);
      const losses = lab.train(k);
      done += k;
      self.postMessage({ id, type: 'progress', k: done, n: steps, losses, step: lab.steps,
        msPerStep: (performance.now() - started) / done });
      await tick();
    }
    return { steps: lab.steps, stopped: done < steps, ms: performance.now() - started };
  },
};

self.onmessage = async (event) => {
  const msg = event.data;
  if (msg.type === 'stop') { stopRequested = true; return; }
  const handler = handlers[msg.type];
  if (!handler) { self.postMessage({ id: msg.id, type: 'error', message: `unknown request ${msg.type}` }); return; }
  try {
    const result = await handler(msg);
    self.postMessage({ id: msg.id, type: 'result', result });
  } catch (e) {
    self.postMessage({ id: msg.id, type: 'error', message: describe(e) });
  }
};
