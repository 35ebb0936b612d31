// End-to-end test of the page: serves www/ (built beforehand by `./run.sh --no-serve`; this
// script builds nothing) on a free localhost port with a small static server, opens it in headless Chromium through
// playwright-core, checks it opens on the fast sampler with ancestral sampling one click away,
// generates images with two samplers, checks the canvas holds non-blank
// output (and, with the real MNIST model, that no sample is a noise blob or speckle, each judged
// on its own by core's failure rule; the classifier's confidence is reported), trains the 2-D
// toy for a few hundred steps and checks that the loss falls; the weights are cached under
// their card's SHA-256, and a visitor with another export cached gets the served one (the
// cache logic itself: files.test.mjs). Screenshots go to the output
// directory (E2E_OUT, default tests/e2e/out).
//
// Environment: CHROMIUM (default /usr/bin/chromium); E2E_MODEL = mnist (default) or fixture
// (the tiny random U-Net of web/tests/fixtures, served in place of models/ when the real
// weights are absent); E2E_DEVICE = auto (default), webgpu or flex.
import { chromium } from 'playwright-core';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checks, serve } from './serve.mjs';
import { run as poolChecks } from './pool.mjs';
import { run as inverseChecks } from './inverse.mjs';
import { run as pitfallsChecks } from './pitfalls.mjs';
import { run as hostileChecks } from './hostile.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const www = join(root, 'www');
const out = resolve(process.env.E2E_OUT || join(here, 'out'));
const device = process.env.E2E_DEVICE || 'auto';
mkdirSync(out, { recursive: true });

const { check, failures } = checks();
const report = {};

if (!existsSync(join(www, 'pkg', 'scorediff_web_bg.wasm'))) {
  console.error('www/pkg/ is not built: run ./run.sh --no-serve first');
  process.exit(2);
}
const realModel = existsSync(join(www, 'models', 'mnist', 'model.json'));
const useFixture = process.env.E2E_MODEL === 'fixture' || (!realModel && process.env.E2E_MODEL !== 'mnist');
if (!realModel && !useFixture) {
  console.error('www/models/mnist/model.json is missing (export the trained model, or set E2E_MODEL=fixture)');
  process.exit(2);
}
if (useFixture) console.log('note: serving the tiny random fixture U-Net as "mnist" (no digit check)');

// A static server of www/, which in fixture mode serves the fixture's files as models/mnist/.
const fixtureDir = join(root, 'web', 'tests', 'fixtures', 'tiny-unet');
const { url, close } = await serve(www, useFixture ? { '/models/mnist/': fixtureDir } : {});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--enable-unsafe-webgpu', '--no-sandbox'],
});
let exitCode = 1;
try {
  const page = await browser.newPage({ viewport: { width: 1320, height: 1900 } });
  page.on('console', (m) => { if (m.type() === 'error') console.log('[page]', m.text()); });
  const t0 = Date.now();
  await page.goto(url + (device === 'auto' ? '' : ''));
  if (device !== 'auto') {
    await page.waitForSelector('body[data-ready=yes]', { timeout: 120000 });
    await page.selectOption('#prefer', device);
    await page.waitForFunction(() => document.body.dataset.restart === 'done', null, { timeout: 120000 });
  }
  await page.waitForSelector('body[data-ready=yes]', { timeout: 120000 });
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.load), null, { timeout: 300000 });
  report.backend = await page.evaluate(() => document.body.dataset.backend);
  report.loadSeconds = (Date.now() - t0) / 1000;
  console.log(`page ready on ${report.backend} in ${report.loadSeconds.toFixed(1)} s`);
  check(await page.evaluate(() => document.body.dataset.load === 'done'),
    `the model loads (${await page.evaluate(() => document.body.dataset.error || 'no error')})`);

  // The page opens on the fast sampler; ancestral sampling is one click away.
  const opening = await page.evaluate(() => [document.querySelector('#img-sampler').value, document.querySelector('#img-steps').value]);
  check(opening[0] === 'unipc' && +opening[1] >= 10 && +opening[1] <= 20, `the page opens on unipc at 10 to 20 steps (${opening.join(' at ')})`);
  await page.click('#img-presets button[data-sampler=ancestral]');
  const ancestral = await page.evaluate(() => [document.querySelector('#img-sampler').value, document.querySelector('#img-steps').value]);
  check(ancestral[0] === 'ancestral', `one click on the ancestral preset selects it (${ancestral.join(' at ')} steps)`);

  // The worker keeps the weights under their card's SHA-256, and nothing else for that file.
  const servedCard = JSON.parse(readFileSync(join(useFixture ? fixtureDir : join(www, 'models', 'mnist'), 'model.json'), 'utf8'));
  const weightsKeys = () => page.evaluate(async () => (await (await caches.open('scorediff-models-v1')).keys())
    .map((r) => r.url).filter((u) => new URL(u).pathname === '/models/mnist/weights.bpk'));
  const hashed = `${url}models/mnist/weights.bpk?sha256=${servedCard.weights_sha256}`;
  if (servedCard.weights_sha256) {
    const keys = await weightsKeys();
    check(keys.length === 1 && keys[0] === hashed, `the weights are cached under their SHA-256 (${keys.join(', ') || 'no entry'})`);
  }

  // A listed model whose files are missing must give a clear message (the index is patched
  // through the network layer to list one that does not exist).
  // (Checked below on a second page so the main page's state is untouched.)

  const classifierDir = join(www, 'models', 'classifier-mnist');
  const classifier = existsSync(classifierDir) ? readdirSync(classifierDir) : [];
  const clsConfig = classifier.find((f) => f.endsWith('.json') && f !== 'model.json') || classifier.find((f) => f.endsWith('.json'));
  const clsWeights = classifier.find((f) => f.endsWith('.bpk'));

  // Few steps and a batch of 8: a software WebGPU adapter takes seconds per U-Net evaluation.
  const batch = 8;
  for (const [sampler, steps] of [['ddim', 10], ['dpm-solver2m', 10], ['unipc', 10]]) {
    await page.selectOption('#img-sampler', sampler);
    await page.fill('#img-steps', String(steps));
    await page.fill('#img-batch', String(batch));
    await page.fill('#img-every', '2');
    const started = Date.now();
    await page.click('#img-run');
    await page.waitForFunction(() => document.body.dataset.sample === 'running', null, { timeout: 10000 }).catch(() => {});
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.sample), null, { timeout: 600000 });
    const seconds = (Date.now() - started) / 1000;
    const stats = await page.textContent('#img-stats');
    const { ok, std, min, max, finite, lastSampler } = await page.evaluate(() => {
      const d = window.scorediff.lastImages;
      if (!d) return { ok: false };
      let s = 0, s2 = 0, min = Infinity, max = -Infinity, finite = true;
      for (const v of d) { s += v; s2 += v * v; min = Math.min(min, v); max = Math.max(max, v); finite &&= Number.isFinite(v); }
      const m = s / d.length;
      return { ok: document.body.dataset.sample === 'done', std: Math.sqrt(s2 / d.length - m * m), min, max, finite, lastSampler: window.scorediff.lastSampler };
    });
    report[sampler] = { steps, seconds, stats, std, min, max };
    check(ok && lastSampler === sampler, `${sampler}: ${steps} steps finished (${stats}; ${seconds.toFixed(1)} s)`);
    check(finite && std > 0.05 && max - min > 0.5, `${sampler}: the canvas is not blank (pixel std ${std?.toFixed(3)}, range ${min?.toFixed(2)}..${max?.toFixed(2)})`);
    // The canvas itself holds the picture, not only the array.
    const canvasStd = await page.evaluate(() => {
      const c = document.getElementById('img-canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let s = 0, s2 = 0, n = 0;
      for (let i = 0; i < d.length; i += 4) { s += d[i]; s2 += d[i] * d[i]; n++; }
      const m = s / n; return Math.sqrt(s2 / n - m * m);
    });
    check(canvasStd > 10, `${sampler}: the drawn canvas varies (grey-level std ${canvasStd.toFixed(1)})`);
    await page.locator('#img-canvas').screenshot({ path: join(out, `samples-${sampler}.png`) });
    if (!useFixture) {
      // Each sample judged on its own by MNIST's failure rule (core's metrics::FailureRule, the
      // count `native-cli eval` reports): a mean over the batch hides noise blobs, and the
      // classifier is confident on them. The shipped model fails 0 of 2000 DPM-Solver++(2M)
      // and DDIM samples at these step counts (BENCHMARKS.md), so one failure in 8 is a
      // regression; the 2300-step model of 2026-12-01 failed 44% of them, and passes this
      // check with probability 0.56^8 = 1% per sampler.
      const shape = await page.evaluate(() => window.scorediff.lastShape);
      const { failed } = await page.evaluate(([s]) => window.scorediff.failures('mnist', window.scorediff.lastImages, s.slice(1)), [shape]);
      const failures = failed.reduce((a, b) => a + b, 0);
      report[sampler].failures = failures;
      check(failed.length === batch && failures === 0, `${sampler}: ${failures} of ${failed.length} samples fail the failure rule (noise or speckle; per sample [${failed.join('')}])`);
      if (clsConfig && clsWeights) {
        const probs = await page.evaluate(([c, w]) => window.scorediff.classify('classifier-mnist', c, w, window.scorediff.lastImages), [clsConfig, clsWeights]);
        const p = Object.values(probs.probabilities);
        const classes = p.length / batch;
        const conf = [];
        for (let i = 0; i < batch; i++) conf.push(Math.max(...p.slice(i * classes, (i + 1) * classes)));
        // Reported, not judged: a classifier is confident on noise too.
        report[sampler].classifierConfidence = conf;
        console.log(`${sampler}: classifier confidence per sample ${conf.map((c) => c.toFixed(2)).join(' ')}`);
      }
    } else {
      console.log(`skip ${sampler}: failure count (fixture model)`);
    }
  }

  // The 2-D lab: train the MLP on two-moons for 300 steps; the loss must fall.
  await page.fill('#lab-train-steps', '300');
  const trainStart = Date.now();
  await page.click('#lab-train');
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.train), null, { timeout: 600000 });
  const losses = await page.evaluate(() => window.scorediff.losses);
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(losses.slice(0, 30)), last = mean(losses.slice(-30));
  report.lab = { steps: losses.length, first, last, seconds: (Date.now() - trainStart) / 1000, stats: await page.textContent('#lab-stats') };
  check(losses.length === 300, `lab: 300 training steps ran (${losses.length})`);
  check(last < 0.8 * first, `lab: the loss falls (mean of the first 30 steps ${first.toFixed(3)}, of the last 30 ${last.toFixed(3)})`);
  await page.selectOption('#lab-sampler', 'ode-heun');
  await page.fill('#lab-steps', '50');
  await page.click('#lab-sample');
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.particles), null, { timeout: 300000 });
  check(await page.evaluate(() => document.body.dataset.particles === 'done'), 'lab: particles sampled from the trained MLP');
  await page.locator('#lab').screenshot({ path: join(out, 'lab.png') });
  await page.screenshot({ path: join(out, 'page.png'), fullPage: true });
  await poolChecks({ page, check, report, out, useFixture });
  await pitfallsChecks({ page, check, report, out, useFixture });
  await inverseChecks({ page, check, report, out, useFixture });
  // Last on this page: its WebGPU-lost case leaves the worker on Flex.
  await hostileChecks({ page, check, report, out, useFixture });

  // A listed model with missing files: the page says so.
  const page2 = await browser.newPage();
  await page2.route('**/models/index.json', (route) => route.fulfill({
    contentType: 'application/json',
    body: JSON.stringify({ ...JSON.parse(readFileSync(join(www, 'models', 'index.json'), 'utf8')), image: [{ name: 'no-such-model' }] }),
  }));
  await page2.goto(url);
  await page2.waitForFunction(() => document.body.dataset.load === 'error', null, { timeout: 120000 });
  const message = await page2.textContent('#error');
  check(/no-such-model\/model\.json: 404/.test(message) && /missing/.test(message), `a missing model is reported: "${message.slice(0, 120)}…"`);
  await page2.screenshot({ path: join(out, 'missing-model.png') });

  // A returning visitor whose cache holds another export of the model (a card and weights
  // under an old hash, and weights under their bare URL, as the page kept them before hashes)
  // gets the served ones: the card is fetched fresh and the weights by its hash; the stale
  // entries are dropped.
  await page.evaluate(async () => {
    const cache = await caches.open('scorediff-models-v1');
    for (const r of await cache.keys()) if (new URL(r.url).pathname.startsWith('/models/mnist/')) await cache.delete(r);
    const old = '0'.repeat(64);
    await cache.put('models/mnist/model.json', new Response(JSON.stringify({ format: 1, weights: 'weights.bpk', weights_sha256: old })));
    await cache.put(`models/mnist/weights.bpk?sha256=${old}`, new Response(new Uint8Array([1, 2, 3])));
    await cache.put('models/mnist/weights.bpk', new Response(new Uint8Array([4, 5, 6])));
  });
  await page.reload();
  await page.waitForSelector('body[data-ready=yes]', { timeout: 120000 });
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.load), null, { timeout: 300000 });
  check(await page.evaluate(() => document.body.dataset.load === 'done'),
    `a returning visitor with another export cached loads the served one (${await page.evaluate(() => document.body.dataset.error || 'no error')})`);
  if (servedCard.weights_sha256) {
    const keys = await weightsKeys();
    check(keys.length === 1 && keys[0] === hashed, `the stale weights entries are dropped (${keys.join(', ') || 'no entry'})`);
  }
  exitCode = failures.length ? 1 : 0;
} catch (e) {
  console.error('FAIL', e);
  failures.push(`the test stopped: ${e.message || e}`);
  exitCode = 1;
} finally {
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2));
  await browser.close();
  close();
}
console.log(failures.length ? `${failures.length} check(s) failed` : 'all checks passed', `— screenshots and report.json in ${out}`);
process.exit(exitCode);
