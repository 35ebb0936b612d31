// The 2-D lab's Pitfalls block (www/pitfalls.js) end to end, on the caller's page (2-D work
// runs on Flex whatever the device):
//
// - plain against annealed Langevin with the exact score of www/models/mixtures/pitfalls.json
//   (0.2 / 0.8), the settings of core's sampler::mode_weights, seed 0, 1000 particles each:
//   annealed Langevin's fraction of every component within 4 binomial standard errors of its
//   weight, plain Langevin's minor-mode fraction more than 4 away (tests/tests/mode_weights.rs
//   checks the same runs natively: z = +0.7 and +23.5 at seed 0);
// - an MLP trained in the page on samples of the mixture: its score's median relative error
//   where the data density is below 1e-4 of its peak exceeds twice the error where it is at
//   least 0.1 of it (section 3.1 of Song & Ermon 2019).
//
//   import { run as pitfallsChecks } from './pitfalls.mjs';
//   await pitfallsChecks({ page, check, report, out, useFixture });
import { join } from 'node:path';

const long = { timeout: 300000 };
const Z = 4;

export async function run({ page, check, report, out }) {
  const started = Date.now();
  await page.locator('#pitfalls').scrollIntoViewIfNeeded();
  await page.click('#pit-run');
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.pitfalls), null, long);
  const error = await page.evaluate(() => document.body.dataset.error || '');
  check(await page.evaluate(() => document.body.dataset.pitfalls === 'done'), `pitfalls: plain and annealed Langevin ran (${error || 'no error'})`);
  const { plain, annealed } = await page.evaluate(() => window.scorediff.pitfalls);
  const text = (r) => r ? r.shares.shares.map((s) => `${s.fraction.toFixed(3)} (w ${s.weight}, se ${s.se.toFixed(4)}, z ${s.z.toFixed(1)})`).join(', ') : 'none';
  report.pitfalls = { seconds: (Date.now() - started) / 1000, plain: plain && plain.shares, annealed: annealed && annealed.shares,
    plainMs: plain && plain.ms, annealedMs: annealed && annealed.ms, plainNfe: plain && plain.nfe, annealedNfe: annealed && annealed.nfe };
  const zs = (r) => (r ? r.shares.shares.map((s) => s.z) : [NaN]);
  check(annealed && annealed.shares.n === 1000 && zs(annealed).every((z) => Math.abs(z) < Z),
    `pitfalls: annealed Langevin's fractions are within ${Z} binomial standard errors of the weights: ${text(annealed)}`);
  check(plain && plain.shares.n === 1000 && Math.abs(zs(plain)[0]) > Z,
    `pitfalls: plain Langevin's minor-mode fraction is more than ${Z} standard errors off its weight: ${text(plain)}`);
  const drawn = await page.evaluate(() => {
    const c = document.getElementById('pit-bars');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let inked = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked++;
    return inked;
  });
  check(drawn > 1000, `pitfalls: the bars are drawn (${drawn} pixels)`);

  // The learned score's error by density.
  const trainStarted = Date.now();
  await page.fill('#pit-steps', '600');
  await page.click('#pit-train');
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.pitfallsError), null, long);
  const trained = await page.evaluate(() => document.body.dataset.pitfallsError === 'done');
  check(trained, `pitfalls: the MLP trained on the mixture and was compared (${await page.evaluate(() => document.body.dataset.error || 'no error')})`);
  const e = await page.evaluate(() => window.scorediff.pitfalls.error);
  report.pitfalls.error = e && { ...e, seconds: (Date.now() - trainStarted) / 1000 };
  if (e) {
    check(e.high.points > 0 && e.low.points > 0 && e.low.median > 2 * e.high.median,
      `pitfalls: after ${e.steps} steps the learned score's median relative error is ${e.low.median.toFixed(2)} where the density is low ` +
      `(${e.low.points} points) against ${e.high.median.toFixed(2)} where it is high (${e.high.points} points)`);
  }
  await page.locator('#pitfalls').screenshot({ path: join(out, 'pitfalls.png') });
  console.log(`pitfalls: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
