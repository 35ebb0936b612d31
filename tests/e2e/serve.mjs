// What the end-to-end tests and the browser benchmarks (bench/browser/, tests/e2e/pool-bench.mjs)
// share: a static server of a directory on a free localhost port (what `python3 -m http.server`
// serves, without directory listings) and a list of named checks.
//
//   const { url, close } = await serve(www, { '/models/mnist/': dir, '/models/index.json': file });
//   const { url } = await serve(null, { '/www/': www }, { headers: { 'Cache-Control': 'no-store' } });
//   const { check, failures } = checks();
//
// `overlay` serves files from outside the directory in place of its own: a URL prefix ending in
// `/` maps to a directory (its files under that prefix), any other path to one file. Requests
// from the page's workers cannot be routed by the browser automation, so overlays are done here.
// With `root` null only the overlays are served (a benchmark serves the parts of the repository it
// needs, not all of it). `headers` go on every response (e.g. COOP/COEP for cross-origin isolation).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';

const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png' };

const inside = (dir, file) => (file === dir || file.startsWith(dir + sep) ? file : null);

// The file a request path names, or null when it lies outside the directory and the overlays.
function fileOf(root, overlay, path) {
  for (const [prefix, target] of Object.entries(overlay)) {
    if (!prefix.endsWith('/')) { if (path === prefix) return target; continue; }
    if (!path.startsWith(prefix)) continue;
    return inside(target, join(target, path.slice(prefix.length)));
  }
  return root && inside(root, join(root, path.endsWith('/') ? path + 'index.html' : path));
}

// Serves `root` (and `overlay`) on 127.0.0.1; resolves to its URL (ending in `/`) and `close`.
export async function serve(root, overlay = {}, { headers = {} } = {}) {
  root = root && resolve(root);
  overlay = Object.fromEntries(Object.entries(overlay).map(([prefix, target]) => [prefix, resolve(target)]));
  const server = createServer((req, res) => {
    const file = fileOf(root, overlay, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!file) { res.writeHead(403, headers); res.end(); return; }
    try {
      const body = readFileSync(file);
      res.writeHead(200, { ...headers, 'Content-Type': types[extname(file)] || 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

// `check(ok, message)` prints ok/FAIL and keeps the failed messages in `failures`.
export function checks() {
  const failures = [];
  const check = (ok, message) => {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`);
    if (!ok) failures.push(message);
  };
  return { check, failures };
}
