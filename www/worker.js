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
const slots = new Map(); // further live labs by slot ('pitfalls': the Pitfalls block's)
const labOf = (slot) => (slot ? slots.get(slot) : lab);
let stopRequested = false;

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

// The GPU devices this worker's WebAssembly asked for, and why one was lost (null while none
// was): a lost device fails the run in flight with a message, and the worker goes on on Flex.
// The 'test-lose-gpu' request destroys them, as a driver reset would (the e2e's hook).
const gpuDevices = [];
let gpuLost = null;
let gpuLostSignal = null; // settles when a device is lost
if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    gpuDevices.push(device);
    gpuLostSignal = device.lost.then((info) => { gpuLost = info; });
    return device;
  };
}

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

// Steps a run to the end, posting its state every `every` steps (and at the end); with
// `denoised`, also the denoised estimate x0-hat of each posted state (Run.readDenoised: one
// more network evaluation per post, counted in previewNfe, not in nfe).
async function drive(id, run, every, denoised = false) {
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
      const x0 = denoised ? await run.readDenoised() : null;
      self.postMessage({ id, type: 'progress', k, n, nfe: run.nfe, msPerStep: ms, backend: run.backend,
        shape: Array.from(run.shape()), data, x0, previewNfe: run.previewNfe, final: last },
      x0 ? [data.buffer, x0.buffer] : [data.buffer]);
    } else {
      await tick();
    }
    if (stopRequested && more) {
      const [k, n] = run.progress();
      return { stopped: true, k, n, nfe: run.nfe, previewNfe: run.previewNfe };
    }
  }
  const [k, n] = run.progress();
  return { stopped: false, k, n, nfe: run.nfe, previewNfe: run.previewNfe, ms: performance.now() - started, backend: run.backend };
}

async function pointModel(source) {
  // source: {kind: 'mixture', file} | {kind: 'pretrained', name} | {kind: 'live', ema, slot}
  if (source.kind === 'live') {
    if (!labOf(source.slot)) throw new Error('no live model yet: press Train first');
    return labOf(source.slot).snapshot(source.ema !== false);
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

function imageModel(name) {
  const model = images.get(name);
  if (!model) throw new Error(`the image model ${name} is not loaded in this worker`);
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
  // A whole image request checked before the pool (pool.js) splits it into slices.
  async 'check-request'({ request }) {
    wasm.checkImageRequest(JSON.stringify(request));
    return {};
  },
  async sample({ id, name, request, every, denoised }) {
    const run = imageModel(name).sample(JSON.stringify(request));
    return drive(id, run, every || 1, !!denoised);
  },
  async interpolate({ id, name, request, seedA, seedB, alphas, every, denoised }) {
    const run = imageModel(name).interpolate(JSON.stringify(request), seedA, seedB, new Float64Array(alphas));
    return drive(id, run, every || 1, !!denoised);
  },
  async inpaint({ id, name, request, image, mask, every, denoised }) {
    const run = imageModel(name).inpaint(JSON.stringify(request), new Float32Array(image), new Float32Array(mask));
    return drive(id, run, every || 1, !!denoised);
  },
  // Inverse problems (inverse.js, web/src/inverse.rs): the image measured for the task, posted
  // at once (progress with stage 'measured': measurement, baseline, truth, info), then DPS
  // stepped by drive() on the request's device and its output scored against the truth.
  async 'inverse-options'() {
    return JSON.parse(wasm.inverseOptions());
  },
  async inverse({ id, name, request, image, every, denoised }) {
    const model = images.get(name);
    if (!model) throw new Error(`the image model ${name} is not loaded in this worker`);
    const problem = new wasm.InverseProblem(model, JSON.stringify(request), new Float32Array(image));
    try {
      const info = JSON.parse(problem.info());
      self.postMessage({ id, type: 'progress', stage: 'measured', info, measurement: problem.measurement(),
        baseline: problem.baseline() ?? null, truth: problem.truth() });
      const run = problem.start();
      try {
        const result = await drive(id, run, every || 1, !!denoised);
        const output = await run.read();
        return { ...result, info, output, scores: JSON.parse(problem.score(output)) };
      } finally {
        run.free();
      }
    } finally {
      problem.free();
    }
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
  // The Pitfalls block (pitfalls.js), on an analytic mixture: the Langevin settings of
  // core's sampler::mode_weights, component shares of particles, a learned score's error.
  async pitfalls({ op, source, xy, t, learned }) {
    const model = await pointModel(source);
    if (op === 'contrast') return JSON.parse(model.langevinContrast());
    if (op === 'shares') return JSON.parse(model.componentShares(new Float32Array(xy)));
    if (op === 'score-error') return JSON.parse(model.scoreError(t, new Float32Array(xy), new Float32Array(learned)));
    throw new Error(`pitfalls: unknown op ${op}`);
  },
  async 'test-lose-gpu'() {
    for (const d of gpuDevices) d.destroy();
    return { destroyed: gpuDevices.length };
  },
  async 'lab-new'({ settings, slot }) {
    const made = new wasm.Lab(JSON.stringify(settings)); // the old one stays usable if this throws
    if (labOf(slot)) labOf(slot).free();
    if (slot) slots.set(slot, made); else lab = made;
    return { steps: 0 };
  },
  async 'lab-train'({ id, steps, chunk, slot }) {
    const lab = labOf(slot);
    if (!lab) throw new Error('no live model: choose a toy and press Train');
    if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`Train steps: expected a whole number of steps, at least 1, found ${steps}`);
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
    let message = describe(e);
    // A read in flight fails before device.lost settles: give it a moment to.
    if (runtime && runtime.backend === 'webgpu' && !gpuLost && gpuLostSignal && /reading a tensor back|device|gpu/i.test(message)) {
      await Promise.race([gpuLostSignal, new Promise((resolve) => setTimeout(resolve, 1000))]);
    }
    if (runtime && runtime.backend === 'webgpu' && (gpuLost || /device is (poisoned|lost)/i.test(message))) {
      message = await fallBackToFlex(message).catch((f) => `${message}; moving to the CPU failed too: ${describe(f)}`);
    }
    self.postMessage({ id: msg.id, type: 'error', message });
  }
};

// WebGPU lost (a driver reset, the device destroyed): the request in flight failed; the runtime
// and the image models loaded here move to Flex, so the worker serves the next request.
async function fallBackToFlex(message) {
  const why = gpuLost ? `${gpuLost.reason || 'lost'}${gpuLost.message ? ': ' + gpuLost.message : ''}` : 'the device is poisoned';
  runtime = await wasm.Runtime.create('flex');
  for (const name of [...images.keys()]) {
    const { card, weights } = await loadModelFiles(name);
    images.set(name, wasm.ImageModel.load(runtime, card, weights));
  }
  return `WebGPU was lost (${why}) and this request failed (${message.split('\n')[0]}); ` +
    'this worker computes on the CPU (Flex) from now on: run it again';
}
