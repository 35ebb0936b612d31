// End-to-end test of an imported diffusers UNet2DModel (issue 21), the command line against the
// page: `native-cli import-diffusers` imports the tiny fixture (tests/data/diffusers-tiny, a
// random 3x16x16 RGB UNet2DModel) into a temporary directory, and `native-cli sample` draws
// SAMPLES images from it with DDIM and with DPM-Solver++(2M) at STEPS steps and seed SEED to .npy.
// The page (www/, built beforehand by `./run.sh --no-serve`) is served with that directory as
// models/NAME/ and an index.json that lists it under "imported" (the tracked www/models/ is
// left alone); in headless Chromium, on Flex in wasm, the test checks that the page lists the
// model and shows it as 3x16x16 RGB with the card's parameter count, then samples the same
// sampler, steps, count and seed with 1 worker and with 2, and compares the page's floats with
// the command line's. Then the inverse-problem block and the inpainting canvas on the colour
// model (diffusers-inverse.mjs).
//
// Tolerance: the page's engine samples what native-cli samples bit for bit on native Flex
// (web/tests/diffusers.rs); Flex in wasm runs the same kernels with 128-bit SIMD instead of the
// host's wider vectors, which reorders sums, so the wasm tolerance of web/tests/browser.rs
// applies: |page - cli| < 5e-4 (1 + |cli|) for every value. A wrong layout, sampler, grid or
// seed differs by order 1.
//
// Environment: CHROMIUM (default /usr/bin/chromium); NATIVE_CLI (default
// target/release/native-cli: `cargo build --release -p native-cli --locked`); E2E_OUT (default
// tests/e2e/out: diffusers.json, diffusers-*.png); E2E_KEEP=1 keeps the temporary directory.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as inverseChecks } from './diffusers-inverse.mjs';
import { openFlexPage, sampleOnPage } from './pool.mjs';
import { checks, serve } from './serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const www = join(root, 'www');
const out = resolve(process.env.E2E_OUT || join(here, 'out'));
const cli = resolve(process.env.NATIVE_CLI || join(root, 'target', 'release', 'native-cli'));
const NAME = 'diffusers-tiny-e2e';
const TITLE = 'tiny random diffusers UNet2DModel (e2e)';
const SAMPLERS = ['ddim', 'dpm-solver2m'];
const STEPS = 10, SAMPLES = 4, SEED = 5;
const TOLERANCE = 5e-4; // of 1 + |cli|: web/tests/browser.rs's Flex-in-wasm tolerance
mkdirSync(out, { recursive: true });

if (!existsSync(join(www, 'pkg', 'scorediff_web_bg.wasm'))) {
  console.error('www/pkg/ is not built: run ./run.sh --no-serve first');
  process.exit(2);
}
if (!existsSync(cli)) {
  console.error(`${cli} is missing: cargo build --release -p native-cli --locked (or set NATIVE_CLI)`);
  process.exit(2);
}

// A little-endian float32 .npy in C order (what `native-cli sample` writes): {shape, data}.
function readNpy(file) {
  const b = readFileSync(file);
  if (b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const start = b[6] === 1 ? 10 : 12;
  const end = start + (b[6] === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8));
  const header = b.toString('latin1', start, end);
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) throw new Error(`${file}: not C-order <f4 (${header.trim()})`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  return { shape, data: new Float32Array(b.buffer.slice(b.byteOffset + end, b.byteOffset + b.length)) };
}

const native = (...args) => execFileSync(cli, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();

const { check, failures } = checks();
const report = { samples: SAMPLES, steps: STEPS, seed: SEED, tolerance: TOLERANCE };
const tmp = mkdtempSync(join(tmpdir(), 'scorediff-e2e-diffusers-'));
let exitCode = 1;
let browser = null, server = null;
try {
  // The command line: import, then sample each sampler to .npy.
  const modelDir = join(tmp, NAME);
  console.log(native('import-diffusers', '--from', join(root, 'tests', 'data', 'diffusers-tiny'), '--out', modelDir));
  const card = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  const want = {};
  for (const sampler of SAMPLERS) {
    const file = join(tmp, `${sampler}.npy`);
    console.log(native('sample', '--model', modelDir, '--sampler', sampler, '--steps', String(STEPS),
      '--n', String(SAMPLES), '--seed', String(SEED), '--out', file));
    want[sampler] = readNpy(file);
    // The random network's images are mostly clipped to [-1, 1]; the values inside carry the test.
    const inside = want[sampler].data.filter((v) => Math.abs(v) < 1).length;
    report[`${sampler} inside (-1, 1)`] = inside;
    check(inside >= 100, `${sampler}: ${inside} of the command line's ${want[sampler].data.length} values lie inside (-1, 1), not clipped`);
  }

  // www/ with the import as models/NAME/ and the index listing it.
  const index = JSON.parse(readFileSync(join(www, 'models', 'index.json'), 'utf8'));
  const indexFile = join(tmp, 'index.json');
  writeFileSync(indexFile, JSON.stringify({ ...index, imported: [...(index.imported || []), { name: NAME, title: TITLE }] }));
  server = await serve(www, { [`/models/${NAME}/`]: modelDir, '/models/index.json': indexFile });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  const p = await openFlexPage(browser, server.url);
  check(await p.evaluate(() => document.body.dataset.backend) === 'flex', 'the page computes on Flex in wasm');

  // Listed, selected, and shown as the card says.
  const listed = await p.evaluate(() => document.body.dataset.imported.split(' '));
  const option = await p.evaluate((n) => document.querySelector(`#img-model option[value="${n}"]`)?.textContent, NAME);
  check(listed.includes(NAME) && option === TITLE, `the page lists the import under its index title (imported: ${listed.join(' ')}; option "${option}")`);
  await p.evaluate(() => { document.body.dataset.load = ''; });
  await p.selectOption('#img-model', NAME);
  await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.load), null, { timeout: 120000 });
  const info = await p.textContent('#img-info');
  report.info = info;
  const digits = info.replace(/(\d)[^\d\s]?(?=\d{3}\b)/g, '$1'); // 97,387 -> 97387, whatever the locale's separator
  const shape = card.shape.join('x');
  check(await p.evaluate(() => document.body.dataset.load === 'done') && card.shape[0] === 3 &&
    info.includes(`${shape} RGB images`) && digits.includes(`${card.parameters} parameters`) && info.includes('an imported diffusers UNet2DModel'),
  `the page shows the import as ${shape} RGB with the card's ${card.parameters} parameters ("${info}")`);

  // The same sampler, steps, count and seed as the command line, with 1 worker and with 2.
  for (const sampler of SAMPLERS) {
    for (const workers of [1, 2]) {
      const label = `${sampler}, ${workers} worker${workers > 1 ? 's' : ''}`;
      const got = await sampleOnPage(p, { workers, seed: SEED, batch: SAMPLES, sampler, steps: STEPS, every: STEPS });
      const pageShape = await p.evaluate(() => window.scorediff.lastShape);
      const { shape: cliShape, data } = want[sampler];
      const ok = got.status === 'done' && got.images && got.run.workers === workers && pageShape.join('x') === cliShape.join('x');
      check(ok, `${label}: the page samples [${pageShape}] as the command line does [${cliShape}] (${got.error || got.stats})`);
      if (!ok || got.images.length !== data.length) continue;
      let maxAbs = 0, maxRel = 0, differ = 0;
      data.forEach((v, i) => {
        const d = Math.abs(got.images[i] - v);
        if (d > 0) differ++;
        maxAbs = Math.max(maxAbs, d);
        maxRel = Math.max(maxRel, d / (1 + Math.abs(v)));
      });
      report[label] = { maxAbs, maxRel, differ, values: data.length, stats: got.stats };
      check(maxRel < TOLERANCE, `${label}: the page's images are the command line's (max |diff| ${maxAbs.toExponential(2)}, ` +
        `max |diff|/(1+|x|) ${maxRel.toExponential(2)} < ${TOLERANCE}; ${differ} of ${data.length} values differ)`);
      await p.locator('#img-canvas').screenshot({ path: join(out, `diffusers-${sampler}.png`) });
    }
  }

  // The inverse-problem block and the inpainting canvas on the colour model.
  await inverseChecks({ p, check, report, tmp, modelDir, native });
  await p.locator('#inverse').screenshot({ path: join(out, 'diffusers-inverse.png') });
  exitCode = failures.length ? 1 : 0;
} catch (e) {
  console.error('FAIL', e);
  failures.push(`the test stopped: ${e.message || e}`);
} finally {
  writeFileSync(join(out, 'diffusers.json'), JSON.stringify(report, null, 2));
  if (browser) await browser.close();
  if (server) server.close();
  if (process.env.E2E_KEEP) console.log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
console.log(failures.length ? `${failures.length} check(s) failed` : 'all checks passed', `— screenshots and diffusers.json in ${out}`);
process.exit(exitCode);
