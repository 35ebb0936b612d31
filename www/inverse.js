// The image panel's Inverse problems block: super-resolution, deblurring, colorization (colour
// models) and phase retrieval of one image by diffusion posterior sampling (DPS, Chung et al.
// 2023, Algorithm 1), shown as measurement | DPS result | ground truth | baseline, with the PSNR
// of the result and of the baseline against the ground truth.
//
// No maths here: the worker's 'inverse' request (web/src/inverse.rs) measures the image with the
// core's operator and noise, draws the measurement, computes the baseline (bicubic upsampling,
// Wiener deconvolution, the grey image for colorization) and the scores, and steps the core's
// DPS like any sampling run; this module sends the request and draws what comes back.
//
// The image has the model card's shape [c, h, w] (a 28x28 grey digit, a 3x32x32 colour image of
// an imported model, ...), values in [-1, 1] (pixels p in 0..255 are p / 127.5 - 1, core's
// data::mnist::pixel_to_signed). Its sources, offered when they fit the card:
// - the first test images of the card's data set, www/data/DATASET-test.json (written by
//   scripts/make-test-digits.py: MNIST and Fashion-MNIST), for the models trained on them;
// - the first image of the last samples drawn above;
// - the inpainting canvas above (it follows the card's shape: main.js);
// - an image file of the user's, scaled to h x w (grey models take the channel mean, the grey
//   level colorization measures); a file of exactly h x w keeps its pixels.
// Tasks and factors are offered as they fit the card too: colorization needs 3 channels
// (inverseOptions' `channels`), a super-resolution factor must divide h and w.
// Results are mirrored in window.scorediff.inverse and body[data-inverse] for the e2e test.

const $ = (id) => document.getElementById(id);
const testImagesUrl = (dataset) => `data/${dataset}-test.json`;
const TITLES = { mnist: 'MNIST test digit', 'fashion-mnist': 'Fashion-MNIST test image' };
const sameShape = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

// An image file as `shape` = [c, h, w] values in [-1, 1]: drawn over black (the data's -1) at
// h x w, without colour management, so that a PNG of exactly that size keeps its pixels.
async function fileImage(file, [c, h, w]) {
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  try {
    const canvas = new OffscreenCanvas(w, h);
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, w, h);
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, 0, 0, w, h);
    const rgba = ctx.getImageData(0, 0, w, h).data;
    const out = new Float32Array(c * h * w);
    for (let i = 0; i < h * w; i++) {
      if (c === 3) for (let k = 0; k < 3; k++) out[k * h * w + i] = rgba[4 * i + k] / 127.5 - 1;
      else out[i] = (rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3 / 127.5 - 1;
    }
    return { pixels: out, note: `${file.name} (${bitmap.width}x${bitmap.height}${bitmap.width === w && bitmap.height === h ? '' : `, scaled to ${w}x${h}`})` };
  } finally {
    bitmap.close();
  }
}

export function setupInverse({ call, guarded, state, drawGrid, stop, modelInfo, handImage, lastImage }) {
  let options = null; // the worker's inverseOptions(): tasks (with the channels they need), factors, defaults
  const tests = new Map(); // data set -> its test images ({shape, digits: [{index, label, name, pixels}]}) or null
  let menusFor = null; // the model (name and shape) the menus were built for
  let testImages = null; // the current model's test images, if its data set has them

  const showControls = () => {
    $('inv-factor-label').hidden = $('inv-task').value !== 'super-resolution';
    $('inv-file-label').hidden = $('inv-source').value !== 'file';
  };

  async function loadTests(dataset) {
    if (!tests.has(dataset)) {
      let doc = null;
      if (TITLES[dataset]) {
        const url = testImagesUrl(dataset);
        const response = await fetch(url);
        if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
        doc = await response.json();
      }
      tests.set(dataset, doc);
    }
    return tests.get(dataset);
  }

  // The menus for the current model: its tasks, factors and sources (the choices kept where they
  // still apply).
  async function prepare() {
    if (!options) {
      options = await call('inverse-options');
      const d = options.defaults;
      $('inv-steps').value = String(d.steps);
      $('inv-zeta').value = String(d.zeta);
      $('inv-noise').value = String(d.noise);
      const label = { page: 'where the page computes', flex: 'the CPU (Flex)' };
      $('inv-device').innerHTML = options.devices.map((v) => `<option value="${v}">${label[v] || v}</option>`).join('');
      $('inv-device').value = d.device;
    }
    const info = await modelInfo();
    const key = `${info.name} ${info.shape.join('x')}`;
    if (menusFor === key) return info;
    const [c, h, w] = info.shape;
    const doc = await loadTests(info.dataset);
    testImages = doc && sameShape(doc.shape, info.shape) ? doc : null;
    // The menu's current choice if still offered, else `preferred` if offered, else the first.
    const keep = (id, values, preferred) => {
      const old = $(id).value;
      return values.includes(old) ? old : values.includes(preferred) ? preferred : values[0];
    };
    const tasks = options.tasks.filter((t) => t.channels == null || t.channels === c).map((t) => t.name);
    const task = keep('inv-task', tasks, menusFor ? tasks[0] : options.defaults.task);
    $('inv-task').innerHTML = tasks.map((t) => `<option value="${t}">${t}</option>`).join('');
    $('inv-task').value = task;
    const factors = options.factors.filter((f) => h % f === 0 && w % f === 0).map(String);
    const factor = keep('inv-factor', factors, String(options.defaults.factor));
    $('inv-factor').innerHTML = factors.map((f) => `<option value="${f}">${f}</option>`).join('');
    $('inv-factor').value = factor;
    const title = TITLES[info.dataset];
    const sources = [
      ...(testImages ? testImages.digits.map((d, i) => [String(i), `${title} #${d.index} (a ${d.name ?? d.label})`]) : []),
      ['sample', 'the first generated sample above'],
      ['canvas', 'the inpainting canvas above (hand-drawn)'],
      ['file', `an image file (scaled to ${w}x${h}${c === 1 ? ', grey' : ''})`],
    ];
    const source = keep('inv-source', sources.map((s) => s[0]), sources[0][0]);
    $('inv-source').innerHTML = sources.map(([v, t]) => `<option value="${v}">${t}</option>`).join('');
    $('inv-source').value = source;
    menusFor = key;
    showControls();
    document.body.dataset.inverseShape = info.shape.join('x');
    document.body.dataset.inverseTasks = tasks.join(' ');
    return info;
  }

  // The chosen source as {pixels: [c*h*w] in [-1, 1], note}, or an error naming what is missing.
  async function image(shape) {
    const source = $('inv-source').value;
    const wanted = shape.join('x');
    if (source === 'file') {
      const file = $('inv-file').files[0];
      if (!file) throw new Error('Inverse problems: choose an image file (the Source menu says "an image file")');
      return fileImage(file, shape).catch((e) => { throw new Error(`${file.name}: not an image the browser can decode (${e.message})`); });
    }
    if (source === 'sample' || source === 'canvas') {
      const got = source === 'sample' ? lastImage() : handImage();
      if (!got) throw new Error('Inverse problems: generate images first (the source is the first generated sample)');
      if (!sameShape(got.shape, shape)) {
        throw new Error(`Inverse problems: the ${source === 'sample' ? 'last samples are' : 'canvas holds'} ${got.shape.join('x')} images; the model makes ${wanted} images`);
      }
      return { pixels: Array.from(got.pixels), note: source === 'sample' ? 'the first generated sample' : 'the hand-drawn canvas' };
    }
    const d = testImages && testImages.digits[+source];
    if (!d) throw new Error(`Inverse problems: no test image ${source} for this model`);
    return { pixels: d.pixels.map((p) => p / 127.5 - 1), note: `test image #${d.index}` };
  }

  const caption = (id, text) => { $(id).textContent = text; };
  const db = (s) => (s == null ? 'n/a' : Number.isFinite(s.psnr) ? `PSNR ${s.psnr.toFixed(2)} dB` : 'PSNR ∞');

  async function solve() {
    const info = await prepare();
    const name = info.name;
    const [c, h, w] = info.shape;
    await call('load-image', { name });
    const request = {
      task: $('inv-task').value, factor: +$('inv-factor').value, steps: +$('inv-steps').value,
      zeta: +$('inv-zeta').value, noise: +$('inv-noise').value, seed: +$('inv-seed').value,
      device: $('inv-device').value,
    };
    const source = await image(info.shape);
    const every = Math.max(1, +$('inv-every').value || 1);
    const withX0 = $('inv-x0').checked;
    for (const id of ['inv-measurement', 'inv-result', 'inv-truth', 'inv-baseline']) {
      const cv = $(id); cv.getContext('2d').clearRect(0, 0, cv.width, cv.height);
    }
    state.inverse = { request, running: true, source: source.note, shape: info.shape };
    $('inv-stop').disabled = false;
    $('inv-run').disabled = true;
    const started = performance.now();
    const shape = [1, c, h, w];
    try {
      const result = await call('inverse', { name, request, image: source.pixels, every, denoised: withX0 }, (m) => {
        if (m.stage === 'measured') {
          const [cy, hy, wy] = m.info.measurement_shape;
          drawGrid($('inv-measurement'), m.measurement, [1, cy, hy, wy], 1);
          drawGrid($('inv-truth'), m.truth, shape, 1);
          const ms = m.info.measurement_scores;
          caption('inv-measurement-cap', `measurement: ${m.info.operator}, σ_y = ${request.noise}${ms ? ` (${db(ms)})` : ''}`);
          caption('inv-truth-cap', `ground truth: ${source.note}`);
          if (m.baseline) {
            drawGrid($('inv-baseline'), m.baseline, shape, 1);
            caption('inv-baseline-cap', `baseline: ${m.info.baseline.name}, ${db(m.info.baseline.scores)}`);
          } else caption('inv-baseline-cap', `no baseline for ${m.info.task} in the core`);
          $('inv-note').textContent = `DPS runs on ${m.info.backend}: a network evaluation and its backward pass per step.`;
          state.inverse.info = m.info;
          return;
        }
        $('inv-progress').max = m.n;
        $('inv-progress').value = m.k;
        $('inv-stats').textContent = `step ${m.k}/${m.n} · ${m.nfe} NFE · ${m.msPerStep.toFixed(1)} ms/step · ${m.backend}`;
        drawGrid($('inv-result'), withX0 && m.x0 ? m.x0 : m.data, m.shape, 1);
        caption('inv-result-cap', `DPS ${withX0 && m.x0 ? 'x0-hat' : 'x_t'} at step ${m.k}/${m.n}`);
      });
      const seconds = (performance.now() - started) / 1000;
      if (result.output) drawGrid($('inv-result'), result.output, shape, 1);
      const rinfo = result.info;
      const base = rinfo.baseline;
      caption('inv-result-cap', result.stopped ? `DPS stopped at step ${result.k}/${result.n}` :
        `DPS, ${request.steps} steps, ζ′ = ${request.zeta}: ${db(result.scores)}` +
        (result.scores && result.scores.recovered != null ? ` after alignment (${result.scores.recovered ? 'recovered' : 'not recovered'})` : ''));
      $('inv-stats').textContent += result.stopped ? ' · stopped' : ` · ${seconds.toFixed(1)} s in all`;
      state.inverse = {
        request, info: rinfo, running: false, stopped: result.stopped, seconds, msPerStep: result.ms / Math.max(1, result.k),
        backend: result.backend, psnr: result.scores ? result.scores.psnr : null, ssim: result.scores ? result.scores.ssim : null,
        recovered: result.scores ? result.scores.recovered : null,
        baseline: base ? base.name : null, baselinePsnr: base ? base.scores.psnr : null,
        measurementPsnr: rinfo.measurement_scores ? rinfo.measurement_scores.psnr : null,
        source: source.note, shape: info.shape, output: result.output ? Array.from(result.output) : null,
      };
    } finally {
      $('inv-stop').disabled = true;
      $('inv-run').disabled = false;
    }
  }

  $('inv-task').onchange = showControls;
  $('inv-source').onchange = showControls;
  $('inv-run').onclick = () => guarded('inverse', solve);
  $('inv-stop').onclick = () => stop();
  // Menus and test images once the page's workers are up (body[data-ready=yes], set by main.js),
  // and again whenever another model is loaded (refresh); the e2e test waits on
  // body[data-inverse-ready].
  const whenReady = () => {
    if (document.body.dataset.ready !== 'yes') return false;
    guarded('inverseReady', prepare);
    return true;
  };
  if (!whenReady()) {
    const observer = new MutationObserver(() => { if (whenReady()) observer.disconnect(); });
    observer.observe(document.body, { attributes: true, attributeFilter: ['data-ready'] });
  }
  return { refresh: () => guarded('inverseReady', prepare) };
}
