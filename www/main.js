// The page: draws and forwards requests to the worker (worker.js), which owns the WebAssembly.
// State the end-to-end test reads is mirrored in window.scorediff and in data-* attributes.
import { MAX_WORKERS, Pool, defaultWorkers } from './pool.js';
import { setupInverse } from './inverse.js';
import { setupPitfalls } from './pitfalls.js';

const $ = (id) => document.getElementById(id);
const state = { losses: [], lastImages: null, lastShape: null, busy: {}, index: null, info: null };
window.scorediff = state;
// For tests and the console: class probabilities of images under a classifier in models/.
state.classify = (dir, config, weights, pixels) => call('classify', { dir, config, weights, pixels: Array.from(pixels) });
// For tests and the console: which images fail the data set's failure rule (core's
// metrics::FailureRule, as `native-cli eval` counts them), one 0/1 per image of shape [c, h, w].
state.failures = (dataset, pixels, shape) => call('failures', { dataset, pixels: Array.from(pixels), shape });

// ---- the workers ------------------------------------------------------------------------
// A pool of module workers (pool.js): worker 0 serves every request (the lab, classifiers, ...);
// image runs are split over all of them. The header's Workers control sets their number.
const pool = new Pool({ onError: (message) => showError(message) });
state.pool = pool; // for tests and the console
// Stop messages of the lab go to worker 0, which runs it.
const worker = { postMessage: (msg) => pool.post(msg) };
$('workers').innerHTML = [...Array(MAX_WORKERS).keys()].map((k) => `<option>${k + 1}</option>`).join('');
$('workers').value = String(defaultWorkers());
let wantedWorkers = defaultWorkers(); // the control's choice, kept while WebGPU shows 1

async function startWorker(prefer) {
  const ready = await pool.start(prefer, wantedWorkers);
  $('workers').value = String(pool.size);
  $('workers').disabled = pool.backend === 'webgpu'; // one GPU device: one worker
  document.body.dataset.workers = String(pool.size);
  return ready;
}

function call(type, payload = {}, onProgress = null) {
  return pool.call(type, payload, onProgress);
}

$('workers').onchange = () => guarded('resize', async () => {
  wantedWorkers = +$('workers').value;
  document.body.dataset.workers = String(await pool.resize(+$('workers').value));
});

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = !message;
  document.body.dataset.error = message || '';
}

async function guarded(name, fn) {
  if (state.busy[name]) return;
  state.busy[name] = true;
  document.body.dataset[name] = 'running';
  try {
    showError('');
    await fn();
    document.body.dataset[name] = 'done';
  } catch (e) {
    showError(e.message);
    document.body.dataset[name] = 'error';
  } finally {
    state.busy[name] = false;
  }
}

// ---- drawing ----------------------------------------------------------------------------
// Images in [-1, 1], [b, c, h, w], into a grid of `cols` columns.
function drawGrid(canvas, data, shape, cols) {
  const [b, c, h, w] = shape;
  const rows = Math.ceil(b / cols);
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(cols * w, rows * h);
  for (let i = 0; i < b; i++) {
    const ox = (i % cols) * w, oy = Math.floor(i / cols) * h;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const p = ((oy + y) * cols * w + ox + x) * 4;
      for (let k = 0; k < 3; k++) {
        const v = data[((i * c + Math.min(k, c - 1)) * h + y) * w + x];
        img.data[p + k] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
      }
      img.data[p + 3] = 255;
    }
  }
  const tmp = new OffscreenCanvas(cols * w, rows * h);
  tmp.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = '#111';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const scale = Math.min(canvas.width / (cols * w), canvas.height / (rows * h));
  ctx.drawImage(tmp, 0, 0, cols * w * scale, rows * h * scale);
}

function statsText(m) {
  return `step ${m.k}/${m.n} · ${m.nfe} NFE · ${m.msPerStep.toFixed(1)} ms/step · ${m.backend}`;
}

// ---- image panel ------------------------------------------------------------------------
function imageRequest(batch) {
  const label = $('img-label').value;
  return {
    sampler: { kind: $('img-sampler').value, steps: +$('img-steps').value },
    seed: +$('img-seed').value, batch: batch ?? +$('img-batch').value,
    label: label === '' ? null : +label, guidance: label === '' ? 0 : +$('img-guidance').value,
  };
}

// Loads the chosen image model on every worker; a second call for the same model while one is
// in flight waits for that one. The inpainting canvas and the inverse-problem menus follow the
// card's shape.
let loading = null; // {name, promise}
function loadImageModel() {
  const name = $('img-model').value;
  if (loading && loading.name === name) return loading.promise;
  const promise = (async () => {
    $('img-info').textContent = `loading ${name}…`;
    state.info = null;
    const info = await pool.loadImage(name);
    state.info = info;
    const origin = info.network === 'diffusers-unet2d' ? 'an imported diffusers UNet2DModel' : `${info.steps_trained.toLocaleString()} training steps`;
    $('img-info').textContent = `${info.name}: ${info.dataset}, ${info.shape.join('x')} ${info.shape[0] === 3 ? 'RGB' : 'grey'} images, ` +
      `${info.parameters.toLocaleString()} parameters, ${origin}, SDE ${info.sde.kind}, ${info.variance} variance, on ${info.backend}`;
    document.body.dataset.network = info.network;
    const cond = info.num_classes != null;
    document.querySelectorAll('.cond').forEach((e) => (e.hidden = !cond));
    $('img-label').innerHTML = '<option value="">none</option>' +
      (cond ? [...Array(info.num_classes).keys()].map((k) => `<option>${k}</option>`).join('') : '');
    if (info.shape.join('x') !== inp.shape.join('x')) resetInpaint(info.shape);
    if (inverse) inverse.refresh();
    return info;
  })().finally(() => { if (loading && loading.promise === promise) loading = null; });
  loading = { name, promise };
  return promise;
}
// The loaded model's card summary (loading the chosen one first if needed).
async function modelInfo() {
  if (state.info && state.info.name === $('img-model').value) return state.info;
  return loadImageModel();
}
let inverse = null; // setupInverse's {refresh}

function setRunning(running) {
  $('img-stop').disabled = !running;
  for (const b of ['img-run', 'int-run', 'inp-run']) $(b).disabled = running;
  $('workers').disabled = running || pool.backend === 'webgpu';
}

// A whole run's throughput: images per second from the first step to the last image of every
// worker (models already loaded), the sampler's network evaluations per image, and the x0-hat
// previews' evaluations apart (one per preview, per image).
function runText(r) {
  const rate = r.imagesPerSecond == null ? '' : ` = ${r.imagesPerSecond.toFixed(2)} images/s`;
  const previews = r.previewNfe ? ` (+${r.previewNfe} for x0-hat previews)` : '';
  return ` · ${r.images} images in ${(r.ms / 1000).toFixed(2)} s${rate} · ${r.nfe} NFE/image${previews} · ` +
    `${r.workers} worker${r.workers === 1 ? '' : 's'}`;
}

// A batched run split over the pool: each worker takes images [start, start + count) of the
// request (its `first` and `batch`; for interpolation, those alphas). `x0Canvas`: where the
// denoised previews go, when the x0-hat box is ticked.
async function runImages(type, payload, canvas, cols, onDone, x0Canvas = null) {
  setRunning(true);
  try {
    await modelInfo();
    const { request, alphas } = payload;
    const total = alphas ? alphas.length : request.batch;
    const denoised = !!x0Canvas && $('img-x0').checked;
    const every = Math.max(1, +$('img-every').value);
    const part = (start, count) => ({ ...payload, every, denoised,
      request: { ...request, first: (request.first || 0) + start, batch: count },
      ...(alphas ? { alphas: alphas.slice(start, start + count) } : {}) });
    const result = await pool.batched(type, { name: $('img-model').value, check: { ...request, batch: total }, part }, total, (m) => {
      $('img-progress').max = m.n;
      $('img-progress').value = m.k;
      $('img-stats').textContent = statsText(m);
      drawGrid(canvas, m.data, m.shape, cols);
      if (m.x0 && x0Canvas) drawGrid(x0Canvas, m.x0, m.shape, cols);
      if (m.final) onDone && onDone(m);
    });
    $('img-stats').textContent += result.stopped ? ' · stopped' : runText(result);
    const { images, ms, imagesPerSecond, nfe, previewNfe, workers } = result;
    state.imageRun = { type, images, seconds: ms / 1000, imagesPerSecond, nfePerImage: nfe, previewNfe, workers, stopped: result.stopped };
    Object.assign(document.body.dataset, { imagesPerSecond: String(imagesPerSecond ?? ''), nfePerImage: String(nfe),
      previewNfe: String(previewNfe), runWorkers: String(workers) });
    return result;
  } finally {
    setRunning(false);
  }
}

$('img-run').onclick = () => guarded('sample', async () => {
  const request = imageRequest();
  const cols = Math.ceil(Math.sqrt(request.batch));
  await runImages('sample', { request }, $('img-canvas'), cols, (m) => {
    state.lastImages = m.data;
    state.lastShape = m.shape;
    state.lastSampler = request.sampler.kind;
    state.lastX0 = m.x0;
  }, $('img-x0-canvas'));
});
// The x0-hat previews box applies to every batched run: sampling, interpolation and inpainting
// draw the denoised estimate beside x_t while it is ticked.
$('img-x0').onchange = () => {
  const on = $('img-x0').checked;
  $('img-x0-fig').hidden = !on;
  document.querySelectorAll('.x0-preview').forEach((e) => (e.hidden = !on));
};
$('img-stop').onclick = () => pool.stop();
$('img-model').onchange = () => guarded('load', loadImageModel);

// Seed interpolation: 8 points on the great circle, the slider picks one.
let interp = null;
$('int-run').onclick = () => guarded('interp', async () => {
  const alphas = [...Array(8).keys()].map((i) => i / 7);
  const request = { ...imageRequest(8), sampler: { kind: 'ddim', steps: +$('int-steps').value, eta: 0 } };
  await runImages('interpolate', { request, seedA: +$('int-a').value, seedB: +$('int-b').value, alphas },
    $('int-canvas'), 8, (m) => { interp = m; }, $('int-x0-canvas'));
  $('int-slider').disabled = false;
  showInterp();
});
function showInterp() {
  if (!interp) return;
  const [, c, h, w] = interp.shape;
  const i = +$('int-slider').value, n = c * h * w;
  drawGrid($('int-one'), interp.data.subarray(i * n, (i + 1) * n), [1, c, h, w], 1);
}
$('int-slider').oninput = showInterp;

// ---- inpainting -------------------------------------------------------------------------
// The canvas holds one image of the model card's shape [c, h, w] (28x28 grey digits, an imported
// model's 3x32x32 colour images, ...) in [-1, 1], and a mask of h x w pixels (1 = keep, 0 = fill;
// the request repeats it over the channels, the core's Mask takes one value per image value). It
// is reset to black when a model of another shape is loaded. Ink is white on grey models and the
// colour chosen on colour ones; paper is black, the data's background.
const inp = { shape: [1, 28, 28], image: new Float32Array(784).fill(-1), mask: new Float32Array(784).fill(1) };
function resetInpaint(shape) {
  const [c, h, w] = shape;
  inp.shape = [c, h, w];
  inp.image = new Float32Array(c * h * w).fill(-1);
  inp.mask = new Float32Array(h * w).fill(1);
  $('inp-colour-label').hidden = c !== 3;
  drawInpaint();
}
function drawInpaint() {
  const [c, h, w] = inp.shape;
  const ctx = $('inp-canvas').getContext('2d');
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const rgb = [0, 1, 2].map((k) => Math.round((inp.image[Math.min(k, c - 1) * h * w + i] + 1) * 127.5));
    img.data.set(inp.mask[i] === 0 ? [200, 40, 120, 255] : [...rgb, 255], i * 4);
  }
  const tmp = new OffscreenCanvas(w, h);
  tmp.getContext('2d').putImageData(img, 0, 0);
  const canvas = $('inp-canvas');
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = '#111';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const scale = Math.min(canvas.width / w, canvas.height / h);
  ctx.drawImage(tmp, 0, 0, w * scale, h * scale);
}
// The ink's value per channel in [-1, 1]: white, or the colour control's on colour models.
function inkValues(c) {
  if (c !== 3) return [1];
  const hex = $('inp-colour').value; // #rrggbb
  return [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16) / 127.5 - 1);
}
function paint(event) {
  if (!(event.buttons & 1)) return;
  const [c, h, w] = inp.shape;
  const r = $('inp-canvas').getBoundingClientRect();
  const scale = Math.min(r.width / w, r.height / h); // the image fills the canvas's top-left
  const cx = (event.clientX - r.left) / scale, cy = (event.clientY - r.top) / scale;
  const tool = document.querySelector('input[name=tool]:checked').value;
  const side = Math.max(h, w) / 28; // brushes sized as on a 28x28 digit
  const radius = (tool === 'erase' ? 2.5 : 1.2) * side;
  const ink = tool === 'ink' ? inkValues(c) : null;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 > radius ** 2) continue;
    const i = y * w + x;
    if (tool === 'erase') { inp.mask[i] = 0; continue; }
    inp.mask[i] = 1;
    for (let k = 0; k < c; k++) inp.image[k * h * w + i] = ink ? ink[k] : -1;
  }
  drawInpaint();
}
$('inp-canvas').onpointerdown = paint;
$('inp-canvas').onpointermove = paint;
$('inp-clear').onclick = () => { inp.image.fill(-1); inp.mask.fill(1); drawInpaint(); };
// The first image of the last samples, as {shape: [c, h, w], pixels}, or null before any.
function firstSample() {
  if (!state.lastImages || !state.lastShape) return null;
  const [, c, h, w] = state.lastShape;
  return { shape: [c, h, w], pixels: state.lastImages.subarray(0, c * h * w) };
}
$('inp-from').onclick = () => {
  const first = firstSample();
  if (!first) return showError('generate images first');
  if (first.shape.join('x') !== inp.shape.join('x')) {
    return showError(`Inpainting: the canvas holds the model's ${inp.shape.join('x')} images; the last samples are ${first.shape.join('x')}`);
  }
  inp.image.set(first.pixels);
  inp.mask.fill(1);
  drawInpaint();
};
$('inp-run').onclick = () => guarded('inpaint', async () => {
  await modelInfo(); // loading a model of another shape resets the canvas to it first
  const request = { ...imageRequest(4), resample: Math.max(1, +$('inp-resample').value || 1) };
  const mask = Array.from({ length: inp.shape[0] }, () => Array.from(inp.mask)).flat();
  await runImages('inpaint', { request, image: Array.from(inp.image), mask }, $('inp-out'), 4,
    (m) => { state.inpainted = { data: m.data, shape: m.shape, x0: m.x0 }; }, $('inp-x0-out'));
});
// For tests and the console: the canvas's image ([c, h, w]) and mask ([h, w]).
state.inpaintCanvas = () => ({ shape: inp.shape, image: Array.from(inp.image), mask: Array.from(inp.mask) });

// ---- 2-D lab ----------------------------------------------------------------------------
const VIEW = 4.5; // the canvases show [-VIEW, VIEW]^2
const GRID = 21;
const lab = { data: null, particles: null, paths: [], learned: null, exact: null };
const toCanvas = (canvas, x, y) => [(x / VIEW + 1) * canvas.width / 2, (1 - y / VIEW) * canvas.height / 2];
function gridPoints() {
  const xy = [];
  for (let j = 0; j < GRID; j++) for (let i = 0; i < GRID; i++) xy.push(-4 + 8 * i / (GRID - 1), -4 + 8 * j / (GRID - 1));
  return xy;
}

function drawLab(canvas, field, withData = true) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = 'rgba(0,0,0,0.18)';
  if (lab.data && withData) for (let i = 0; i < lab.data.length; i += 2) {
    const [x, y] = toCanvas(canvas, lab.data[i], lab.data[i + 1]);
    ctx.fillRect(x - 1, y - 1, 2, 2);
  }
  if (field) {
    // Arrows of the score direction, length growing with |score| (capped).
    const xy = gridPoints();
    ctx.strokeStyle = '#1565c0';
    ctx.lineWidth = 1;
    for (let i = 0; i < xy.length; i += 2) {
      const sx = field[i], sy = field[i + 1];
      const norm = Math.hypot(sx, sy) || 1;
      const len = 0.28 * Math.min(1, Math.log1p(norm) / 2.5);
      const [x0, y0] = toCanvas(canvas, xy[i], xy[i + 1]);
      const [x1, y1] = toCanvas(canvas, xy[i] + len * sx / norm, xy[i + 1] + len * sy / norm);
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
      ctx.beginPath(); ctx.arc(x1, y1, 1.5, 0, 2 * Math.PI); ctx.fillStyle = '#1565c0'; ctx.fill();
    }
  }
  if (!withData) return; // the exact panel: the field alone
  ctx.strokeStyle = 'rgba(230,81,0,0.35)';
  for (const path of lab.paths) {
    ctx.beginPath();
    path.forEach(([x, y], k) => { const [cx, cy] = toCanvas(canvas, x, y); k ? ctx.lineTo(cx, cy) : ctx.moveTo(cx, cy); });
    ctx.stroke();
  }
  if (lab.particles) {
    ctx.fillStyle = '#e65100';
    for (let i = 0; i < lab.particles.length; i += 2) {
      const [x, y] = toCanvas(canvas, lab.particles[i], lab.particles[i + 1]);
      ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    }
  }
}

function drawLoss() {
  const canvas = $('lab-loss'), ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const l = state.losses;
  if (l.length < 2) return;
  // A running mean over 20 steps, on a log scale.
  const smooth = l.map((_, i) => { const s = l.slice(Math.max(0, i - 19), i + 1); return s.reduce((a, b) => a + b) / s.length; });
  const logs = smooth.map((v) => Math.log10(Math.max(v, 1e-6)));
  const lo = Math.min(...logs), hi = Math.max(...logs);
  ctx.strokeStyle = '#2e7d32';
  ctx.beginPath();
  logs.forEach((v, i) => {
    const x = 30 + (i / (logs.length - 1)) * (canvas.width - 40);
    const y = 10 + (1 - (v - lo) / (hi - lo || 1)) * (canvas.height - 30);
    i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = '#333';
  ctx.fillText(`${smooth[0].toFixed(3)}`, 2, 12);
  ctx.fillText(`${smooth.at(-1).toFixed(3)} (step ${l.length})`, canvas.width - 120, canvas.height - 4);
}

function labSource() {
  // The live MLP's current weights: its EMA (decay 0.999) lags far behind over a few hundred steps.
  return $('lab-source').value === 'pretrained' ? { kind: 'pretrained', name: $('lab-toy').value } : { kind: 'live', ema: false };
}
function mixtureSource() {
  return { kind: 'mixture', file: $('lab-mixture').value };
}

async function refreshFields() {
  const t = +$('lab-t').value;
  $('lab-t-val').textContent = t.toFixed(2);
  const xy = gridPoints();
  try {
    lab.exact = (await call('field', { source: mixtureSource(), t, xy })).scores;
  } catch (e) { lab.exact = null; showError(e.message); }
  if (labSource().kind === 'live' && !state.labReady) lab.learned = null;
  else {
    try { lab.learned = (await call('field', { source: labSource(), t, xy })).scores; }
    catch (e) { lab.learned = null; showError(e.message); }
  }
  drawLab($('lab-learned'), lab.learned);
  const mixture = $('lab-mixture').selectedOptions[0];
  drawLab($('lab-exact'), lab.exact, mixture && mixture.dataset.name === $('lab-toy').value);
}

async function newToy() {
  const toy = $('lab-toy').value;
  lab.data = (await call('toy', { toy, n: 2000, seed: 0 })).points;
  lab.particles = null; lab.paths = [];
  const match = [...$('lab-mixture').options].find((o) => o.dataset.name === toy);
  if (match) $('lab-mixture').value = match.value;
  await newLab();
}

async function newLab() {
  state.losses = [];
  state.labReady = false;
  await call('lab-new', { settings: { toy: $('lab-toy').value, hidden: +$('lab-hidden').value, seed: 0 } });
  drawLoss();
  await refreshFields();
}

$('lab-toy').onchange = () => guarded('lab', newToy);
$('lab-reset').onclick = () => guarded('lab', newLab);
$('lab-t').oninput = () => refreshFields();
$('lab-source').onchange = () => guarded('lab', refreshFields);
$('lab-mixture').onchange = () => guarded('lab', refreshFields);
$('lab-stop').onclick = () => worker.postMessage({ type: 'stop' });
$('lab-train').onclick = () => guarded('train', async () => {
  $('lab-stop').disabled = false;
  try {
    const result = await call('lab-train', { steps: +$('lab-train-steps').value, chunk: 25 }, (m) => {
      state.losses.push(...m.losses);
      $('lab-stats').textContent = `step ${m.step} · ${m.msPerStep.toFixed(1)} ms/step · loss ${m.losses.at(-1).toFixed(3)} · flex`;
      drawLoss();
    });
    state.labReady = true;
    $('lab-source').value = 'live';
    document.body.dataset.trainSteps = String(result.steps);
    await refreshFields();
  } finally {
    $('lab-stop').disabled = true;
  }
});
$('lab-sample').onclick = () => guarded('particles', async () => {
  const sampler = { kind: $('lab-sampler').value, steps: +$('lab-steps').value };
  const source = labSource();
  if (source.kind === 'live' && !state.labReady) throw new Error('train the MLP first (or choose the shipped MLP)');
  const n = 500, traced = 40;
  lab.paths = Array.from({ length: traced }, () => []);
  await call('particles', { source, sampler, n, seed: 0, every: 1 }, (m) => {
    lab.particles = m.data;
    for (let i = 0; i < traced; i++) lab.paths[i].push([m.data[2 * i], m.data[2 * i + 1]]);
    $('lab-stats').textContent = statsText(m);
    drawLab($('lab-learned'), lab.learned);
  });
});

// ---- start ------------------------------------------------------------------------------
async function start() {
  showError('');
  $('device').textContent = 'starting…';
  const ready = await startWorker($('prefer').value);
  $('device').textContent = `computing on ${ready.backend === 'webgpu' ? 'WebGPU' : 'the CPU (Flex, WebAssembly)'} — ${ready.note}`;
  document.body.dataset.backend = ready.backend;
  const options = ready.samplers.map((s) => `<option value="${s.name}" title="${s.about}">${s.name}${s.flex_only && ready.backend === 'webgpu' ? ' (CPU)' : ''}</option>`).join('');
  $('img-sampler').innerHTML = options;
  $('lab-sampler').innerHTML = options;
  // One button per preset of the web crate; the page opens on the first (UniPC at 10 steps),
  // ancestral sampling is the other.
  const choose = ({ name, steps }) => { $('img-sampler').value = name; $('img-steps').value = String(steps); };
  $('img-presets').replaceChildren(...ready.presets.map((p) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = `${p.name}, ${p.steps} steps`;
    button.dataset.sampler = p.name;
    button.onclick = () => choose(p);
    return button;
  }));
  choose(ready.presets[0]);
  $('lab-sampler').value = 'ode-heun';
  state.info = null;
}

// ---- imported models ---------------------------------------------------------------------
// `native-cli import-diffusers --out www/models/NAME` writes NAME/model.json and its weights.
// The page lists such a directory when its card says `diffusers-unet2d` and its weights are
// there. Candidates: the index's optional `imported` entries ({name, title}), and the
// subdirectories of models/ when the server lists directories (`python3 -m http.server`, what
// ./run.sh serves). A candidate with a file missing is reported by name and not listed.
const IMPORTED = 'diffusers-unet2d';

async function exists(url) {
  try { return (await fetch(url, { method: 'HEAD', cache: 'no-cache' })).ok; } catch (_) { return false; }
}

// Subdirectory names of a server's HTML listing of `url` (none when it does not list).
async function listing(url) {
  try {
    const r = await fetch(url, { cache: 'no-cache' });
    if (!r.ok || !(r.headers.get('content-type') || '').includes('text/html')) return [];
    const html = await r.text();
    return [...html.matchAll(/href="([^"?#/]+)\/"/g)].map((m) => decodeURIComponent(m[1]));
  } catch (_) { return []; }
}

// {entry: {name, title}} when models/NAME/ holds an imported model, {problem} when it is one
// with a file missing, {} when it is something else.
async function probeImported(name, listed) {
  const dir = `models/${name}/`;
  const hint = `(import it again: native-cli import-diffusers --from DIR --out www/models/${name})`;
  const r = await fetch(dir + 'model.json', { cache: 'no-cache' }).catch(() => null);
  if (!r || !r.ok) {
    // A listed entry must be there; an unlisted directory is a partial import when it holds
    // the weights an import writes.
    if (listed || await exists(dir + 'weights.bpk')) return { problem: `${dir}model.json is missing ${hint}` };
    return {};
  }
  let card;
  try { card = await r.json(); } catch (e) { return { problem: `${dir}model.json is not JSON (${e.message}) ${hint}` }; }
  if (!card || !card.network || card.network.kind !== IMPORTED) return listed ? { problem: `${dir}model.json is not an imported ${IMPORTED} (network ${card && card.network && card.network.kind}); list it under "image"` } : {};
  const weights = card.weights || 'weights.bpk';
  if (!await exists(dir + weights)) return { problem: `${dir}${weights} is missing ${hint}` };
  const shape = Array.isArray(card.shape) ? card.shape.join('x') : '?';
  return { entry: { name, title: `${name} (imported ${IMPORTED}, ${shape})` } };
}

async function discoverImported(index) {
  const known = new Set([...index.image.map((m) => m.name), ...index.toys.map((m) => m.name),
    ...index.mixtures.map((m) => m.file.split('/')[0])]);
  const listed = (index.imported || []).filter((m) => !known.has(m.name));
  const listedNames = new Set(listed.map((m) => m.name));
  const found = (await listing('models/')).filter((n) => !known.has(n) && !listedNames.has(n) && !n.startsWith('classifier-'));
  const probes = await Promise.all([...listed.map((m) => probeImported(m.name, true).then((p) => ({ ...p, title: m.title }))),
    ...found.map((n) => probeImported(n, false))]);
  const entries = probes.filter((p) => p.entry).map((p) => ({ ...p.entry, title: p.title || p.entry.title }));
  const problems = probes.filter((p) => p.problem).map((p) => p.problem);
  state.imported = { entries, problems };
  document.body.dataset.imported = entries.map((e) => e.name).join(' ');
  document.body.dataset.importedProblems = problems.join('\n');
  $('img-imported').textContent = problems.length ? `Imported models not listed: ${problems.join('; ')}` : '';
  $('img-imported').hidden = !problems.length;
  return entries;
}

async function main() {
  try {
    const index = await (await fetch('models/index.json')).json();
    state.index = index;
    const imported = await discoverImported(index);
    $('img-model').innerHTML = [...index.image, ...imported].map((m) => `<option value="${m.name}">${m.title || m.name}</option>`).join('');
    $('lab-toy').innerHTML = index.toys.map((m) => `<option>${m.name}</option>`).join('');
    $('lab-toy').value = 'two-moons';
    $('lab-mixture').innerHTML = index.mixtures.map((m) => `<option value="${m.file}" data-name="${m.name}">${m.title || m.name}</option>`).join('');
    await start();
    drawInpaint();
    document.body.dataset.ready = 'yes';
    await guarded('lab', newToy);
    await guarded('load', loadImageModel);
  } catch (e) {
    showError(e.message);
  }
}
setupPitfalls({ call, guarded, state });
// A restart replaces worker 0, and the lab it held: a fresh one for the chosen toy.
$('prefer').onchange = () => guarded('restart', async () => { await start(); await newToy(); });
inverse = setupInverse({ call, guarded, state, drawGrid, stop: () => worker.postMessage({ type: 'stop' }), modelInfo,
  handImage: () => ({ shape: inp.shape, pixels: inp.image }), lastImage: firstSample });
main();
