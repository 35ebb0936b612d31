// The 2-D lab's Pitfalls block: two failures of score matching on an analytic mixture with
// unequal weights (www/models/mixtures/pitfalls.json, 0.2 N((-5,-5), I) + 0.8 N((5,5), I) under
// VE), after Song & Ermon 2019, sections 3.1 and 3.2 (Fig. 3).
//
// 1. Plain Langevin dynamics at one small noise level against annealed Langevin, both with the
//    exact score and the settings of core's sampler::mode_weights (the worker's 'pitfalls'
//    'contrast'); each component's fraction of the particles (core's component_shares: largest
//    responsibility) against its weight, with binomial standard errors.
// 2. A learned score's error where the data density is low: an MLP trained here on samples of
//    the mixture, its field against the exact one, each arrow coloured by the relative error
//    (core's score_error_by_density), the density shaded, and the median error in high- and
//    low-density regions.
//
// No maths here: the page draws what the worker computes. Results are mirrored in
// window.scorediff.pitfalls and body[data-pitfalls] / body[data-pitfalls-error] for the e2e.

const $ = (id) => document.getElementById(id);
const VIEW = 10; // the canvases show [-VIEW, VIEW]^2
const GRID = 25; // arrows per side of the error field
const T_COMPARE = 0.3; // the time of the field comparison: sigma = 0.1 * 200^0.3 = 0.49
const SLOT = 'pitfalls'; // the worker's live lab of this block

const toCanvas = (canvas, x, y) => [(x / VIEW + 1) * canvas.width / 2, (1 - y / VIEW) * canvas.height / 2];

function gridPoints() {
  const xy = [];
  for (let j = 0; j < GRID; j++) for (let i = 0; i < GRID; i++) {
    xy.push(-VIEW * 0.95 + (2 * VIEW * 0.95 * i) / (GRID - 1), -VIEW * 0.95 + (2 * VIEW * 0.95 * j) / (GRID - 1));
  }
  return xy;
}

function drawParticles(canvas, points, mixture) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(0.5, 0.5, canvas.width - 1, canvas.height - 1);
  if (mixture) {
    // Each component's mean, the circle's area proportional to its weight.
    mixture.means.forEach((m, k) => {
      const [x, y] = toCanvas(canvas, m[0], m[1]);
      ctx.beginPath();
      ctx.arc(x, y, 40 * Math.sqrt(mixture.weights[k]), 0, 2 * Math.PI);
      ctx.strokeStyle = '#2e7d32';
      ctx.stroke();
      ctx.fillStyle = '#2e7d32';
      ctx.fillText(`w = ${mixture.weights[k]}`, x + 8, y - 44 * Math.sqrt(mixture.weights[k]));
    });
  }
  if (!points) return;
  ctx.fillStyle = 'rgba(230,81,0,0.5)';
  for (let i = 0; i < points.length; i += 2) {
    const [x, y] = toCanvas(canvas, points[i], points[i + 1]);
    ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
  }
}

const COLOURS = { plain: '#e65100', annealed: '#1565c0' };

function drawBars(canvas, results, weights) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const [left, bottom, top] = [34, canvas.height - 40, 12];
  const y = (v) => bottom - v * (bottom - top);
  ctx.strokeStyle = '#333';
  ctx.fillStyle = '#333';
  ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, bottom); ctx.lineTo(canvas.width - 4, bottom); ctx.stroke();
  for (const v of [0, 0.5, 1]) ctx.fillText(v.toFixed(1), 4, y(v) + 4);
  const group = (canvas.width - left - 10) / weights.length;
  weights.forEach((w, k) => {
    const x0 = left + 10 + k * group;
    ['plain', 'annealed'].forEach((name, j) => {
      const s = results[name] && results[name].shares.shares[k];
      if (!s) return;
      const x = x0 + j * (group / 2 - 6), width = group / 2 - 14;
      ctx.fillStyle = COLOURS[name];
      ctx.fillRect(x, y(s.fraction), width, bottom - y(s.fraction));
      // +- one binomial standard error.
      ctx.strokeStyle = '#000';
      ctx.beginPath();
      ctx.moveTo(x + width / 2, y(s.fraction + s.se)); ctx.lineTo(x + width / 2, y(s.fraction - s.se));
      ctx.stroke();
      ctx.fillStyle = '#000';
      ctx.fillText(`${s.fraction.toFixed(3)}`, x, y(s.fraction) - 4);
      ctx.fillText(`z ${s.z >= 0 ? '+' : ''}${s.z.toFixed(1)}`, x, bottom + 24);
    });
    // The true weight.
    ctx.strokeStyle = '#2e7d32';
    ctx.setLineDash([5, 3]);
    ctx.beginPath(); ctx.moveTo(x0 - 4, y(w)); ctx.lineTo(x0 + group - 16, y(w)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#2e7d32';
    ctx.fillText(`component ${k + 1}: w = ${w}`, x0, bottom + 12);
  });
  ctx.fillStyle = COLOURS.plain; ctx.fillText('plain', canvas.width - 110, top + 6);
  ctx.fillStyle = COLOURS.annealed; ctx.fillText('annealed', canvas.width - 70, top + 6);
}

// Relative error 0 .. >= 1 on a log scale, green to red.
function errorColour(e) {
  const u = Math.max(0, Math.min(1, (Math.log10(Math.max(e, 1e-2)) + 2) / 2)); // 0.01 -> 0, 1 -> 1
  return `rgb(${Math.round(40 + 215 * u)},${Math.round(170 * (1 - u) + 30)},40)`;
}

function drawErrorField(canvas, xy, learned, exact, summary) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const cell = canvas.width / GRID;
  // The data density (relative to its largest value on the grid), shaded.
  for (let i = 0; i < xy.length / 2; i++) {
    const [x, y] = toCanvas(canvas, xy[2 * i], xy[2 * i + 1]);
    const p = summary.relative_density[i];
    ctx.fillStyle = `rgba(0,0,0,${(0.35 * Math.pow(p, 0.25)).toFixed(3)})`;
    ctx.fillRect(x - cell / 2, y - cell / 2, cell, cell);
  }
  const arrow = (i, field, colour, width) => {
    const sx = field[2 * i], sy = field[2 * i + 1];
    const norm = Math.hypot(sx, sy) || 1;
    const len = 0.75 * (2 * VIEW * 0.95 / (GRID - 1)) * (0.35 + 0.65 * Math.min(1, Math.log1p(norm) / 3));
    const [x0, y0] = toCanvas(canvas, xy[2 * i], xy[2 * i + 1]);
    const [x1, y1] = toCanvas(canvas, xy[2 * i] + len * sx / norm, xy[2 * i + 1] + len * sy / norm);
    ctx.strokeStyle = colour; ctx.lineWidth = width;
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    ctx.fillStyle = colour;
    ctx.beginPath(); ctx.arc(x1, y1, width + 0.5, 0, 2 * Math.PI); ctx.fill();
  };
  for (let i = 0; i < xy.length / 2; i++) arrow(i, exact, 'rgba(120,120,120,0.7)', 1);
  for (let i = 0; i < xy.length / 2; i++) arrow(i, learned, errorColour(summary.relative_error[i]), 1.6);
  ctx.lineWidth = 1;
  // The colour key.
  ctx.fillStyle = '#fff'; ctx.fillRect(4, 4, 178, 16);
  [0.01, 0.1, 1].forEach((e, k) => {
    ctx.fillStyle = errorColour(e); ctx.fillRect(8 + 58 * k, 8, 10, 8);
    ctx.fillStyle = '#000'; ctx.fillText(`err ${e}`, 20 + 58 * k, 16);
  });
}

function fmt(r) {
  return r.points ? `${r.median.toFixed(2)} (${r.points} points)` : 'no points';
}

export function setupPitfalls({ call, guarded, state }) {
  state.pitfalls = { plain: null, annealed: null, error: null };
  const source = () => {
    const entry = ((state.index && state.index.mixtures) || []).find((m) => m.name === 'pitfalls');
    if (!entry) throw new Error('models/index.json lists no mixture named pitfalls');
    return { kind: 'mixture', file: entry.file };
  };
  let mixture = null; // the file's weights and means, for drawing
  const loadMixture = async () => {
    if (!mixture) mixture = await (await fetch('models/' + source().file)).json();
    return mixture;
  };
  const results = {};

  $('pit-run').onclick = () => guarded('pitfalls', async () => {
    const src = source();
    const mix = await loadMixture();
    const contrast = await call('pitfalls', { op: 'contrast', source: src });
    $('pit-stats').textContent = `${contrast.particles} particles each…`;
    const lines = [];
    for (const name of ['plain', 'annealed']) {
      const canvas = $(`pit-${name}`);
      let last = null;
      const run = await call('particles', { source: src, sampler: contrast[name], n: contrast.particles, seed: 0, every: 10 }, (m) => {
        last = m.data;
        drawParticles(canvas, m.data, mix);
      });
      const shares = await call('pitfalls', { op: 'shares', source: src, xy: Array.from(last) });
      results[name] = { shares, nfe: run.nfe, ms: run.ms, sampler: contrast[name] };
      state.pitfalls[name] = results[name];
      const fractions = shares.shares.map((s) => `${s.fraction.toFixed(3)} ± ${s.se.toFixed(3)} (w ${s.weight}, z ${s.z.toFixed(1)})`).join(', ');
      lines.push(`${name}: ${fractions}; ${run.nfe} NFE, ${(run.ms / 1000).toFixed(1)} s`);
      $(`pit-${name}-cap`).textContent = `${name} Langevin: ${shares.shares.map((s) => s.fraction.toFixed(2)).join(' / ')} ` +
        `against ${mix.weights.join(' / ')}`;
      drawBars($('pit-bars'), results, mix.weights);
    }
    $('pit-stats').textContent = lines.join(' · ');
    document.body.dataset.pitfallsShares = JSON.stringify(['plain', 'annealed'].map((n) => results[n].shares.shares.map((s) => s.z)));
  });

  $('pit-train').onclick = () => guarded('pitfallsError', async () => {
    const src = source();
    const text = await (await fetch('models/' + src.file)).text();
    const steps = +$('pit-steps').value;
    await call('lab-new', { slot: SLOT, settings: { mixture: text, hidden: 64, lr: 3e-3, seed: 0 } });
    const trained = await call('lab-train', { slot: SLOT, steps, chunk: 50 }, (m) => {
      $('pit-err').textContent = `training: step ${m.step} · loss ${m.losses.at(-1).toFixed(3)} · ${m.msPerStep.toFixed(1)} ms/step`;
    });
    const xy = gridPoints();
    const learned = Array.from((await call('field', { source: { kind: 'live', ema: false, slot: SLOT }, t: T_COMPARE, xy })).scores);
    const exact = Array.from((await call('field', { source: src, t: T_COMPARE, xy })).scores);
    const summary = await call('pitfalls', { op: 'score-error', source: src, t: T_COMPARE, xy, learned });
    drawErrorField($('pit-field'), xy, learned, exact, summary);
    state.pitfalls.error = { steps: trained.steps, t: T_COMPARE, high: summary.high, low: summary.low, thresholds: summary.thresholds };
    $('pit-err').textContent = `after ${trained.steps} steps, at t = ${T_COMPARE}: median relative error ${fmt(summary.high)} where the density is ` +
      `at least ${summary.thresholds[0]} of its peak, ${fmt(summary.low)} where it is below ${summary.thresholds[1]}`;
  });
}
