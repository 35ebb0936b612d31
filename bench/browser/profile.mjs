// Where our Flex-wasm evaluation spends its time: a CPU profile (Chromium's sampling profiler
// over CDP) of `reps` evaluations at one batch on a page's main thread, self time summed by
// function name, the top `top` printed. Needs a build with wasm names (wasm-pack's output
// before scripts/wasm-strip-names.py), e.g. target/browser-bench/pkg-o3/.
//   node bench/browser/profile.mjs --pkg target/browser-bench/pkg-o3 [--batch 8 --reps 10 --top 30]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../../tests/e2e/serve.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => (i % 2 ? a : [...a, [x.replace(/^--/, ''), all[i + 1]]]), []));
const pkg = '/' + (args.pkg || 'www/pkg').replace(/\/?$/, '/');
const batch = Number(args.batch || 8);
const reps = Number(args.reps || 10);
const top = Number(args.top || 30);
const server = await serve(null, Object.fromEntries(['www/', 'bench/browser/', 'target/browser-bench/'].map((p) => [`/${p}`, join(root, p)])));
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage();
await page.goto(`${server.url}bench/browser/profile.html?pkg=${encodeURIComponent(pkg)}`);
await page.evaluate(() => window.ready);
await page.evaluate(([b]) => window.run(b, 2), [batch]);
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
const times = await page.evaluate(([b, k]) => window.run(b, k), [batch, reps]);
const { profile } = await cdp.send('Profiler.stop');
await browser.close();
server.close();

const dt = profile.timeDeltas;
const self = new Map();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const n = byId.get(profile.samples[i]);
  const name = n.callFrame.functionName || `(${n.callFrame.url.split('/').pop() || 'anonymous'})`;
  const d = dt[i] || 0;
  self.set(name, (self.get(name) || 0) + d);
  total += d;
}
const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
console.log(`batch ${batch}, ${reps} evaluations: ${times.map((t) => t.toFixed(1)).join(' ')} ms; profile ${(total / 1000).toFixed(0)} ms`);
for (const [name, us] of rows) console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${name.slice(0, 160)}`);
