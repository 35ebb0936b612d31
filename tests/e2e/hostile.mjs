// Bad input end to end: each case must put a message naming the problem in #error, never a
// panic of the WebAssembly ("the WebAssembly module stopped"), and the worker must serve the
// request after it (a small one: the failure rule on one blank digit, worker 0's wasm):
//
// - a batch of 0, 0 steps and a negative seed (Generate);
// - an empty canvas: for inpainting the Blank canvas with nothing erased, and everything
//   erased; the Blank canvas as the source of an inverse problem (DPS);
// - 0 training steps in the 2-D lab;
// - WebGPU lost mid-run (only on WebGPU): once a Generate has taken its first step, the
//   worker's test hook destroys its GPU device; the run fails with a message, the worker moves
//   to Flex, and the Generate after it succeeds;
// - a model directory without weights (its weights file answers 404), on a page of its own.
//
//   import { run as hostileChecks } from './hostile.mjs';
//   await hostileChecks({ page, check, report, out, useFixture });
import { join } from 'node:path';

const long = { timeout: 300000 };
const PANIC = /WebAssembly module stopped|panicked|unreachable/;

async function settle(p, name) {
  await p.waitForFunction((n) => ['done', 'error'].includes(document.body.dataset[n]), name, long);
  return p.evaluate((n) => ({ state: document.body.dataset[n], message: document.body.dataset.error || '' }), name);
}

async function serves(p) {
  return p.evaluate(async () => {
    try {
      const r = await window.scorediff.failures('mnist', new Float32Array(784).fill(-1), [1, 28, 28]);
      return r.failed.length === 1 ? 'served' : `answered ${JSON.stringify(r)}`;
    } catch (e) {
      return `failed: ${e.message}`;
    }
  });
}

export async function run({ page, check, report, out }) {
  const started = Date.now();
  report.hostile = {};
  const expect = async (label, name, pattern, act) => {
    await act();
    const { state, message } = await settle(page, name);
    const after = await serves(page);
    report.hostile[label] = { state, message, after };
    check(state === 'error' && pattern.test(message) && !PANIC.test(message),
      `bad input, ${label}: the page says "${message.slice(0, 140)}"`);
    check(after === 'served', `bad input, ${label}: the worker serves the next request (${after})`);
  };
  const generate = async () => page.click('#img-run');

  await page.fill('#img-steps', '2');
  await page.fill('#img-every', '1');
  await expect('a batch of 0', 'sample', /batch.*1 to 64.*found 0/i, async () => { await page.fill('#img-batch', '0'); await generate(); });
  await expect('0 steps', 'sample', /Steps.*at least 1.*found 0/, async () => {
    await page.fill('#img-batch', '1');
    await page.fill('#img-steps', '0');
    await generate();
  });
  await page.fill('#img-steps', '2');
  await expect('a negative seed', 'sample', /seed.*whole number.*found -1/, async () => { await page.fill('#img-seed', '-1'); await generate(); });
  await page.fill('#img-seed', '0');

  // The inpainting canvas: Blank (nothing erased), then everything erased with the erase tool.
  await page.locator('#inp-canvas').scrollIntoViewIfNeeded();
  await expect('the blank canvas, nothing erased', 'inpaint', /nothing is erased/, async () => {
    await page.click('#inp-clear');
    await page.click('#inp-run');
  });
  await expect('everything erased', 'inpaint', /everything is erased/, async () => {
    await page.check('input[name=tool][value=erase]');
    const box = await page.locator('#inp-canvas').boundingBox();
    await page.mouse.move(box.x + 2, box.y + 2);
    await page.mouse.down();
    for (let y = 4; y < box.height; y += 20) for (let x = 4; x < box.width; x += 20) await page.mouse.move(box.x + x, box.y + y);
    await page.mouse.up();
    await page.click('#inp-run');
  });
  await page.click('#inp-clear');
  // The blank hand-drawn canvas as the source of an inverse problem (www/inverse.js).
  if (await page.locator('#inv-source option[value=canvas]').count()) {
    const source = await page.inputValue('#inv-source');
    await expect('the blank canvas as a DPS source', 'inverse', /image is blank/, async () => {
      await page.selectOption('#inv-source', 'canvas');
      await page.click('#inv-run');
    });
    await page.selectOption('#inv-source', source);
  }

  await page.locator('#lab').scrollIntoViewIfNeeded();
  await expect('0 training steps', 'train', /Train steps.*at least 1.*found 0/, async () => {
    await page.fill('#lab-train-steps', '0');
    await page.click('#lab-train');
  });

  // WebGPU lost mid-run.
  const backend = await page.evaluate(() => document.body.dataset.backend);
  if (backend === 'webgpu') {
    // The device is destroyed once the run has posted its first step.
    let lost = null;
    await page.fill('#img-batch', '1');
    await page.fill('#img-steps', '4');
    await expect('WebGPU lost mid-run', 'sample', /WebGPU was lost.*CPU \(Flex\)/, async () => {
      await page.evaluate(() => { document.getElementById('img-progress').value = 0; });
      await generate();
      await page.waitForFunction(() => +document.getElementById('img-progress').value >= 1 || document.body.dataset.sample !== 'running', null, long);
      lost = await page.evaluate(() => window.scorediff.pool.call('test-lose-gpu', {}));
    });
    await page.fill('#img-steps', '2');
    await generate();
    const { state, message } = await settle(page, 'sample');
    const stats = await page.textContent('#img-stats');
    report.hostile.afterGpuLost = { destroyed: lost.destroyed, state, message, stats };
    check(lost.destroyed >= 1 && state === 'done' && /flex/.test(stats),
      `WebGPU lost: the Generate after it runs on Flex (${state}: ${message || stats})`);
  } else {
    console.log(`skip WebGPU lost mid-run (the page computes on ${backend})`);
  }

  // A model directory without weights, on a page of its own.
  const context = await page.context().browser().newContext();
  const p2 = await context.newPage();
  await p2.route('**/models/mnist/weights.bpk*', (route) => route.fulfill({ status: 404, contentType: 'text/plain', body: 'not found' }));
  const url = page.url();
  await p2.goto(url);
  await p2.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.load), null, long);
  const message = await p2.evaluate(() => document.body.dataset.error || '');
  const after = await serves(p2);
  report.hostile['weights missing'] = { state: await p2.evaluate(() => document.body.dataset.load), message, after };
  check(/weights\.bpk/.test(message) && /404/.test(message) && !PANIC.test(message), `bad input, a model without weights: the page says "${message.slice(0, 140)}"`);
  check(after === 'served', `bad input, a model without weights: the worker serves the next request (${after})`);
  await p2.screenshot({ path: join(out, 'missing-weights.png') });
  await context.close();
  console.log(`bad input: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
