// The static server the end-to-end tests and the browser benchmarks share (serve.mjs), under
// node's test runner on real files in a temporary directory: a directory with its overlays, an
// overlay-only server (root null, what bench/browser/ uses), the headers on every response, and
// paths that leave the served directories refused.
// Run: node --test serve.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { serve } from './serve.mjs';

const dir = mkdtempSync(join(tmpdir(), 'serve-test-'));
for (const [path, body] of Object.entries({
  'www/index.html': '<p>page</p>',
  'www/app.mjs': 'export {}',
  'www/models/mnist/model.json': '{"old":true}',
  'other/model.json': '{"new":true}',
  'other/weights.bpk': 'WEIGHTS',
  'one.json': '{"one":1}',
  'secret.txt': 'not to be served',
})) {
  mkdirSync(join(dir, path, '..'), { recursive: true });
  writeFileSync(join(dir, path), body);
}

// GET with the raw path as written (fetch would normalise `..` before sending it).
const get = (url, path) => new Promise((ok, fail) => {
  const { hostname, port } = new URL(url);
  request({ hostname, port, path, method: 'GET' }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body }));
  }).on('error', fail).end();
});

test('a directory with overlays: index.html, types, a directory overlay and a file overlay', async () => {
  const { url, close } = await serve(join(dir, 'www'), { '/models/mnist/': join(dir, 'other'), '/models/index.json': join(dir, 'one.json') });
  try {
    const index = await get(url, '/');
    assert.equal(index.status, 200);
    assert.equal(index.body, '<p>page</p>');
    assert.equal(index.headers['content-type'], 'text/html');
    assert.equal((await get(url, '/app.mjs')).headers['content-type'], 'text/javascript');
    // The overlay replaces the directory's own file, and adds one it lacks.
    assert.equal((await get(url, '/models/mnist/model.json')).body, '{"new":true}');
    assert.equal((await get(url, '/models/mnist/weights.bpk')).body, 'WEIGHTS');
    assert.equal((await get(url, '/models/index.json')).body, '{"one":1}');
    assert.equal((await get(url, '/missing.js')).status, 404);
    // Out of the directory, raw or percent-encoded: never the file beside it. The URL parser
    // drops a `..` segment itself; an encoded slash (%2f) keeps it until the path is decoded.
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/%2e%2e%2fsecret.txt', '/models/mnist/%2e%2e%2fsecret.txt', '/models/mnist/..%2f..%2fsecret.txt']) {
      const r = await get(url, path);
      assert.notEqual(r.body, 'not to be served', path);
      assert.notEqual(r.status, 200, path);
    }
  } finally {
    close();
  }
});

test('root null serves the overlays only, each response with the given headers', async () => {
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cache-Control': 'no-store' };
  const { url, close } = await serve(null, { '/www/': join(dir, 'www'), '/models/x/': join(dir, 'other') }, { headers });
  try {
    const ok = await get(url, '/www/app.mjs');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['cross-origin-opener-policy'], 'same-origin');
    assert.equal(ok.headers['cache-control'], 'no-store');
    assert.equal((await get(url, '/models/x/weights.bpk')).body, 'WEIGHTS');
    // Nothing outside the overlays, not even the root's index; refusals carry the headers too.
    for (const path of ['/', '/one.json', '/secret.txt', '/www/../secret.txt', '/www/%2e%2e%2fsecret.txt', '/www/..%2fone.json']) {
      const r = await get(url, path);
      assert.notEqual(r.status, 200, path);
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', path);
    }
    assert.equal((await get(url, '/www/missing')).headers['cache-control'], 'no-store');
  } finally {
    close();
  }
});
