// The browser side-by-side of issue 20 (scripts/browser-bench.sh runs it): one network
// evaluation of the shipped MNIST U-Net's architecture at each batch, in one headless Chromium,
// rows interleaved round by round, medians after a warm-up round:
//   onnxruntime-web's wasm EP at 1 thread (an origin without cross-origin isolation) and at N
//   threads (a second origin served with COOP: same-origin and COEP: require-corp);
//   ours on Flex-wasm with 1 worker and with N workers (each its own wasm instance and weights,
//   the batch split between them, timed as the round in which all run);
//   both WebGPU paths (on a machine without a GPU Chromium's adapter is SwiftShader, a CPU
//   emulation: software-GPU numbers, not a measure of WebGPU).
// Serves www/, bench/browser/ and target/browser-bench/ (the ONNX file) itself.
// Options: see stats.mjs parseArgs. Environment: CHROMIUM (default /usr/bin/chromium),
// BENCH_AUTOGROUP_NICE (below).
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { chromium } from 'playwright-core';
import { ROWS, markdownTable, pairedRatios, parseArgs, roundSchedule, summarise } from './stats.mjs';
import { machine } from './machine.mjs';
import { serve } from '../../tests/e2e/serve.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const served = ['www/', 'bench/browser/', 'target/browser-bench/'];

// The parts of the repository the page needs, each served under its own path, with no caching;
// the N-thread ORT row's origin is cross-origin isolated (COOP/COEP), for SharedArrayBuffer.
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin' };
const serveParts = (headers) => serve(null, Object.fromEntries(served.map((p) => [`/${p}`, join(root, p)])), { headers: { 'Cache-Control': 'no-store', ...headers } });

const opts = parseArgs(process.argv.slice(2));
for (const need of ['target/browser-bench/unet-mnist.onnx', 'www/pkg/scorediff_web.js', 'bench/browser/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs']) {
  try {
    await readFile(join(root, need));
  } catch {
    console.error(`bench.mjs: ${need} is missing (scripts/browser-bench.sh makes it)`);
    process.exit(2);
  }
}
if (!(await readFile(join(root, 'www/pkg/scorediff_web.js'), 'utf8')).includes('BenchModel')) {
  console.error('bench.mjs: www/pkg has no BenchModel (web/src/bench.rs): rebuild it with ./run.sh --no-serve');
  process.exit(2);
}

const plain = await serveParts({});
const isolated = await serveParts(isolation);
// launchServer gives the browser's process (for its autogroup, below); connect to it as usual.
const browserServer = await chromium.launchServer({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--enable-unsafe-webgpu', '--no-sandbox'] });
const browser = await chromium.connect(browserServer.wsEndpoint());
// With sched_autogroup on, the kernel shares the CPUs between sessions, whatever the nice of the
// processes inside them: other sessions' builds at nice 10 and a job at nice 19 each take a
// group's share from the browser (Playwright starts Chromium in a session of its own).
// BENCH_AUTOGROUP_NICE sets the browser's group's nice (e.g. -10, so niced work yields as its
// nice intends); unset, it is left alone. Recorded in the results.
const autogroup = (() => { try { return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1'; } catch { return null; } })();
const groupNice = process.env.BENCH_AUTOGROUP_NICE;
if (groupNice !== undefined) writeFileSync(`/proc/${browserServer.process().pid}/autogroup`, String(Number(groupNice)));
const context = await browser.newContext();
const workers = opts.workers || Math.min(8, (await (await context.newPage()).evaluate(() => navigator.hardwareConcurrency)) || 1);
const alt = opts.altPkg && { id: 'ours-flex-1-alt', label: `ours, Flex-wasm, 1 worker, ${opts.altLabel}`, gpu: false };
if (alt && !/^target\/browser-bench\/[\w\-/.]+$/.test(opts.altPkg.replace(/\/$/, ''))) {
  console.error(`bench.mjs: --alt-pkg: expected a directory under target/browser-bench/, found ${opts.altPkg}`);
  process.exit(2);
}
const rows = [...ROWS.filter((r) => opts.rows.includes(r.id)), ...(alt ? [alt] : [])];
const rowOf = (id) => rows.find((r) => r.id === id);
const pages = {};
const info = {};
const errors = {};
for (const r of rows) {
  const base = (r.id === 'ort-wasm-n' ? isolated : plain).url;
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text()));
  page.on('pageerror', (e) => consoleLines.push(String(e)));
  const pkg = r === alt ? `&pkg=${encodeURIComponent('/' + opts.altPkg.replace(/\/?$/, '/'))}` : '';
  await page.goto(`${base}bench/browser/page.html?row=${r.id}&workers=${workers}&t=${opts.t}${pkg}`);
  try {
    info[r.id] = await page.evaluate(() => window.bench.ready);
    pages[r.id] = page;
    console.error(`${r.id}: ready ${JSON.stringify(info[r.id])}`);
  } catch (e) {
    errors[r.id] = `${String(e.message || e).split('\n')[0]} ${consoleLines.slice(-3).join(' | ')}`;
    console.error(`${r.id}: failed to start: ${errors[r.id]}`);
    await page.close();
  }
}

const samples = [];
const started = Date.now();
const loadBefore = loadavg();
// Round -1 is the warm-up (left out of the medians). GPU rows take part in the first gpuRounds
// measured rounds only (SwiftShader takes seconds per evaluation), one evaluation per visit.
for (let round = -1; round < opts.rounds; round++) {
  const live = rows.map((r) => r.id).filter((id) => pages[id] && !errors[id] && (!rowOf(id).gpu || round < opts.gpuRounds));
  for (const { row, batch } of roundSchedule(live, opts.batches, round + 1)) {
    const gpu = rowOf(row).gpu;
    const reps = gpu ? 1 : round < 0 ? 2 : opts.reps;
    try {
      const times = await pages[row].evaluate(([b, k]) => window.bench.run(b, k), [batch, reps]);
      const load1 = loadavg()[0];
      for (const ms of times) samples.push({ row, batch, round, ms, load1 });
      console.error(`round ${round} ${row} batch ${batch}: ${times.map((x) => x.toFixed(1)).join(' ')} ms`);
    } catch (e) {
      errors[row] = String(e.message || e).split('\n')[0];
      console.error(`${row}: failed at batch ${batch}: ${errors[row]}`);
    }
  }
}
const chromiumVersion = browser.version();
await browser.close();
await browserServer.close();
plain.close();
isolated.close();

const table = summarise(samples, opts.batches);
const ratios = pairedRatios(samples, opts.batches);
const markdown = markdownTable(table, opts.batches, { rows, errors, n: workers, ratios });
const report = {
  date: new Date().toISOString(),
  seconds: (Date.now() - started) / 1000,
  options: opts,
  workers,
  load: { before: loadBefore, after: loadavg() },
  schedAutogroup: autogroup,
  autogroupNice: groupNice === undefined ? 'left alone' : Number(groupNice),
  machine: await machine(chromiumVersion),
  info,
  errors,
  table,
  ratios,
  samples,
};
const out = opts.out || join(root, 'target/browser-bench', `results-${report.date.replace(/[:.]/g, '-')}.json`);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, JSON.stringify(report, null, 1));
console.log(markdown);
console.log(`\n${workers} workers / threads for the N rows; load average (1, 5, 15 min) ${loadBefore.map((x) => x.toFixed(1)).join(' ')} before, ${loadavg().map((x) => x.toFixed(1)).join(' ')} after; raw samples in ${out}`);
for (const [row, e] of Object.entries(errors)) console.log(`${row}: ${e}`);
