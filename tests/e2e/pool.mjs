// The worker pool (www/pool.js) end to end, on a page of its own (the caller's page keeps its
// device and state): on Flex, the same seed with 1 worker and with 2 gives the same pixels (the
// floats compared too, their largest difference reported); the x0-hat canvas is drawn beside
// x_t, its evaluations reported apart from the sampler's NFE; images per second and NFE per
// image are shown and mirrored in data-*; a bad batch and a worker that fails reach the error
// box, and the pool serves the next run. On WebGPU the caller's page must have one worker.
//
//   import { run as poolChecks } from './pool.mjs';
//   await poolChecks({ page, check, report, out, useFixture });
//
// sampleOnPage and openFlexPage are also what pool-bench.mjs times.
import { join } from 'node:path';

const long = { timeout: 600000 };

// A page on `url` computing on Flex, its model loaded, in a context of its own (closed with it).
export async function openFlexPage(browser, url) {
  const context = await browser.newContext({ viewport: { width: 1320, height: 1900 } });
  const p = await context.newPage();
  p.on('close', () => context.close().catch(() => {}));
  p.on('console', (m) => { if (m.type() === 'error') console.log('[pool page]', m.text()); });
  await p.goto(url);
  await p.waitForSelector('body[data-ready=yes]', { timeout: 120000 });
  await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.load), null, long);
  await p.selectOption('#prefer', 'flex');
  await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.restart), null, long);
  return p;
}

// Sets the pool to `workers` (waits until it has them).
export async function setWorkers(p, workers) {
  await p.selectOption('#workers', String(workers));
  await p.waitForFunction((n) => document.body.dataset.workers === n && document.body.dataset.resize !== 'running', String(workers), long);
}

// One Generate with these settings; resolves to what the page shows and keeps of it.
export async function sampleOnPage(p, { workers, seed = 3, batch = 8, sampler = 'dpm-solver2m', steps = 10, every = 2, x0 = false, pixels = true }) {
  await setWorkers(p, workers);
  await p.selectOption('#img-sampler', sampler);
  await p.fill('#img-steps', String(steps));
  await p.fill('#img-seed', String(seed));
  await p.fill('#img-batch', String(batch));
  await p.fill('#img-every', String(every));
  await p.setChecked('#img-x0', x0);
  await p.evaluate(() => { document.body.dataset.sample = ''; });
  await p.click('#img-run');
  await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.sample), null, long);
  return p.evaluate((pixels) => {
    const s = window.scorediff, d = document.body.dataset;
    const canvas = (id) => Array.from(document.getElementById(id).getContext('2d').getImageData(0, 0, 448, 448).data);
    return {
      status: d.sample, error: d.error, stats: document.getElementById('img-stats').textContent,
      run: s.imageRun, dataset: { imagesPerSecond: d.imagesPerSecond, nfePerImage: d.nfePerImage, previewNfe: d.previewNfe, runWorkers: d.runWorkers },
      images: pixels && s.lastImages ? Array.from(s.lastImages) : null,
      canvas: pixels ? canvas('img-canvas') : null,
      x0Canvas: pixels && !document.getElementById('img-x0-fig').hidden ? canvas('img-x0-canvas') : null,
      x0Final: s.lastX0 ? Array.from(s.lastX0) : null,
    };
  }, pixels);
}

function greyStd(rgba) {
  let s = 0, s2 = 0, n = 0;
  for (let i = 0; i < rgba.length; i += 4) { s += rgba[i]; s2 += rgba[i] * rgba[i]; n++; }
  const m = s / n;
  return Math.sqrt(s2 / n - m * m);
}

export async function run({ page, check, report, out, useFixture }) {
  const r = (report.pool = {});
  const mainBackend = await page.evaluate(() => document.body.dataset.backend);
  const mainWorkers = await page.evaluate(() => document.body.dataset.workers);
  r.mainPage = { backend: mainBackend, workers: mainWorkers };
  if (mainBackend === 'webgpu') check(mainWorkers === '1', `pool: WebGPU keeps one worker (${mainWorkers})`);
  else check(+mainWorkers >= 1 && +mainWorkers <= 8, `pool: the page starts with 1 to 8 workers on Flex (${mainWorkers})`);

  const p = await openFlexPage(page.context().browser(), page.url());
  try {
    const backend = await p.evaluate(() => document.body.dataset.backend);
    check(backend === 'flex', `pool: the pool's page computes on Flex (${backend})`);
    const options = await p.evaluate(() => [...document.querySelectorAll('#workers option')].map((o) => +o.value));
    check(options[0] === 1 && options.at(-1) === 8, `pool: the Workers control offers 1..8 (${options.join(',')})`);

    // The same seed with 1 and 2 workers: the same floats, so the same pixels. DPM-Solver++(2M)
    // is deterministic after the prior draw; ancestral sampling draws noise at every step, each
    // image its own (per-sample noise), which is what a split must preserve.
    const batch = 8;
    let reference = null; // dpm-solver2m's images with 1 worker
    for (const sampler of ['dpm-solver2m', 'ancestral']) {
      const steps = sampler === 'ancestral' ? 6 : 10;
      const one = await sampleOnPage(p, { workers: 1, seed: 11, batch, sampler, steps, x0: sampler === 'dpm-solver2m' });
      const two = await sampleOnPage(p, { workers: 2, seed: 11, batch, sampler, steps, x0: sampler === 'dpm-solver2m' });
      const ok = one.status === 'done' && two.status === 'done' && one.images && two.images;
      check(ok, `pool: ${sampler} with 1 and 2 workers both finish (${one.error || two.error || 'no error'})`);
      if (!ok) continue;
      if (sampler === 'dpm-solver2m') reference = one.images;
      let floatsDiffer = 0, maxFloat = 0, pixelsDiffer = 0;
      one.images.forEach((v, i) => { const d = Math.abs(v - two.images[i]); if (d > 0) floatsDiffer++; maxFloat = Math.max(maxFloat, d); });
      one.canvas.forEach((v, i) => { if (v !== two.canvas[i]) pixelsDiffer++; });
      r[sampler] = { batch, steps, floatsDiffer, maxFloat, pixelsDiffer, workersOfRuns: [one.run.workers, two.run.workers],
        stats: [one.stats, two.stats], imagesPerSecond: [one.run.imagesPerSecond, two.run.imagesPerSecond] };
      check(one.run.workers === 1 && two.run.workers === 2, `pool: ${sampler}: the runs used 1 and 2 workers (${one.run.workers}, ${two.run.workers})`);
      check(one.images.length === two.images.length && pixelsDiffer === 0,
        `pool: ${sampler}: seed 11, ${batch} images with 1 and 2 workers draw the same pixels (${pixelsDiffer} of ${one.canvas.length} canvas bytes differ)`);
      check(floatsDiffer === 0, `pool: ${sampler}: ... and the same floats (${floatsDiffer} of ${one.images.length} differ, max |diff| ${maxFloat})`);
      check(greyStd(two.canvas) > 10, `pool: ${sampler}: the merged grid is drawn (grey-level std ${greyStd(two.canvas).toFixed(1)})`);

      if (sampler === 'dpm-solver2m') {
        // The x0-hat canvas, drawn from the merged slices; at the end it is the output itself.
        check(two.x0Canvas && greyStd(two.x0Canvas) > 10, `pool: the x0-hat canvas is drawn (grey-level std ${two.x0Canvas ? greyStd(two.x0Canvas).toFixed(1) : 'hidden'})`);
        const same = two.x0Final && two.x0Final.every((v, i) => v === two.images[i]);
        check(same, 'pool: the last x0-hat preview is the output');
        // 10 steps previewed every 2: 4 mid-run previews of one evaluation each, the last free.
        check(two.run.nfePerImage === 10 && two.run.previewNfe === 4,
          `pool: NFE per image is the sampler's 10, the previews' 4 evaluations apart (${two.run.nfePerImage}, +${two.run.previewNfe})`);
        const ips = +two.dataset.imagesPerSecond;
        check(ips > 0 && /images\/s/.test(two.stats) && /NFE\/image/.test(two.stats) && two.dataset.nfePerImage === '10',
          `pool: images per second and NFE per image are shown and mirrored (${two.stats}; data-images-per-second ${two.dataset.imagesPerSecond})`);
        await p.locator('#images .row').first().screenshot({ path: join(out, 'pool-x0.png') });
      }
    }

    // A batch of 0: the core's message in the error box; then a worker that fails (its error
    // event, as the browser fires it when a worker dies) is reported and replaced, and the
    // next run is served with both workers and the same images.
    const zero = await sampleOnPage(p, { workers: 2, batch: 0, pixels: false });
    check(zero.status === 'error' && /batch/.test(zero.error), `pool: a batch of 0 is refused on the page ("${zero.error}")`);
    await p.evaluate(() => window.scorediff.pool.clients[1].worker.dispatchEvent(new ErrorEvent('error', { message: 'injected failure' })));
    const shown = await p.evaluate(() => document.body.dataset.error);
    check(/worker 2 failed: injected failure/.test(shown), `pool: a failed worker reaches the error box ("${shown.slice(0, 90)}")`);
    const after = await sampleOnPage(p, { workers: 2, seed: 11, batch, steps: 10, x0: false });
    const again = after.status === 'done' && after.run.workers === 2;
    const sameAfter = again && reference && after.images.every((v, i) => v === reference[i]);
    check(again && sameAfter, `pool: after the failure the pool serves the next run with 2 workers and the same images (${after.status}${after.error ? ': ' + after.error : ''})`);
    r.afterFailure = { status: after.status, stats: after.stats };
    await p.screenshot({ path: join(out, 'pool-page.png'), fullPage: false });
  } finally {
    await p.close();
  }
}
