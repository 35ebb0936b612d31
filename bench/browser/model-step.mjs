// One network evaluation of any exported or imported model directory (e.g. the CIFAR-size
// diffusers import of bench/cifar-step.sh) on Flex-wasm with 1 worker, in headless Chromium: our
// wasm engine's BenchModel (web/src/bench.rs) through page.mjs's `ours-flex-1` row with
// ?card=/models/NAME/, the directory served there. A warm-up evaluation, then --rounds rounds
// of --reps evaluations at --batch; prints every time and the median, and writes the raw
// samples to target/browser-bench/model-step-*.json. No ONNX row.
//   node bench/browser/model-step.mjs --model DIR [--batch 16] [--rounds 3] [--reps 1] [--t 0.5]
// Needs www/pkg with BenchModel (./run.sh --no-serve) and bench/browser/node_modules (npm ci).
// Environment: CHROMIUM (default /usr/bin/chromium).
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { chromium } from 'playwright-core';
import { median } from './stats.mjs';
import { machine } from './machine.mjs';
import { serve } from '../../tests/e2e/serve.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function options(argv) {
  const o = { model: null, batch: 16, rounds: 3, reps: 1, t: 0.5 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i].replace(/^--/, ''), argv[i + 1]];
    if (!(k in o) || v === undefined) throw new Error(`model-step.mjs: expected --model DIR [--batch B] [--rounds R] [--reps K] [--t T], found ${argv[i]}`);
    o[k] = k === 'model' ? v : Number(v);
  }
  if (!o.model) throw new Error('model-step.mjs: --model DIR is required');
  for (const k of ['batch', 'rounds', 'reps']) if (!(Number.isInteger(o[k]) && o[k] >= 1)) throw new Error(`model-step.mjs: --${k}: expected an integer >= 1, found ${o[k]}`);
  return o;
}

const opts = options(process.argv.slice(2));
const modelDir = resolve(opts.model);
const name = basename(modelDir).replace(/[^\w\-.]/g, '_');
await readFile(join(modelDir, 'model.json')).catch(() => {
  console.error(`model-step.mjs: --model ${opts.model}: no model.json (an export or import-diffusers directory)`);
  process.exit(2);
});
if (!(await readFile(join(root, 'www/pkg/scorediff_web.js'), 'utf8').catch(() => '')).includes('BenchModel')) {
  console.error('model-step.mjs: www/pkg has no BenchModel (web/src/bench.rs): rebuild it with ./run.sh --no-serve');
  process.exit(2);
}

// www/pkg/ and bench/browser/ from the repository, models/NAME/ from --model.
const server = await serve(null, { '/www/pkg/': join(root, 'www/pkg'), '/bench/browser/': join(root, 'bench/browser'), [`/models/${name}/`]: modelDir }, { headers: { 'Cache-Control': 'no-store' } });

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage();
const consoleLines = [];
page.on('console', (m) => consoleLines.push(m.text()));
page.on('pageerror', (e) => consoleLines.push(String(e)));
const started = Date.now();
const loadBefore = loadavg();
await page.goto(`${server.url}bench/browser/page.html?row=ours-flex-1&workers=1&t=${opts.t}&card=/models/${name}/`);
let info;
try {
  info = await page.evaluate(() => window.bench.ready);
} catch (e) {
  console.error(`model-step.mjs: the page failed to load the model: ${String(e.message || e).split('\n')[0]} ${consoleLines.slice(-3).join(' | ')}`);
  process.exit(1);
}
console.error(`ready: ${JSON.stringify(info)}`);
page.setDefaultTimeout(0);
const samples = [];
// Round -1 is the warm-up, left out of the median.
for (let round = -1; round < opts.rounds; round++) {
  const times = await page.evaluate(([b, k]) => window.bench.run(b, k), [opts.batch, round < 0 ? 1 : opts.reps]);
  for (const ms of times) samples.push({ round, ms, load1: loadavg()[0] });
  console.error(`round ${round} batch ${opts.batch}: ${times.map((x) => x.toFixed(0)).join(' ')} ms`);
}
const chromiumVersion = browser.version();
await browser.close();
server.close();

const timed = samples.filter((s) => s.round >= 0).map((s) => s.ms);
const report = {
  date: new Date().toISOString(),
  seconds: (Date.now() - started) / 1000,
  options: opts,
  info,
  load: { before: loadBefore, after: loadavg() },
  machine: await machine(chromiumVersion),
  median_ms: median(timed),
  samples,
};
const out = join(root, 'target/browser-bench', `model-step-${report.date.replace(/[:.]/g, '-')}.json`);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, JSON.stringify(report, null, 1));
console.log(`${name}: ${info.parameters} parameters, shape ${JSON.stringify(info.shape)}, batch ${opts.batch}, Flex-wasm, 1 worker, Chromium ${chromiumVersion}`);
console.log(`one evaluation: median ${(report.median_ms / 1000).toFixed(3)} s over ${timed.length} (${timed.map((x) => (x / 1000).toFixed(3)).join(', ')} s) after 1 warm-up; raw samples in ${out}`);
