// The worker's model-file cache (www/files.js) under node's test runner, with an in-memory
// Cache API and a fake server: a returning visitor whose cache holds an old card and old
// weights gets the new ones once the card's hash changes, and the old entries are dropped.
// Run: node --test files.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';
import { CACHE, modelFiles } from '../../www/files.js';

const base = 'http://localhost/worker.js';
const abs = (url) => new URL(url, base).href;
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// The parts of CacheStorage and Cache the module uses, keyed by absolute URL (with its query).
class FakeCache {
  constructor() { this.entries = new Map(); }
  async match(url) { const r = this.entries.get(abs(url)); return r && r.clone(); }
  async put(url, response) { this.entries.set(abs(url), new Response(await response.arrayBuffer(), { status: response.status })); }
  async keys() { return [...this.entries.keys()].map((u) => new Request(u)); }
  async delete(request) { return this.entries.delete(request.url); }
}
class FakeCaches {
  constructor() { this.cache = new FakeCache(); }
  async open(name) { assert.equal(name, CACHE); return this.cache; }
}

// A static server of `files` (path -> bytes or string) that ignores query strings, as
// python's http.server does, and records every request.
function server(files) {
  const log = [];
  let offline = false;
  const fetch = async (url, init = {}) => {
    if (offline) throw new TypeError('Failed to fetch');
    log.push({ url, cache: init.cache });
    const body = files[new URL(url, base).pathname];
    return body === undefined ? new Response('not found', { status: 404, statusText: 'Not Found' }) : new Response(body);
  };
  return { fetch, log, files, goOffline: () => { offline = true; } };
}

const card = (hash) => JSON.stringify({ weights: 'weights.bpk', weights_sha256: hash });

function setup(weights) {
  const caches = new FakeCaches();
  const srv = server({ '/models/m/model.json': card(sha256(weights)), '/models/m/weights.bpk': weights });
  const files = modelFiles({ caches, fetch: srv.fetch, base, subtle: webcrypto.subtle });
  return { caches, srv, files };
}

async function load(files) {
  const text = await files.text('models/m/model.json');
  const { weights, weights_sha256: hash } = JSON.parse(text);
  return files.bytes(`models/m/${weights}`, hash);
}

test('weights are fetched once per hash, the card on every visit', async () => {
  const old = new Uint8Array([1, 2, 3]);
  const { srv, files, caches } = setup(old);
  assert.deepEqual(await load(files), old);
  assert.deepEqual(await load(files), old);
  const weightFetches = srv.log.filter((r) => r.url.includes('weights.bpk'));
  assert.deepEqual(weightFetches.map((r) => r.url), [`models/m/weights.bpk?sha256=${sha256(old)}`]);
  const cardFetches = srv.log.filter((r) => r.url.endsWith('model.json'));
  assert.equal(cardFetches.length, 2);
  assert.ok(cardFetches.every((r) => r.cache === 'no-cache'), 'the card is revalidated with the server');
  assert.ok(caches.cache.entries.has(abs(`models/m/weights.bpk?sha256=${sha256(old)}`)));
});

test('a returning visitor gets retrained weights and the old entries are dropped', async () => {
  const old = new Uint8Array([1, 2, 3]);
  const { srv, files, caches } = setup(old);
  // What the page before content hashes left behind: the weights under their bare URL.
  await caches.cache.put('models/m/weights.bpk', new Response(new Uint8Array([9, 9])));
  assert.deepEqual(await load(files), old);
  // Retrained: new weights and a re-exported card on the server.
  const fresh = new Uint8Array([4, 5, 6, 7]);
  srv.files['/models/m/weights.bpk'] = fresh;
  srv.files['/models/m/model.json'] = card(sha256(fresh));
  assert.deepEqual(await load(files), fresh);
  const kept = [...caches.cache.entries.keys()].filter((u) => u.includes('weights.bpk'));
  assert.deepEqual(kept, [abs(`models/m/weights.bpk?sha256=${sha256(fresh)}`)]);
  // Offline afterwards: the kept card and weights still load, and they are the new ones.
  srv.goOffline();
  assert.deepEqual(await load(files), fresh);
});

test('bytes that do not hash to the card are returned but not kept', async () => {
  const weights = new Uint8Array([1, 2, 3]);
  const { srv, files, caches } = setup(weights);
  srv.files['/models/m/weights.bpk'] = new Uint8Array([6, 6, 6]); // retrained, card not exported
  assert.deepEqual(await load(files), new Uint8Array([6, 6, 6])); // the core's loader reports it
  assert.ok(![...caches.cache.entries.keys()].some((u) => u.includes('weights.bpk')));
  srv.files['/models/m/weights.bpk'] = weights; // fixed on the server
  assert.deepEqual(await load(files), weights);
});

test('weights of a card without a hash are revalidated like the card', async () => {
  const caches = new FakeCaches();
  const srv = server({ '/models/m/model.json': JSON.stringify({ weights: 'weights.bpk' }), '/models/m/weights.bpk': new Uint8Array([1]) });
  const files = modelFiles({ caches, fetch: srv.fetch, base, subtle: webcrypto.subtle });
  await load(files);
  srv.files['/models/m/weights.bpk'] = new Uint8Array([2]);
  assert.deepEqual(await load(files), new Uint8Array([2]));
  assert.ok(srv.log.every((r) => r.cache === 'no-cache'));
});

test('a missing file is an error naming it; without a Cache API files still load', async () => {
  const srv = server({});
  const files = modelFiles({ caches: null, fetch: srv.fetch, base, subtle: webcrypto.subtle });
  await assert.rejects(files.text('models/nope/model.json'), /models\/nope\/model\.json: 404 Not Found .*missing/);
  await assert.rejects(files.bytes('models/nope/weights.bpk', 'ab'.repeat(32)), /models\/nope\/weights\.bpk: 404/);
  srv.files['/models/x/weights.bpk'] = new Uint8Array([3]);
  assert.deepEqual(await files.bytes('models/x/weights.bpk', sha256(new Uint8Array([3]))), new Uint8Array([3]));
});
