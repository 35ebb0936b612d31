// The image panel's Inverse problems block: super-resolution, deblurring and phase retrieval of
// one image by diffusion posterior sampling (DPS, Chung et al. 2023, Algorithm 1), shown as
// measurement | DPS result | ground truth | baseline, with the PSNR of the result and of the
// baseline against the ground truth.
//
// No maths here: the worker's 'inverse' request (web/src/inverse.rs) measures the image with the
// core's operator and noise, draws the measurement, computes the baseline (bicubic upsampling,
// Wiener deconvolution) and the scores, and steps the core's DPS like any sampling run; this
// module sends the request and draws what comes back. The image is a real MNIST test digit
// (www/data/mnist-test.json, written by scripts/make-test-digits.py; pixels p in 0..255 are
// the data's p / 127.5 - 1, core's data::mnist::pixel_to_signed) or the inpainting canvas.
// Results are mirrored in window.scorediff.inverse and body[data-inverse] for the e2e test.

const $ = (id) => document.getElementById(id);
const DIGITS = 'data/mnist-test.json';

export function setupInverse({ call, guarded, state, drawGrid, stop, modelName, handImage }) {
  let digits = null; // {shape, digits: [{index, label, pixels}]}
  let options = null; // the worker's inverseOptions(): tasks, factors, defaults

  const image = () => {
    const source = $('inv-source').value;
    if (source === 'canvas') return Array.from(handImage());
    const d = digits.digits[+source];
    return d.pixels.map((p) => p / 127.5 - 1);
  };

  const showFactor = () => { $('inv-factor-label').hidden = $('inv-task').value !== 'super-resolution'; };

  async function prepare() {
    if (!options) {
      options = await call('inverse-options');
      $('inv-task').innerHTML = options.tasks.map((t) => `<option value="${t.name}">${t.name}</option>`).join('');
      $('inv-factor').innerHTML = options.factors.map((f) => `<option value="${f}">${f}</option>`).join('');
      const d = options.defaults;
      $('inv-task').value = d.task;
      $('inv-factor').value = String(d.factor);
      $('inv-steps').value = String(d.steps);
      $('inv-zeta').value = String(d.zeta);
      $('inv-noise').value = String(d.noise);
      showFactor();
    }
    if (!digits) {
      const response = await fetch(DIGITS);
      if (!response.ok) throw new Error(`${DIGITS}: ${response.status} ${response.statusText}`);
      digits = await response.json();
      $('inv-source').innerHTML = digits.digits.map((d, i) => `<option value="${i}">MNIST test digit #${d.index} (a ${d.label})</option>`).join('') +
        '<option value="canvas">the inpainting canvas above (hand-drawn)</option>';
    }
  }

  const caption = (id, text) => { $(id).textContent = text; };
  const db = (s) => (s == null ? 'n/a' : Number.isFinite(s.psnr) ? `PSNR ${s.psnr.toFixed(2)} dB` : 'PSNR ∞');

  async function solve() {
    await prepare();
    const name = modelName();
    await call('load-image', { name });
    const request = {
      task: $('inv-task').value, factor: +$('inv-factor').value, steps: +$('inv-steps').value,
      zeta: +$('inv-zeta').value, noise: +$('inv-noise').value, seed: +$('inv-seed').value,
    };
    const every = Math.max(1, +$('inv-every').value || 1);
    const withX0 = $('inv-x0').checked;
    for (const id of ['inv-measurement', 'inv-result', 'inv-truth', 'inv-baseline']) {
      const c = $(id); c.getContext('2d').clearRect(0, 0, c.width, c.height);
    }
    state.inverse = { request, running: true };
    $('inv-stop').disabled = false;
    $('inv-run').disabled = true;
    const started = performance.now();
    let shape = null; // [1, c, h, w] of the image
    try {
      const result = await call('inverse', { name, request, image: image(), every, denoised: withX0 }, (m) => {
        if (m.stage === 'measured') {
          const [c, h, w] = m.info.measurement_shape;
          shape = [1, c, h, w];
          drawGrid($('inv-measurement'), m.measurement, shape, 1);
          drawGrid($('inv-truth'), m.truth, shape, 1);
          const ms = m.info.measurement_scores;
          caption('inv-measurement-cap', `measurement: ${m.info.operator}, σ_y = ${request.noise}${ms ? ` (${db(ms)})` : ''}`);
          if (m.baseline) {
            drawGrid($('inv-baseline'), m.baseline, shape, 1);
            caption('inv-baseline-cap', `baseline: ${m.info.baseline.name}, ${db(m.info.baseline.scores)}`);
          } else caption('inv-baseline-cap', `no baseline for ${m.info.task} in the core`);
          $('inv-note').textContent = `${m.info.note}.`;
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
      if (result.output) drawGrid($('inv-result'), result.output, shape || [1, 1, 28, 28], 1);
      const info = result.info;
      const base = info.baseline;
      caption('inv-result-cap', result.stopped ? `DPS stopped at step ${result.k}/${result.n}` :
        `DPS, ${request.steps} steps, ζ′ = ${request.zeta}: ${db(result.scores)}` +
        (result.scores && result.scores.recovered != null ? ` after alignment (${result.scores.recovered ? 'recovered' : 'not recovered'})` : ''));
      $('inv-stats').textContent += result.stopped ? ' · stopped' : ` · ${seconds.toFixed(1)} s in all`;
      state.inverse = {
        request, info, running: false, stopped: result.stopped, seconds, msPerStep: result.ms / Math.max(1, result.k),
        backend: result.backend, psnr: result.scores ? result.scores.psnr : null, ssim: result.scores ? result.scores.ssim : null,
        recovered: result.scores ? result.scores.recovered : null,
        baseline: base ? base.name : null, baselinePsnr: base ? base.scores.psnr : null,
        measurementPsnr: info.measurement_scores ? info.measurement_scores.psnr : null,
      };
    } finally {
      $('inv-stop').disabled = true;
      $('inv-run').disabled = false;
    }
  }

  $('inv-task').onchange = showFactor;
  $('inv-run').onclick = () => guarded('inverse', solve);
  $('inv-stop').onclick = () => stop();
  // Menus and digits once the page's workers are up (body[data-ready=yes], set by main.js); the
  // e2e test waits on body[data-inverse-ready].
  const whenReady = () => {
    if (document.body.dataset.ready !== 'yes') return false;
    guarded('inverseReady', prepare);
    return true;
  };
  if (!whenReady()) {
    const observer = new MutationObserver(() => { if (whenReady()) observer.disconnect(); });
    observer.observe(document.body, { attributes: true, attributeFilter: ['data-ready'] });
  }
}
