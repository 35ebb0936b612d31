// The worker pool's speedup: serves www/ (built beforehand by `./run.sh --no-serve`), opens it in
// headless Chromium on Flex and times whole runs of Generate (DPM-Solver++(2M), 10 steps, batch
// 16, previews every 10 steps, x0-hat off) with 1 worker and with 2, interleaved
// (1, 2, 1, 2, ...), after one warm-up run of each; prints the medians of images per second
// (the page's own figure: the first step to the last image of every worker, models loaded) and
// their ratio, and writes them to pool-bench.json in the output directory.
//
//   node pool-bench.mjs                  the benchmark (POOL_RUNS=5 runs of each, POOL_WORKERS=2)
//   POOL_MODE=check node pool-bench.mjs  only pool.mjs's checks (what e2e.mjs calls), alone
//
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_OUT (default tests/e2e/out),
// POOL_BATCH (16), POOL_STEPS (10), POOL_RUNS (5), POOL_WORKERS (2); POOL_AUTOGROUP_NICE (unset:
// left alone): with sched_autogroup on, every session shares the CPUs equally whatever its
// processes' nice values, so a build at nice 10 in another session takes a core from the
// workers; a value such as -10 sets the nice of the browser's group (its own session) for the
// run (Linux, root), so that builds and training run behind the benchmark as their nice values
// intended; the group ends with the browser. The report says which.
import { chromium } from 'playwright-core';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openFlexPage, run as poolChecks, sampleOnPage } from './pool.mjs';
import { serve } from './serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const www = resolve(here, '../../www');
const out = resolve(process.env.E2E_OUT || join(here, 'out'));
mkdirSync(out, { recursive: true });
if (!existsSync(join(www, 'pkg', 'scorediff_web_bg.wasm')) || !existsSync(join(www, 'models', 'mnist', 'model.json'))) {
  console.error('needs www/pkg/ (./run.sh --no-serve) and www/models/mnist/');
  process.exit(2);
}

const server = await serve(www);
const url = server.url;
// launchServer gives the browser's process (for its CPU time); connect to it as usual.
const browserServer = await chromium.launchServer({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const browserProcess = browserServer.process();
const browser = await chromium.connect(browserServer.wsEndpoint());
// CPU seconds used so far by the process tree under `root` (Linux /proc; utime + stime), and by
// the whole machine (/proc/stat, all CPUs, busy time): how many cores a run actually got. The
// kernel here groups processes by session (sched_autogroup), so nice does not keep other
// sessions' builds off the cores the workers need.
function treeCpuSeconds(root) {
  const parent = new Map(), cpu = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(+d, +f[1]);
      cpu.set(+d, (+f[11] + +f[12]) / 100);
    } catch { /* gone */ }
  }
  let total = 0;
  for (const [pid, t] of cpu) {
    for (let p = pid; p > 1; p = parent.get(p)) if (p === root) { total += t; break; }
  }
  return total;
}
function machineBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100; // user nice system irq softirq steal
}
const autogroup = (() => { try { return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1'; } catch { return null; } })();

// Playwright starts Chromium in a session (and so an autogroup) of its own: that group's nice.
const groupNice = process.env.POOL_AUTOGROUP_NICE;
if (groupNice !== undefined) writeFileSync(`/proc/${browserProcess.pid}/autogroup`, String(+groupNice));

const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

let code = 1;
try {
  const context = await browser.newContext({ viewport: { width: 1320, height: 1900 } });
  if (process.env.POOL_MODE === 'check') {
    const failures = [];
    const check = (ok, message) => { console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`); if (!ok) failures.push(message); };
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-ready=yes]', { timeout: 120000 });
    const report = {};
    await poolChecks({ page, check, report, out, useFixture: false });
    writeFileSync(join(out, 'pool-report.json'), JSON.stringify(report, null, 2));
    console.log(failures.length ? `${failures.length} check(s) failed` : 'all checks passed');
    code = failures.length ? 1 : 0;
  } else {
    const batch = +(process.env.POOL_BATCH || 16), steps = +(process.env.POOL_STEPS || 10);
    const runs = +(process.env.POOL_RUNS || 5), workers = +(process.env.POOL_WORKERS || 2);
    const page = await openFlexPage(browser, url);
    const hardware = await page.evaluate(() => navigator.hardwareConcurrency);
    const settings = { batch, steps, sampler: 'dpm-solver2m', every: steps, x0: false, pixels: false };
    const times = { 1: [], [workers]: [] }, cores = { 1: [], [workers]: [] }, others = { 1: [], [workers]: [] };
    const chromiumPid = browserProcess.pid;
    for (let i = -1; i < runs; i++) {
      for (const n of [1, workers]) {
        const [c0, m0, w0] = [treeCpuSeconds(chromiumPid), machineBusySeconds(), Date.now()];
        const got = await sampleOnPage(page, { ...settings, workers: n, seed: 100 + i });
        const wall = (Date.now() - w0) / 1000, ours = treeCpuSeconds(chromiumPid) - c0, busy = machineBusySeconds() - m0;
        if (got.status !== 'done') throw new Error(`a run with ${n} workers failed: ${got.error}`);
        const line = `${i < 0 ? 'warm-up' : `run ${i + 1}`}: ${n} worker(s) ${got.run.seconds.toFixed(2)} s, ${got.run.imagesPerSecond.toFixed(2)} images/s; ` +
          `Chromium got ${(ours / wall).toFixed(2)} cores, everything else ${((busy - ours) / wall).toFixed(2)} (load ${loadavg()[0].toFixed(2)})`;
        console.log(line);
        if (i >= 0) { times[n].push(got.run.seconds); cores[n].push(ours / wall); others[n].push((busy - ours) / wall); }
      }
    }
    const m1 = median(times[1]), mN = median(times[workers]);
    const result = {
      date: new Date().toISOString(), command: 'cd tests/e2e && node pool-bench.mjs', browser: browser.version(),
      navigatorHardwareConcurrency: hardware, hostCpus: cpus().length, hostLoadAverage: loadavg(),
      batch, steps, sampler: 'dpm-solver2m', runs, workers, schedAutogroup: autogroup,
      autogroupNice: groupNice === undefined ? 'left alone' : +groupNice,
      secondsPerRun: times, chromiumCoresPerRun: cores, otherCoresPerRun: others,
      medianChromiumCores: { 1: median(cores[1]), [workers]: median(cores[workers]) },
      medianOtherCores: { 1: median(others[1]), [workers]: median(others[workers]) }, medianSeconds: { 1: m1, [workers]: mN },
      medianImagesPerSecond: { 1: batch / m1, [workers]: batch / mN }, speedup: m1 / mN,
    };
    console.log(`batch ${batch}, ${steps} steps, medians of ${runs}: 1 worker ${m1.toFixed(2)} s (${(batch / m1).toFixed(2)} images/s), ` +
      `${workers} workers ${mN.toFixed(2)} s (${(batch / mN).toFixed(2)} images/s): speedup ${(m1 / mN).toFixed(2)}x; ` +
      `Chromium got ${median(cores[1]).toFixed(2)} and ${median(cores[workers]).toFixed(2)} cores, the rest of the machine used ` +
      `${median(others[1]).toFixed(2)} and ${median(others[workers]).toFixed(2)}` +
      (groupNice !== undefined ? ` (the browser's autogroup at nice ${+groupNice})` : autogroup ? ' (sched_autogroup on and left alone: nice does not shield the runs)' : ''));
    writeFileSync(join(out, 'pool-bench.json'), JSON.stringify(result, null, 2));
    code = 0;
  }
} catch (e) {
  console.error('FAIL', e);
} finally {
  await browser.close();
  await browserServer.close();
  server.close();
  // (The group goes with the browser's session, which ends with it.)
}
process.exit(code);
